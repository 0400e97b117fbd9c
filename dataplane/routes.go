package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/route"
	"github.com/aseemu/emulator/topology"
)

// hopKind is a route's next hop type (F18).
type hopKind uint8

const (
	hopVnetLocal hopKind = iota
	hopInternet
	hopGateway   // VirtualNetworkGateway: to the on-premises network
	hopAppliance // VirtualAppliance: to a forwarding VM
	hopNone      // drop
)

var hopNames = [...]string{
	hopVnetLocal: topology.NextHopVnetLocal,
	hopInternet:  topology.NextHopInternet,
	hopGateway:   topology.NextHopVNG,
	hopAppliance: topology.NextHopAppliance,
	hopNone:      topology.NextHopNone,
}

func (k hopKind) String() string { return hopNames[k] }

// hop is what a subnet's routes decide for a destination.
type hop struct {
	kind  hopKind
	via   header.Addr // the appliance, for hopAppliance
	route string      // the user route that decided; "" for a system route
	// stranded marks a user route whose next hop cannot hold what it
	// takes (F18): Internet for a prefix of a VNet or of the on-premises
	// network, which the Internet does not route, or VnetLocal for one
	// outside the VNets, which no machine of theirs holds. Azure drops
	// such packets; followed, they would reach their destination as if by
	// the system routes. Prefixes nest or are apart, so the prefix decides
	// for every address that reaches the route: an address of a VNet
	// inside a wider VnetLocal route takes the VNet's longer system route.
	stranded bool
}

// routing holds each subnet's effective routes, compiled: Azure's system
// routes, then the subnet's user-defined routes, which replace a system
// route of the same prefix (F18). The longest prefix wins.
type routing struct {
	bySubnet map[*topology.Subnet]*route.Table[hop]
	// used is false when no subnet has user routes and there is neither
	// an on-premises network nor a second VNet: every hop is then VnetLocal
	// or Internet, which routing by destination alone already gets right,
	// and the per-packet lookup is skipped.
	used bool
}

func compileRouting(t *topology.Topology) *routing {
	r := &routing{bySubnet: map[*topology.Subnet]*route.Table[hop]{}, used: t.OnPremises != nil || len(t.VNets) > 1}
	var vnets, onPrem []netip.Prefix
	for _, v := range t.VNets {
		vnets = append(vnets, v.AddressSpace...)
	}
	if t.OnPremises != nil {
		onPrem = t.OnPremises.AddressSpace
	}
	for _, v := range t.VNets {
		for _, s := range v.Subnets {
			tb := &route.Table[hop]{}
			tb.Insert(netip.MustParsePrefix("0.0.0.0/0"), hop{kind: hopInternet})
			for _, p := range v.AddressSpace {
				tb.Insert(p, hop{kind: hopVnetLocal})
			}
			// VNets are not peered: Azure has no route to another VNet's
			// private addresses (its system routes send 10.0.0.0/8 and the
			// other private ranges to None), so they are dropped rather
			// than delivered as if the VNets were one.
			for _, other := range t.VNets {
				if other != v {
					for _, p := range other.AddressSpace {
						tb.Insert(p, hop{kind: hopNone})
					}
				}
			}
			if o := t.OnPremises; o != nil {
				for _, p := range o.AddressSpace {
					tb.Insert(p, hop{kind: hopGateway})
				}
				if o.AdvertiseDefaultRoute {
					// Forced tunneling: the gateway's BGP default route
					// replaces the system route to the Internet.
					tb.Insert(netip.MustParsePrefix("0.0.0.0/0"), hop{kind: hopGateway})
				}
			}
			if rt := s.RouteTable; rt != nil {
				r.used = r.used || len(rt.Routes) > 0
				for _, ur := range rt.Routes {
					h := hop{route: ur.Name}
					switch ur.NextHop {
					case topology.NextHopVnetLocal:
						h.kind, h.stranded = hopVnetLocal, !within(ur.Prefix, vnets)
					case topology.NextHopInternet:
						h.kind, h.stranded = hopInternet, within(ur.Prefix, vnets) || within(ur.Prefix, onPrem)
					case topology.NextHopVNG:
						h.kind = hopGateway
					case topology.NextHopAppliance:
						h.kind, h.via = hopAppliance, header.AddrFromNetip(ur.NextHopIP)
					default:
						h.kind = hopNone
					}
					tb.Insert(ur.Prefix, h)
				}
			}
			// Azure's platform address is reached directly whatever the
			// routes say: DNS and the probes never follow a UDR.
			tb.Insert(netip.PrefixFrom(topology.PlatformAddr, 32), hop{kind: hopVnetLocal})
			r.bySubnet[s] = tb
		}
	}
	return r
}

