package topology

import (
	"fmt"
	"net/netip"
	"strings"
)

// pending is a node whose address the file leaves to the emulator.
type pending struct {
	node *Node
	at   loc    // where a full subnet is reported: the count or subnet field
	what string // how the message names the node
}

// makeNodes creates every node in Nodes order: each ASE's front-ends then
// workers, then VMs, then Internet hosts. It refuses a lab over MaxNodes
// before creating any, so a small file cannot ask for millions.
func (b *builder) makeNodes(d *doc) bool {
	// The platform node (168.63.129.16) is a namespace like the others:
	// the limit counts it, so that MaxNodes bounds the namespaces, TUN
	// devices and goroutines up creates.
	total := 1 + len(d.vms) + len(d.hosts)
	for _, c := range b.counts {
		total += c.frontEnds + c.workers
	}
	if d.onPrem != nil {
		total += 1 + len(d.onPrem.hosts) // the gateway and the hosts
	}
	if total > MaxNodes {
		b.errAt(b.overLimit(d), "the lab has %d nodes counting Azure's platform node, over the emulator's limit of %d (each node is a network namespace)", total, MaxNodes)
		return false
	}
	b.t.Nodes = make([]*Node, 0, total)
	b.pending = b.pending[:0]
	for i, a := range b.t.ASEs {
		c := b.counts[i]
		if !c.ok {
			continue
		}
		a.FrontEnds = b.aseNodes(a, NodeFrontEnd, "fe", "front-end", c.frontEnds, c.feAt, d.ases[i].name.loc)
		a.Workers = b.aseNodes(a, NodeWorker, "w", "worker", c.workers, c.wAt, d.ases[i].name.loc)
	}
	for i, vm := range b.t.VMs {
		n := &Node{Name: vm.Name, Kind: NodeVM, Addr: vm.PrivateIP, Subnet: vm.Subnet, NSG: vm.NSG, PublicIP: vm.PublicIP, IPForwarding: vm.IPForwarding, Line: vm.Line}
		vm.Node = n
		b.add(n)
		if !d.vms[i].private.set {
			b.pending = append(b.pending, pending{n, d.vms[i].subnet.loc, "VM " + vm.Name})
		}
	}
	for _, h := range b.t.Internet {
		n := &Node{Name: h.Name, Kind: NodeInternet, Addr: h.Addr, Latency: h.Latency, Line: h.Line}
		if h.Addr.IsValid() {
			n.Prefix = onLink24(h.Addr)
			n.Gateway = n.Prefix.Addr().Next()
		}
		h.Node = n
		b.add(n)
	}
	if o := b.t.OnPremises; o != nil {
		for _, n := range append([]*Node{o.Gateway}, o.Hosts...) {
			if n != nil {
				b.add(n)
			}
		}
	}
	// Azure's platform endpoint is a node too, so that DNS queries and the
	// load balancer's probes cross the dataplane, its NSGs and its routes
	// like any other traffic (F15).
	b.add(&Node{Name: PlatformNode, Kind: NodePlatform, Addr: PlatformAddr,
		Prefix: onLink24(PlatformAddr), Gateway: onLink24(PlatformAddr).Addr().Next()})
	return true
}

// overLimit is where the node count first passes MaxNodes.
func (b *builder) overLimit(d *doc) loc {
	n := 1 // the platform node

	for i, c := range b.counts {
		if n += c.frontEnds + c.workers; n > MaxNodes {
			return d.ases[i].at
		}
	}
	for _, vs := range d.vms {
		if n++; n > MaxNodes {
			return vs.at
		}
	}
	for _, hs := range d.hosts {
		if n++; n > MaxNodes {
			return hs.at
		}
	}
	if o := d.onPrem; o != nil {
		if n++; n > MaxNodes {
			return o.at
		}
		for _, hs := range o.hosts {
			if n++; n > MaxNodes {
				return hs.at
			}
		}
	}
	return loc{line: 1}
}

func (b *builder) aseNodes(a *ASE, kind NodeKind, suffix, role string, count int, countAt, nameAt loc) []*Node {
	nodes := make([]*Node, count)
	for i := range nodes {
		name := fmt.Sprintf("%s-%s%d", a.Name, suffix, i+1)
		n := &Node{Name: name, Kind: kind, Subnet: a.Subnet, ASE: a, Line: a.Line}
		// Generated names share the namespace of declared ones: a VM called
		// ase1-w1 would collide with the ASE's first worker.
		take(b.parser, b.machines, name, claim{nameAt,
			fmt.Sprintf("%s %s of ASE %s", role, name, a.Name),
			fmt.Sprintf("node name %s (%s %d of this ASE)", name, role, i+1)})
		nodes[i] = n
		b.add(n)
		b.pending = append(b.pending, pending{n, countAt, fmt.Sprintf("%s %s of ASE %s", role, name, a.Name)})
	}
	return nodes
}

