package nat

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
)

// Errors from Insert and SetPool.
var (
	// ErrTableFull: the table holds Config.MaxFlows live flows. Existing
	// flows are unaffected.
	ErrTableFull = errors.New("nat: connection table full")
	// ErrPoolExhausted: every port of the SNAT pool is held by a live flow
	// (F17). Existing flows are unaffected.
	ErrPoolExhausted = errors.New("nat: SNAT port pool exhausted")
	// ErrExists: a live flow already has the original key, in one
	// direction or the other. Insert returns that flow with it, ready to
	// translate the packet.
	ErrExists = errors.New("nat: flow exists")
	// ErrConflict: the translated tuple is another live flow's, and there
	// is no pool to pick another port from.
	ErrConflict = errors.New("nat: translated tuple in use by another flow")
	// ErrInvalid: the keys cannot make a flow (protocol other than TCP, UDP
	// or ICMP; protocols differ; a flow that would be its own reply).
	ErrInvalid = errors.New("nat: invalid flow")
)

// DefaultMaxFlows is the table size when Config.MaxFlows is 0, far more
// flows than a lab makes. It reserves 56 MiB (224 bytes a flow, see
// TestMemoryPerFlow), of which the 8 MiB index is soon resident and the
// slab only as far as flows have reached into it.
const DefaultMaxFlows = 1 << 18

// maxMaxFlows is what a slot word's 30-bit flow index can address.
const maxMaxFlows = 1 << 30

// Config configures a Table.
type Config struct {
	MaxFlows int          // live flows the table holds; 0 means DefaultMaxFlows
	Timeouts Timeouts     // zero fields take F17's defaults
	Clock    Clock        // nil means SystemClock()
	Pools    []PoolConfig // SNAT pools to create; SetPool adds more
}

// PoolConfig is the SNAT port range of one public address (a VIP, a default
// outbound address). It applies to TCP, UDP and ICMP echo identifiers,
// each with a pool of its own.
type PoolConfig struct {
	Addr   header.Addr
	Lo, Hi uint16 // inclusive; 1 <= Lo <= Hi
	// Shares, if any, are the machines behind the address, each given
	// PerShare ports of its own from Lo on, in this order (F17); flows
	// from any other source draw from the whole range.
	Shares   []header.Addr
	PerShare int
}

// Stats are the table's counters.
type Stats struct {
	Flows         int    // live flows, expired ones not yet swept included
	MaxFlows      int    // Config.MaxFlows
	Created       uint64 // flows inserted
	Expired       uint64 // flows removed because they timed out
	TableFull     uint64 // inserts refused with ErrTableFull
	PoolExhausted uint64 // inserts refused with ErrPoolExhausted
	Conflicts     uint64 // inserts refused with ErrConflict
}

// flow is one slab entry. It is pointer-free, so the slab of a million
// flows is one object the GC never scans. Fields read by lock-free lookups
// are atomics; the rest belong to Table.mu.
//
// gs holds the generation in its high 32 bits and the State in its low 8.
// An odd generation is a live flow; it becomes even when the flow is freed
// and odd again when the entry is reused. A reader that loads gs, then the
// keys, then gs again, and sees the same odd generation, has read a
// consistent live flow (a seqlock). State sharing the word lets a state
// change be a CAS that fails if the entry was reused meanwhile, so a
// straggling RST of a dead flow cannot close its successor.
//
// The layout is three cache lines: the first holds what lookups of both
// directions read, written only on insert, removal, a state change and a
// last-seen update (once a millisecond); the other two hold one
// direction's counters each, written only by that direction's goroutine.
// Packed into 96 bytes instead, every packet's counter update stole the
// line from the other direction's core: BenchmarkEstablishedParallel (the
// two directions of a flow on two cores) went from 79 to 40 ns/op with
// this layout, for 96 more bytes a flow.
type flow struct {
	gs       atomic.Uint64
	lastSeen atomic.Int64
	key      [2][2]atomic.Uint64 // packed keys by Dir
	created  int64
	pool     uint16 // index+1 in Table.pools of the SNAT port's pool, 0 for none
	port     uint16
	next     uint32 // free list link
	ctr      [2]dirCounters
}

// liveGen reports whether gs (flow.gs) holds an odd generation: a live flow.
func liveGen(gs uint64) bool { return gs>>32&1 == 1 }

