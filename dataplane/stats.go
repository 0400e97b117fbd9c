package dataplane

import (
	"sync/atomic"

	"github.com/aseemu/emulator/dataplane/header"
)

// DropReason says why the dataplane dropped a packet. Every drop is counted
// under exactly one reason, per ingress port.
type DropReason uint8

const (
	DropTruncated         DropReason = iota // shorter than its headers claim
	DropNotIPv4                             // IPv6, or not IP at all
	DropBadIHL                              // IHL < 5 or past the packet
	DropBadTotalLength                      // total length < header or > packet
	DropBadL4                               // transport header truncated or inconsistent
	DropBadChecksum                         // IP header checksum does not verify
	DropBadIPOptions                        // IP options malformed, or a source route (LSRR, SSRR)
	DropNoRoute                             // outside every network the lab knows: net unreachable
	DropHostUnreachable                     // in a known network, but no node holds it
	DropTTLExceeded                         // TTL ran out here: time exceeded
	DropFragNeeded                          // DF set and larger than the egress MTU
	DropTooBig                              // larger than the egress MTU and fragmentable (we do not fragment)
	DropToGateway                           // for a gateway address, and not a ping
	DropInternetToPrivate                   // from the Internet to a VNet's private address
	DropSpoofed                             // a node sent with a source address not its own
	DropPortClosed                          // a VIP, ILB or public-IP port that is not open (F2, F7)
	DropNoBackend                           // for a VIP whose front-ends are all out of rotation (F15)
	DropNSGOutbound                         // denied by an outbound NSG rule at the source (F9-F14)
	DropNSGInbound                          // denied by an inbound NSG rule at the destination (F9-F14)
	DropRouteNone                           // a route with next hop None (F18)
	DropRouteStranded                       // a user route's Internet or VnetLocal next hop, where the destination is not (F18)
	DropASESubnetVM                         // from an ASE to a VM in the ASE's own subnet (F8)
	DropConntrackFull                       // a new flow, and the flow table is full
	DropSNATExhausted                       // a new flow, and its VIP's SNAT ports are all in use (F17)
	DropNATConflict                         // a new flow whose translated tuple is a live flow's: the receiver could not tell them apart
	DropUntranslatable                      // needs NAT, but conntrack cannot follow it (an unknown protocol)
	DropFragNoFirst                         // a non-first fragment whose first fragment was not seen, or whose flow is gone
	DropFragTiny                            // a first fragment too short for its L4 header, or a TCP fragment at offset 8 (RFC 1858)
	DropICMPBadQuote                        // an ICMP error whose quote is not an IPv4 header from the error's destination
	DropReadError                           // the device read failed
	DropWriteError                          // the egress device refused the packet
	DropLinkLoss                            // lost on an impaired link (its latency's loss), counted on that link's node
	DropLinkFull                            // an impaired link's line was full, counted on that link's node
	DropAsymmetric                          // an appliance relayed a packet of a flow translated elsewhere, which Azure would translate to the appliance's address (F18)
	DropBroadcast                           // to a subnet's network or broadcast address (F1): Azure carries no broadcast
	numDropReasons
)

// drops names each reason, as status and metrics show it, and what drops
// a packet for it, for a capture's comment and verify: most drops are no
// NSG's decision, and a user reading "dropped" next to the flow's NSG
// rules would otherwise blame them.
var drops = [numDropReasons]struct{ name, by string }{
	DropTruncated:         {"truncated", "the dataplane's header checks"},
	DropNotIPv4:           {"not-ipv4", "the dataplane's header checks"},
	DropBadIHL:            {"bad-ihl", "the dataplane's header checks"},
	DropBadTotalLength:    {"bad-total-length", "the dataplane's header checks"},
	DropBadL4:             {"bad-l4-header", "the dataplane's header checks"},
	DropBadChecksum:       {"bad-ip-checksum", "the dataplane's header checks"},
	DropBadIPOptions:      {"bad-ip-options", "the dataplane's header checks"},
	DropNoRoute:           {"no-route", "routing"},
	DropHostUnreachable:   {"host-unreachable", "routing"},
	DropTTLExceeded:       {"ttl-exceeded", "the gateway"},
	DropFragNeeded:        {"frag-needed", "the gateway"},
	DropTooBig:            {"too-big", "the gateway"},
	DropToGateway:         {"to-gateway", "the gateway"},
	DropInternetToPrivate: {"internet-to-private", "routing"},
	DropSpoofed:           {"spoofed-source", "the source address check"},
	DropPortClosed:        {"port-closed", "the load balancer"},
	DropNoBackend:         {"no-backend", "the load balancer"},
	DropNSGOutbound:       {"nsg-outbound", "an NSG"},
	DropNSGInbound:        {"nsg-inbound", "an NSG"},
	DropRouteNone:         {"route-none", "a route to None"},
	DropRouteStranded:     {"route-stranded", "a user route"},
	DropASESubnetVM:       {"ase-subnet-vm", "the ASE's own subnet (F8)"},
	DropConntrackFull:     {"conntrack-full", "connection tracking"},
	DropSNATExhausted:     {"snat-exhausted", "SNAT"},
	DropNATConflict:       {"nat-conflict", "NAT"},
	DropUntranslatable:    {"untranslatable", "NAT"},
	DropFragNoFirst:       {"frag-no-first", "connection tracking"},
	DropFragTiny:          {"frag-tiny", "the dataplane's header checks"},
	DropICMPBadQuote:      {"icmp-bad-quote", "the dataplane's header checks"},
	DropReadError:         {"read-error", "the node's interface"},
	DropWriteError:        {"write-error", "the node's interface"},
	DropLinkLoss:          {"link-loss", "the impaired link"},
	DropLinkFull:          {"link-queue-full", "the impaired link"},
	DropAsymmetric:        {"asymmetric-route", "the appliance's route"},
	DropBroadcast:         {"broadcast", "routing"},
}

