// Package impair gives a link distance and flaws: a packet sent on a Line
// waits out the link's delay, give or take its jitter, may be lost, and
// leaves no faster than the link's rate, before it is delivered.
//
// The dataplane puts a Line on each direction of a node's link that the
// topology impairs (an Internet host in a remote region, say), so the
// delay is the emulator's own work and needs nothing of the kernel. The
// kernel's netem did this before, and a kernel built without it (as this
// project's CI machine is) gave no latency at all.
package impair

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aseemu/emulator/topology"
)

// Sink is where a Line delivers a packet once its wait is over. pkts holds
// one packet, in a buffer the Line reuses once Deliver returns; a slice
// rather than the packet, so that a Sink can hand it to tun.Device.Write
// without building a slice per packet.
type Sink interface {
	Deliver(pkts [][]byte)
}

// Result is what became of a packet given to Send.
type Result uint8

const (
	Sent Result = iota // it waits on the line
	Lost               // the link's loss took it
	Full               // the line holds as much as it may (or the packet is longer than any buffer): dropped, as a full queue drops
)

// The most a line holds: as many packets as the kernel's netem held for
// this project (its limit), and bytes of buffers enough for 6.7 Gbit/s
// over a 40 ms link, so that super-packets cannot pin gigabytes.
const (
	maxPackets = 10000
	maxBytes   = 32 << 20
)

// Buffer classes: a packet is copied into the smallest that holds it; a
// longer one than the last holds is refused (Full). Each class keeps some
// free buffers for the next packets, and no more, so that a burst's memory
// goes back to the runtime once it is through.
var classes = [...]struct{ size, keep int }{
	{2048, 512},     // datagrams and TCP segments up to the MTU
	{header64K, 64}, // GSO super-packets
}

// header64K holds a virtio-net header and a 64 KiB super-packet.
const header64K = 65536 + 64

type entry struct {
	due   int64  // nanoseconds on the line's clock
	seq   uint64 // send order, for equal dues
	buf   []byte // from classes[class]
	n     int
	to    Sink
	class int
}

// Line is one direction of an impaired link. Send may be called from any
// goroutine; the line delivers from its own.
type Line struct {
	cfg   topology.Latency // Jitter is uniform in [-Jitter, +Jitter]; Loss a percentage; Rate in bit/s, 0 unlimited
	start time.Time        // the line's clock counts from here (monotonic)

	mu     sync.Mutex
	q      []entry // a min-heap by (due, seq)
	seq    uint64
	bytes  int // capacity of the buffers q holds
	free   [len(classes)][][]byte
	busy   int64 // when the link has sent its last packet at Rate
	rng    *rand.Rand
	closed bool

	kick chan struct{} // a packet became the first due
	done chan struct{} // closed by the goroutine when it ends
}

// New starts a line with impairment cfg.
func New(cfg topology.Latency) *Line {
	l := &Line{
		cfg:   cfg,
		start: time.Now(),
		rng:   rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	go l.run()
	return l
}

func (l *Line) now() int64 { return int64(time.Since(l.start)) }

// Send copies pkt onto the line, to be delivered to to when its time
// comes, unless the link loses it or the line is full.
func (l *Line) Send(pkt []byte, to Sink) Result {
	l.mu.Lock()
	if l.cfg.Loss > 0 && l.rng.Float64()*100 < l.cfg.Loss {
		l.mu.Unlock()
		return Lost
	}
	class := classFor(len(pkt))
	if l.closed || class < 0 || len(l.q) >= maxPackets || l.bytes+classes[class].size > maxBytes {
		l.mu.Unlock()
		return Full
	}
	now := l.now()
	at := now
	if l.cfg.Rate > 0 {
		// The link sends one packet at a time: this one starts when it
		// is free, and takes its length at the rate.
		at = max(now, l.busy) + int64(uint64(len(pkt))*8*uint64(time.Second)/l.cfg.Rate)
		l.busy = at
	}
	due := at + int64(l.cfg.Delay)
	if j := int64(l.cfg.Jitter); j > 0 {
		due += l.rng.Int64N(2*j+1) - j
	}
	e := entry{due: max(due, now), seq: l.seq, n: len(pkt), to: to, class: class}
	l.seq++
	if f := l.free[class]; len(f) > 0 {
		e.buf, l.free[class] = f[len(f)-1], f[:len(f)-1]
	} else {
		e.buf = make([]byte, classes[class].size)
	}
	copy(e.buf, pkt)
	l.bytes += classes[class].size
	l.push(e)
	if l.q[0].seq == e.seq {
		// Under mu, which Close takes to close kick.
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
	return Sent
}

func classFor(n int) int {
	for i, c := range classes {
		if n <= c.size {
			return i
		}
	}
	return -1
}

// Close ends the line: the packets still on it are dropped, as replacing
// a link's qdisc drops its queue, and Send refuses new ones. It returns
// once the line's goroutine has ended, so no Deliver runs after it.
func (l *Line) Close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.kick)
	}
	l.mu.Unlock()
	<-l.done
}

// run delivers the packets whose time has come, then sleeps until the
// next is due or an earlier one arrives.
func (l *Line) run() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []entry
	var one [1][]byte
	for {
		l.mu.Lock()
		now := l.now()
		for len(l.q) > 0 && l.q[0].due <= now {
			due = append(due, l.pop())
		}
		wait := time.Duration(-1)
		if len(l.q) > 0 {
			wait = time.Duration(l.q[0].due - now)
		}
		closed := l.closed
		l.mu.Unlock()

		if !closed {
			for _, e := range due {
				one[0] = e.buf[:e.n]
				e.to.Deliver(one[:])
			}
		}
		one[0] = nil
		l.mu.Lock()
		for i := range due {
			l.recycle(&due[i])
			due[i] = entry{}
		}
		if closed {
			for i := range l.q {
				l.recycle(&l.q[i])
			}
			l.q = nil
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		due = due[:0]

		// Since Go 1.23 a timer's channel holds nothing stale after Stop
		// or Reset, so there is nothing to drain.
		if wait >= 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
		select {
		case <-l.kick: // an earlier packet, or Close
		case <-timer.C:
		}
	}
}

// recycle takes e's buffer back; l.mu is held.
func (l *Line) recycle(e *entry) {
	l.bytes -= classes[e.class].size
	if f := l.free[e.class]; len(f) < classes[e.class].keep {
		l.free[e.class] = append(f, e.buf)
	}
}

// push and pop keep q a binary min-heap by (due, seq): jitter can make a
// later packet due first, and then it leaves first, as on netem's queue.
// container/heap would box each entry in an interface, an allocation a
// packet.
func (l *Line) push(e entry) {
	l.q = append(l.q, e)
	for i := len(l.q) - 1; i > 0; {
		p := (i - 1) / 2
		if !l.q[i].before(&l.q[p]) {
			break
		}
		l.q[i], l.q[p] = l.q[p], l.q[i]
		i = p
	}
}

func (l *Line) pop() entry {
	top := l.q[0]
	last := len(l.q) - 1
	l.q[0] = l.q[last]
	l.q[last] = entry{}
	l.q = l.q[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(l.q) {
			break
		}
		if c+1 < len(l.q) && l.q[c+1].before(&l.q[c]) {
			c++
		}
		if !l.q[c].before(&l.q[i]) {
			break
		}
		l.q[i], l.q[c] = l.q[c], l.q[i]
		i = c
	}
	return top
}

func (e *entry) before(o *entry) bool {
	return e.due < o.due || e.due == o.due && e.seq < o.seq
}
