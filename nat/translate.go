package nat

import (
	"encoding/binary"
	"math/bits"

	"github.com/aseemu/emulator/dataplane/header"
)

// Flow is a handle on one direction of a flow, from Lookup or Insert. It is
// a small value: keep it on the stack, use it for the packet it was looked
// up for, and drop it. It holds a copy of the tuples, so a flow that ends
// between Lookup and Translate still translates that packet as it would
// have; only its counters may then land on the next flow of the same slab
// entry, an error of one packet.
//
// Its eight words fit the nine registers the register ABI returns results
// in, so Lookup does not return it through memory; the tuples are packed
// words rather than Keys for that reason.
type Flow struct {
	f      *flow
	gs     uint64 // generation and state at lookup
	now    int64  // time of the lookup
	ka, kb uint64 // the packet's tuple, packed
	ta, tb uint64 // the other direction's tuple, packed: reversed, what Translate makes of the packet
	dir    Dir
}

// Dir returns the direction of the packet the flow was looked up for.
func (f *Flow) Dir() Dir { return f.dir }

// Key returns the tuple of the packet the flow was looked up for.
func (f *Flow) Key() Key { return unpack(f.ka, f.kb) }

// Translated returns the tuple Translate rewrites the packet to. It equals
// Key for a flow without NAT.
func (f *Flow) Translated() Key { return unpackReverse(f.ta, f.tb) }

// TranslatedDst is Translated().Dst, without unpacking the rest.
func (f *Flow) TranslatedDst() header.Addr { return header.Addr(f.ta >> 32) }

// State returns the flow's state when it was looked up.
func (f *Flow) State() State { return State(f.gs & 0xff) }

// Translate rewrites ip, the packet the flow was looked up for, in place
// into the flow's translated tuple, and records it: counters, last-seen
// time and TCP state. Checksums are updated incrementally (RFC 1624): the
// IP header's for addresses; TCP and UDP for addresses (pseudo-header) and
// ports; ICMP echo for the identifier. If vnet (which may be nil) says
// NEEDS_CSUM, the L4 field holds only the pseudo-header sum, which changes
// with addresses and not ports; a GSO super-packet is such a packet. A UDP
// checksum of 0 stays 0. A non-first fragment of the flow's datagram (the
// dataplane finds its flow through the first fragment) has only its
// addresses and IP checksum rewritten: it carries no L4 header.
//
// It is false, and ip untouched, if ip is too short for the flow's
// protocol, which cannot happen for the packet whose KeyOf found the flow,
// or f is the zero Flow of a failed Lookup.
func (f *Flow) Translate(ip header.IPv4, vnet header.VirtioNetHdr) bool {
	if f.f == nil || len(ip) < header.IPv4MinLen {
		return false
	}
	hl := ip.HeaderLen()
	if hl > len(ip) {
		return false
	}
	l4 := ip[hl:]
	proto := uint8(f.kb >> 24)
	// The tuples stay packed words: unpacked into Key structs they went
	// through the stack in narrow stores and wide loads, a store-forwarding
	// stall (BenchmarkTranslate, min of 10: 25 ns with Keys, 19 without).
	ta, tb := bits.RotateLeft64(f.ta, 32), f.tb&0xffffffff|(f.tb>>48)<<32|(f.tb>>32&0xffff)<<48 // reversed
	if ip.FragOffset() != 0 {
		// A later fragment has no L4 header: only the addresses change.
		// The L4 checksum lives in the first fragment, which Translate
		// updated for the new pseudo-header.
		rewriteAddrs(ip, f.ka, ta)
		f.account(len(ip), proto, 0)
		return true
	}
	var flags uint8
	switch proto {
	case header.ProtoTCP:
		if len(l4) < header.TCPMinLen {
			return false
		}
		flags = l4[13]
	case header.ProtoUDP:
		if len(l4) < header.UDPLen {
			return false
		}
	case header.ProtoICMP:
		if len(l4) < header.ICMPv4MinLen {
			return false
		}
	default:
		return false
	}
	if f.ka != ta || f.kb != tb {
		rewrite(ip, l4, f.ka, f.kb, ta, tb, proto, len(vnet) > 0 && vnet.NeedsCsum())
	}
	f.account(len(ip), proto, flags)
	return true
}

