//go:build linux

package tun

import (
	"errors"
	"fmt"
	"os"

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
	queue
	name   string
	queues []Device
}

// queue is one descriptor of a TUN device. The kernel steers each flow the
// node sends to one queue (by its hash, or to the queue the flow's replies
// were last written to), so a flow stays on one reading goroutine.
type queue struct {
	f *os.File
}

var (
	_ MultiQueue = (*Linux)(nil)
	_ Device     = (*queue)(nil)
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
	d.queue = *d.queues[0].(*queue)
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
	// Non-blocking, so that os.File parks reading goroutines on the runtime
	// poller instead of pinning one OS thread per queue.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	return &queue{f: os.NewFile(uintptr(fd), "/dev/net/tun")}, nil
}

func (d *Linux) Name() string     { return d.name }
func (d *Linux) Queues() []Device { return d.queues }
func (q *queue) Name() string     { return "" }
func (q *queue) BatchSize() int   { return 1 }
func (q *queue) Close() error     { return q.f.Close() }

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

func (q *queue) Read(bufs [][]byte, sizes []int) (int, error) {
	n, err := q.f.Read(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

func (q *queue) Write(bufs [][]byte) (int, error) {
	for i, b := range bufs {
		if _, err := q.f.Write(b); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}
