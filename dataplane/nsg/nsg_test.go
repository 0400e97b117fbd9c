package nsg

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/topology"
)

func addr(s string) header.Addr { return header.AddrFromNetip(netip.MustParseAddr(s)) }

func tcp(src, dst string, sport, dport uint16) Tuple {
	return Tuple{Src: addr(src), Dst: addr(dst), SrcPort: sport, DstPort: dport, Proto: header.ProtoTCP}
}

func udp(src, dst string, sport, dport uint16) Tuple {
	tp := tcp(src, dst, sport, dport)
	tp.Proto = header.ProtoUDP
	return tp
}

func icmp(src, dst string) Tuple {
	return Tuple{Src: addr(src), Dst: addr(dst), Proto: header.ProtoICMP}
}

// lab is a one-VNet lab: vm1 in subnet web (subnet NSG sub-nsg, NIC NSG
// nic-nsg), vm2 in subnet other without NSGs, and an Internet client.
// subRules and nicRules are securityRules entries; a nil list leaves that
// NSG unattached.
func lab(t *testing.T, subRules, nicRules []string) (*topology.Topology, *Set) {
	t.Helper()
	subAttach, nicAttach := "", ""
	if subRules != nil {
		subAttach = ", networkSecurityGroup: sub-nsg"
	}
	if nicRules != nil {
		nicAttach = ", networkSecurityGroup: nic-nsg"
	}
	lines := []string{
		"virtualNetworks:",
		"  - name: vnet1",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: web, addressPrefix: 10.0.1.0/24" + subAttach + "}",
		"      - {name: other, addressPrefix: 10.0.2.0/24}",
		"virtualMachines:",
		"  - {name: vm1, subnet: web, privateIpAddress: 10.0.1.4" + nicAttach + "}",
		"  - {name: vm2, subnet: other, privateIpAddress: 10.0.2.4}",
		"internetHosts:",
		"  - {name: client, address: 198.51.100.10}",
		"networkSecurityGroups:",
		"  - name: sub-nsg",
	}
	if len(subRules) > 0 {
		lines = append(lines, "    securityRules:")
		lines = append(lines, subRules...)
	}
	lines = append(lines, "  - name: nic-nsg")
	if len(nicRules) > 0 {
		lines = append(lines, "    securityRules:")
		lines = append(lines, nicRules...)
	}
	src := strings.Join(lines, "\n") + "\n"
	top, err := topology.Parse("lab.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v\n%s", err, src)
	}
	s, err := Compile(top)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return top, s
}

