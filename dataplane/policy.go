package dataplane

import (
	"math/bits"
	"net/netip"
	"slices"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/route"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

// The policy decides, on a flow's first packet, how the flow is translated:
// the Azure behaviours F2-F7. Package nat then carries the decision out on
// every packet of the flow.

// Inbound ports of an ASE (F2, F7).
var (
	portsApps   = ports(80, 443)
	portsFTP    = append(ports(21, 990), topology.PortRange{Lo: 10001, Hi: 10020})
	portsDebug  = ports(4016, 4018, 4020) // VS2012, VS2013, VS2015 remote debugging
	portsManage = ports(454, 455)
)

func ports(ps ...uint16) []topology.PortRange {
	var out []topology.PortRange
	for _, p := range ps {
		out = append(out, topology.PortRange{Lo: p, Hi: p})
	}
	return out
}

// portSet is a bitmap of open ports: one load and a mask per lookup.
type portSet [65536 / 64]uint64

func newPortSet(groups ...[]topology.PortRange) *portSet {
	s := &portSet{}
	for _, g := range groups {
		for _, r := range g {
			for p := int(r.Lo); p <= int(r.Hi); p++ {
				s[p>>6] |= 1 << (p & 63)
			}
		}
	}
	return s
}

func (s *portSet) has(p uint16) bool { return s[p>>6]&(1<<(p&63)) != 0 }

// frontDoor is a public or load-balanced address and where its traffic
// goes: an ASE's VIP or ILB address (spread over the front-ends), or a VM's
// public IP (1:1).
type frontDoor struct {
	open     *portSet      // TCP ports, the only protocol an ASE's load balancer carries (F2, F7); nil: everything (a VM's public IP)
	backends []header.Addr // front-ends, or the VM
}

var platformAddr = header.AddrFromNetip(topology.PlatformAddr)

// policy is compiled from the topology once; it is only read afterwards.
type policy struct {
	vnet     route.Table[bool]           // the VNets' and on-premises address spaces and the platform address: "inside"
	outbound map[header.Addr]header.Addr // node address -> the address it leaves the VNet with
	doors    map[header.Addr]*frontDoor  // VIPs, ILB addresses, VM public IPs
	pools    []nat.PoolConfig            // the SNAT pools the outbound addresses need
	// onPremNAT is the corporate edge's public address: what traffic
	// forced through the gateway leaves for the Internet with (F16).
	onPremNAT header.Addr
}

// shareStart is the first port of src's own share of pub's SNAT pool
// (F17), if it has one.
func (p *policy) shareStart(src, pub header.Addr) (uint16, bool) {
	for _, pc := range p.pools {
		if pc.Addr != pub {
			continue
		}
		if i := slices.Index(pc.Shares, src); i >= 0 {
			return pc.Lo + uint16(i*pc.PerShare), true
		}
	}
	return 0, false
}

// compilePolicy compiles t's translations. Front-ends named in out are out
// of rotation: their VIP sends them no new flows (F15).
func compilePolicy(t *topology.Topology, out map[string]bool) *policy {
	p := &policy{outbound: map[header.Addr]header.Addr{}, doors: map[header.Addr]*frontDoor{}}
	for _, v := range t.VNets {
		for _, s := range v.AddressSpace {
			p.vnet.Insert(s, true)
		}
	}
	p.vnet.Insert(netip.PrefixFrom(topology.PlatformAddr, 32), true)

	addr := header.AddrFromNetip
	for _, a := range t.ASEs {
		vip := addr(a.VIP)
		// F3, F7: every machine of the ASE leaves with its public VIP,
		// F17: from ports of its own.
		pc := nat.PoolConfig{Addr: vip, Lo: a.SNATPorts.Lo, Hi: a.SNATPorts.Hi, PerShare: a.PortsPerInstance}
		for _, n := range append(append([]*topology.Node{}, a.FrontEnds...), a.Workers...) {
			p.outbound[addr(n.Addr)] = vip
			pc.Shares = append(pc.Shares, addr(n.Addr))
		}
		p.pools = append(p.pools, pc)
		var fes []header.Addr
		for _, n := range a.FrontEnds {
			if !out[n.Name] {
				fes = append(fes, addr(n.Addr))
			}
		}
		// F2: an External ASE takes every port on its VIP. F7: an ILB
		// ASE keeps management there, and its mode moves the web ports
		// (apps, remote debugging) and the publishing ports (FTP) to the
		// ILB address.
		onVIP, onILB := [][]topology.PortRange{portsManage}, [][]topology.PortRange(nil)
		place := func(ilb bool, groups ...[]topology.PortRange) {
			if ilb {
				onILB = append(onILB, groups...)
			} else {
				onVIP = append(onVIP, groups...)
			}
		}
		web, publishing := a.OnILB()
		place(web, portsApps, portsDebug)
		place(publishing, portsFTP)
		p.doors[vip] = &frontDoor{open: newPortSet(onVIP...), backends: fes}
		if onILB != nil {
			p.doors[addr(a.ILB)] = &frontDoor{open: newPortSet(onILB...), backends: fes}
		}
	}
	if o := t.OnPremises; o != nil {
		// On-premises addresses are private: inside for the VNets (the
		// gateway carries them unchanged), out of the Internet's reach.
		for _, pfx := range o.AddressSpace {
			p.vnet.Insert(pfx, true)
		}
		p.onPremNAT = addr(o.NATAddress)
		p.pools = append(p.pools, nat.PoolConfig{Addr: p.onPremNAT, Lo: topology.DefaultSNATPorts.Lo, Hi: topology.DefaultSNATPorts.Hi})
		for _, n := range append([]*topology.Node{o.Gateway}, o.Hosts...) {
			if n != nil {
				p.outbound[addr(n.Addr)] = p.onPremNAT
			}
		}
	}
	def := addr(t.DefaultOutbound)
	p.pools = append(p.pools, nat.PoolConfig{Addr: def, Lo: topology.DefaultSNATPorts.Lo, Hi: topology.DefaultSNATPorts.Hi})
	for _, vm := range t.VMs {
		if vm.PublicIP.IsValid() {
			pub := addr(vm.PublicIP)
			p.outbound[addr(vm.PrivateIP)] = pub // 1:1, ports kept
			p.doors[pub] = &frontDoor{backends: []header.Addr{addr(vm.PrivateIP)}}
		} else {
			p.outbound[addr(vm.PrivateIP)] = def // Azure's default outbound access
		}
	}
	return p
}

// inside reports whether a lies in a VNet's address space (or is the
// platform address, which VNet machines reach without NAT).
func (p *policy) inside(a header.Addr) bool {
	_, _, ok := p.vnet.Lookup(a)
	return ok
}

// decide returns the tuple a new flow's packets leave with, or a drop
// reason. k is the flow's first packet as it arrived from node n;
// viaGateway says the subnet's routes send it to the on-premises network.
func (p *policy) decide(n *topology.Node, k nat.Key, viaGateway bool) (nat.Key, DropReason, bool) {
	xl := k
	if n.Kind == topology.NodeInternet {
		// The Internet reaches a lab only through its public addresses,
		// and the lab's DNS server, which stands in for public DNS too.
		if p.inside(k.Dst) && k.Dst != platformAddr {
			return xl, DropInternetToPrivate, false
		}
	} else if k.Src != header.AddrFromNetip(n.Addr) && !n.IPForwarding {
		return xl, DropSpoofed, false // an appliance forwards others' packets
	}
	// SNAT first: a VNet machine's packet reaches a VIP from its public
	// address, so a load balancer's drop is of that tuple (verify says so).
	if pub, ok := p.snat(n, k.Dst, viaGateway); ok {
		xl.Src = pub
	}
	// DNAT: a VIP, an ILB address or a public IP (F2, F7).
	if d := p.doors[k.Dst]; d != nil {
		if d.open != nil && (k.Proto != header.ProtoTCP || !d.open.has(k.DstPort)) {
			return xl, DropPortClosed, false // silently, as Azure's load balancer does
		}
		if len(d.backends) == 0 {
			return xl, DropNoBackend, false // every front-end out of rotation: the VIP answers nothing (F15)
		}
		xl.Dst = d.backends[frontEnd(k, len(d.backends))]
	}
	return xl, 0, true
}

// snat returns the public address that what leaves node n for dst takes,
// if any. A VNet machine calling outside the VNet's address space leaves
// with its public address (F3), even when the call comes back in to
// another VIP of the lab (F5); inside the VNet nothing changes (F4). The
// address is the one of the machine the packet leaves from: Azure
// translates only its NIC's own address, so what an appliance forwards
// for an ASE (a 0.0.0.0/0 route to it) leaves with the appliance's
// address, not the VIP, which breaks the ASE as forced tunneling does
// (F16, F18).
func (p *policy) snat(n *topology.Node, dst header.Addr, viaGateway bool) (header.Addr, bool) {
	if n.Kind == topology.NodeInternet || p.inside(dst) {
		return 0, false
	}
	if viaGateway {
		// Forced tunneling: the corporate edge, not the ASE's VIP, takes
		// the flow to the Internet (F16).
		return p.onPremNAT, true
	}
	pub, ok := p.outbound[header.AddrFromNetip(n.Addr)]
	return pub, ok
}

// relayKeeps reports whether f, the flow of k, leaves appliance n as its
// translation says when n relays one of its packets (F18). Azure
// translates what leaves a NIC for the Internet from that NIC's address,
// whatever machine translated the flow before (snat); so a flow translated
// elsewhere, such as a front-end's answer through the VIP routed to the
// appliance by 0.0.0.0/0, would reach its peer from the appliance's
// address, which the peer does not know: the asymmetric routing that
// breaks an ASE's inbound traffic behind such a route (F16). A flow the
// appliance's own NIC translated, or one that is not translated where it
// leaves, goes on.
func (p *policy) relayKeeps(n *topology.Node, k nat.Key, viaGateway bool, f *nat.Flow) bool {
	pub, ok := p.snat(n, k.Dst, viaGateway)
	return !ok || pub == k.Src || f.Translated().Src == pub
}

// frontEnd picks one of n front-ends for the flow k by its 5-tuple, as
// Azure's load balancer does, so one connection always lands on one
// front-end. The multiply carries every bit of the tuple only upwards,
// so the pick scales the product's high bits to n (Lemire's fast range,
// as nat's table does): taking it modulo n read its low bits, which for 2
// or 4 front-ends left the source port out, and sent every connection of
// a client to one front-end (TestFrontEndSpreadsBySourcePort).
func frontEnd(k nat.Key, n int) int {
	h := uint64(k.Src)<<32 | uint64(k.Dst)
	h ^= uint64(k.SrcPort)<<40 | uint64(k.DstPort)<<24 | uint64(k.Proto)
	hi, _ := bits.Mul64(h*0x9e3779b97f4a7c15, uint64(n))
	return int(hi)
}

// needsNAT reports whether a packet that conntrack cannot follow (a
// protocol other than TCP, UDP and ICMP) would need translating, in which
// case it must not pass as it is.
func (p *policy) needsNAT(n *topology.Node, src, dst header.Addr) bool {
	if p.doors[dst] != nil {
		return true
	}
	_, out := p.outbound[src]
	return out && n.Kind != topology.NodeInternet && !p.inside(dst)
}

// isolated reports whether src may not reach dst because dst is a VM in
// src's ASE's own subnet (F8): the ASE's machines cannot reach it, though
// they reach each other and the same VM in another subnet.
func (p *policy) isolated(src, dst *topology.Node) bool {
	return src.ASE != nil && dst.Kind == topology.NodeVM && dst.Subnet == src.ASE.Subnet
}
