package topology

import (
	"strings"
	"testing"
	"time"
)

// F16, F18: route tables, the on-premises network and latency, as a file
// gives them.
func TestRoutesOnPremisesAndLatency(t *testing.T) {
	top := mustParse(t, y(
		"virtualNetworks:",
		"  - name: vn",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: s1, addressPrefix: 10.0.1.0/24, routeTable: rt}",
		"      - {name: s2, addressPrefix: 10.0.2.0/24}",
		"virtualMachines:",
		"  - {name: nva, subnet: s2, privateIpAddress: 10.0.2.4, enableIPForwarding: true}",
		"internetHosts:",
		"  - {name: far, address: 203.0.113.30, region: remote}",
		"  - {name: slow, address: 203.0.113.31, latency: {delay: 10ms, jitter: 1ms, loss: 0.5, rate: 100mbit}}",
		"routeTables:",
		"  - name: rt",
		"    routes:",
		"      - {name: ToInternet, addressPrefix: 0.0.0.0/0, nextHopType: internet}",
		"      - name: ViaNVA",
		"        properties: {addressPrefix: 10.0.3.0/24, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.2.4}",
		"      - {name: Sink, addressPrefix: 192.0.2.0/24, nextHopType: None}",
		"onPremises:",
		"  addressSpace: {addressPrefixes: [172.16.0.0/16]}",
		"  natAddress: 198.18.0.10",
		"  advertiseDefaultRoute: true",
		"  gateway: {name: corp-gw, address: 172.16.0.4}",
		"  hosts: [{name: corp-host, address: 172.16.1.10}]",
	))
	rt := top.SubnetByName("s1").RouteTable
	if rt == nil || len(rt.Routes) != 3 || rt.Routes[0].NextHop != NextHopInternet || rt.Routes[1].NextHopIP.String() != "10.0.2.4" {
		t.Fatalf("s1's route table = %+v", rt)
	}
	if top.SubnetByName("s2").RouteTable != nil {
		t.Errorf("s2 has a route table it was not given")
	}
	if !top.NodeByName("nva").IPForwarding {
		t.Errorf("nva does not forward")
	}
	if l := top.NodeByName("far").Latency; l.Delay != 40*time.Millisecond {
		t.Errorf("region remote gave %+v, want 40 ms", l)
	}
	if l := top.NodeByName("slow").Latency; l.Delay != 10*time.Millisecond || l.Jitter != time.Millisecond || l.Loss != 0.5 || l.Rate != 100e6 {
		t.Errorf("latency = %+v", l)
	}
	o := top.OnPremises
	if o == nil || !o.AdvertiseDefaultRoute || o.NATAddress.String() != "198.18.0.10" || o.Gateway.Name != "corp-gw" || len(o.Hosts) != 1 {
		t.Fatalf("onPremises = %+v", o)
	}
	if h := top.NodeByName("corp-host"); h == nil || h.Kind != NodeOnPrem || h.Gateway.String() != "172.16.1.1" {
		t.Errorf("corp-host = %+v", h)
	}
}

