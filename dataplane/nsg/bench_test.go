package nsg

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/topology"
)

// benchLab is a lab whose subnet NSG holds n inbound rules in all (n-3 of
// its own and the 3 defaults), random but shaped like real ones: public
// CIDRs of every length, VNet subnets, service tags, well-known and random
// ports, ranges and lists, mostly TCP.
func benchLab(tb testing.TB, n int, seed uint64) (*topology.Topology, *Set, []Tuple) {
	rng := rand.New(rand.NewPCG(seed, 7))
	public := func() string {
		bits := []int{8, 12, 16, 20, 24, 24, 26, 28, 29, 30, 32, 32, 32}[rng.IntN(13)]
		a := header.Addr(rng.Uint32()).Mask(bits)
		return fmt.Sprintf("%s/%d", a, bits)
	}
	private := func() string {
		bits := []int{16, 20, 24, 24, 26, 27, 28, 32}[rng.IntN(8)]
		a := header.Addr(10<<24 | rng.Uint32()&0xffff).Mask(bits)
		return fmt.Sprintf("%s/%d", a, bits)
	}
	srcPrefix := func() string {
		switch x := rng.IntN(100); {
		case x < 45:
			return public()
		case x < 60:
			return private()
		case x < 68:
			return "Internet"
		case x < 76:
			return "VirtualNetwork"
		case x < 80:
			return "AzureLoadBalancer"
		}
		return "'*'"
	}
	dstPrefix := func() string {
		switch x := rng.IntN(100); {
		case x < 50:
			return "'*'"
		case x < 80:
			return private()
		case x < 90:
			return "VirtualNetwork"
		}
		return header.Addr(10<<24 | rng.Uint32()&0xffff).String()
	}
	wellKnown := []int{21, 22, 25, 53, 80, 443, 454, 455, 990, 1433, 3389, 4016, 4018, 4020, 5985, 8080, 8443}
	dstPort := func() string {
		switch x := rng.IntN(100); {
		case x < 50:
			return fmt.Sprint(wellKnown[rng.IntN(len(wellKnown))])
		case x < 70:
			return fmt.Sprint(1 + rng.IntN(65535))
		case x < 90:
			lo := 1 + rng.IntN(65000)
			return fmt.Sprintf("'%d-%d'", lo, lo+rng.IntN(500))
		}
		return "'*'"
	}
	srcPort := func() string {
		if rng.IntN(10) == 0 {
			lo := 1024 + rng.IntN(60000)
			return fmt.Sprintf("'%d-%d'", lo, lo+rng.IntN(2000))
		}
		return "'*'"
	}
	list := func(elem func() string, maxLen int) string {
		var xs []string
		for range 1 + rng.IntN(maxLen) {
			xs = append(xs, elem())
		}
		return "[" + strings.Join(xs, ", ") + "]"
	}
	lines := []string{
		"virtualNetworks:",
		"  - name: vnet1",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: web, addressPrefix: 10.0.1.0/24, networkSecurityGroup: big}",
		"virtualMachines:",
		"  - {name: vm1, subnet: web, privateIpAddress: 10.0.1.4}",
		"networkSecurityGroups:",
		"  - name: big",
	}
	user := n - len(topology.DefaultRules(topology.Inbound))
	if user > 0 {
		lines = append(lines, "    securityRules:")
	}
	prios := rng.Perm(4096 - 100 + 1)
	for i := range user {
		lines = append(lines, fmt.Sprintf(
			"      - {name: r%d, priority: %d, direction: Inbound, access: %s, protocol: %s, sourceAddressPrefixes: %s, destinationAddressPrefixes: %s, sourcePortRanges: %s, destinationPortRanges: %s}",
			i, 100+prios[i], []string{"Allow", "Deny"}[rng.IntN(2)], []string{"Tcp", "Tcp", "Tcp", "Tcp", "Tcp", "Tcp", "Udp", "Udp", "'*'", "Icmp"}[rng.IntN(10)],
			list(srcPrefix, 3), list(dstPrefix, 2), list(srcPort, 1), list(dstPort, 4)))
	}
	top, err := topology.Parse("bench.yaml", []byte(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := Compile(top)
	if err != nil {
		tb.Fatal(err)
	}
	// New flows to vm1 from anywhere: Internet hosts, VNet machines, the
	// platform; mostly TCP to well-known ports.
	tuples := make([]Tuple, 4096)
	for i := range tuples {
		tp := Tuple{Dst: addr("10.0.1.4"), SrcPort: uint16(32768 + rng.IntN(28000)), Proto: header.ProtoTCP}
		switch x := rng.IntN(10); {
		case x < 6:
			tp.Src = header.Addr(rng.Uint32())
		case x < 9:
			tp.Src = header.Addr(10<<24 | rng.Uint32()&0xffff)
		default:
			tp.Src = addr("168.63.129.16")
		}
		tp.DstPort = uint16(wellKnown[rng.IntN(len(wellKnown))])
		if rng.IntN(4) == 0 {
			tp.DstPort = uint16(rng.Uint32())
		}
		switch rng.IntN(10) {
		case 0:
			tp.Proto = header.ProtoUDP
		case 1:
			tp.Proto, tp.SrcPort, tp.DstPort = header.ProtoICMP, 0, 0
		}
		tuples[i] = tp
	}
	return top, s, tuples
}

// BenchmarkCheck is the cost of a new flow's NSG verdict with 10, 1,000 and
// 4,000 rules in the evaluated direction (3 of them the F10 defaults).
//
// "mixed" are random new flows. "deep" are the quarter of them whose
// deciding rule comes latest in evaluation order, so that the lookup goes
// furthest into the bit vectors; its "position" metric is their median
// deciding rule's place in that order (0 is the first rule).
func BenchmarkCheck(b *testing.B) {
	for _, n := range []int{10, 1000, 4000} {
		top, s, tuples := benchLab(b, n, uint64(n))
		h := s.Node("vm1")
		pos := map[string]int{}
		for i, r := range top.NSGByName("big").Effective(topology.Inbound) {
			pos[r.Name] = i
		}
		deep := slices.Clone(tuples)
		at := func(tp Tuple) int { return pos[h.Verify(Inbound, tp).Rule] }
		slices.SortStableFunc(deep, func(x, y Tuple) int { return at(y) - at(x) })
		deep = deep[:len(deep)/4]
		for _, set := range []struct {
			name   string
			tuples []Tuple
		}{{"mixed", tuples}, {"deep", deep}} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, set.name), func(b *testing.B) {
				benchTuples(b, h, set.tuples)
				ps := make([]int, len(set.tuples))
				for i, tp := range set.tuples {
					ps[i] = at(tp)
				}
				slices.Sort(ps)
				b.ReportMetric(float64(ps[len(ps)/2]), "position")
			})
		}
	}
}

