package dataplane

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/aseemu/emulator/dataplane/tun"
)

// pollWorker forwards for queue number `queue` of every port whose queues
// are tun.Pollable: one goroutine and one epoll set instead of a goroutine
// per queue. With one worker per queue number there are as many workers as
// queues (by default Cores), each can busy-poll its whole set before it
// sleeps (tun.Poller.Poll), and a flow's two directions, steered to the
// same queue number, meet on the same worker (transmit).
//
// A worker reads its queues in one of two ways: through an io_uring
// (ringWorker, ring.go) where the kernel has multishot reads, or else
// through an epoll set (tun.Poller).
type pollWorker struct {
	queue  int
	poller *tun.Poller                 // nil for a ring worker
	ring   *ringWorker                 // nil for an epoll worker
	table  atomic.Pointer[[]pollEntry] // indexed by token; copied on change, under Engine.mu
}

type pollEntry struct {
	port *Port
	q    tun.Pollable
}

// Cores is how many CPUs the dataplane's workers take at once: half of
// those the Go runtime uses, at least one. The other half is left to the
// programs in the nodes, whose packets are the dataplane's work: giving the
// workers every CPU starves the senders and receivers it forwards for.
// It bounds the workers that busy-poll at once (pollOrWait) and, through
// `up`, the queues of each node's interface (cmd/emulator autoQueues).
func Cores() int { return max(1, runtime.GOMAXPROCS(0)/2) }

// pollBudget is how many packets a worker takes from one queue before it
// serves the next ready one: a node flooding its interface must not starve
// the others on the same worker.
const pollBudget = 64

// startPorts starts forwarding for ports: each queue i that can be polled
// goes to worker i, the others get a goroutine of their own (readLoop).
func (e *Engine) startPorts(ports []*Port) {
	var polled [][]pollEntry // by queue number
	for _, p := range ports {
		for i, q := range p.queues {
			if pq, ok := q.(tun.Pollable); ok && e.worker(i) != nil {
				for len(polled) <= i {
					polled = append(polled, nil)
				}
				polled[i] = append(polled[i], pollEntry{port: p, q: pq})
				continue
			}
			e.startReadLoop(p, q, i)
		}
	}
	for i, ents := range polled {
		for _, ent := range e.workers[i].attach(ents) {
			e.startReadLoop(ent.port, ent.q, i)
		}
	}
}

func (e *Engine) startReadLoop(p *Port, q tun.Device, i int) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.readLoop(p, q, i)
	}()
}

// worker returns worker i, starting it if need be, or nil if it cannot
// (no epoll set to be had).
func (e *Engine) worker(i int) *pollWorker {
	for len(e.workers) <= i {
		e.workers = append(e.workers, nil)
	}
	if pw := e.workers[i]; pw != nil {
		return pw
	}
	pw := &pollWorker{queue: i}
	pw.table.Store(&[]pollEntry{})
	if !e.epoll {
		err := e.startRingWorker(pw)
		if err == nil {
			e.workers[i] = pw
			return pw
		}
		e.ringErr = err
	}
	poller, err := tun.NewPoller()
	if err != nil {
		return nil
	}
	pw.poller = poller
	e.workers[i] = pw
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.pollLoop(pw)
	}()
	return pw
}

// ReaderStatus says how the workers read the nodes' interfaces.
type ReaderStatus struct {
	// Workers holds, by queue number, how each worker reads its queues:
	// "io_uring", "epoll", or "goroutines" where the worker could not
	// have an epoll set either and each queue has a goroutine of its own.
	Workers []string `json:"workers"`
	// NoIOURing is why a worker that tried io_uring reads through epoll,
	// if one did.
	NoIOURing string `json:"noIOURing,omitempty"`
	// Epoll says the workers were asked for epoll (Config.Epoll, up
	// --io-uring=false), so none tried io_uring.
	Epoll bool `json:"epoll,omitempty"`
	// BufferBytes is how much of the io_uring workers' packet buffers is
	// resident: the pages packets have reached and the workers have not
	// given back yet (ringWorker.askTrim). It is part of the process's
	// RSS, and bounded by the buffers (ringBuffers).
	BufferBytes uint64 `json:"bufferBytes"`
	// BusyPoll is how long a worker keeps looking for packets before it
	// sleeps (up --busy-poll), "0s" for never: the one setting of the
	// workers that Workers does not show, and the one benchmarks vary.
	BusyPoll string `json:"busyPoll"`
}