func TestRouteErrors(t *testing.T) {
	sub := func(extra string) []string {
		return []string{
			"virtualNetworks:",
			"  - name: vn",
			"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
			"    subnets:",
			"      - {name: s1, addressPrefix: 10.0.1.0/24, routeTable: rt}",
			"virtualMachines:",
			"  - {name: vm, subnet: s1, privateIpAddress: 10.0.1.4}",
			"routeTables:",
			"  - name: rt",
			"    routes:",
			extra,
		}
	}
	runErrCases(t, []errCase{
		{"bad next hop type", y(sub("      - {name: r, addressPrefix: 0.0.0.0/0, nextHopType: Gateway}")), 11, "routeTables[0].routes[0].nextHopType", "not", false},
		{"appliance without address", y(sub("      - {name: r, addressPrefix: 0.0.0.0/0, nextHopType: VirtualAppliance}")), 11, "routeTables[0].routes[0].nextHopType", "needs a nextHopIpAddress", false},
		{"appliance that does not forward", y(sub("      - {name: r, addressPrefix: 0.0.0.0/0, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.1.4}")), 11, "routeTables[0].routes[0].nextHopIpAddress", "enableIPForwarding", false},
		{"appliance that is no VM", y(sub("      - {name: r, addressPrefix: 0.0.0.0/0, nextHopType: VirtualAppliance, nextHopIpAddress: 10.0.1.9}")), 11, "routeTables[0].routes[0].nextHopIpAddress", "no VM", false},
		// An appliance in another VNet has no direct connectivity, which
		// Azure calls an invalid route; the VNets are not peered, yet the
		// lab came up and carried packets across through it.
		{"appliance in another VNet", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/24, routeTable: rt}", "  - name: wn", "    addressSpace: {addressPrefixes: [10.1.0.0/16]}", "    subnets: [{name: t1, addressPrefix: 10.1.1.0/24}]", "virtualMachines: [{name: fw, subnet: t1, privateIpAddress: 10.1.1.4, enableIPForwarding: true}]", "routeTables: [{name: rt, routes: [{name: r, addressPrefix: 0.0.0.0/0, nextHopType: VirtualAppliance, nextHopIpAddress: 10.1.1.4}]}]"), 10, "routeTables[0].routes[0].nextHopIpAddress", "VM fw (10.1.1.4) is in VNet wn, but route table rt is on subnet s1 of VNet vn", false},
		{"address on a non-appliance", y(sub("      - {name: r, addressPrefix: 0.0.0.0/0, nextHopType: Internet, nextHopIpAddress: 10.0.1.4}")), 11, "routeTables[0].routes[0].nextHopIpAddress", "only nextHopType VirtualAppliance", false},
		{"gateway without on-premises", y(sub("      - {name: r, addressPrefix: 0.0.0.0/0, nextHopType: VirtualNetworkGateway}")), 11, "routeTables[0].routes[0].nextHopType", "needs an onPremises", false},
		{"duplicate prefix", y(sub("      - {name: a, addressPrefix: 0.0.0.0/0, nextHopType: Internet}"), "      - {name: b, addressPrefix: 0.0.0.0/0, nextHopType: None}"), 12, "routeTables[0].routes[1].addressPrefix", "already used", false},
		{"unknown route table", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/24, routeTable: nope}"), 5, "virtualNetworks[0].subnets[0].routeTable", "no routeTables entry", false},
		// The table is there, under a name refused: the subnet's reference
		// to it is no second error (as with an NSG's).
		{"route table with a bad name", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/24, routeTable: 'r t'}", "routeTables: [{name: 'r t', routes: []}]"), 6, "routeTables[0].name", "not a valid route table name", false},
		{"unknown region", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, region: mars}]"), 6, "internetHosts[0].region", "unknown region", false},
		{"bad rate", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {rate: fast}}]"), 6, "internetHosts[0].latency.rate", "not a rate", false},
		// Each of these was accepted, meaning something the file does not
		// say: "5abc" was 5%, NaN and Inf no loss or no limit, and a rate
		// under 1 bit/s no limit at all.
		{"loss with trailing text", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {loss: 5abc}}]"), 6, "internetHosts[0].latency.loss", `"5abc" is not a loss percentage`, false},
		{"loss NaN", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {loss: NaN}}]"), 6, "internetHosts[0].latency.loss", `"NaN" is not a loss percentage`, false},
		{"loss nan%", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {loss: nan%}}]"), 6, "internetHosts[0].latency.loss", "not a loss percentage", false},
		{"rate Inf", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {rate: infmbit}}]"), 6, "internetHosts[0].latency.rate", `"infmbit" is not a rate`, false},
		{"rate NaN", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {rate: nanmbit}}]"), 6, "internetHosts[0].latency.rate", "not a rate", false},
		{"rate under 1 bit/s", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {rate: 0.0000001bit}}]"), 6, "internetHosts[0].latency.rate", "not a rate from 1bit to 1000gbit", false},
		{"rate past a uint64", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: {rate: 1e30gbit}}]"), 6, "internetHosts[0].latency.rate", "not a rate from 1bit to 1000gbit", false},
		{"on-premises overlaps the VNet", y(vnet, "onPremises: {addressSpace: {addressPrefixes: [10.0.0.0/8]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 10.1.0.4}}"), 6, "onPremises.addressSpace.addressPrefixes[0]", "overlaps VNet", false},
		// The space was refused, so whether the gateway lies in it cannot
		// be said: "outside the on-premises address space []" would point
		// at an address that is right.
		{"on-premises bad prefix, host inside it", y(vnet, "onPremises: {addressSpace: {addressPrefixes: [172.16.0.0/16, 10.0.0.0/8]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 10.1.0.4}}"), 6, "onPremises.addressSpace.addressPrefixes[1]", "overlaps VNet", false},
		// What the Internet must reach cannot be on premises, as it cannot
		// be in a VNet. Each came up: the Internet's packets to the VIP or
		// the public IP were dropped (internet-to-private), and an Internet
		// host there could not be reached from the Internet.
		{"VIP on premises", y(vnet, aseX, "onPremises: {addressSpace: {addressPrefixes: [192.23.0.0/16]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 192.23.9.4}}"), 10, "appServiceEnvironments[0].virtualIp", "192.23.1.2 lies inside the on-premises address space (192.23.0.0/16); a virtualIp must lie outside every VNet and the on-premises network", false},
		{"public IP on premises", y(vnet, "virtualMachines: [{name: m, subnet: s1, publicIpAddress: 172.16.7.7}]", "onPremises: {addressSpace: {addressPrefixes: [172.16.0.0/16]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 172.16.0.4}}"), 6, "virtualMachines[0].publicIpAddress", "lies inside the on-premises address space", false},
		{"Internet host on premises", y(vnet, "internetHosts: [{name: h, address: 172.16.1.20}]", "onPremises: {addressSpace: {addressPrefixes: [172.16.0.0/16]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 172.16.0.4}}"), 6, "internetHosts[0].address", "172.16.1.20 is on network 172.16.1.0/24, which overlaps the on-premises address space (172.16.0.0/16)", false},
		{"Internet host's /24 across on premises", y(vnet, "internetHosts: [{name: h, address: 172.16.1.20}]", "onPremises: {addressSpace: {addressPrefixes: [172.16.1.128/25]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 172.16.1.132}}"), 6, "internetHosts[0].address", "overlaps the on-premises address space (172.16.1.128/25)", false},
		// Each was accepted: with 0/8 or 224/4 up failed once it had begun
		// (exit 1, no default route), and with 127/8 a VM's ping to a host
		// there was answered by its own loopback.
		{"on-premises on loopback", y(vnet, "onPremises: {addressSpace: {addressPrefixes: [127.0.0.0/8]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 127.0.0.4}}"), 6, "onPremises.addressSpace.addressPrefixes[0]", "127.0.0.0/8 overlaps 127.0.0.0/8 (loopback), which the on-premises network cannot use", false},
		{"on-premises on multicast", y(vnet, "onPremises: {addressSpace: {addressPrefixes: [172.16.0.0/16, 230.0.0.0/8]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 172.16.0.4}}"), 6, "onPremises.addressSpace.addressPrefixes[1]", "(multicast), which the on-premises network cannot use", false},
		{"on-premises on this network", y(vnet, "onPremises: {addressSpace: {addressPrefixes: [0.0.0.0/8]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 0.0.0.4}}"), 6, "onPremises.addressSpace.addressPrefixes[0]", "which the on-premises network cannot use", false},
		{"on-premises host outside", y(vnet, "onPremises: {addressSpace: {addressPrefixes: [172.16.0.0/16]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 172.17.0.4}}"), 6, "onPremises.gateway.address", "outside the on-premises", false},
	})
}

