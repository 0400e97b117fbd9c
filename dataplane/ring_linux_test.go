//go:build linux

package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/test/nstest"
	"github.com/aseemu/emulator/topology"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestRealDevicesComeAndGo runs the engine over real TUNs for a worker and
// the echo host, in each way a worker can read: a datagram crosses, SNATed
// to the VIP; a worker added by Reconfigure forwards, and removed, its
// interface is gone; after Close, every interface is. With io_uring, an
// armed read holds its queue open, so this fails unless the worker ends
// each read before the engine closes the queue.
func TestRealDevicesComeAndGo(t *testing.T) {
	for _, epoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("epoll=%v", epoll), func(t *testing.T) { testRealDevices(t, epoll) })
	}
}

func testRealDevices(t *testing.T, epoll bool) {
	bigger := threeWorkers(t)
	topo := topology.Default()
	e, real := startReal(t, topo, epoll)
	closed := false
	t.Cleanup(func() {
		if !closed {
			e.Close()
		}
	})
	for _, pw := range e.workers {
		if got := pw.ring != nil; got == epoll {
			t.Fatalf("worker %d reads through io_uring: %v, want %v", pw.queue, got, !epoll)
		}
	}

	echo := real["echo"]
	real["ase1-w1"].send(t, echo.n.Addr, "one")
	echo.expect(t, "192.23.1.2", "one")

	w3 := newRealNode(t, bigger.NodeByName("ase1-w3"))
	if err := e.Reconfigure(bigger, []PortSpec{{Node: w3.n, Dev: w3.dev}}, nil); err != nil {
		t.Fatal(err)
	}
	w3.send(t, echo.n.Addr, "three")
	echo.expect(t, "192.23.1.2", "three")
	if err := e.Reconfigure(topo, nil, []string{"ase1-w3"}); err != nil {
		t.Fatal(err)
	}
	w3.expectGone(t)

	closed = true
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range real {
		n.expectGone(t)
	}
}

// TestRingWorkerTrims sends a datagram longer than a page from a worker:
// the ring worker's buffers are then dirty. The sweeper's first ask after
// it only notes that long packets came; the next, with none between, gives
// the buffers' memory back.
func TestRingWorkerTrims(t *testing.T) {
	rw := dirtyRingWorker(t, time.Hour) // the test asks, and the sweeper must not
	// cancel returns once the worker has read its mail, and a trim asked
	// before it with it.
	rw.askTrim()
	rw.cancel(nil)
	if !rw.dirty.Load() {
		t.Fatal("trimmed at the first ask after a long packet")
	}
	rw.askTrim()
	rw.cancel(nil)
	if rw.dirty.Load() {
		t.Fatal("not trimmed at the second ask, with no long packet between")
	}
}

// TestSweeperAsksTrims leaves the asking to the engine's sweeper, every
// 100 ms: the dirty buffers are trimmed within a few of its ticks.
func TestSweeperAsksTrims(t *testing.T) {
	rw := dirtyRingWorker(t, 100*time.Millisecond)
	for deadline := time.Now().Add(3 * time.Second); rw.dirty.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("buffers still dirty 3 s after the last long packet")
		}
	}
}

// dirtyRingWorker starts an engine whose sweeper ticks every sweep, with
// ase1-w1 on a real TUN, sends a 6,000-byte datagram from it, and returns
// the ring worker once the datagram has made its buffers dirty. It skips
// the test where the kernel has no io_uring for the worker.
func dirtyRingWorker(t *testing.T, sweep time.Duration) *ringWorker {
	t.Helper()
	topo := topology.Default()
	specs, real := realSpecs(t, topo, "ase1-w1")
	w1 := real["ase1-w1"]
	e, err := New(topo, specs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.sweepEvery = sweep
	e.Start()
	t.Cleanup(func() { e.Close() })
	rw := e.workers[0].ring
	if rw == nil {
		t.Skipf("no io_uring: %v", e.ringErr)
	}
	h, link := w1.eth0(t)
	if err := h.LinkSetMTU(link, 9000); err != nil {
		t.Fatal(err)
	}
	w1.send(t, netip.MustParseAddr("203.0.113.10"), strings.Repeat("x", 6000))
	for deadline := time.Now().Add(3 * time.Second); !rw.dirty.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a 6,000-byte datagram read, and the worker's buffers not dirty")
		}
	}
	return rw
}

// startReal starts an engine over topo, ase1-w1 and echo with real TUNs,
// its workers reading through epoll or io_uring; the caller closes it.
func startReal(t *testing.T, topo *topology.Topology, epoll bool) (*Engine, map[string]*realNode) {
	t.Helper()
	specs, real := realSpecs(t, topo, "ase1-w1", "echo")
	e, err := New(topo, specs, Config{Epoll: epoll})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	return e, real
}

// realSpecs gives the named nodes of topo real TUNs (realNode), and the
// others in-memory devices.
func realSpecs(t *testing.T, topo *topology.Topology, names ...string) ([]PortSpec, map[string]*realNode) {
	t.Helper()
	real := map[string]*realNode{}
	var specs []PortSpec
	for _, n := range topo.Nodes {
		var dev tun.Device = newMemDev(n.Name)
		if slices.Contains(names, n.Name) {
			real[n.Name] = newRealNode(t, n)
			dev = real[n.Name].dev
		}
		specs = append(specs, PortSpec{Node: n, Dev: dev})
	}
	return specs, real
}

// realNode is a node with a TUN of its own, in a namespace of its own, and
// a UDP socket on port 7000 there.
type realNode struct {
	n    *topology.Node
	ns   netns.NsHandle
	dev  *tun.Linux
	sock int
}

