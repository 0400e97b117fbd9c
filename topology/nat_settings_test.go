package topology

import (
	"testing"
	"time"
)

// F17: the defaults, and settings given in the file.
func TestNATSettings(t *testing.T) {
	d := Default()
	if d.Conntrack != DefaultConntrack || d.Conntrack.IdleTimeout != 4*time.Minute ||
		d.Conntrack.FinTimeout != 240*time.Second || d.Conntrack.RstTimeout != 15*time.Second {
		t.Errorf("default conntrack = %+v, want F17's 4 min idle, 240 s FIN, 15 s RST", d.Conntrack)
	}
	if d.DefaultOutbound != DefaultOutboundAddr {
		t.Errorf("default outbound address = %v, want %v", d.DefaultOutbound, DefaultOutboundAddr)
	}
	for _, a := range d.ASEs {
		if a.SNATPorts != DefaultSNATPorts || a.PortsPerInstance != 1024 {
			t.Errorf("%s: SNAT pool %v, %d ports a machine; want %v, 1,024", a.Name, a.SNATPorts, a.PortsPerInstance, DefaultSNATPorts)
		}
	}

	top, err := Parse("lab.yaml", []byte(y(vnet, aseX,
		"    snatPortRange: 50000-50009",
		"    allocatedOutboundPorts: 2",
		"connectionTracking:",
		"  maxFlows: 1000",
		"  idleTimeout: 30s",
		"  finTimeout: 10",
		"  rstTimeout: 1m",
		"defaultOutboundAddress: 20.1.2.3",
	)))
	if err != nil {
		t.Fatal(err)
	}
	want := Conntrack{MaxFlows: 1000, IdleTimeout: 30 * time.Second, FinTimeout: 10 * time.Second, RstTimeout: time.Minute}
	if top.Conntrack != want {
		t.Errorf("conntrack = %+v, want %+v", top.Conntrack, want)
	}
	if a := top.ASEs[0]; a.SNATPorts != (PortRange{50000, 50009}) || a.PortsPerInstance != 2 {
		t.Errorf("snatPortRange = %v, allocatedOutboundPorts = %d; want 50000-50009, 2", a.SNATPorts, a.PortsPerInstance)
	}
	if top.DefaultOutbound.String() != "20.1.2.3" {
		t.Errorf("defaultOutboundAddress = %v", top.DefaultOutbound)
	}
}