// compiled parses src as the topology file name and compiles its NSGs.
func compiled(t testing.TB, name, src string) (*topology.Topology, *Set) {
	t.Helper()
	top, err := topology.Parse(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(top)
	if err != nil {
		t.Fatal(err)
	}
	return top, s
}

func rule(fields string) []string { return []string{"      - {" + fields + "}"} }

// F9, F11: every field of a rule, in every form it can take, matches what it
// should and nothing else. The rule under test is a Deny at priority 100 on
// vm1's subnet; a tuple it does not match falls through to a default rule.
func TestRuleFields(t *testing.T) {
	const base = "name: r, priority: 100, direction: Inbound, access: Deny, "
	cases := []struct {
		name   string
		fields string
		tp     Tuple
		match  bool
	}{
		// Source prefix: an address, a CIDR, *, each tag.
		{"src address", "protocol: '*', sourceAddressPrefix: 198.51.100.10", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"src address, other address", "protocol: '*', sourceAddressPrefix: 198.51.100.10", tcp("198.51.100.11", "10.0.1.4", 5000, 80), false},
		{"src /32", "protocol: '*', sourceAddressPrefix: 198.51.100.10/32", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"src CIDR first", "protocol: '*', sourceAddressPrefix: 198.51.100.0/24", tcp("198.51.100.0", "10.0.1.4", 5000, 80), true},
		{"src CIDR last", "protocol: '*', sourceAddressPrefix: 198.51.100.0/24", tcp("198.51.100.255", "10.0.1.4", 5000, 80), true},
		{"src CIDR below", "protocol: '*', sourceAddressPrefix: 198.51.100.0/24", tcp("198.51.99.255", "10.0.1.4", 5000, 80), false},
		{"src CIDR above", "protocol: '*', sourceAddressPrefix: 198.51.100.0/24", tcp("198.51.101.0", "10.0.1.4", 5000, 80), false},
		{"src /0", "protocol: '*', sourceAddressPrefix: 0.0.0.0/0", tcp("255.255.255.255", "10.0.1.4", 5000, 80), true},
		{"src *", "protocol: '*', sourceAddressPrefix: '*'", tcp("10.0.2.4", "10.0.1.4", 5000, 80), true},
		{"src omitted is *", "protocol: '*'", tcp("203.0.113.10", "10.0.1.4", 5000, 80), true},
		{"src VirtualNetwork, VNet address", "protocol: '*', sourceAddressPrefix: VirtualNetwork", tcp("10.0.200.1", "10.0.1.4", 5000, 80), true},
		{"src VirtualNetwork, platform address", "protocol: '*', sourceAddressPrefix: VirtualNetwork", tcp("168.63.129.16", "10.0.1.4", 5000, 80), true},
		{"src VirtualNetwork, Internet address", "protocol: '*', sourceAddressPrefix: VirtualNetwork", tcp("198.51.100.10", "10.0.1.4", 5000, 80), false},
		{"src VirtualNetwork, next to the space", "protocol: '*', sourceAddressPrefix: VirtualNetwork", tcp("10.1.0.0", "10.0.1.4", 5000, 80), false},
		{"src Internet, Internet address", "protocol: '*', sourceAddressPrefix: Internet", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"src Internet, VIP of another ASE", "protocol: '*', sourceAddressPrefix: Internet", tcp("192.23.1.2", "10.0.1.4", 5000, 80), true},
		{"src Internet, VNet address", "protocol: '*', sourceAddressPrefix: Internet", tcp("10.0.2.4", "10.0.1.4", 5000, 80), false},
		{"src Internet, platform address", "protocol: '*', sourceAddressPrefix: Internet", tcp("168.63.129.16", "10.0.1.4", 5000, 80), false},
		{"src AzureLoadBalancer, platform", "protocol: '*', sourceAddressPrefix: AzureLoadBalancer", tcp("168.63.129.16", "10.0.1.4", 5000, 80), true},
		{"src AzureLoadBalancer, next to it", "protocol: '*', sourceAddressPrefix: AzureLoadBalancer", tcp("168.63.129.17", "10.0.1.4", 5000, 80), false},
		{"src AzureLoadBalancer, VNet", "protocol: '*', sourceAddressPrefix: AzureLoadBalancer", tcp("10.0.2.4", "10.0.1.4", 5000, 80), false},
		{"src ASM-era tag", "protocol: '*', sourceAddressPrefix: INTERNET", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"src list, second element", "protocol: '*', sourceAddressPrefixes: [192.0.2.0/24, 198.51.100.10]", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"src list, no element", "protocol: '*', sourceAddressPrefixes: [192.0.2.0/24, 198.51.100.10]", tcp("198.51.100.9", "10.0.1.4", 5000, 80), false},
		// Destination prefix.
		{"dst address", "protocol: '*', destinationAddressPrefix: 10.0.1.4", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"dst address, other", "protocol: '*', destinationAddressPrefix: 10.0.1.5", tcp("198.51.100.10", "10.0.1.4", 5000, 80), false},
		{"dst CIDR", "protocol: '*', destinationAddressPrefix: 10.0.1.0/26", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"dst VirtualNetwork", "protocol: '*', destinationAddressPrefix: VirtualNetwork", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"dst Internet", "protocol: '*', destinationAddressPrefix: Internet", tcp("198.51.100.10", "10.0.1.4", 5000, 80), false},
		{"dst list", "protocol: '*', destinationAddressPrefixes: [Internet, 10.0.1.4/32]", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		// Destination port: single, range, *, list.
		{"dport single", "protocol: Tcp, destinationPortRange: 80", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"dport single, other", "protocol: Tcp, destinationPortRange: 80", tcp("198.51.100.10", "10.0.1.4", 5000, 81), false},
		{"dport range low end", "protocol: Tcp, destinationPortRange: 10001-10020", tcp("198.51.100.10", "10.0.1.4", 5000, 10001), true},
		{"dport range high end", "protocol: Tcp, destinationPortRange: 10001-10020", tcp("198.51.100.10", "10.0.1.4", 5000, 10020), true},
		{"dport range below", "protocol: Tcp, destinationPortRange: 10001-10020", tcp("198.51.100.10", "10.0.1.4", 5000, 10000), false},
		{"dport range above", "protocol: Tcp, destinationPortRange: 10001-10020", tcp("198.51.100.10", "10.0.1.4", 5000, 10021), false},
		{"dport *", "protocol: Tcp, destinationPortRange: '*'", tcp("198.51.100.10", "10.0.1.4", 5000, 65535), true},
		{"dport 0-65535", "protocol: Tcp, destinationPortRange: 0-65535", tcp("198.51.100.10", "10.0.1.4", 5000, 0), true},
		{"dport list", "protocol: Tcp, destinationPortRanges: [80, 443, 454-455]", tcp("198.51.100.10", "10.0.1.4", 5000, 455), true},
		{"dport list, none", "protocol: Tcp, destinationPortRanges: [80, 443, 454-455]", tcp("198.51.100.10", "10.0.1.4", 5000, 456), false},
		// Source port.
		{"sport single", "protocol: Udp, sourcePortRange: 53", udp("198.51.100.10", "10.0.1.4", 53, 40000), true},
		{"sport single, other", "protocol: Udp, sourcePortRange: 53", udp("198.51.100.10", "10.0.1.4", 54, 40000), false},
		{"sport range", "protocol: Udp, sourcePortRange: 1024-2047", udp("198.51.100.10", "10.0.1.4", 2047, 40000), true},
		{"sport range, out", "protocol: Udp, sourcePortRange: 1024-2047", udp("198.51.100.10", "10.0.1.4", 2048, 40000), false},
		{"sport list", "protocol: Udp, sourcePortRanges: ['1', '1024-2047']", udp("198.51.100.10", "10.0.1.4", 1, 40000), true},
		// Protocol.
		{"Tcp matches TCP", "protocol: Tcp", tcp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"Tcp never matches UDP", "protocol: Tcp", udp("198.51.100.10", "10.0.1.4", 5000, 80), false},
		{"Tcp never matches ICMP", "protocol: Tcp", icmp("198.51.100.10", "10.0.1.4"), false},
		{"Udp matches UDP", "protocol: Udp, destinationPortRange: 53", udp("198.51.100.10", "10.0.1.4", 5000, 53), true},
		{"Udp never matches TCP", "protocol: Udp, destinationPortRange: 53", tcp("198.51.100.10", "10.0.1.4", 5000, 53), false},
		{"Icmp matches ICMP, ports ignored", "protocol: Icmp, destinationPortRange: 80", icmp("198.51.100.10", "10.0.1.4"), true},
		{"Icmp never matches TCP", "protocol: Icmp", tcp("198.51.100.10", "10.0.1.4", 5000, 80), false},
		{"* matches ICMP, ports ignored", "protocol: '*', sourcePortRange: 7, destinationPortRange: 80", icmp("198.51.100.10", "10.0.1.4"), true},
		{"* matches UDP by ports", "protocol: '*', destinationPortRange: 80", udp("198.51.100.10", "10.0.1.4", 5000, 80), true},
		{"* checks ports of TCP", "protocol: '*', destinationPortRange: 80", tcp("198.51.100.10", "10.0.1.4", 5000, 443), false},
		{"* matches another protocol, ports ignored", "protocol: '*', destinationPortRange: 80",
			Tuple{Src: addr("198.51.100.10"), Dst: addr("10.0.1.4"), Proto: 47}, true},
		{"Icmp never matches another protocol", "protocol: Icmp",
			Tuple{Src: addr("198.51.100.10"), Dst: addr("10.0.1.4"), Proto: 47}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, s := lab(t, rule(base+c.fields), nil)
			v := s.Check("vm1", Inbound, c.tp)
			if got := v.Rule == "r"; got != c.match {
				t.Errorf("rule {%s} on %+v: decided by %s, want rule r to match: %v", c.fields, c.tp, v, c.match)
			}
			if v.Rule == "r" && (v.Allow || v.Priority != 100 || v.Default || v.NSG != "sub-nsg") {
				t.Errorf("rule r decided, but the verdict is %+v", v)
			}
		})
	}
}

// F9: lower priority first, first match wins, whatever the file order.
func TestPriorityFirstMatch(t *testing.T) {
	_, s := lab(t, []string{
		"      - {name: allow-web-late, priority: 300, direction: Inbound, access: Allow, protocol: Tcp, destinationPortRange: 80}",
		"      - {name: deny-web, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: 198.51.100.0/24, destinationPortRange: 80-90}",
		"      - {name: allow-client, priority: 200, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: 198.51.100.10}",
		"      - {name: allow-4096, priority: 4096, direction: Inbound, access: Allow, protocol: '*'}",
	}, nil)
	cases := []struct {
		tp    Tuple
		rule  string
		allow bool
	}{
		{tcp("198.51.100.10", "10.0.1.4", 1234, 80), "deny-web", false},     // 100 beats 200 and 300
		{tcp("198.51.100.10", "10.0.1.4", 1234, 443), "allow-client", true}, // 100 misses, 200 matches
		{tcp("203.0.113.10", "10.0.1.4", 1234, 80), "allow-web-late", true}, // 100 and 200 miss
		{udp("203.0.113.10", "10.0.1.4", 1234, 80), "allow-4096", true},     // only the last user rule
		{tcp("198.51.100.10", "10.0.1.4", 1234, 90), "deny-web", false},     // end of the range
		{tcp("198.51.100.11", "10.0.1.4", 1234, 91), "allow-4096", true},    // just past the range
	}
	for _, c := range cases {
		v := s.Check("vm1", Inbound, c.tp)
		if v.Rule != c.rule || v.Allow != c.allow {
			t.Errorf("%+v: decided by %s, want %s (allow %v)", c.tp, v, c.rule, c.allow)
		}
	}
}

// F10: the six default rules, with their exact names and priorities, sit
// under every NSG, and each decides what it should.
func TestDefaultRules(t *testing.T) {
	_, s := lab(t, []string{}, nil) // an NSG with no rules of its own
	st := s.Stats()
	var got []string
	for _, r := range st[0].Rules {
		got = append(got, fmt.Sprintf("%s %s %d %s default=%v", r.Direction, r.Name, r.Priority, r.Access, r.Default))
	}
	want := []string{
		"Inbound AllowVnetInBound 65000 Allow default=true",
		"Inbound AllowAzureLoadBalancerInBound 65001 Allow default=true",
		"Inbound DenyAllInBound 65500 Deny default=true",
		"Outbound AllowVnetOutBound 65000 Allow default=true",
		"Outbound AllowInternetOutBound 65001 Allow default=true",
		"Outbound DenyAllOutBound 65500 Deny default=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules of an empty NSG:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	cases := []struct {
		dir   Direction
		tp    Tuple
		rule  string
		prio  int
		allow bool
	}{
		{Inbound, tcp("10.0.2.4", "10.0.1.4", 1234, 1433), "AllowVnetInBound", 65000, true},
		{Inbound, tcp("10.0.1.5", "10.0.1.4", 1234, 22), "AllowVnetInBound", 65000, true},                      // F12: within the subnet too
		{Inbound, tcp("168.63.129.16", "10.0.1.4", 1234, 80), "AllowVnetInBound", 65000, true},                 // the platform is in VirtualNetwork
		{Inbound, tcp("168.63.129.16", "192.23.1.2", 1234, 454), "AllowAzureLoadBalancerInBound", 65001, true}, // to a non-VNet address
		{Inbound, tcp("198.51.100.10", "10.0.1.4", 1234, 80), "DenyAllInBound", 65500, false},
		{Inbound, icmp("198.51.100.10", "10.0.1.4"), "DenyAllInBound", 65500, false},
		{Outbound, tcp("10.0.1.4", "10.0.2.4", 1234, 1433), "AllowVnetOutBound", 65000, true},
		{Outbound, udp("10.0.1.4", "168.63.129.16", 1234, 53), "AllowVnetOutBound", 65000, true},
		{Outbound, tcp("10.0.1.4", "203.0.113.20", 1234, 1433), "AllowInternetOutBound", 65001, true},
		{Outbound, tcp("198.51.100.10", "10.0.2.4", 1234, 80), "DenyAllOutBound", 65500, false},
	}
	for _, c := range cases {
		v := s.Check("vm1", c.dir, c.tp)
		if v.Rule != c.rule || v.Priority != c.prio || v.Allow != c.allow || !v.Default || v.NSG != "sub-nsg" {
			t.Errorf("%s %+v: %s (default %v), want sub-nsg/%s %d allow=%v", c.dir, c.tp, v, v.Default, c.rule, c.prio, c.allow)
		}
	}
}

// F11: service tags are resolved per VNet. g is attached in va (two address
// spaces) and in vb; VirtualNetwork and Internet mean different things in
// each, and the platform address is VirtualNetwork in both.
func TestServiceTagsPerVNet(t *testing.T) {
	src := strings.Join([]string{
		"virtualNetworks:",
		"  - name: va",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16, 172.16.0.0/20]}",
		"    subnets:",
		"      - {name: sa, addressPrefix: 10.0.1.0/24, networkSecurityGroup: g}",
		"  - name: vb",
		"    addressSpace: {addressPrefixes: [192.168.0.0/16]}",
		"    subnets:",
		"      - {name: sb, addressPrefix: 192.168.1.0/24, networkSecurityGroup: g}",
		"virtualMachines:",
		"  - {name: a, subnet: sa, privateIpAddress: 10.0.1.4}",
		"  - {name: b, subnet: sb, privateIpAddress: 192.168.1.4}",
		"networkSecurityGroups:",
		"  - name: g",
		"    securityRules:",
		"      - {name: from-vnet, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: VirtualNetwork, destinationPortRange: 1}",
		"      - {name: from-internet, priority: 110, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: Internet, destinationPortRange: 1}",
		"      - {name: from-lb, priority: 120, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: AzureLoadBalancer, destinationPortRange: 2}",
	}, "\n") + "\n"
	top, s := compiled(t, "tags.yaml", src)
	cases := []struct {
		node, src string
		port      uint16
		rule      string
	}{
		{"a", "10.0.9.9", 1, "from-vnet"},
		{"a", "172.16.15.255", 1, "from-vnet"}, // second address space
		{"a", "172.16.16.0", 1, "from-internet"},
		{"a", "192.168.1.4", 1, "from-internet"}, // vb is not a's VirtualNetwork
		{"a", "168.63.129.16", 1, "from-vnet"},
		{"b", "192.168.1.4", 1, "from-vnet"},
		{"b", "10.0.1.4", 1, "from-internet"},
		{"b", "168.63.129.16", 1, "from-vnet"},
		{"b", "168.63.129.16", 2, "from-lb"},
		{"a", "168.63.129.16", 2, "from-lb"},
		{"a", "10.0.1.5", 2, "AllowVnetInBound"},
		{"a", "198.51.100.10", 2, "DenyAllInBound"},
	}
	for _, c := range cases {
		dst := top.NodeByName(c.node).Addr.String()
		if v := s.Check(c.node, Inbound, tcp(c.src, dst, 999, c.port)); v.Rule != c.rule {
			t.Errorf("%s inbound from %s to port %d: decided by %s, want g/%s", c.node, c.src, c.port, v, c.rule)
		}
	}
	st := s.Stats()[0]
	if strings.Join(st.VNets, ",") != "va,vb" || strings.Join(st.Subnets, ",") != "sa,sb" {
		t.Errorf("g is compiled for VNets %v and attached to subnets %v, want [va vb] and [sa sb]", st.VNets, st.Subnets)
	}
}

