//go:build linux

package tun

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Poller waits for packets on many queues at once: one epoll set, owned by
// one dataplane worker. Each queue is registered under a token the worker
// chooses; Wait returns the tokens of the queues that have packets.
//
// Registration is level-triggered, so a worker that leaves packets behind
// (it reads a bounded number per queue per round, to be fair between
// nodes) is told again on its next Wait.
type Poller struct {
	epfd int
	wake int // an eventfd in the set: Wake's way in
	evs  []unix.EpollEvent
}

// WakeToken is the token Wait reports after Wake.
const WakeToken = ^uint32(0)

// NewPoller returns an empty poller.
func NewPoller() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p := &Poller{epfd: epfd, wake: wake, evs: make([]unix.EpollEvent, 128)}
	if err := p.ctl(unix.EPOLL_CTL_ADD, wake, WakeToken); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Poller) ctl(op, fd int, token uint32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(token)}
	if err := unix.EpollCtl(p.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// Add registers q under token. A queue leaves the set by itself when it is
// closed; Wait may still report its token once, and its TryRead then fails
// with os.ErrClosed.
func (p *Poller) Add(q Pollable, token uint32) error {
	if token == WakeToken {
		return errors.New("tun: poller token reserved")
	}
	rc, err := q.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = p.ctl(unix.EPOLL_CTL_ADD, int(fd), token) }); err != nil {
		return errClosed(err)
	}
	return cerr
}

// Wake makes a Wait under way, and every later one, return WakeToken: it
// is how a worker is told to stop.
func (p *Poller) Wake() {
	var one = [8]byte{1}
	unix.Write(p.wake, one[:])
}

// Wait fills tokens with those of the queues that have packets, sleeping
// until there is at least one, and returns how many it filled.
func (p *Poller) Wait(tokens []uint32) (int, error) {
	return p.wait(tokens, -1)
}

// Poll is Wait without the sleep: it looks again and again, for up to d,
// and returns 0 if no queue had packets. A worker that sleeps between two
// packets of a busy flow pays a wake-up each time, which on a virtual
// machine whose CPU halted while idle costs tens of microseconds. Through a
// lab, 1-byte TCP round trips, 4 rounds: 14,072-20,001/s with workers that
// slept at once, 18,033-26,006/s polling 50µs first (commit e52bb45).
func (p *Poller) Poll(tokens []uint32, d time.Duration) (int, error) {
	start := time.Now()
	for {
		n, err := p.wait(tokens, 0)
		if n > 0 || err != nil || time.Since(start) >= d {
			return n, err
		}
		// Offer the CPU to whatever else is runnable on it: a node's
		// program that the last packet woke should not wait for our
		// slice to end. Under EEVDF (kernel 6.18) this helps only a task
		// the scheduler deems eligible: in a perf sched trace of round
		// trips, a server the worker's wake-up had preempted stayed
		// runnable for 92 µs, until the worker slept. Making the worker
		// SCHED_IDLE while it spins, or SCHED_BATCH throughout, did not
		// raise the round-trip rate (3 alternating rounds each).
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

func (p *Poller) wait(tokens []uint32, timeout int) (int, error) {
	evs := p.evs[:min(len(p.evs), len(tokens))]
	for {
		n, err := unix.EpollWait(p.epfd, evs, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("epoll_wait: %w", err)
		}
		if n == 0 && timeout < 0 {
			continue
		}
		for i, ev := range evs[:n] {
			tokens[i] = uint32(ev.Fd)
		}
		return n, nil
	}
}

// Close releases the epoll set. The queues stay open.
func (p *Poller) Close() error {
	return errors.Join(unix.Close(p.epfd), unix.Close(p.wake))
}
