// Package route is the dataplane's compiled longest-prefix-match table.
//
// A Table keeps one hash table per prefix length in use and probes them from
// the longest length down, so a lookup costs at most one probe per distinct
// length (a handful in any lab) and a host route costs exactly one. Tables
// are built once and then only read; the dataplane swaps in a new one to
// change routes, so lookups need no lock.
package route

import (
	"net/netip"
	"sort"

	"github.com/aseemu/emulator/dataplane/header"
)

// Table maps IPv4 prefixes to values of type V.
type Table[V any] struct {
	levels []level[V] // one per prefix length in use, longest first
	n      int
}

// level holds the prefixes of one length in an open-addressing hash table
// with linear probing, at most half full. It replaced a Go map per length:
// the map's generic hashing and group matching were 12% of
// BenchmarkForward's profile (mapaccess2_fast32 + memhash32), and a lookup
// here is a multiply, a shift and usually one compare.
type level[V any] struct {
	bits  int
	mask  header.Addr // the prefix mask of bits
	shift uint8       // 32 - log2(len(slots))
	slots []slot[V]
	used  int
}

type slot[V any] struct {
	key  header.Addr
	full bool
	val  V
}

// Insert adds or replaces the value for p. Inserting is for building a
// table; do not insert into a table that others are reading.
func (t *Table[V]) Insert(p netip.Prefix, v V) {
	p = p.Masked()
	l := t.level(p.Bits())
	if l.insert(header.AddrFromNetip(p.Addr()), v) {
		t.n++
	}
}

// level returns the level of prefix length bits, creating it.
func (t *Table[V]) level(bits int) *level[V] {
	for i := range t.levels {
		if t.levels[i].bits == bits {
			return &t.levels[i]
		}
	}
	t.levels = append(t.levels, level[V]{bits: bits, mask: mask(bits)})
	sort.Slice(t.levels, func(i, j int) bool { return t.levels[i].bits > t.levels[j].bits })
	for i := range t.levels {
		if t.levels[i].bits == bits {
			l := &t.levels[i]
			l.resize(8)
			return l
		}
	}
	panic("unreachable")
}

// Lookup returns the value of the longest prefix containing a, and that
// prefix's length.
func (t *Table[V]) Lookup(a header.Addr) (v V, bits int, ok bool) {
	for i := range t.levels {
		l := &t.levels[i]
		if v, ok = l.get(a & l.mask); ok {
			return v, l.bits, true
		}
	}
	return v, 0, false
}

// Len returns the number of prefixes in the table.
func (t *Table[V]) Len() int { return t.n }

// hash spreads an address over the table's slots (Fibonacci hashing: the
// top bits of the product are well mixed even for consecutive addresses).
func (l *level[V]) hash(a header.Addr) uint32 {
	return (uint32(a) * 0x9e3779b1) >> l.shift
}

func (l *level[V]) get(a header.Addr) (V, bool) {
	m := uint32(len(l.slots) - 1)
	for i := l.hash(a); ; i = (i + 1) & m {
		s := &l.slots[i]
		if !s.full {
			var zero V
			return zero, false
		}
		if s.key == a {
			return s.val, true
		}
	}
}

// insert stores v under a and reports whether a is new.
func (l *level[V]) insert(a header.Addr, v V) bool {
	if 2*(l.used+1) > len(l.slots) {
		l.resize(2 * len(l.slots))
	}
	m := uint32(len(l.slots) - 1)
	for i := l.hash(a); ; i = (i + 1) & m {
		s := &l.slots[i]
		if !s.full {
			*s = slot[V]{key: a, full: true, val: v}
			l.used++
			return true
		}
		if s.key == a {
			s.val = v
			return false
		}
	}
}

// resize rehashes into n slots, a power of two.
func (l *level[V]) resize(n int) {
	old := l.slots
	l.slots = make([]slot[V], n)
	l.used = 0
	l.shift = uint8(32 - log2(n))
	for _, s := range old {
		if s.full {
			l.insert(s.key, s.val)
		}
	}
}

func log2(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}

func mask(bits int) header.Addr {
	if bits == 0 {
		return 0
	}
	return header.Addr(^uint32(0) << (32 - bits))
}