// F9: the singular and plural forms of each field compile to the same rule.
func TestSingularAndPlural(t *testing.T) {
	_, one := lab(t, rule("name: r, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, "+
		"sourceAddressPrefix: 198.51.100.0/24, destinationAddressPrefix: 10.0.1.4, sourcePortRange: 1000-2000, destinationPortRange: 80"), nil)
	_, many := lab(t, rule("name: r, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, "+
		"sourceAddressPrefixes: [198.51.100.0/24], destinationAddressPrefixes: [10.0.1.4], sourcePortRanges: ['1000-2000'], destinationPortRanges: [80]"), nil)
	for _, src := range []string{"198.51.100.10", "198.51.101.10"} {
		for _, sport := range []uint16{999, 1000, 2000, 2001} {
			for _, dport := range []uint16{79, 80, 81} {
				tp := tcp(src, "10.0.1.4", sport, dport)
				a, b := one.Check("vm1", Inbound, tp), many.Check("vm1", Inbound, tp)
				if a.Rule != b.Rule || a.Allow != b.Allow {
					t.Errorf("%+v: singular form gives %s, plural %s", tp, a, b)
				}
			}
		}
	}
	if v := many.Check("vm1", Inbound, tcp("198.51.100.10", "10.0.1.4", 1500, 80)); v.Rule != "r" {
		t.Errorf("plural rule does not match its own tuple: %s", v)
	}
}

