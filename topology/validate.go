package topology

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"
)

var (
	// Node, ASE, VM and host names become network namespace names and DNS
	// labels, and are typed on command lines: no shell metacharacters,
	// slashes or upper case.
	nodeNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	// An app name is the first label of APP.DNSSUFFIX. Azure's rule for
	// Microsoft.Web/sites: 2 to 60 letters, digits and hyphens, neither
	// starting nor ending with a hyphen; upper case is allowed, and the
	// name is a host name, so app names differ by more than case. See
	// https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftweb
	appNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,58}[A-Za-z0-9]$`)
	// Azure resource names (VNets, subnets, NSGs, rules, route tables,
	// routes), by Azure's naming rules for Microsoft.Network: 1 to 80
	// characters (a VNet 2 to 64), starting with a letter or digit and
	// ending with a letter, digit or underscore ("n1." is refused by
	// Azure). See
	// https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftnetwork
	resourceNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$`)
	vnetNameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}[A-Za-z0-9_]$`)
	dnsLabel       = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

const maxNodeName = 32

// specialRanges can be neither a VNet's address space nor a public address:
// the kernel or the dataplane gives them a meaning of their own.
//
// onPrem marks those an on-premises network cannot use either: with one of
// them, up failed after it had begun (0/8, 224/4: no default route), or the
// lab came up and a VM's ping to a host there was answered by its own
// loopback (127/8). An on-premises network of 169.254/16 or 240/4 was
// measured to work, and stays allowed.
var specialRanges = []namedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`, true},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback", true},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local", false},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast", true},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, with broadcast", false},
}

type namedRange struct {
	p      netip.Prefix
	what   string
	onPrem bool
}

// specialRange returns the first range of specialRanges that p overlaps,
// of those an on-premises network cannot use if onPrem.
func specialRange(p netip.Prefix, onPrem bool) (namedRange, bool) {
	for _, r := range specialRanges {
		if r.p.Overlaps(p) && (r.onPrem || !onPrem) {
			return r, true
		}
	}
	return namedRange{}, false
}

// claim is a name or an address taken by something in the file, kept so that
// a second taker can be told who has it.
type claim struct {
	at      loc
	what    string // the holder, as a message names it: "VM db1"
	subject string // the thing taken, as a message names it: "name db1"
}

// take records that c holds key. If something already does, it reports the
// later of the two (by line) and names the earlier.
func take[K comparable](p *parser, reg map[K]claim, key K, c claim) bool {
	prev, dup := reg[key]
	if !dup {
		reg[key] = c
		return true
	}
	first, second := prev, c
	if second.at.line < first.at.line {
		first, second = second, first
	}
	p.errAt(second.at, "%s is already used by %s (line %d)", second.subject, first.what, first.at.line)
	return false
}

// builder turns the specs read from the file into the model, checking
// everything that involves more than one value.
type builder struct {
	*parser
	t        *Topology
	nsgs     map[string]*NSG    // by lower-case name
	subnets  map[string]*Subnet // by lower-case name
	spaces   prefixSet[*VNet]
	machines map[string]claim // node and ASE names share one namespace
	addrs    map[netip.Addr]claim
	explicit map[netip.Addr]bool // addresses the file gives, which assignment skips
	hostNets map[netip.Prefix]*InternetHost
	publics  []publicAddr
	// privateSpaces are the VNets' and the on-premises address spaces as
	// the file gives them, where no public address may lie.
	privateSpaces []privateSpace
	// routeTables by lower-case name; appliances are the VirtualAppliance
	// next hops, checked once every VM has its address.
	routeTables   map[string]*RouteTable
	appliances    []appliance
	gatewayRoutes []loc
	counts        []aseCounts // parallel to t.ASEs
	pending       []pending   // nodes awaiting an address, in Nodes order
	dynamicILBs   []dynamicILB
}

// dynamicILB is an ILB ASE whose file gives no ilbAddress: Azure allocates
// one in the ASE's subnet, so assign does.
type dynamicILB struct {
	ase *ASE
	at  loc
}

// appliance is a VirtualAppliance next hop and the route table it is in.
type appliance struct {
	f  field[netip.Addr]
	rt *RouteTable
}

type publicAddr struct {
	f    field[netip.Addr]
	what string
	host bool // an Internet host's address, whose whole /24 is its network
}

type privateSpace struct {
	f     field[netip.Prefix]
	whose string // "VNet v1" or "the on-premises network"
}

