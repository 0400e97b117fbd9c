package dataplane

import (
	"github.com/aseemu/emulator/dataplane/impair"
	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/topology"
)

// portLink is the impairment of a node's link (topology.Latency: a remote
// region's distance, or a latency block): a line for what the node sends,
// and one for what it receives, each with the whole impairment, as the
// topology gives it each way.
type portLink struct {
	cfg     topology.Latency
	out, in *impair.Line
}

func (l *portLink) close() {
	l.out.Close()
	l.in.Close()
}

// linkSinks are the places a port's lines deliver to, one of each per
// queue, made with the port so that a packet on its way needs none made.
type linkSinks struct {
	write []queueSink   // the packet is due: write it to the node
	enter []ingressSink // the packet has crossed the sender's line: on to this node's incoming line
}

// queueSink writes what a line delivers to one queue of a port.
type queueSink struct {
	p *Port
	q tun.Device
}

// Deliver writes pkts, and counts them on the port. A packet that cannot
// be written is counted against this port, the one it was leaving by: the
// port it came in by is not known this late.
func (s *queueSink) Deliver(pkts [][]byte) {
	if _, err := s.q.Write(pkts); err != nil {
		s.p.stats.drop(DropWriteError)
		return
	}
	s.p.stats.tx.packets.Add(1)
	s.p.stats.tx.bytes.Add(uint64(len(pkts[0])))
}

// ingressSink hands what the sender's line delivers to the incoming line
// of port p, bound for queue q. If p's link lost its impairment meanwhile
// (apply), the packet is written at once.
type ingressSink struct {
	p *Port
	q int
}

func (s *ingressSink) Deliver(pkts [][]byte) {
	w := &s.p.sinks.write[s.q]
	l := s.p.link.Load()
	if l == nil {
		w.Deliver(pkts)
		return
	}
	if r := l.in.Send(pkts[0], w); r != impair.Sent {
		s.p.stats.drop(linkDrop(r))
	}
}

func linkDrop(r impair.Result) DropReason {
	if r == impair.Lost {
		return DropLinkLoss
	}
	return DropLinkFull
}

func newLinkSinks(p *Port) linkSinks {
	s := linkSinks{write: make([]queueSink, len(p.queues)), enter: make([]ingressSink, len(p.queues))}
	for i, q := range p.queues {
		s.write[i] = queueSink{p: p, q: q}
		s.enter[i] = ingressSink{p: p, q: i}
	}
	return s
}

// transmitImpaired sends a packet whose sender's link or receiver's link
// is impaired through their lines: the sender's outgoing line first, then
// the receiver's incoming one, as the packet would cross two real links.
// A packet the dataplane answers itself (in == out: a ping of the
// gateway, a refusal) crosses the node's link twice, once each way, which
// is what its request, answered before it reached the line, did not.
// A packet a line drops is counted against the port whose link dropped it.
func (e *Engine) transmitImpaired(in, out *Port, qi int, pkt []byte, w *worker) {
	ol := out.link.Load()
	if il := in.link.Load(); il != nil {
		var to impair.Sink = &out.sinks.write[qi]
		if ol != nil {
			to = &out.sinks.enter[qi]
		}
		if r := il.out.Send(pkt, to); r != impair.Sent {
			w.drop(in, linkDrop(r))
		}
		return
	}
	if r := ol.in.Send(pkt, &out.sinks.write[qi]); r != impair.Sent {
		w.drop(out, linkDrop(r))
	}
}

// setLinks gives each port the impairment its node has in s, starting
// lines for a link that gained one or changed, and ending those of a link
// that lost or changed it (the packets on them are dropped, as replacing
// a qdisc drops its queue). e.mu is held.
func (e *Engine) setLinks(s *snapshot) {
	for _, p := range s.ports {
		cfg := p.node().Latency
		old := p.link.Load()
		if old != nil && old.cfg == cfg || old == nil && cfg == (topology.Latency{}) {
			continue
		}
		var l *portLink
		if cfg != (topology.Latency{}) {
			l = &portLink{cfg: cfg, out: impair.New(cfg), in: impair.New(cfg)}
		}
		p.link.Store(l)
		if old != nil {
			old.close()
		}
	}
}

// closeLinks ends the lines of ports.
func closeLinks(ports []*Port) {
	for _, p := range ports {
		if l := p.link.Swap(nil); l != nil {
			l.close()
		}
	}
}
