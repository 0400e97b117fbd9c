package nat

import (
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/aseemu/emulator/dataplane/header"
)

// established sets up a table with n flows plus one SNAT flow whose SYN
// and SYN-ACK have passed, and returns the original and reply packets of
// the latter: the dataplane's per-packet case.
func established(t testing.TB, n int) (*Table, []byte, []byte) {
	t.Helper()
	tbl, _ := newTable(t, Config{MaxFlows: n + 1, Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	for i := range n {
		k := tcpKey(addr(10, 1, byte(i>>16), byte(i>>8)), echo, uint16(i), 443)
		if _, err := tbl.Insert(k, k, tbl.Now()); err != nil {
			t.Fatal(err)
		}
	}
	k := tcpKey(w1, echo, 40000, 80)
	f, err := tbl.Insert(k, snat(k, vip1), tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := tcpPkt(t, k, header.TCPFlagACK|header.TCPFlagPSH, "GET / HTTP/1.1\r\n\r\n")
	back := tcpPkt(t, f.Translated().Reverse(), header.TCPFlagACK|header.TCPFlagPSH, "HTTP/1.1 200 OK\r\n\r\n")
	for _, p := range [][]byte{tcpPkt(t, k, header.TCPFlagSYN, ""), tcpPkt(t, f.Translated().Reverse(), header.TCPFlagSYN|header.TCPFlagACK, "")} {
		ip := parse(t, p)
		kk, _ := KeyOf(ip)
		g, _ := tbl.Lookup(kk, tbl.Now())
		g.Translate(ip, nil)
	}
	return tbl, out, back
}

// perPacket is the dataplane's work on one packet of an established flow:
// key, lookup, translate. buf is the packet buffer, refilled from pkt
// each time since translation changes it.
func perPacket(tbl *Table, buf, pkt []byte, vnet header.VirtioNetHdr, now int64) bool {
	copy(buf, pkt)
	ip, _ := header.ParseIPv4(buf[:len(pkt)])
	k, ok := KeyOf(ip)
	if !ok {
		return false
	}
	f, ok := tbl.Lookup(k, now)
	if !ok {
		return false
	}
	return f.Translate(ip, vnet)
}

// TestEstablishedPathAllocatesNothing is SPEC §6: the per-packet path of an
// established flow allocates nothing, in either direction, with full or
// partial checksums.
func TestEstablishedPathAllocatesNothing(t *testing.T) {
	tbl, out, back := established(t, 100)
	buf := make([]byte, 2048)
	partial := makePartial(append([]byte(nil), out...))
	for _, c := range []struct {
		name string
		pkt  []byte
		vnet header.VirtioNetHdr
	}{{"original", out, nil}, {"reply", back, nil}, {"original partial", out, partial}} {
		if !perPacket(tbl, buf, c.pkt, c.vnet, tbl.Now()) {
			t.Fatalf("%s: the established flow was not found", c.name)
		}
		if n := testing.AllocsPerRun(1000, func() { perPacket(tbl, buf, c.pkt, c.vnet, tbl.Now()) }); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", c.name, n)
		}
	}
	// The ICMP error path allocates nothing either.
	errPkt := icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, perPacketOut(tbl, out))
	ebuf := make([]byte, len(errPkt))
	if n := testing.AllocsPerRun(1000, func() {
		copy(ebuf, errPkt)
		ip, _ := header.ParseIPv4(ebuf)
		if !tbl.TranslateICMPError(ip, nil, tbl.Now()) {
			panic("ICMP error not translated")
		}
	}); n != 0 {
		t.Errorf("ICMP error: %v allocations, want 0", n)
	}
}

// perPacketOut returns out as it leaves the dataplane.
func perPacketOut(tbl *Table, out []byte) []byte {
	buf := make([]byte, len(out))
	perPacket(tbl, buf, out, nil, tbl.Now())
	return buf
}

// TestMemoryPerFlow measures what a million flows cost, the slab and the
// index (mapped outside the Go heap, so counted by their size) included,
// with runtime.MemStats, and holds it to the budget of
// 256 bytes. Three in four flows are SNAT through one of 16 VIPs (4 under
// the race detector, with a quarter of the flows), whose pools are counted
// too.
func TestMemoryPerFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts a million flows")
	}
	n := 1_000_000
	if raceEnabled {
		n = 250_000 // the race detector makes a million inserts take 15 s
	}
	perFlow := memoryPerFlow(t, n)
	t.Logf("%d flows: %.1f bytes per flow (slab %d, index %d, the rest SNAT pools and map)",
		n, perFlow, unsafe.Sizeof(flow{}), 4*unsafe.Sizeof(atomic.Uint64{}))
	if perFlow > 256 {
		t.Errorf("%.1f bytes per flow, budget 256", perFlow)
	}
}

