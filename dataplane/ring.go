package dataplane

import (
	"runtime"
	"sync"
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

	mu       sync.Mutex
	mail     bool         // attach published new entries: arm them
	cancels  []ringCancel // reads to end, for ports about to close
	stopping bool
}

// ringCancel asks a ring worker to end the reads of some tokens; done is
// closed once it has seen the last completion of each.
type ringCancel struct {
	tokens []uint32
	done   chan struct{}
}

// ringBuffers is how many packets a ring worker's reads may fill before it
// hands the buffers back, once per Enter: the most one Enter collects.
// Each is maxPacket long, but a page no packet reached costs no memory.
const ringBuffers = 64

// startRingWorker starts pw as a ring worker, on a thread of its own, and
// reports whether it could: not where the kernel lacks what tun.Ring needs.
func (e *Engine) startRingWorker(pw *pollWorker) bool {
	rw := &ringWorker{stopped: make(chan struct{})}
	ready := make(chan bool)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		runtime.LockOSThread() // the ring is this thread's (tun.Ring); never unlocked
		r, err := tun.NewRing(ringBuffers, maxPacket)
		if err != nil {
			ready <- false
			return
		}
		defer close(rw.stopped)
		defer r.Close()
		rw.ring = r
		ready <- true
		e.ringLoop(pw, rw, r)
	}()
	if !<-ready {
		return false
	}
	pw.ring = rw
	return true
}

// arm tells the worker that its table has entries to arm.
func (rw *ringWorker) arm() {
	rw.mu.Lock()
	rw.mail = true
	rw.mu.Unlock()
	rw.ring.Wake()
}

// cancel ends the reads of tokens, and returns once the worker has seen
// them end, or has stopped.
func (rw *ringWorker) cancel(tokens []uint32) {
	c := ringCancel{tokens: tokens, done: make(chan struct{})}
	rw.mu.Lock()
	rw.cancels = append(rw.cancels, c)
	rw.mu.Unlock()
	rw.ring.Wake()
	select {
	case <-c.done:
	case <-rw.stopped:
	}
}

// stop ends every read and the worker, and returns once it has.
func (rw *ringWorker) stop() {
	rw.mu.Lock()
	rw.stopping = true
	rw.mu.Unlock()
	rw.ring.Wake()
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
		if len(tokens) > 0 {
			wg.Go(func() { pw.ring.cancel(tokens) })
		}
	}
	wg.Wait()
}

// readState is where a ring worker's read of one token stands.
type readState uint8

const (
	readIdle       readState = iota // not armed; armed once its table entry is there
	readArmed                       // in the kernel
	readCancelling                  // in the kernel, cancel asked
	readEnded                       // never armed again: cancelled, or it failed
)

type ringRead struct {
	state readState
	read  bool // it completed a packet since it was armed
}

// ringLoop is a ring worker's forwarding loop, pollLoop's counterpart.
func (e *Engine) ringLoop(pw *pollWorker, rw *ringWorker, r *tun.Ring) {
	w := newWorker(pw.queue)
	var (
		reads    []ringRead
		waiting  []ringCancel
		stopping bool
		rearm    = true
	)
	cs := make([]tun.Completion, 0, 2*ringBuffers)
	for {
		var err error
		if cs, err = e.ringCollect(r, cs[:0]); err != nil {
			return
		}
		now := e.ct.Now()
		s := e.cur.Load()
		table := *pw.table.Load()
		mail := false
		for _, c := range cs {
			if c.Token == tun.WakeToken {
				mail = true
				continue
			}
			for int(c.Token) >= len(reads) {
				reads = append(reads, ringRead{})
			}
			rd := &reads[c.Token]
			var port *Port
			if int(c.Token) < len(table) {
				port = table[c.Token].port
			}
			if c.Buf >= 0 {
				if port != nil && c.Res > 0 {
					e.forward(s, port, r.Buf(c.Buf)[:c.Res], now, w)
					rd.read = true
				}
				r.Recycle(c.Buf)
			}
			if c.More {
				continue
			}
			switch {
			case rd.state == readCancelling:
				rd.state = readEnded
			case c.Res == -int32(unix.ENOBUFS):
				rd.state, rearm = readIdle, true // the buffers are back now
			case c.Res < 0 && c.Res != -int32(unix.ECANCELED) && port != nil:
				port.stats.drop(DropReadError)
				// A read that fails at once would fail again: arm
				// again only one that had been reading.
				if rd.state = readEnded; rd.read {
					rd.state, rearm = readIdle, true
				}
			default:
				rd.state, rearm = readIdle, true
			}
		}
		e.flush(w)

		if mail {
			rw.mu.Lock()
			rearm = rearm || rw.mail
			cancels := rw.cancels
			rw.mail, rw.cancels = false, nil
			stopping = stopping || rw.stopping
			rw.mu.Unlock()
			for _, c := range cancels {
				for _, t := range c.tokens {
					for int(t) >= len(reads) {
						reads = append(reads, ringRead{})
					}
					endRead(r, &reads[t], t)
				}
			}
			waiting = append(waiting, cancels...)
			if stopping {
				for t := range reads {
					endRead(r, &reads[t], uint32(t))
				}
			}
		}
		if rearm && !stopping {
			for len(reads) < len(table) {
				reads = append(reads, ringRead{})
			}
			for t, ent := range table {
				if rd := &reads[t]; rd.state == readIdle && ent.q != nil {
					rd.state, rd.read = readArmed, false
					if r.ArmRead(ent.q, uint32(t)) != nil {
						rd.state = readEnded // closed
					}
				}
			}
			rearm = false
		}

		waiting = finishCancels(waiting, reads)
		if stopping && !anyInKernel(reads) {
			return
		}
	}
}

// endRead cancels rd, token t's read, if it is armed, and makes sure it is
// never armed again.
func endRead(r *tun.Ring, rd *ringRead, t uint32) {
	switch rd.state {
	case readArmed:
		r.Cancel(t)
		rd.state = readCancelling
	case readIdle:
		rd.state = readEnded
	}
}

func inKernel(rd ringRead) bool { return rd.state == readArmed || rd.state == readCancelling }

func anyInKernel(reads []ringRead) bool {
	for _, rd := range reads {
		if inKernel(rd) {
			return true
		}
	}
	return false
}

// finishCancels closes the done of each cancel whose reads have all ended,
// and returns the others.
func finishCancels(waiting []ringCancel, reads []ringRead) []ringCancel {
	kept := waiting[:0]
	for _, c := range waiting {
		ended := true
		for _, t := range c.tokens {
			ended = ended && !inKernel(reads[t])
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