type aseCounts struct {
	frontEnds, workers int
	ok                 bool // both counts valid and the name usable: nodes were made
	feAt, wAt          loc
}

func (p *parser) build(d *doc) *Topology {
	b := &builder{
		parser:   p,
		t:        &Topology{File: p.file},
		nsgs:     map[string]*NSG{},
		subnets:  map[string]*Subnet{},
		machines: map[string]claim{},
		addrs:    map[netip.Addr]claim{},
		explicit: map[netip.Addr]bool{},
		hostNets: map[netip.Prefix]*InternetHost{},

		routeTables: map[string]*RouteTable{},
	}
	b.buildNSGs(d.nsgs)
	b.buildRouteTables(d.routeTables)
	b.buildVNets(d.vnets)
	b.buildASEs(d.ases)
	b.buildVMs(d.vms)
	b.checkVIPs(d)
	b.buildHosts(d.hosts)
	b.buildOnPremises(d.onPrem)
	b.buildNATSettings(d)
	b.checkOutsideOnPremises()
	b.t.FlowLogs = d.flowLogs.v
	b.checkHostGateways()
	if !b.makeNodes(d) {
		return nil
	}
	b.assign()
	b.buildApps(d.ases)
	b.checkAppliances()
	b.t.index()
	return b.t
}

func (b *builder) nodeName(f field[string], what string) bool {
	if !f.ok {
		return false
	}
	if !nodeNameRE.MatchString(f.v) {
		b.errAt(f.loc, "%q is not a valid %s name: use 1 to %d lowercase letters, digits and hyphens, starting and ending with a letter or digit (it names a network namespace and a DNS label)", f.v, what, maxNodeName)
		return false
	}
	if f.v == PlatformNode {
		b.errAt(f.loc, "the name %q is reserved for Azure's platform endpoint %s", f.v, PlatformAddr)
		return false
	}
	return true
}

func (b *builder) resourceName(f field[string], what string) bool {
	if !f.ok {
		return false
	}
	re, length := resourceNameRE, "1 to 80"
	if what == "VNet" {
		re, length = vnetNameRE, "2 to 64"
	}
	if !re.MatchString(f.v) {
		b.errAt(f.loc, "%q is not a valid %s name: use %s letters, digits, '_', '.' and '-', starting with a letter or digit and ending with a letter, digit or '_' (Azure's naming rule)", f.v, what, length)
		return false
	}
	return true
}

func (b *builder) buildNSGs(specs []*nsgSpec) {
	names := map[string]claim{}
	for _, s := range specs {
		g := &NSG{Name: s.name.v, Line: s.at.line}
		b.t.NSGs = append(b.t.NSGs, g)
		if s.name.ok {
			if _, dup := b.nsgs[strings.ToLower(g.Name)]; !dup {
				b.nsgs[strings.ToLower(g.Name)] = g
			}
		}
		if b.resourceName(s.name, "NSG") {
			take(b.parser, names, strings.ToLower(g.Name), claim{s.name.loc, "NSG " + g.Name, "name " + g.Name})
		}
		ruleNames := map[string]claim{}
		prios := map[string]claim{}
		for _, rs := range s.rules {
			g.Rules = append(g.Rules, b.buildRule(rs, ruleNames, prios))
		}
		if len(s.rules) > MaxRulesPerNSG {
			b.errAt(s.rules[MaxRulesPerNSG].at, "NSG %s has %d rules, over the emulator's limit of %d per NSG (Azure's is 1000)", g.Name, len(s.rules), MaxRulesPerNSG)
		}
	}
	b.checkTotalRules(specs)
}

// checkTotalRules refuses more than MaxRules over all NSGs, at the rule that
// passes the limit.
func (b *builder) checkTotalRules(specs []*nsgSpec) {
	total := 0
	for _, s := range specs {
		total += len(s.rules)
	}
	if total <= MaxRules {
		return
	}
	n := 0
	for _, s := range specs {
		if n+len(s.rules) > MaxRules {
			b.errAt(s.rules[MaxRules-n].at, "the lab has %d NSG rules, over the emulator's limit of %d in all NSGs", total, MaxRules)
			return
		}
		n += len(s.rules)
	}
}

