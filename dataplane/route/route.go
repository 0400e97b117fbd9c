// Package route is the dataplane's compiled longest-prefix-match table.
//
// A Table keeps one hash map per prefix length in use and probes them from
// the longest length down, so a lookup costs at most one map probe per
// distinct length (a handful in any lab) and a host route costs exactly one.
// Tables are built once and then only read; the dataplane swaps in a new one
// to change routes, so lookups need no lock.
package route

import (
	"net/netip"
	"sort"

	"github.com/aseemu/emulator/dataplane/header"
)

// Table maps IPv4 prefixes to values of type V.
type Table[V any] struct {
	lens []int                 // prefix lengths in use, longest first
	byLn [33]map[header.Addr]V // masked prefix address -> value, per length
}

// Insert adds or replaces the value for p. Inserting is for building a
// table; do not insert into a table that others are reading.
func (t *Table[V]) Insert(p netip.Prefix, v V) {
	p = p.Masked()
	n := p.Bits()
	if t.byLn[n] == nil {
		t.byLn[n] = make(map[header.Addr]V)
		t.lens = append(t.lens, n)
		sort.Sort(sort.Reverse(sort.IntSlice(t.lens)))
	}
	t.byLn[n][header.AddrFromNetip(p.Addr())] = v
}

// Lookup returns the value of the longest prefix that contains a.
func (t *Table[V]) Lookup(a header.Addr) (v V, bits int, ok bool) {
	for _, n := range t.lens {
		if v, ok = t.byLn[n][a&mask(n)]; ok {
			return v, n, true
		}
	}
	return v, 0, false
}

// Len is the number of prefixes in the table.
func (t *Table[V]) Len() int {
	n := 0
	for _, m := range t.byLn {
		n += len(m)
	}
	return n
}

func mask(bits int) header.Addr {
	if bits == 0 {
		return 0
	}
	return header.Addr(^uint32(0) << (32 - bits))
}