// F14: inbound, the subnet NSG first, then the NIC's; outbound, the NIC's
// first, then the subnet's. The first Deny decides; both must allow.
func TestSubnetAndNICOrder(t *testing.T) {
	sub := []string{
		"      - {name: sub-deny-in, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPortRange: 22}",
		"      - {name: sub-allow-in, priority: 110, direction: Inbound, access: Allow, protocol: Tcp, destinationPortRange: 80-81}",
		"      - {name: sub-deny-out, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPortRange: 25}",
		"      - {name: sub-allow-out, priority: 110, direction: Outbound, access: Allow, protocol: Tcp, destinationPortRange: 443}",
	}
	nic := []string{
		"      - {name: nic-deny-in, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPortRange: 22}",
		"      - {name: nic-deny-in-81, priority: 105, direction: Inbound, access: Deny, protocol: Tcp, destinationPortRange: 81}",
		"      - {name: nic-allow-in, priority: 110, direction: Inbound, access: Allow, protocol: Tcp, destinationPortRange: 80}",
		"      - {name: nic-deny-out, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPortRange: 25}",
		"      - {name: nic-allow-out, priority: 110, direction: Outbound, access: Allow, protocol: Tcp, destinationPortRange: 443-444}",
	}
	_, s := lab(t, sub, nic)
	type step struct {
		nsg, rule string
		allow     bool
	}
	cases := []struct {
		name  string
		dir   Direction
		tp    Tuple
		allow bool
		steps []step // the last decides
	}{
		{"inbound: subnet deny stops before the NIC", Inbound, tcp("198.51.100.10", "10.0.1.4", 1234, 22), false,
			[]step{{"sub-nsg", "sub-deny-in", false}}},
		{"inbound: subnet allows, NIC denies", Inbound, tcp("198.51.100.10", "10.0.1.4", 1234, 81), false,
			[]step{{"sub-nsg", "sub-allow-in", true}, {"nic-nsg", "nic-deny-in-81", false}}},
		{"inbound: both allow", Inbound, tcp("198.51.100.10", "10.0.1.4", 1234, 80), true,
			[]step{{"sub-nsg", "sub-allow-in", true}, {"nic-nsg", "nic-allow-in", true}}},
		{"inbound: subnet default deny stops before the NIC", Inbound, tcp("198.51.100.10", "10.0.1.4", 1234, 8080), false,
			[]step{{"sub-nsg", "DenyAllInBound", false}}},
		{"outbound: NIC deny stops before the subnet", Outbound, tcp("10.0.1.4", "203.0.113.10", 1234, 25), false,
			[]step{{"nic-nsg", "nic-deny-out", false}}},
		{"outbound: NIC allows, subnet denies", Outbound, tcp("10.0.1.4", "203.0.113.10", 1234, 444), true,
			[]step{{"nic-nsg", "nic-allow-out", true}, {"sub-nsg", "AllowInternetOutBound", true}}},
		{"outbound: both allow", Outbound, tcp("10.0.1.4", "203.0.113.10", 1234, 443), true,
			[]step{{"nic-nsg", "nic-allow-out", true}, {"sub-nsg", "sub-allow-out", true}}},
		{"outbound: both fall to the defaults", Outbound, tcp("10.0.1.4", "10.0.2.4", 1234, 1433), true,
			[]step{{"nic-nsg", "AllowVnetOutBound", true}, {"sub-nsg", "AllowVnetOutBound", true}}},
	}
	for _, c := range cases {
		v := s.Check("vm1", c.dir, c.tp)
		var got []step
		for _, st := range v.Steps() {
			got = append(got, step{st.NSG, st.Name, st.Allow})
		}
		last := c.steps[len(c.steps)-1]
		if v.Allow != c.allow || fmt.Sprint(got) != fmt.Sprint(c.steps) || v.NSG != last.nsg || v.Rule != last.rule {
			t.Errorf("%s: verdict %s, evaluated %v; want allow=%v, evaluated %v", c.name, v, got, c.allow, c.steps)
		}
		wantAt := []Attachment{AttachSubnet, AttachNIC}
		if c.dir == Outbound {
			wantAt = []Attachment{AttachNIC, AttachSubnet}
		}
		for i, st := range v.Steps() {
			if st.Attachment != wantAt[i] {
				t.Errorf("%s: step %d is the %s NSG, want the %s NSG", c.name, i, st.Attachment, wantAt[i])
			}
		}
	}

	// Outbound subnet deny after a NIC allow.
	_, s = lab(t, []string{"      - {name: sub-deny-out, priority: 100, direction: Outbound, access: Deny, protocol: '*'}"},
		[]string{"      - {name: nic-allow-out, priority: 100, direction: Outbound, access: Allow, protocol: '*'}"})
	v := s.Check("vm1", Outbound, tcp("10.0.1.4", "203.0.113.10", 1234, 80))
	if v.Allow || v.N != 2 || v.NSG != "sub-nsg" || v.Rule != "sub-deny-out" || v.Evaluated[0].Name != "nic-allow-out" {
		t.Errorf("NIC allows, subnet denies: %s after %+v, want sub-nsg/sub-deny-out after nic-nsg/nic-allow-out", v, *v.Evaluated[0].Rule)
	}
}

