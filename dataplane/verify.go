package dataplane

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

// VerifyQuery is an IP flow verify question: would a new flow from node
// From to To:Port be allowed?
type VerifyQuery struct {
	From       string
	To         netip.Addr
	Port       uint16
	Proto      uint8
	SrcPort    uint16 // 0: an ephemeral port
	Directions []nsg.Direction
}

// VerifyResult is IP flow verify's answer. It is taken from the compiled
// rules the dataplane enforces, without counting hits.
type VerifyResult struct {
	Allow       bool         `json:"allow"`
	Decision    string       `json:"decision"`         // "ase2-nsg/DenyInternet (priority 200)", or why else
	Translation string       `json:"translation"`      // the flow as it would leave the dataplane
	ToNode      string       `json:"toNode,omitempty"` // the node it would reach
	Evaluated   []VerifyStep `json:"evaluated"`        // every NSG on the way, in order
	Reason      string       `json:"reason,omitempty"` // a drop that is not an NSG's
}

// VerifyStep is one NSG evaluated for the flow.
type VerifyStep struct {
	Direction string `json:"direction"`
	Node      string `json:"node"`
	Attached  string `json:"attached"` // subnet or NIC
	NSG       string `json:"nsg"`
	Rule      string `json:"rule"`
	Priority  int    `json:"priority"`
	Access    string `json:"access"`
}

// Verify answers q as the dataplane would decide the flow's first packet:
// the same policy (NAT), route and compiled NSGs (F13: outbound before SNAT,
// inbound after DNAT).
func (e *Engine) Verify(q VerifyQuery) (VerifyResult, error) { return e.cur.Load().verify(q) }

// verify answers q against snapshot s: capture and trace explain a flow
// with the rules of the snapshot that forwarded it.
func (s *snapshot) verify(q VerifyQuery) (VerifyResult, error) {
	src := s.topo.NodeByName(q.From)
	if src == nil {
		return VerifyResult{}, fmt.Errorf("no node %q", q.From)
	}
	if q.SrcPort == 0 {
		q.SrcPort = 49152
	}
	k := nat.Key{Src: header.AddrFromNetip(src.Addr), Dst: header.AddrFromNetip(q.To), SrcPort: q.SrcPort, DstPort: q.Port, Proto: q.Proto}
	if q.Proto == header.ProtoICMP {
		k.DstPort = k.SrcPort
	}
	r := VerifyResult{}
	if t, _, found := s.fib.Lookup(k.Dst); found && t.kind == targetLocal {
		return s.verifyGateway(src, k), nil
	}
	viaGateway := false
	if src.Subnet != nil {
		h, _ := s.routes.lookup(src.Subnet, k.Dst)
		viaGateway = h.kind == hopGateway
	}
	xl, reason, ok := s.pol.decide(src, k, viaGateway)
	if lo, shared := s.pol.shareStart(k.Src, xl.Src); shared && xl.Src != k.Src {
		// The flow would leave from a port of the machine's own share
		// (F17): say the first, not a port it cannot have.
		xl.SrcPort = lo
		if xl.Proto == header.ProtoICMP {
			xl.DstPort = lo
		}
	}
	r.Translation = tuple(xl)
	if !ok {
		// The load balancer sees only what the source's outbound rules let
		// out of its NIC (F14), so they speak first.
		if reason.byLoadBalancer() && slices.Contains(q.Directions, nsg.Outbound) && !r.nsg(s, nsg.Outbound, src, k) {
			return r, nil
		}
		r.Reason, r.Decision = reason.String(), reason.Dropped()
		return r, nil
	}
	t, _, found := s.fib.Lookup(xl.Dst)
	if !found || t.kind != targetPort {
		// The reasons the dataplane counts such a drop under.
		r.Reason = DropHostUnreachable.String()
		switch {
		case !found:
			r.Reason = DropNoRoute.String()
		case t.kind == targetBroadcast:
			r.Reason, r.Decision = DropBroadcast.String(), fmt.Sprintf("%v is a subnet's network or broadcast address, which Azure carries nothing to", xl.Dst)
			return r, nil
		}
		r.Decision = fmt.Sprintf("no node holds %v", xl.Dst)
		return r, nil
	}
	dst := s.ports[t.port].node()
	r.ToNode = dst.Name
	if s.pol.isolated(src, dst) {
		r.Reason = DropASESubnetVM.String()
		r.Decision = fmt.Sprintf("%s is a VM in %s's own subnet: the ASE cannot reach it (F8)", dst.Name, src.ASE.Name)
		return r, nil
	}
	r.Allow, r.Decision = true, "no NSG on the way"
	for _, dir := range q.Directions {
		node, tp := src, k
		if dir == nsg.Inbound {
			node, tp = dst, xl
		}
		if !r.nsg(s, dir, node, tp) {
			r.Allow = false
			return r, nil
		}
	}
	return r, nil
}

// nsg evaluates node's NSGs in direction dir for tuple tp into r: their
// steps, and the deciding rule as r's decision. It is false if they deny.
func (r *VerifyResult) nsg(s *snapshot, dir nsg.Direction, node *topology.Node, tp nat.Key) bool {
	h := s.nsgs.Node(node.Name)
	if h == nil || !h.HasNSG(dir) {
		return true
	}
	v := h.Verify(dir, nsgTuple(tp))
	for _, st := range v.Steps() {
		access := "Deny"
		if st.Allow {
			access = "Allow"
		}
		r.Evaluated = append(r.Evaluated, VerifyStep{Direction: dir.String(), Node: node.Name, Attached: st.Attachment.String(),
			NSG: st.NSG, Rule: st.Name, Priority: st.Priority, Access: access})
	}
	r.Decision = fmt.Sprintf("%s/%s (priority %d)", v.NSG, v.Rule, v.Priority)
	return v.Allow
}

// verifyGateway answers for a flow to a gateway address, which the
// dataplane answers itself before any policy or NSG (toGateway): a ping
// is answered, anything else dropped, and neither the Internet nor another
// VNet reaches a VNet's gateway.
func (s *snapshot) verifyGateway(src *topology.Node, k nat.Key) VerifyResult {
	r := VerifyResult{Translation: tuple(k)}
	why, far := s.outOfReach(src, k.Dst)
	switch {
	case far:
		r.Reason, r.Decision = why.String(), why.Dropped()
	case k.Proto == header.ProtoICMP:
		r.Allow, r.Decision = true, fmt.Sprintf("answered by the dataplane, the gateway %v", k.Dst)
	default:
		r.Reason, r.Decision = DropToGateway.String(), DropToGateway.Dropped()
	}
	return r
}

// NSGStats lists every NSG's rules with their hit counters.
func (e *Engine) NSGStats() []nsg.NSGStats { return e.cur.Load().nsgs.Stats() }
