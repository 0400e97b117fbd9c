package nsg

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/topology"
)

// The reference evaluator: the obvious first-match scan over the topology's
// rules, with tags resolved by netip. It shares no code with the compiled
// lookup, so agreeing with it on many random rule sets and tuples is the
// main evidence that the bit vectors are right.

type refStep struct {
	nsg   string
	at    Attachment
	rule  *topology.Rule
	allow bool
}

func refAddr(p string, v *topology.VNet, onPrem *topology.OnPremises, a netip.Addr) bool {
	inside := v.Contains(a) || a == topology.PlatformAddr || onPrem != nil && onPrem.Contains(a)
	switch p {
	case topology.Any:
		return true
	case topology.TagVirtualNetwork:
		return inside
	case topology.TagAzureLoadBalancer:
		return a == topology.PlatformAddr
	case topology.TagInternet:
		return !inside
	}
	pr, ok := refPrefixes.Load(p)
	if !ok {
		pr, _ = refPrefixes.LoadOrStore(p, netip.MustParsePrefix(p))
	}
	return pr.(netip.Prefix).Contains(a)
}

// refPrefixes only caches what netip computes: parsing a prefix on every
// call made the randomized tests slow under -race.
var refPrefixes sync.Map

func refAny[T any](xs []T, f func(T) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}

func refRule(r *topology.Rule, v *topology.VNet, onPrem *topology.OnPremises, tp Tuple) bool {
	switch r.Protocol {
	case topology.ProtocolTCP:
		if tp.Proto != header.ProtoTCP {
			return false
		}
	case topology.ProtocolUDP:
		if tp.Proto != header.ProtoUDP {
			return false
		}
	case topology.ProtocolICMP:
		if tp.Proto != header.ProtoICMP {
			return false
		}
	}
	src, dst := tp.Src.Netip(), tp.Dst.Netip()
	if !refAny(r.SourcePrefixes, func(p string) bool { return refAddr(p, v, onPrem, src) }) ||
		!refAny(r.DestinationPrefixes, func(p string) bool { return refAddr(p, v, onPrem, dst) }) {
		return false
	}
	if tp.Proto != header.ProtoTCP && tp.Proto != header.ProtoUDP {
		return true // no ports
	}
	return refAny(r.SourcePorts, func(p topology.PortRange) bool { return p.Contains(tp.SrcPort) }) &&
		refAny(r.DestinationPorts, func(p topology.PortRange) bool { return p.Contains(tp.DstPort) })
}

// reference evaluates a lab's NSGs by scanning their rules.
type reference struct {
	top *topology.Topology
	eff map[*topology.NSG][2][]*topology.Rule // Effective, computed once
}

func newReference(top *topology.Topology) *reference {
	r := &reference{top: top, eff: map[*topology.NSG][2][]*topology.Rule{}}
	for _, g := range top.NSGs {
		r.eff[g] = [2][]*topology.Rule{g.Effective(topology.Inbound), g.Effective(topology.Outbound)}
	}
	return r
}

func (ref *reference) nsg(g *topology.NSG, v *topology.VNet, dir Direction, tp Tuple) *topology.Rule {
	for _, r := range ref.eff[g][dir] {
		if refRule(r, v, ref.top.OnPremises, tp) {
			return r
		}
	}
	return nil
}

// check evaluates node n's NSGs as F14 says.
func (ref *reference) check(n *topology.Node, dir Direction, tp Tuple) (bool, []refStep) {
	top := ref.top
	type att struct {
		g  *topology.NSG
		v  *topology.VNet
		at Attachment
	}
	var sub, nic *att
	if n.Subnet != nil && n.Subnet.NSG != "" {
		sub = &att{top.NSGByName(n.Subnet.NSG), n.Subnet.VNet, AttachSubnet}
	}
	if n.NSG != "" {
		nic = &att{top.NSGByName(n.NSG), n.VNet, AttachNIC}
	}
	order := []*att{sub, nic}
	if dir == Outbound {
		order = []*att{nic, sub}
	}
	var steps []refStep
	for _, a := range order {
		if a == nil {
			continue
		}
		r := ref.nsg(a.g, a.v, dir, tp)
		steps = append(steps, refStep{a.g.Name, a.at, r, r.Access == topology.Allow})
		if r.Access == topology.Deny {
			return false, steps
		}
	}
	return true, steps
}

