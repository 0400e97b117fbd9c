package dataplane

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/dataplane/tun"
	"golang.org/x/sys/unix"
)

// ringWorker is how the engine reaches a worker that reads its queues
// through an io_uring (tun.Ring) rather than epoll. One io_uring_enter
// collects every packet that arrived on any of the worker's queues, where
// epoll costs a wait, a read per packet and a read that finds the queue
// empty; on this project's VM a system call costs about 1.2 µs. A flood of
// 64-byte datagrams from ase1-w1 to echo through a default lab (8 sending
// threads, 3 s, 3 alternating runs) delivered 517-604 kpps this way against
// 269-307 kpps with epoll: 1.52-1.81 µs of dataplane CPU a datagram
// against 2.94-3.54.
//
// The ring belongs to the worker's thread, so the engine's other goroutines
// leave their requests here and wake it.
type ringWorker struct {
	ring    *tun.Ring     // only Wake, from other goroutines
	stopped chan struct{} // closed once the worker has ended every read and closed its ring

	// dirty says that packets longer than a page have reached the
	// buffers since they were last trimmed; the sweeper then asks the
	// worker to trim them (askTrim).
	dirty atomic.Bool

	mu       sync.Mutex
	mail     bool         // attach published new entries: arm them
	cancels  []ringCancel // reads to end, for ports about to close
	trim     bool         // give the buffers' memory back, if no long packet came since the last ask
	stopping bool
	closed   bool // the ring is closed: its eventfd's number may be another file's
}

// ringCancel asks a ring worker to end the reads of some tokens; done is
// closed once it has seen the last completion of each.
type ringCancel struct {
	tokens []uint32
	done   chan struct{}
}

// ringBuffers is how many buffers a ring worker has, each maxPacket long;
// it lends the reads between ringLendBig and all of them at once (lendFor).
// The reads fill what they hold until the worker hands the buffers back,
// once per Enter: when they run out, a read ends (ENOBUFS) and must be
// armed again, and its queue's packets come in ones and twos, too few for
// the coalescer. Only the pages packets reach cost memory, one each for
// small datagrams.
//
// With 1,000 nodes sending at once (make bench's scale blast, 3 s),
// lending every buffer each time, 256 buffers delivered 254-339 kpps at
// 2.1-3.6 µs of dataplane CPU a datagram, 1,024 buffers 312-412 kpps at
// 1.8-2.6 µs and 2,048 437-508 kpps at 1.4-1.9 µs (3 alternating rounds
// each; 1,024 and 2,048 at a faster hour than 256). But a TCP stream's
// super-packets fill whole buffers: lending 1,024 or 2,048 made one stream
// through a default lab 8.9-10.1 and 8.9-9.4 Gbit/s against 256's
// 10.7-10.8, and left the dataplane at 94-101 and 167 MB resident against
// 52 (iperf3 3 s, 2 alternating rounds). So long packets get few, and
// small ones up to 2,048 (lendFor): against 256 always, the blast
// delivered 381-533 kpps at 1.4-2.0 µs a datagram, against 295-346 at
// 2.3-3.0 µs (the UDP flood through a default lab and one stream did the
// same with both). Fewer still suit long packets better, as the copies of
// the reads then land in buffers the cache still holds: lending 32 rather
// than 256 after them, four streams through a default lab made 12.4-15.2
// Gbit/s, medians 13.6 and 14.1, against 11.0-14.0, medians 12.5 and 12.9,
// at 970-1,180 CPU-ms of the whole machine per GB delivered against
// 1,040-1,290 (iperf3 4 s, 18 alternating rounds in two runs); one stream
// 10.6-12.2 against 9.9-12.2, medians 11.1 and 10.9 (12 rounds); the
// blast 354-416 kpps against 322-376 (2 rounds), and the UDP flood 301-380
// against 213-318, medians 326 and 292 (6 rounds).
const (
	ringBuffers = 2048
	ringLendBig = 32
)

// lendFor is how many buffers to lend the reads after a round in which
// they held n: no more than ringLendBig after a packet longer than a page
// (bigRead), twice as many, up to ringBuffers, after small packets ran
// them out, and half as many, down to ringLendBig, after a round that
// used less than a quarter of them. used is the round's completions of
// reads and wake-ups: besides a packet each, they hold only the last of a
// read that ended, which counts when the reads ran out, and wake-ups.
func lendFor(n, used int, big, ranOut bool) int {
	switch {
	case big:
		return ringLendBig
	case ranOut:
		return min(2*n, ringBuffers)
	case used < n/4:
		return max(n/2, ringLendBig)
	}
	return n
}

// bigRead is the longest read that reaches only a buffer's first page.
const bigRead = 4096

