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
		if a.SNATPorts != DefaultSNATPorts {
			t.Errorf("%s: SNAT pool %v, want %v", a.Name, a.SNATPorts, DefaultSNATPorts)
		}
	}

	top, err := Parse("lab.yaml", []byte(y(vnet, aseX,
		"    snatPortRange: 50000-50001",
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
	if got := top.ASEs[0].SNATPorts; got != (PortRange{50000, 50001}) {
		t.Errorf("snatPortRange = %v, want 50000-50001", got)
	}
	if top.DefaultOutbound.String() != "20.1.2.3" {
		t.Errorf("defaultOutboundAddress = %v", top.DefaultOutbound)
	}
}

func TestNATSettingErrors(t *testing.T) {
	cases := []errCase{
		{"snat port 0", y(vnet, aseX, "    snatPortRange: 0-10"), 11, "appServiceEnvironments[0].snatPortRange", "port 0", false},
		{"snat range reversed", y(vnet, aseX, "    snatPortRange: 2000-1000"), 11, "appServiceEnvironments[0].snatPortRange", "starts above its end", false},
		{"maxFlows too small", y(vnet, "connectionTracking: {maxFlows: 1}"), 6, "connectionTracking.maxFlows", "out of range", false},
		{"bad duration", y(vnet, "connectionTracking: {idleTimeout: soon}"), 6, "connectionTracking.idleTimeout", "expected a duration", false},
		{"duration too short", y(vnet, "connectionTracking: {rstTimeout: 10ms}"), 6, "connectionTracking.rstTimeout", "out of range", false},
		{"unknown conntrack field", y(vnet, "connectionTracking: {udpTimeout: 30}"), 6, "connectionTracking.udpTimeout", "unknown field", false},
		{"default outbound inside the VNet", y(vnet, "defaultOutboundAddress: 10.0.9.9"), 6, "defaultOutboundAddress", "inside", false},
		{"default outbound taken", y(vnet, "internetHosts: [{name: h, address: 20.0.0.5}]", "defaultOutboundAddress: 20.0.0.5"), 7, "defaultOutboundAddress", "already used", false},
		{"implicit default outbound taken", y(vnet, aseX[:4], "    virtualIp: 192.0.2.1"), 10, "appServiceEnvironments[0].virtualIp", "default outbound address", false},
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