// dirCounters are one direction's counters, padded to a cache line.
type dirCounters struct {
	pkts, bytes atomic.Uint64 // bytes counts IP packets, headers included
	_           [48]byte
}

const noFlow = ^uint32(0)

// Slot words of the index: used bit, direction, 30-bit flow index, and
// the low 32 bits of the key's hash as a tag so that most slots of other
// keys are passed over without touching their flow.
const (
	slotUsed     = 1 << 63
	slotDirShift = 62
	slotIdxShift = 32
	slotIdxMask  = 1<<30 - 1
)

// lookupTries bounds the retries of a lookup that missed while a deletion
// was moving slots. A present key is missed only if a deletion moves it
// during the probe, so one retry almost always settles it; a key that is
// really absent takes at most this many probes during a sweep.
const lookupTries = 8

// reclaimInterval caps how often a full table or an exhausted pool scans
// for expired flows when the last scan found none.
const reclaimInterval = int64(time.Second)

// sweepChunk is how many slab entries Expire and Flows handle per hold of
// the mutex, so that a sweep over a million flows holds up an Insert for
// tens of microseconds rather than milliseconds.
const sweepChunk = 4096

// lastSeenSlack is how stale a flow's last-seen time may get before a
// packet rewrites it. Timeouts are seconds long, so a millisecond of error
// is invisible, and skipping the store on all but one packet a millisecond
// keeps the flow's first cache line shared between the cores of its two
// directions: BenchmarkEstablishedParallel is 61 ns/op storing on every
// packet, 40 with the slack.
const lastSeenSlack = int64(time.Millisecond)

// Table is the connection-tracking table: flows, their index, and the SNAT
// port pools. Lookup and Flow.Translate are safe to call from any number of
// goroutines and take no lock; everything else serialises on a mutex.
type Table struct {
	// Read by every lookup, written only by New and SetTimeouts.
	slots    []atomic.Uint64
	nslots   uint64 // len(slots)
	seed     [3]uint64
	flows    []flow
	timeouts [8]atomic.Int64 // by State; 8 so that state&7 needs no bounds check
	clock    Clock
	max      int

	_ [64]byte
	// seq is odd while a deletion is moving slots, and changes with every
	// deletion. A lookup that misses re-reads it to tell "absent" from
	// "moved past me".
	seq atomic.Uint64
	_   [56]byte

	mu            sync.Mutex
	hiwater       uint32 // slab entries ever used
	free          uint32 // head of the free list
	pools         []*pool
	poolByKey     map[poolKey]*pool
	fullReclaimAt int64

	live                                  atomic.Int64
	created, expired, full, exhausted, cf atomic.Uint64

	onRemove atomic.Pointer[func(FlowInfo)] // SetOnRemove
}

// SetOnRemove has fn called with a copy of every flow the table removes
// (timed out, or reclaimed for a new flow), for NSG flow logs' end
// events; nil stops it. fn runs under the table's mutex: it must not block
// or call the table.
func (t *Table) SetOnRemove(fn func(FlowInfo)) {
	if fn == nil {
		t.onRemove.Store(nil)
		return
	}
	t.onRemove.Store(&fn)
}