// startRingWorker starts pw as a ring worker, on a thread of its own, or
// says why it could not: where the kernel lacks what tun.Ring needs.
func (e *Engine) startRingWorker(pw *pollWorker) error {
	rw := &ringWorker{stopped: make(chan struct{})}
	ready := make(chan error)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		runtime.LockOSThread() // the ring is this thread's (tun.Ring); never unlocked
		r, err := tun.NewRing(ringBuffers, maxPacket)
		if err != nil {
			ready <- err
			return
		}
		r.SetBuffers(ringLendBig)
		defer close(rw.stopped)
		defer func() {
			rw.mu.Lock()
			rw.closed = true
			rw.mu.Unlock()
			r.Close()
		}()
		rw.ring = r
		ready <- nil
		e.ringLoop(pw, rw, r)
	}()
	if err := <-ready; err != nil {
		return err
	}
	pw.ring = rw
	return nil
}

// arm tells the worker that its table has entries to arm.
func (rw *ringWorker) arm() {
	rw.mu.Lock()
	rw.mail = true
	rw.wake()
	rw.mu.Unlock()
}

// wake wakes the worker, unless it has ended; rw.mu is held.
func (rw *ringWorker) wake() {
	if !rw.closed {
		rw.ring.Wake()
	}
}

// askTrim asks the worker to give back the memory of its buffers if long
// packets have reached them and none came since it last asked: a TCP
// stream's super-packets leave up to ringLendBig × maxPacket, 16 MiB,
// resident after they have gone, and a stream after a flood of small
// datagrams more, since the flood's buffers are still lent. The sweeper
// asks every sweepInterval, so the memory comes back within two of the
// last long packet.
func (rw *ringWorker) askTrim() {
	if !rw.dirty.Load() {
		return
	}
	rw.mu.Lock()
	rw.trim = true
	rw.wake()
	rw.mu.Unlock()
}

// resident is how many bytes of the worker's buffers are resident
// (Ring.Resident): 0 once the worker has ended, or if the kernel cannot say.
func (rw *ringWorker) resident() uint64 {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.closed {
		return 0
	}
	n, _ := rw.ring.Resident()
	return uint64(n)
}

// askTrims asks every ring worker to trim its buffers (askTrim). The
// sweeper calls it, and must not wait for mu: Close holds mu while it
// waits for the sweeper to end. A tick that finds mu held (Close, or a
// reconfiguration) asks nothing, and the next one asks.
func (e *Engine) askTrims() {
	if !e.mu.TryLock() {
		return
	}
	defer e.mu.Unlock()
	for _, pw := range e.workers {
		if pw != nil && pw.ring != nil {
			pw.ring.askTrim()
		}
	}
}

// cancel ends the reads of tokens, and returns once the worker has seen
// them end, or has stopped.
func (rw *ringWorker) cancel(tokens []uint32) {
	c := ringCancel{tokens: tokens, done: make(chan struct{})}
	rw.mu.Lock()
	rw.cancels = append(rw.cancels, c)
	rw.wake()
	rw.mu.Unlock()
	select {
	case <-c.done:
	case <-rw.stopped:
	}
}

// stop ends every read and the worker, and returns once it has.
func (rw *ringWorker) stop() {
	rw.mu.Lock()
	rw.stopping = true
	rw.wake()
	rw.mu.Unlock()
	<-rw.stopped
}

// cancelReads ends the ring workers' reads of the ports about to close: an
// armed read holds its queue open, and with it the node's interface.
func (e *Engine) cancelReads(gone []*Port) {
	drop := portsIn(gone)
	var wg sync.WaitGroup
	for _, pw := range e.workers {
		if pw == nil || pw.ring == nil {
			continue
		}
		var tokens []uint32
		for t, ent := range *pw.table.Load() {
			if drop[ent.port] {
				tokens = append(tokens, uint32(t))
			}
		}
		// Every worker, even one with no read of these ports: it may
		// have queued a write to one (queueWrite), which its answer
		// submits.
		wg.Go(func() { pw.ring.cancel(tokens) })
	}
	wg.Wait()
}

// readState is where a ring worker's read of one token stands.
type readState uint8

const (
	readIdle       readState = iota // not armed; waiting in ringReads.pending
	readArmed                       // in the kernel
	readCancelling                  // in the kernel, cancel asked
	readEnded                       // never armed again: cancelled, or it failed
)

type ringRead struct {
	state readState
	read  bool // it completed a packet since it was armed
}

// ringReads is a ring worker's reads, by token, and those waiting to be
// armed.
type ringReads struct {
	st      []ringRead
	known   int      // table entries seen: those past it are new
	pending []uint32 // idle reads, oldest first
}

