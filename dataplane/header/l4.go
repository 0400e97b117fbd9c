package header

import "encoding/binary"

// TCP flag bits, as in the 14th byte of the header.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
	TCPFlagECE uint8 = 0x40
	TCPFlagCWR uint8 = 0x80
)

// TCP is a view of a TCP segment. Get one from ParseTCP.
type TCP []byte

// ParseTCP validates the TCP header at the start of b (normally
// IPv4.Payload of an unfragmented packet): at least 20 bytes, and a data
// offset of at least 20 that does not run past the end.
func ParseTCP(b []byte) (TCP, Reason) {
	if len(b) < TCPMinLen {
		return nil, BadL4
	}
	if off := int(b[12]>>4) * 4; off < TCPMinLen || off > len(b) {
		return nil, BadL4
	}
	return TCP(b), OK
}

// SrcPort returns the source port.
func (b TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:2]) }

// DstPort returns the destination port.
func (b TCP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// Seq returns the sequence number.
func (b TCP) Seq() uint32 { return binary.BigEndian.Uint32(b[4:8]) }

// Ack returns the acknowledgment number.
func (b TCP) Ack() uint32 { return binary.BigEndian.Uint32(b[8:12]) }

// DataOffset returns the header length in bytes, options included.
func (b TCP) DataOffset() int { return int(b[12]>>4) * 4 }

// Flags returns the flag byte (TCPFlagFIN ... TCPFlagCWR).
func (b TCP) Flags() uint8 { return b[13] }

// Window returns the receive window field.
func (b TCP) Window() uint16 { return binary.BigEndian.Uint16(b[14:16]) }

// Checksum returns the checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[16:18]) }

// SetChecksum writes the checksum field.
func (b TCP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[16:18], c) }

// Payload returns the bytes after the header.
func (b TCP) Payload() []byte { return b[b.DataOffset():] }

// SetSrcPort rewrites the source port and updates a full checksum
// incrementally. For a NEEDS_CSUM segment use SetSrcPortPartial.
func (b TCP) SetSrcPort(p uint16) {
	b.SetChecksum(UpdateChecksum16(b.Checksum(), b.SrcPort(), p))
	binary.BigEndian.PutUint16(b[0:2], p)
}

// SetDstPort rewrites the destination port; see SetSrcPort.
func (b TCP) SetDstPort(p uint16) {
	b.SetChecksum(UpdateChecksum16(b.Checksum(), b.DstPort(), p))
	binary.BigEndian.PutUint16(b[2:4], p)
}

// SetSrcPortPartial rewrites the source port of a segment whose checksum
// field holds only the pseudo-header sum (virtio NEEDS_CSUM). A port is not
// in the pseudo-header, so the field stays as it is.
func (b TCP) SetSrcPortPartial(p uint16) { binary.BigEndian.PutUint16(b[0:2], p) }

// SetDstPortPartial is SetSrcPortPartial for the destination port.
func (b TCP) SetDstPortPartial(p uint16) { binary.BigEndian.PutUint16(b[2:4], p) }

// UpdateForAddr updates the checksum field after an address in the IPv4
// pseudo-header changed from old to new (call it beside IPv4.SetSrc or
// SetDst). partial says the field holds a NEEDS_CSUM pseudo-header sum.
func (b TCP) UpdateForAddr(old, new Addr, partial bool) {
	b.SetChecksum(UpdateL4ForAddr(b.Checksum(), old, new, partial))
}

// UDP is a view of a UDP datagram. Get one from ParseUDP.
type UDP []byte

// ParseUDP validates the UDP header at the start of b (normally
// IPv4.Payload of an unfragmented packet): at least 8 bytes, and a length
// field of at least 8 that does not run past the end. It returns the view
// trimmed to the length field.
func ParseUDP(b []byte) (UDP, Reason) {
	if len(b) < UDPLen {
		return nil, BadL4
	}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n < UDPLen || n > len(b) {
		return nil, BadL4
	}
	return UDP(b[:n]), OK
}

// SrcPort returns the source port.
func (b UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:2]) }

// DstPort returns the destination port.
func (b UDP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// Length returns the length field (header and payload).
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[4:6]) }

// SetLength writes the length field. The checksum, which covers it twice
// (header and pseudo-header), is the caller's job.
func (b UDP) SetLength(n uint16) { binary.BigEndian.PutUint16(b[4:6], n) }

// Checksum returns the checksum field; 0 means the sender computed none.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[6:8]) }

// SetChecksum writes the checksum field. A computed checksum of 0 must be
// written as 0xffff (RFC 768); SetChecksum writes c as given.
func (b UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[6:8], c) }

// Payload returns the bytes after the header. ParseUDP trims the view to the
// length field, so this excludes any padding.
func (b UDP) Payload() []byte { return b[UDPLen:] }

// updateFull applies an incremental update to a full checksum, keeping
// RFC 768's rules: a zero field means "no checksum" and stays zero, and a
// result of zero is sent as 0xffff.
func (b UDP) updateFull(c uint16) {
	if c == 0 {
		c = 0xffff
	}
	b.SetChecksum(c)
}