// New returns an empty table. It maps the slab and the index for MaxFlows
// up front, outside the Go heap (mapped); the kernel backs the pages only
// as flows touch them.
func New(cfg Config) (*Table, error) {
	n := cfg.MaxFlows
	if n == 0 {
		n = DefaultMaxFlows
	}
	if n < 0 || n > maxMaxFlows {
		return nil, fmt.Errorf("nat: MaxFlows %d out of range 1..%d", n, maxMaxFlows)
	}
	// Two keys per flow at a load factor of at most 1/2: linear probing
	// then averages 1.5 slots per hit and 2.5 per miss. The count is not
	// rounded to a power of two, which could double it and break the
	// budget of 256 bytes a flow; home slots come from a multiply instead
	// of a mask.
	nslots := max(8, 4*n)
	slots, slotsMem, err := mapped[atomic.Uint64](nslots)
	if err != nil {
		return nil, err
	}
	flows, flowsMem, err := mapped[flow](n)
	if err != nil {
		spare.put(slotsMem)
		return nil, err
	}
	t := &Table{
		slots:     slots,
		nslots:    uint64(nslots),
		seed:      [3]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64()},
		flows:     flows,
		clock:     cfg.Clock,
		max:       n,
		free:      noFlow,
		poolByKey: map[poolKey]*pool{},
	}
	spareWhenUnreachable(t, slotsMem, flowsMem)
	if t.clock == nil {
		t.clock = SystemClock()
	}
	t.SetTimeouts(cfg.Timeouts)
	for _, p := range cfg.Pools {
		if err := t.SetPool(p); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Now reads the table's clock. The dataplane reads it once per batch and
// passes the time to Lookup and Insert.
func (t *Table) Now() int64 { return t.clock.Now() }

// SetTimeouts changes the timeouts; zero fields take F17's defaults. Live
// flows expire by the new values from then on.
func (t *Table) SetTimeouts(to Timeouts) {
	for s, v := range to.withDefaults().byState() {
		t.timeouts[s].Store(v)
	}
}

// Timeouts returns the timeouts in force.
func (t *Table) Timeouts() Timeouts {
	return Timeouts{
		Idle: time.Duration(t.timeouts[StateEstablished].Load()),
		Fin:  time.Duration(t.timeouts[StateClosing].Load()),
		Rst:  time.Duration(t.timeouts[StateClosed].Load()),
	}
}

// SetPool creates or resizes the SNAT pools of c.Addr, one each for TCP,
// UDP and ICMP echo identifiers, and shares them out. Resizing keeps every
// port already handed out until its flow ends.
func (t *Table) SetPool(c PoolConfig) error {
	if c.Lo == 0 || c.Lo > c.Hi {
		return fmt.Errorf("nat: SNAT pool of %v: bad port range %d-%d (want 1 <= lo <= hi)", c.Addr, c.Lo, c.Hi)
	}
	if len(c.Shares) > 0 {
		size := int(c.Hi) - int(c.Lo) + 1
		if c.PerShare < 1 || len(c.Shares)*c.PerShare > size {
			return fmt.Errorf("nat: SNAT pool of %v: %d shares of %d ports do not fit in %d-%d", c.Addr, len(c.Shares), c.PerShare, c.Lo, c.Hi)
		}
		seen := make(map[header.Addr]bool, len(c.Shares))
		for _, a := range c.Shares {
			if seen[a] {
				return fmt.Errorf("nat: SNAT pool of %v: %v has two shares", c.Addr, a)
			}
			seen[a] = true
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, proto := range poolProtos {
		k := poolKey{c.Addr, proto}
		p := t.poolByKey[k]
		if p == nil {
			if len(t.pools) == 1<<16-1 {
				return fmt.Errorf("nat: too many SNAT pools")
			}
			p = &pool{portMap: new(portMap), addr: c.Addr, proto: proto, id: uint16(len(t.pools)), reuseBy: reuseFor(proto)}
			t.pools = append(t.pools, p)
			t.poolByKey[k] = p
		}
		p.all.lo, p.all.hi, p.all.cursor, p.all.reclaimAt = c.Lo, c.Hi, c.Lo, 0
		p.share(c.Shares, c.PerShare)
	}
	return nil
}

// Pools reports every SNAT pool, for `emulator status`.
func (t *Table) Pools() []PoolStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PoolStats, len(t.pools))
	for i, p := range t.pools {
		out[i] = PoolStats{Addr: p.addr, Proto: p.proto, Lo: p.all.lo, Hi: p.all.hi, Size: p.all.size(), InUse: p.inUse, Exhausted: p.all.exhausted}
		for _, a := range p.order {
			s := p.shares[a]
			out[i].Shares = append(out[i].Shares, ShareStats{Src: a, Lo: s.lo, Hi: s.hi, InUse: p.taken(s), Exhausted: s.exhausted})
		}
	}
	return out
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	return Stats{
		Flows: int(t.live.Load()), MaxFlows: t.max,
		Created: t.created.Load(), Expired: t.expired.Load(),
		TableFull: t.full.Load(), PoolExhausted: t.exhausted.Load(), Conflicts: t.cf.Load(),
	}
}

// hash mixes a packed key with the table's random seed (two 64x64->128
// multiplies, wyhash's mixer), so that hosts on the emulated Internet
// cannot choose ports that pile into one probe chain.
func (t *Table) hash(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^t.seed[0], b^t.seed[1])
	hi, lo = bits.Mul64(hi^lo^t.seed[2], 0x9e3779b97f4a7c15)
	return hi ^ lo
}