// randomLab writes a lab of two VNets (one with two address spaces) whose
// NSGs hold random rules, attached to subnets and NICs in every F14
// combination, and one NSG attached in both VNets.
type randomLab struct {
	rng   *rand.Rand
	addrs []uint32 // interesting addresses, for rules and tuples
	ports []uint16
}

var labBase = []string{
	"virtualNetworks:",
	"  - name: va",
	"    addressSpace: {addressPrefixes: [10.0.0.0/16, 172.16.0.0/20]}",
	"    subnets:",
	"      - {name: s1, addressPrefix: 10.0.1.0/24, networkSecurityGroup: g1}",
	"      - {name: s2, addressPrefix: 172.16.2.0/24, networkSecurityGroup: g3}",
	"      - {name: s3, addressPrefix: 10.0.3.0/24}",
	"  - name: vb",
	"    addressSpace: {addressPrefixes: [192.168.0.0/16]}",
	"    subnets:",
	"      - {name: sb, addressPrefix: 192.168.1.0/24, networkSecurityGroup: g1}",
	"virtualMachines:",
	"  - {name: vm1, subnet: s1, networkSecurityGroup: g2}", // subnet g1 + NIC g2
	"  - {name: vm2, subnet: s1}",                           // subnet g1 only
	"  - {name: vm3, subnet: s2, networkSecurityGroup: g1}", // subnet g3 + NIC g1
	"  - {name: vm4, subnet: s3, networkSecurityGroup: g2}", // NIC g2 only
	"  - {name: vm5, subnet: s3}",                           // none
	"  - {name: vm6, subnet: sb, networkSecurityGroup: g2}", // g1 and g2 compiled for vb too
	"internetHosts:",
	"  - {name: inet, address: 198.51.100.10}",
	"networkSecurityGroups:",
}

