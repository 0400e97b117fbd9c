package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

// Taps let `emulator capture` and `emulator trace` watch packets go through
// the pipeline. With no tap the pipeline pays one atomic load and a branch
// per packet (the first lines of forward). With one, every packet takes
// the detour of observe: its headers are saved, the ordinary pipeline runs,
// and then each tap's match decides whether copies of the packet as it
// arrived and as it left go to the tap's consumer. The copy is handed over
// a bounded channel and dropped, counted, when the consumer lags, so a slow
// reader never holds up forwarding.

// preCopy is how much of a packet observe saves before the pipeline
// rewrites it: the virtio-net header, the IP and transport headers, and an
// ICMP error's quoted header. Translation never touches the bytes after.
const preCopy = 256

// TapBuffer is how many packets a tap holds for a consumer that lags.
const TapBuffer = 4096

// observers is the set of running taps, replaced whole on a change.
type observers struct{ taps []*Tap }

// Match says which packets a tap takes. Every field given must match.
type Match struct {
	Node   string     // sent or received by this node (its interface)
	Addr   netip.Addr // the source or destination, before or after translation, is this (a VIP)
	Filter Filter
	Key    *nat.Key // exactly this tuple, as the packet arrived (trace)
}

// Filter is capture's --filter: "host ADDR", "port N", "tcp", "udp",
// "icmp" (or "proto P"), each perhaps after "not", joined by "and". The
// plain terms must all hold for the packet before or after translation;
// a term after "not" leaves out what it holds for on either side, so that
// "not host VIP" hides a VIP's traffic after DNAT too.
type Filter struct{ want, not terms }

// terms is one side of a Filter: addresses, ports and protocols.
type terms struct {
	hosts  []header.Addr
	ports  []uint16
	protos []uint8
}

// ParseFilter reads a filter expression; "" matches everything.
func ParseFilter(expr string) (Filter, error) {
	var f Filter
	words := strings.Fields(strings.ToLower(expr))
	negate := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		arg := func() (string, error) {
			if i+1 >= len(words) {
				return "", fmt.Errorf("filter %q: %s needs a value", expr, w)
			}
			i++
			return words[i], nil
		}
		side := &f.want
		if negate {
			side = &f.not
		}
		switch w {
		case "and", "&&":
			if negate {
				return f, fmt.Errorf("filter %q: not needs a term after it", expr)
			}
			continue
		case "not", "!":
			negate = !negate
			continue
		case "host":
			v, err := arg()
			if err != nil {
				return f, err
			}
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() {
				return f, fmt.Errorf("filter %q: host %q is not an IPv4 address", expr, v)
			}
			side.hosts = append(side.hosts, header.AddrFromNetip(a))
		case "port":
			v, err := arg()
			if err != nil {
				return f, err
			}
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return f, fmt.Errorf("filter %q: bad port %q", expr, v)
			}
			side.ports = append(side.ports, uint16(p))
		case "proto":
			v, err := arg()
			if err != nil {
				return f, err
			}
			p := protoNumber(v)
			if p == 0 {
				return f, fmt.Errorf("filter %q: proto %q: want tcp, udp or icmp", expr, v)
			}
			side.protos = append(side.protos, p)
		case "tcp", "udp", "icmp":
			side.protos = append(side.protos, protoNumber(w))
		default:
			return f, fmt.Errorf("filter %q: %q: want host ADDR, port N, tcp, udp or icmp, each perhaps after not, joined by and", expr, w)
		}
		negate = false
	}
	if negate {
		return f, fmt.Errorf("filter %q: not needs a term after it", expr)
	}
	return f, nil
}

func protoNumber(name string) uint8 {
	switch name {
	case "tcp":
		return header.ProtoTCP
	case "udp":
		return header.ProtoUDP
	case "icmp":
		return header.ProtoICMP
	}
	return 0
}

// all reports whether every term holds for k.
func (t *terms) all(k nat.Key) bool {
	for _, p := range t.protos {
		if k.Proto != p {
			return false
		}
	}
	for _, h := range t.hosts {
		if k.Src != h && k.Dst != h {
			return false
		}
	}
	for _, p := range t.ports {
		if !hasPort(k, p) {
			return false
		}
	}
	return true
}

// any reports whether some term holds for k.
func (t *terms) any(k nat.Key) bool {
	return slices.Contains(t.protos, k.Proto) ||
		slices.Contains(t.hosts, k.Src) || slices.Contains(t.hosts, k.Dst) ||
		slices.ContainsFunc(t.ports, func(p uint16) bool { return hasPort(k, p) })
}