// The forms of loss and rate a user writes, as tc's netem and tbf take
// them, are read as meant.
func TestLatencyForms(t *testing.T) {
	for _, c := range []struct {
		latency string
		loss    float64
		rate    uint64
	}{
		{"{loss: 5}", 5, 0},
		{"{loss: 0.5%}", 0.5, 0},
		{"{loss: '2.5 %'}", 2.5, 0},
		{"{loss: 100}", 100, 0},
		{"{rate: 10mbit}", 0, 10e6},
		{"{rate: 1.5Gbit}", 0, 1.5e9},
		{"{rate: '10 mbit'}", 0, 10e6},
		{"{rate: 1e3kbit}", 0, 1e6},
		{"{rate: 1bit}", 0, 1},
	} {
		top := mustParse(t, y(vnet, "internetHosts: [{name: h, address: 20.0.0.5, latency: "+c.latency+"}]"))
		if l := top.NodeByName("h").Latency; l.Loss != c.loss || l.Rate != c.rate {
			t.Errorf("latency %s = loss %g, rate %d; want loss %g, rate %d", c.latency, l.Loss, l.Rate, c.loss, c.rate)
		}
	}
}

// An on-premises network of link-local or reserved addresses, which a VNet
// cannot use, works in a lab and stays allowed.
func TestOnPremisesOddRangesThatWork(t *testing.T) {
	for _, space := range []string{"169.254.0.0/16", "240.0.0.0/4"} {
		gw := strings.TrimSuffix(strings.Split(space, "/")[0], "0") + "4"
		mustParse(t, y(vnet, "onPremises: {addressSpace: {addressPrefixes: ["+space+"]}, natAddress: 198.18.0.10, gateway: {name: gw, address: "+gw+"}}"))
	}
}