// The same NSG on both the subnet and the NIC is evaluated twice, once for
// each attachment.
func TestSameNSGOnSubnetAndNIC(t *testing.T) {
	src := strings.Join([]string{
		"virtualNetworks:",
		"  - {name: vn, addressSpace: {addressPrefixes: [10.0.0.0/16]}, subnets: [{name: s, addressPrefix: 10.0.1.0/24, networkSecurityGroup: g}]}",
		"virtualMachines:",
		"  - {name: vm, subnet: s, networkSecurityGroup: g}",
		"networkSecurityGroups:",
		"  - name: g",
	}, "\n") + "\n"
	_, s := compiled(t, "same.yaml", src)
	v := s.Check("vm", Inbound, tcp("10.0.1.5", "10.0.1.4", 1, 2))
	if !v.Allow || v.N != 2 || v.Evaluated[0].Attachment != AttachSubnet || v.Evaluated[1].Attachment != AttachNIC {
		t.Errorf("verdict %s evaluated %+v, want g as subnet NSG then as NIC NSG", v, v.Steps())
	}
	if h, _ := s.Hits("g", Inbound, "AllowVnetInBound"); h != 2 {
		t.Errorf("AllowVnetInBound hits = %d, want 2 (one per attachment)", h)
	}
}

// A node without NSGs is not filtered; nor is an Internet host.
func TestNoNSGAllows(t *testing.T) {
	top, s := lab(t, rule("name: deny, priority: 100, direction: Inbound, access: Deny, protocol: '*'"), nil)
	for _, node := range []string{"vm2", "client"} {
		for _, dir := range []Direction{Inbound, Outbound} {
			for _, tp := range []Tuple{tcp("198.51.100.10", "10.0.2.4", 1, 22), icmp("203.0.113.10", "10.0.2.4")} {
				v := s.Check(node, dir, tp)
				if !v.Allow || v.NSG != "" || v.N != 0 || s.Node(node).HasNSG(dir) {
					t.Errorf("%s %s %+v: %s, want allowed with no NSG", node, dir, tp, v)
				}
			}
		}
	}
	if s.Node("no-such-node") != nil {
		t.Errorf("Node(no-such-node) is not nil")
	}
	if v := s.Check("no-such-node", Inbound, tcp("1.1.1.1", "2.2.2.2", 1, 2)); !v.Allow {
		t.Errorf("unknown node: %s, want allowed as a node without NSG", v)
	}
	if !s.Node("vm1").HasNSG(Inbound) || s.NodeAt(len(top.Nodes)) != nil || s.NodeAt(0).Name() != top.Nodes[0].Name {
		t.Errorf("node handles do not follow topology.Nodes")
	}
	if v := s.Node("vm1").Check(Direction(7), tcp("198.51.100.10", "10.0.1.4", 1, 2)); v.Allow {
		t.Errorf("invalid direction: %s, want denied", v)
	}
}

