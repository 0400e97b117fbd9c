package nat

import (
	"iter"
	"math/bits"

	"github.com/aseemu/emulator/dataplane/header"
)

// pool is the SNAT port pool of one public address and protocol (F17: a
// finite pool per VIP). Every field is guarded by Table.mu.
//
// Its port map covers all 65,536 ports whatever its range, so changing the
// range of a live pool (emulator apply) keeps every allocation valid: ports
// outside the new range stay taken until their flows end and are then not
// handed out again. That costs 264 KiB per address and protocol, a handful
// of which exist.
type pool struct {
	*portMap
	addr  header.Addr
	proto uint8
	id    uint16 // index in Table.pools
	all   span   // the whole range
	// shares are the instances' parts of the range (F17: Azure gives each
	// machine behind a VIP its own preallocated ports, 1,024 each in a
	// pool of up to 50): a machine draws only from its own, so one that
	// runs dry leaves the others' ports alone. A source without a share
	// draws from the whole range.
	shares map[header.Addr]*span
	order  []header.Addr // the shares' addresses, in port order
	inUse  int           // ports taken, in the range or not
	// reuseBy says how far a taken port can serve further flows. Azure's
	// load balancer gives a TCP SNAT port to one flow per destination
	// address and port, and a UDP port to one flow per destination
	// address whatever its port (the "Port reuse" section of its
	// outbound-connections article); ICMP gets one flow a port. A machine
	// whose share is all taken still reaches a destination that none of
	// its ports serves; only many flows to one destination exhaust it.
	// Ports are shared only once every port of the span is taken
	// (sharePortLocked, shareAddrPortLocked), so until then allocation is
	// the same for every protocol.
	reuseBy reuse
	// extra counts, for a shared port, the flows that hold it besides
	// the first: the port is free when the last of them goes. In a
	// reuseAddr pool a port keeps its entry, 0 or more, from its first
	// sharing until it is free, as the mark that dsts counts its holders.
	extra map[uint16]uint32
	// dsts counts the holders of each such port of a reuseAddr pool by
	// destination address (dstKey): the flows' index is by whole tuple,
	// so it cannot tell which addresses a port already reaches.
	dsts map[uint64]uint32
}

// reuse is what a SNAT port's further flows must differ in (pool.reuseBy).
type reuse uint8

const (
	reuseNone reuse = iota // one flow a port (ICMP)
	reuseDst               // destination address or port (TCP)
	reuseAddr              // destination address (UDP)
)

func dstKey(port uint16, dst header.Addr) uint64 { return uint64(port)<<32 | uint64(dst) }

// portMap says which ports of a pool are taken, and by which flow. It
// holds no pointer, so the GC never scans its 264 KiB.
type portMap struct {
	used  [65536 / 64]uint64
	owner [65536]uint32 // flow index holding the port, when used; for a shared port its first holder, which may have gone (holdsLocked)
}

// span is a range of ports that allocations draw from, with its own
// cursor and counters: a pool's whole range or one instance's share.
type span struct {
	lo, hi    uint16 // inclusive
	cursor    uint16 // next port to try when the hint is taken
	exhausted uint64 // allocations refused
	// reclaimAt is the earliest time at which searching an exhausted span
	// again can find a port for reclaimKey: the earliest expiry seen by
	// the last search that found none, and at most a second after it,
	// since a FIN or RST shortens a flow's life without telling the pool.
	// Without it, every connection attempt to an exhausted span would read
	// the flows of every port. reclaimKey is 0 (any flow), or in a pool
	// that shares ports the destination searched for (address, and port
	// for TCP, with bit 48 set): another destination may still share a
	// port.
	reclaimAt  int64
	reclaimKey uint64
}

type poolKey struct {
	addr  header.Addr
	proto uint8
}

// poolProtos are the protocols every SetPool address gets a pool for.
var poolProtos = [...]uint8{header.ProtoTCP, header.ProtoUDP, header.ProtoICMP}

func (s *span) size() int { return int(s.hi) - int(s.lo) + 1 }

func (s *span) inRange(port uint16) bool { return port >= s.lo && port <= s.hi }

// fromCursor yields every port of s once, from its cursor on, wrapping
// round: the order a search for a port to share takes, like a fresh one's.
func (s *span) fromCursor() iter.Seq[uint16] {
	return func(yield func(uint16) bool) {
		c := s.cursor
		if !s.inRange(c) {
			c = s.lo
		}
		for i := range s.size() {
			if !yield(s.lo + uint16((int(c-s.lo)+i)%s.size())) {
				return
			}
		}
	}
}

// spanFor is the span that flows from src draw their ports from.
func (p *pool) spanFor(src header.Addr) *span {
	if s := p.shares[src]; s != nil {
		return s
	}
	return &p.all
}

func (p *pool) isUsed(port uint16) bool { return p.used[port>>6]&(1<<(port&63)) != 0 }

func (p *pool) take(port uint16, idx uint32) {
	p.used[port>>6] |= 1 << (port & 63)
	p.owner[port] = idx
	p.inUse++
}