func memoryPerFlow(t testing.TB, n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var pools []PoolConfig
	vips := (n + 64511) / 64512 // enough VIPs with 1024-65535 for every flow
	for v := range vips {
		pools = append(pools, PoolConfig{Addr: addr(192, 23, byte(v), 2), Lo: 1024, Hi: 65535})
	}
	clk := &fakeClock{}
	tbl, err := New(Config{MaxFlows: n, Clock: clk, Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := tcpKey(addr(10, byte(i>>16), byte(i>>8), byte(i)), echo, uint16(i), 443)
		x := k
		if i%4 != 0 {
			x.Src = addr(192, 23, byte(i%vips), 2)
		}
		if _, err := tbl.Insert(k, x, 0); err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if s := tbl.Stats(); s.Flows != n {
		t.Fatalf("%d flows in the table, want %d", s.Flows, n)
	}
	runtime.KeepAlive(tbl)
	// The slab and the index are mapped outside the Go heap (slab.go).
	mapped := uintptr(len(tbl.slots))*unsafe.Sizeof(tbl.slots[0]) + uintptr(len(tbl.flows))*unsafe.Sizeof(tbl.flows[0])
	return float64(after.HeapAlloc-before.HeapAlloc+uint64(mapped)) / float64(n)
}

// BenchmarkEstablished is the per-packet cost on an established SNAT flow:
// copy the packet into the buffer (a few ns; translation changes it), key,
// lookup, translate with full checksums, accounting. The table holds 100k
// other flows so the index is not all in L1.
func BenchmarkEstablished(b *testing.B) {
	for _, dir := range []string{"original", "reply"} {
		b.Run(dir, func(b *testing.B) {
			tbl, out, back := established(b, 100_000)
			pkt := out
			if dir == "reply" {
				pkt = back
			}
			buf := make([]byte, 2048)
			now := tbl.Now()
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				if !perPacket(tbl, buf, pkt, nil, now) {
					b.Fatal("miss")
				}
			}
		})
	}
	b.Run("partial", func(b *testing.B) {
		tbl, out, _ := established(b, 100_000)
		vnet := makePartial(out)
		buf := make([]byte, 2048)
		now := tbl.Now()
		b.ReportAllocs()
		for b.Loop() {
			perPacket(tbl, buf, out, vnet, now)
		}
	})
}

// BenchmarkEstablishedParallel runs the per-packet path on every P, each
// goroutine on its own packet of the same flow, half of them in the reply
// direction: the two directions of one flow on different cores, sharing
// its cache line, as in the dataplane. Time advances a microsecond per
// packet, a flow at a million packets a second each way.
func BenchmarkEstablishedParallel(b *testing.B) {
	tbl, out, back := established(b, 100_000)
	start := tbl.Now()
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		pkt := out
		if n.Add(1)%2 == 0 {
			pkt = back
		}
		buf := make([]byte, 2048)
		now := start
		for pb.Next() {
			now += 1000
			perPacket(tbl, buf, pkt, nil, now)
		}
	})
}

// BenchmarkLookupMiss is the first step of a new flow.
func BenchmarkLookupMiss(b *testing.B) {
	tbl, _, _ := established(b, 100_000)
	k := tcpKey(w2, echo, 1, 80)
	now := tbl.Now()
	for b.Loop() {
		if _, ok := tbl.Lookup(k, now); ok {
			b.Fatal("hit")
		}
	}
}

// BenchmarkInsert creates SNAT flows with a port from the pool, in a table
// that fills to 100k flows and is then emptied (emptying not timed).
func BenchmarkInsert(b *testing.B) {
	const fill = 100_000
	var pools []PoolConfig
	for v := range 4 {
		pools = append(pools, PoolConfig{Addr: addr(192, 23, byte(v), 2), Lo: 1024, Hi: 65535})
	}
	tbl, clk := newTable(b, Config{MaxFlows: fill, Pools: pools})
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i%fill == 0 && i > 0 {
			b.StopTimer()
			clk.Advance(tbl.Timeouts().Idle)
			tbl.Expire()
			b.StartTimer()
		}
		k := tcpKey(addr(10, byte(i>>16), byte(i>>8), byte(i)), echo, uint16(i), 443)
		if _, err := tbl.Insert(k, snat(k, addr(192, 23, byte(i%4), 2)), tbl.Now()); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkExpire is the sweep's cost per flow removed.
func BenchmarkExpire(b *testing.B) {
	const n = 100_000
	tbl, clk := newTable(b, Config{MaxFlows: n})
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for i := range n {
			k := tcpKey(addr(10, byte(i>>16), byte(i>>8), byte(i)), echo, uint16(i), 443)
			tbl.Insert(k, k, tbl.Now())
		}
		clk.Advance(tbl.Timeouts().Idle)
		b.StartTimer()
		if got := tbl.Expire(); got != n {
			b.Fatalf("expired %d, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/flow")
}

// BenchmarkMemoryPerFlow reports the bytes a flow costs at a million flows.
func BenchmarkMemoryPerFlow(b *testing.B) {
	// It measures memory, not time: one table of a million flows says it
	// all, whatever b.N is, and keeps `-benchtime=100x` in make test short.
	per := memoryPerFlow(b, 1_000_000)
	for b.Loop() {
	}
	b.ReportMetric(per, "bytes/flow")
}

// BenchmarkKeyOf, BenchmarkLookup and BenchmarkTranslate are the three
// steps of BenchmarkEstablished, for the comments that cite them.
func BenchmarkKeyOf(b *testing.B) {
	_, out, _ := established(b, 0)
	ip := parse(b, out)
	for b.Loop() {
		if _, ok := KeyOf(ip); !ok {
			b.Fatal("refused")
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	tbl, out, _ := established(b, 100_000)
	k := keyOf(b, out)
	now := tbl.Now()
	for b.Loop() {
		if _, ok := tbl.Lookup(k, now); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkTranslate rewrites the same buffer over and over; the handle
// holds the old tuple, so each pass does the full work.
func BenchmarkTranslate(b *testing.B) {
	tbl, out, _ := established(b, 0)
	ip := parse(b, out)
	f, _ := tbl.Lookup(keyOf(b, out), tbl.Now())
	for b.Loop() {
		f.Translate(ip, nil)
	}
}
