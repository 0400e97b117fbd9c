package dataplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/topology"
)

// routedLab is the default lab with an on-premises network, an appliance
// in its own subnet, and a route table on ase1-subnet; onPremDefault makes
// the gateway advertise 0.0.0.0/0 (forced tunneling). edits are more
// replacement pairs, made after those (parseLab).
func routedLab(t *testing.T, onPremDefault bool, routes string, edits ...string) *topology.Topology {
	t.Helper()
	adv := "false"
	if onPremDefault {
		adv = "true"
	}
	return parseLab(t, append([]string{
		"        addressPrefix: 10.0.1.0/26\n", "        addressPrefix: 10.0.1.0/26\n        routeTable: ase1-rt\n",
		"      - name: ase3-subnet\n", "      - name: nva-subnet\n        addressPrefix: 10.0.5.0/24\n      - name: ase3-subnet\n",
		"    privateIPAddress: 10.0.2.4\n", "    privateIPAddress: 10.0.2.4\n  - name: nva1\n    subnet: nva-subnet\n    privateIPAddress: 10.0.5.4\n    enableIPForwarding: true\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups: []
routeTables:
  - name: ase1-rt
    routes:
` + routes + `
onPremises:
  addressSpace: {addressPrefixes: [172.16.0.0/16]}
  natAddress: 198.18.0.10
  advertiseDefaultRoute: ` + adv + `
  gateway: {name: corp-gw, address: 172.16.0.4}
  hosts: [{name: corp-host, address: 172.16.1.10}]
`}, edits...)...)
}

// F18: longest prefix wins, a user route beats a system route of the same
// prefix, and every next hop type is reported as nexthop shows it.
func TestRouteSelection(t *testing.T) {
	l := newLabFrom(t, routedLab(t, true, `      - {name: SQLDirect, addressPrefix: 203.0.113.20/32, nextHopType: Internet}
      - {name: ToNVA, addressPrefix: 10.0.2.0/24, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}
      - {name: Blackhole, addressPrefix: 203.0.113.128/25, nextHopType: None}
      - {name: Local, addressPrefix: 10.0.3.0/24, nextHopType: VnetLocal}`), nil)
	for _, c := range []struct {
		to, typ, ip, route string
	}{
		{"203.0.113.10", topology.NextHopVNG, "", "System Route"},        // the gateway's 0.0.0.0/0 (forced tunneling)
		{"203.0.113.20", topology.NextHopInternet, "", "SQLDirect"},      // a longer user route
		{"10.0.2.4", topology.NextHopAppliance, "10.0.5.4", "ToNVA"},     // user /24 over the VNet's /16
		{"203.0.113.200", topology.NextHopNone, "", "Blackhole"},         //
		{"10.0.3.4", topology.NextHopVnetLocal, "", "Local"},             //
		{"10.0.4.4", topology.NextHopVnetLocal, "", "System Route"},      // the VNet
		{"172.16.1.10", topology.NextHopVNG, "", "System Route"},         // on-premises
		{"168.63.129.16", topology.NextHopVnetLocal, "", "System Route"}, // the platform, whatever the routes
	} {
		nh, err := l.e.NextHop("ase1-w1", netip.MustParseAddr(c.to))
		if err != nil || nh.Type != c.typ || nh.IPAddress != c.ip || nh.Route != c.route {
			t.Errorf("nexthop ase1-w1 -> %s = %+v, want %s %s by %s", c.to, nh, c.typ, c.ip, c.route)
		}
	}
	// A user route of the very prefix of a system route replaces it.
	l2 := newLabFrom(t, routedLab(t, true, `      - {name: DefaultToInternet, addressPrefix: 0.0.0.0/0, nextHopType: Internet}`), nil)
	if nh, _ := l2.e.NextHop("ase1-w1", netip.MustParseAddr("203.0.113.10")); nh.Type != topology.NextHopInternet || nh.Route != "DefaultToInternet" {
		t.Errorf("user 0.0.0.0/0 should beat the gateway's: %+v", nh)
	}
	// The more specific on-premises prefix still goes on-premises.
	if nh, _ := l2.e.NextHop("ase1-w1", netip.MustParseAddr("172.16.1.10")); nh.Type != topology.NextHopVNG {
		t.Errorf("on-premises under a user 0.0.0.0/0 should still go to the gateway: %+v", nh)
	}
	// Other subnets keep the system routes.
	if nh, _ := l.e.NextHop("db1", netip.MustParseAddr("203.0.113.20")); nh.Type != topology.NextHopVNG || nh.Route != "System Route" {
		t.Errorf("db1's subnet has no user routes: %+v", nh)
	}
	// Only a machine in a subnet has routes to read.
	if _, err := l.e.NextHop("client", netip.MustParseAddr("10.0.1.6")); err == nil || !strings.Contains(err.Error(), "not in a VNet") {
		t.Errorf("nexthop from the Internet host client: %v, want an error saying it is not in a VNet", err)
	}
	if _, err := l.e.NextHop("nobody", netip.MustParseAddr("10.0.1.6")); !errors.Is(err, ErrNoNode) {
		t.Errorf("nexthop from a node the lab lacks: %v, want ErrNoNode", err)
	}
	// What trace shows of a packet from outside the VNets: the Internet
	// for a host there; on-premises, the gateway to all but the on-premises
	// network's own addresses.
	s := l.e.cur.Load()
	for _, c := range []struct {
		from, to string
		want     NextHop
	}{
		{"client", "10.0.1.6", NextHop{Type: topology.NextHopInternet, Route: "System Route"}},
		{"corp-host", "10.0.2.4", NextHop{Type: "on-premises", IPAddress: "172.16.0.4", Route: "gateway corp-gw"}},
		{"corp-host", "203.0.113.10", NextHop{Type: "on-premises", IPAddress: "172.16.0.4", Route: "gateway corp-gw"}},
		{"corp-host", "172.16.0.4", NextHop{Type: "on-premises", Route: "direct", Prefix: "172.16.0.0/16"}},
		{"corp-gw", "10.0.2.4", NextHop{Type: "on-premises", Route: "gateway corp-gw"}},
	} {
		if got := s.nextHop(s.topo.NodeByName(c.from), netip.MustParseAddr(c.to)); got != c.want {
			t.Errorf("the hop of a packet from %s to %s = %+v, want %+v", c.from, c.to, got, c.want)
		}
	}
}

// F16: forced tunneling sends the ASE's Internet traffic out with the
// on-premises NAT address; on-premises hosts see private addresses.
func TestForcedTunnelingPath(t *testing.T) {
	l := newLabFrom(t, routedLab(t, true, `      - {name: Unused, addressPrefix: 192.0.2.0/24, nextHopType: None}`), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 45000, "203.0.113.10", 80, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["echo"].recv(t)); src != "198.18.0.10" {
		t.Fatalf("forced-tunnelled flow left as %s, want the on-premises NAT address 198.18.0.10", src)
	}
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 45001, "172.16.1.10", 22, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["corp-host"].recv(t)); src != "10.0.1.6" {
		t.Fatalf("on-premises host saw %s, want the worker's own 10.0.1.6", src)
	}
}

// None drops and counts; a VirtualAppliance route hands the packet,
// untranslated, to the appliance, and what the appliance sends back is
// delivered.
func TestRouteNoneAndAppliance(t *testing.T) {
	l := newLabFrom(t, routedLab(t, false, `      - {name: ToNVA, addressPrefix: 10.0.2.0/24, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}
      - {name: Blackhole, addressPrefix: 203.0.113.128/25, nextHopType: None}`), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 45100, "203.0.113.200", 80, true, false))
	l.expectDrops(t, DropRouteNone, 1)

	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 45101, "10.0.2.4", 1433, true, false))
	src, _, dst, _, _ := tcpOf(t, l.devs["nva1"].recv(t))
	if src != "10.0.1.6" || dst != "10.0.2.4" {
		t.Fatalf("the appliance got %s -> %s, want the packet unchanged: 10.0.1.6 -> 10.0.2.4", src, dst)
	}
	// The appliance forwards it back in; it reaches db1 from the worker.
	pkt := tcpPkt(t, "10.0.1.6", 45101, "10.0.2.4", 1433, true, false)
	l.devs["nva1"].inject(nil, pkt)
	if src, _, _, _, _ := tcpOf(t, l.devs["db1"].recv(t)); src != "10.0.1.6" {
		t.Fatalf("db1 saw %s, want 10.0.1.6", src)
	}
}

// A DF packet too big for the appliance's link gets frag-needed, as on any
// other egress: path MTU discovery works through a virtual appliance.
func TestApplianceFragNeeded(t *testing.T) {
	l := newLabFrom(t, routedLab(t, false, `      - {name: ToNVA, addressPrefix: 10.0.2.0/24, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}`),
		map[string]int{"nva1": 1400})
	l.devs["ase1-w1"].inject(nil, tcpSYN(t, "10.0.1.6", "10.0.2.4", 64, 1400)) // 1440 bytes, DF
	icmp := icmpError(t, l.devs["ase1-w1"].recv(t), header.ICMPDestUnreachable, header.ICMPFragNeeded, "10.0.1.1", "10.0.2.4")
	if icmp.Seq != 1400 {
		t.Fatalf("frag-needed carries MTU %d, want 1400", icmp.Seq)
	}
	l.devs["nva1"].expectNothing(t)
}

// F14, F18: the way to an appliance meets the sender's outbound NSG (and
// the appliance's inbound one) like any other flow. It used to pass
// around them: a flow the sender's NSG denies reached the appliance,
// which forwarded it on, while verify said Deny. The rules judge new flows
// only (F12): a reply that the route takes through the appliance passes
// whatever the sender's outbound rules, since its flow was allowed.
func TestApplianceMeetsSenderNSG(t *testing.T) {
	l := newLabFrom(t, routedLab(t, false, `      - {name: ToNVA, addressPrefix: 10.0.2.0/24, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}`,
		"        routeTable: ase1-rt\n", "        routeTable: ase1-rt\n        networkSecurityGroup: ase1-nsg\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: ase1-nsg
    securityRules:
      - {name: DenySQLToVMs, priority: 100, direction: Outbound, access: Deny, protocol: Tcp,
         destinationAddressPrefix: 10.0.2.0/24, destinationPortRange: "1433"}
`), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 45200, "10.0.2.4", 1433, true, false))
	l.devs["nva1"].expectNothing(t)
	l.expectDrops(t, DropNSGOutbound, 1)
	if n, _ := l.e.cur.Load().nsgs.Hits("ase1-nsg", nsg.Outbound, "DenySQLToVMs"); n != 1 {
		t.Errorf("DenySQLToVMs hits = %d, want 1", n)
	}

	// Another port passes the rules, through the appliance.
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 45201, "10.0.2.4", 22, true, false))
	if src, _, dst, _, _ := tcpOf(t, l.devs["nva1"].recv(t)); src != "10.0.1.6" || dst != "10.0.2.4" {
		t.Fatalf("the appliance got %s -> %s, want 10.0.1.6 -> 10.0.2.4", src, dst)
	}

	// db1 connects to the worker on 1433 directly (vm-subnet has no
	// routes); the worker's answer matches the deny rule's tuple, and the
	// route takes it to the appliance: it passes, being a reply.
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 45202, "10.0.1.6", 1433, true, false))
	tcpOf(t, l.devs["ase1-w1"].recv(t))
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 1433, "10.0.2.4", 45202, true, true))
	if src, sport, _, _, _ := tcpOf(t, l.devs["nva1"].recv(t)); src != "10.0.1.6" || sport != 1433 {
		t.Fatalf("the appliance got the reply from %s:%d, want 10.0.1.6:1433", src, sport)
	}
	l.devs["nva1"].inject(nil, tcpPkt(t, "10.0.1.6", 1433, "10.0.2.4", 45202, true, true))
	if src, _, _, _, tcp := tcpOf(t, l.devs["db1"].recv(t)); src != "10.0.1.6" || !tcp.SYN || !tcp.ACK {
		t.Fatalf("db1 got %s, SYN %v ACK %v; want the worker's SYN-ACK", src, tcp.SYN, tcp.ACK)
	}
	l.expectDrops(t, DropNSGOutbound, 1)
}