// articleLab is the default lab (SPEC §3) with the NSG of the article's
// example on ase2-subnet (F5): TCP 80 from ase1's VIP is allowed, other
// Internet sources are denied.
func articleLab(t testing.TB) (*topology.Topology, *Set) {
	return compiled(t, "article.yaml", articleYAMLFor(t))
}

// articleYAMLFor is articleLab's topology file.
func articleYAMLFor(t testing.TB) string {
	y := string(topology.DefaultYAML())
	for old, repl := range map[string]string{
		"        addressPrefix: 10.0.3.0/26\n": "        addressPrefix: 10.0.3.0/26\n        networkSecurityGroup: ase2-nsg\n",
		"networkSecurityGroups: []\n": strings.Join([]string{
			"networkSecurityGroups:",
			"  - name: ase2-nsg",
			"    securityRules:",
			"      - name: AllowASE1VIP",
			"        priority: 100",
			"        direction: Inbound",
			"        access: Allow",
			"        protocol: Tcp",
			"        sourceAddressPrefix: 192.23.1.2",
			"        destinationAddressPrefix: '*'",
			"        destinationPortRange: 80",
			"      - name: DenyInternet",
			"        priority: 200",
			"        direction: Inbound",
			"        access: Deny",
			"        protocol: '*'",
			"        sourceAddressPrefix: Internet",
			"        destinationAddressPrefix: '*'",
		}, "\n") + "\n",
	} {
		if !strings.Contains(y, old) {
			t.Fatalf("the default lab no longer contains %q", old)
		}
		y = strings.Replace(y, old, repl, 1)
	}
	return y
}

