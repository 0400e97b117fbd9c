//go:build linux

package tun

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offload flags for TUNSETOFFLOAD (linux/if_tun.h); x/sys/unix does not
// export them.
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
)

// MaxQueues bounds the queues of one device: more than the cores that read
// them only costs descriptors.
const MaxQueues = 16

// Linux is a TUN device opened with IFF_VNET_HDR, with one or more queues
// (IFF_MULTI_QUEUE). Reading and writing the Linux itself uses its first
// queue.
type Linux struct {
	*queue
	name   string
	queues []Device
}

// queue is one descriptor of a TUN device. The kernel steers each flow the
// node sends to one queue (by its hash, or to the queue the flow's replies
// were last written to), so a flow stays on one reading worker.
//
// The descriptor is non-blocking but kept off the Go runtime's poller: the
// dataplane waits for it in its own epoll set (Poller), and a descriptor in
// the runtime's set as well would wake a second thread for every packet
// that lands on an empty queue.
type queue struct {
	f  *os.File
	rc syscall.RawConn

	// Write's own hold on the descriptor, in place of f's (see Write):
	// Close takes wmu exclusively, so it waits for the writes under way,
	// and the writes after it fail rather than reach a descriptor the
	// number of which may have been given to another file.
	fd     int
	wmu    sync.RWMutex
	closed bool

	// TryRead's state, so that passing it to rc.Read allocates nothing.
	readFn func(fd uintptr) bool
	rbuf   []byte
	rn     int
	rerr   error
}

var (
	_ MultiQueue = (*Linux)(nil)
	_ Pollable   = (*queue)(nil)
)

// Create opens a TUN interface called name, with n queues (n < 1 means
// one), in the network namespace of the calling OS thread. The caller locks
// the thread and switches it into the node's namespace first, so the
// interface is born there and the root namespace never sees it. The
// interface is not persistent: it disappears when its last descriptor
// closes, so a killed dataplane leaves no interface behind.
//
// The descriptors stay usable from any thread and namespace afterwards.
func Create(name string, n int) (*Linux, error) {
	n = min(max(n, 1), MaxQueues)
	d := &Linux{name: name}
	for i := range n {
		q, err := openQueue(name, n > 1)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("tun %q queue %d: %w", name, i, err)
		}
		d.queues = append(d.queues, q)
	}
	d.queue = d.queues[0].(*queue)
	return d, nil
}

// openQueue opens one descriptor of interface name: the first creates it,
// the next ones (with multi set) attach to it as further queues.
func openQueue(name string, multi bool) (*queue, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	// Checksum and TSO offload let the node's stack hand us 64 KiB TCP
	// super-packets with a partial checksum, and let us hand them on
	// unsplit: the receiving stack accepts them as they are. This is what
	// keeps one TCP stream near veth speed (see BENCHMARKS.md).
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETOFFLOAD: %w", err)
	}
	// os.NewFile sees a blocking descriptor and leaves it off the runtime
	// poller; only then is it made non-blocking (see queue).
	q := &queue{f: os.NewFile(uintptr(fd), "/dev/net/tun"), fd: fd}
	rc, err := q.f.SyscallConn()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		q.f.Close()
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	q.rc = rc
	q.readFn = q.readOnce
	return q, nil
}

func (d *Linux) Name() string     { return d.name }
func (d *Linux) Queues() []Device { return d.queues }
func (q *queue) Name() string     { return "" }
func (q *queue) BatchSize() int   { return 1 }

func (q *queue) Close() error {
	q.wmu.Lock()
	q.closed = true
	q.wmu.Unlock()
	return q.f.Close()
}

// Close closes every queue; the interface goes with the last one.
func (d *Linux) Close() error {
	var errs []error
	for _, q := range d.queues {
		if err := q.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (q *queue) SyscallConn() (syscall.RawConn, error) { return q.rc, nil }

// TryRead reads one packet if one is waiting, and returns 0 if none is.
func (q *queue) TryRead(bufs [][]byte, sizes []int) (int, error) {
	q.rbuf, q.rn, q.rerr = bufs[0], 0, nil
	if err := q.rc.Read(q.readFn); err != nil {
		return 0, errClosed(err)
	}
	if q.rerr == unix.EAGAIN {
		return 0, nil
	}
	if q.rerr != nil {
		return 0, q.rerr
	}
	sizes[0] = q.rn
	return 1, nil
}

// readOnce is TryRead's body, run with the descriptor held open.
func (q *queue) readOnce(fd uintptr) bool {
	q.rn, q.rerr = unix.Read(int(fd), q.rbuf)
	return true
}

// readPollInterval bounds how long Read sleeps in poll(2) before it looks
// again: closing a descriptor does not wake a poll on it.
const readPollInterval = 100 // ms

// Read blocks until a packet arrives or the queue is closed. The dataplane
// reads through a Poller instead; Read serves tests and simple tools.
func (q *queue) Read(bufs [][]byte, sizes []int) (int, error) {
	for {
		n, err := q.TryRead(bufs, sizes)
		if n > 0 || err != nil {
			return n, err
		}
		err = q.rc.Read(func(fd uintptr) bool {
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, readPollInterval)
			return true
		})
		if err != nil {
			return 0, errClosed(err)
		}
	}
}

// errClosed turns an error of the RawConn into os.ErrClosed, as os.File's
// own methods would: for a descriptor off the poller, RawConn.Read fails
// only once the file is closed (with internal/poll's ErrFileClosing).
func errClosed(err error) error {
	return fmt.Errorf("%w (%v)", os.ErrClosed, err)
}

// Write writes each packet with a raw write(2), which the Go runtime does
// not see as a system call. A TUN write waits for nothing but CPU and
// memory: the descriptor is non-blocking and the node's stack takes the
// packet in the call. But to a goroutine that says it is in a system call,
// and that has not passed through the scheduler for 10 ms, as a ring
// worker locked to its thread and busy never does, the runtime's sysmon
// thread takes the P back at every one of its ticks that finds it there,
// and every such take keeps sysmon ticking every 20 µs rather than backing
// off to 10 ms. Four iperf3 streams through a default lab (3 s samples, 10
// alternating runs in two sets, tun.Ring's Enter raw as well): through
// os.File's write, the sysmon thread woke 2,770-3,160 times a second and
// took 28-35 ticks of the 3 s; this way 240-410 and 4-7. The dataplane's
// CPU per GB delivered, 594-812 CPU-ms against 562-775 (medians 651 and
// 599), and the throughput, 11.2-14.7 Gbit/s against 11.5-14.9 (medians
// 12.6 and 13.4), moved within the runs' spread.
func (q *queue) Write(bufs [][]byte) (int, error) {
	q.wmu.RLock()
	defer q.wmu.RUnlock()
	if q.closed {
		return 0, os.ErrClosed
	}
	for i, b := range bufs {
		if err := rawWrite(q.fd, b); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

func rawWrite(fd int, b []byte) error {
	for {
		_, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if errno != unix.EINTR {
			if errno != 0 {
				return errno
			}
			return nil
		}
	}
}
