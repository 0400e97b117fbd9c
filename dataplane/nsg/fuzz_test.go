package nsg

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// byteSource is a rand.Source that reads the fuzzer's bytes, so that the
// random lab generator's choices are the fuzzer's, then goes on with
// splitmix64: a source stuck at one value would make rand's rejection
// sampling loop forever.
type byteSource struct {
	b []byte
	s uint64
}

func (s *byteSource) Uint64() uint64 {
	if len(s.b) >= 8 {
		v := binary.LittleEndian.Uint64(s.b)
		s.b = s.b[8:]
		return v
	}
	s.b = nil
	s.s += 0x9e3779b97f4a7c15
	z := s.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// FuzzCheck builds a lab whose NSGs' rules (up to 8 a direction: tags,
// prefixes, single addresses, port lists and ranges, every protocol) and
// tuples come from the input, and checks the compiled lookup against the
// linear reference for every node and direction: same verdict, same
// deciding NSG and rule, same steps. Nothing may panic.
func FuzzCheck(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("a few rules and some tuples, chosen by these bytes"))
	f.Add(make([]byte, 512))
	for seed := uint64(1); seed <= 3; seed++ {
		l := newRandomLab(seed)
		b := make([]byte, 2048)
		for i := range b {
			b[i] = byte(l.rng.Uint32())
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newRandomLab(0) // for its addresses and ports; the choices are data's
		l.rng = rand.New(&byteSource{b: data})
		top := l.topology(t, 8)
		s, err := Compile(top)
		if err != nil {
			t.Fatalf("Compile: %v", err)
		}
		ref := newReference(top)
		for range 16 {
			tp := l.tuple()
			for ni, n := range top.Nodes {
				for _, dir := range []Direction{Inbound, Outbound} {
					want, steps := ref.check(n, dir, tp)
					// Check, the dataplane's call (Verify is Check without the hit counters).
					if msg := diffVerdict(s.NodeAt(ni).Check(dir, tp), want, steps); msg != "" {
						t.Fatalf("node %s, %s %+v: %s", n.Name, dir, tp, msg)
					}
				}
			}
		}
	})
}
