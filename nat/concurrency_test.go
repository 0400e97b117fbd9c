package nat

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
)

// TestConcurrentLookups runs, under -race, goroutines that look up and
// translate both directions of a set of established flows while another
// goroutine inserts, closes and sweeps other flows in the same table: the
// dataplane's goroutines against its timer. An established flow must
// never be missed or read half-written, whatever the writer does.
func TestConcurrentLookups(t *testing.T) {
	const (
		stable  = 64
		readers = 4
		rounds  = 200 // writer rounds, a fake second each: fewer than 240, so stable flows never idle out
		churn   = 60  // flows created and killed per round; with the 64 stable ones the index is at its full load of 1/2
	)
	tbl, clk := newTable(t, Config{MaxFlows: 128, Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	type pair struct{ orig, reply Key }
	var flows []pair
	for i := range stable {
		k := tcpKey(w1, echo, uint16(20000+i), 80)
		f, err := tbl.Insert(k, snat(k, vip1), tbl.Now())
		if err != nil {
			t.Fatal(err)
		}
		flows = append(flows, pair{k, f.Translated().Reverse()})
	}
	// Packets are built here: gopacket is not for concurrent use in tests
	// that count on t.Fatal from the test goroutine.
	pkts := make([][2][]byte, stable)
	for i, p := range flows {
		pkts[i] = [2][]byte{tcpPkt(t, p.orig, header.TCPFlagACK, "data"), tcpPkt(t, p.reply, header.TCPFlagACK, "data")}
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan string, readers+1)
	for r := range readers {
		dir := Dir(r % 2) // original and reply on different goroutines, as in the dataplane
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128)
			for n := 0; !stop.Load() || n == 0; n++ {
				for i, p := range flows {
					k, want := p.orig, p.reply.Reverse()
					if dir == Reply {
						k, want = p.reply, p.orig.Reverse()
					}
					f, ok := tbl.Lookup(k, tbl.Now())
					if !ok {
						errs <- "established flow " + k.String() + " missed during churn"
						return
					}
					if f.Dir() != dir || f.Translated() != want {
						errs <- "flow " + k.String() + " read as " + f.Translated().String()
						return
					}
					pkt := buf[:len(pkts[i][dir])]
					copy(pkt, pkts[i][dir])
					ip, _ := header.ParseIPv4(pkt)
					f.Translate(ip, nil)
					if got, _ := KeyOf(ip); got != want {
						errs <- "packet translated to " + got.String() + ", want " + want.String()
						return
					}
				}
				// Churn flows may come and go; when found they must be whole.
				for p := range uint16(churn) {
					k := tcpKey(w2, echo, 30000+p, 80)
					if f, ok := tbl.Lookup(k, tbl.Now()); ok && (f.Translated().Src != vip1 || f.Translated().Dst != echo || f.Translated().SrcPort == 0) {
						errs <- "churn flow read torn: " + f.Translated().String()
						return
					}
				}
			}
		}()
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop.Store(true)
		rst := tcpPkt(t, tcpKey(w2, echo, 0, 80), header.TCPFlagRST, "")
		for range rounds {
			for p := range uint16(churn) {
				k := tcpKey(w2, echo, 30000+p, 80)
				f, err := tbl.Insert(k, snat(k, vip1), tbl.Now())
				if err != nil && !errors.Is(err, ErrExists) {
					errs <- "churn insert: " + err.Error()
					return
				}
				if err == nil && p%4 != 0 {
					// Close the new flow: 15 s to live, so the sweeps
					// remove flows and their slots all along.
					pkt := append([]byte(nil), rst...)
					ip, _ := header.ParseIPv4(pkt)
					f.Translate(ip, nil)
				}
			}
			clk.Advance(time.Second)
			tbl.Expire()
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if s := tbl.Stats(); s.Expired == 0 {
		t.Errorf("the writer expired nothing (%+v); the test did not churn", s)
	}
}

// TestConcurrentFIFOChurn removes flows oldest first while readers look up
// younger ones. Old flows sit early in the probe chains of younger ones, so
// every removal shifts young entries back under the readers' feet: the
// case the index's sequence counter exists for. (With the retry taken out
// of Lookup, this test sees a few misses per million lookups.)
func TestConcurrentFIFOChurn(t *testing.T) {
	const window = 120 // live flows: 240 keys in 512 slots, near the index's full load of 1/2
	tbl, _ := newTable(t, Config{MaxFlows: 128})
	key := func(i uint64) Key { return tcpKey(addr(10, 0, byte(i>>16), byte(i>>8)), echo, uint16(i), 80) }
	// Flows lo..hi-1 are live; a reader that misses flow i while lo <= i
	// both before and after its lookup missed a live flow.
	var lo atomic.Uint64
	for i := range uint64(window) {
		tbl.Insert(key(i), key(i), tbl.Now())
	}
	var stop atomic.Bool
	var misses, lookups atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				l := lo.Load()
				for i := l + 8; i < l+window-8; i++ {
					lookups.Add(1)
					if _, ok := tbl.Lookup(key(i), tbl.Now()); !ok && lo.Load() <= i {
						misses.Add(1)
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	removed := 0
	for l := uint64(0); time.Now().Before(deadline); l++ {
		if _, err := tbl.Insert(key(l+window), key(l+window), tbl.Now()); err != nil {
			t.Fatal(err)
		}
		lo.Store(l + 1)
		tbl.mu.Lock()
		if idx, _, ok := tbl.findLocked(key(l).pack()); ok {
			tbl.removeLocked(idx)
			removed++
		}
		tbl.mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
	if misses.Load() != 0 {
		t.Errorf("%d of %d lookups missed a live flow while %d older flows were removed", misses.Load(), lookups.Load(), removed)
	}
	t.Logf("%d lookups, %d removals", lookups.Load(), removed)
}