// lookup returns the hop for dst from a node of subnet s. Nodes outside
// the VNets (Internet, on-premises) route by the system's view alone.
func (r *routing) lookup(s *topology.Subnet, dst header.Addr) (hop, netip.Prefix) {
	tb := r.bySubnet[s]
	if tb == nil {
		return hop{kind: hopVnetLocal}, netip.Prefix{}
	}
	h, bits, _ := tb.Lookup(dst)
	p, _ := dst.Netip().Prefix(bits)
	return h, p
}

// within reports whether p lies inside one of spaces.
func within(p netip.Prefix, spaces []netip.Prefix) bool {
	for _, s := range spaces {
		if p.Bits() >= s.Bits() && s.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// NextHop is `emulator nexthop`'s answer, like Network Watcher's next hop.
type NextHop struct {
	Type      string `json:"nextHopType"`
	IPAddress string `json:"nextHopIpAddress,omitempty"`
	Route     string `json:"route"`  // "System Route" or the user route's name
	Prefix    string `json:"prefix"` // the prefix that matched
}

// ErrNoNode is NextHop's answer for a node the lab does not have.
var ErrNoNode = errors.New("no such node")

// NextHop answers where a packet from node to dst goes, from the same
// compiled routes the dataplane uses. Only a machine in a VNet subnet has
// routes: for a host on the Internet or on-premises the dataplane delivers
// by destination alone, and NextHop says so rather than answer a route
// that no such host has.
func (e *Engine) NextHop(node string, dst netip.Addr) (NextHop, error) {
	s := e.cur.Load()
	n := s.topo.NodeByName(node)
	switch {
	case n == nil:
		return NextHop{}, ErrNoNode
	case n.Subnet == nil:
		return NextHop{}, fmt.Errorf("%s is not in a VNet (a node of kind %s): next hop reads the routes of a VNet subnet; ask from a machine in one", node, n.Kind)
	}
	return s.nextHop(n, dst), nil
}

// onPremisesHop is the next hop type trace shows for a probe from the
// on-premises network, as up and status name where its machines are.
const onPremisesHop = "on-premises"

// nextHop is where a packet from n to dst goes: its subnet's route, or
// for a node outside the VNets the way it goes (outsideHop).
func (s *snapshot) nextHop(n *topology.Node, dst netip.Addr) NextHop {
	if n.Subnet == nil {
		return s.outsideHop(n, dst)
	}
	h, p := s.routes.lookup(n.Subnet, header.AddrFromNetip(dst))
	nh := NextHop{Type: h.kind.String(), Route: h.route, Prefix: p.String()}
	if h.route == "" {
		nh.Route = "System Route"
	}
	if h.kind == hopAppliance {
		nh.IPAddress = h.via.String()
	}
	return nh
}

// outsideHop is the way a packet from node n, outside the VNets, takes to
// dst, for trace; such a node has no subnet routes (NextHop refuses it). A
// host on the Internet reaches everything over the Internet. A host
// on-premises reaches its own network directly, and the VNets and the
// Internet through the on-premises gateway: the VPN, and the corporate
// edge that NATs (the natAddress).
func (s *snapshot) outsideHop(n *topology.Node, dst netip.Addr) NextHop {
	o := s.topo.OnPremises
	if o == nil || n.Kind != topology.NodeOnPrem && n.Kind != topology.NodeOnPremGateway {
		return NextHop{Type: topology.NextHopInternet, Route: "System Route"}
	}
	for _, p := range o.AddressSpace {
		if p.Contains(dst) {
			return NextHop{Type: onPremisesHop, Route: "direct", Prefix: p.String()}
		}
	}
	nh := NextHop{Type: onPremisesHop, Route: "gateway " + o.Gateway.Name}
	if n != o.Gateway {
		nh.IPAddress = o.Gateway.Addr.String()
	}
	return nh
}