// checkVIPs refuses more than MaxVIPs public addresses that the dataplane
// translates (ASE VIPs, then VM public IPs), at the one that passes the limit.
func (b *builder) checkVIPs(d *doc) {
	var vips []loc
	for _, as := range d.ases {
		if as.vip.set {
			vips = append(vips, as.vip.loc)
		}
	}
	for _, vs := range d.vms {
		if vs.public.set {
			vips = append(vips, vs.public.loc)
		}
	}
	if len(vips) > MaxVIPs {
		b.errAt(vips[MaxVIPs], "the lab has %d VIPs and public IP addresses (ASE virtualIp, VM publicIpAddress), over the emulator's limit of %d", len(vips), MaxVIPs)
	}
}

func (b *builder) buildRule(rs *ruleSpec, names, prios map[string]claim) *Rule {
	r := &Rule{
		Name:        rs.name.v,
		Description: rs.description.v,
		Priority:    rs.priority.v,
		Direction:   rs.direction.v,
		Access:      rs.access.v,
		Protocol:    rs.proto.v,
		Line:        rs.at.line,
	}
	if b.resourceName(rs.name, "rule") {
		take(b.parser, names, strings.ToLower(r.Name), claim{rs.name.loc, "rule " + r.Name, "rule name " + r.Name})
	}
	if rs.priority.ok {
		if r.Priority < 100 || r.Priority > 4096 {
			b.errAt(rs.priority.loc, "priority %d is out of range: a rule's priority is 100 to 4096 (F9)", r.Priority)
		} else if rs.direction.ok {
			key := fmt.Sprintf("%s/%d", r.Direction, r.Priority)
			take(b.parser, prios, key, claim{rs.priority.loc, "rule " + r.Name, fmt.Sprintf("%s priority %d", r.Direction, r.Priority)})
		}
	}
	for _, f := range rs.src {
		r.SourcePrefixes = append(r.SourcePrefixes, f.v)
	}
	for _, f := range rs.dst {
		r.DestinationPrefixes = append(r.DestinationPrefixes, f.v)
	}
	for _, f := range rs.srcPorts {
		r.SourcePorts = append(r.SourcePorts, f.v)
	}
	for _, f := range rs.dstPorts {
		r.DestinationPorts = append(r.DestinationPorts, f.v)
	}
	return r
}

// span is a prefix declared somewhere, for overlap checks.
type span struct {
	p     netip.Prefix
	at    loc
	desc  string // how a message names it
	owner string // the VNet of an address space; "" for a subnet
}

func (b *builder) buildVNets(specs []*vnetSpec) {
	names, subnetNames := map[string]claim{}, map[string]claim{}
	var spaces, subnets []span
	for _, vs := range specs {
		v := &VNet{Name: vs.name.v, Line: vs.at.line}
		b.t.VNets = append(b.t.VNets, v)
		if b.resourceName(vs.name, "VNet") {
			take(b.parser, names, strings.ToLower(v.Name), claim{vs.name.loc, "VNet " + v.Name, "name " + v.Name})
		}
		spaceOK := len(vs.space) > 0
		for _, f := range vs.space {
			if !f.ok {
				spaceOK = false
				continue
			}
			b.checkSpace(f)
			b.privateSpaces = append(b.privateSpaces, privateSpace{f, "VNet " + v.Name})
			v.AddressSpace = append(v.AddressSpace, f.v)
			b.spaces.add(f.v, v)
			spaces = append(spaces, span{f.v, f.loc,
				fmt.Sprintf("address space %s of VNet %s (line %d)", f.v, v.Name, f.line), v.Name})
		}
		for _, ss := range vs.subnets {
			s := b.buildSubnet(ss, v, spaceOK, subnetNames)
			if s.Prefix.IsValid() {
				subnets = append(subnets, span{s.Prefix, ss.prefix.loc,
					fmt.Sprintf("subnet %s (%s, line %d)", s.Name, s.Prefix, s.Line), ""})
			}
		}
	}
	b.reportOverlaps(spaces)
	b.reportOverlaps(subnets)
}

// checkSpace refuses address spaces the dataplane or the kernel already give
// a meaning to.
func (b *builder) checkSpace(f field[netip.Prefix]) {
	if r, special := specialRange(f.v, false); special {
		b.errAt(f.loc, "%s overlaps %s (%s), which a VNet cannot use", f.v, r.p, r.what)
		return
	}
	if f.v.Contains(PlatformAddr) {
		b.errAt(f.loc, "%s contains %s, Azure's platform address, which a VNet cannot use", f.v, PlatformAddr)
	}
}