func (rs *ringReads) at(t uint32) *ringRead {
	for int(t) >= len(rs.st) {
		rs.st = append(rs.st, ringRead{})
	}
	return &rs.st[t]
}

// idle queues token t's read to be armed.
func (rs *ringReads) idle(t uint32) {
	rs.at(t).state = readIdle
	rs.pending = append(rs.pending, t)
}

// arm arms the reads waiting.
func (rs *ringReads) arm(r *tun.Ring, table []pollEntry) {
	for _, t := range rs.pending {
		rd := &rs.st[t]
		if rd.state != readIdle {
			continue // ended while it waited
		}
		if int(t) >= len(table) || table[t].q == nil {
			rd.state = readEnded // its port is gone
			continue
		}
		rd.state, rd.read = readArmed, false
		if r.ArmRead(table[t].q, t) != nil {
			rd.state = readEnded // closed
		}
	}
	rs.pending = rs.pending[:0]
}

// end cancels token t's read if it is armed, and makes sure it is never
// armed again.
func (rs *ringReads) end(r *tun.Ring, t uint32) {
	switch rd := rs.at(t); rd.state {
	case readArmed:
		r.Cancel(t)
		rd.state = readCancelling
	case readIdle:
		rd.state = readEnded
	}
}

func (rs *ringReads) inKernel(t uint32) bool {
	st := rs.at(t).state
	return st == readArmed || st == readCancelling
}

func (rs *ringReads) anyInKernel() bool {
	for t := range rs.st {
		if rs.inKernel(uint32(t)) {
			return true
		}
	}
	return false
}

// ringLoop is a ring worker's forwarding loop, pollLoop's counterpart.
func (e *Engine) ringLoop(pw *pollWorker, rw *ringWorker, r *tun.Ring) {
	w := newWorker(pw.queue)
	w.ring, w.leaving = r, make([]*Port, ringBuffers)
	var (
		rs       ringReads
		waiting  []ringCancel
		stopping bool
		long     bool // a packet longer than a page came since the last trim ask
	)
	cs := make([]tun.Completion, 0, 2*ringBuffers)
	for {
		var err error
		if cs, err = e.ringCollect(r, cs[:0]); err != nil {
			return
		}
		// The kernel completes the reads of many queues interleaved.
		// Taken queue by queue, in each queue's order, the datagrams of
		// a flow come one after another, so the coalescer can write them
		// as one (coalesce.go), as it does for the epoll worker's bursts.
		// 10 nodes sending at once (make bench's scale blast, 2 s, 64
		// buffers): 434-469 kpps delivered this way, 322-362 unsorted.
		slices.SortStableFunc(cs, func(a, b tun.Completion) int { return cmp.Compare(a.Token, b.Token) })
		now := e.ct.Now()
		s := e.cur.Load()
		table := *pw.table.Load()
		mail, big, ranOut := false, false, false
		reads := len(cs)
		for _, c := range cs {
			if c.Token == tun.WakeToken {
				mail = true
				continue
			}
			if c.Token == tun.WriteToken {
				w.written(c)
				r.Recycle(c.Buf)
				reads--
				continue
			}
			rd := rs.at(c.Token)
			var port *Port
			if int(c.Token) < len(table) {
				port = table[c.Token].port
			}
			if c.Buf >= 0 {
				big = big || c.Res > bigRead
				w.inBuf = c.Buf
				if port != nil && c.Res > 0 {
					e.forward(s, port, r.Buf(c.Buf)[:c.Res], now, w)
					rd.read = true
				}
				if w.inBuf >= 0 { // not queued for writing (queueWrite)
					r.Recycle(c.Buf)
					w.inBuf = -1
				}
			}
			if c.More {
				continue
			}
			switch {
			case rd.state == readCancelling:
				rd.state = readEnded
			case c.Res < 0 && c.Res != -int32(unix.ENOBUFS) && c.Res != -int32(unix.ECANCELED) && port != nil:
				port.stats.drop(DropReadError)
				// A read that fails at once would fail again: arm
				// again only one that had been reading.
				if rd.state = readEnded; rd.read {
					rs.idle(c.Token)
				}
			default: // out of buffers (they are back now), or ended for no error
				ranOut = ranOut || c.Res == -int32(unix.ENOBUFS)
				rs.idle(c.Token)
			}
		}
		e.flush(w)
		if reads > 0 { // a round of write completions says nothing of the reads' needs
			r.SetBuffers(lendFor(r.Buffers(), reads, big, ranOut))
		}
		if big && !long {
			long = true
			rw.dirty.Store(true)
		}

		if mail {
			// A port closes once every worker has answered its cancel
			// (cancelReads): the writes queued to it go in first.
			w.submitQueued()
			rw.mu.Lock()
			attached, trim := rw.mail, rw.trim
			cancels := rw.cancels
			rw.mail, rw.trim, rw.cancels = false, false, nil
			stopping = stopping || rw.stopping
			rw.mu.Unlock()
			if trim {
				if !long && rw.dirty.Load() {
					r.Trim()
					rw.dirty.Store(false)
				}
				long = false
			}
			if attached {
				table = *pw.table.Load()
				for ; rs.known < len(table); rs.known++ {
					rs.idle(uint32(rs.known))
				}
			}
			for _, c := range cancels {
				for _, t := range c.tokens {
					rs.end(r, t)
				}
			}
			waiting = append(waiting, cancels...)
			if stopping {
				for t := range rs.st {
					rs.end(r, uint32(t))
				}
			}
		}
		if !stopping {
			rs.arm(r, table)
		}

		waiting = finishCancels(waiting, &rs)
		if stopping && !rs.anyInKernel() {
			return
		}
	}
}