// home is the slot where the probe for hash h starts: h scaled to
// [0, nslots) by a multiply (Lemire's fast range), from its high bits, so
// that it is independent of the tag in the low ones.
func (t *Table) home(h uint64) uint64 {
	hi, _ := bits.Mul64(h, t.nslots)
	return hi
}

// next is the slot after i, wrapping.
func (t *Table) next(i uint64) uint64 {
	if i++; i == t.nslots {
		return 0
	}
	return i
}

// dist is how many slots a probe from i takes to reach j, wrapping.
func (t *Table) dist(i, j uint64) uint64 {
	if j < i {
		return j + t.nslots - i
	}
	return j - i
}

// Lookup returns the flow packets with key k belong to, and their
// direction, at time now. A flow past its timeout is not found even before
// Expire removes it, so its ports are free for the next Insert. Lookup
// takes no lock, sends on no channel and allocates nothing.
func (t *Table) Lookup(k Key, now int64) (Flow, bool) {
	var f Flow
	ok := t.LookupInto(k, now, &f)
	return f, ok
}

// LookupInto is Lookup filling in *f, for the dataplane's per-packet path:
// returning the 64-byte Flow by value cost a copy through the stack per
// packet (BenchmarkForward, count 5: see the commit that added it).
func (t *Table) LookupInto(k Key, now int64, f *Flow) bool {
	// Packed field by field: k.pack() copied k to the stack in narrow
	// stores and read it back in one 16-byte load, a store-forwarding
	// stall (BenchmarkLookup, min of 10: 30 ns with pack, 15 without).
	a := uint64(k.Src)<<32 | uint64(k.Dst)
	b := uint64(k.SrcPort)<<48 | uint64(k.DstPort)<<32 | uint64(k.Proto)<<24
	h := t.hash(a, b)
	tag := uint32(h)
	for range lookupTries {
		seq := t.seq.Load()
	probe:
		for i := t.home(h); ; i = t.next(i) {
			w := t.slots[i].Load()
			if w == 0 {
				break probe
			}
			if uint32(w) != tag {
				continue
			}
			dir := Dir(w >> slotDirShift & 1)
			fl := &t.flows[uint32(w>>slotIdxShift)&slotIdxMask]
			gs := fl.gs.Load()
			if !liveGen(gs) {
				continue // freed since the slot was read; seq has moved
			}
			if fl.key[dir][0].Load() != a || fl.key[dir][1].Load() != b {
				continue
			}
			ta, tb := fl.key[1-dir][0].Load(), fl.key[1-dir][1].Load()
			last := fl.lastSeen.Load()
			if fl.gs.Load()>>32 != gs>>32 {
				continue // reused while read; seq has moved
			}
			if now-last >= t.timeouts[gs&7].Load() {
				return false
			}
			*f = Flow{f: fl, gs: gs, now: now, ka: a, kb: b, ta: ta, tb: tb, dir: dir}
			return true
		}
		if seq&1 == 0 && t.seq.Load() == seq {
			return false
		}
	}
	return false
}

