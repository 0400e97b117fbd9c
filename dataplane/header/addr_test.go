package header

import (
	"net/netip"
	"testing"
)

func TestAddr(t *testing.T) {
	a := AddrFrom4([4]byte{192, 23, 1, 2})
	if uint32(a) != 192<<24|23<<16|1<<8|2 {
		t.Errorf("AddrFrom4(192.23.1.2) = %#08x, want %#08x", uint32(a), 192<<24|23<<16|1<<8|2)
	}
	if s := a.String(); s != "192.23.1.2" {
		t.Errorf("String() = %q, want 192.23.1.2", s)
	}
	if got := AddrFromSlice([]byte{192, 23, 1, 2, 99}); got != a {
		t.Errorf("AddrFromSlice = %v, want %v", got, a)
	}
	if got, want := a.Netip(), netip.MustParseAddr("192.23.1.2"); got != want {
		t.Errorf("Netip() = %v, want %v", got, want)
	}
	for _, s := range []string{"192.23.1.2", "::ffff:192.23.1.2"} {
		if got := AddrFromNetip(netip.MustParseAddr(s)); got != a {
			t.Errorf("AddrFromNetip(%s) = %v, want %v", s, got, a)
		}
	}
	for _, in := range []netip.Addr{{}, netip.MustParseAddr("2001:db8::1")} {
		if got := AddrFromNetip(in); got != 0 {
			t.Errorf("AddrFromNetip(%v) = %v, want 0.0.0.0", in, got)
		}
	}
	var b [5]byte
	a.Put(b[1:])
	if b != [5]byte{0, 192, 23, 1, 2} {
		t.Errorf("Put wrote %v, want [0 192 23 1 2]", b)
	}
	for _, s := range []string{"0.0.0.0", "255.255.255.255", "10.0.1.6", "1.2.3.4"} {
		if got := AddrFromNetip(netip.MustParseAddr(s)).String(); got != s {
			t.Errorf("String round trip of %s gave %s", s, got)
		}
	}
}

func TestAddrMask(t *testing.T) {
	a := AddrFrom4([4]byte{10, 0, 1, 6})
	for _, tc := range []struct {
		bits int
		want string
	}{{-1, "0.0.0.0"}, {0, "0.0.0.0"}, {8, "10.0.0.0"}, {24, "10.0.1.0"}, {31, "10.0.1.6"}, {32, "10.0.1.6"}, {40, "10.0.1.6"}} {
		if got := a.Mask(tc.bits).String(); got != tc.want {
			t.Errorf("%v.Mask(%d) = %s, want %s", a, tc.bits, got, tc.want)
		}
	}
}

func TestAddrClasses(t *testing.T) {
	for _, tc := range []struct {
		addr                  string
		multicast, bcast, uni bool
	}{
		{"10.0.1.6", false, false, true},
		{"0.0.0.0", false, false, false},
		{"0.1.2.3", false, false, false},
		{"127.0.0.1", false, false, false},
		{"224.0.0.1", true, false, false},
		{"239.255.255.255", true, false, false},
		{"240.0.0.1", false, false, false},
		{"255.255.255.255", false, true, false},
		{"223.255.255.255", false, false, true},
	} {
		a := AddrFromNetip(netip.MustParseAddr(tc.addr))
		if a.IsMulticast() != tc.multicast || a.IsBroadcast() != tc.bcast || a.IsUnicastSource() != tc.uni {
			t.Errorf("%s: multicast %v broadcast %v unicast source %v, want %v %v %v",
				tc.addr, a.IsMulticast(), a.IsBroadcast(), a.IsUnicastSource(), tc.multicast, tc.bcast, tc.uni)
		}
	}
}