func (b *builder) buildSubnet(ss *subnetSpec, v *VNet, spaceOK bool, names map[string]claim) *Subnet {
	s := &Subnet{Name: ss.name.v, VNet: v, Line: ss.at.line}
	v.Subnets = append(v.Subnets, s)
	if ss.name.ok {
		if _, dup := b.subnets[strings.ToLower(s.Name)]; !dup {
			b.subnets[strings.ToLower(s.Name)] = s
		}
	}
	// Subnet names are unique across the file, not just the VNet, because
	// ASEs and VMs name their subnet alone.
	if b.resourceName(ss.name, "subnet") {
		take(b.parser, names, strings.ToLower(s.Name), claim{ss.name.loc, fmt.Sprintf("subnet %s of VNet %s", s.Name, v.Name), "subnet name " + s.Name})
	}
	if f := ss.prefix; f.ok {
		if f.v.Bits() > 29 {
			b.errAt(f.loc, "%s is too small: Azure's smallest subnet is a /29", f.v)
		} else {
			// Only a usable prefix is kept: addresses are checked against it
			// and assigned from it.
			s.Prefix = f.v
			if spaceOK && !b.vnetHolds(v, f.v) {
				b.errAt(f.loc, "%s lies outside the address space of VNet %s (%s)", f.v, v.Name, joinPrefixes(v.AddressSpace))
			}
		}
	}
	s.RouteTable = b.routeTableRef(ss.routeTable)
	if g := b.nsgRef(ss.nsg); g != nil {
		s.NSG = g.Name
	}
	return s
}

func (b *builder) vnetHolds(v *VNet, q netip.Prefix) bool {
	if owner, _, ok := b.spaces.containing(q.Addr(), q.Bits()); ok && owner == v {
		return true
	}
	// VNets that overlap (already an error) can hide v's prefix in the index.
	for _, p := range v.AddressSpace {
		if p.Bits() <= q.Bits() && p.Contains(q.Addr()) {
			return true
		}
	}
	return false
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// reportOverlaps finds every prefix that overlaps an earlier one in
// O(n log n): sorted by start address, a prefix overlaps the widest one seen
// so far or none. Each overlap is reported at the later of the two lines.
func (b *builder) reportOverlaps(spans []span) {
	order := make([]int, len(spans))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		pi, pj := spans[order[i]].p, spans[order[j]].p
		if pi.Addr() != pj.Addr() {
			return pi.Addr().Less(pj.Addr())
		}
		return pi.Bits() < pj.Bits()
	})
	widest := -1
	for _, i := range order {
		if widest >= 0 && u32(spans[i].p.Addr()) <= u32(LastAddr(spans[widest].p)) {
			first, second := spans[widest], spans[i]
			if second.at.line < first.at.line || second.at.line == first.at.line && i < widest {
				first, second = second, first
			}
			// Azure lets VNets that are not peered overlap, so one who knows
			// Azure takes the refusal for a bug unless it says why.
			why := ""
			if first.owner != "" && !strings.EqualFold(first.owner, second.owner) {
				why = "; Azure allows VNets that are not peered to overlap, but the emulator gives every machine an address of its own, so its VNets may not"
			}
			b.errAt(second.at, "%s overlaps %s%s", second.p, first.desc, why)
		}
		if widest < 0 || u32(LastAddr(spans[i].p)) > u32(LastAddr(spans[widest].p)) {
			widest = i
		}
	}
}

func (b *builder) subnetRef(f field[string]) *Subnet {
	if !f.ok {
		return nil
	}
	if s := b.subnets[strings.ToLower(f.v)]; s != nil {
		return s
	}
	b.errAt(f.loc, "no subnet is named %q%s", f.v, didYouMean(f.v, b.subnets, func(s *Subnet) string { return s.Name }))
	return nil
}

func (b *builder) nsgRef(f field[string]) *NSG {
	if !f.ok {
		return nil
	}
	if g := b.nsgs[strings.ToLower(f.v)]; g != nil {
		return g
	}
	b.errAt(f.loc, "no networkSecurityGroups entry is named %q%s", f.v, didYouMean(f.v, b.nsgs, func(g *NSG) string { return g.Name }))
	return nil
}

// didYouMean suggests the declared name a bad reference was probably meant
// to be.
func didYouMean[T any](s string, declared map[string]T, name func(T) string) string {
	if len(declared) > 256 {
		return "" // a guess among so many costs more than it helps
	}
	names := make([]string, 0, len(declared))
	for _, v := range declared {
		names = append(names, name(v))
	}
	sort.Strings(names) // ties go to the same name every run
	if m := suggest(s, names); m != "" {
		return fmt.Sprintf(" (did you mean %s?)", m)
	}
	return ""
}