// Insert creates a flow whose packets in the original direction carry
// orig and leave carrying xlated: xlated.Src differs from orig.Src for SNAT,
// xlated.Dst from orig.Dst for DNAT, both for a hairpin, neither for a flow
// tracked only for stateful filtering. If a SNAT pool exists for xlated.Src
// and the protocol, the translated source port (ICMP: identifier) comes
// from it, xlated.SrcPort being the port to keep if it is free; otherwise
// the ports are taken as given. The reply key is the final translated
// tuple reversed, and must not be another live flow's.
//
// It returns the new flow in the Original direction, ready for Translate.
// If orig is already a live flow's key, it returns that flow and
// ErrExists; the caller can translate with it as if Lookup had found it.
func (t *Table) Insert(orig, xlated Key, now int64) (Flow, error) {
	switch orig.Proto {
	case header.ProtoTCP, header.ProtoUDP, header.ProtoICMP:
	default:
		return Flow{}, ErrInvalid
	}
	if xlated.Proto != orig.Proto {
		return Flow{}, ErrInvalid
	}
	if orig.Proto == header.ProtoICMP && (orig.SrcPort != orig.DstPort || xlated.SrcPort != xlated.DstPort) {
		return Flow{}, ErrInvalid
	}
	oa, ob := orig.pack()

	t.mu.Lock()
	defer t.mu.Unlock()
	if idx, dir, ok := t.findLocked(oa, ob); ok {
		if !t.expiredLocked(idx, now) {
			return t.handleLocked(idx, dir, now), ErrExists
		}
		t.removeLocked(idx)
		t.expired.Add(1)
	}
	if int(t.live.Load()) >= t.max {
		if now >= t.fullReclaimAt {
			t.expired.Add(uint64(t.sweepLocked(0, t.hiwater, now)))
			t.fullReclaimAt = now + reclaimInterval
		}
		if int(t.live.Load()) >= t.max {
			t.full.Add(1)
			return Flow{}, ErrTableFull
		}
	}

	idx := t.allocLocked()
	var p *pool
	if xlated.Src != orig.Src {
		p = t.poolByKey[poolKey{xlated.Src, orig.Proto}]
	}
	reply := xlated.Reverse()
	var port uint16
	if p != nil {
		sp := p.spanFor(orig.Src)
		hint := xlated.SrcPort
		for attempt := 0; ; attempt++ {
			var ok bool
			port, ok = t.allocPortLocked(p, sp, hint, orig, reply, idx, now)
			if !ok {
				if sp != &p.all {
					sp.exhausted++
				}
				p.all.exhausted++
				t.exhausted.Add(1)
				t.freeLocked(idx)
				return Flow{}, ErrPoolExhausted
			}
			reply.DstPort = port
			if orig.Proto == header.ProtoICMP {
				reply.SrcPort = port
			}
			if reply != orig && t.vacantLocked(reply, now) {
				break
			}
			// The tuple with this port is some other flow's (an inbound
			// DNAT flow to this very VIP and port, say): try the next
			// port, as netfilter's nf_nat_used_tuple does.
			p.release(port, reply.Src)
			if attempt == 8 {
				t.cf.Add(1)
				t.freeLocked(idx)
				return Flow{}, ErrConflict
			}
			hint = 0
		}
	} else {
		if reply == orig {
			t.freeLocked(idx)
			return Flow{}, ErrInvalid
		}
		if !t.vacantLocked(reply, now) {
			t.cf.Add(1)
			t.freeLocked(idx)
			return Flow{}, ErrConflict
		}
	}

	fl := &t.flows[idx]
	ra, rb := reply.pack()
	fl.key[Original][0].Store(oa)
	fl.key[Original][1].Store(ob)
	fl.key[Reply][0].Store(ra)
	fl.key[Reply][1].Store(rb)
	fl.lastSeen.Store(now)
	for d := range 2 {
		fl.ctr[d].pkts.Store(0)
		fl.ctr[d].bytes.Store(0)
	}
	fl.created = now
	fl.pool, fl.port = 0, 0
	if p != nil {
		fl.pool, fl.port = p.id+1, port
	}
	// Publish: the flow is live (odd generation) before any slot points
	// at it, so a reader that finds a slot finds a whole flow.
	gs := (fl.gs.Load()>>32 + 1) << 32
	fl.gs.Store(gs | uint64(StateNew))
	t.indexInsert(oa, ob, idx, Original)
	t.indexInsert(ra, rb, idx, Reply)
	t.live.Add(1)
	t.created.Add(1)
	return Flow{f: fl, gs: gs, now: now, ka: oa, kb: ob, ta: ra, tb: rb, dir: Original}, nil
}

// allocPortLocked picks a port of span sp of p for flow idx, whose first
// packet is orig and reply key reply: a free port, first the hinted one;
// if none is free, in a pool that shares ports one that no live flow uses
// to reach the new flow's destination (sharePortLocked for TCP,
// shareAddrPortLocked for UDP), and in the others any port whose flow has
// timed out without being swept yet (reclaimOwnersLocked): an expired flow
// is gone (F17's port reuse after 4 min, 240 s, 15 s) whether or not
// Expire has run. A search that finds nothing is not made again, for the
// same destination where ports are shared, before sp.reclaimAt.
func (t *Table) allocPortLocked(p *pool, sp *span, hint uint16, orig, reply Key, idx uint32, now int64) (uint16, bool) {
	if o := p.owner[hint]; sp.inRange(hint) && p.isUsed(hint) && t.holdsLocked(o, p, hint) && t.expiredLocked(o, now) {
		t.removeLocked(o)
		t.expired.Add(1)
	}
	if port, ok := p.pick(sp, hint, idx); ok {
		return port, true
	}
	var key uint64 // what the search was for: any destination (0), or reply's source
	switch p.reuseBy {
	case reuseDst:
		key = uint64(reply.Src)<<16 | uint64(reply.SrcPort) | 1<<48
	case reuseAddr:
		key = uint64(reply.Src)<<16 | 1<<48
	}
	if sp.reclaimKey == key && now < sp.reclaimAt {
		return 0, false
	}
	var port uint16
	var ok bool
	var next int64
	switch p.reuseBy {
	case reuseDst:
		port, ok, next = t.sharePortLocked(p, sp, orig, reply, idx, now)
	case reuseAddr:
		port, ok, next = t.shareAddrPortLocked(p, sp, reply.Src, idx, now)
	default:
		next = t.reclaimOwnersLocked(p, sp, now)
		port, ok = p.pick(sp, hint, idx)
	}
	if !ok {
		sp.reclaimAt, sp.reclaimKey = next, key
	}
	return port, ok
}

