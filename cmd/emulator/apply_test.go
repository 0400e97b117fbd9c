package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/aseemu/emulator/topology"
)

// nsgTopology is the default lab with NSG ase1-nsg on ase1-subnet holding
// rules (YAML flow mappings), after the lines of prefix.
func nsgTopology(t *testing.T, prefix string, rules ...string) *topology.Topology {
	t.Helper()
	yaml := string(topology.DefaultYAML())
	for _, edit := range [][2]string{
		{"        addressPrefix: 10.0.1.0/26\n", "        addressPrefix: 10.0.1.0/26\n        networkSecurityGroup: ase1-nsg\n"},
		{"networkSecurityGroups: []\n", "networkSecurityGroups:\n  - name: ase1-nsg\n    securityRules:\n      - " + strings.Join(rules, "\n      - ") + "\n"},
	} {
		if !strings.Contains(yaml, edit[0]) {
			t.Fatalf("the default lab has no %q", edit[0])
		}
		yaml = strings.Replace(yaml, edit[0], edit[1], 1)
	}
	topo, err := topology.Parse("nsg.yaml", []byte(prefix+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// apply reports an NSG as changed when its rules say something new, not
// when only their lines in the file moved.
func TestDiffNSGsComparesRulesNotLines(t *testing.T) {
	const (
		http  = `{name: AllowHTTP, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, destinationPortRange: "80"}`
		deny  = `{name: DenyInternet, priority: 200, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: Internet}`
		https = `{name: AllowHTTP, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, destinationPortRange: "443"}`
	)
	running := nsgTopology(t, "", http, deny)
	for _, c := range []struct {
		name string
		new  *topology.Topology
		want []string
	}{
		{"same file", nsgTopology(t, "", http, deny), nil},
		{"lines added above", nsgTopology(t, "# a comment\n# that moves every line down\n\n", http, deny), nil},
		{"rules in another order", nsgTopology(t, "", deny, http), nil},
		{"a rule changed", nsgTopology(t, "", https, deny), []string{"NSG ase1-nsg: rules changed (2 rules)"}},
		{"a rule removed", nsgTopology(t, "", deny), []string{"NSG ase1-nsg: rules changed (1 rules)"}},
	} {
		if got := diffNSGs(running, c.new); !slices.Equal(got, c.want) {
			t.Errorf("%s: diffNSGs = %q, want %q", c.name, got, c.want)
		}
	}
}