// F18: a user route whose next hop cannot hold its destination drops the
// packet, as Azure does: Internet for a VNet or on-premises address,
// VnetLocal for one outside the VNet. Such routes were shown by nexthop
// and then ignored, the packet delivered as if by the system routes.
func TestRouteStrandsOnTheWrongSide(t *testing.T) {
	l := newLabFrom(t, routedLab(t, false, `      - {name: VMsByInternet, addressPrefix: 10.0.2.0/24, nextHopType: Internet}
      - {name: CorpByInternet, addressPrefix: 172.16.1.0/24, nextHopType: Internet}
      - {name: EchoLocal, addressPrefix: 203.0.113.0/28, nextHopType: VnetLocal}
      - {name: SQLByInternet, addressPrefix: 203.0.113.16/28, nextHopType: Internet}
      - {name: ASE2Local, addressPrefix: 10.0.3.0/24, nextHopType: VnetLocal}
      - {name: AzureLocal, addressPrefix: 168.63.0.0/16, nextHopType: VnetLocal}`), nil)
	w1 := l.devs["ase1-w1"]
	for i, to := range []string{"10.0.2.4", "172.16.1.10", "203.0.113.10"} {
		w1.inject(nil, tcpPkt(t, "10.0.1.6", uint16(45300+i), to, 80, true, false))
	}
	l.devs["db1"].expectNothing(t)
	l.devs["corp-host"].expectNothing(t)
	l.devs["echo"].expectNothing(t)
	l.expectDrops(t, DropRouteStranded, 3)

	// The same next hops where the destination is: delivered.
	w1.inject(nil, tcpPkt(t, "10.0.1.6", 45310, "203.0.113.20", 1433, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["azure-sql"].recv(t)); src != "192.23.1.2" {
		t.Errorf("azure-sql saw %s by an Internet route, want the VIP 192.23.1.2", src)
	}
	w1.inject(nil, tcpPkt(t, "10.0.1.6", 45311, "10.0.3.6", 80, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["ase2-w1"].recv(t)); src != "10.0.1.6" {
		t.Errorf("ase2-w1 saw %s by a VnetLocal route, want 10.0.1.6", src)
	}
	// The platform, outside the VNet, is reached whatever the routes.
	w1.inject(nil, icmpEcho(t, "10.0.1.6", "168.63.129.16"))
	checkIPv4(t, l.devs["platform"].recv(t))
	l.expectDrops(t, DropRouteStranded, 3)
}

// F16, F18: Azure translates to a public address only the private address
// of the NIC a packet leaves by, so what an appliance forwards to the
// Internet leaves with the appliance's outbound address, never with the
// VIP of the ASE that sent it: a 0.0.0.0/0 route to an appliance changes
// the ASE's NAT address, as forced tunneling does. It used to leave with
// the worker's VIP, so Azure SQL saw the VIP and the ASE stayed Healthy.
func TestApplianceTrafficLeavesWithItsOwnAddress(t *testing.T) {
	l := newLabFrom(t, routedLab(t, false, `      - {name: AllToNVA, addressPrefix: 0.0.0.0/0, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}`), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 45400, "203.0.113.20", 1433, true, false))
	if src, _, dst, _, _ := tcpOf(t, l.devs["nva1"].recv(t)); src != "10.0.1.6" || dst != "203.0.113.20" {
		t.Fatalf("the appliance got %s -> %s, want the worker's packet unchanged", src, dst)
	}
	l.devs["nva1"].inject(nil, tcpPkt(t, "10.0.1.6", 45400, "203.0.113.20", 1433, true, false))
	src, sport, _, _, _ := tcpOf(t, l.devs["azure-sql"].recv(t))
	if src != "192.0.2.1" {
		t.Fatalf("azure-sql saw %s through the appliance, want the appliance's default outbound address 192.0.2.1, not the VIP 192.23.1.2", src)
	}
	// The answer finds its way back to the worker.
	l.devs["azure-sql"].inject(nil, tcpPkt(t, "203.0.113.20", 1433, src, sport, true, true))
	if _, _, dst, dport, _ := tcpOf(t, l.devs["ase1-w1"].recv(t)); dst != "10.0.1.6" || dport != 45400 {
		t.Fatalf("the answer reached the worker as %s:%d, want 10.0.1.6:45400", dst, dport)
	}
}

// F16, F18: with 0.0.0.0/0 routed to an appliance, a front-end's answer to
// an Internet client goes to the appliance, and what the appliance sends
// on leaves its own NIC, which Azure translates to the appliance's address,
// not back to the VIP the client called: the client never gets its answer
// (asymmetric routing, why an ASE's inbound management breaks behind such
// a route). The dataplane used to find the flow by its tuple wherever the
// packet came from and translate it back to the VIP, so it worked. The
// appliance's own flows keep working both ways.
func TestApplianceBreaksVIPAnswers(t *testing.T) {
	l := newLabFrom(t, routedLab(t, false, `      - {name: AllToNVA, addressPrefix: 0.0.0.0/0, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.5.4}`), nil)
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 45500, "192.23.1.2", 80, true, false))
	var fe string
	select {
	case <-time.After(2 * time.Second):
		t.Fatal("the SYN to the VIP reached no front-end")
	case <-l.devs["ase1-fe1"].out:
		fe = "ase1-fe1"
	case <-l.devs["ase1-fe2"].out:
		fe = "ase1-fe2"
	}
	feAddr := l.e.cur.Load().topo.NodeByName(fe).Addr.String()
	syn := tcpPkt(t, feAddr, 80, "198.51.100.10", 45500, true, true)
	l.devs[fe].inject(nil, syn)
	if src, _, dst, _, _ := tcpOf(t, l.devs["nva1"].recv(t)); src != feAddr || dst != "198.51.100.10" {
		t.Fatalf("the appliance got %s -> %s, want the front-end's answer unchanged", src, dst)
	}
	l.devs["nva1"].inject(nil, syn)
	l.devs["client"].expectNothing(t)
	l.expectDrops(t, DropAsymmetric, 1)

	// The worker's call through the appliance leaves and comes back, and
	// its next packet, through the appliance again, goes on.
	l.devs["nva1"].inject(nil, tcpPkt(t, "10.0.1.6", 45501, "203.0.113.10", 80, true, false))
	src, sport, _, _, _ := tcpOf(t, l.devs["echo"].recv(t))
	l.devs["echo"].inject(nil, tcpPkt(t, "203.0.113.10", 80, src, sport, true, true))
	tcpOf(t, l.devs["ase1-w1"].recv(t))
	l.devs["nva1"].inject(nil, tcpPkt(t, "10.0.1.6", 45501, "203.0.113.10", 80, false, true))
	if s, _, _, _, _ := tcpOf(t, l.devs["echo"].recv(t)); s != src {
		t.Fatalf("the worker's second packet reached echo from %s, want %s as its first", s, src)
	}
	l.expectDrops(t, DropAsymmetric, 1)
}