func newRealNode(t *testing.T, n *topology.Node) *realNode {
	t.Helper()
	rn := &realNode{n: n}
	rn.ns = nstest.New(t, func() (err error) {
		if rn.dev, err = tun.Create("eth0", Cores()); err != nil {
			return err
		}
		t.Cleanup(func() { rn.dev.Close() })
		if rn.sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(rn.sock) })
		return nil
	})
	nstest.Up(t, rn.ns, "eth0", netip.PrefixFrom(n.Addr, n.Prefix.Bits()).String())
	h, link := rn.eth0(t)
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: n.Gateway.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(3 * time.Second))
	if err := unix.SetsockoptTimeval(rn.sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(rn.sock, &unix.SockaddrInet4{Port: 7000, Addr: n.Addr.As4()}); err != nil {
		t.Fatal(err)
	}
	return rn
}

// eth0 is the node's interface, and a netlink handle in its namespace
// that the test's end closes.
func (rn *realNode) eth0(t *testing.T) (*netlink.Handle, netlink.Link) {
	t.Helper()
	h, err := netlink.NewHandleAt(rn.ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return h, link
}

func (rn *realNode) send(t *testing.T, to netip.Addr, msg string) {
	t.Helper()
	if err := unix.Sendto(rn.sock, []byte(msg), 0, &unix.SockaddrInet4{Port: 7000, Addr: to.As4()}); err != nil {
		t.Fatal(err)
	}
}

// expect reads a datagram and checks its source address and text.
func (rn *realNode) expect(t *testing.T, from, msg string) {
	t.Helper()
	buf := make([]byte, 64)
	k, sa, err := unix.Recvfrom(rn.sock, buf, 0)
	if err != nil {
		t.Fatalf("%s: no datagram: %v", rn.n.Name, err)
	}
	src := netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr)
	if src.String() != from || string(buf[:k]) != msg {
		t.Fatalf("%s: %q from %s, want %q from %s", rn.n.Name, buf[:k], src, msg, from)
	}
}

// expectGone checks that the node's interface went with its device.
func (rn *realNode) expectGone(t *testing.T) {
	t.Helper()
	h, err := netlink.NewHandleAt(rn.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.LinkByName("eth0")
	var notFound netlink.LinkNotFoundError
	switch {
	case err == nil:
		t.Fatalf("%s: interface still there after the engine let it go", rn.n.Name)
	case !errors.As(err, &notFound):
		t.Fatal(err)
	}
}

// TestWorkersCarryAStreamWhole sends 4 MiB over TCP from a worker to the
// echo host through the engine, in each way a worker can read: every byte
// arrives as sent, and the echo host's port counts what was written to it.
// A ring worker queues the writes of a burst on its ring (queueWrite) and
// hands a buffer back to the reads only once its write has completed: one
// handed back sooner could be filled by a later read before the kernel
// copied it out, and since the nodes' packets carry partial checksums, no
// stack on the way would notice.
func TestWorkersCarryAStreamWhole(t *testing.T) {
	for _, epoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("epoll=%v", epoll), func(t *testing.T) {
			e, real := startReal(t, topology.Default(), epoll)
			t.Cleanup(func() { e.Close() })
			echo, w1 := real["echo"], real["ase1-w1"]

			ln := tcpSocketIn(t, echo.ns)
			if err := unix.Bind(ln, &unix.SockaddrInet4{Port: 7000, Addr: echo.n.Addr.As4()}); err != nil {
				t.Fatal(err)
			}
			if err := unix.Listen(ln, 1); err != nil {
				t.Fatal(err)
			}
			c := tcpSocketIn(t, w1.ns)
			if err := unix.Connect(c, &unix.SockaddrInet4{Port: 7000, Addr: echo.n.Addr.As4()}); err != nil {
				t.Fatal(err)
			}
			s, _, err := unix.Accept(ln)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Close(s) })

			sent := make([]byte, 4<<20)
			for i := range sent {
				sent[i] = byte(i*7 + i>>13)
			}
			go func() {
				for b := sent; len(b) > 0; {
					n, err := unix.Write(c, b)
					if err != nil {
						break
					}
					b = b[n:]
				}
				unix.Shutdown(c, unix.SHUT_WR)
			}()
			got := make([]byte, 0, len(sent))
			buf := make([]byte, 64<<10)
			for {
				n, err := unix.Read(s, buf)
				if err != nil {
					t.Fatalf("after %d bytes: %v", len(got), err)
				}
				if n == 0 {
					break
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, sent) {
				i := 0
				for i < min(len(got), len(sent)) && got[i] == sent[i] {
					i++
				}
				t.Fatalf("received %d bytes, sent %d; they differ from byte %d", len(got), len(sent), i)
			}
			// A worker publishes its counts after each burst, and a ring
			// worker counts a write when it completes.
			var written uint64
			for deadline := time.Now().Add(3 * time.Second); written < uint64(len(sent)) && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				for _, p := range e.Stats() {
					if p.Node == "echo" {
						written = p.TxBytes
					}
				}
			}
			if written < uint64(len(sent)) {
				t.Errorf("echo's port counts %d bytes written to it, want at least %d", written, len(sent))
			}
		})
	}
}

// tcpSocketIn opens a TCP socket in namespace ns, which gives up a
// connect, read or write after 10 s; the test's end closes it.
func tcpSocketIn(t *testing.T, ns netns.NsHandle) int {
	t.Helper()
	var fd int
	nstest.In(t, ns, func() (err error) {
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(10 * time.Second))
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} { // SNDTIMEO bounds connect too
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}