// holdsLocked reports whether flow idx is live and holds port of p: the
// owner of a shared port may have gone while others hold it, and
// its entry may since serve another flow.
func (t *Table) holdsLocked(idx uint32, p *pool, port uint16) bool {
	fl := &t.flows[idx]
	return liveGen(fl.gs.Load()) && fl.pool == p.id+1 && fl.port == port
}

// reclaimOwnersLocked removes the expired flows that hold ports of sp, and
// returns the earliest time another of them can expire, at most a second
// from now (a FIN or RST shortens a flow's life without telling the pool).
func (t *Table) reclaimOwnersLocked(p *pool, sp *span, now int64) int64 {
	next := now + reclaimInterval
	for port := uint32(sp.lo); port <= uint32(sp.hi); port++ {
		if !p.isUsed(uint16(port)) {
			continue
		}
		o := p.owner[port]
		if exp := t.expiryLocked(o); exp <= now {
			t.removeLocked(o)
			t.expired.Add(1)
		} else if exp < next {
			next = exp
		}
	}
	return next
}

// sharePortLocked finds a port of span sp, every one of which is taken,
// that no live flow uses to reach the destination of reply's source
// (reuseDst), and gives it to flow idx too. A flow found expired on the way
// is removed. Ports are tried from the span's cursor, like fresh ones. If
// none is found, next is the earliest time one of the flows met can
// expire, at most a second from now.
func (t *Table) sharePortLocked(p *pool, sp *span, orig, reply Key, idx uint32, now int64) (port uint16, ok bool, next int64) {
	next = now + reclaimInterval
	for port = range sp.fromCursor() {
		reply.DstPort = port
		if reply == orig {
			continue
		}
		a, b := reply.pack()
		if o, _, found := t.findLocked(a, b); found {
			if exp := t.expiryLocked(o); exp > now {
				next = min(next, exp)
				continue
			}
			t.removeLocked(o)
			t.expired.Add(1)
		}
		if p.isUsed(port) {
			p.reuse(port, reply.Src)
		} else {
			p.take(port, idx) // the expired flow was the port's last
		}
		sp.cursor = port + 1
		return port, true, next
	}
	return 0, false, next
}

// shareAddrPortLocked finds a port of span sp, every one of which is
// taken, that no live flow uses to reach dst whatever the destination port
// (reuseAddr), and gives it to flow idx too, as sharePortLocked does for
// TCP. A port's only holder, found expired, is removed; the holders of a
// shared port are known only by count, so an expired one there waits for
// Expire. If none is found, next is the earliest time one of the single
// holders met can expire, at most a second from now.
func (t *Table) shareAddrPortLocked(p *pool, sp *span, dst header.Addr, idx uint32, now int64) (port uint16, ok bool, next int64) {
	next = now + reclaimInterval
	for port = range sp.fromCursor() {
		if _, marked := p.extra[port]; marked {
			if p.dsts[dstKey(port, dst)] > 0 {
				continue
			}
		} else {
			o := p.owner[port]
			if exp := t.expiryLocked(o); exp <= now {
				t.removeLocked(o)
				t.expired.Add(1)
				p.take(port, idx)
				sp.cursor = port + 1
				return port, true, next
			} else if t.dstLocked(o) == dst {
				next = min(next, exp)
				continue
			}
			p.mark(port, t.dstLocked(o))
		}
		p.reuse(port, dst)
		sp.cursor = port + 1
		return port, true, next
	}
	return 0, false, next
}