// VNets are apart (no peering), their gateways too: vm9 in vnet2 pinged
// ase1-subnet's gateway 10.0.1.1 and got an answer, though it has no route
// to any address of vnet1. Its own gateway still answers.
func TestGatewayOfAnotherVNetOutOfReach(t *testing.T) {
	l := newLabFrom(t, parseLab(t,
		"virtualMachines:\n", "virtualMachines:\n  - name: vm9\n    subnet: far-subnet\n    privateIpAddress: 10.9.1.4\n",
		"appServiceEnvironments:\n", "  - name: vnet2\n    addressSpace:\n      addressPrefixes: [10.9.0.0/16]\n    subnets:\n      - name: far-subnet\n        addressPrefix: 10.9.1.0/24\n\nappServiceEnvironments:\n"), nil)
	l.devs["vm9"].inject(nil, icmpEcho(t, "10.9.1.4", "10.0.1.1"))
	l.devs["vm9"].expectNothing(t)
	l.expectDrops(t, DropRouteNone, 1)
	l.devs["vm9"].inject(nil, icmpEcho(t, "10.9.1.4", "10.9.1.1"))
	if ip := checkIPv4(t, l.devs["vm9"].recv(t)); ip.SrcIP.String() != "10.9.1.1" {
		t.Fatalf("vm9's ping of its own gateway answered from %v", ip.SrcIP)
	}
	if r, err := l.e.Verify(VerifyQuery{From: "vm9", To: netip.MustParseAddr("10.0.1.1"), Proto: header.ProtoICMP}); err != nil || r.Allow || r.Reason != "route-none" {
		t.Errorf("verify vm9 -> 10.0.1.1: %+v, %v; want denied, route-none", r, err)
	}
}