// DropReasons lists every reason the dataplane drops a packet for, so that
// an exporter can show each at 0 before its first drop.
func DropReasons() []DropReason {
	out := make([]DropReason, numDropReasons)
	for r := range out {
		out[r] = DropReason(r)
	}
	return out
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return drops[r].name
	}
	return "unknown"
}

// By names what drops a packet for this reason: "an NSG", "the load
// balancer", "a user route"...
func (r DropReason) By() string {
	if r < numDropReasons {
		return drops[r].by
	}
	return "the dataplane"
}

// Dropped is what verify, trace and capture comments say of a packet
// dropped for this reason: "dropped by the load balancer: port-closed".
func (r DropReason) Dropped() string { return "dropped by " + r.By() + ": " + r.String() }

// byLoadBalancer says the load balancer dropped the packet: a VNet
// machine's packet reaches it only once its own outbound rules allowed it.
func (r DropReason) byLoadBalancer() bool { return r == DropPortClosed || r == DropNoBackend }

// parseDrop maps a header parse failure to its drop reason.
func parseDrop(r header.Reason) DropReason {
	switch r {
	case header.BadVersion:
		return DropNotIPv4
	case header.BadIHL:
		return DropBadIHL
	case header.BadTotalLen:
		return DropBadTotalLength
	case header.BadL4:
		return DropBadL4
	default:
		return DropTruncated
	}
}

// portStats are a port's counters. Any worker may add to them (each of a
// port's queues has its own, and any worker forwards to any port), hence
// atomics; the workers add their packet counts once a burst (tally). The
// padding keeps two ports' hot counters off one cache line.
type portStats struct {
	rx, tx traffic
	flows  atomic.Uint64 // new flows this node started
	drops  [numDropReasons]atomic.Uint64
	_      [64]byte
}

// traffic counts packets and bytes one way through a port.
type traffic struct{ packets, bytes atomic.Uint64 }

// tally holds a worker's count of the packets of one port's traffic until
// it adds them there (publish): once a burst, or when the worker moves on
// to another port. An atomic add per counter per packet was a third of the
// per-packet cost on the VM of 2026-12-04: BenchmarkForward 90-93 ns with
// the four adds a packet, 67-68 ns with a tally published every pollBudget
// packets (3 runs of 1 s each).
type tally struct {
	to             *traffic
	packets, bytes uint64
}

// add counts packets of n bytes in all against to.
func (t *tally) add(to *traffic, packets, n uint64) {
	if t.to != to {
		t.publish()
		t.to = to
	}
	t.packets += packets
	t.bytes += n
}

// publish adds what t holds to its port's counters.
func (t *tally) publish() {
	if t.packets != 0 {
		t.to.packets.Add(t.packets)
		t.to.bytes.Add(t.bytes)
		t.packets, t.bytes = 0, 0
	}
}

func (s *portStats) drop(r DropReason) { s.drops[r].Add(1) }

// PortStats is a snapshot of one port's counters.
type PortStats struct {
	Node      string            `json:"node"`
	RxPackets uint64            `json:"rxPackets"`
	RxBytes   uint64            `json:"rxBytes"`
	TxPackets uint64            `json:"txPackets"`
	TxBytes   uint64            `json:"txBytes"`
	Flows     uint64            `json:"flows"` // flows this node started
	Drops     map[string]uint64 `json:"drops,omitempty"`
}

// Stats returns a snapshot of every port's counters, in port order.
func (e *Engine) Stats() []PortStats {
	ports := e.cur.Load().ports
	out := make([]PortStats, 0, len(ports))
	for _, p := range ports {
		s := PortStats{
			Node:      p.node().Name,
			RxPackets: p.stats.rx.packets.Load(),
			RxBytes:   p.stats.rx.bytes.Load(),
			TxPackets: p.stats.tx.packets.Load(),
			TxBytes:   p.stats.tx.bytes.Load(),
			Flows:     p.stats.flows.Load(),
		}
		for r := DropReason(0); r < numDropReasons; r++ {
			if n := p.stats.drops[r].Load(); n > 0 {
				if s.Drops == nil {
					s.Drops = map[string]uint64{}
				}
				s.Drops[r.String()] = n
			}
		}
		out = append(out, s)
	}
	return out
}

// Drops sums one drop reason over the lab's life: every port, and every
// port Reconfigure removed. It never goes back.
func (e *Engine) Drops(r DropReason) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dropsLocked(r)
}

// DropTotals is Drops for every reason that has dropped a packet, by its
// name. Under mu, so that a port being removed is counted once: among the
// ports or among the retired, never both or neither.
func (e *Engine) DropTotals() map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]uint64{}
	for r := DropReason(0); r < numDropReasons; r++ {
		if n := e.dropsLocked(r); n > 0 {
			out[r.String()] = n
		}
	}
	return out
}

func (e *Engine) dropsLocked(r DropReason) uint64 {
	n := e.retired[r]
	for _, p := range e.cur.Load().ports {
		n += p.stats.drops[r].Load()
	}
	return n
}