// release gives back flow's hold on port; dst is the flow's destination.
func (p *pool) release(port uint16, dst header.Addr) {
	n, marked := p.extra[port]
	if marked && p.reuseBy == reuseAddr {
		if k := dstKey(port, dst); p.dsts[k] > 1 {
			p.dsts[k]--
		} else {
			delete(p.dsts, k)
		}
	}
	switch {
	case n > 1 || n == 1 && p.reuseBy == reuseAddr:
		p.extra[port] = n - 1
		return
	case n == 1:
		delete(p.extra, port)
		return
	case marked:
		delete(p.extra, port) // a reuseAddr port's last holder
	}
	if p.isUsed(port) {
		p.used[port>>6] &^= 1 << (port & 63)
		p.inUse--
	}
}

// reuse gives a taken port to one more flow, to dst.
func (p *pool) reuse(port uint16, dst header.Addr) {
	if p.extra == nil {
		p.extra = make(map[uint16]uint32)
	}
	p.extra[port]++
	if p.reuseBy == reuseAddr {
		if p.dsts == nil {
			p.dsts = make(map[uint64]uint32)
		}
		p.dsts[dstKey(port, dst)]++
	}
}

// mark starts counting the holders of port, a reuseAddr port about to be
// shared, by destination: so far its one holder, to dst.
func (p *pool) mark(port uint16, dst header.Addr) {
	if p.extra == nil {
		p.extra = make(map[uint16]uint32)
	}
	p.extra[port] = 0
	if p.dsts == nil {
		p.dsts = make(map[uint64]uint32)
	}
	p.dsts[dstKey(port, dst)] = 1
}

// pick returns a free port of s for flow idx: hint, the flow's own source
// port, if it is in s and free (netfilter keeps it likewise), else the
// next free one after the cursor, so a port just released is the last to
// be reused.
func (p *pool) pick(s *span, hint uint16, idx uint32) (uint16, bool) {
	if s.inRange(hint) && !p.isUsed(hint) {
		p.take(hint, idx)
		return hint, true
	}
	c := s.cursor
	if !s.inRange(c) {
		c = s.lo
	}
	port, ok := p.nextFree(c, s.hi)
	if !ok && c > s.lo {
		port, ok = p.nextFree(s.lo, c-1)
	}
	if !ok {
		return 0, false
	}
	p.take(port, idx)
	s.cursor = port + 1 // wraps to 0 after 65535, which inRange sends back to lo
	return port, true
}

// nextFree returns the first free port in [from, to], a word of the
// bitmap at a time: 1,024 words cover every port, so an almost full pool
// of 64,000 is searched in about a microsecond rather than 64,000 steps.
func (p *pool) nextFree(from, to uint16) (uint16, bool) {
	for w := uint32(from) >> 6; w <= uint32(to)>>6; w++ {
		free := ^p.used[w]
		if w == uint32(from)>>6 {
			free &= ^uint64(0) << (from & 63)
		}
		if w == uint32(to)>>6 {
			free &= ^uint64(0) >> (63 - to&63)
		}
		if free != 0 {
			return uint16(w<<6 + uint32(bits.TrailingZeros64(free))), true
		}
	}
	return 0, false
}

// taken counts the ports of s that flows hold.
func (p *pool) taken(s *span) int {
	n := 0
	for w := uint32(s.lo) >> 6; w <= uint32(s.hi)>>6; w++ {
		m := p.used[w]
		if w == uint32(s.lo)>>6 {
			m &= ^uint64(0) << (s.lo & 63)
		}
		if w == uint32(s.hi)>>6 {
			m &= ^uint64(0) >> (63 - s.hi&63)
		}
		n += bits.OnesCount64(m)
	}
	return n
}

// share divides the range into equal shares, in the order of srcs, of per
// ports each. A share whose address and ports stay the same keeps its
// cursor and counters.
func (p *pool) share(srcs []header.Addr, per int) {
	old := p.shares
	p.shares, p.order = nil, nil
	if len(srcs) == 0 {
		return
	}
	p.shares = make(map[header.Addr]*span, len(srcs))
	for i, a := range srcs {
		lo := p.all.lo + uint16(i*per)
		s := &span{lo: lo, hi: lo + uint16(per-1), cursor: lo}
		if o := old[a]; o != nil && o.lo == s.lo && o.hi == s.hi {
			s = o
		}
		p.shares[a] = s
		p.order = append(p.order, a)
	}
}

// PoolStats describes one SNAT pool, for `emulator status`.
type PoolStats struct {
	Addr      header.Addr
	Proto     uint8
	Lo, Hi    uint16 // the configured range, inclusive
	Size      int    // ports in the range
	InUse     int    // ports held by live flows (or expired flows not yet swept)
	Exhausted uint64 // new flows refused because no port was free
	Shares    []ShareStats
}

// ShareStats describes one instance's share of a pool (F17).
type ShareStats struct {
	Src       header.Addr // the instance whose flows draw from it
	Lo, Hi    uint16      // inclusive
	InUse     int
	Exhausted uint64
}

// reuseFor is how a pool of proto shares its ports (pool.reuseBy).
func reuseFor(proto uint8) reuse {
	switch proto {
	case header.ProtoTCP:
		return reuseDst
	case header.ProtoUDP:
		return reuseAddr
	}
	return reuseNone
}