// inSubnet reports whether a node address given in the file is usable in s
// (F1). When s itself is unusable nothing can be said, and it says no.
func (b *builder) inSubnet(f field[netip.Addr], s *Subnet) bool {
	if s == nil || !s.Prefix.IsValid() {
		return false
	}
	a := f.v
	if !s.Prefix.Contains(a) {
		b.errAt(f.loc, "%s lies outside subnet %s (%s)", a, s.Name, s.Prefix)
		return false
	}
	if Reserved(s.Prefix, a) {
		var why string
		switch off := u32(a) - u32(s.Prefix.Addr()); {
		case off == 0:
			why = "the network address"
		case off == 1:
			why = "the gateway"
		case off <= 3:
			why = "kept for Azure DNS"
		default:
			why = "the broadcast address"
		}
		b.errAt(f.loc, "%s is reserved in subnet %s (%s): it is %s (F1: .0, .1, .2, .3 and the last address are never given to a machine)", a, s.Name, s.Prefix, why)
		return false
	}
	return true
}

// public reports whether a is usable as a public address: a VIP, a VM's
// public IP, an Internet host.
func (b *builder) public(f field[netip.Addr], what string) bool {
	a := f.v
	if a == PlatformAddr {
		b.errAt(f.loc, "%s is Azure's platform address (DNS and health probes, F15) and cannot be %s", a, what)
		return false
	}
	for _, r := range specialRanges {
		if r.p.Contains(a) {
			b.errAt(f.loc, "%s lies in %s (%s) and cannot be %s", a, r.p, r.what, what)
			return false
		}
	}
	if v, p, ok := b.spaces.containing(a, 32); ok {
		b.errAt(f.loc, "%s lies inside the address space of VNet %s (%s); %s must lie outside every VNet", a, v.Name, p, what)
		return false
	}
	b.publics = append(b.publics, publicAddr{f: f, what: what})
	return true
}

func (b *builder) takeAddr(f field[netip.Addr], what string) {
	take(b.parser, b.addrs, f.v, claim{f.loc, what, "address " + f.v.String()})
}

func (b *builder) buildASEs(specs []*aseSpec) {
	suffixes := map[string]claim{}
	for _, as := range specs {
		a := &ASE{Name: as.name.v, Kind: as.kind.v, ILBMode: as.mode.v, DNSSuffix: as.dnsSuffix.v, SNATPorts: DefaultSNATPorts, Line: as.at.line}
		b.t.ASEs = append(b.t.ASEs, a)
		if as.snatPorts.ok {
			if as.snatPorts.v.Lo == 0 {
				b.errAt(as.snatPorts.loc, "port 0 cannot be a SNAT port; use a range such as 1024-65535")
			} else {
				a.SNATPorts = as.snatPorts.v
			}
		}
		c := aseCounts{
			frontEnds: b.count(as.frontEnds, "front-ends"),
			workers:   b.count(as.workers, "workers"),
			feAt:      as.frontEnds.loc,
			wAt:       as.workers.loc,
		}
		nameOK := b.nodeName(as.name, "ASE")
		if nameOK {
			take(b.parser, b.machines, a.Name, claim{as.name.loc, "ASE " + a.Name, "name " + a.Name})
			for _, n := range []string{fmt.Sprintf("%s-fe%d", a.Name, c.frontEnds), fmt.Sprintf("%s-w%d", a.Name, c.workers)} {
				if len(n) > maxNodeName {
					b.errAt(as.name.loc, "ASE name %q is too long: its node %s would have %d characters, over the limit of %d", a.Name, n, len(n), maxNodeName)
					nameOK = false
					break
				}
			}
		}
		c.ok = nameOK && c.frontEnds > 0 && c.workers > 0
		b.counts = append(b.counts, c)
		if c.frontEnds > 0 && c.workers > 0 {
			b.sharePorts(as, a, c.frontEnds+c.workers)
		}

		if a.Subnet = b.subnetRef(as.subnet); a.Subnet != nil {
			if other := a.Subnet.ASE; other != nil {
				b.errAt(as.subnet.loc, "subnet %s already holds ASE %s (line %d); an ASE needs a subnet of its own", a.Subnet.Name, other.Name, other.Line)
			} else {
				a.Subnet.ASE = a
			}
		}
		if as.vip.ok {
			if b.public(as.vip, "a virtualIp") {
				a.VIP = as.vip.v
			}
			b.takeAddr(as.vip, "the virtualIp of ASE "+a.Name)
		}
		if as.kind.ok {
			b.kindFields(as, a)
		}
		if a.DNSSuffix != "" {
			take(b.parser, suffixes, a.DNSSuffix, claim{as.dnsSuffix.loc, "ASE " + a.Name, "dnsSuffix " + a.DNSSuffix})
		}
	}
}