// rewrite turns the tuple of ip, packed as (ka, kb), into (ta, tb). Each
// changed 16-bit word adds ~old + new to a one's-complement delta, and each
// checksum takes the delta of the words it covers in one RFC 1624 eqn. 3
// update.
func rewrite(ip header.IPv4, l4 []byte, ka, kb, ta, tb uint64, proto uint8, partial bool) {
	ad := rewriteAddrs(ip, ka, ta) // addresses: IP header and L4 pseudo-header
	osp, odp := uint16(kb>>48), uint16(kb>>32)
	nsp, ndp := uint16(tb>>48), uint16(tb>>32)
	var pd uint32 // ports or ICMP identifier: L4 only
	switch proto {
	case header.ProtoTCP, header.ProtoUDP:
		if osp != nsp {
			pd += delta16(osp, nsp)
			binary.BigEndian.PutUint16(l4[0:2], nsp)
		}
		if odp != ndp {
			pd += delta16(odp, ndp)
			binary.BigEndian.PutUint16(l4[2:4], ndp)
		}
		off := 16
		if proto == header.ProtoUDP {
			off = 6
		}
		c := binary.BigEndian.Uint16(l4[off:])
		switch {
		case partial:
			// The field is the non-inverted pseudo-header sum; the kernel
			// adds the ports itself when it completes the checksum.
			c = fold(uint32(c) + ad)
		case proto == header.ProtoUDP && c == 0:
			return // RFC 768: the sender computed no checksum
		default:
			c = update(c, ad+pd)
			if c == 0 && proto == header.ProtoUDP {
				c = 0xffff // RFC 768: a computed 0 is sent as all ones
			}
		}
		binary.BigEndian.PutUint16(l4[off:], c)
	case header.ProtoICMP:
		// Echo request and reply alike carry the identifier in bytes 4-5,
		// and the key's two ports both hold it.
		if id := binary.BigEndian.Uint16(l4[4:6]); id != nsp {
			binary.BigEndian.PutUint16(l4[4:6], nsp)
			// ICMP has no pseudo-header: a partial checksum is summed
			// over the new identifier by the kernel and needs nothing.
			if !partial {
				binary.BigEndian.PutUint16(l4[2:4], update(binary.BigEndian.Uint16(l4[2:4]), delta16(id, nsp)))
			}
		}
	}
}

// rewriteAddrs turns the addresses of ip, packed as ka, into ta, updates
// the IP header checksum, and returns the delta for the L4 pseudo-header.
func rewriteAddrs(ip header.IPv4, ka, ta uint64) uint32 {
	if ka == ta {
		return 0
	}
	var ad uint32
	if o, n := uint32(ka>>32), uint32(ta>>32); o != n {
		ad += delta32(o, n)
		binary.BigEndian.PutUint32(ip[12:16], n)
	}
	if o, n := uint32(ka), uint32(ta); o != n {
		ad += delta32(o, n)
		binary.BigEndian.PutUint32(ip[16:20], n)
	}
	ip.SetChecksum(update(ip.Checksum(), ad))
	return ad
}

