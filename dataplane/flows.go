package dataplane

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
)

// FlowView is one tracked flow as `emulator flows` shows it.
type FlowView struct {
	Proto       string    `json:"proto"`
	Original    string    `json:"original"`   // as the initiator sent it
	Translated  string    `json:"translated"` // as it left the dataplane
	NAT         string    `json:"nat"`        // "snat", "dnat", "snat+dnat" or "none"
	State       string    `json:"state"`
	AgeSeconds  float64   `json:"ageSeconds"`
	IdleSeconds float64   `json:"idleSeconds"`
	Packets     [2]uint64 `json:"packets"` // original direction, reply direction
	Bytes       [2]uint64 `json:"bytes"`
}

// Flows returns the live flows that f takes (Filter.MatchEither), oldest
// first.
func (e *Engine) Flows(f Filter) []FlowView {
	now := e.ct.Now()
	infos := e.ct.Flows()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Created < infos[j].Created })
	out := make([]FlowView, 0, len(infos))
	for _, fi := range infos {
		o, x := fi.Orig, fi.Translated()
		if !f.MatchEither(o, x) {
			continue
		}
		kind := "none"
		switch snat, dnat := o.Src != x.Src || o.SrcPort != x.SrcPort, o.Dst != x.Dst; {
		case snat && dnat:
			kind = "snat+dnat"
		case snat:
			kind = "snat"
		case dnat:
			kind = "dnat"
		}
		out = append(out, FlowView{
			Proto:       nat.ProtoName(o.Proto),
			Original:    tuple(o),
			Translated:  tuple(x),
			NAT:         kind,
			State:       fi.State.String(),
			AgeSeconds:  time.Duration(fi.Age).Seconds(),
			IdleSeconds: time.Duration(now - fi.LastSeen).Seconds(),
			Packets:     fi.Packets,
			Bytes:       fi.Bytes,
		})
	}
	return out
}

// tuple prints a key without its protocol: "10.0.1.6:40000 -> 203.0.113.10:80",
// or "10.0.1.6 -> 203.0.113.10 id 7" for ICMP echo.
func tuple(k nat.Key) string {
	if k.Proto == header.ProtoICMP {
		return fmt.Sprintf("%v -> %v id %d", k.Src, k.Dst, k.SrcPort)
	}
	return fmt.Sprintf("%v:%d -> %v:%d", k.Src, k.SrcPort, k.Dst, k.DstPort)
}

// NATStatus is connection tracking's and the SNAT pools' state, for
// `emulator status`.
type NATStatus struct {
	Flows         int        `json:"flows"`
	MaxFlows      int        `json:"maxFlows"`
	Created       uint64     `json:"created"`
	Expired       uint64     `json:"expired"`
	TableFull     uint64     `json:"tableFull"`
	PoolExhausted uint64     `json:"poolExhausted"`
	Conflicts     uint64     `json:"conflicts"` // refused: the translated tuple was a live flow's
	Pools         []PoolView `json:"pools"`
}

// PoolView is one SNAT pool: a public address's ports for one protocol.
type PoolView struct {
	Address   string `json:"address"`
	Proto     string `json:"proto"`
	Range     string `json:"range"`
	Size      int    `json:"size"`
	InUse     int    `json:"inUse"`
	Exhausted uint64 `json:"exhausted"`
	// Shares are the machines' own parts of the pool (F17).
	Shares []ShareView `json:"shares,omitempty"`
}

// ShareView is one machine's share of a SNAT pool.
type ShareView struct {
	Address   string `json:"address"` // the machine's own
	Range     string `json:"range"`
	Size      int    `json:"size"`
	InUse     int    `json:"inUse"`
	Exhausted uint64 `json:"exhausted"`
}

// NAT returns the connection table's counters and every SNAT pool.
func (e *Engine) NAT() NATStatus {
	s := e.ct.Stats()
	st := NATStatus{
		Flows: s.Flows, MaxFlows: s.MaxFlows, Created: s.Created, Expired: s.Expired,
		TableFull: s.TableFull, PoolExhausted: s.PoolExhausted, Conflicts: s.Conflicts,
	}
	for _, p := range e.ct.Pools() {
		v := PoolView{
			Address: p.Addr.String(), Proto: nat.ProtoName(p.Proto), Range: fmt.Sprintf("%d-%d", p.Lo, p.Hi),
			Size: p.Size, InUse: p.InUse, Exhausted: p.Exhausted,
		}
		for _, sh := range p.Shares {
			v.Shares = append(v.Shares, ShareView{
				Address: sh.Src.String(), Range: fmt.Sprintf("%d-%d", sh.Lo, sh.Hi),
				Size: int(sh.Hi) - int(sh.Lo) + 1, InUse: sh.InUse, Exhausted: sh.Exhausted,
			})
		}
		st.Pools = append(st.Pools, v)
	}
	return st
}

// OriginalSource returns where a connection that a node accepted was
// dialled from, as its initiator sent it, before any NAT on the way:
// remote and local are the accepting socket's addresses, proto its
// protocol. That socket's packets carry local -> remote, the reply
// direction of the flow, whose other direction's tuple is the initiator's.
// It is false if no live flow has that reply, as for a packet the
// dataplane does not track (on the node's own link). Like the packet
// path's lookups, it takes no lock: the lab's services call it, on their
// rare path, while the dataplane forwards.
func (e *Engine) OriginalSource(proto uint8, remote, local netip.AddrPort) (netip.AddrPort, bool) {
	k := nat.Key{
		Src: header.AddrFromNetip(local.Addr()), Dst: header.AddrFromNetip(remote.Addr()),
		SrcPort: local.Port(), DstPort: remote.Port(), Proto: proto,
	}
	f, ok := e.ct.Lookup(k, e.ct.Now())
	if !ok || f.Dir() != nat.Reply {
		return netip.AddrPort{}, false
	}
	// Translated is what the reply becomes on its way back: addressed to
	// the initiator as it sent the first packet.
	x := f.Translated()
	return netip.AddrPortFrom(x.Dst.Netip(), x.DstPort), true
}
