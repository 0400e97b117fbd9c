package topology

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Routes (F18), the on-premises network joined through a virtual network
// gateway (F16), and link impairments: the file format, the model and the
// checks, in one place.

// Next hop types of a route (F18), spelled as ARM spells them.
const (
	NextHopInternet  = "Internet"
	NextHopVNG       = "VirtualNetworkGateway"
	NextHopAppliance = "VirtualAppliance"
	NextHopVnetLocal = "VnetLocal"
	NextHopNone      = "None"
)

// Node kinds of the on-premises network.
const (
	NodeOnPremGateway NodeKind = "onprem-gateway" // the VPN/ExpressRoute edge of the corporate network
	NodeOnPrem        NodeKind = "onprem"
)

// RouteTable is a set of user-defined routes, attached to subnets.
type RouteTable struct {
	Name   string
	Routes []*Route
	Line   int
}

// Route is a user-defined route.
type Route struct {
	Name      string
	Prefix    netip.Prefix
	NextHop   string     // one of the NextHop* types
	NextHopIP netip.Addr // VirtualAppliance only
	Line      int
}

// OnPremises is a corporate network joined to the VNets through a virtual
// network gateway (VPN or ExpressRoute).
type OnPremises struct {
	AddressSpace []netip.Prefix
	// NATAddress is the public address the corporate edge gives traffic it
	// sends to the Internet: what Azure's services see of a forced-tunnelled
	// ASE (F16).
	NATAddress netip.Addr
	// AdvertiseDefaultRoute makes the gateway announce 0.0.0.0/0 to the
	// VNets, as ExpressRoute does for forced tunneling.
	AdvertiseDefaultRoute bool
	Gateway               *Node
	Hosts                 []*Node
	Line                  int
}