// dstLocked is where flow idx goes: its reply's source.
func (t *Table) dstLocked(idx uint32) header.Addr {
	return header.Addr(t.flows[idx].key[Reply][0].Load() >> 32)
}

// vacantLocked reports whether no live flow has key k, removing an expired
// one that does.
func (t *Table) vacantLocked(k Key, now int64) bool {
	a, b := k.pack()
	idx, _, ok := t.findLocked(a, b)
	if !ok {
		return true
	}
	if !t.expiredLocked(idx, now) {
		return false
	}
	t.removeLocked(idx)
	t.expired.Add(1)
	return true
}

func (t *Table) expiryLocked(idx uint32) int64 {
	fl := &t.flows[idx]
	return fl.lastSeen.Load() + t.timeouts[fl.gs.Load()&7].Load()
}

func (t *Table) expiredLocked(idx uint32, now int64) bool { return t.expiryLocked(idx) <= now }

func (t *Table) handleLocked(idx uint32, dir Dir, now int64) Flow {
	fl := &t.flows[idx]
	return Flow{
		f: fl, gs: fl.gs.Load(), now: now, dir: dir,
		ka: fl.key[dir][0].Load(), kb: fl.key[dir][1].Load(),
		ta: fl.key[1-dir][0].Load(), tb: fl.key[1-dir][1].Load(),
	}
}

// allocLocked reserves a slab entry; the caller checked the table is not
// full.
func (t *Table) allocLocked() uint32 {
	if t.free != noFlow {
		idx := t.free
		t.free = t.flows[idx].next
		return idx
	}
	t.hiwater++
	return t.hiwater - 1
}

// freeLocked returns an entry that was reserved but never published.
func (t *Table) freeLocked(idx uint32) {
	t.flows[idx].next = t.free
	t.free = idx
}

// removeLocked unpublishes a live flow, gives back its port and frees its
// entry.
func (t *Table) removeLocked(idx uint32) {
	fl := &t.flows[idx]
	if fn := t.onRemove.Load(); fn != nil {
		(*fn)(t.infoLocked(idx, t.clock.Now()))
	}
	for d := range Dir(2) {
		t.indexDelete(fl.key[d][0].Load(), fl.key[d][1].Load(), idx, d)
	}
	if fl.pool != 0 {
		t.pools[fl.pool-1].release(fl.port, t.dstLocked(idx))
		fl.pool = 0
	}
	fl.gs.Store((fl.gs.Load()>>32 + 1) << 32)
	t.freeLocked(idx)
	t.live.Add(-1)
}

// sweepLocked removes the expired flows among slab entries [from, to).
func (t *Table) sweepLocked(from, to uint32, now int64) int {
	n := 0
	for i := from; i < to; i++ {
		if liveGen(t.flows[i].gs.Load()) && t.expiredLocked(i, now) {
			t.removeLocked(i)
			n++
		}
	}
	return n
}

// Expire removes every flow past its timeout, freeing its SNAT port, and
// returns how many. The dataplane calls it from a timer; between calls,
// Lookup and Insert already treat expired flows as gone. It holds the
// mutex for sweepChunk entries at a time.
func (t *Table) Expire() int {
	now := t.clock.Now()
	n := 0
	t.inChunks(func(from, to uint32) { n += t.sweepLocked(from, to, now) })
	t.expired.Add(uint64(n))
	return n
}

// inChunks calls f for the slab's used entries sweepChunk at a time,
// [from, to), holding the mutex for each call and releasing it between.
func (t *Table) inChunks(f func(from, to uint32)) {
	for from := uint32(0); ; from += sweepChunk {
		t.mu.Lock()
		hw := t.hiwater
		if from >= hw {
			t.mu.Unlock()
			return
		}
		f(from, min(from+sweepChunk, hw))
		t.mu.Unlock()
	}
}

// findLocked finds the live flow with packed key (a, b).
func (t *Table) findLocked(a, b uint64) (uint32, Dir, bool) {
	h := t.hash(a, b)
	tag := uint32(h)
	for i := t.home(h); ; i = t.next(i) {
		w := t.slots[i].Load()
		if w == 0 {
			return 0, 0, false
		}
		if uint32(w) != tag {
			continue
		}
		idx := uint32(w>>slotIdxShift) & slotIdxMask
		dir := Dir(w >> slotDirShift & 1)
		fl := &t.flows[idx]
		if fl.key[dir][0].Load() == a && fl.key[dir][1].Load() == b {
			return idx, dir, true
		}
	}
}

