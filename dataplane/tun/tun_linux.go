//go:build linux

package tun

import (
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

// Linux is a single-queue TUN device opened with IFF_VNET_HDR.
type Linux struct {
	f    *os.File
	name string
}

var _ Device = (*Linux)(nil)

// Create opens a TUN interface called name in the network namespace of the
// calling OS thread. The caller locks the thread and switches it into the
// node's namespace first, so the interface is born there and the root
// namespace never sees it. The interface is not persistent: it disappears
// when the last descriptor closes, so a killed dataplane leaves no interface
// behind.
//
// The descriptor stays usable from any thread and namespace afterwards.
func Create(name string) (*Linux, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %q: %w", name, err)
	}
	// Checksum and TSO offload let the node's stack hand us 64 KiB TCP
	// super-packets with a partial checksum, and let us hand them on
	// unsplit: the receiving stack accepts them as they are. This is what
	// keeps one TCP stream near veth speed (see BENCHMARKS.md).
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETOFFLOAD %q: %w", name, err)
	}
	// Non-blocking, so that os.File parks reading goroutines on the runtime
	// poller instead of pinning one OS thread per node.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %q: set non-blocking: %w", name, err)
	}
	return &Linux{f: os.NewFile(uintptr(fd), "/dev/net/tun"), name: name}, nil
}

func (d *Linux) Name() string   { return d.name }
func (d *Linux) BatchSize() int { return 1 }
func (d *Linux) Close() error   { return d.f.Close() }

func (d *Linux) Read(bufs [][]byte, sizes []int) (int, error) {
	n, err := d.f.Read(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

func (d *Linux) Write(bufs [][]byte) (int, error) {
	for i, b := range bufs {
		if _, err := d.f.Write(b); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}
