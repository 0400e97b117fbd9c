package header

import "encoding/binary"

// Sizes and protocol numbers.
const (
	IPv4MinLen      = 20
	ProtoICMP       = 1
	ProtoTCP        = 6
	ProtoUDP        = 17
	TCPMinLen       = 20
	UDPLen          = 8
	ICMPv4MinLen    = 8
	VirtioNetHdrLen = 10
)

const (
	ipv4FlagDF      = 0x4000
	ipv4FlagMF      = 0x2000
	ipv4FragOffMask = 0x1fff
)

// IPv4 is a view of an IPv4 packet: header, then payload. Get one from
// ParseIPv4, which guarantees that every accessor below is in bounds.
type IPv4 []byte

// ParseIPv4 validates the IPv4 header at the start of b and returns the view
// trimmed to the header's total length (dropping link-layer padding), or the
// Reason it is malformed. It checks len(b) >= 20, version 4, IHL >= 5,
// header length <= total length <= len(b). Linux sets the total length of
// TSO super-packets too, so a total length below the header length is an
// error, not a GSO marker. The header checksum is not verified: with
// offloads the kernel has done it, and ChecksumValid is there for callers
// that want it.
func ParseIPv4(b []byte) (IPv4, Reason) {
	if len(b) < IPv4MinLen {
		return nil, TooShort
	}
	if b[0]>>4 != 4 {
		return nil, BadVersion
	}
	hl := int(b[0]&0xf) * 4
	if hl < IPv4MinLen || hl > len(b) {
		return nil, BadIHL
	}
	tl := int(binary.BigEndian.Uint16(b[2:4]))
	if tl < hl || tl > len(b) {
		return nil, BadTotalLen
	}
	return IPv4(b[:tl]), OK
}

// Version returns the IP version field.
func (b IPv4) Version() uint8 { return b[0] >> 4 }

// HeaderLen returns the header length in bytes (IHL*4).
func (b IPv4) HeaderLen() int { return int(b[0]&0xf) * 4 }

// TOS returns the type-of-service (DSCP and ECN) byte.
func (b IPv4) TOS() uint8 { return b[1] }

// TotalLen returns the total length field.
func (b IPv4) TotalLen() int { return int(binary.BigEndian.Uint16(b[2:4])) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[4:6]) }

// DF reports whether the don't-fragment flag is set.
func (b IPv4) DF() bool { return binary.BigEndian.Uint16(b[6:8])&ipv4FlagDF != 0 }

// MF reports whether the more-fragments flag is set.
func (b IPv4) MF() bool { return binary.BigEndian.Uint16(b[6:8])&ipv4FlagMF != 0 }

// FragOffset returns the fragment offset in 8-byte units.
func (b IPv4) FragOffset() uint16 { return binary.BigEndian.Uint16(b[6:8]) & ipv4FragOffMask }

// IsFragment reports whether b is any fragment of a larger datagram, first
// or not: its L4 header may be absent or incomplete.
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[6:8])&(ipv4FlagMF|ipv4FragOffMask) != 0
}

// TTL returns the time-to-live field.
func (b IPv4) TTL() uint8 { return b[8] }

// Protocol returns the protocol field (ProtoTCP, ProtoUDP, ProtoICMP, ...).
func (b IPv4) Protocol() uint8 { return b[9] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[10:12]) }

// Src returns the source address.
func (b IPv4) Src() Addr { return Addr(binary.BigEndian.Uint32(b[12:16])) }

// Dst returns the destination address.
func (b IPv4) Dst() Addr { return Addr(binary.BigEndian.Uint32(b[16:20])) }

// Header returns the header bytes, options included.
func (b IPv4) Header() []byte { return b[:b.HeaderLen()] }

// Payload returns the bytes after the header up to the total length: the L4
// segment, or a fragment of it if IsFragment.
func (b IPv4) Payload() []byte { return b[b.HeaderLen():b.TotalLen()] }

// SetSrc rewrites the source address and updates the header checksum
// incrementally (RFC 1624). The L4 checksum, which covers the address through
// the pseudo-header, is the caller's job: see UpdateL4ForAddr.
func (b IPv4) SetSrc(a Addr) {
	b.SetChecksum(UpdateChecksum32(b.Checksum(), uint32(b.Src()), uint32(a)))
	a.Put(b[12:16])
}

// SetDst rewrites the destination address; see SetSrc.
func (b IPv4) SetDst(a Addr) {
	b.SetChecksum(UpdateChecksum32(b.Checksum(), uint32(b.Dst()), uint32(a)))
	a.Put(b[16:20])
}

// DecTTL decrements the TTL and updates the header checksum incrementally.
// A router drops the packet instead when TTL <= 1, so DecTTL leaves a TTL of
// 0 alone rather than wrapping it to 255.
func (b IPv4) DecTTL() {
	ttl := b[8]
	if ttl == 0 {
		return
	}
	proto := uint16(b[9])
	b.SetChecksum(UpdateChecksum16(b.Checksum(), uint16(ttl)<<8|proto, uint16(ttl-1)<<8|proto))
	b[8] = ttl - 1
}

// SetTotalLen rewrites the total length and updates the header checksum
// incrementally, for code that splits GSO super-packets. It does not resize
// the view.
func (b IPv4) SetTotalLen(n uint16) {
	b.SetChecksum(UpdateChecksum16(b.Checksum(), uint16(b.TotalLen()), n))
	binary.BigEndian.PutUint16(b[2:4], n)
}

// SetID rewrites the identification field and updates the header checksum
// incrementally.
func (b IPv4) SetID(id uint16) {
	b.SetChecksum(UpdateChecksum16(b.Checksum(), b.ID(), id))
	binary.BigEndian.PutUint16(b[4:6], id)
}

// SetChecksum writes the header checksum field.
func (b IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[10:12], c) }

// ComputeChecksum returns the header checksum computed from scratch, as if
// the checksum field were zero. It does not write it.
func (b IPv4) ComputeChecksum() uint16 {
	hl := b.HeaderLen()
	return ^Checksum(b[12:hl], uint32(Checksum(b[:10], 0)))
}

// ChecksumValid reports whether the header checksum is correct.
func (b IPv4) ChecksumValid() bool { return Checksum(b[:b.HeaderLen()], 0) == 0xffff }

// IP option types the dataplane looks at (RFC 791).
const (
	optEnd  = 0
	optNOP  = 1
	optLSRR = 0x83
	optSSRR = 0x89
)

// OptionsOK reports whether the options of b, a view from ParseIPv4, are
// well formed and carry no source route. Each option but End and NOP has a
// length byte of at least 2 that must not run past the header, as Linux's
// ip_options_compile demands. Loose and strict source routes are refused as
// a Linux router refuses them by default (accept_source_route=0): the
// dataplane does not route by them, and letting them through unrouted would
// hand the receiver a route it never took. Other options (record route,
// timestamp, router alert) pass untouched. A header without options is OK.
func (b IPv4) OptionsOK() bool {
	opts := b[IPv4MinLen:b.HeaderLen()]
	for len(opts) > 0 {
		switch opts[0] {
		case optEnd:
			return true
		case optNOP:
			opts = opts[1:]
			continue
		case optLSRR, optSSRR:
			return false
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return false
		}
		opts = opts[opts[1]:]
	}
	return true
}