func benchTuples(b *testing.B, h *NodeNSGs, tps []Tuple) {
	if len(tps) == 0 {
		b.Skip("no such tuples")
	}
	allowed, i := 0, 0
	for b.Loop() {
		if h.Check(Inbound, tps[i]).Allow {
			allowed++
		}
		if i++; i == len(tps) {
			i = 0
		}
	}
}

// BenchmarkCheckAdversarial is the worst case of the aggregate bit vectors:
// 3,997 rules alternate between "from anywhere to port 80" and "from
// 192.0.2.1 to any port", so for a flow from elsewhere to port 443 every
// field has a candidate in every word, no rule matches, and the lookup
// ANDs all 63 words before DenyAllInBound decides.
func BenchmarkCheckAdversarial(b *testing.B) {
	lines := []string{
		"virtualNetworks:",
		"  - {name: vnet1, addressSpace: {addressPrefixes: [10.0.0.0/16]}, subnets: [{name: web, addressPrefix: 10.0.1.0/24, networkSecurityGroup: big}]}",
		"virtualMachines:",
		"  - {name: vm1, subnet: web, privateIpAddress: 10.0.1.4}",
		"networkSecurityGroups:",
		"  - name: big",
		"    securityRules:",
	}
	for i := range 4096 - 100 + 1 {
		f := "sourceAddressPrefix: '*', destinationPortRange: 80"
		if i%2 == 1 {
			f = "sourceAddressPrefix: 192.0.2.1, destinationPortRange: '*'"
		}
		lines = append(lines, fmt.Sprintf("      - {name: r%d, priority: %d, direction: Inbound, access: Allow, protocol: Tcp, %s}", i, 100+i, f))
	}
	top, err := topology.Parse("adversarial.yaml", []byte(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		b.Fatal(err)
	}
	s, err := Compile(top)
	if err != nil {
		b.Fatal(err)
	}
	tp := tcp("198.51.100.10", "10.0.1.4", 40000, 443)
	if v := s.Node("vm1").Verify(Inbound, tp); v.Rule != "DenyAllInBound" {
		b.Fatalf("adversarial flow decided by %s", v)
	}
	benchTuples(b, s.Node("vm1"), []Tuple{tp})
}

// BenchmarkLinearReference is the tests' reference evaluator (a first-match
// scan that parses nothing per call but compares tags and prefixes through
// netip) over the same 4,000 rules and flows, for scale. It stops at the
// first match, which in these random rule sets comes early.
func BenchmarkLinearReference(b *testing.B) {
	top, _, tuples := benchLab(b, 4000, 4000)
	n := top.NodeByName("vm1")
	g := top.NSGByName("big")
	rules := g.Effective(topology.Inbound)
	i := 0
	for b.Loop() {
		tp := tuples[i]
		for _, r := range rules {
			if refRule(r, n.VNet, top.OnPremises, tp) {
				break
			}
		}
		if i++; i == len(tuples) {
			i = 0
		}
	}
}

// BenchmarkCompile is the cost of compiling a 4,000-rule NSG (both
// directions): what `emulator apply` pays once. table-bytes is the memory
// the compiled inbound table holds.
func BenchmarkCompile(b *testing.B) {
	top, s, _ := benchLab(b, 4000, 4000)
	for b.Loop() {
		if _, err := Compile(top); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Node("vm1").steps[Inbound][0].t.bytes()), "table-bytes")
}