func (b *builder) add(n *Node) {
	if n.Subnet != nil {
		n.VNet = n.Subnet.VNet
		if n.Subnet.Prefix.IsValid() {
			n.Prefix = n.Subnet.Prefix
			n.Gateway = n.Subnet.Gateway()
		}
		n.Subnet.Nodes = append(n.Subnet.Nodes, n)
	}
	b.t.Nodes = append(b.t.Nodes, n)
}

// assign gives each pending node the lowest free address of its subnet, in
// Nodes order (F1). Free means not reserved, not given in the file to a VM or
// an ILB, and not assigned already; since nodes are served in order from a
// cursor per subnet, the last needs no set.
func (b *builder) assign() {
	next := map[*Subnet]uint32{}
	reported := map[loc]bool{}
	kept := b.keep()
	dynamic := b.keepILBs()
	for _, pn := range b.pending {
		s := pn.node.Subnet
		if s == nil || !s.Prefix.IsValid() || kept[pn.node] {
			continue // the subnet's own error is reported; a kept address is given
		}
		a, ok := b.free(s, next)
		if !ok {
			if !reported[pn.at] {
				reported[pn.at] = true
				size := uint64(1) << (32 - s.Prefix.Bits())
				b.errAt(pn.at, "subnet %s (%s) is full: no address left for %s (a /%d has %d addresses for machines)",
					s.Name, s.Prefix, pn.what, s.Prefix.Bits(), size-5)
			}
			continue
		}
		pn.node.Addr = a
	}
	for _, vm := range b.t.VMs {
		vm.PrivateIP = vm.Node.Addr
	}
	// A dynamic ILB address comes after every machine's, so that giving
	// or leaving out ilbAddress does not renumber the machines.
	for _, d := range dynamic {
		s := d.ase.Subnet
		if s == nil || !s.Prefix.IsValid() {
			continue
		}
		a, ok := b.free(s, next)
		if !ok {
			b.errAt(d.at, "subnet %s (%s) is full: no address left for the ILB address of ASE %s; give a larger subnet or fewer machines",
				s.Name, s.Prefix, d.ase.Name)
			continue
		}
		d.ase.ILB = a
	}
}

// keepILBs gives each dynamic ILB address that the running lab has, in the
// same subnet, its running address, as keep does for machines: Azure does
// not move an ILB when an ASE scales. It returns the ones left to assign.
func (b *builder) keepILBs() []dynamicILB {
	if b.running == nil {
		return b.dynamicILBs
	}
	var left []dynamicILB
	for _, d := range b.dynamicILBs {
		a, s := d.ase, d.ase.Subnet
		was := b.running.ASEByName(a.Name)
		if was != nil && s != nil && was.Subnet != nil && strings.EqualFold(was.Subnet.Name, s.Name) &&
			s.Prefix.Contains(was.ILB) && !Reserved(s.Prefix, was.ILB) && !b.explicit[was.ILB] {
			a.ILB = was.ILB
			b.explicit[was.ILB] = true
			continue
		}
		left = append(left, d)
	}
	return left
}

// keep gives each pending node that the running lab has, in the same
// subnet, its running address, unless the file gives that address to
// another machine or it is now reserved; it marks the kept addresses
// taken, so that assign hands them to no one else.
func (b *builder) keep() map[*Node]bool {
	if b.running == nil {
		return nil
	}
	kept := map[*Node]bool{}
	for _, pn := range b.pending {
		n, s := pn.node, pn.node.Subnet
		was := b.running.NodeByName(n.Name)
		if was == nil || s == nil || was.Subnet == nil || !strings.EqualFold(was.Subnet.Name, s.Name) {
			continue
		}
		if a := was.Addr; s.Prefix.Contains(a) && !Reserved(s.Prefix, a) && !b.explicit[a] {
			n.Addr, kept[n] = a, true
			b.explicit[a] = true
		}
	}
	return kept
}

func (b *builder) free(s *Subnet, next map[*Subnet]uint32) (netip.Addr, bool) {
	c, started := next[s]
	if !started {
		c = u32(s.Prefix.Addr()) + 4 // past .0 (network), .1 (gateway), .2 and .3 (Azure DNS)
	}
	last := u32(LastAddr(s.Prefix)) // broadcast
	for ; c < last; c++ {
		if a := addr4(c); !b.explicit[a] {
			next[s] = c + 1
			return a, true
		}
	}
	next[s] = c
	return netip.Addr{}, false
}
