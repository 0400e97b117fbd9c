//go:build linux

package tun

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/aseemu/emulator/test/nstest"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestCreateInNamespace opens a TUN inside a fresh, unnamed namespace and
// moves a packet each way through it: written by the device, it reaches the
// namespace's stack (which answers a ping); sent by the stack, it is read by
// the device with a virtio-net header in front. With several queues, the
// request goes in by the last queue and the reply comes out of one of them.
func TestCreateInNamespace(t *testing.T) {
	for _, queues := range []int{1, 2} {
		t.Run(fmt.Sprintf("queues=%d", queues), func(t *testing.T) { testCreateInNamespace(t, queues) })
	}
}

func testCreateInNamespace(t *testing.T, queues int) {
	dev, req, _ := newTestDevice(t, queues)
	if _, err := dev.Queues()[queues-1].Write([][]byte{req}); err != nil {
		t.Fatal(err)
	}

	got := make(chan []byte, queues)
	for _, q := range dev.Queues() {
		go func() {
			buf := make([]byte, 65535+10)
			sizes := make([]int, 1)
			for {
				n, err := q.Read([][]byte{buf}, sizes)
				if err != nil || n == 0 {
					got <- nil
					return
				}
				if p := buf[10:sizes[0]]; isEchoReply(p) {
					got <- append([]byte(nil), p...)
					return
				}
			}
		}()
	}
	select {
	case p := <-got:
		if p == nil {
			t.Fatal("device read failed")
		}
		if p[12] != 10 || p[15] != 2 || p[16] != 10 || p[19] != 1 {
			t.Fatalf("echo reply has addresses %v -> %v", p[12:16], p[16:20])
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no echo reply read from the device")
	}
}

// TestWriteClosed writes without allocating, and once the queue is closed,
// fails with os.ErrClosed rather than writing to whatever file has since
// been given its descriptor's number (Write bypasses os.File's own hold).
func TestWriteClosed(t *testing.T) {
	dev, req, _ := newTestDevice(t, 1)
	bufs := [][]byte{req}
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := dev.Write(bufs); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Write allocates %.1f times", allocs)
	}

	// The closed descriptor's number goes to a pipe's write end at once.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd := dev.fd
	dev.Close()
	if err := unix.Dup2(int(w.Fd()), fd); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := dev.Write(bufs); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close: %v, want os.ErrClosed", err)
	}
	unix.Close(fd) // the last write end: Read below ends, with what Write put there
	if n, _ := r.Read(make([]byte, 64)); n != 0 {
		t.Fatalf("Write after Close put %d bytes in the file that took its descriptor", n)
	}
}

func isEchoReply(p []byte) bool {
	return len(p) >= 28 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_ICMP && p[20] == 0
}

// TestPoller registers both queues of a device with a Poller: the reply to
// a ping is reported under its queue's token and read with TryRead, which
// then finds the queue empty; Poll gives up when nothing comes; Wake ends a
// Wait; a closed queue's TryRead says so.
func TestPoller(t *testing.T) {
	dev, req, _ := newTestDevice(t, 2)
	p, err := NewPoller()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, q := range dev.Queues() {
		if err := p.Add(q.(Pollable), uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	tokens := make([]uint32, 8)
	if n, err := p.Poll(tokens, time.Millisecond); n != 0 || err != nil {
		t.Fatalf("Poll on idle queues: %d, %v", n, err)
	}
	if _, err := dev.Queues()[1].Write([][]byte{req}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535+10)
	sizes := make([]int, 1)
	deadline := time.Now().Add(3 * time.Second)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatal("no echo reply through the poller")
		}
		n, err := p.Wait(tokens)
		if err != nil || n == 0 {
			t.Fatalf("Wait: %d, %v", n, err)
		}
		for _, tok := range tokens[:n] {
			if tok > 1 {
				t.Fatalf("Wait reported token %d, registered 0 and 1", tok)
			}
			q := dev.Queues()[tok].(Pollable)
			k, err := q.TryRead([][]byte{buf}, sizes)
			if err != nil || k != 1 {
				t.Fatalf("TryRead on a reported queue: %d, %v", k, err)
			}
			found = found || isEchoReply(buf[10:sizes[0]])
			for k == 1 {
				if k, err = q.TryRead([][]byte{buf}, sizes); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	p.Wake()
	if n, err := p.Wait(tokens); err != nil || n != 1 || tokens[0] != WakeToken {
		t.Fatalf("Wait after Wake: %d %v, tokens %v", n, err, tokens[:n])
	}
	q := dev.Queues()[0].(Pollable)
	dev.Close()
	if _, err := q.TryRead([][]byte{buf}, sizes); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("TryRead on a closed queue: %v, want os.ErrClosed", err)
	}
}

// newTestDevice creates a TUN of the given queues in a fresh, unnamed
// namespace, addressed 10.9.0.2/24 and up, and returns it with an ICMP
// echo request from 10.9.0.1 to 10.9.0.2 (virtio-net header first) and the
// namespace.
func newTestDevice(t *testing.T, queues int) (*Linux, []byte, netns.NsHandle) {
	t.Helper()
	var dev *Linux
	ns := nstest.New(t, func() (err error) {
		dev, err = Create("eth0", queues)
		return err
	})
	t.Cleanup(func() { dev.Close() })
	if got := len(dev.Queues()); got != queues {
		t.Fatalf("%d queues, want %d", got, queues)
	}
	nstest.Up(t, ns, "eth0", "10.9.0.2/24")

	// An ICMP echo request from 10.9.0.1 to 10.9.0.2, with a zero virtio-net header.
	req := []byte{
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0x45, 0, 0, 28, 0, 1, 0, 0, 64, 1, 0, 0, 10, 9, 0, 1, 10, 9, 0, 2,
		8, 0, 0, 0, 0x12, 0x34, 0, 1,
	}
	csum := func(b []byte) uint16 {
		var s uint32
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
		return ^uint16(s)
	}
	ip := req[10:]
	c := csum(ip[:20])
	ip[10], ip[11] = byte(c>>8), byte(c)
	c = csum(ip[20:])
	ip[22], ip[23] = byte(c>>8), byte(c)
	return dev, req, ns
}