// String says, for status and the benchmark report, how many workers read
// which way, and why not through io_uring where they do not.
func (r ReaderStatus) String() string {
	count := map[string]int{}
	var modes []string
	for _, m := range r.Workers {
		if count[m]++; count[m] == 1 {
			modes = append(modes, m)
		}
	}
	var parts []string
	for _, m := range modes {
		switch n := count[m]; {
		case m == "goroutines":
			parts = append(parts, fmt.Sprintf("%d without a worker (a goroutine per queue)", n))
		case n == 1:
			parts = append(parts, fmt.Sprintf("1 worker reading through %s", m))
		default:
			parts = append(parts, fmt.Sprintf("%d workers reading through %s", n, m))
		}
	}
	line := "no workers"
	if len(parts) > 0 {
		line = strings.Join(parts, ", ")
	}
	switch {
	case r.NoIOURing != "":
		line += " (io_uring failed: " + r.NoIOURing + ")"
	case r.Epoll:
		line += " (up --io-uring=false)"
	}
	return line
}

// Reader reports how the workers read the nodes' interfaces.
func (e *Engine) Reader() ReaderStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	rs := ReaderStatus{Epoll: e.epoll, BusyPoll: max(e.spin, 0).String()}
	for _, pw := range e.workers {
		switch {
		case pw == nil:
			rs.Workers = append(rs.Workers, "goroutines")
		case pw.ring != nil:
			rs.Workers = append(rs.Workers, "io_uring")
			rs.BufferBytes += pw.ring.resident()
		default:
			rs.Workers = append(rs.Workers, "epoll")
		}
	}
	if e.ringErr != nil {
		rs.NoIOURing = e.ringErr.Error()
	}
	return rs
}

// attach adds ents to the worker's epoll set and table (one copy of it
// however many), and returns those the set refused. A queue reported
// before its entry is published is skipped once and, its registration
// being level-triggered, reported again.
func (pw *pollWorker) attach(ents []pollEntry) (refused []pollEntry) {
	old := *pw.table.Load()
	table := append(old[:len(old):len(old)], ents...)
	if pw.ring != nil {
		pw.table.Store(&table)
		pw.ring.arm()
		return nil
	}
	for i, ent := range ents {
		token := len(old) + i
		if err := pw.poller.Add(ent.q, uint32(token)); err != nil {
			table[token] = pollEntry{}
			refused = append(refused, ent)
		}
	}
	pw.table.Store(&table)
	return refused
}

// detachPolled forgets the closed ports' queues, so that they can be
// collected. Their descriptors left the epoll sets when they were closed.
func (e *Engine) detachPolled(gone []*Port) {
	drop := portsIn(gone)
	for _, pw := range e.workers {
		if pw == nil {
			continue
		}
		table := append([]pollEntry(nil), *pw.table.Load()...)
		for i := range table {
			if drop[table[i].port] {
				table[i] = pollEntry{}
			}
		}
		pw.table.Store(&table)
	}
}

// pollLoop is worker pw's forwarding loop. Like readLoop, it reuses one
// buffer for every packet.
func (e *Engine) pollLoop(pw *pollWorker) {
	bufs := [][]byte{make([]byte, maxPacket)}
	sizes := make([]int, 1)
	tokens := make([]uint32, 128)
	w := newWorker(pw.queue)
	for {
		n, err := e.pollOrWait(pw, tokens)
		if err != nil {
			return
		}
		now := e.ct.Now()
		s := e.cur.Load()
		table := *pw.table.Load()
		for _, t := range tokens[:n] {
			if t == tun.WakeToken {
				return // Close
			}
			if int(t) >= len(table) || table[t].q == nil {
				continue
			}
			ent := table[t]
			for range pollBudget {
				k, err := ent.q.TryRead(bufs, sizes)
				if err != nil {
					if !errors.Is(err, os.ErrClosed) {
						ent.port.stats.drop(DropReadError)
					}
					break
				}
				if k == 0 {
					break
				}
				e.forward(s, ent.port, bufs[0][:sizes[0]], now, w)
			}
			e.flush(w)
		}
	}
}

// pollOrWait waits for ready queues, busy-polling first (tun.Poller.Poll)
// when fewer than maxSpinners workers already are: every poller spinning
// at once would leave the nodes' own programs no CPU on a small machine.
func (e *Engine) pollOrWait(pw *pollWorker, tokens []uint32) (int, error) {
	if e.spin > 0 {
		n := 0
		var err error
		if e.spinners.Add(1) <= e.maxSpinners {
			n, err = pw.poller.Poll(tokens, e.spin)
		}
		e.spinners.Add(-1)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return pw.poller.Wait(tokens)
}

func portsIn(ports []*Port) map[*Port]bool {
	set := make(map[*Port]bool, len(ports))
	for _, p := range ports {
		set[p] = true
	}
	return set
}