// Contains reports whether a lies in the on-premises address space.
func (o *OnPremises) Contains(a netip.Addr) bool {
	for _, p := range o.AddressSpace {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Latency impairs the link between a node and the dataplane, each way.
type Latency struct {
	Delay  time.Duration
	Jitter time.Duration
	Loss   float64 // percent
	Rate   uint64  // bits per second; 0: unlimited
}

// String is the latency in the words of the topology file's latency:
// field, "none" for a link without any.
func (l Latency) String() string {
	var parts []string
	if l.Delay != 0 {
		parts = append(parts, "delay "+l.Delay.String())
	}
	if l.Jitter != 0 {
		parts = append(parts, "jitter "+l.Jitter.String())
	}
	if l.Loss != 0 {
		parts = append(parts, fmt.Sprintf("loss %g%%", l.Loss))
	}
	if l.Rate != 0 {
		parts = append(parts, fmt.Sprintf("rate %d bit/s", l.Rate))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// regions are the latency shortcuts: a service in a remote Azure region is
// about 40 ms away each way (F16).
var regions = map[string]Latency{
	"local":  {},
	"remote": {Delay: 40 * time.Millisecond},
}

type routeTableSpec struct {
	at     loc
	name   field[string]
	routes []*routeSpec
}

type routeSpec struct {
	at            loc
	name, nextHop field[string]
	prefix        field[netip.Prefix]
	nextHopIP     field[netip.Addr]
}

type onPremSpec struct {
	at        loc
	space     []field[netip.Prefix]
	nat       field[netip.Addr]
	advertise field[bool]
	gateway   *hostSpec
	hosts     []*hostSpec
}

func (p *parser) routeTable(it item) *routeTableSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	body := armBody(m, armRouteTable, []string{"routes", "disableBgpRoutePropagation"})
	rt := &routeTableSpec{at: it.at, name: m.str("name")}
	if body == nil {
		return rt
	}
	m.require("name")
	// ARM templates write Azure's default, false, which is what the lab
	// does: routes the gateway learns by BGP apply to the subnet.
	if b := body.boolean("disableBgpRoutePropagation"); b.ok && b.v {
		p.errAt(b.loc, "disableBgpRoutePropagation: true is not emulated; the gateway's routes always propagate (leave it out or false)")
	}
	each(body, "routes", p.route, &rt.routes)
	return rt
}

// routeFields are the fields of a route other than its name; ARM puts them
// under "properties", and the file accepts them there or flat.
var routeFields = []string{"addressPrefix", "nextHopType", "nextHopIpAddress"}

func (p *parser) route(it item) *routeSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	body := armBody(m, armRoute, routeFields)
	if body == nil {
		return &routeSpec{at: it.at, name: m.str("name")}
	}
	m.require("name")
	body.require("addressPrefix", "nextHopType")
	return &routeSpec{
		at:        it.at,
		name:      m.str("name"),
		prefix:    convert(p, body.str("addressPrefix"), parsePrefix),
		nextHop:   enum(p, body.str("nextHopType"), "nextHopType", NextHopInternet, NextHopVNG, NextHopAppliance, NextHopVnetLocal, NextHopNone),
		nextHopIP: convert(p, body.str("nextHopIpAddress"), parseAddr),
	}
}

func (p *parser) onPremises(m *mapping) *onPremSpec {
	o := &onPremSpec{at: m.at}
	m.allow("", "addressSpace", "natAddress", "advertiseDefaultRoute", "gateway", "hosts")
	m.require("addressSpace", "natAddress", "gateway")
	if sm := m.sub("addressSpace"); sm != nil {
		sm.allow("", "addressPrefixes")
		sm.require("addressPrefixes")
		prefixes, _ := sm.list("addressPrefixes")
		for _, pi := range prefixes {
			o.space = append(o.space, convert(p, p.scalar(pi.n, pi.at), parsePrefix))
		}
	}
	o.nat = convert(p, m.str("natAddress"), parseAddr)
	o.advertise = m.boolean("advertiseDefaultRoute")
	if n := m.get("gateway"); n != nil {
		o.gateway = p.host(item{n, m.loc("gateway")})
	}
	each(m, "hosts", p.host, &o.hosts)
	return o
}

// boolean reads a true/false field.
func (m *mapping) boolean(key string) field[bool] {
	at := m.loc(key)
	n := m.get(key)
	f := field[bool]{set: n != nil, loc: at}
	if n == nil {
		return f
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		m.p.errAt(at, "expected true or false, got %s", describe(n))
		return f
	}
	if err := n.Decode(&f.v); err != nil {
		m.p.errAt(at, "%v", err)
		return f
	}
	f.ok = true
	return f
}

// latency reads a host's impairment: `region: remote`, or `latency:` with
// delay, jitter, loss (percent) and rate (e.g. 100mbit).
func (p *parser) latency(m *mapping) field[Latency] {
	f := field[Latency]{}
	if r := m.str("region"); r.ok {
		f.set, f.loc = true, r.loc
		l, ok := regions[strings.ToLower(r.v)]
		if !ok {
			p.errAt(r.loc, "unknown region %q: use local or remote (40 ms each way)", r.v)
			return f
		}
		f.v, f.ok = l, true
		if m.has("latency") {
			p.errAt(m.loc("latency"), "give region or latency, not both")
			f.ok = false
		}
		return f
	}
	lm := m.sub("latency")
	if lm == nil {
		return f
	}
	f.set, f.loc = true, m.loc("latency")
	lm.allow("", "delay", "jitter", "loss", "rate")
	var l Latency
	ok := true
	for key, dst := range map[string]*time.Duration{"delay": &l.Delay, "jitter": &l.Jitter} {
		if s := lm.str(key); s.ok {
			d, err := time.ParseDuration(s.v)
			if err != nil || d < 0 || d > 10*time.Second {
				p.errAt(s.loc, "%q is not a delay from 0 to 10s (e.g. 40ms)", s.v)
				ok = false
				continue
			}
			*dst = d
		}
	}
	if s := lm.str("loss"); s.ok {
		// ParseFloat, not Sscanf: Sscanf stops at the first byte that is
		// not part of a number, so "5abc" was 5%, and it reads NaN, which
		// passes any range check and then never drops a packet.
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s.v), "%")), 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
			p.errAt(s.loc, "%q is not a loss percentage from 0 to 100 (e.g. 0.5 or 0.5%%)", s.v)
			ok = false
		}
		l.Loss = v
	}
	if s := lm.str("rate"); s.ok {
		r, err := parseRate(s.v)
		if err != nil {
			p.errAt(s.loc, "%v", err)
			ok = false
		}
		l.Rate = r
	}
	f.v, f.ok = l, ok
	return f
}

