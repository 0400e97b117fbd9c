package graph

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/aseemu/emulator/topology"
)

// A lab with every kind of attachment: the default lab plus a subnet NSG,
// a route table, a VM with a NIC NSG and a public IP.
func richLab(t *testing.T) *topology.Topology {
	t.Helper()
	yaml := string(topology.DefaultYAML())
	for _, e := range [][2]string{
		{"        addressPrefix: 10.0.2.0/24\n", "        addressPrefix: 10.0.2.0/24\n        networkSecurityGroup: vm-nsg\n        routeTable: vm-routes\n"},
		{"networkSecurityGroups: []\n", "networkSecurityGroups:\n  - name: vm-nsg\n    securityRules: []\n  - name: web-nic\n    securityRules: []\nrouteTables:\n  - name: vm-routes\n    routes: [{name: r, addressPrefix: 0.0.0.0/0, nextHopType: Internet}]\n"},
		{"virtualMachines:\n", "virtualMachines:\n  - {name: web1, subnet: vm-subnet, networkSecurityGroup: web-nic, publicIpAddress: 20.1.2.3}\n"},
	} {
		if !strings.Contains(yaml, e[0]) {
			t.Fatalf("edit %q: not in the default lab", e[0])
		}
		yaml = strings.Replace(yaml, e[0], e[1], 1)
	}
	top, err := topology.Parse("rich.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// Both drawings name every node with its address, every VNet and subnet,
// each subnet's NSG and route table, each ASE with its VIP and ILB, and
// each VM's NIC NSG and public IP.
func TestGraphListsEverything(t *testing.T) {
	for _, top := range []*topology.Topology{topology.Default(), richLab(t)} {
		var want []string
		for _, n := range top.Nodes {
			want = append(want, n.Name, n.Addr.String())
		}
		for _, v := range top.VNets {
			want = append(want, "VNet "+v.Name)
			for _, s := range v.Subnets {
				want = append(want, "subnet "+s.Name+" "+s.Prefix.String())
				if s.NSG != "" {
					want = append(want, "NSG "+s.NSG)
				}
				if s.RouteTable != nil {
					want = append(want, "route table "+s.RouteTable.Name)
				}
			}
		}
		for _, a := range top.ASEs {
			want = append(want, "ASE "+a.Name, "VIP "+a.VIP.String())
			if a.ILB.IsValid() {
				want = append(want, "ILB "+a.ILB.String())
			}
		}
		for _, vm := range top.VMs {
			if vm.NSG != "" {
				want = append(want, "NIC NSG "+vm.NSG)
			}
			if vm.PublicIP.IsValid() {
				want = append(want, "public IP "+vm.PublicIP.String())
			}
		}
		for format, out := range map[string]string{"dot": Dot(top), "mermaid": Mermaid(top)} {
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("%s drawing of %s lacks %q", format, top.File, w)
				}
			}
		}
	}
	if !strings.Contains(Dot(richLab(t)), "NIC NSG web-nic") {
		t.Error("the rich lab's VM lost its NIC NSG")
	}
}

// Graphviz renders the dot output without complaint.
func TestDotRenders(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		t.Skip("graphviz is not installed (make deps installs it)")
	}
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(Dot(richLab(t)))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<svg") || strings.Contains(string(out), "Warning") {
		t.Fatalf("dot -Tsvg: %v\n%.500s", err, out)
	}
}
