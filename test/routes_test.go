package test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// onPremises is a corporate network that advertises 0.0.0.0/0 (forced
// tunneling) and NATs to 198.18.0.10 at its edge.
const onPremises = `onPremises:
  addressSpace: {addressPrefixes: [172.16.0.0/16]}
  natAddress: 198.18.0.10
  advertiseDefaultRoute: true
  gateway: {name: corp-gw, address: 172.16.0.4}
  hosts: [{name: corp-host, address: 172.16.1.10}]
`

// withRoutes attaches a route table with the given routes (YAML flow
// mappings) to ase1-subnet, and adds extra top-level YAML.
func withRoutes(extra string, routes ...string) []string {
	var b strings.Builder
	b.WriteString("networkSecurityGroups: []\nrouteTables:\n  - name: ase1-rt\n    routes:\n")
	for _, r := range routes {
		b.WriteString("      - " + r + "\n")
	}
	if len(routes) == 0 {
		b.WriteString("      []\n")
	}
	b.WriteString(extra)
	return []string{
		"        addressPrefix: 10.0.1.0/26\n", "        addressPrefix: 10.0.1.0/26\n        routeTable: ase1-rt\n",
		"networkSecurityGroups: []\n", b.String(),
	}
}

type nexthopJSON struct {
	Type  string `json:"nextHopType"`
	IP    string `json:"nextHopIpAddress"`
	Route string `json:"route"`
}

func (l *lab) nexthop(from, to string) nexthopJSON {
	l.t.Helper()
	var nh nexthopJSON
	l.emuJSON(&nh, "nexthop", "--from", from, "--to", to)
	return nh
}

// F18: nexthop reads a VNet subnet's routes, as Network Watcher does for
// a VM. A node outside the VNets has none: nexthop says so (exit 2) rather
// than answer VnetLocal for a host on the Internet.
func TestNexthopOutsideTheVNets(t *testing.T) {
	l := upLab(t)
	r := emu(t, "nexthop", "--name", l.name, "--from", "client", "--to", "192.23.1.2")
	if r.code != 2 || !strings.Contains(r.stderr, "client") || !strings.Contains(r.stderr, "not in a VNet") {
		t.Errorf("nexthop from the Internet host client: want exit 2 saying client is not in a VNet, got %v", r)
	}
	if nh := l.nexthop("db1", "192.23.1.2"); nh.Type != "Internet" {
		t.Errorf("nexthop from db1 to ase1's VIP = %+v, want Internet", nh)
	}
}

// The machines of the on-premises network are not on the Internet: up
// and status show them in the on-premises network, and trace labels a
// probe from one as leaving on-premises, through the gateway corp-gw to
// the VNets and to the Internet, directly to the network's own addresses
// (it said "route Internet").
func TestOnPremisesNodesShownOnPremises(t *testing.T) {
	file := writeTopology(t, "onprem.yaml", withRoutes(onPremises)...)
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(l.down)
	r := emu(t, "up", "-d", "--name", l.name, "-f", file)
	if r.code != 0 {
		t.Fatalf("up: %v", r)
	}
	if !regexp.MustCompile(`(?m)^corp-host\s+onprem\s+\S+\s+on-premises\s`).MatchString(r.stdout) {
		t.Errorf("up's table should show corp-host in subnet on-premises:\n%s", r.stdout)
	}
	for _, n := range []string{"corp-gw", "corp-host"} {
		if got := l.node(n).Subnet; got != "on-premises" {
			t.Errorf("status --json: %s is in subnet %q, want on-premises", n, got)
		}
	}
	if got := l.node("client").Subnet; got != "Internet" {
		t.Errorf("status --json: client is in subnet %q, want Internet", got)
	}
	if got := l.node("platform").Subnet; got != "Azure platform" {
		t.Errorf("status --json: platform is in subnet %q, want Azure platform", got)
	}
	for to, want := range map[string]string{
		"10.0.2.4:1433":   "1. corp-host: route on-premises 172.16.0.4 (gateway corp-gw)",
		"203.0.113.10:80": "1. corp-host: route on-premises 172.16.0.4 (gateway corp-gw)",
		"172.16.0.4:22":   "1. corp-host: route on-premises (direct, 172.16.0.0/16)",
	} {
		r := emu(t, "trace", "--name", l.name, "--from", "corp-host", "--to", to)
		if r.code != 0 || !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("trace from corp-host to %s: want the hop %q, got %v", to, want, r)
		}
	}
	if r := emu(t, "trace", "--name", l.name, "--from", "client", "--to", "192.23.1.2:80"); !strings.Contains(r.stdout, "1. client: route Internet (System Route)\n") {
		t.Errorf("trace from client: want its hop to stay route Internet, got %v", r)
	}
}

