package dataplane

import (
	"net/netip"

	"github.com/aseemu/emulator/dataplane/route"
	"github.com/aseemu/emulator/topology"
)

// targetKind says what the forwarding table wants done with a packet.
type targetKind uint8

const (
	// targetUnreachable: the destination lies in a network the lab knows
	// (a subnet, a VNet, an Internet host's /24) but no node holds it.
	targetUnreachable targetKind = iota
	// targetPort: deliver to a node's interface.
	targetPort
	// targetLocal: addressed to the dataplane itself (a gateway address).
	targetLocal
	// targetBroadcast: a subnet's network or broadcast address (F1), which
	// no node holds and Azure carries nothing to.
	targetBroadcast
)

func (k targetKind) String() string {
	switch k {
	case targetPort:
		return "node"
	case targetLocal:
		return "gateway"
	case targetBroadcast:
		return "broadcast"
	default:
		return "host unreachable"
	}
}

// target is a forwarding table entry. It is kept to 8 bytes so the table's
// maps stay small and a lookup copies nothing big.
type target struct {
	kind targetKind
	port int32
}

// compileFIB builds the forwarding table. Host routes win over the networks
// that contain them by being longer; everything outside every known network
// has no entry and gets net-unreachable.
func compileFIB(t *topology.Topology, portOf map[string]int) *route.Table[target] {
	fib := &route.Table[target]{}
	unreachable := target{kind: targetUnreachable}
	for _, v := range t.VNets {
		for _, p := range v.AddressSpace {
			fib.Insert(p, unreachable)
		}
		for _, s := range v.Subnets {
			fib.Insert(s.Prefix, unreachable)
			insertBroadcast(fib, s.Prefix)
		}
	}
	for _, n := range t.Nodes {
		fib.Insert(n.Prefix, unreachable)
		insertBroadcast(fib, n.Prefix)
		fib.Insert(host(n.Gateway), target{kind: targetLocal})
	}
	for _, n := range t.Nodes {
		if i, ok := portOf[n.Name]; ok {
			fib.Insert(host(n.Addr), target{kind: targetPort, port: int32(i)})
		}
	}
	return fib
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, 32) }

// insertBroadcast marks p's network and broadcast addresses. A node's own
// host route, inserted later, replaces either (an Internet host may hold
// any address of its /24).
func insertBroadcast(fib *route.Table[target], p netip.Prefix) {
	p = p.Masked()
	if !p.Addr().Is4() || p.Bits() > 30 {
		return // a /31 or /32 has no broadcast address
	}
	fib.Insert(host(p.Addr()), target{kind: targetBroadcast})
	fib.Insert(host(topology.LastAddr(p)), target{kind: targetBroadcast})
}