// SetSrcPort rewrites the source port and updates the checksum
// incrementally; a zero checksum stays zero. For a NEEDS_CSUM datagram use
// SetSrcPortPartial.
func (b UDP) SetSrcPort(p uint16) {
	if c := b.Checksum(); c != 0 {
		b.updateFull(UpdateChecksum16(c, b.SrcPort(), p))
	}
	binary.BigEndian.PutUint16(b[0:2], p)
}

// SetDstPort rewrites the destination port; see SetSrcPort.
func (b UDP) SetDstPort(p uint16) {
	if c := b.Checksum(); c != 0 {
		b.updateFull(UpdateChecksum16(c, b.DstPort(), p))
	}
	binary.BigEndian.PutUint16(b[2:4], p)
}

// SetSrcPortPartial rewrites the source port of a datagram whose checksum
// field holds only the pseudo-header sum (virtio NEEDS_CSUM), leaving the
// field alone because a port is not in the pseudo-header.
func (b UDP) SetSrcPortPartial(p uint16) { binary.BigEndian.PutUint16(b[0:2], p) }

// SetDstPortPartial is SetSrcPortPartial for the destination port.
func (b UDP) SetDstPortPartial(p uint16) { binary.BigEndian.PutUint16(b[2:4], p) }

// UpdateForAddr updates the checksum field after an address in the IPv4
// pseudo-header changed from old to new. partial says the field holds a
// NEEDS_CSUM pseudo-header sum; otherwise a zero checksum stays zero.
func (b UDP) UpdateForAddr(old, new Addr, partial bool) {
	c := b.Checksum()
	switch {
	case partial:
		b.SetChecksum(UpdateL4ForAddr(c, old, new, true))
	case c != 0:
		b.updateFull(UpdateL4ForAddr(c, old, new, false))
	}
}

// ICMP types and destination-unreachable codes.
const (
	ICMPEchoReply       = 0
	ICMPDestUnreachable = 3
	ICMPSourceQuench    = 4
	ICMPRedirect        = 5
	ICMPEchoRequest     = 8
	ICMPTimeExceeded    = 11
	ICMPParamProblem    = 12

	ICMPNetUnreachable   = 0
	ICMPHostUnreachable  = 1
	ICMPProtoUnreachable = 2
	ICMPPortUnreachable  = 3
	ICMPFragNeeded       = 4
	ICMPAdminProhibited  = 13

	// Time-exceeded codes.
	ICMPTTLExceeded        = 0
	ICMPReassemblyExceeded = 1
)

// IsICMPError reports whether typ is an ICMP error message, one that quotes
// the packet that caused it (RFC 1122 3.2.2): destination unreachable,
// source quench, redirect, time exceeded, parameter problem. These are the
// types Linux marks as errors, and the ones a NAT must look inside.
func IsICMPError(typ uint8) bool {
	switch typ {
	case ICMPDestUnreachable, ICMPSourceQuench, ICMPRedirect, ICMPTimeExceeded, ICMPParamProblem:
		return true
	}
	return false
}

// ICMPv4 is a view of an ICMPv4 message. Get one from ParseICMPv4.
type ICMPv4 []byte

// ParseICMPv4 validates that b holds at least the 8-byte ICMP header.
func ParseICMPv4(b []byte) (ICMPv4, Reason) {
	if len(b) < ICMPv4MinLen {
		return nil, BadL4
	}
	return ICMPv4(b), OK
}

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[0] }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[1] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[2:4]) }

// SetChecksum writes the checksum field.
func (b ICMPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[2:4], c) }

// Ident returns the identifier of an echo request or reply, the field a NAT
// treats as the port.
func (b ICMPv4) Ident() uint16 { return binary.BigEndian.Uint16(b[4:6]) }

// Seq returns the sequence number of an echo request or reply.
func (b ICMPv4) Seq() uint16 { return binary.BigEndian.Uint16(b[6:8]) }

// SetIdent rewrites the echo identifier and updates the checksum
// incrementally. ICMP has no pseudo-header, so address changes leave its
// checksum alone.
func (b ICMPv4) SetIdent(id uint16) {
	c := UpdateChecksum16(b.Checksum(), b.Ident(), id)
	binary.BigEndian.PutUint16(b[4:6], id)
	b.setUpdatedChecksum(c)
}

// setUpdatedChecksum writes c, the result of an incremental update. Unlike
// TCP, UDP and IP, whose checksums cover a non-zero protocol or version, an
// ICMP message can be all zeros (an echo reply with ident, seq and data 0),
// and then RFC 1624's result of 0x0000 fails verification where 0xffff is
// right. A result of 0 is the only case that can be wrong, and it comes once
// in 65536 updates, so recomputing from scratch then is cheap.
func (b ICMPv4) setUpdatedChecksum(c uint16) {
	if c == 0 {
		b.SetChecksum(0)
		c = ^Checksum(b, 0)
	}
	b.SetChecksum(c)
}

// RestOfHeader returns the four bytes after the checksum: ident and seq for
// echo, the next-hop MTU in the low 16 bits for fragmentation needed, the
// pointer in the high byte for parameter problem.
func (b ICMPv4) RestOfHeader() uint32 { return binary.BigEndian.Uint32(b[4:8]) }

// Payload returns the bytes after the 8-byte header: echo data, or the
// quoted packet of an error.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinLen:] }