// trace to the node's own address says the probe never leaves the node
// (exit 2), rather than that it "did not leave" for a firewall or route.
func TestTraceToOwnAddress(t *testing.T) {
	l := upLab(t)
	r := emu(t, "trace", "--name", l.name, "--from", "client", "--to", "198.51.100.10:80")
	if r.code != 2 || !strings.Contains(r.stderr, "client's own address") {
		t.Errorf("trace from client to its own address: want exit 2 saying it is client's own address, got %v", r)
	}
}

// trace's result names what dropped a probe that no NSG decided on, once:
// a closed VIP port is the load balancer's doing.
func TestTraceNamesWhatDrops(t *testing.T) {
	l := upLab(t)
	r := emu(t, "trace", "--name", l.name, "--from", "client", "--to", "192.23.1.2:81")
	if !strings.Contains(r.stdout, "\nResult: dropped by the load balancer: port-closed\n") {
		t.Errorf("trace from client to a closed VIP port: want its result to name the load balancer, got %v", r)
	}
}

// F16, F18: with forced tunneling the ASE leaves with the on-premises NAT
// address and turns Unhealthy, naming forced tunneling; a 0.0.0.0/0 ->
// Internet route on its subnet brings back the VIP and Healthy, while a
// more specific on-premises prefix still goes on-premises.
func TestForcedTunneling(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "forced.yaml", withRoutes(onPremises)...))
	if r := l.exec("ase1-w1", 20*time.Second, "curl", "-s", "-m", "5", "http://echo/"); strings.TrimSpace(r.stdout) != "198.18.0.10" {
		t.Errorf("F16: with forced tunneling echo should see the on-premises NAT address 198.18.0.10, got %v", r)
	}
	if nh := l.nexthop("ase1-w1", "203.0.113.10"); nh.Type != "VirtualNetworkGateway" {
		t.Errorf("nexthop with forced tunneling = %+v, want VirtualNetworkGateway", nh)
	}
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Unhealthy", "forced tunneling")) {
		t.Fatalf("F16: ase1 should be Unhealthy naming forced tunneling: %+v", l.ase("ase1"))
	}

	fixed := writeTopology(t, "fixed.yaml", withRoutes(onPremises, `{name: DefaultToInternet, addressPrefix: 0.0.0.0/0, nextHopType: Internet}`)...)
	if r := emu(t, "apply", "--name", l.name, "-f", fixed); r.code != 0 {
		t.Fatalf("apply the 0.0.0.0/0 -> Internet route: %v", r)
	}
	if r := l.exec("ase1-w1", 20*time.Second, "curl", "-s", "-m", "5", "http://echo/"); strings.TrimSpace(r.stdout) != "192.23.1.2" {
		t.Errorf("F18: with 0.0.0.0/0 -> Internet echo should see the VIP 192.23.1.2 again, got %v", r)
	}
	if nh := l.nexthop("ase1-w1", "203.0.113.10"); nh.Type != "Internet" || nh.Route != "DefaultToInternet" {
		t.Errorf("nexthop after the fix = %+v, want Internet by DefaultToInternet", nh)
	}
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Healthy", "")) {
		t.Fatalf("F16: after the fix ase1 should be Healthy: %+v", l.ase("ase1"))
	}
	// ExpressRoute's more specific prefixes still go on-premises.
	if nh := l.nexthop("ase1-w1", "172.16.1.10"); nh.Type != "VirtualNetworkGateway" {
		t.Errorf("nexthop to on-premises with the UDR in place = %+v, want VirtualNetworkGateway", nh)
	}
	if r := l.exec("ase1-w1", 20*time.Second, "ping", "-c", "1", "-W", "2", "172.16.1.10"); r.code != 0 {
		t.Errorf("the on-premises host should stay reachable: %v", r)
	}
}

