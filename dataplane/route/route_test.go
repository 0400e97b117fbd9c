package route

import (
	"net/netip"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
)

func addr(s string) header.Addr { return header.AddrFromNetip(netip.MustParseAddr(s)) }

func TestLongestPrefixWins(t *testing.T) {
	var tb Table[string]
	tb.Insert(netip.MustParsePrefix("10.0.0.0/16"), "vnet")
	tb.Insert(netip.MustParsePrefix("10.0.1.0/26"), "subnet")
	tb.Insert(netip.MustParsePrefix("10.0.1.6/32"), "host")
	tb.Insert(netip.MustParsePrefix("0.0.0.0/0"), "default")
	for _, c := range []struct {
		a    string
		want string
		bits int
	}{
		{"10.0.1.6", "host", 32},
		{"10.0.1.7", "subnet", 26},
		{"10.0.1.64", "vnet", 16},
		{"10.1.0.1", "default", 0},
	} {
		v, bits, ok := tb.Lookup(addr(c.a))
		if !ok || v != c.want || bits != c.bits {
			t.Errorf("Lookup(%s) = %q /%d %v, want %q /%d", c.a, v, bits, ok, c.want, c.bits)
		}
	}
	if tb.Len() != 4 {
		t.Errorf("Len = %d, want 4", tb.Len())
	}
}

func TestNoDefaultMeansNoRoute(t *testing.T) {
	var tb Table[int]
	tb.Insert(netip.MustParsePrefix("10.0.1.5/26"), 1) // not masked: Insert masks
	if v, _, ok := tb.Lookup(addr("10.0.1.1")); !ok || v != 1 {
		t.Errorf("an unmasked prefix was not matched")
	}
	if _, _, ok := tb.Lookup(addr("8.8.8.8")); ok {
		t.Errorf("8.8.8.8 matched with no covering prefix")
	}
	if _, _, ok := (&Table[int]{}).Lookup(addr("1.2.3.4")); ok {
		t.Errorf("empty table matched")
	}
}

func TestInsertReplaces(t *testing.T) {
	var tb Table[int]
	p := netip.MustParsePrefix("192.23.1.2/32")
	tb.Insert(p, 1)
	tb.Insert(p, 2)
	if v, _, _ := tb.Lookup(addr("192.23.1.2")); v != 2 || tb.Len() != 1 {
		t.Errorf("got %d (len %d), want 2 (len 1)", v, tb.Len())
	}
}

func BenchmarkLookupHost(b *testing.B) {
	var tb Table[int32]
	for i := 0; i < 1000; i++ {
		tb.Insert(netip.PrefixFrom(header.Addr(0x0a000000+uint32(i)).Netip(), 32), int32(i))
	}
	tb.Insert(netip.MustParsePrefix("10.0.0.0/16"), -1)
	a := addr("10.0.1.6")
	for b.Loop() {
		tb.Lookup(a)
	}
}