// F5, F13: inbound rules see the front-end's private address (after DNAT)
// and the client's own source: ase1's calls arrive from its VIP and are
// admitted by AllowASE1VIP, the Internet client is stopped by DenyInternet.
func TestArticleExampleF5(t *testing.T) {
	top, s := articleLab(t)
	fe := top.NodeByName("ase2-fe1").Addr.String() // 10.0.3.4
	cases := []struct {
		src   string
		port  uint16
		allow bool
		rule  string
	}{
		{"192.23.1.2", 80, true, "AllowASE1VIP"},     // ase1's VIP (F3, F5)
		{"198.51.100.10", 80, false, "DenyInternet"}, // client
		{"192.23.1.2", 443, false, "DenyInternet"},   // only 80 was opened
		{"10.0.1.6", 80, true, "AllowVnetInBound"},   // ase1-w1 called the private address: not the article's path
		{"168.63.129.16", 80, true, "AllowVnetInBound"},
	}
	for _, c := range cases {
		v := s.Check("ase2-fe1", Inbound, tcp(c.src, fe, 40000, c.port))
		if v.Allow != c.allow || v.NSG != "ase2-nsg" || v.Rule != c.rule {
			t.Errorf("%s -> %s:%d at ase2-fe1: %s, want allow=%v by ase2-nsg/%s", c.src, fe, c.port, v, c.allow, c.rule)
		}
	}
	if v := s.Check("ase1-fe1", Inbound, tcp("198.51.100.10", top.NodeByName("ase1-fe1").Addr.String(), 40000, 80)); !v.Allow || v.NSG != "" {
		t.Errorf("ase1 has no NSG, yet %s", v)
	}
	v := s.Check("ase2-w2", Inbound, tcp("198.51.100.10", "10.0.3.7", 1, 80))
	if got := fmt.Sprint(v); got != "Deny ase2-nsg/DenyInternet (priority 200)" {
		t.Errorf("verdict prints as %q", got)
	}
	if got := fmt.Sprint(v.Steps()); got != "[subnet ase2-nsg/DenyInternet (priority 200): Deny]" {
		t.Errorf("steps print as %q", got)
	}
}

// Hits: Check counts the deciding rule of each evaluated NSG, Verify counts
// nothing, Stats reports them and InheritHits carries them to a new Set.
func TestHitCounters(t *testing.T) {
	_, s := articleLab(t)
	fe := s.Node("ase2-fe1")
	for range 3 {
		fe.Check(Inbound, tcp("192.23.1.2", "10.0.3.4", 1, 80))
	}
	fe.Check(Inbound, tcp("198.51.100.10", "10.0.3.4", 1, 80))
	fe.Verify(Inbound, tcp("198.51.100.10", "10.0.3.4", 1, 80))
	s.Check("ase2-w1", Outbound, tcp("10.0.3.6", "203.0.113.20", 1, 1433))
	want := map[string]uint64{"Inbound/AllowASE1VIP": 3, "Inbound/DenyInternet": 1, "Outbound/AllowInternetOutBound": 1}
	for _, r := range s.Stats()[0].Rules {
		if r.Hits != want[r.Direction+"/"+r.Name] {
			t.Errorf("%s %s: %d hits, want %d", r.Direction, r.Name, r.Hits, want[r.Direction+"/"+r.Name])
		}
	}
	_, next := articleLab(t)
	next.InheritHits(s)
	next.Check("ase2-fe2", Inbound, tcp("192.23.1.2", "10.0.3.5", 1, 80))
	if h, ok := next.Hits("ASE2-NSG", Inbound, "allowase1vip"); !ok || h != 4 {
		t.Errorf("after InheritHits and one more Check, AllowASE1VIP has %d hits (found %v), want 4", h, ok)
	}
	if _, ok := next.Hits("ase2-nsg", Outbound, "AllowASE1VIP"); ok {
		t.Errorf("Hits found an inbound rule among the outbound ones")
	}

	// The same rule turned to Deny by apply: its Allows are not its
	// Denies, which the metrics would report under access="Deny".
	flipped := strings.Replace(articleYAMLFor(t), "access: Allow", "access: Deny", 1)
	_, denied := compiled(t, "flipped.yaml", flipped)
	denied.InheritHits(next)
	if h, ok := denied.Hits("ase2-nsg", Inbound, "AllowASE1VIP"); !ok || h != 0 {
		t.Errorf("AllowASE1VIP turned from Allow to Deny inherited %d hits (found %v), want 0: they were Allows", h, ok)
	}
	if h, _ := denied.Hits("ase2-nsg", Inbound, "DenyInternet"); h != 1 {
		t.Errorf("DenyInternet, unchanged, has %d hits after the flip of another rule, want its 1", h)
	}
}

// The per-new-flow path allocates nothing: by handle, by name, and Verify.
func TestCheckAllocatesNothing(t *testing.T) {
	_, s := articleLab(t)
	h := s.Node("ase2-fe1")
	tps := []Tuple{tcp("192.23.1.2", "10.0.3.4", 1, 80), tcp("198.51.100.10", "10.0.3.4", 1, 80), icmp("10.0.1.6", "10.0.3.4")}
	var sink bool
	for name, f := range map[string]func(){
		"handle": func() {
			for _, tp := range tps {
				sink = sink != h.Check(Inbound, tp).Allow
			}
		},
		"name": func() {
			for _, tp := range tps {
				sink = sink != s.Check("ase2-fe1", Inbound, tp).Allow
			}
		},
		"verify": func() {
			for _, tp := range tps {
				v := h.Verify(Inbound, tp)
				sink = sink != (len(v.Steps()) > 0)
			}
		},
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("Check by %s: %v allocations per run, want 0", name, n)
		}
	}
	_ = sink
}

