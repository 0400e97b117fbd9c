package dataplane

import (
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/topology"
)

// sendError answers the packet ip, which arrived on port in, with an ICMP
// error from in's gateway address, as the router of in's subnet would. RFC
// 1812's rules about when not to (errors about errors, non-first fragments,
// broadcast) are applied by header.ShouldSendICMPError.
func (e *Engine) sendError(in *Port, ip header.IPv4, typ, code uint8, rest uint32, w *worker) {
	e.sendErrorFrom(in, in.gateway, ip, typ, code, rest, w)
}

// sendErrorFrom is sendError from address from: a gateway answers from
// the address a packet was for, which need not be in's own.
func (e *Engine) sendErrorFrom(in *Port, from header.Addr, ip header.IPv4, typ, code uint8, rest uint32, w *worker) {
	if !header.ShouldSendICMPError(ip) || !answerable(in, ip) {
		return
	}
	if n := header.BuildICMPError(w.replyBody(), from, typ, code, rest, ip); n > 0 {
		e.answer(in, n, w)
	}
}

// replyBody is where a packet the dataplane itself sends is built: w.reply
// after its virtio-net header, which it resets (no offload), for answer.
func (w *worker) replyBody() []byte {
	header.VirtioNetHdr(w.reply[:header.VirtioNetHdrLen]).Reset()
	return w.reply[header.VirtioNetHdrLen:]
}

// answer writes back to port in the packet of n bytes the dataplane built
// in w.replyBody: an ICMP error, a ping's reply or a reset. A capture shows it too, as tcpdump in the node would.
func (e *Engine) answer(in *Port, n int, w *worker) {
	pkt := w.reply[:header.VirtioNetHdrLen+n]
	e.transmit(in, in, pkt, w)
	if w.observing {
		w.answered = pkt[header.VirtioNetHdrLen:]
	}
}

// toGateway handles a packet addressed to a gateway address: the dataplane
// answers pings, so `ping 10.0.2.1` and traceroute's last hop behave, and
// counts everything else as a drop. UDP gets port-unreachable, as a router
// with no such service answers, from the address probed, as a router's
// does (Linux answers from the address the packet was for), so traceroute
// to another subnet's gateway ends at that gateway, not at the sender's
// own. TCP gets nothing: Azure's gateway answers nothing, and a reset would
// go further from it than the pings already do. A VNet's gateway is a
// private address: the Internet cannot reach it, as it cannot reach the
// VNet's machines.
func (e *Engine) toGateway(s *snapshot, in *Port, ip header.IPv4, w *worker) {
	if why, far := s.outOfReach(in.node(), ip.Dst()); far {
		// Not the sender's router, so not its to answer: the packet goes
		// the way of any other to that network, and a traceroute sees its
		// first hop as it does towards a machine there.
		if ip.TTL() <= 1 {
			e.sendError(in, ip, header.ICMPTimeExceeded, 0, 0, w)
			w.drop(in, DropTTLExceeded)
			return
		}
		w.drop(in, why)
		return
	}
	switch ip.Protocol() {
	case header.ProtoICMP:
		p := ip.Payload()
		if len(p) >= header.ICMPv4MinLen && header.ICMPv4(p).Type() == header.ICMPEchoRequest && !ip.IsFragment() && answerable(in, ip) {
			if n := header.BuildEchoReply(w.replyBody(), ip); n > 0 {
				e.answer(in, n, w)
				return
			}
		}
	case header.ProtoUDP:
		e.sendErrorFrom(in, ip.Dst(), ip, header.ICMPDestUnreachable, header.ICMPPortUnreachable, 0, w)
	}
	w.drop(in, DropToGateway)
}

// outOfReach reports whether gw, a gateway address, lies where a packet
// from node n cannot go, and the drop that says why: a VNet's gateway is
// as private as its machines, out of the Internet's reach, and out of
// another VNet's, which has no route to it (unpeered VNets, or a user
// route to None). A node's own gateway is always in reach.
func (s *snapshot) outOfReach(n *topology.Node, gw header.Addr) (DropReason, bool) {
	switch {
	case gw == header.AddrFromNetip(n.Gateway):
		return 0, false
	case n.Kind == topology.NodeInternet:
		return DropInternetToPrivate, s.pol.inside(gw)
	case s.routes.used && n.Subnet != nil:
		h, _ := s.routes.lookup(n.Subnet, gw)
		return DropRouteNone, h.kind == hopNone
	}
	return 0, false
}

// answerable reports whether the dataplane may answer ip back out of in:
// only if ip's source is the node's own address, or the node forwards
// others' packets (an appliance). Whatever the dataplane sends goes to a
// lab node's own address; an answer to a spoofed source would leave for
// an address that is not the node's, maybe not the lab's.
func answerable(in *Port, ip header.IPv4) bool {
	return ip.Src() == header.AddrFromNetip(in.node().Addr) || in.node().IPForwarding
}
