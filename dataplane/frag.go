package dataplane

import (
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
)

// Fragments are tracked by IP ID, not reassembled.
//
// The first fragment (offset 0, MF set) carries the L4 header, so it takes
// the path of an unfragmented packet: its flow is looked up or created, with
// the NSGs and NAT of a new flow, and it is translated in full (its L4
// checksum covers the whole datagram and is updated through the
// pseudo-header, which the addresses alone change). The port then records
// (source, destination, protocol, IP ID) -> the flow's key. A later
// fragment with the same four follows that flow's verdict: it passes if the
// flow is still live, with only its addresses and IP checksum rewritten.
//
// Dropped and counted:
//   - a later fragment whose first fragment this port has not seen, or saw
//     more than fragTimeout ago, or whose flow has since ended
//     (DropFragNoFirst). A sender's kernel sends the first fragment first,
//     so this costs reordered datagrams only;
//   - a first fragment too short to hold its whole TCP header or the 8
//     bytes of a UDP or ICMP header, the ports NSGs and NAT decide on, and
//     a TCP fragment at offset 8 bytes, which could overwrite the TCP
//     flags in reassembly (RFC 1858's tiny and overlapping fragment
//     attacks) (DropFragTiny);
//   - a first fragment the policy refuses, under the reason of an
//     unfragmented packet (DropNSGInbound, DropPortClosed, ...).
//
// Overlapping and duplicate fragments of a datagram whose first fragment
// was allowed pass: they follow the verdict, and the receiver's reassembly
// resolves overlaps (Linux drops the whole datagram on an overlap, RFC
// 5722's rule). No fragment can change the ports the verdict was made on:
// they sit in the first 8 bytes, which only the first fragment holds.
//
// Fragments of protocols conntrack does not follow are treated like the
// unfragmented packets of that protocol (see untracked).
//
// The table is per ingress port: the fragments of one datagram come from
// one sender, hence one port. A port's queues are read by different
// workers, and the kernel may steer a datagram's fragments to different
// queues (its flow hash sees ports in the first fragment only), so the
// table has a mutex: only fragments take it, and they are rare. It is a
// fixed array, allocated on the port's first fragment: fragSlots entries,
// each key probing fragWays slots and, with all of them live, replacing the
// one that expires first. It never grows.

const (
	fragSlots   = 64 // per port; a power of two
	fragWays    = 4
	fragTimeout = int64(30 * time.Second) // Linux's ipfrag_time
)

type fragKey struct {
	src, dst header.Addr
	id       uint16
	proto    uint8
}

type fragEntry struct {
	key     fragKey
	flow    nat.Key
	expires int64 // 0: empty
}

type fragTable struct {
	e [fragSlots]fragEntry
}

func fragKeyOf(ip header.IPv4) fragKey {
	return fragKey{src: ip.Src(), dst: ip.Dst(), id: ip.ID(), proto: ip.Protocol()}
}

func (k fragKey) home() int {
	h := (uint64(k.src)<<32 | uint64(k.dst)) ^ uint64(k.id)<<16 ^ uint64(k.proto)
	h *= 0x9e3779b97f4a7c15
	return int(h >> 58) // top log2(fragSlots) bits
}

// get returns the flow key the first fragment of k's datagram recorded.
func (t *fragTable) get(k fragKey, now int64) (nat.Key, bool) {
	for i, h := 0, k.home(); i < fragWays; i++ {
		if e := &t.e[(h+i)&(fragSlots-1)]; e.key == k && e.expires > now {
			return e.flow, true
		}
	}
	return nat.Key{}, false
}

// put records the first fragment of k's datagram, replacing an earlier
// datagram with the same key, else a free or expired slot, else the slot
// that expires first.
func (t *fragTable) put(k fragKey, flow nat.Key, now int64) {
	h := k.home()
	victim := &t.e[h]
	for i := 0; i < fragWays; i++ {
		e := &t.e[(h+i)&(fragSlots-1)]
		if e.key == k || e.expires <= now {
			victim = e
			break
		}
		if e.expires < victim.expires {
			victim = e
		}
	}
	*victim = fragEntry{key: k, flow: flow, expires: now + fragTimeout}
}

// live counts the entries that have not expired, for tests.
func (t *fragTable) live(now int64) int {
	n := 0
	for i := range t.e {
		if t.e[i].expires > now {
			n++
		}
	}
	return n
}

// l4Min is the L4 header bytes a first fragment must hold.
func l4Min(proto uint8) int {
	if proto == header.ProtoTCP {
		return header.TCPMinLen
	}
	return header.UDPLen // == header.ICMPv4MinLen
}

// fragment runs a fragment (MF set or a non-zero offset) through
// conntrack. It returns the flow to translate it with; tracked is false
// for a protocol conntrack does not follow, which then passes untranslated
// as its unfragmented packets would. ok is false if the fragment was
// dropped (and counted).
func (e *Engine) fragment(s *snapshot, in *Port, ip header.IPv4, t target, found, viaGateway bool, now int64, w *worker) (f nat.Flow, tracked, ok bool) {
	proto := ip.Protocol()
	switch proto {
	case header.ProtoTCP, header.ProtoUDP, header.ProtoICMP:
	default:
		return nat.Flow{}, false, e.untracked(s, in, ip, t, found, w)
	}
	fk := fragKeyOf(ip)
	if off := ip.FragOffset(); off != 0 {
		if off == 1 && proto == header.ProtoTCP {
			w.drop(in, DropFragTiny)
			return nat.Flow{}, false, false
		}
		k, known := in.fragGet(fk, now)
		if known {
			known = e.ct.LookupInto(k, now, &f)
		}
		if !known {
			w.drop(in, DropFragNoFirst)
			return nat.Flow{}, false, false
		}
		return f, true, true
	}
	if len(ip.Payload()) < l4Min(proto) {
		w.drop(in, DropFragTiny)
		return nat.Flow{}, false, false
	}
	k, keyed := nat.KeyOf(ip)
	if !keyed {
		// ICMP other than echo: an error is never fragmented by a sane
		// sender (it fits in 576 bytes), and nothing else is tracked.
		w.drop(in, DropUntranslatable)
		return nat.Flow{}, false, false
	}
	if ok = e.track(s, in, ip, k, viaGateway, now, w, &f); ok {
		in.fragPut(fk, k, now)
	}
	return f, ok, ok
}

// fragGet looks k up in the port's fragment table.
func (p *Port) fragGet(k fragKey, now int64) (nat.Key, bool) {
	p.fragMu.Lock()
	defer p.fragMu.Unlock()
	if p.frags == nil {
		return nat.Key{}, false
	}
	return p.frags.get(k, now)
}

// fragPut records a first fragment in the port's table, which the port's
// first fragment allocates.
func (p *Port) fragPut(k fragKey, flow nat.Key, now int64) {
	p.fragMu.Lock()
	defer p.fragMu.Unlock()
	if p.frags == nil {
		p.frags = new(fragTable)
	}
	p.frags.put(k, flow, now)
}
