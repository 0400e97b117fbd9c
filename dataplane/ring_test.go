package dataplane

import "testing"

func TestLendFor(t *testing.T) {
	for _, c := range []struct {
		n, used     int
		big, ranOut bool
		want        int
	}{
		{ringLendBig, ringLendBig, false, true, 2 * ringLendBig}, // small packets ran out: more
		{ringBuffers, ringBuffers, false, true, ringBuffers},     // but no more than there are
		{ringBuffers, ringBuffers, true, true, ringLendBig},      // a long packet: back to the least
		{2 * ringLendBig, 40, true, false, ringLendBig},
		{ringBuffers, ringBuffers/4 - 1, false, false, ringBuffers / 2}, // a quiet round: fewer
		{ringBuffers, ringBuffers / 4, false, false, ringBuffers},
		{ringLendBig, 1, false, false, ringLendBig}, // never fewer than the least
	} {
		if got := lendFor(c.n, c.used, c.big, c.ranOut); got != c.want {
			t.Errorf("lendFor(%d, %d, big %v, ran out %v) = %d, want %d", c.n, c.used, c.big, c.ranOut, got, c.want)
		}
	}
}
