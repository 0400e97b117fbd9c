package main

// Thin wrappers over the few syscalls the load generators need and the
// standard library does not offer: sendmmsg/recvmmsg, so a UDP sender or
// sink is not limited by one syscall per 64-byte packet.
//
// Every socket here is a plain blocking file descriptor used from a goroutine
// locked to its OS thread: the load generators measure the network path, not
// the Go scheduler's netpoller.

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"github.com/aseemu/emulator/topology/build"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// retry runs f until it fails with something other than EINTR.
func retry(f func() error) error {
	for {
		if err := f(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func sockaddr(ap netip.AddrPort) *syscall.SockaddrInet4 {
	return &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
}

// tcpConnect opens a blocking TCP connection with Nagle off.
func tcpConnect(ap netip.AddrPort) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Connect(fd, sockaddr(ap)); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// tcpListen listens on 0.0.0.0:port with a blocking socket.
func tcpListen(port int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port}); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Listen(fd, 4096); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// readFull reads exactly len(b) bytes; io.EOF-like short reads return n.
func readFull(fd int, b []byte) (int, error) {
	got := 0
	for got < len(b) {
		var n int
		err := retry(func() (e error) { n, e = syscall.Read(fd, b[got:]); return })
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, nil
		}
		got += n
	}
	return got, nil
}

func writeFull(fd int, b []byte) error {
	for len(b) > 0 {
		var n int
		err := retry(func() (e error) { n, e = syscall.Write(fd, b); return })
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// udpSocket opens a UDP socket, connected to dst when dst is valid, else
// bound to 0.0.0.0:port with SO_REUSEPORT (so several sinks share a port).
func udpSocket(dst netip.AddrPort, port int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if dst.IsValid() {
		err = syscall.Connect(fd, sockaddr(dst))
	} else {
		syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		// SO_RCVBUF is silently capped at net.core.rmem_max (212,992 bytes
		// here); the FORCE variant, open to root, is not.
		if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20) != nil {
			syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<20)
		}
		err = syscall.Bind(fd, &syscall.SockaddrInet4{Port: port})
	}
	if err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// mmsg is a batch of datagrams for sendmmsg/recvmmsg.
type mmsg struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	names []unix.RawSockaddrInet4
}

// newMmsg prepares n messages. For sending, every message points at the same
// payload; for receiving (payload nil) each gets its own buffer of size and,
// if names, room for the sender's address.
func newMmsg(n int, payload []byte, size int, names bool) *mmsg {
	m := &mmsg{hdrs: make([]unix.Mmsghdr, n), iovs: make([]unix.Iovec, n), bufs: make([][]byte, n)}
	if names {
		m.names = make([]unix.RawSockaddrInet4, n)
	}
	for i := range n {
		b := payload
		if b == nil {
			b = make([]byte, size)
		}
		m.bufs[i] = b
		m.iovs[i].Base = &b[0]
		m.iovs[i].SetLen(len(b))
		m.hdrs[i].Hdr.Iov = &m.iovs[i]
		m.hdrs[i].Hdr.SetIovlen(1)
		if names {
			m.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
			m.hdrs[i].Hdr.Namelen = uint32(unsafe.Sizeof(m.names[i]))
		}
	}
	return m
}

// send sends the whole batch on a connected socket and returns how many the
// kernel took.
func (m *mmsg) send(fd int) (int, error) {
	for {
		n, _, e := syscall.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), 0, 0, 0)
		runtime.KeepAlive(m)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// recv waits for at least one datagram and returns how many arrived.
func (m *mmsg) recv(fd int) (int, error) {
	if m.names != nil {
		for i := range m.hdrs {
			m.hdrs[i].Hdr.Namelen = uint32(unsafe.Sizeof(m.names[i]))
		}
	}
	n, _, e := syscall.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), unix.MSG_WAITFORONE, 0, 0)
	runtime.KeepAlive(m)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// syscallCost is the median time of a bare system call (getppid) over three
// runs of 200,000. The emulator's path pays system calls per packet that the
// kernel's path does not (a TUN read, a write, the poller's checks), so its
// ratios move with this figure from one machine to the next: 221 ns on the
// VMs of 2026-11, 1,155 ns on the one of 2026-12-04 (paravirtualised, with
// page-table isolation), where UDP fell from 1.04x to 0.48x of the kernel
// path with no change to the dataplane.
func syscallCost() time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const n = 200_000
	var runs [3]time.Duration
	for i := range runs {
		t0 := time.Now()
		for range n {
			unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		}
		runs[i] = time.Since(t0) / n
	}
	slices.Sort(runs[:])
	return runs[1]
}

// txDropped is the tx_dropped of the client's interface (eth0 on every
// path) in namespace ns.
func txDropped(ns string) (uint64, error) {
	nss, err := openNamespaces([]string{ns})
	defer closeNamespaces(nss)
	if err != nil {
		return 0, err
	}
	n, err := build.TxDropped(nss, "eth0")
	return n[0], err
}

// udpRcvbufErrors is UDP's RcvbufErrors in namespace ns: the datagrams its
// stack dropped because the receiving socket's buffer was full.
func udpRcvbufErrors(ns string) (uint64, error) {
	nss, err := openNamespaces([]string{ns})
	defer closeNamespaces(nss)
	if err != nil {
		return 0, err
	}
	var n uint64
	err = build.Do(nss[0], func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var ok bool
		if n, ok = snmpCounter(b, "Udp", "RcvbufErrors"); !ok {
			return fmt.Errorf("no Udp RcvbufErrors in /proc/net/snmp")
		}
		return nil
	})
	return n, err
}

// openNamespaces opens a handle on each named namespace (/run/netns/NAME),
// for build.Do and DoEach. It returns those it opened even when one fails:
// closeNamespaces them.
func openNamespaces(names []string) ([]netns.NsHandle, error) {
	nss := make([]netns.NsHandle, 0, len(names))
	for _, name := range names {
		h, err := netns.GetFromName(name)
		if err != nil {
			return nss, fmt.Errorf("namespace %s: %w", name, err)
		}
		nss = append(nss, h)
	}
	return nss, nil
}

func closeNamespaces(nss []netns.NsHandle) {
	for _, h := range nss {
		h.Close()
	}
}
