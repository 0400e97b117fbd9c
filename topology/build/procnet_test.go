//go:build linux

package build

import "testing"

// /proc/net/dev as Linux 6.18 writes it; eth0's transmit drop count is 1500.
const procNetDev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0:    1234      12    0    7    0     0          0         0    46000     500    3 1500    0     0       0          0
 eth10:       1       1    0    0    0     0          0         0        1       1    0   99    0     0       0          0
`

func TestTxDrop(t *testing.T) {
	for _, c := range []struct {
		ifname string
		want   uint64
		ok     bool
	}{
		{"eth0", 1500, true},
		{"eth10", 99, true},
		{"lo", 0, true},
		{"eth1", 0, false},
		{"eth", 0, false},
	} {
		got, ok := txDrop([]byte(procNetDev), c.ifname)
		if got != c.want || ok != c.ok {
			t.Errorf("txDrop(%s) = %d, %v; want %d, %v", c.ifname, got, ok, c.want, c.ok)
		}
	}
	if _, ok := txDrop([]byte("  eth0: 1 2 3\n"), "eth0"); ok {
		t.Error("txDrop of a short line: ok")
	}
}