func hasPort(k nat.Key, p uint16) bool {
	return (k.Proto == header.ProtoTCP || k.Proto == header.ProtoUDP) && (k.SrcPort == p || k.DstPort == p)
}

// Match reports whether the filter takes a packet or query with tuple k,
// which translation does not change: a query in the DNS log.
func (f *Filter) Match(k nat.Key) bool { return f.MatchEither(k, k) }

// MatchEither reports whether the filter takes a packet or flow seen as
// pre before translation and post after: a capture's packet, a flow.
func (f *Filter) MatchEither(pre, post nat.Key) bool {
	return (f.want.all(pre) || f.want.all(post)) && !f.not.any(pre) && !f.not.any(post)
}

// Tap is a running capture or trace.
type Tap struct {
	m    Match
	addr header.Addr
	c    chan Record
	lost atomic.Uint64
}

// Records delivers the packets the tap matched.
func (t *Tap) Records() <-chan Record { return t.c }

// Lost is how many matched packets were dropped because the consumer lagged.
func (t *Tap) Lost() uint64 { return t.lost.Load() }

// Record is one packet as a tap saw it.
type Record struct {
	Time   time.Time
	In     string // the node that sent it; "" for an Answer
	Out    string // the node it was handed to; "" when dropped or for the dataplane itself
	Pre    []byte // the IPv4 packet as it arrived (a GSO super-packet as it is)
	Post   []byte // as it left, when the dataplane translated it; nil otherwise
	Drop   string // why the dataplane dropped it; "" when forwarded
	reason DropReason

	// The flow, in its original direction: as its initiator sent it and
	// as it left the dataplane. Reply is true for a packet going the other
	// way. Tracked is false for a packet of no flow (a denied first
	// packet, an ICMP error).
	Orig, Xl nat.Key
	Reply    bool
	Tracked  bool
	// Answer is true for a packet the dataplane itself sent to Out (In is
	// ""): an ICMP error, a gateway's echo reply, a reset.
	Answer bool

	snap *snapshot
	from *topology.Node // the flow's initiator
}

// NAT describes the flow's translation, e.g. "SNAT 10.0.1.6:40000 ->
// 192.23.1.2:40000", or "" when it has none.
func (r *Record) NAT() string { return natString(r.Orig, r.Xl) }

func natString(o, x nat.Key) string {
	var parts []string
	if o.Src != x.Src || o.SrcPort != x.SrcPort {
		parts = append(parts, fmt.Sprintf("SNAT %s -> %s", endpoint(o.Src, o.SrcPort, o.Proto), endpoint(x.Src, x.SrcPort, x.Proto)))
	}
	if o.Proto == header.ProtoICMP {
		// An echo's identifier is both ports of its key, and the source's
		// translation alone changes it: only an address makes a DNAT.
		if o.Dst != x.Dst {
			parts = append(parts, fmt.Sprintf("DNAT %v -> %v", o.Dst, x.Dst))
		}
	} else if o.Dst != x.Dst || o.DstPort != x.DstPort {
		parts = append(parts, fmt.Sprintf("DNAT %s -> %s", endpoint(o.Dst, o.DstPort, o.Proto), endpoint(x.Dst, x.DstPort, x.Proto)))
	}
	return strings.Join(parts, ", ")
}

func endpoint(a header.Addr, port uint16, proto uint8) string {
	if proto == header.ProtoICMP {
		return fmt.Sprintf("%v id %d", a, port)
	}
	return fmt.Sprintf("%v:%d", a, port)
}

var bothDirections = []nsg.Direction{nsg.Outbound, nsg.Inbound}

// Explain evaluates the record's flow as IP flow verify does, with the
// rules of the snapshot that forwarded the packet: the NSGs on the way and
// their deciding rules.
func (r *Record) Explain() VerifyResult {
	if r.from == nil || r.snap == nil {
		return VerifyResult{Decision: "not a flow the NSGs filter"}
	}
	res, err := r.snap.verify(VerifyQuery{
		From: r.from.Name, To: r.Orig.Dst.Netip(), Port: r.Orig.DstPort, Proto: r.Orig.Proto, SrcPort: r.Orig.SrcPort,
		Directions: bothDirections,
	})
	if err != nil {
		return VerifyResult{Decision: err.Error()}
	}
	return res
}

// Route is the next hop the packet's sender's routes chose for it, from the
// snapshot that forwarded it; for a sender outside the VNets, which has no
// routes, the way it went (the Internet, or on-premises and its gateway).
func (r *Record) Route() NextHop {
	n := r.snap.topo.NodeByName(r.In)
	if n == nil {
		return NextHop{}
	}
	return r.snap.nextHop(n, tupleOf(header.IPv4(r.Pre)).Dst.Netip())
}

