package dataplane

import (
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
)

// untracked decides about a packet conntrack cannot follow: no TCP, UDP or
// ICMP echo tuple, and not an ICMP error about a tracked flow. An ICMP
// error that quotes nonsense, anything but the IPv4 header of a packet
// from the error's own destination, is dropped. Anything else (an error
// about untracked traffic, such as an appliance's time exceeded for a
// packet routed to it untracked; a protocol conntrack does not know)
// passes untranslated unless it would need NAT. It reports whether the
// packet may go on, and counts it if not.
//
// A protocol conntrack does not know (GRE, ESP, SCTP, ...) still meets the
// NSGs, whose rules for protocol Any apply to it, as in Azure; it used to
// pass around them. With no flow to remember a verdict, each packet is
// judged on its own, so a reply needs a rule that admits it too (the
// default rules admit traffic within the VNet both ways). t and found are
// the packet's route, which forward has already looked up.
func (e *Engine) untracked(s *snapshot, in *Port, ip header.IPv4, t target, found bool, w *worker) bool {
	icmpError := isICMPError(ip)
	if icmpError {
		p := ip.Payload()
		q := p[min(len(p), header.ICMPv4MinLen):]
		if len(q) < header.IPv4MinLen || q[0]>>4 != 4 || q[0]&0xf < 5 || header.AddrFromSlice(q[12:16]) != ip.Dst() {
			w.drop(in, DropICMPBadQuote)
			return false
		}
	}
	if s.pol.needsNAT(in.node(), ip.Src(), ip.Dst()) {
		w.drop(in, DropUntranslatable)
		return false
	}
	if !icmpError {
		if found && t.kind == targetPort {
			k := nat.Key{Src: ip.Src(), Dst: ip.Dst(), Proto: ip.Protocol()}
			if reason, ok := s.filter(in.node(), s.ports[t.port].node(), k, k); !ok {
				w.drop(in, reason)
				return false
			}
		}
	}
	return true
}

// l4OK reports whether the L4 header of a flow's first packet is sound: a
// TCP data offset of at least 20 bytes within the packet, a UDP length of
// at least 8 within it (a first fragment holds only part of its datagram,
// so there the length must only cover the header). A flow is never made of
// a packet its receiver's stack would discard. Later packets of an allowed
// flow are not checked: as through any router, the receiver drops a
// corrupt one.
func l4OK(ip header.IPv4) bool {
	p := ip.Payload()
	switch ip.Protocol() {
	case header.ProtoTCP:
		_, r := header.ParseTCP(p)
		return r == header.OK
	case header.ProtoUDP:
		if ip.IsFragment() {
			return len(p) >= header.UDPLen && int(p[4])<<8|int(p[5]) >= header.UDPLen
		}
		_, r := header.ParseUDP(p)
		return r == header.OK
	}
	return true
}

// isICMPError reports whether ip is an ICMP error, which quotes a packet
// rather than carrying a flow of its own.
func isICMPError(ip header.IPv4) bool {
	p := ip.Payload()
	return ip.Protocol() == header.ProtoICMP && len(p) > 0 && header.IsICMPError(p[0])
}
