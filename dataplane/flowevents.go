package dataplane

import (
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

// Flow events feed NSG flow logs: a flow allowed (its first packet, on the
// new-flow path, never the established one), a flow denied by an NSG, and
// a flow's end (conntrack removing it). Like taps they cost nothing while
// nobody listens but an atomic load per new flow, and they are handed
// over a bounded channel that drops, counted, rather than block.

// FlowEventBuffer is how many events wait for a lagging consumer.
const FlowEventBuffer = 8192

// Flow event states, as flow logs spell them.
const (
	FlowBegin = 'B' // allowed, first packet
	FlowEnd   = 'E' // removed from conntrack
	FlowDeny  = 'D' // a packet denied by an NSG, or dropped by the load balancer after the source's NSGs allowed it (its state in the log is B)
)

// FlowEvent is one flow event.
type FlowEvent struct {
	Time     time.Time
	State    byte    // FlowBegin, FlowEnd or FlowDeny
	Orig, Xl nat.Key // the flow as its initiator sent it and as it left the dataplane
	Src, Dst string  // the initiator's node and the node it reached; "" if unknown
	Packets  [2]uint64
	Bytes    [2]uint64 // FlowEnd: each direction's packets and bytes (original, reply); FlowDeny: the packet's

	snap     *snapshot
	src, dst *topology.Node
}

// FlowNSG is one NSG evaluated for a flow event and the rule that decided
// in it.
type FlowNSG struct {
	Node      string
	Direction nsg.Direction
	Rule      *nsg.Rule
	Tuple     nat.Key // the flow as this NSG saw it: before SNAT outbound, after DNAT inbound (F13)
}

// NSGs evaluates the event's flow against the rules of the snapshot that
// saw it, in F14 order, up to the first Deny.
func (ev *FlowEvent) NSGs() []FlowNSG {
	var out []FlowNSG
	for _, side := range []struct {
		n   *topology.Node
		dir nsg.Direction
		k   nat.Key
	}{{ev.src, nsg.Outbound, ev.Orig}, {ev.dst, nsg.Inbound, ev.Xl}} {
		if side.n == nil {
			continue
		}
		h := ev.snap.nsgs.Node(side.n.Name)
		if !h.HasNSG(side.dir) {
			continue
		}
		v := h.Verify(side.dir, nsgTuple(side.k))
		for _, st := range v.Steps() {
			out = append(out, FlowNSG{Node: side.n.Name, Direction: side.dir, Rule: st.Rule, Tuple: side.k})
		}
		if !v.Allow {
			break
		}
	}
	return out
}

// FlowEvents is a subscription to flow events.
type FlowEvents struct {
	c    chan FlowEvent
	lost atomic.Uint64
	e    *Engine
}

// C delivers the events.
func (f *FlowEvents) C() <-chan FlowEvent { return f.c }

// Live returns every live flow as an event of today's snapshot, with its
// counters so far (State 0): a flow that lives on sends no event, and
// flow logs need its counters for their continuing tuples, and its NSGs
// when logging began after it did.
func (f *FlowEvents) Live() []FlowEvent {
	s := f.e.cur.Load()
	flows := f.e.ct.Flows()
	evs := make([]FlowEvent, len(flows))
	for i, fi := range flows {
		evs[i] = flowEvent(s, 0, fi)
	}
	return evs
}

// flowEvent is conntrack's flow fi as an event of state in snapshot s,
// with its counters and its nodes.
func flowEvent(s *snapshot, state byte, fi nat.FlowInfo) FlowEvent {
	ev := FlowEvent{Time: time.Now(), State: state, Orig: fi.Orig, Xl: fi.Translated(), Packets: fi.Packets, Bytes: fi.Bytes, snap: s}
	ev.src, ev.dst = s.nodeOf(ev.Orig.Src), s.nodeOf(ev.Xl.Dst)
	return ev.named()
}

// IdleTimeout is how long conntrack keeps a flow that carries nothing
// (F17): flow logs end a flow that never entered conntrack after it.
func (f *FlowEvents) IdleTimeout() time.Duration { return f.e.ct.Timeouts().Idle }

// Lost is how many events were dropped because the consumer lagged.
func (f *FlowEvents) Lost() uint64 { return f.lost.Load() }

func (f *FlowEvents) send(ev FlowEvent) {
	select {
	case f.c <- ev:
	default:
		f.lost.Add(1)
	}
}

// StartFlowEvents subscribes to flow events; there is one subscription at
// a time, and starting another replaces it.
func (e *Engine) StartFlowEvents() *FlowEvents {
	f := &FlowEvents{c: make(chan FlowEvent, FlowEventBuffer), e: e}
	e.flowEvents.Store(f)
	e.ct.SetOnRemove(func(fi nat.FlowInfo) { f.send(flowEvent(e.cur.Load(), FlowEnd, fi)) })
	return f
}

// StopFlowEvents ends subscription f.
func (e *Engine) StopFlowEvents(f *FlowEvents) {
	if e.flowEvents.CompareAndSwap(f, nil) {
		e.ct.SetOnRemove(nil)
	}
}

func (ev FlowEvent) named() FlowEvent {
	if ev.src != nil {
		ev.Src = ev.src.Name
	}
	if ev.dst != nil {
		ev.Dst = ev.dst.Name
	}
	return ev
}

// flowBegun counts a new flow on its ingress port and reports it.
func (e *Engine) flowBegun(s *snapshot, in, out *Port, k, xl nat.Key) {
	in.stats.flows.Add(1)
	if f := e.flowEvents.Load(); f != nil {
		f.send(FlowEvent{Time: time.Now(), State: FlowBegin, Orig: k, Xl: xl, snap: s, src: in.node(), dst: out.node()}.named())
	}
}

// flowDenied reports a packet of a new flow that an NSG denied, or that
// the load balancer dropped after the source's NSGs allowed it (their
// flow logs see it go out); out is nil when the flow was dropped before
// it had a destination node (at a VIP). size is the packet's length.
func (e *Engine) flowDenied(s *snapshot, in, out *Port, k, xl nat.Key, why DropReason, size int) {
	if f := e.flowEvents.Load(); f != nil && (why == DropNSGOutbound || why == DropNSGInbound || why.byLoadBalancer()) {
		ev := FlowEvent{Time: time.Now(), State: FlowDeny, Orig: k, Xl: xl, snap: s, src: in.node(),
			Packets: [2]uint64{1, 0}, Bytes: [2]uint64{uint64(size), 0}}
		if out != nil {
			ev.dst = out.node()
		}
		f.send(ev.named())
	}
}