// Dropped says what dropped the packet and why, "dropped by the load
// balancer: port-closed"; "" when it was forwarded.
func (r *Record) Dropped() string {
	if r.Drop == "" {
		return ""
	}
	return r.reason.Dropped()
}

// Rules names the NSG rules that decided the flow, for a capture comment:
// "NSG: Outbound ase1-w1 subnet ase1-nsg/AllowVnetOutBound (priority 65000):
// Allow; ...", or "NSG: no NSG on the way". A flow that something else
// drops before any NSG sees it (a closed VIP port, a route, F8) is
// "no NSG evaluated": "NSG:" introduces only what NSGs decided.
func (r *Record) Rules() string {
	v := r.Explain()
	if v.Reason != "" {
		return "no NSG evaluated"
	}
	if len(v.Evaluated) == 0 {
		return "NSG: " + v.Decision
	}
	var parts []string
	for _, st := range v.Evaluated {
		parts = append(parts, fmt.Sprintf("%s %s %s %s/%s (priority %d): %s", st.Direction, st.Node, st.Attached, st.NSG, st.Rule, st.Priority, st.Access))
	}
	return "NSG: " + strings.Join(parts, "; ")
}

// AddTap starts a tap. Stop it with RemoveTap.
func (e *Engine) AddTap(m Match) (*Tap, error) {
	s := e.cur.Load()
	if m.Node != "" && s.topo.NodeByName(m.Node) == nil {
		return nil, fmt.Errorf("no node %q", m.Node)
	}
	t := &Tap{m: m, c: make(chan Record, TapBuffer)}
	if m.Addr.IsValid() {
		t.addr = header.AddrFromNetip(m.Addr)
	}
	e.obsMu.Lock()
	defer e.obsMu.Unlock()
	o := &observers{}
	if old := e.obs.Load(); old != nil {
		o.taps = append(o.taps, old.taps...)
	}
	o.taps = append(o.taps, t)
	e.obs.Store(o)
	return t, nil
}

// RemoveTap stops t. Packets it already matched stay in its channel.
func (e *Engine) RemoveTap(t *Tap) {
	e.obsMu.Lock()
	defer e.obsMu.Unlock()
	old := e.obs.Load()
	if old == nil {
		return
	}
	o := &observers{}
	for _, x := range old.taps {
		if x != t {
			o.taps = append(o.taps, x)
		}
	}
	if len(o.taps) == 0 {
		o = nil
	}
	e.obs.Store(o)
}

// obsState is the part of Engine that taps and flow events use; engine.go
// embeds it.
type obsState struct {
	obsMu      sync.Mutex // changes to obs
	observeMu  sync.Mutex // observe's order
	obs        atomic.Pointer[observers]
	flowEvents atomic.Pointer[FlowEvents] // flowevents.go
}

// observe runs one packet through forward with the taps watching.
//
// Packets are observed one at a time, across all workers: a reply is
// handled by another worker than its request, and without the lock it
// could reach the tap first, because a request's record is made after the
// pipeline has sent the request on (a capture showed a SYN-ACK before its
// SYN). Held over the pipeline and the record, the lock gives the records
// the order cause and effect have. Only packets that taps watch take it.
func (e *Engine) observe(o *observers, s *snapshot, in *Port, b []byte, now int64, w *worker) {
	e.observeMu.Lock()
	defer e.observeMu.Unlock()
	var pre [preCopy]byte
	n := copy(pre[:], b)
	w.observing, w.didDrop, w.answered = true, false, nil
	e.forward(s, in, b, now, w)
	w.observing = false
	var drop *DropReason
	if w.didDrop {
		drop = &w.dropped
	}
	e.record(o, s, in, pre[:n], b, drop, now)
	if w.answered != nil {
		e.recordAnswer(o, s, in, w.answered)
		w.answered = nil
	}
}

// recordAnswer hands the taps that watch port to what the dataplane itself
// sent it (answer): the time exceeded a traceroute waits for, a gateway's
// echo reply, a reset. It belongs to no flow; a trace, which follows its
// probe's tuple, does not take it.
func (e *Engine) recordAnswer(o *observers, s *snapshot, to *Port, pkt []byte) {
	ip := header.IPv4(pkt)
	if len(ip) < header.IPv4MinLen || ip.TotalLen() > len(ip) {
		return
	}
	ip = ip[:ip.TotalLen()]
	k := tupleOf(ip)
	want := o.matching(to, to, k, k)
	if len(want) == 0 {
		return
	}
	deliver(want, Record{Time: time.Now(), Out: to.node().Name, Pre: append([]byte(nil), ip...), Orig: k, Xl: k, Answer: true, snap: s})
}

