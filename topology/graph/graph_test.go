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

// Names that map to one identifier, or that end in "-anchor", are drawn
// as what they are. VNets a-b and a_b (and their subnets s-1 and s_1) were
// both vnet_a_b, one box in dot and Mermaid alike, holding both VNets'
// subnets; ASE my-anchor's VIP, vip_my_anchor, was taken for the anchor of
// a cluster vip_my that does not exist, so Mermaid drew the Internet's
// edge to an empty node vip_my and dot warned "cluster named cluster_vip_my
// not found"; a gateway gw-anchor likewise.
func TestGraphOddNames(t *testing.T) {
	top, err := topology.Parse("odd.yaml", []byte(`
virtualNetworks:
  - name: a-b
    addressSpace: {addressPrefixes: [10.0.0.0/16]}
    subnets: [{name: s-1, addressPrefix: 10.0.1.0/24}]
  - name: a_b
    addressSpace: {addressPrefixes: [10.1.0.0/16]}
    subnets: [{name: s_1, addressPrefix: 10.1.1.0/24}]
appServiceEnvironments:
  - {name: my-anchor, subnet: s-1, kind: External, virtualIp: 52.0.0.1, frontEnds: 1, workers: 1, apps: [{name: web}]}
virtualMachines:
  - {name: vm2, subnet: s_1}
internetHosts:
  - {name: c, address: 198.51.100.10}
onPremises:
  addressSpace: {addressPrefixes: [172.16.0.0/16]}
  natAddress: 198.18.0.10
  gateway: {name: gw-anchor, address: 172.16.0.4}
`))
	if err != nil {
		t.Fatal(err)
	}
	// Mermaid: each subgraph and node declared once, and every edge
	// between things declared.
	declared := map[string]int{}
	var edges [][2]string
	for _, l := range strings.Split(Mermaid(top), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "subgraph "):
			declared[strings.SplitN(strings.TrimPrefix(l, "subgraph "), "[", 2)[0]]++
		case strings.Contains(l, "-->"):
			f := strings.Fields(l)
			edges = append(edges, [2]string{f[0], f[len(f)-1]})
		case strings.Contains(l, "["):
			declared[strings.SplitN(strings.SplitN(l, "[", 2)[0], "(", 2)[0]]++
		}
	}
	for id, n := range declared {
		if n > 1 {
			t.Errorf("mermaid: %s is declared %d times: two things drawn as one", id, n)
		}
	}
	for _, e := range edges {
		for _, end := range e {
			if declared[end] == 0 {
				t.Errorf("mermaid: edge %s --> %s: %s is drawn as an empty node", e[0], e[1], end)
			}
		}
	}
	// dot: each cluster once, and every lhead and ltail names one.
	dot := Dot(top)
	clusters := map[string]int{}
	for _, l := range strings.Split(dot, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "subgraph" {
			clusters[f[1]]++
		}
	}
	for c, n := range clusters {
		if n > 1 {
			t.Errorf("dot: cluster %s is declared %d times", c, n)
		}
	}
	for _, l := range strings.Split(dot, "\n") {
		for _, attr := range []string{"lhead=", "ltail="} {
			if i := strings.Index(l, attr); i >= 0 {
				c := strings.TrimRight(strings.Fields(l[i+len(attr):])[0], ",];")
				if clusters[c] == 0 {
					t.Errorf("dot: %s names %s, which is no cluster: %s", attr, c, strings.TrimSpace(l))
				}
			}
		}
	}
	for _, w := range []string{`label="VNet a-b`, `label="VNet a_b`, `label="subnet s-1`, `label="subnet s_1`} {
		if !strings.Contains(dot, w) {
			t.Errorf("dot drawing lacks %s", w)
		}
	}
}
