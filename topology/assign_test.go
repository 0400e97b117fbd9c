package topology

import (
	"net/netip"
	"testing"
)

func mustParse(t *testing.T, yaml string) *Topology {
	t.Helper()
	top, err := Parse("lab.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return top
}

// F1: nodes get the lowest free address in Nodes order, skipping the reserved
// ones and every address the file gives, even to something declared later.
func TestAssignSkipsExplicitAddresses(t *testing.T) {
	top := mustParse(t, y(vnet,
		"virtualMachines:",
		"  - {name: m1, subnet: s1, privateIpAddress: 10.0.1.4}",
		"  - {name: m2, subnet: s1}",
		"appServiceEnvironments:",
		"  - {name: x, subnet: s1, kind: ILB, virtualIp: 192.23.1.2, ilbAddress: 10.0.1.6, frontEnds: 1, workers: 3}",
	))
	want := map[string]string{
		"x-fe1": "10.0.1.5", // .4 is m1's, given in the file
		"x-w1":  "10.0.1.7", // .6 is the ILB address
		"x-w2":  "10.0.1.8",
		"x-w3":  "10.0.1.9",
		"m1":    "10.0.1.4",
		"m2":    "10.0.1.10", // VMs come after every ASE node
	}
	for name, addr := range want {
		if n := top.NodeByName(name); n == nil || n.Addr.String() != addr {
			t.Errorf("%s got %v, want %s", name, n, addr)
		}
	}
	if got := top.VMs[1].PrivateIP.String(); got != "10.0.1.10" {
		t.Errorf("VM m2's PrivateIP is %s, want the assigned 10.0.1.10", got)
	}
	if s := top.SubnetByName("s1"); len(s.Nodes) != 6 || s.Nodes[0].Name != "x-fe1" || s.Nodes[5].Name != "m2" {
		t.Errorf("subnet s1 nodes = %v, want the ASE's then the VMs", s.Nodes)
	}
}

// F1: a /29 has exactly three addresses to give, .4 to .6.
func TestAssignNeverGivesReservedAddresses(t *testing.T) {
	top := mustParse(t, y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/29}",
		"appServiceEnvironments:",
		"  - {name: x, subnet: s1, kind: External, virtualIp: 192.23.1.2, frontEnds: 1, workers: 2}",
	))
	var got []string
	for _, n := range top.Nodes {
		if n.Kind == NodePlatform {
			continue
		}
		got = append(got, n.Addr.String())
		if Reserved(n.Subnet.Prefix, n.Addr) {
			t.Errorf("%s got reserved address %s", n.Name, n.Addr)
		}
		if n.Gateway.String() != "10.0.1.1" || n.Prefix.String() != "10.0.1.0/29" {
			t.Errorf("%s: gateway %s prefix %s, want 10.0.1.1 on 10.0.1.0/29", n.Name, n.Gateway, n.Prefix)
		}
	}
	if len(got) != 3 || got[0] != "10.0.1.4" || got[1] != "10.0.1.5" || got[2] != "10.0.1.6" {
		t.Errorf("addresses %v, want 10.0.1.4-6", got)
	}
}

func TestAssignFullSubnet(t *testing.T) {
	_, err := Parse("lab.yaml", []byte(y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/29}",
		"appServiceEnvironments:",
		"  - {name: x, subnet: s1, kind: External, virtualIp: 192.23.1.2, frontEnds: 2, workers: 2}",
	)))
	want := "lab.yaml:7: appServiceEnvironments[0].workers: subnet s1 (10.0.1.0/29) is full: no address left for worker x-w2 of ASE x"
	if err == nil || len(err.(Errors)) != 1 || err.(Errors)[0].Error()[:len(want)] != want {
		t.Fatalf("got %v\nwant %s...", err, want)
	}
}

func TestReserved(t *testing.T) {
	p := netip.MustParsePrefix("10.0.1.0/26")
	for addr, want := range map[string]bool{
		"10.0.1.0": true, "10.0.1.1": true, "10.0.1.2": true, "10.0.1.3": true, "10.0.1.63": true,
		"10.0.1.4": false, "10.0.1.62": false, "10.0.1.64": false, "10.0.0.255": false,
	} {
		if got := Reserved(p, netip.MustParseAddr(addr)); got != want {
			t.Errorf("Reserved(%s, %s) = %v, want %v", p, addr, got, want)
		}
	}
	// An unmasked prefix means its network.
	if !Reserved(netip.MustParsePrefix("10.0.1.9/29"), netip.MustParseAddr("10.0.1.15")) {
		t.Error("Reserved(10.0.1.9/29, 10.0.1.15) = false, want true (broadcast of 10.0.1.8/29)")
	}
}

// F1, F4: over a running lab, machines it has keep their addresses when
// the ASE in front of them grows, and new ones take the lowest free.
func TestParseOverKeepsRunningAddresses(t *testing.T) {
	file := func(frontEnds string) []byte {
		return []byte(y(vnet,
			"virtualMachines:",
			"  - {name: m1, subnet: s1}",
			"appServiceEnvironments:",
			"  - {name: x, subnet: s1, kind: External, virtualIp: 192.23.1.2, frontEnds: "+frontEnds+", workers: 1}",
		))
	}
	running, err := Parse("lab.yaml", file("1"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := ParseOver("lab.yaml", file("2"), running)
	if err != nil {
		t.Fatal(err)
	}
	for name, addr := range map[string]string{"x-fe1": "10.0.1.4", "x-w1": "10.0.1.5", "m1": "10.0.1.6", "x-fe2": "10.0.1.7"} {
		if n := top.NodeByName(name); n == nil || n.Addr.String() != addr {
			t.Errorf("%s got %v, want %s", name, n, addr)
		}
	}
	if fresh := mustParse(t, string(file("2"))); fresh.NodeByName("x-w1").Addr.String() != "10.0.1.6" {
		t.Errorf("Parse without a running lab should assign afresh: x-w1 is %s, want 10.0.1.6", fresh.NodeByName("x-w1").Addr)
	}
}