// account records a packet of n bytes with TCP flags in the flow.
func (f *Flow) account(n int, proto, flags uint8) {
	fl := f.f
	if f.now-fl.lastSeen.Load() >= lastSeenSlack {
		fl.lastSeen.Store(f.now)
	}
	fl.ctr[f.dir&1].pkts.Add(1)
	fl.ctr[f.dir&1].bytes.Add(uint64(n))
	s := State(f.gs & 0xff)
	ns := nextState(s, proto, f.dir, flags)
	if ns == s {
		return
	}
	// The other direction's goroutine may change the state too; retry on
	// its change, give up if the entry now holds another flow.
	gs := f.gs
	for !fl.gs.CompareAndSwap(gs, gs&^0xff|uint64(ns)) {
		gs = fl.gs.Load()
		if gs>>32 != f.gs>>32 {
			return
		}
		s = State(gs & 0xff)
		if ns = nextState(s, proto, f.dir, flags); ns == s {
			return
		}
	}
}

// TranslateICMPError translates, in place, an ICMP error (destination
// unreachable, fragmentation needed, time exceeded, ...) about a packet of
// a translated flow, so that the stack that sent that packet matches the
// error to its socket: traceroute and path-MTU discovery through SNAT.
//
// The quoted packet left the dataplane translated, so its tuple reversed
// is the key of the flow in the direction the error travels. Translate
// rewrites the quoted header (addresses, ports or echo identifier, its IP
// checksum and, if quoted, its L4 checksum) to the packet as its sender
// sent it, the outer destination to that sender, and the outer source too
// if the error comes from the flow's peer itself (a front-end behind DNAT
// shows up as the VIP it hides behind). The outer ICMP checksum is updated
// for every byte changed, unless vnet (which may be nil) says NEEDS_CSUM:
// ICMP has no pseudo-header, so the kernel sums the new bytes itself.
//
// It is false, and ip untouched, if ip is not such an error or its flow is
// not in the table. ip must come from header.ParseIPv4.
func (t *Table) TranslateICMPError(ip header.IPv4, vnet header.VirtioNetHdr, now int64) bool {
	partial := len(vnet) > 0 && vnet.NeedsCsum()
	if ip.Protocol() != header.ProtoICMP || ip.IsFragment() {
		return false
	}
	msg := ip[ip.HeaderLen():]
	if len(msg) < header.ICMPv4MinLen+header.IPv4MinLen || !header.IsICMPError(msg[0]) {
		return false
	}
	in := msg[header.ICMPv4MinLen:] // the quoted packet, often cut short
	ihl := int(in[0]&0xf) * 4
	if in[0]>>4 != 4 || ihl < header.IPv4MinLen || len(in) < ihl+8 || binary.BigEndian.Uint16(in[6:8])&0x1fff != 0 {
		return false
	}
	l4 := in[ihl:]
	e := Key{Src: header.AddrFromSlice(in[12:16]), Dst: header.AddrFromSlice(in[16:20]), Proto: in[9]}
	switch e.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		e.SrcPort, e.DstPort = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
	case header.ProtoICMP:
		if l4[0] != header.ICMPEchoRequest && l4[0] != header.ICMPEchoReply {
			return false
		}
		e.SrcPort = binary.BigEndian.Uint16(l4[4:6])
		e.DstPort = e.SrcPort
	default:
		return false
	}
	f, ok := t.Lookup(e.Reverse(), now)
	if !ok {
		return false
	}
	k, to := f.Key(), f.Translated() // the error's direction; the quote is k reversed
	if ip.Dst() != k.Dst {
		return false
	}

	// The quoted packet becomes to reversed.
	var ad, pd uint32
	if k.Dst != to.Dst {
		ad += delta32(uint32(k.Dst), uint32(to.Dst))
		to.Dst.Put(in[12:16])
	}
	if k.Src != to.Src {
		ad += delta32(uint32(k.Src), uint32(to.Src))
		to.Src.Put(in[16:20])
	}
	md := ad // every 16-bit word of msg that changes, for the outer ICMP checksum
	if ad != 0 {
		md += set16(in[10:12], update(binary.BigEndian.Uint16(in[10:12]), ad))
	}
	switch e.Proto {
	case header.ProtoTCP, header.ProtoUDP:
		// The quoted L4 checksum is fixed if it was quoted at all, so
		// that a tool decoding the quote sees a consistent segment.
		off := 6
		if e.Proto == header.ProtoTCP {
			off = 16
		}
		quoted := len(l4) >= off+2
		var c uint16
		var partialSum bool
		if quoted {
			// Whether it was complete or a NEEDS_CSUM pseudo-header sum
			// (a kernel quotes what it received as is) shows in its
			// value: a partial one equals the pseudo-header sum of the
			// quote as it stands. A full checksum matches by chance once
			// in 65,536 quotes: a quote of the whole segment tells them
			// apart, since a full checksum then verifies over it (before
			// the ports below change); a cut one cannot, and gets the
			// partial update.
			c = binary.BigEndian.Uint16(l4[off:])
			seg := binary.BigEndian.Uint16(in[2:4]) - uint16(ihl)
			pseudo := header.PseudoHeaderSum(e.Proto, e.Src, e.Dst, seg)
			partialSum = c == fold(pseudo) &&
				!(int(seg) <= len(l4) && header.Checksum(l4[:seg], pseudo) == 0xffff)
		}
		if k.DstPort != to.DstPort {
			pd += set16(l4[0:2], to.DstPort)
		}
		if k.SrcPort != to.SrcPort {
			pd += set16(l4[2:4], to.SrcPort)
		}
		md += pd
		if quoted {
			switch {
			case partialSum:
				md += set16(l4[off:off+2], fold(uint32(c)+ad))
			case e.Proto == header.ProtoUDP && c == 0:
			default:
				if c = update(c, ad+pd); c == 0 && e.Proto == header.ProtoUDP {
					c = 0xffff
				}
				md += set16(l4[off:off+2], c)
			}
		}
	case header.ProtoICMP:
		if to.SrcPort != e.SrcPort {
			pd = set16(l4[4:6], to.SrcPort)
			md += pd
			md += set16(l4[2:4], update(binary.BigEndian.Uint16(l4[2:4]), pd))
		}
	}
	if md != 0 && !partial {
		set16(msg[2:4], update(binary.BigEndian.Uint16(msg[2:4]), md))
	}

	var od uint32 // outer header; ICMP has no pseudo-header, so msg is done
	if k.Dst != to.Dst {
		od += delta32(uint32(k.Dst), uint32(to.Dst))
		to.Dst.Put(ip[16:20])
	}
	if ip.Src() == k.Src && k.Src != to.Src {
		od += delta32(uint32(k.Src), uint32(to.Src))
		to.Src.Put(ip[12:16])
	}
	if od != 0 {
		ip.SetChecksum(update(ip.Checksum(), od))
	}
	return true
}

// The checksum arithmetic below is header's (RFC 1071, RFC 1624), in the
// form of a delta summed over several changed words and applied once,
// which header's one-change-at-a-time helpers do not offer.

// fold folds a 32-bit one's-complement sum to 16 bits.
func fold(s uint32) uint16 {
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return uint16(s)
}

// delta16 is the one's-complement change a 16-bit word makes from old to
// new: ~old + new.
func delta16(old, new uint16) uint32 { return uint32(^old) + uint32(new) }

// delta32 is delta16 for both halves of a 32-bit field.
func delta32(old, new uint32) uint32 {
	return delta16(uint16(old>>16), uint16(new>>16)) + delta16(uint16(old), uint16(new))
}

// update applies a summed delta to a checksum field by RFC 1624 eqn. 3,
// HC' = ~(~HC + sum(~m + m')). A delta of a few dozen words cannot overflow
// the 32-bit sum.
func update(c uint16, d uint32) uint16 { return ^fold(uint32(^c) + d) }

// set16 writes v into b[0:2] and returns the delta of the change.
func set16(b []byte, v uint16) uint32 {
	d := delta16(binary.BigEndian.Uint16(b), v)
	binary.BigEndian.PutUint16(b, v)
	return d
}