// Checks from many goroutines are safe (run with -race) and every one is
// counted.
func TestConcurrentChecks(t *testing.T) {
	_, s := articleLab(t)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := s.Node(fmt.Sprintf("ase2-fe%d", w%2+1))
			for range each {
				h.Check(Inbound, tcp("198.51.100.10", "10.0.3.4", 1, 80))
			}
		}()
	}
	var stats []NSGStats
	wg.Add(1)
	go func() { defer wg.Done(); stats = s.Stats() }()
	wg.Wait()
	_ = stats
	if h, _ := s.Hits("ase2-nsg", Inbound, "DenyInternet"); h != workers*each {
		t.Errorf("DenyInternet hits = %d, want %d", h, workers*each)
	}
}

func TestParseDirection(t *testing.T) {
	for s, want := range map[string]Direction{"inbound": Inbound, "Inbound": Inbound, "in": Inbound, "OUTBOUND": Outbound, "out": Outbound} {
		if d, err := ParseDirection(s); err != nil || d != want {
			t.Errorf("ParseDirection(%q) = %v, %v; want %v", s, d, err, want)
		}
	}
	if _, err := ParseDirection("sideways"); err == nil {
		t.Errorf("ParseDirection(sideways) gave no error")
	}
}

// Compile refuses what topology validation would have: an NSG attached
// outside any VNet and rules with values the model does not define.
func TestCompileErrors(t *testing.T) {
	if _, err := Compile(nil); err == nil {
		t.Errorf("Compile(nil) gave no error")
	}
	top, _ := lab(t, []string{}, nil)
	bad := *top.NSGs[0]
	bad.Rules = []*topology.Rule{{Name: "r", Priority: 100, Direction: topology.Inbound, Access: topology.Allow, Protocol: "Gre",
		SourcePrefixes: []string{"*"}, DestinationPrefixes: []string{"*"}, SourcePorts: []topology.PortRange{topology.AllPorts}, DestinationPorts: []topology.PortRange{topology.AllPorts}}}
	cp := *top
	cp.NSGs = []*topology.NSG{&bad, top.NSGs[1]}
	if _, err := Compile(&cp); err == nil || !strings.Contains(err.Error(), "Gre") {
		t.Errorf("protocol Gre: err = %v", err)
	}
	bad.Rules[0].Protocol, bad.Rules[0].SourcePrefixes = topology.ProtocolAny, []string{"Storage"}
	if _, err := Compile(&cp); err == nil || !strings.Contains(err.Error(), "Storage") {
		t.Errorf("unknown tag: err = %v", err)
	}
}

// F11: the VirtualNetwork tag takes in the on-premises address space the
// gateway connects, as Azure's does ("all connected on-premises address
// spaces"), and Internet leaves it out: an NSG that denies Internet
// inbound still admits the corporate network, and AllowVnetInBound and
// AllowVnetOutBound carry it. On-premises addresses used to be Internet.
func TestServiceTagsOnPremises(t *testing.T) {
	src := strings.Join([]string{
		"virtualNetworks:",
		"  - name: va",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: sa, addressPrefix: 10.0.1.0/24, networkSecurityGroup: g}",
		"virtualMachines:",
		"  - {name: a, subnet: sa, privateIpAddress: 10.0.1.4}",
		"onPremises:",
		"  addressSpace: {addressPrefixes: [172.16.0.0/16, 192.168.8.0/24]}",
		"  natAddress: 198.18.0.10",
		"  gateway: {name: corp-gw, address: 172.16.0.4}",
		"  hosts: [{name: corp-host, address: 172.16.1.10}]",
		"networkSecurityGroups:",
		"  - name: g",
		"    securityRules:",
		"      - {name: from-internet, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: Internet, destinationPortRange: 1}",
		"      - {name: from-vnet, priority: 110, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: VirtualNetwork, destinationPortRange: 1}",
		"      - {name: to-internet, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationAddressPrefix: Internet, destinationPortRange: 1}",
	}, "\n") + "\n"
	top, s := compiled(t, "onprem.yaml", src)
	ref := newReference(top)
	cases := []struct {
		dir      Direction
		tp       Tuple
		rule     string
		refAllow bool
	}{
		{Inbound, tcp("172.16.1.10", "10.0.1.4", 999, 1), "from-vnet", true},
		{Inbound, tcp("192.168.8.200", "10.0.1.4", 999, 1), "from-vnet", true}, // second prefix
		{Inbound, tcp("172.17.0.1", "10.0.1.4", 999, 1), "from-internet", false},
		{Inbound, tcp("198.51.100.10", "10.0.1.4", 999, 1), "from-internet", false},
		{Inbound, tcp("172.16.1.10", "10.0.1.4", 999, 2), "AllowVnetInBound", true},
		{Outbound, tcp("10.0.1.4", "172.16.1.10", 999, 1), "AllowVnetOutBound", true},
		{Outbound, tcp("10.0.1.4", "203.0.113.10", 999, 1), "to-internet", false},
	}
	for _, c := range cases {
		v := s.Check("a", c.dir, c.tp)
		if v.Rule != c.rule {
			t.Errorf("%s %v:%d -> %v:%d: decided by %s, want g/%s", c.dir, c.tp.Src, c.tp.SrcPort, c.tp.Dst, c.tp.DstPort, v, c.rule)
		}
		if allow, _ := ref.check(top.NodeByName("a"), c.dir, c.tp); allow != c.refAllow {
			t.Errorf("%s %v -> %v: the reference evaluator says allow=%v, want %v", c.dir, c.tp.Src, c.tp.Dst, allow, c.refAllow)
		}
	}
}