// queueWrite queues the write of pkt, bound for queue q of port out, on the
// worker's ring, if pkt is the packet in hand in the ring buffer it was
// read into; the worker's next Enter submits it with the others of its
// burst. Any other write first submits those queued, so that a queue's
// packets leave in the order they came.
//
// TCP's bursts hold a few packets each (4 writes an enter in a perf trace
// of one stream; 8 in one of new connections, without the busy-poll), and
// a system call costs 1.1 µs on the PVM VM of 2026-12-07. There, against a
// write(2) each, four streams through a lab made 13.5-17.7 Gbit/s against
// 10.5-13.6 (iperf3, 4 pairs, 4 s, 4 alternating rounds of two labs) and
// one stream 12.05-12.70 against 11.71-12.16 (4 rounds). New connections
// made 45.0-49.2k against 43.7-47.3k in 5 s (4 rounds), within what two
// labs of one binary differ by (PERFORMANCE.md), and round trips and UDP
// floods, whose bursts are of one packet or coalesced, the same (8 and 5
// rounds).
func (w *worker) queueWrite(out *Port, q tun.Device, pkt []byte) bool {
	if w.inBuf >= 0 && !w.observing && &pkt[0] == &w.ring.Buf(w.inBuf)[0] && w.ring.QueueWrite(q, w.inBuf, pkt) {
		w.leaving[w.inBuf] = out
		w.inBuf = -1
		return true
	}
	w.submitQueued()
	return false
}

// submitQueued submits what the worker's ring holds, if it has a ring: an
// Enter that does not wait.
func (w *worker) submitQueued() {
	if w.ring != nil && w.ring.Queued() {
		w.ring.Enter(false)
	}
}

// written counts the completion of a write queueWrite queued, on the port
// it left by. A write the device refused counts as a drop there, as a
// delayed packet's does (link.go): the port it came in by is not known
// this late.
func (w *worker) written(c tun.Completion) {
	out := w.leaving[c.Buf]
	w.leaving[c.Buf] = nil
	if c.Res < 0 {
		out.stats.drop(DropWriteError)
		return
	}
	w.tx.add(&out.stats.tx, 1, uint64(c.Res))
}

// finishCancels closes the done of each cancel whose reads have all ended,
// and returns the others.
func finishCancels(waiting []ringCancel, rs *ringReads) []ringCancel {
	kept := waiting[:0]
	for _, c := range waiting {
		ended := true
		for _, t := range c.tokens {
			ended = ended && !rs.inKernel(t)
		}
		if ended {
			close(c.done)
		} else {
			kept = append(kept, c)
		}
	}
	return kept
}

// ringCollect enters the ring until it has completions: busy-polling first,
// as pollOrWait does, then sleeping in the kernel. Unlike Poller.Poll, the
// spin does not call sched_yield between looks: a perf sched trace showed
// the yield did not hand the CPU over under EEVDF (tun.Poller.Poll), and
// each look is a system call already.
func (e *Engine) ringCollect(r *tun.Ring, cs []tun.Completion) ([]tun.Completion, error) {
	if e.spin > 0 {
		if e.spinners.Add(1) <= e.maxSpinners {
			for start := time.Now(); len(cs) == 0 && time.Since(start) < e.spin; {
				if err := r.Enter(false); err != nil {
					e.spinners.Add(-1)
					return cs, err
				}
				cs = r.Completions(cs)
			}
		}
		e.spinners.Add(-1)
		if len(cs) > 0 {
			return cs, nil
		}
	}
	if err := r.Enter(true); err != nil {
		return cs, err
	}
	return r.Completions(cs), nil
}