// F18: a route to None drops and counts, and nexthop says None.
func TestRouteNone(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "none.yaml", withRoutes("", `{name: Blackhole, addressPrefix: 203.0.113.0/28, nextHopType: None}`)...))
	l.curlFails("ase1-w1", "http://203.0.113.10/")
	if nh := l.nexthop("ase1-w1", "203.0.113.10"); nh.Type != "None" || nh.Route != "Blackhole" {
		t.Errorf("nexthop = %+v, want None by Blackhole", nh)
	}
	if d := l.status().Drops["route-none"]; d < 1 {
		t.Errorf("status counts %d route-none drops, want at least 1", d)
	}
}

// F18: a 10.0.2.0/24 -> VirtualAppliance route makes db1-bound traffic
// pass through the appliance VM, whose counters show it.
func TestVirtualAppliance(t *testing.T) {
	file := writeTopology(t, "nva.yaml", append(withRoutes("", `{name: ToNVA, addressPrefix: 10.0.2.0/24, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}`),
		"      - name: ase3-subnet\n", "      - name: nva-subnet\n        addressPrefix: 10.0.5.0/24\n      - name: ase3-subnet\n",
		"    privateIPAddress: 10.0.2.4\n", "    privateIPAddress: 10.0.2.4\n  - name: nva1\n    subnet: nva-subnet\n    privateIPAddress: 10.0.5.4\n    enableIPForwarding: true\n")...)
	l := upLab(t, "-f", file)
	rx := func() uint64 { return l.node("nva1").RxPackets }
	before := rx()
	if peer := l.peerSeen("ase1-w1", "10.0.2.4", 1433); peer != "10.0.1.6" {
		t.Errorf("db1 saw %s through the appliance, want 10.0.1.6", peer)
	}
	if after := rx(); after < before+3 {
		t.Errorf("the appliance's counters moved from %d to %d: the traffic did not pass through it", before, after)
	}
	if nh := l.nexthop("ase1-w1", "10.0.2.4"); nh.Type != "VirtualAppliance" || nh.IP != "10.0.5.4" {
		t.Errorf("nexthop = %+v, want VirtualAppliance 10.0.5.4", nh)
	}
	// trace shows both passes: to the appliance, and from it to db1.
	var tr traceJSON
	l.emuJSON(&tr, "trace", "--from", "ase1-w1", "--to", "10.0.2.4:1433")
	if len(tr.Hops) != 2 || tr.Hops[0].Route.Type != "VirtualAppliance" || !tr.Delivered || tr.ToNode != "db1" {
		t.Errorf("trace through the appliance = %+v, want two hops, the first by VirtualAppliance, ending at db1", tr)
	}
	r := l.exec("ase1-w1", 30*time.Second, "traceroute", "-n", "-q", "1", "-w", "2", "10.0.2.4")
	if !regexp.MustCompile(`(?m)^\s*\d+\s+10\.0\.5\.4\b`).MatchString(r.stdout) {
		t.Errorf("traceroute to db1 should show the appliance 10.0.5.4 as a hop: %v", r)
	}
}