// indexInsert adds (a, b) -> (idx, dir) in the first empty slot of its
// chain. A single store publishes it; readers never see half a slot.
func (t *Table) indexInsert(a, b uint64, idx uint32, dir Dir) {
	h := t.hash(a, b)
	i := t.home(h)
	for t.slots[i].Load() != 0 {
		i = t.next(i)
	}
	t.slots[i].Store(slotUsed | uint64(dir)<<slotDirShift | uint64(idx)<<slotIdxShift | uint64(uint32(h)))
}

// indexDelete removes the slot of (a, b) -> (idx, dir) by backward-shift
// deletion (Knuth 6.4 algorithm R): the entries after it in its cluster
// that may move back do, so no tombstones build up and probe chains stay
// as short as the load factor makes them, with no rehash ever. A reader
// probing the cluster meanwhile can miss an entry that moves past it; seq
// tells it to look again.
func (t *Table) indexDelete(a, b uint64, idx uint32, dir Dir) {
	h := t.hash(a, b)
	want := uint64(dir)<<slotDirShift | uint64(idx)<<slotIdxShift | uint64(uint32(h))
	i := t.home(h)
	for t.slots[i].Load()&^slotUsed != want {
		i = t.next(i)
	}
	t.seq.Add(1)
	for {
		j := i
		for {
			j = t.next(j)
			w := t.slots[j].Load()
			if w == 0 {
				t.slots[i].Store(0)
				t.seq.Add(1)
				return
			}
			fl := &t.flows[uint32(w>>slotIdxShift)&slotIdxMask]
			d := w >> slotDirShift & 1
			home := t.home(t.hash(fl.key[d][0].Load(), fl.key[d][1].Load()))
			// w may fill the hole at i unless its home lies cyclically in
			// (i, j]: then a probe from home would never pass i.
			if t.dist(home, j) >= t.dist(i, j) {
				t.slots[i].Store(w)
				i = j
				break
			}
		}
	}
}

// FlowInfo is a copy of one flow for `emulator flows`.
type FlowInfo struct {
	Orig     Key       // as the initiator sent it: 10.0.1.6:40000 -> 203.0.113.10:80
	Reply    Key       // as the reply arrives: 203.0.113.10:80 -> 192.23.1.2:40000
	State    State     // TCP state; UDP and ICMP: new until a reply is seen
	Created  int64     // clock time of Insert
	LastSeen int64     // clock time of the latest packet (to within a millisecond)
	Age      int64     // nanoseconds since Created, at the time of the copy
	Packets  [2]uint64 // by Dir
	Bytes    [2]uint64 // by Dir, IP headers included
}

// Translated returns the original direction's tuple after translation:
// 192.23.1.2:40000 -> 203.0.113.10:80 for the SNAT flow of Orig's example.
func (fi FlowInfo) Translated() Key { return fi.Reply.Reverse() }

// Flows returns a copy of every live flow, in no particular order. It
// holds the mutex sweepChunk entries at a time, so flows created or removed
// during the call may or may not be in it.
func (t *Table) Flows() []FlowInfo {
	now := t.clock.Now()
	out := make([]FlowInfo, 0, t.live.Load())
	t.inChunks(func(from, to uint32) {
		for i := from; i < to; i++ {
			if !liveGen(t.flows[i].gs.Load()) || t.expiredLocked(i, now) {
				continue
			}
			out = append(out, t.infoLocked(i, now))
		}
	})
	return out
}

// infoLocked copies flow idx.
func (t *Table) infoLocked(idx uint32, now int64) FlowInfo {
	fl := &t.flows[idx]
	return FlowInfo{
		Orig:     unpack(fl.key[Original][0].Load(), fl.key[Original][1].Load()),
		Reply:    unpack(fl.key[Reply][0].Load(), fl.key[Reply][1].Load()),
		State:    State(fl.gs.Load() & 0xff),
		Created:  fl.created,
		LastSeen: fl.lastSeen.Load(),
		Age:      now - fl.created,
		Packets:  [2]uint64{fl.ctr[0].pkts.Load(), fl.ctr[1].pkts.Load()},
		Bytes:    [2]uint64{fl.ctr[0].bytes.Load(), fl.ctr[1].bytes.Load()},
	}
}
