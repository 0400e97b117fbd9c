package dataplane

import (
	"errors"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

// worker is the per-goroutine scratch state of a forwarding loop.
type worker struct {
	reply []byte    // buffer for packets the dataplane itself sends
	out   [1][]byte // the batch handed to Device.Write; a slice literal there would escape to the heap per packet
	queue int       // the queue number this worker reads, and writes on

	observing bool // inside observe (capture.go): forward without the detour

	// The reason of the last drop, for observe to name: set by drop, reset
	// by observe before each packet it follows.
	dropped DropReason
	didDrop bool

	// What the worker has read and written since its last burst, not yet
	// on the ports' counters (flush publishes it).
	rx, tx tally

	// UDP datagrams held to be written as one (coalesce.go). Last: placed
	// ahead of out and queue, BenchmarkForwardSNAT read 96-101 ns against
	// 92-94 without it; placed here, 93 (2 runs of 1 s each).
	co coalescer

	// The packet the dataplane itself sent back for the packet in hand
	// (answer), for observe to show; set only while observing. After co,
	// so the fields the forwarding path reads keep their offsets.
	answered []byte

	// A ring worker's queued writes (ring.go): its ring; the ring buffer
	// the packet in hand was read into, while the packet is still there to
	// be queued (-1 otherwise, and always for an epoll worker); and the
	// port each buffer's write leaves by, until the write completes.
	ring    *tun.Ring
	inBuf   int
	leaving []*Port
}

func newWorker(queue int) *worker {
	return &worker{reply: make([]byte, maxPacket), queue: queue, inBuf: -1}
}

// drop counts a drop of the packet in hand on port p and notes its reason.
func (w *worker) drop(p *Port, r DropReason) {
	p.stats.drop(r)
	w.dropped, w.didDrop = r, true
}

// forward runs one packet from port in through the pipeline. b holds the
// virtio-net header followed by the IPv4 packet; now is the conntrack clock,
// read once per batch.
func (e *Engine) forward(s *snapshot, in *Port, b []byte, now int64, w *worker) {
	if o := e.obs.Load(); o != nil && !w.observing {
		e.observe(o, s, in, b, now, w) // a capture or trace runs: capture.go
		return
	}
	w.rx.add(&in.stats.rx, 1, uint64(len(b)))

	// parse
	if len(b) < header.VirtioNetHdrLen {
		w.drop(in, DropTruncated)
		return
	}
	vnet := header.VirtioNetHdr(b[:header.VirtioNetHdrLen])
	ip, why := header.ParseIPv4(b[header.VirtioNetHdrLen:])
	if why != header.OK {
		w.drop(in, parseDrop(why))
		return
	}
	if !ip.ChecksumValid() {
		w.drop(in, DropBadChecksum)
		return
	}
	if ip.HeaderLen() > header.IPv4MinLen && !ip.OptionsOK() {
		w.drop(in, DropBadIPOptions)
		return
	}
	// For the dataplane itself: it answers as every subnet's gateway.
	dst := ip.Dst()
	t, _, found := s.fib.Lookup(dst)
	if found && t.kind == targetLocal {
		e.toGateway(s, in, ip, w)
		return
	}
	// A router drops an expiring packet before anything else, and its
	// error quotes the packet as the sender sent it.
	if ip.TTL() <= 1 {
		e.sendError(in, ip, header.ICMPTimeExceeded, 0, 0, w)
		w.drop(in, DropTTLExceeded)
		return
	}

	// The subnet's routes (F18): only a lab with user routes or an
	// on-premises network needs the lookup.
	viaGateway, relayed := false, false
	if s.routes.used && in.node().Subnet != nil {
		// Only a user route brings an appliance others' packets to relay.
		n := in.node()
		relayed = n.IPForwarding && ip.Src() != header.AddrFromNetip(n.Addr)
		switch h, _ := s.routes.lookup(n.Subnet, dst); h.kind {
		case hopNone:
			w.drop(in, DropRouteNone)
			return
		case hopInternet, hopVnetLocal:
			if h.stranded {
				w.drop(in, DropRouteStranded)
				return
			}
		case hopAppliance:
			e.toAppliance(s, in, b, vnet, ip, h.via, now, w)
			return
		case hopGateway:
			viaGateway = true
		}
	}

	// conntrack: the flow, or a new one as the policy decides (NSG and
	// NAT, F2-F7, F12). The flow knows where the packet goes once
	// translated, so routing and the MTU check come before the rewrite.
	var flow nat.Flow
	tracked, ok := false, true
	if ip.IsFragment() { // frag.go: tracked by IP ID
		flow, tracked, ok = e.fragment(s, in, ip, t, found, viaGateway, now, w)
	} else if k, keyed := nat.KeyOf(ip); keyed {
		tracked = e.track(s, in, ip, k, viaGateway, now, w, &flow)
		ok = tracked
		if relayed && ok && !s.pol.relayKeeps(in.node(), k, viaGateway, &flow) {
			w.drop(in, DropAsymmetric)
			return
		}
	} else if e.ct.TranslateICMPError(ip, vnet, now) {
		// An error about a translated flow, already rewritten for its
		// sender: route it by its new destination.
		dst = ip.Dst()
		t, _, found = s.fib.Lookup(dst)
	} else {
		ok = e.untracked(s, in, ip, t, found, w)
	}
	if !ok {
		return
	}
	if to := flow.TranslatedDst(); tracked && to != dst {
		dst = to
		t, _, found = s.fib.Lookup(dst)
	}

	// route
	out := e.egress(s, in, ip, t, found, w)
	if out == nil {
		return
	}
	if !e.fits(in, out, vnet, ip, w) {
		return
	}

	// translate, then write
	if tracked {
		flow.Translate(ip, vnet)
	}
	ip.DecTTL()
	e.transmit(in, out, b[:header.VirtioNetHdrLen+ip.TotalLen()], w)
}

// track finds the flow of k, the tuple of ip, into *f, creating it if
// there is none. It is false if ip was refused (and counted). LookupInto
// fills the caller's Flow: returning the 64-byte Flow by value went
// through the stack per packet.
func (e *Engine) track(s *snapshot, in *Port, ip header.IPv4, k nat.Key, viaGateway bool, now int64, w *worker, f *nat.Flow) bool {
	if e.ct.LookupInto(k, now, f) {
		return true
	}
	var ok bool
	*f, ok = e.newFlow(s, in, ip, k, viaGateway, now, w)
	return ok
}

// newFlow creates the flow of a connection's first packet: the policy says
// how it is translated, and the flow is refused if the translated
// destination is unroutable, the table is full, or the VIP has no SNAT
// port left (F17: TCP gets a RST, others admin-prohibited).
func (e *Engine) newFlow(s *snapshot, in *Port, ip header.IPv4, k nat.Key, viaGateway bool, now int64, w *worker) (nat.Flow, bool) {
	if !l4OK(ip) {
		w.drop(in, DropBadL4)
		return nat.Flow{}, false
	}
	xl, reason, ok := s.pol.decide(in.node(), k, viaGateway)
	if !ok {
		// The load balancer sees only what the source's outbound rules
		// let out of its NIC (F14): they decide first.
		if reason.byLoadBalancer() {
			if h := s.nsgs.Node(in.node().Name); h != nil && !h.Check(nsg.Outbound, nsgTuple(k)).Allow {
				reason = DropNSGOutbound
			}
			e.flowDenied(s, in, nil, k, xl, reason, ip.TotalLen())
		}
		w.drop(in, reason)
		return nat.Flow{}, false
	}
	// An unroutable destination must not leave a flow behind.
	t, _, found := s.fib.Lookup(xl.Dst)
	out := e.egress(s, in, ip, t, found, w)
	if out == nil {
		return nat.Flow{}, false
	}
	if reason, ok := s.filter(in.node(), out.node(), k, xl); !ok {
		w.drop(in, reason) // silently, as Azure drops
		e.flowDenied(s, in, out, k, xl, reason, ip.TotalLen())
		return nat.Flow{}, false
	}
	f, err := e.ct.Insert(k, xl, now)
	if err == nil {
		e.flowBegun(s, in, out, k, xl)
	}
	switch {
	case err == nil || errors.Is(err, nat.ErrExists):
		return f, true
	case errors.Is(err, nat.ErrPoolExhausted):
		e.refuse(in, ip, w)
		w.drop(in, DropSNATExhausted)
	case errors.Is(err, nat.ErrConflict):
		e.refuse(in, ip, w)
		w.drop(in, DropNATConflict)
	default: // nat.ErrTableFull (ErrInvalid would be a policy bug)
		e.refuse(in, ip, w)
		w.drop(in, DropConntrackFull)
	}
	return nat.Flow{}, false
}

// toAppliance hands a packet to the virtual appliance its subnet's route
// names (F18), untranslated and untracked: the appliance forwards it back
// into the dataplane, which then treats it as the appliance's traffic.
func (e *Engine) toAppliance(s *snapshot, in *Port, b []byte, vnet header.VirtioNetHdr, ip header.IPv4, via header.Addr, now int64, w *worker) {
	t, _, found := s.fib.Lookup(via)
	out := e.egress(s, in, ip, t, found, w)
	if out == nil {
		return
	}
	if !e.fits(in, out, vnet, ip, w) {
		return
	}
	if !e.applianceFilter(s, in, out, ip, now, w) {
		return
	}
	ip.DecTTL()
	e.transmit(in, out, b[:header.VirtioNetHdrLen+ip.TotalLen()], w)
}

// applianceFilter applies the NSGs of the way to an appliance (F14, F18):
// the sender's outbound rules, then the appliance's inbound ones, as for
// any flow between the two machines. It reports whether the packet may go
// on, and counts it if not. The leg is not tracked (the flow's tuple is
// the appliance's to track once it forwards the packet), so statefulness
// comes from the flow the rest of the way makes: a packet whose tuple,
// either way round, is a live flow's already passed the rules, or is the
// reply of a flow that did (F12). Anything else is a new flow's, judged
// on its own until there is one. An ICMP error or a later fragment has no
// tuple of its own and passes, as it would on the rest of the way.
func (e *Engine) applianceFilter(s *snapshot, in, out *Port, ip header.IPv4, now int64, w *worker) bool {
	k, keyed := nat.KeyOf(ip)
	switch {
	case keyed:
		var f nat.Flow
		if e.ct.LookupInto(k, now, &f) {
			return true
		}
	case ip.IsFragment(), isICMPError(ip):
		return true
	default:
		k = nat.Key{Src: ip.Src(), Dst: ip.Dst(), Proto: ip.Protocol()}
	}
	if reason, ok := s.filter(in.node(), out.node(), k, k); !ok {
		w.drop(in, reason)
		e.flowDenied(s, in, out, k, k, reason, ip.TotalLen())
		return false
	}
	return true
}

// egress returns the port a packet for route t leaves by, or, if there is
// none, answers the packet with the ICMP error a router sends, counts the
// drop and returns nil.
func (e *Engine) egress(s *snapshot, in *Port, ip header.IPv4, t target, found bool, w *worker) *Port {
	switch {
	case !found:
		e.sendError(in, ip, header.ICMPDestUnreachable, header.ICMPNetUnreachable, 0, w)
		w.drop(in, DropNoRoute)
	case t.kind != targetPort:
		if t.kind == targetBroadcast {
			// RFC 1812 4.3.2.7: no ICMP error about a packet to a
			// broadcast address; Azure drops it without a word.
			w.drop(in, DropBroadcast)
			break
		}
		e.sendError(in, ip, header.ICMPDestUnreachable, header.ICMPHostUnreachable, 0, w)
		w.drop(in, DropHostUnreachable)
	default:
		return s.ports[t.port]
	}
	return nil
}

// refuse answers the first packet of a connection the dataplane cannot
// carry: a TCP reset, so connect() fails at once, or ICMP
// administratively prohibited for anything else.
func (e *Engine) refuse(in *Port, ip header.IPv4, w *worker) {
	if !answerable(in, ip) {
		return
	}
	if ip.Protocol() == header.ProtoTCP {
		if n := header.BuildTCPReset(w.replyBody(), ip); n > 0 {
			e.answer(in, n, w)
		}
		return
	}
	e.sendError(in, ip, header.ICMPDestUnreachable, header.ICMPAdminProhibited, 0, w)
}

// transmit writes one packet to out and counts it, or holds a UDP datagram
// to write it with those of its flow that follow (coalesce.go). It writes
// on the queue of out numbered like the worker's own: the kernel then
// steers the node's replies of that flow to the same queue number
// (tun_flow_update), so both directions of a flow stay on one worker, and
// two workers never share a descriptor's write lock.
func (e *Engine) transmit(in, out *Port, pkt []byte, w *worker) {
	qi := 0
	if w.queue < len(out.queues) {
		qi = w.queue
	}
	q := out.queues[qi]
	if in.link.Load() != nil || out.link.Load() != nil {
		e.transmitImpaired(in, out, qi, pkt, w) // link.go
		return
	}
	// Only UDP, or a packet behind held datagrams, goes through the
	// coalescer. Calling it for every packet cost 6 ns in BenchmarkForward
	// (82 -> 88 ns, 3 runs each); these two loads cost none measurable.
	if w.co.n > 0 || header.IPv4(pkt[header.VirtioNetHdrLen:]).Protocol() == header.ProtoUDP {
		if e.coalesce(in, out, q, pkt, w) {
			return
		}
	}
	if w.ring != nil && w.queueWrite(out, q, pkt) {
		return
	}
	// writeHeld (coalesce.go) writes and counts a batch with its own copy
	// of these lines: a write method shared with it, which the compiler does
	// not inline, cost BenchmarkForward 81.4-83.8 -> 83.6-84.2 ns and
	// BenchmarkForwardSNAT 93.0-93.6 -> 94.5-94.9 ns (3 runs of 1 s each).
	w.out[0] = pkt
	if _, err := q.Write(w.out[:]); err != nil {
		w.drop(in, DropWriteError)
		return
	}
	w.tx.add(&out.stats.tx, 1, uint64(len(pkt)))
}

// fits reports whether ip can leave by out. A packet larger than out's MTU
// is dropped: with DF set its sender gets frag-needed naming the MTU (path
// MTU discovery); without, it is counted, since the dataplane does not
// fragment.
func (e *Engine) fits(in, out *Port, vnet header.VirtioNetHdr, ip header.IPv4, w *worker) bool {
	if wireLen(vnet, ip) <= out.mtu {
		return true
	}
	if ip.DF() {
		e.sendError(in, ip, header.ICMPDestUnreachable, header.ICMPFragNeeded, uint32(out.mtu), w)
		w.drop(in, DropFragNeeded)
	} else {
		w.drop(in, DropTooBig)
	}
	return false
}

// wireLen is the largest IP packet that p puts on the wire: its own length,
// or for a GSO super-packet the length of one segment, since the receiving
// stack splits it at gso_size.
func wireLen(vnet header.VirtioNetHdr, ip header.IPv4) int {
	if vnet.GSOType()&^header.GSOECN == header.GSONone {
		return ip.TotalLen()
	}
	l4 := 0
	switch ip.Protocol() {
	case header.ProtoTCP:
		if p := ip.Payload(); len(p) >= header.TCPMinLen {
			l4 = header.TCP(p).DataOffset()
		}
	case header.ProtoUDP:
		l4 = header.UDPLen
	}
	return ip.HeaderLen() + l4 + int(vnet.GSOSize())
}

// filter applies the network security groups to a new flow from node src to
// node dst (F8-F14): outbound rules at the source see the flow before SNAT,
// inbound rules at the destination see it after DNAT, with the source as it
// arrives (F13; for F5 that is the calling ASE's VIP). The verdict holds for
// the flow's life: conntrack keeps only allowed flows, so their replies pass
// and a rule change affects new flows only (F12).
func (s *snapshot) filter(src, dst *topology.Node, k, xl nat.Key) (DropReason, bool) {
	if s.pol.isolated(src, dst) {
		return DropASESubnetVM, false
	}
	if h := s.nsgs.Node(src.Name); h != nil && !h.Check(nsg.Outbound, nsgTuple(k)).Allow {
		return DropNSGOutbound, false
	}
	if h := s.nsgs.Node(dst.Name); h != nil && !h.Check(nsg.Inbound, nsgTuple(xl)).Allow {
		return DropNSGInbound, false
	}
	return 0, true
}

func nsgTuple(k nat.Key) nsg.Tuple {
	return nsg.Tuple{Src: k.Src, Dst: k.Dst, SrcPort: k.SrcPort, DstPort: k.DstPort, Proto: k.Proto}
}
