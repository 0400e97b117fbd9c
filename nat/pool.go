package nat

import (
	"math/bits"

	"github.com/aseemu/emulator/dataplane/header"
)

// pool is the SNAT port pool of one public address and protocol (F17: a
// finite pool per VIP). Every field is guarded by Table.mu.
//
// It covers all 65,536 ports whatever its range, so changing the range of
// a live pool (emulator apply) keeps every allocation valid: ports outside
// the new range stay taken until their flows end and are then not handed
// out again. That costs 264 KiB per address and protocol, a handful of
// which exist.
type pool struct {
	addr      header.Addr
	proto     uint8
	id        uint16 // index in Table.pools
	lo, hi    uint16 // the range new allocations come from, inclusive
	inUse     int    // ports taken, in the range or not
	cursor    uint16 // next port to try when the hint is taken
	exhausted uint64 // allocations refused
	// reclaimAt is the earliest time at which scanning the owners of an
	// exhausted pool can find an expired flow: the earliest expiry seen by
	// the last scan, and at most a second after it, since a FIN or RST
	// shortens a flow's life without telling the pool. Without it, every
	// connection attempt to an exhausted pool would read every owner flow.
	reclaimAt int64
	used      [65536 / 64]uint64
	owner     [65536]uint32 // flow index holding the port, when used
}

type poolKey struct {
	addr  header.Addr
	proto uint8
}

// poolProtos are the protocols every SetPool address gets a pool for.
var poolProtos = [...]uint8{header.ProtoTCP, header.ProtoUDP, header.ProtoICMP}

func (p *pool) size() int { return int(p.hi) - int(p.lo) + 1 }

func (p *pool) inRange(port uint16) bool { return port >= p.lo && port <= p.hi }

func (p *pool) isUsed(port uint16) bool { return p.used[port>>6]&(1<<(port&63)) != 0 }

func (p *pool) take(port uint16, idx uint32) {
	p.used[port>>6] |= 1 << (port & 63)
	p.owner[port] = idx
	p.inUse++
}

func (p *pool) release(port uint16) {
	if p.isUsed(port) {
		p.used[port>>6] &^= 1 << (port & 63)
		p.inUse--
	}
}

// pick returns a free port for flow idx: hint if it is in the range and
// free (F17's "keeps the original source port"), else the next free one
// after the cursor, so a port just released is the last to be reused.
func (p *pool) pick(hint uint16, idx uint32) (uint16, bool) {
	if p.inRange(hint) && !p.isUsed(hint) {
		p.take(hint, idx)
		return hint, true
	}
	c := p.cursor
	if !p.inRange(c) {
		c = p.lo
	}
	port, ok := p.nextFree(c, p.hi)
	if !ok && c > p.lo {
		port, ok = p.nextFree(p.lo, c-1)
	}
	if !ok {
		return 0, false
	}
	p.take(port, idx)
	p.cursor = port + 1 // wraps to 0 after 65535, which inRange sends back to lo
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

// PoolStats describes one SNAT pool, for `emulator status`.
type PoolStats struct {
	Addr      header.Addr
	Proto     uint8
	Lo, Hi    uint16 // the configured range, inclusive
	Size      int    // ports in the range
	InUse     int    // ports held by live flows (or expired flows not yet swept)
	Exhausted uint64 // new flows refused because no port was free
}