func TestNATSettingErrors(t *testing.T) {
	cases := []errCase{
		{"snat port 0", y(vnet, aseX, "    snatPortRange: 0-10"), 11, "appServiceEnvironments[0].snatPortRange", "port 0", false},
		{"snat range reversed", y(vnet, aseX, "    snatPortRange: 2000-1000"), 11, "appServiceEnvironments[0].snatPortRange", "starts above its end", false},
		{"fewer ports than machines", y(vnet, aseX, "    snatPortRange: 50000-50002"), 11, "appServiceEnvironments[0].snatPortRange", "fewer than the 4 machines", false},
		{"shares too big", y(vnet, aseX, "    snatPortRange: 50000-50009", "    allocatedOutboundPorts: 3"), 12, "appServiceEnvironments[0].allocatedOutboundPorts", "make 12, more than the 10", false},
		{"share of 0", y(vnet, aseX, "    allocatedOutboundPorts: 0"), 11, "appServiceEnvironments[0].allocatedOutboundPorts", "out of range", false},
		{"share over Azure's limit", y(vnet, aseX, "    allocatedOutboundPorts: 64001"), 11, "appServiceEnvironments[0].allocatedOutboundPorts", "out of range", false},
		{"maxFlows too small", y(vnet, "connectionTracking: {maxFlows: 1}"), 6, "connectionTracking.maxFlows", "out of range", false},
		{"bad duration", y(vnet, "connectionTracking: {idleTimeout: soon}"), 6, "connectionTracking.idleTimeout", "expected a duration", false},
		{"duration too short", y(vnet, "connectionTracking: {rstTimeout: 10ms}"), 6, "connectionTracking.rstTimeout", "out of range", false},
		{"unknown conntrack field", y(vnet, "connectionTracking: {udpTimeout: 30}"), 6, "connectionTracking.udpTimeout", "unknown field", false},
		{"default outbound inside the VNet", y(vnet, "defaultOutboundAddress: 10.0.9.9"), 6, "defaultOutboundAddress", "inside", false},
		{"default outbound taken", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5}]", "defaultOutboundAddress: 20.0.0.5"), 7, "defaultOutboundAddress", "already used", false},
		{"implicit default outbound taken", y(vnet, aseX[:4], "    virtualIp: 192.0.2.1"), 10, "appServiceEnvironments[0].virtualIp", "default outbound address", false},
		// The default 192.0.2.1 was checked only when set: a VNet or an
		// on-premises network of 192.0.2.0/24 came up, and its VMs'
		// Internet traffic left as that subnet's own gateway and never had
		// an answer (to-gateway).
		{"implicit default outbound inside a VNet", y("virtualNetworks:", "  - name: vn", "    addressSpace: {addressPrefixes: [10.0.0.0/16, 192.0.2.0/24]}", "    subnets: [{name: s1, addressPrefix: 192.0.2.0/24}]", "virtualMachines: [{name: m, subnet: s1}]"), 3, "virtualNetworks[0].addressSpace.addressPrefixes[1]", "192.0.2.0/24 contains 192.0.2.1, the default outbound address of VMs without a public IP; set defaultOutboundAddress to a public address outside VNet vn", false},
		{"implicit default outbound on premises", y(vnet, "onPremises: {addressSpace: {addressPrefixes: [192.0.2.0/24]}, natAddress: 198.18.0.10, gateway: {name: gw, address: 192.0.2.4}}"), 6, "onPremises.addressSpace.addressPrefixes[0]", "contains 192.0.2.1, the default outbound address", false},
	}
	runErrCases(t, cases)
}

// F15: the platform address is a node of every lab, and its name is the
// emulator's.
func TestPlatformNode(t *testing.T) {
	p := Default().NodeByName(PlatformNode)
	if p == nil || p.Kind != NodePlatform || p.Addr != PlatformAddr || p.Subnet != nil {
		t.Fatalf("platform node = %+v, want %s at %s", p, PlatformNode, PlatformAddr)
	}
	runErrCases(t, []errCase{
		{"reserved name", y(vnet, "internetHosts: [{name: platform, address: 20.0.0.5}]"), 6, "internetHosts[0].name", "reserved", true},
	})
}

// F17: Azure's default share of SNAT ports for each machine of a backend
// pool, by the pool's size.
func TestDefaultPortsPerInstance(t *testing.T) {
	for _, c := range []struct{ n, size, want int }{
		{1, 64512, 1024}, {4, 64512, 1024}, {50, 64512, 1024}, {51, 64512, 512}, {100, 64512, 512},
		{101, 64512, 256}, {200, 64512, 256}, {201, 64512, 128}, {400, 64512, 128},
		{401, 64512, 64}, {800, 64512, 64}, {801, 64512, 32}, {1000, 64512, 32},
		{4, 10, 2}, {4, 3, 0},
	} {
		if got := DefaultPortsPerInstance(c.n, c.size); got != c.want {
			t.Errorf("DefaultPortsPerInstance(%d, %d) = %d, want %d", c.n, c.size, got, c.want)
		}
	}
}

// A VNet may hold 192.0.2.1 once the default outbound address is set
// elsewhere.
func TestDefaultOutboundMoved(t *testing.T) {
	mustParse(t, y("virtualNetworks:", "  - name: vn", "    addressSpace: {addressPrefixes: [192.0.2.0/24]}", "    subnets: [{name: s1, addressPrefix: 192.0.2.0/24}]", "virtualMachines: [{name: m, subnet: s1}]", "defaultOutboundAddress: 20.1.2.3"))
}