// kindFields checks what depends on an ASE's kind: the ILB address and mode,
// and the default DNS suffix.
func (b *builder) kindFields(as *aseSpec, a *ASE) {
	suffix := ".p.azurewebsites.net"
	switch a.Kind {
	case KindILB:
		suffix = ".internal"
		switch {
		case !as.ilb.set:
			// ARM's hostingEnvironments has no property for the ILB
			// address: Azure allocates it in the subnet (the ASE v1 ILB
			// article has it read from Properties after creation).
			b.dynamicILBs = append(b.dynamicILBs, dynamicILB{a, as.at})
		case as.ilb.ok:
			b.explicit[as.ilb.v] = true
			if b.inSubnet(as.ilb, a.Subnet) {
				a.ILB = as.ilb.v
			}
			b.takeAddr(as.ilb, "the ilbAddress of ASE "+a.Name)
		}
		switch {
		case !as.mode.set:
			a.ILBMode = ILBModeWebPublishing
		case a.ILBMode == ILBModeNone:
			b.errAt(as.mode.loc, "None serves nothing on the ILB address: it is ARM's External ASE; use kind External, or mode %q, %q or %q", ILBModeWeb, ILBModePublishing, ILBModeWebPublishing)
		}
	case KindExternal:
		if as.ilb.set {
			b.errAt(as.ilb.loc, "only an ASE of kind ILB has an ilbAddress")
		}
		// None is what ARM holds for an External ASE, so a pasted one is
		// accepted; any other mode needs an ILB.
		if as.mode.set && as.mode.ok && a.ILBMode != ILBModeNone {
			b.errAt(as.mode.loc, "only an ASE of kind ILB has an internalLoadBalancingMode other than None")
		}
		a.ILBMode = ""
	}
	if !as.dnsSuffix.set && as.name.ok {
		a.DNSSuffix = a.Name + suffix
	}
}

// count returns an ASE's front-end or worker count: 2 when not given, 0 when
// invalid (reported), so no nodes are made from a bad count.
// maxPortsPerInstance is the most allocatedOutboundPorts Azure accepts.
const maxPortsPerInstance = 64000

// sharePorts gives each of the n machines of ASE a its share of the VIP's
// SNAT ports (F17).
func (b *builder) sharePorts(as *aseSpec, a *ASE, n int) {
	size := a.SNATPorts.Size()
	switch f := as.portsPerInstance; {
	case !f.set:
		if a.PortsPerInstance = DefaultPortsPerInstance(n, size); a.PortsPerInstance == 0 {
			b.errAt(as.snatPorts.loc, "%v has %d ports, fewer than the %d machines of ASE %s: each needs ports of its own (F17)", a.SNATPorts, size, n, a.Name)
		}
	case !f.ok:
	case f.v < 1 || f.v > maxPortsPerInstance:
		b.errAt(f.loc, "%d is out of range: allocatedOutboundPorts is 1 to %d ports for each machine", f.v, maxPortsPerInstance)
	case f.v*n > size:
		b.errAt(f.loc, "%d ports for each of the %d machines of ASE %s make %d, more than the %d of its snatPortRange %v (F17)", f.v, n, a.Name, f.v*n, size, a.SNATPorts)
	default:
		a.PortsPerInstance = f.v
	}
}

func (b *builder) count(f field[int], what string) int {
	switch {
	case !f.set:
		return 2
	case !f.ok:
		return 0
	case f.v < 1 || f.v > MaxASESize:
		b.errAt(f.loc, "%d is out of range: an ASE has 1 to %d %s", f.v, MaxASESize, what)
		return 0
	}
	return f.v
}

