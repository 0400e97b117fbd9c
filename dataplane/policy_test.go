package dataplane

import (
	"net/netip"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
)

// F2, F15: the load balancer spreads one client's connections over the
// front-ends by the whole 5-tuple, so its source port alone moves a
// connection to another front-end. The hash once left the source port
// out of the bits a count of 2 or 4 front-ends reads, and every connection
// from a client went to one front-end.
func TestFrontEndSpreadsBySourcePort(t *testing.T) {
	client := header.AddrFromNetip(netip.MustParseAddr("198.51.100.10"))
	vip := header.AddrFromNetip(netip.MustParseAddr("192.23.1.2"))
	for _, backends := range []uint32{2, 3, 4} {
		for _, dport := range []uint16{21, 80, 443, 454} {
			count := make([]int, backends)
			const conns = 4096
			for sp := range uint16(conns) {
				k := nat.Key{Src: client, Dst: vip, SrcPort: 32768 + sp, DstPort: dport, Proto: header.ProtoTCP}
				count[frontEnd(k, int(backends))]++
			}
			// Each share within a fifth of even: a fair hash is off by
			// about 1/sqrt(conns/backends), under 5%.
			even := conns / int(backends)
			for i, n := range count {
				if n < even*4/5 || n > even*6/5 {
					t.Errorf("%d front-ends, port %d: front-end %d got %d of %d connections from one client, want about %d (all: %v)",
						backends, dport, i, n, conns, even, count)
					break
				}
			}
		}
	}
}