func newRandomLab(seed uint64) *randomLab {
	l := &randomLab{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for _, s := range []string{"0.0.0.0", "10.0.0.0", "10.0.1.4", "10.0.1.5", "10.0.1.255", "10.0.255.255", "10.1.0.0",
		"172.16.0.0", "172.16.2.4", "172.16.15.255", "172.16.16.0", "192.168.0.0", "192.168.1.4", "168.63.129.15",
		"168.63.129.16", "168.63.129.17", "198.51.100.10", "203.0.113.10", "192.23.1.2", "255.255.255.255"} {
		l.addrs = append(l.addrs, uint32(header.AddrFromNetip(netip.MustParseAddr(s))))
	}
	l.ports = []uint16{0, 1, 21, 22, 53, 79, 80, 81, 443, 454, 455, 1433, 3389, 10001, 10020, 32768, 65534, 65535}
	return l
}

func (l *randomLab) addr() uint32 {
	switch l.rng.IntN(4) {
	case 0:
		return l.rng.Uint32()
	case 1:
		return l.addrs[l.rng.IntN(len(l.addrs))] + uint32(l.rng.IntN(3)) - 1
	}
	return l.addrs[l.rng.IntN(len(l.addrs))]
}

func (l *randomLab) port() uint16 {
	if l.rng.IntN(4) == 0 {
		return uint16(l.rng.Uint32())
	}
	return l.ports[l.rng.IntN(len(l.ports))] + uint16(l.rng.IntN(3)) - 1
}

func (l *randomLab) prefix() string {
	switch l.rng.IntN(10) {
	case 0:
		return "'*'"
	case 1:
		return "VirtualNetwork"
	case 2:
		return "Internet"
	case 3:
		return "AzureLoadBalancer"
	case 4:
		return header.Addr(l.addr()).String() // a single address: a /32
	}
	bits := l.rng.IntN(33)
	if l.rng.IntN(2) == 0 {
		bits = 8 + l.rng.IntN(25)
	}
	return fmt.Sprintf("%s/%d", header.Addr(l.addr()).Mask(bits), bits)
}

func (l *randomLab) portRange() string {
	switch l.rng.IntN(5) {
	case 0:
		return "'*'"
	case 1, 2:
		return fmt.Sprintf("'%d'", l.port())
	}
	a, b := l.port(), l.port()
	if a > b {
		a, b = b, a
	}
	return fmt.Sprintf("'%d-%d'", a, b)
}

// list writes a field in its singular form or its plural form, at random.
func (l *randomLab) list(singular, plural string, elem func() string) string {
	if l.rng.IntN(3) == 0 {
		return fmt.Sprintf("%s: %s", singular, elem())
	}
	var xs []string
	for range 1 + l.rng.IntN(3) {
		xs = append(xs, elem())
	}
	return fmt.Sprintf("%s: [%s]", plural, strings.Join(xs, ", "))
}

func (l *randomLab) rules(maxRules int) []string {
	var out []string
	for _, dir := range []string{topology.Inbound, topology.Outbound} {
		n := l.rng.IntN(maxRules + 1)
		prios := l.rng.Perm(4096 - 100 + 1)[:n]
		for i, p := range prios {
			access := []string{"Allow", "Deny"}[l.rng.IntN(2)]
			proto := []string{"Tcp", "Udp", "Icmp", "'*'"}[l.rng.IntN(4)]
			out = append(out, fmt.Sprintf("      - {name: %s%d, priority: %d, direction: %s, access: %s, protocol: %s, %s, %s, %s, %s}",
				dir[:2], i, 100+p, dir, access, proto,
				l.list("sourceAddressPrefix", "sourceAddressPrefixes", l.prefix),
				l.list("destinationAddressPrefix", "destinationAddressPrefixes", l.prefix),
				l.list("sourcePortRange", "sourcePortRanges", l.portRange),
				l.list("destinationPortRange", "destinationPortRanges", l.portRange)))
		}
	}
	return out
}

func (l *randomLab) topology(t testing.TB, maxRules int) *topology.Topology {
	lines := append([]string(nil), labBase...)
	for _, g := range []string{"g1", "g2", "g3"} {
		lines = append(lines, "  - name: "+g)
		if r := l.rules(maxRules); len(r) > 0 {
			lines = append(lines, "    securityRules:")
			lines = append(lines, r...)
		}
	}
	src := strings.Join(lines, "\n") + "\n"
	top, err := topology.Parse("random.yaml", []byte(src))
	if err != nil {
		t.Fatalf("random lab does not parse: %v\n%s", err, src)
	}
	return top
}

func (l *randomLab) tuple() Tuple {
	return Tuple{
		Src: header.Addr(l.addr()), Dst: header.Addr(l.addr()),
		SrcPort: l.port(), DstPort: l.port(),
		Proto: []uint8{header.ProtoTCP, header.ProtoTCP, header.ProtoUDP, header.ProtoICMP, 47}[l.rng.IntN(5)],
	}
}

// The compiled lookup agrees with the linear reference on random rule sets
// and tuples: allow or deny, the deciding NSG and rule, and every step.
func TestCompiledEqualsReference(t *testing.T) {
	labs, tuples := 60, 1000
	if testing.Short() || raceEnabled {
		labs, tuples = 18, 300
	}
	for i := range labs {
		seed := uint64(i + 1)
		l := newRandomLab(seed)
		maxRules := []int{3, 20, 150}[i%3]
		top := l.topology(t, maxRules)
		s, err := Compile(top)
		if err != nil {
			t.Fatalf("seed %d: Compile: %v", seed, err)
		}
		ref := newReference(top)
		// Tuples also hit every rule boundary exactly.
		for range tuples {
			tp := l.tuple()
			for ni, n := range top.Nodes {
				for _, dir := range []Direction{Inbound, Outbound} {
					want, steps := ref.check(n, dir, tp)
					got := s.NodeAt(ni).Verify(dir, tp)
					if msg := diffVerdict(got, want, steps); msg != "" {
						t.Fatalf("seed %d, node %s, %s %+v: %s", seed, n.Name, dir, tp, msg)
					}
				}
			}
		}
	}
}

func diffVerdict(got Verdict, want bool, steps []refStep) string {
	if got.Allow != want {
		return fmt.Sprintf("compiled says allow=%v (%s), reference says allow=%v", got.Allow, got, want)
	}
	if int(got.N) != len(steps) {
		return fmt.Sprintf("compiled evaluated %d NSGs, reference %d", got.N, len(steps))
	}
	for i, st := range steps {
		g := got.Evaluated[i]
		if g.NSG != st.nsg || g.Attachment != st.at || g.Name != st.rule.Name || g.Priority != st.rule.Priority || g.Allow != st.allow {
			return fmt.Sprintf("step %d: compiled %s %s/%s (%d, allow=%v), reference %s %s/%s (%d, allow=%v)",
				i, g.Attachment, g.NSG, g.Name, g.Priority, g.Allow, st.at, st.nsg, st.rule.Name, st.rule.Priority, st.allow)
		}
	}
	if len(steps) > 0 {
		last := steps[len(steps)-1]
		if got.NSG != last.nsg || got.Rule != last.rule.Name {
			return fmt.Sprintf("deciding rule %s/%s, want %s/%s", got.NSG, got.Rule, last.nsg, last.rule.Name)
		}
	} else if got.NSG != "" || !got.Allow {
		return fmt.Sprintf("node without NSG got %s", got)
	}
	return ""
}

// Boundaries: for each rule of a random NSG, tuples exactly at and next to
// the ends of its address and port ranges, where an off-by-one in the
// interval cuts would show.
func TestCompiledEqualsReferenceAtBoundaries(t *testing.T) {
	labs := 10
	if testing.Short() || raceEnabled {
		labs = 4
	}
	for seed := uint64(100); seed < uint64(100+labs); seed++ {
		l := newRandomLab(seed)
		top := l.topology(t, 60)
		s, err := Compile(top)
		if err != nil {
			t.Fatal(err)
		}
		ref := newReference(top)
		var as []uint32
		var ps []uint16
		for _, g := range top.NSGs {
			for _, r := range g.Rules {
				for _, p := range append(append([]string(nil), r.SourcePrefixes...), r.DestinationPrefixes...) {
					if a, err := parseAddrSpec(p); err == nil && a.kind == specCIDR {
						as = append(as, a.lo-1, a.lo, a.hi, a.hi+1)
					}
				}
				for _, p := range append(append([]topology.PortRange(nil), r.SourcePorts...), r.DestinationPorts...) {
					ps = append(ps, p.Lo-1, p.Lo, p.Hi, p.Hi+1)
				}
			}
		}
		for range 1500 {
			tp := l.tuple()
			tp.Src = header.Addr(as[l.rng.IntN(len(as))])
			if l.rng.IntN(2) == 0 {
				tp.Dst = header.Addr(as[l.rng.IntN(len(as))])
			}
			tp.SrcPort, tp.DstPort = ps[l.rng.IntN(len(ps))], ps[l.rng.IntN(len(ps))]
			for ni, n := range top.Nodes {
				for _, dir := range []Direction{Inbound, Outbound} {
					want, steps := ref.check(n, dir, tp)
					if msg := diffVerdict(s.NodeAt(ni).Verify(dir, tp), want, steps); msg != "" {
						t.Fatalf("seed %d, node %s, %s %+v: %s", seed, n.Name, dir, tp, msg)
					}
				}
			}
		}
	}
}

// Deep lookups: big NSGs whose rules alternate between two shapes, so that
// every field has candidate rules in every word of the bit vectors and the
// lookup must scan far (the dense path of match), with a few random rules
// among them that decide some tuples late.
func TestCompiledEqualsReferenceDeep(t *testing.T) {
	labs := 6
	if testing.Short() || raceEnabled {
		labs = 2
	}
	for seed := uint64(200); seed < uint64(200+labs); seed++ {
		l := newRandomLab(seed)
		n := 1000 + l.rng.IntN(2997)
		lines := append([]string(nil), labBase...)
		lines = append(lines, "  - name: g1", "    securityRules:")
		for i, p := range l.rng.Perm(4096 - 100 + 1)[:n] {
			var f string
			switch {
			case l.rng.IntN(50) == 0:
				f = fmt.Sprintf("protocol: '*', %s, %s, %s",
					l.list("sourceAddressPrefix", "sourceAddressPrefixes", l.prefix),
					l.list("destinationAddressPrefix", "destinationAddressPrefixes", l.prefix),
					l.list("destinationPortRange", "destinationPortRanges", l.portRange))
			case i%2 == 0:
				f = fmt.Sprintf("protocol: Tcp, sourceAddressPrefix: '*', destinationPortRange: %d", l.port())
			default:
				f = fmt.Sprintf("protocol: Tcp, sourceAddressPrefix: %s, destinationPortRange: '*'", header.Addr(l.addr()))
			}
			access := []string{"Allow", "Deny"}[l.rng.IntN(2)]
			lines = append(lines, fmt.Sprintf("      - {name: r%d, priority: %d, direction: Inbound, access: %s, %s}", i, 100+p, access, f))
		}
		lines = append(lines, "  - name: g2", "  - name: g3")
		top, s := compiled(t, "deep.yaml", strings.Join(lines, "\n")+"\n")
		ref := newReference(top)
		vm2 := top.NodeByName("vm2") // subnet g1 only
		for range 2000 {
			tp := l.tuple()
			want, steps := ref.check(vm2, Inbound, tp)
			if msg := diffVerdict(s.Node("vm2").Verify(Inbound, tp), want, steps); msg != "" {
				t.Fatalf("seed %d (%d rules), %+v: %s", seed, n, tp, msg)
			}
		}
	}
}
