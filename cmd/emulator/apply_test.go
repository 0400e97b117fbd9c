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

// parseLab is the default lab with edits (old, new pairs) made to its file.
func parseLab(t *testing.T, edits ...string) *topology.Topology {
	t.Helper()
	yaml := string(topology.DefaultYAML())
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(yaml, edits[i]) {
			t.Fatalf("the default lab has no %q", edits[i])
		}
		yaml = strings.Replace(yaml, edits[i], edits[i+1], 1)
	}
	topo, err := topology.Parse("lab.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// onPrem adds an on-premises network to the default lab's file.
func onPrem(space, nat string) []string {
	return []string{"networkSecurityGroups: []\n", "networkSecurityGroups: []\nonPremises:\n" +
		"  addressSpace: {addressPrefixes: [" + space + "]}\n  natAddress: " + nat + "\n" +
		"  gateway: {name: corp-gw, address: 172.16.0.4}\n  hosts: [{name: corp-host, address: 172.16.1.10}]\n"}
}

// What the running lab takes from a new file, apply says it changed: a
// change the dataplane carries out silently would leave "nothing changed"
// on the screen while the lab behaves differently (db1 leaving as another
// on-premises NAT address, a VM that starts forwarding, flow logs that
// start).
func TestDiffTopologyReportsEveryLiveChange(t *testing.T) {
	const vm = "    privateIPAddress: 10.0.2.4\n"
	running := parseLab(t, onPrem("172.16.0.0/16", "198.18.0.10")...)
	for _, c := range []struct {
		name string
		new  *topology.Topology
		want string
	}{
		{"on-premises NAT address", parseLab(t, onPrem("172.16.0.0/16", "198.18.0.99")...), "on-premises natAddress: 198.18.0.99, was 198.18.0.10"},
		{"on-premises address space", parseLab(t, onPrem("172.16.0.0/16, 172.20.0.0/16", "198.18.0.10")...),
			"on-premises address space: [172.16.0.0/16 172.20.0.0/16], was [172.16.0.0/16]"},
		{"IP forwarding", parseLab(t, append(onPrem("172.16.0.0/16", "198.18.0.10"), vm, vm+"    enableIPForwarding: true\n")...), "db1 IP forwarding: on"},
		// A link's latency in the topology file's own words, not as a Go
		// struct ({Delay:0s Jitter:0s Loss:0 Rate:0}).
		{"latency", parseLab(t, append(onPrem("172.16.0.0/16", "198.18.0.10"), "    region: remote\n", "")...), "azure-storage latency: none, was delay 40ms"},
		{"flow logs", parseLab(t, append(onPrem("172.16.0.0/16", "198.18.0.10"), "virtualNetworks:\n", "flowLogs: {enabled: true}\nvirtualNetworks:\n")...), "NSG flow logs: on"},
	} {
		_, _, changes, err := diffTopology(running, c.new)
		if err != nil || !slices.Contains(changes, c.want) {
			t.Errorf("%s: diffTopology = %q, %v; want a change %q", c.name, changes, err, c.want)
		}
	}
}

// apply's refusal names what would change on a node: a VM given a public
// IP was refused as "node db1 would change from 10.0.2.4 to 10.0.2.4".
func TestDiffTopologyRefusalNamesTheChange(t *testing.T) {
	const vm = "    privateIPAddress: 10.0.2.4\n"
	running := parseLab(t)
	for _, c := range []struct {
		name string
		new  *topology.Topology
		want string
	}{
		{"public IP", parseLab(t, vm, vm+"    publicIpAddress: 192.23.9.9\n"), "VM db1 would change its publicIpAddress from none to 192.23.9.9"},
		{"address", parseLab(t, vm, "    privateIPAddress: 10.0.2.5\n"), "node db1 would change its address from 10.0.2.4 to 10.0.2.5"},
	} {
		_, _, _, err := diffTopology(running, c.new)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: diffTopology refused with %v; want %q", c.name, err, c.want)
		}
		// "down, then up" sent learners to a bare up, which brings up the
		// default lab rather than their file.
		if err == nil || !strings.Contains(err.Error(), "bin/emulator up -d -f FILE") {
			t.Errorf("%s: diffTopology refused with %v; want it to say to up the file", c.name, err)
		}
	}
}