func (b *builder) buildVMs(specs []*vmSpec) {
	for _, vs := range specs {
		vm := &VM{Name: vs.name.v, IPForwarding: vs.forwarding.v, Line: vs.at.line}
		b.t.VMs = append(b.t.VMs, vm)
		if b.nodeName(vs.name, "VM") {
			take(b.parser, b.machines, vm.Name, claim{vs.name.loc, "VM " + vm.Name, "name " + vm.Name})
		}
		vm.Subnet = b.subnetRef(vs.subnet)
		if vs.private.ok {
			b.explicit[vs.private.v] = true
			if b.inSubnet(vs.private, vm.Subnet) {
				vm.PrivateIP = vs.private.v
			}
			b.takeAddr(vs.private, "the privateIpAddress of VM "+vm.Name)
		}
		if vs.public.ok {
			if b.public(vs.public, "a publicIpAddress") {
				vm.PublicIP = vs.public.v
			}
			b.takeAddr(vs.public, "the publicIpAddress of VM "+vm.Name)
		}
		if g := b.nsgRef(vs.nsg); g != nil {
			vm.NSG = g.Name
		}
	}
}

func (b *builder) buildHosts(specs []*hostSpec) {
	for _, hs := range specs {
		h := &InternetHost{Name: hs.name.v, Latency: hs.latency.v, Line: hs.at.line}
		b.t.Internet = append(b.t.Internet, h)
		if b.nodeName(hs.name, "Internet host") {
			take(b.parser, b.machines, h.Name, claim{hs.name.loc, "Internet host " + h.Name, "name " + h.Name})
		}
		if !hs.addr.ok {
			continue
		}
		if b.public(hs.addr, "an Internet host's address") && b.hostNet(hs.addr) {
			b.publics[len(b.publics)-1].host = true
			h.Addr = hs.addr.v
			b.hostNets[onLink24(h.Addr)] = h
		}
		b.takeAddr(hs.addr, "the address of Internet host "+h.Name)
	}
}

func onLink24(a netip.Addr) netip.Prefix {
	p, _ := a.Prefix(24)
	return p
}

// hostNet checks an Internet host's on-link /24: the dataplane is its .1,
// and .0 and .255 are not host addresses.
func (b *builder) hostNet(f field[netip.Addr]) bool {
	net := onLink24(f.v)
	switch f.v.As4()[3] {
	case 0, 1, 255:
		b.errAt(f.loc, "%s is %s of its network %s: an Internet host's gateway is the .1 of its /24, so use .2 to .254", f.v, hostNetRole(f.v), net)
		return false
	}
	if v, p, ok := b.spaces.overlapping(net); ok {
		b.errAt(f.loc, "%s is on network %s, which overlaps the address space of VNet %s (%s): an Internet host's /24 must lie outside every VNet", f.v, net, v.Name, p)
		return false
	}
	return true
}

func hostNetRole(a netip.Addr) string {
	switch a.As4()[3] {
	case 0:
		return "the network address"
	case 1:
		return "the gateway"
	}
	return "the broadcast address"
}

// checkHostGateways refuses a VIP or VM public IP that is the .0, .1 or .255
// of an Internet host's network: the host would take it for its gateway or
// a broadcast, not for a remote machine.
func (b *builder) checkHostGateways() {
	for _, pa := range b.publics {
		h := b.hostNets[onLink24(pa.f.v)]
		if h == nil || pa.f.v == h.Addr {
			continue
		}
		switch pa.f.v.As4()[3] {
		case 0, 1, 255:
			b.errAt(pa.f.loc, "%s is %s of Internet host %s's network %s and cannot be %s", pa.f.v, hostNetRole(pa.f.v), h.Name, onLink24(h.Addr), pa.what)
		}
	}
}

func (b *builder) buildApps(specs []*aseSpec) {
	for i, as := range specs {
		a := b.t.ASEs[i]
		workers := make(map[string]*Node, len(a.Workers))
		for _, w := range a.Workers {
			workers[w.Name] = w
		}
		names := map[string]claim{}
		for _, ap := range as.apps {
			app := &App{Name: ap.name.v, ASE: a, Line: ap.at.line}
			a.Apps = append(a.Apps, app)
			if ap.name.ok {
				if !appNameRE.MatchString(app.Name) {
					b.errAt(ap.name.loc, "%q is not a valid app name: use 2 to 60 letters, digits and hyphens, starting and ending with a letter or digit (Azure's rule; it is a DNS label)", app.Name)
				} else {
					take(b.parser, names, strings.ToLower(app.Name), claim{ap.name.loc, "app " + app.Name, "app name " + app.Name})
				}
			}
			if !ap.workersSet {
				app.Workers = append([]*Node(nil), a.Workers...)
				continue
			}
			if len(ap.workers) == 0 {
				b.errAt(ap.workersAt, "an app needs at least one worker; leave workers out to run it on all of them")
			}
			if !b.counts[i].ok {
				continue // the ASE has no nodes to check against; its error is reported
			}
			seen := map[string]bool{}
			for _, w := range ap.workers {
				switch n := workers[w.v]; {
				case !w.ok:
				case n == nil:
					b.errAt(w.loc, "%q is not a worker of ASE %s, whose workers are %s to %s", w.v, a.Name, a.Workers[0].Name, a.Workers[len(a.Workers)-1].Name)
				case seen[w.v]:
					b.errAt(w.loc, "worker %s is listed twice", w.v)
				default:
					seen[w.v] = true
					app.Workers = append(app.Workers, n)
				}
			}
		}
	}
}