// matching are the taps that want a packet that came in on in and left
// by out with tuple pre, and post after translation.
func (o *observers) matching(in, out *Port, pre, post nat.Key) []*Tap {
	var want []*Tap
	for _, t := range o.taps {
		if t.matches(in, out, pre, post) {
			want = append(want, t)
		}
	}
	return want
}

// deliver hands r to each tap, counting it lost for a tap that lags
// rather than holding up forwarding.
func deliver(taps []*Tap, r Record) {
	for _, t := range taps {
		select {
		case t.c <- r:
		default:
			t.lost.Add(1)
		}
	}
}

// record matches the packet against every tap and hands copies to those
// that want it. drop is why the pipeline dropped it; nil when forwarded.
func (e *Engine) record(o *observers, s *snapshot, in *Port, pre, b []byte, drop *DropReason, now int64) {
	vh := header.VirtioNetHdrLen
	if len(pre) < vh+header.IPv4MinLen {
		return
	}
	preIP := header.IPv4(pre[vh:])
	hl, total := preIP.HeaderLen(), preIP.TotalLen()
	if preIP.Version() != 4 || hl < header.IPv4MinLen || hl > len(preIP) || total < hl || vh+total > len(b) {
		return // the pipeline dropped it as unparseable; nothing to show
	}
	postIP := header.IPv4(b[vh : vh+total])
	preK, postK := tupleOf(preIP), tupleOf(postIP)

	var out *Port
	r := Record{In: in.node().Name, snap: s, Orig: preK, Xl: preK, from: in.node()}
	if drop != nil {
		r.Drop, r.reason = drop.String(), *drop
	} else {
		out = s.portFor(in, preIP.Dst(), postIP.Dst())
	}
	if out != nil {
		r.Out = out.node().Name
	}
	if f, ok := e.ct.Lookup(preK, now); ok {
		r.Tracked = true
		if f.Dir() == nat.Original {
			r.Orig, r.Xl = f.Key(), f.Translated()
		} else {
			r.Orig, r.Xl, r.Reply = f.Translated().Reverse(), f.Key().Reverse(), true
			r.from = s.nodeOf(r.Orig.Src)
		}
	} else if drop == nil && preK != postK {
		r.Xl = postK // an ICMP error translated for its flow
	}

	want := o.matching(in, out, preK, postK)
	if len(want) == 0 {
		return
	}
	r.Time = time.Now()
	r.Pre = make([]byte, total)
	copy(r.Pre[copy(r.Pre, pre[vh:]):], postIP[min(len(pre)-vh, total):])
	if drop == nil && preK != postK {
		r.Post = append([]byte(nil), postIP...)
	}
	deliver(want, r)
}

func (t *Tap) matches(in, out *Port, pre, post nat.Key) bool {
	m := &t.m
	if m.Key != nil && pre != *m.Key {
		return false
	}
	if m.Node != "" && in.node().Name != m.Node && (out == nil || out.node().Name != m.Node) {
		return false
	}
	if t.addr != 0 && pre.Src != t.addr && pre.Dst != t.addr && post.Src != t.addr && post.Dst != t.addr {
		return false
	}
	return m.Filter.MatchEither(pre, post)
}

// tupleOf is the packet's 5-tuple, or for what conntrack does not follow
// (an ICMP error) its addresses and protocol.
func tupleOf(ip header.IPv4) nat.Key {
	if k, ok := nat.KeyOf(ip); ok {
		return k
	}
	return nat.Key{Src: ip.Src(), Dst: ip.Dst(), Proto: ip.Protocol()}
}

// portFor is the port a forwarded packet left by: the appliance its
// subnet's route names, or the holder of its destination after
// translation; nil for the dataplane's own addresses.
func (s *snapshot) portFor(in *Port, preDst, postDst header.Addr) *Port {
	dst := postDst
	if s.routes.used && in.node().Subnet != nil {
		if h, _ := s.routes.lookup(in.node().Subnet, preDst); h.kind == hopAppliance {
			dst = h.via
		}
	}
	if t, _, ok := s.fib.Lookup(dst); ok && t.kind == targetPort {
		return s.ports[t.port]
	}
	return nil
}

// nodeOf is the node holding address a, or nil.
func (s *snapshot) nodeOf(a header.Addr) *topology.Node {
	if t, _, ok := s.fib.Lookup(a); ok && t.kind == targetPort {
		return s.ports[t.port].node()
	}
	return nil
}