// parseRate reads a rate such as 100mbit, 1gbit or 500kbit, as tc writes
// them. The number must be finite and the rate at least 1 bit/s: a rate
// that rounds to 0 would mean no limit at all, and NaN or Inf none that
// a uint64 holds, so either would run the link at full speed while the
// file asks for a slow one.
func parseRate(s string) (uint64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := strings.IndexFunc(t, func(r rune) bool { return r >= 'a' && r <= 'z' && r != 'e' })
	if i < 0 {
		return 0, fmt.Errorf("%q is not a rate such as 100mbit (units: bit, kbit, mbit, gbit)", s)
	}
	mult := map[string]float64{"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[t[i:]]
	if mult == 0 {
		return 0, fmt.Errorf("%q is not a rate such as 100mbit (units: bit, kbit, mbit, gbit)", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t[:i]), 64)
	if r := v * mult; err != nil || math.IsNaN(r) || r < 1 || r > maxRate {
		return 0, fmt.Errorf("%q is not a rate from 1bit to 1000gbit, such as 100mbit", s)
	}
	return uint64(v * mult), nil
}

// maxRate bounds a link's rate far above what the dataplane forwards, so
// that the bits always fit a uint64.
const maxRate = 1e12

// buildRouteTables checks the route tables; appliance next hops are checked
// once the VMs exist (checkAppliances).
func (b *builder) buildRouteTables(specs []*routeTableSpec) {
	names := map[string]claim{}
	for _, s := range specs {
		rt := &RouteTable{Name: s.name.v, Line: s.at.line}
		b.t.RouteTables = append(b.t.RouteTables, rt)
		// Known to references even under a refused name, as an NSG is: a
		// subnet naming it is not a second error.
		if _, dup := b.routeTables[strings.ToLower(rt.Name)]; s.name.ok && !dup {
			b.routeTables[strings.ToLower(rt.Name)] = rt
		}
		if b.resourceName(s.name, "route table") {
			take(b.parser, names, strings.ToLower(rt.Name), claim{s.name.loc, "route table " + rt.Name, "name " + rt.Name})
		}
		routeNames := map[string]claim{}
		prefixes := map[netip.Prefix]claim{}
		for _, rs := range s.routes {
			r := &Route{Name: rs.name.v, Prefix: rs.prefix.v, NextHop: rs.nextHop.v, NextHopIP: rs.nextHopIP.v, Line: rs.at.line}
			rt.Routes = append(rt.Routes, r)
			if b.resourceName(rs.name, "route") {
				take(b.parser, routeNames, strings.ToLower(r.Name), claim{rs.name.loc, "route " + r.Name, "name " + r.Name})
			}
			if rs.prefix.ok {
				take(b.parser, prefixes, r.Prefix, claim{rs.prefix.loc, "route " + r.Name, "addressPrefix " + r.Prefix.String()})
			}
			switch {
			case !rs.nextHop.ok:
			case r.NextHop == NextHopAppliance && !rs.nextHopIP.set:
				b.errAt(rs.nextHop.loc, "nextHopType VirtualAppliance needs a nextHopIpAddress: the address of a VM with enableIPForwarding")
			case r.NextHop != NextHopAppliance && rs.nextHopIP.set:
				b.errAt(rs.nextHopIP.loc, "only nextHopType VirtualAppliance takes a nextHopIpAddress")
			case r.NextHop == NextHopAppliance:
				b.appliances = append(b.appliances, appliance{rs.nextHopIP, rt})
			case r.NextHop == NextHopVNG:
				b.gatewayRoutes = append(b.gatewayRoutes, rs.nextHop.loc)
			}
		}
	}
}

// routeTableRef resolves a subnet's routeTable.
func (b *builder) routeTableRef(f field[string]) *RouteTable {
	if !f.ok {
		return nil
	}
	if rt := b.routeTables[strings.ToLower(f.v)]; rt != nil {
		return rt
	}
	b.errAt(f.loc, "no routeTables entry is named %q%s", f.v, didYouMean(f.v, b.routeTables, func(r *RouteTable) string { return r.Name }))
	return nil
}

// checkAppliances requires every VirtualAppliance next hop to be a VM that
// forwards (enableIPForwarding), as Azure requires of its NIC.
func (b *builder) checkAppliances() {
	for _, ap := range b.appliances {
		f := ap.f
		if !f.ok {
			continue
		}
		var vm *VM
		for _, v := range b.t.VMs {
			if v.PrivateIP == f.v {
				vm = v
			}
		}
		switch {
		case vm == nil:
			b.errAt(f.loc, "no VM has the address %s: a VirtualAppliance next hop must be a VM's privateIpAddress", f.v)
		case !vm.IPForwarding:
			b.errAt(f.loc, "VM %s (%s) does not forward: set enableIPForwarding: true on it", vm.Name, f.v)
		case vm.Subnet != nil:
			b.checkApplianceVNet(f, vm, ap.rt)
		}
	}
	if b.t.OnPremises == nil {
		for _, at := range b.gatewayRoutes {
			b.errAt(at, "nextHopType VirtualNetworkGateway needs an onPremises network to go to")
		}
	}
}

// checkApplianceVNet refuses an appliance in another VNet than a subnet
// whose route table sends traffic to it. Azure calls a next hop without
// direct connectivity an invalid configuration (virtual-networks-udr-
// overview, "Virtual appliance"), and the emulator's VNets are not
// peered; yet such a file came up, and the dataplane carried the subnet's
// packets into the other VNet through the appliance. One error per route:
// the first subnet that cannot reach it.
func (b *builder) checkApplianceVNet(f field[netip.Addr], vm *VM, rt *RouteTable) {
	for _, v := range b.t.VNets {
		for _, s := range v.Subnets {
			if s.RouteTable == rt && v != vm.Subnet.VNet {
				b.errAt(f.loc, "VM %s (%s) is in VNet %s, but route table %s is on subnet %s of VNet %s: a VirtualAppliance next hop must be in the VNet of each subnet that uses it, as the emulator does not peer VNets", vm.Name, f.v, vm.Subnet.VNet.Name, rt.Name, s.Name, v.Name)
				return
			}
		}
	}
}

// buildOnPremises checks the on-premises network and creates its nodes.
func (b *builder) buildOnPremises(s *onPremSpec) {
	if s == nil {
		return
	}
	o := &OnPremises{Line: s.at.line, AdvertiseDefaultRoute: s.advertise.v}
	b.t.OnPremises = o
	// spaceOK is false once a prefix of the space is refused: whether a
	// host lies in the space as written can then no longer be told.
	spaceOK := true
	for _, f := range s.space {
		if !f.ok {
			spaceOK = false
			continue
		}
		if f.v.Masked() != f.v {
			b.errAt(f.loc, "%s is not a network address; did you mean %s?", f.v, f.v.Masked())
			spaceOK = false
			continue
		}
		// As a VNet's (checkSpace), of the ranges that do not work there.
		if r, special := specialRange(f.v, true); special {
			b.errAt(f.loc, "%s overlaps %s (%s), which the on-premises network cannot use", f.v, r.p, r.what)
			spaceOK = false
			continue
		}
		if v, _, overlaps := b.spaces.overlapping(f.v); overlaps {
			b.errAt(f.loc, "%s overlaps VNet %s: on-premises and the VNets must not overlap", f.v, v.Name)
			spaceOK = false
			continue
		}
		o.AddressSpace = append(o.AddressSpace, f.v)
		b.privateSpaces = append(b.privateSpaces, privateSpace{f, onPremName})
	}
	if s.nat.ok {
		if b.public(s.nat, "the on-premises natAddress") {
			o.NATAddress = s.nat.v
		}
		b.takeAddr(s.nat, "the on-premises natAddress")
	}
	add := func(hs *hostSpec, kind NodeKind) *Node {
		if hs == nil {
			return nil
		}
		if b.nodeName(hs.name, "on-premises host") {
			take(b.parser, b.machines, hs.name.v, claim{hs.name.loc, "on-premises host " + hs.name.v, "name " + hs.name.v})
		}
		n := &Node{Name: hs.name.v, Kind: kind, Line: hs.at.line}
		if hs.addr.ok {
			if !o.Contains(hs.addr.v) {
				if spaceOK {
					b.errAt(hs.addr.loc, "%s is outside the on-premises address space %v", hs.addr.v, o.AddressSpace)
				}
			} else if last := hs.addr.v.As4()[3]; last <= 1 || last == 255 {
				b.errAt(hs.addr.loc, "%s is %s of its network %s: an on-premises host's gateway is the .1 of its /24, so use .2 to .254", hs.addr.v, hostNetRole(hs.addr.v), onLink24(hs.addr.v))
			} else {
				n.Addr, n.Prefix = hs.addr.v, onLink24(hs.addr.v)
				n.Gateway = n.Prefix.Addr().Next()
			}
			b.takeAddr(hs.addr, "the address of "+n.Name)
		}
		return n
	}
	o.Gateway = add(s.gateway, NodeOnPremGateway)
	for _, hs := range s.hosts {
		o.Hosts = append(o.Hosts, add(hs, NodeOnPrem))
	}
}

// RouteTableByName returns the route table called name (any case), or nil.
func (t *Topology) RouteTableByName(name string) *RouteTable {
	for _, rt := range t.RouteTables {
		if strings.EqualFold(rt.Name, name) {
			return rt
		}
	}
	return nil
}