// nvaLab is the default lab with an appliance nva1 in its own subnet and
// ase1-subnet's db1-bound traffic routed through it, plus edits.
func nvaLab(t *testing.T, edits ...string) string {
	return writeTopology(t, "nva.yaml", append(append(withRoutes("", `{name: ToNVA, addressPrefix: 10.0.2.0/24, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}`),
		"      - name: ase3-subnet\n", "      - name: nva-subnet\n        addressPrefix: 10.0.5.0/24\n      - name: ase3-subnet\n",
		"    privateIPAddress: 10.0.2.4\n", "    privateIPAddress: 10.0.2.4\n  - name: nva1\n    subnet: nva-subnet\n    privateIPAddress: 10.0.5.4\n    enableIPForwarding: true\n"),
		edits...)...)
}

// F14, F18: the way to an appliance meets the sender's NSG. With ase1's
// outbound rules denying db1's 1433, the worker's call through the
// appliance gets nowhere, the appliance sees none of it, and trace names
// the rule at the first hop; db1 calling the worker (its own subnet has no
// route) still gets its answers through the appliance, being a reply.
func TestApplianceMeetsSenderNSG(t *testing.T) {
	l := upLab(t, "-f", nvaLab(t,
		"        routeTable: ase1-rt\n", "        routeTable: ase1-rt\n        networkSecurityGroup: ase1-nsg\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: ase1-nsg
    securityRules:
      - {name: DenySQLToVMs, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationAddressPrefix: 10.0.2.0/24, destinationPortRange: "1433"}
`))
	before := l.node("nva1").RxPackets
	if r := l.exec("ase1-w1", 20*time.Second, "nc", "-w", "3", "10.0.2.4", "1433"); strings.Contains(r.stdout, "you are") {
		t.Errorf("db1 answered through the appliance a call ase1's NSG denies: %v", r)
	}
	if after := l.node("nva1").RxPackets; after != before {
		t.Errorf("the appliance received %d packets of a denied call", after-before)
	}
	var tr traceJSON
	l.emuJSON(&tr, "trace", "--from", "ase1-w1", "--to", "10.0.2.4:1433")
	if tr.Delivered || tr.Drop != "nsg-outbound" || !strings.Contains(tr.Decision, "DenySQLToVMs") {
		t.Errorf("trace = %+v, want dropped nsg-outbound by ase1-nsg/DenySQLToVMs", tr)
	}
	l.mustExec("ase1-w1", "sh", "-c", "nc -l -n 7777 </dev/null >/dev/null 2>&1 & sleep 0.3")
	if r := l.exec("db1", 20*time.Second, "nc", "-z", "-w", "3", "10.0.1.6", "7777"); r.code != 0 {
		t.Errorf("db1 could not connect to the worker, whose answers go through the appliance: %v", r)
	}
}

// F18: turning on enableIPForwarding with apply, with a route to the VM,
// makes it an appliance as up would: its own kernel forwards, so db1
// answers through it. Turning it off stops the forwarding again.
func TestApplyTurnsApplianceForwardingOn(t *testing.T) {
	// No appliance yet: the route to db1's subnet is the VNet's own.
	plain := nvaLab(t, "nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4", "nextHopType: VnetLocal",
		"    enableIPForwarding: true\n", "    enableIPForwarding: false\n")
	l := upLab(t, "-f", plain)
	forwarding := func() string {
		return strings.TrimSpace(l.mustExec("nva1", "cat", "/proc/sys/net/ipv4/ip_forward"))
	}
	r := emu(t, "apply", "--name", l.name, "-f", nvaLab(t))
	if r.code != 0 {
		t.Fatalf("apply of the appliance: %v", r)
	}
	if !strings.Contains(r.stdout, "nva1 IP forwarding: on") {
		t.Errorf("apply does not say nva1 now forwards: %v", r)
	}
	if f := forwarding(); f != "1" {
		t.Errorf("after apply turned enableIPForwarding on, nva1's ip_forward is %s, want 1", f)
	}
	if r := l.exec("ase1-w1", 20*time.Second, "nc", "-w", "5", "10.0.2.4", "1433"); !strings.Contains(r.stdout, "you are 10.0.1.6:") {
		t.Errorf("db1 did not answer ase1-w1 through the appliance nva1: %v", r)
	}
	r = emu(t, "apply", "--name", l.name, "-f", plain)
	if r.code != 0 || !strings.Contains(r.stdout, "nva1 IP forwarding: off") {
		t.Errorf("apply back to no appliance: want exit 0 and the change named, got %v", r)
	}
	if f := forwarding(); f != "0" {
		t.Errorf("after apply turned enableIPForwarding off, nva1's ip_forward is %s, want 0", f)
	}
}

// F18: user routes whose next hop cannot hold the destination drop, as in
// Azure, though nexthop names them: Internet for a VNet address, VnetLocal
// for an Internet one.
func TestRoutesThatStrand(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "strand.yaml", withRoutes("",
		`{name: VMsByInternet, addressPrefix: 10.0.2.0/24, nextHopType: Internet}`,
		`{name: EchoLocal, addressPrefix: 203.0.113.0/28, nextHopType: VnetLocal}`)...))
	if r := l.exec("ase1-w1", 20*time.Second, "ping", "-c", "1", "-W", "2", "10.0.2.4"); r.code == 0 {
		t.Errorf("db1 answered a ping routed to the Internet: %v", r)
	}
	l.curlFails("ase1-w1", "http://echo/")
	if nh := l.nexthop("ase1-w1", "10.0.2.4"); nh.Type != "Internet" || nh.Route != "VMsByInternet" {
		t.Errorf("nexthop to db1 = %+v, want Internet by VMsByInternet", nh)
	}
	if d := l.status().Drops["route-stranded"]; d < 2 {
		t.Errorf("status counts %d route-stranded drops, want at least the ping and the SYN", d)
	}
	// Routes elsewhere are untouched: azure-sql, outside both prefixes.
	if peer := l.peerSeen("ase1-w1", "203.0.113.20", 1433); peer != "192.23.1.2" {
		t.Errorf("azure-sql saw %s, want the VIP", peer)
	}
}

// Remote-region latency (F16, SPEC §3): in the default lab azure-storage
// is in a remote region, 40 ms away each way (RTT >= 80 ms), while echo is
// not; the dataplane delays the packets itself, so this holds on a kernel
// without netem too. apply takes the latency away at once.
func TestRemoteRegionLatency(t *testing.T) {
	l := upLab(t)
	rtt := func(host string) float64 {
		r := l.exec("ase1-w1", 20*time.Second, "ping", "-c", "3", "-i", "0.2", host)
		m := regexp.MustCompile(`= ([\d.]+)/[\d.]+/`).FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("ping %s: %v", host, r)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	if got := rtt("azure-storage"); got < 80 {
		t.Errorf("the shortest RTT to azure-storage in a remote region is %.1f ms, want >= 80", got)
	}
	if got := rtt("echo"); got >= 80 {
		t.Errorf("the shortest RTT to echo is %.1f ms: azure-storage's latency is applied to it", got)
	}
	if d := l.status().Drops["link-loss"]; d != 0 {
		t.Errorf("status counts %d link-loss drops on a link without loss", d)
	}
	local := writeTopology(t, "local.yaml", "    address: 203.0.113.30\n    region: remote\n", "    address: 203.0.113.30\n")
	if r := emu(t, "apply", "--name", l.name, "-f", local); r.code != 0 || !strings.Contains(r.stdout, "azure-storage latency") {
		t.Fatalf("apply without the region: want it to name azure-storage's latency, got %v", r)
	}
	if got := rtt("azure-storage"); got >= 80 {
		t.Errorf("after apply took the region away, the shortest RTT to azure-storage is %.1f ms", got)
	}
}

// F16, F18: a 0.0.0.0/0 route to an appliance that does not translate
// changes the ASE's NAT address as forced tunneling does: Azure gives a
// public address only to what leaves a NIC from that NIC's own address,
// so the worker's calls leave with the appliance's (its default outbound
// address here), Azure SQL sees that, and the ASE turns Unhealthy. They
// used to leave with the ASE's VIP and the ASE stayed Healthy. The fix is
// the one of F16, a 0.0.0.0/0 -> Internet route, which also brings the
// front-ends' answers to the Internet back from the appliance.
func TestApplianceDefaultRouteChangesNAT(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "nva-default.yaml", nvaDefaultRoute(`{name: AllToNVA, addressPrefix: 0.0.0.0/0, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}`)...))
	if r := l.exec("ase1-w1", 20*time.Second, "curl", "-s", "-m", "5", "http://echo/"); strings.TrimSpace(r.stdout) != "192.0.2.1" {
		t.Errorf("F18: through the appliance echo should see its default outbound address 192.0.2.1, not the VIP: %v", r)
	}
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Unhealthy", "Azure SQL sees the ASE as 192.0.2.1")) {
		t.Fatalf("F16: ase1 should be Unhealthy, Azure SQL seeing 192.0.2.1: %+v", l.ase("ase1"))
	}
	// The front-ends' answers to the Internet take the route too, and
	// leave the appliance untranslated back to the VIP: asymmetric
	// routing, so neither Azure management nor a client gets an answer.
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Unhealthy", "Azure management (azure-mgmt) cannot reach the VIP on 454")) {
		t.Errorf("F16: behind the appliance Azure management should not reach ase1's VIP: %+v", l.ase("ase1"))
	}
	l.curlFails("client", "http://app1.ase1.p.azurewebsites.net/")
	if d := l.status().Drops["asymmetric-route"]; d < 1 {
		t.Errorf("status counts %d asymmetric-route drops, want the front-ends' answers the appliance relayed", d)
	}
	fixed := writeTopology(t, "fixed.yaml", nvaDefaultRoute(`{name: DefaultToInternet, addressPrefix: 0.0.0.0/0, nextHopType: Internet}`)...)
	if r := emu(t, "apply", "--name", l.name, "-f", fixed); r.code != 0 {
		t.Fatalf("apply the 0.0.0.0/0 -> Internet route: %v", r)
	}
	if r := l.exec("ase1-w1", 20*time.Second, "curl", "-s", "-m", "5", "http://echo/"); strings.TrimSpace(r.stdout) != "192.23.1.2" {
		t.Errorf("F18: with 0.0.0.0/0 -> Internet echo should see the VIP 192.23.1.2 again, got %v", r)
	}
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Healthy", "")) {
		t.Fatalf("F16: after the fix ase1 should be Healthy: %+v", l.ase("ase1"))
	}
	if r := l.exec("client", 20*time.Second, "curl", "-s", "-m", "5", "http://app1.ase1.p.azurewebsites.net/?format=text"); !strings.Contains(r.stdout, "app1 on ase1-w") {
		t.Errorf("after the fix the client should reach app1 through the VIP: %v", r)
	}
}

// nvaDefaultRoute is the default lab with an appliance nva1 in its own
// subnet and the given routes on ase1-subnet.
func nvaDefaultRoute(routes ...string) []string {
	return append(withRoutes("", routes...),
		"      - name: ase3-subnet\n", "      - name: nva-subnet\n        addressPrefix: 10.0.5.0/24\n      - name: ase3-subnet\n",
		"    privateIPAddress: 10.0.2.4\n", "    privateIPAddress: 10.0.2.4\n  - name: nva1\n    subnet: nva-subnet\n    privateIPAddress: 10.0.5.4\n    enableIPForwarding: true\n")
}

// F11: Azure's VirtualNetwork tag takes in the on-premises address spaces
// the gateway connects, and Internet leaves them out. With vm-subnet's NSG
// denying Internet inbound, the corporate host still reaches db1 and db1
// answers it, where on-premises addresses used to count as Internet and
// the host was denied.
func TestOnPremisesIsVirtualNetwork(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "onprem-nsg.yaml", append(withRoutes(strings.Replace(onPremises, "advertiseDefaultRoute: true", "advertiseDefaultRoute: false", 1)),
		"        addressPrefix: 10.0.2.0/24\n", "        addressPrefix: 10.0.2.0/24\n        networkSecurityGroup: vm-nsg\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: vm-nsg
    securityRules:
      - {name: DenyInternetIn, priority: 100, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: Internet, destinationAddressPrefix: "*"}
      - {name: DenyInternetOut, priority: 100, direction: Outbound, access: Deny, protocol: "*", sourceAddressPrefix: "*", destinationAddressPrefix: Internet}
`)...))
	r := l.exec("corp-host", 20*time.Second, "nc", "-w", "5", "10.0.2.4", "1433")
	if !strings.Contains(r.stdout, "you are 172.16.1.10:") {
		t.Errorf("F11: the on-premises host should reach db1 through DenyInternetIn, as VirtualNetwork: %v", r)
	}
	var v struct {
		Allow    bool   `json:"allow"`
		Decision string `json:"decision"`
	}
	l.emuJSON(&v, "verify", "--from", "db1", "--to", "172.16.1.10:22")
	if !v.Allow || !strings.Contains(v.Decision, "AllowVnetOutBound") {
		t.Errorf("F11: verify db1 -> on-premises = %+v, want Allow by AllowVnetOutBound", v)
	}
	l.emuJSON(&v, "verify", "--from", "db1", "--to", "203.0.113.10:80")
	if v.Allow || !strings.Contains(v.Decision, "DenyInternetOut") {
		t.Errorf("verify db1 -> echo = %+v, want Deny by DenyInternetOut", v)
	}
}