// buildNATSettings reads connection tracking's settings and the default
// outbound address, which like any public address must be nobody else's.
func (b *builder) buildNATSettings(d *doc) {
	b.t.Conntrack = DefaultConntrack
	if c := d.conntrack; c != nil {
		if c.maxFlows.ok {
			if c.maxFlows.v < 16 || c.maxFlows.v > MaxFlows {
				b.errAt(c.maxFlows.loc, "maxFlows %d is out of range: use 16 to %d", c.maxFlows.v, MaxFlows)
			} else {
				b.t.Conntrack.MaxFlows = c.maxFlows.v
			}
		}
		for _, t := range []struct {
			f   field[time.Duration]
			dst *time.Duration
		}{{c.idle, &b.t.Conntrack.IdleTimeout}, {c.fin, &b.t.Conntrack.FinTimeout}, {c.rst, &b.t.Conntrack.RstTimeout}} {
			if t.f.ok {
				*t.dst = t.f.v
			}
		}
	}
	if f := d.defaultOutbound; f.ok {
		if b.public(f, "the defaultOutboundAddress") {
			b.t.DefaultOutbound = f.v
		}
		b.takeAddr(f, "the defaultOutboundAddress")
		return
	}
	b.t.DefaultOutbound = DefaultOutboundAddr
	if c, taken := b.addrs[DefaultOutboundAddr]; taken {
		b.errAt(c.at, "%s is the default outbound address of VMs without a public IP; use another address, or set defaultOutboundAddress to a free public address", DefaultOutboundAddr)
	}
	// A set defaultOutboundAddress is refused inside a VNet by public();
	// the default one must be as well. A VNet of 192.0.2.0/24 came up, and
	// its VMs' Internet traffic left as 192.0.2.1, its own subnet's
	// gateway, so every answer was dropped (to-gateway) with no word.
	for _, ps := range b.privateSpaces {
		if ps.f.v.Contains(DefaultOutboundAddr) {
			b.errAt(ps.f.loc, "%s contains %s, the default outbound address of VMs without a public IP; set defaultOutboundAddress to a public address outside %s", ps.f.v, DefaultOutboundAddr, ps.whose)
		}
	}
}

// checkOutsideOnPremises refuses an address the Internet must reach in the
// on-premises address space, as public() refuses one in a VNet's: a VIP, a
// VM's public IP, an Internet host (its whole /24, which is its network).
// The on-premises network is read after them, hence a pass of its own.
// Such a file came up, and the Internet could not reach the VIP or the
// public IP (internet-to-private), while the VNet reached the Internet
// host through the gateway. The NAT and a set default outbound address
// only leave: in the on-premises space they are odd but work, and stay.
func (b *builder) checkOutsideOnPremises() {
	for _, pa := range b.publics {
		if pa.what != "a virtualIp" && pa.what != "a publicIpAddress" && !pa.host {
			continue
		}
		net := netip.PrefixFrom(pa.f.v, 32)
		if pa.host {
			net = onLink24(pa.f.v)
		}
		for _, ps := range b.privateSpaces {
			if ps.whose != onPremName || !ps.f.v.Overlaps(net) {
				continue
			}
			if pa.host {
				b.errAt(pa.f.loc, "%s is on network %s, which overlaps the on-premises address space (%s): an Internet host's /24 must lie outside every VNet and the on-premises network", pa.f.v, net, ps.f.v)
			} else {
				b.errAt(pa.f.loc, "%s lies inside the on-premises address space (%s); %s must lie outside every VNet and the on-premises network", pa.f.v, ps.f.v, pa.what)
			}
			break
		}
	}
}

const onPremName = "the on-premises network"
