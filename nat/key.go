package nat

import (
	"strconv"

	"github.com/aseemu/emulator/dataplane/header"
)

// Key is one direction of a flow: the 5-tuple a packet carries. It is a
// plain comparable value with no pointers, so it can be a map key, be
// packed into two machine words for the index, and cost the GC nothing.
//
// For ICMP echo both ports hold the echo identifier. A request from A to B
// and B's reply then have keys that are each other's Reverse, which is what
// lets one flow hold both.
type Key struct {
	Src, Dst         header.Addr
	SrcPort, DstPort uint16
	Proto            uint8
}

// Reverse returns the key of a packet going the other way.
func (k Key) Reverse() Key {
	return Key{Src: k.Dst, Dst: k.Src, SrcPort: k.DstPort, DstPort: k.SrcPort, Proto: k.Proto}
}

// KeyOf returns the key of ip, a packet from header.ParseIPv4. It is false
// for anything conntrack cannot follow on its own: a protocol other than
// TCP, UDP and ICMP echo request/reply (ICMP errors go to
// Table.TranslateICMPError), a non-first fragment (it has no L4 header),
// and an L4 header cut short.
func KeyOf(ip header.IPv4) (Key, bool) {
	if ip.FragOffset() != 0 {
		return Key{}, false
	}
	// The fields go into locals and the Key is built once at the end:
	// filled in field by field, it was written to the stack in 1-, 2- and
	// 4-byte stores and read back in one 16-byte load, a store-forwarding
	// stall (A/B, min of 10 runs: 23 ns a call field by field, 15 like this).
	l4 := ip[ip.HeaderLen():]
	proto := ip.Protocol()
	var sp, dp uint16
	switch proto {
	case header.ProtoTCP:
		// Translation touches the ports, flags and checksum, all in the
		// fixed 20 bytes; validating the data offset is the dataplane's
		// business.
		if len(l4) < header.TCPMinLen {
			return Key{}, false
		}
		sp = uint16(l4[0])<<8 | uint16(l4[1])
		dp = uint16(l4[2])<<8 | uint16(l4[3])
	case header.ProtoUDP:
		if len(l4) < header.UDPLen {
			return Key{}, false
		}
		sp = uint16(l4[0])<<8 | uint16(l4[1])
		dp = uint16(l4[2])<<8 | uint16(l4[3])
	case header.ProtoICMP:
		if len(l4) < header.ICMPv4MinLen || (l4[0] != header.ICMPEchoRequest && l4[0] != header.ICMPEchoReply) {
			return Key{}, false
		}
		sp = uint16(l4[4])<<8 | uint16(l4[5])
		dp = sp
	default:
		return Key{}, false
	}
	return Key{Src: ip.Src(), Dst: ip.Dst(), SrcPort: sp, DstPort: dp, Proto: proto}, true
}

// pack returns k as the two words the index hashes and the flow stores.
func (k Key) pack() (uint64, uint64) {
	return uint64(k.Src)<<32 | uint64(k.Dst),
		uint64(k.SrcPort)<<48 | uint64(k.DstPort)<<32 | uint64(k.Proto)<<24
}

// unpack is the inverse of pack.
func unpack(a, b uint64) Key {
	return Key{
		Src: header.Addr(a >> 32), Dst: header.Addr(a),
		SrcPort: uint16(b >> 48), DstPort: uint16(b >> 32), Proto: uint8(b >> 24),
	}
}

// unpackReverse is unpack(a, b).Reverse() without the intermediate copy.
func unpackReverse(a, b uint64) Key {
	return Key{
		Src: header.Addr(a), Dst: header.Addr(a >> 32),
		SrcPort: uint16(b >> 32), DstPort: uint16(b >> 48), Proto: uint8(b >> 24),
	}
}

// ProtoName returns "tcp", "udp", "icmp" or the protocol number.
func ProtoName(p uint8) string {
	switch p {
	case header.ProtoTCP:
		return "tcp"
	case header.ProtoUDP:
		return "udp"
	case header.ProtoICMP:
		return "icmp"
	}
	return strconv.Itoa(int(p))
}

// String returns the key as a person reads it:
// "tcp 10.0.1.6:40000 -> 203.0.113.10:80", or
// "icmp 10.0.1.6 -> 203.0.113.10 id 7" for echo.
func (k Key) String() string {
	return string(k.AppendTo(make([]byte, 0, 48)))
}

// AppendTo appends k's String form to b.
func (k Key) AppendTo(b []byte) []byte {
	b = append(b, ProtoName(k.Proto)...)
	b = append(b, ' ')
	if k.Proto == header.ProtoICMP {
		b = k.Src.AppendTo(b)
		b = append(b, " -> "...)
		b = k.Dst.AppendTo(b)
		b = append(b, " id "...)
		return strconv.AppendUint(b, uint64(k.SrcPort), 10)
	}
	b = k.Src.AppendTo(b)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(k.SrcPort), 10)
	b = append(b, " -> "...)
	b = k.Dst.AppendTo(b)
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(k.DstPort), 10)
}
