package impair

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/aseemu/emulator/topology"
)

// recorder is a Sink that keeps what it is given, and when.
type recorder struct {
	mu   sync.Mutex
	pkts [][]byte
	at   []time.Time
	got  chan struct{}
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 100000)} }

func (r *recorder) Deliver(pkts [][]byte) {
	r.mu.Lock()
	for _, p := range pkts {
		r.pkts = append(r.pkts, bytes.Clone(p))
		r.at = append(r.at, time.Now())
	}
	r.mu.Unlock()
	for range pkts {
		r.got <- struct{}{}
	}
}

// wait waits for n deliveries in all.
func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("only %d of %d packets delivered", len(r.pkts), n)
		}
	}
}

// numbered is a packet of n bytes carrying i.
func numbered(i, n int) []byte {
	b := make([]byte, n)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

func numberOf(b []byte) int { return int(binary.BigEndian.Uint32(b)) }

func send(t *testing.T, l *Line, pkt []byte, to Sink) {
	t.Helper()
	if r := l.Send(pkt, to); r != Sent {
		t.Fatalf("Send = %d, want Sent", r)
	}
}

// A packet waits the delay, never less, and packets keep their order
// without jitter, short ones and super-packets alike. The line holds its
// own copy: the sender's buffer is reused at once.
func TestDelayKeepsOrderAndCopies(t *testing.T) {
	const delay = 30 * time.Millisecond
	l := New(topology.Latency{Delay: delay})
	defer l.Close()
	r := newRecorder()
	buf := make([]byte, 70000)
	sent := make([]time.Time, 0, 40)
	for i := range 40 {
		n := []int{60, 1500, 2049, 65546}[i%4]
		copy(buf, numbered(i, n))
		sent = append(sent, time.Now())
		send(t, l, buf[:n], r)
		clear(buf)
	}
	r.wait(t, 40)
	for i, p := range r.pkts {
		if numberOf(p) != i || len(p) != []int{60, 1500, 2049, 65546}[i%4] {
			t.Fatalf("delivery %d is packet %d of %d bytes, want packet %d", i, numberOf(p), len(p), i)
		}
		if waited := r.at[i].Sub(sent[i]); waited < delay {
			t.Errorf("packet %d was delivered after %v, before the link's %v", i, waited, delay)
		}
	}
}

// With jitter each packet waits delay ± jitter, and a later one may pass
// an earlier one, as on netem's queue.
func TestJitterBounds(t *testing.T) {
	const delay, jitter = 20 * time.Millisecond, 15 * time.Millisecond
	l := New(topology.Latency{Delay: delay, Jitter: jitter})
	defer l.Close()
	r := newRecorder()
	sent := map[int]time.Time{}
	for i := range 200 {
		sent[i] = time.Now()
		send(t, l, numbered(i, 64), r)
	}
	r.wait(t, 200)
	reordered := false
	for k, p := range r.pkts {
		i := numberOf(p)
		if waited := r.at[k].Sub(sent[i]); waited < delay-jitter {
			t.Errorf("packet %d waited %v, less than %v - %v", i, waited, delay, jitter)
		}
		reordered = reordered || i != k
	}
	if !reordered {
		t.Errorf("200 packets with ±%v of jitter all kept their order; the jitter is not applied", jitter)
	}
}

// At a rate, the link sends one packet after another: the k-th of equal
// packets leaves no earlier than k of their transmission times.
func TestRatePaces(t *testing.T) {
	const size, rate = 1250, 1_000_000 // 10 ms a packet
	l := New(topology.Latency{Rate: rate})
	defer l.Close()
	r := newRecorder()
	start := time.Now()
	for i := range 10 {
		send(t, l, numbered(i, size), r)
	}
	r.wait(t, 10)
	for k := range r.pkts {
		if min := time.Duration(k+1) * 10 * time.Millisecond; r.at[k].Sub(start) < min {
			t.Errorf("packet %d left %v after the first was sent, before its turn at %v", k, r.at[k].Sub(start), min)
		}
	}
}

// Loss takes its share of packets, and counts them.
func TestLoss(t *testing.T) {
	for _, c := range []struct {
		loss   float64
		lo, hi int
	}{{0, 0, 0}, {100, 10000, 10000}, {30, 2500, 3500}} {
		l := New(topology.Latency{Loss: c.loss})
		r := newRecorder()
		lost := 0
		for i := range 10000 {
			switch l.Send(numbered(i, 64), r) {
			case Lost:
				lost++
			case Full:
				t.Fatal("a line without delay is full")
			}
		}
		r.wait(t, 10000-lost)
		l.Close()
		if lost < c.lo || lost > c.hi {
			t.Errorf("loss %v%%: %d of 10000 lost, want %d to %d", c.loss, lost, c.lo, c.hi)
		}
	}
}

// A line holds at most maxPackets, and maxBytes of buffers: the rest is
// dropped as a full queue drops.
func TestFull(t *testing.T) {
	l := New(topology.Latency{Delay: time.Hour})
	r := newRecorder()
	for i := range maxPackets {
		send(t, l, numbered(i, 64), r)
	}
	if got := l.Send(numbered(0, 64), r); got != Full {
		t.Errorf("Send past %d packets = %d, want Full", maxPackets, got)
	}
	if got := l.Send(make([]byte, header64K+1), r); got != Full {
		t.Errorf("Send of a packet longer than any buffer = %d, want Full", got)
	}
	l.Close()

	l = New(topology.Latency{Delay: time.Hour})
	defer l.Close()
	big := make([]byte, 65000)
	n := 0
	for l.Send(big, r) == Sent {
		n++
	}
	if n*header64K > maxBytes || (n+1)*header64K <= maxBytes {
		t.Errorf("the line took %d super-packets of %d-byte buffers, want as many as fit in %d bytes", n, header64K, maxBytes)
	}
	if got := l.Send(numbered(0, 64), r); got != Sent {
		t.Errorf("a small packet where a super-packet no longer fits = %d, want Sent", got)
	}
}

// Close drops what waits, refuses what comes after, and no packet is
// delivered once it has returned.
func TestCloseDropsWaiting(t *testing.T) {
	l := New(topology.Latency{Delay: 50 * time.Millisecond})
	r := newRecorder()
	for i := range 100 {
		send(t, l, numbered(i, 64), r)
	}
	l.Close()
	if got := l.Send(numbered(0, 64), r); got != Full {
		t.Errorf("Send after Close = %d, want Full", got)
	}
	time.Sleep(100 * time.Millisecond)
	if len(r.pkts) != 0 {
		t.Errorf("%d packets delivered after Close", len(r.pkts))
	}
}

// Once a line has buffers to reuse, sending allocates nothing (SPEC §6:
// the established path allocates nothing, and an impaired link is on it).
func TestSendAllocatesNothing(t *testing.T) {
	l := New(topology.Latency{Delay: time.Microsecond})
	defer l.Close()
	s := signal(make(chan struct{}, 1))
	pkt, big := make([]byte, 1500), make([]byte, 60000)
	for range 10 { // warm up: buffers of both classes on the free lists
		send(t, l, pkt, s)
		<-s
		send(t, l, big, s)
		<-s
	}
	allocs := testing.AllocsPerRun(200, func() {
		l.Send(pkt, s)
		<-s
		l.Send(big, s)
		<-s
	})
	if allocs != 0 {
		t.Errorf("Send allocated %v times a round", allocs)
	}
}

type signal chan struct{}

func (s signal) Deliver([][]byte) { s <- struct{}{} }
