package dataplane

import (
	"github.com/aseemu/emulator/dataplane/header"
)

// worker is the per-goroutine scratch state of a forwarding loop.
type worker struct {
	reply []byte    // buffer for packets the dataplane itself sends
	out   [1][]byte // the batch handed to Device.Write; a slice literal there would escape to the heap per packet
}

func newWorker() *worker {
	// An ICMP error quotes at most 576 bytes; an echo reply mirrors its
	// request, which can be a full MTU.
	return &worker{reply: make([]byte, maxPacket)}
}

// forward runs one packet from port in through the pipeline. b holds the
// virtio-net header followed by the IPv4 packet.
func (e *Engine) forward(in *Port, b []byte, w *worker) {
	in.stats.rxPackets.Add(1)
	in.stats.rxBytes.Add(uint64(len(b)))

	// parse
	if len(b) < header.VirtioNetHdrLen {
		in.stats.drop(DropTruncated)
		return
	}
	vnet := header.VirtioNetHdr(b[:header.VirtioNetHdrLen])
	ip, why := header.ParseIPv4(b[header.VirtioNetHdrLen:])
	if why != header.OK {
		in.stats.drop(parseDrop(why))
		return
	}
	if !ip.ChecksumValid() {
		in.stats.drop(DropBadChecksum)
		return
	}

	// route
	t, _, found := e.fib.Lookup(ip.Dst())
	if !found {
		e.sendError(in, ip, header.ICMPDestUnreachable, header.ICMPNetUnreachable, 0, w)
		in.stats.drop(DropNoRoute)
		return
	}
	switch t.kind {
	case targetLocal:
		e.toGateway(in, ip, w)
		return
	case targetUnreachable:
		e.sendError(in, ip, header.ICMPDestUnreachable, header.ICMPHostUnreachable, 0, w)
		in.stats.drop(DropHostUnreachable)
		return
	}
	out := e.ports[t.port]

	// TTL and MTU: the checks a router makes before it forwards.
	if ip.TTL() <= 1 {
		e.sendError(in, ip, header.ICMPTimeExceeded, 0, 0, w)
		in.stats.drop(DropTTLExceeded)
		return
	}
	if wireLen(vnet, ip) > out.mtu {
		if ip.DF() {
			e.sendError(in, ip, header.ICMPDestUnreachable, header.ICMPFragNeeded, uint32(out.mtu), w)
			in.stats.drop(DropFragNeeded)
		} else {
			in.stats.drop(DropTooBig)
		}
		return
	}
	ip.DecTTL()

	// write
	pkt := b[:header.VirtioNetHdrLen+ip.TotalLen()]
	e.transmit(in, out, pkt, w)
}

// transmit writes one packet to out and counts it.
func (e *Engine) transmit(in, out *Port, pkt []byte, w *worker) {
	w.out[0] = pkt
	if _, err := out.dev.Write(w.out[:]); err != nil {
		in.stats.drop(DropWriteError)
		return
	}
	out.stats.txPackets.Add(1)
	out.stats.txBytes.Add(uint64(len(pkt)))
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