// F3, F4: two VNets that are not peered are apart, as in Azure: a machine
// of one cannot reach the other's private addresses, and nexthop says
// None. Before, ase1-w1 reached a VM of vnet2 at its private address,
// untranslated although it lies outside ase1's VNet, and nexthop said
// Internet.
func TestVNetsAreApart(t *testing.T) {
	file := writeTopology(t, "two-vnets.yaml",
		"virtualMachines:\n", "virtualMachines:\n  - name: vm9\n    subnet: far-subnet\n    privateIPAddress: 10.9.1.4\n",
		"appServiceEnvironments:\n", "  - name: vnet2\n    addressSpace:\n      addressPrefixes: [10.9.0.0/16]\n    subnets:\n      - name: far-subnet\n        addressPrefix: 10.9.1.0/24\n\nappServiceEnvironments:\n")
	l := upLab(t, "-f", file)
	if r := l.exec("ase1-w1", 20*time.Second, "nc", "-v", "-w", "3", "10.9.1.4", "22"); r.code == 0 || !strings.Contains(r.stderr, "timed out") {
		t.Errorf("ase1-w1 -> vm9 (10.9.1.4) in the unpeered vnet2: want a time-out, got %v", r)
	}
	if r := l.exec("db1", 20*time.Second, "ping", "-c", "1", "-W", "2", "10.9.1.4"); r.code == 0 {
		t.Errorf("db1 pinged vm9 in the unpeered vnet2: %v", r)
	}
	// Nor its gateway, which the dataplane would answer as it answers vm9.
	if r := l.exec("vm9", 20*time.Second, "ping", "-c", "1", "-W", "2", "10.0.1.1"); r.code == 0 {
		t.Errorf("vm9 in vnet2 pinged vnet1's gateway 10.0.1.1: %v", r)
	}
	if nh := l.nexthop("ase1-w1", "10.9.1.4"); nh.Type != "None" || nh.Route != "System Route" {
		t.Errorf("nexthop from ase1-w1 to vm9 = %+v, want None by the System Route", nh)
	}
	if nh := l.nexthop("vm9", "10.0.1.6"); nh.Type != "None" {
		t.Errorf("nexthop from vm9 to ase1-w1 = %+v, want None", nh)
	}
	// The VIP is public: vm9 reaches app1 through it, from its default
	// outbound address.
	if a := l.app("vm9", "http://app1.ase1.p.azurewebsites.net/", ""); a.ForwardedFor != "192.0.2.1" {
		t.Errorf("vm9 -> app1 through the VIP: want X-Forwarded-For 192.0.2.1, got %+v", a)
	}
}
