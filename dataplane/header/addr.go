package header

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// Addr is an IPv4 address as a big-endian uint32 (a.b.c.d is
// a<<24|b<<16|c<<8|d). Unlike netip.Addr it is a plain integer: comparable,
// pointer-free, and cheap to hash, mask and pack into a flow key.
type Addr uint32

// AddrFrom4 returns the address a.b.c.d for b = [4]byte{a, b, c, d}.
func AddrFrom4(b [4]byte) Addr { return Addr(binary.BigEndian.Uint32(b[:])) }

// AddrFromSlice returns the address in the first four bytes of b, which must
// hold at least four.
func AddrFromSlice(b []byte) Addr { return Addr(binary.BigEndian.Uint32(b)) }

// AddrFromNetip converts an IPv4 or IPv4-mapped IPv6 address. Any other
// address (IPv6, the zero netip.Addr) yields 0.0.0.0 rather than a panic, so
// a bad configuration value cannot take the dataplane down.
func AddrFromNetip(a netip.Addr) Addr {
	a = a.Unmap()
	if !a.Is4() {
		return 0
	}
	return AddrFrom4(a.As4())
}

// As4 returns the address as four bytes in network order.
func (a Addr) As4() [4]byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(a))
	return b
}

// Netip returns a as a netip.Addr.
func (a Addr) Netip() netip.Addr { return netip.AddrFrom4(a.As4()) }

// Put writes a into the first four bytes of b in network order.
func (a Addr) Put(b []byte) { binary.BigEndian.PutUint32(b, uint32(a)) }

// String returns a in dotted-quad form.
func (a Addr) String() string {
	return string(a.AppendTo(make([]byte, 0, len("255.255.255.255"))))
}

// AppendTo appends the dotted-quad form of a to b, for log and capture
// writers that reuse a buffer.
func (a Addr) AppendTo(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(a>>24), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(a>>16&0xff), 10)
	b = append(b, '.')
	b = strconv.AppendUint(b, uint64(a>>8&0xff), 10)
	b = append(b, '.')
	return strconv.AppendUint(b, uint64(a&0xff), 10)
}

// Mask returns a with all but its leading bits bits cleared; bits outside
// [0, 32] are clamped.
func (a Addr) Mask(bits int) Addr {
	switch {
	case bits <= 0:
		return 0
	case bits >= 32:
		return a
	}
	return a &^ (1<<(32-bits) - 1)
}

// IsMulticast reports whether a is in 224.0.0.0/4.
func (a Addr) IsMulticast() bool { return a>>28 == 0xe }

// IsBroadcast reports whether a is the limited broadcast 255.255.255.255.
// Directed (subnet) broadcasts depend on the topology and are not known here.
func (a Addr) IsBroadcast() bool { return a == 0xffffffff }

// IsUnicastSource reports whether a can be the source of a packet from a
// single host, the test RFC 1812 4.3.2.7 applies before answering with an
// ICMP error: not in 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4 or 240.0.0.0/4.
func (a Addr) IsUnicastSource() bool {
	top := a >> 24
	return top != 0 && top != 127 && top < 224
}
