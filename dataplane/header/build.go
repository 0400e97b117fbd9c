package header

import "encoding/binary"

// ICMPErrorMaxLen is the most an ICMP error may take, IP header included:
// RFC 1812 4.3.2.3 asks for as much of the original datagram as fits in 576
// bytes, and Linux quotes exactly that much.
const ICMPErrorMaxLen = 576

// builtTTL is the TTL of packets this package builds, the Linux default.
const builtTTL = 64

// maxQuote is how much of the original datagram an ICMP error carries.
const maxQuote = ICMPErrorMaxLen - IPv4MinLen - ICMPv4MinLen

// ICMPErrorLen returns how many bytes BuildICMPError writes for orig, so the
// caller can size dst (ICMPErrorMaxLen always suffices).
func ICMPErrorLen(orig IPv4) int {
	return IPv4MinLen + ICMPv4MinLen + min(len(orig), maxQuote)
}

// BuildICMPError writes into dst an ICMP error (RFC 792, RFC 1812 4.3.2)
// from src to the sender of orig, and returns its length, or 0 if dst is
// shorter than ICMPErrorLen(orig) or orig is shorter than an IPv4 header.
// typ and code say what went wrong; rest is the four bytes after the
// checksum (the next-hop MTU in the low 16 bits for ICMPFragNeeded, the
// pointer in the top byte for ICMPParamProblem). orig should come from
// ParseIPv4; it is quoted byte for byte, header and as much payload as fits
// in ICMPErrorMaxLen, so a partial (NEEDS_CSUM) L4 checksum is quoted as the
// sender's kernel left it. The new IPv4 header has no options, TTL 64, ID 0,
// no DF and precedence "internetwork control" as Linux sends.
//
// dst may overlap orig, for turning a dropped packet's buffer into the error
// about it; orig's bytes move up by 28.
//
// Whether an error may be sent at all is ShouldSendICMPError's question.
func BuildICMPError(dst []byte, src Addr, typ, code uint8, rest uint32, orig IPv4) int {
	if len(orig) < IPv4MinLen {
		return 0
	}
	q := min(len(orig), maxQuote)
	n := IPv4MinLen + ICMPv4MinLen + q
	if len(dst) < n {
		return 0
	}
	// Read what the header needs before the quote copy can overwrite orig.
	to := orig.Src()
	tos := orig.TOS()&0x1e | 0xc0 // RFC 1812 4.3.2.5: precedence 6; keep the TOS bits, drop ECN
	copy(dst[IPv4MinLen+ICMPv4MinLen:n], orig[:q])
	m := dst[IPv4MinLen:n]
	m[0], m[1], m[2], m[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(m[4:8], rest)
	binary.BigEndian.PutUint16(m[2:4], ^Checksum(m, 0))
	putIPv4Header(dst, tos, n, ProtoICMP, src, to)
	return n
}

// BuildEchoReply writes into dst the echo reply to req, an ICMP echo request
// addressed to us, and returns its length, or 0 if req is not an
// unfragmented echo request or dst is shorter than 20 bytes plus req's ICMP
// message. The reply goes from req's destination to its source with a fresh
// optionless IPv4 header (TTL 64, the request's TOS) and the request's
// ident, seq and data. Its ICMP checksum is the request's, updated for the
// type change, so a request that arrived corrupted gets a reply that will be
// dropped as corrupted rather than one that hides the damage.
//
// dst may overlap req, for answering in the request's own buffer.
func BuildEchoReply(dst []byte, req IPv4) int {
	if len(req) < IPv4MinLen {
		return 0
	}
	hl := req.HeaderLen()
	if hl < IPv4MinLen || hl > len(req) || req.Protocol() != ProtoICMP || req.IsFragment() {
		return 0
	}
	msg := req[hl:]
	if len(msg) < ICMPv4MinLen || msg[0] != ICMPEchoRequest {
		return 0
	}
	n := IPv4MinLen + len(msg)
	if len(dst) < n || n > 0xffff {
		return 0
	}
	from, to, tos := req.Dst(), req.Src(), req.TOS()
	copy(dst[IPv4MinLen:n], msg)
	m := ICMPv4(dst[IPv4MinLen:n])
	code := uint16(m[1])
	m[0] = ICMPEchoReply
	m.setUpdatedChecksum(UpdateChecksum16(m.Checksum(), ICMPEchoRequest<<8|code, ICMPEchoReply<<8|code))
	putIPv4Header(dst, tos, n, ProtoICMP, from, to)
	return n
}

// putIPv4Header writes a 20-byte header without options into b[:20].
func putIPv4Header(b []byte, tos uint8, totalLen int, proto uint8, src, dst Addr) {
	h := IPv4(b[:IPv4MinLen])
	h[0], h[1] = 0x45, tos
	binary.BigEndian.PutUint16(h[2:4], uint16(totalLen))
	binary.BigEndian.PutUint32(h[4:8], 0) // ID 0, no flags, offset 0
	h[8], h[9] = builtTTL, proto
	binary.BigEndian.PutUint16(h[10:12], 0)
	src.Put(h[12:16])
	dst.Put(h[16:20])
	h.SetChecksum(^Checksum(h, 0))
}

// ShouldSendICMPError reports whether RFC 1812 4.3.2.7 allows an ICMP error
// about orig: not about an ICMP error (or an ICMP message too short to
// tell), a non-first fragment, a packet to a broadcast or multicast
// address, or one whose source is not a single host (0.0.0.0/8, loopback,
// multicast, class E, broadcast). Errors about errors are how storms start;
// errors to non-hosts reach no one or everyone.
func ShouldSendICMPError(orig IPv4) bool {
	if len(orig) < IPv4MinLen || orig.FragOffset() != 0 || !orig.Src().IsUnicastSource() {
		return false
	}
	if d := orig.Dst(); d.IsMulticast() || d.IsBroadcast() {
		return false
	}
	if orig.Protocol() == ProtoICMP {
		hl := orig.HeaderLen()
		if hl >= len(orig) || IsICMPError(orig[hl]) {
			return false
		}
	}
	return true
}
