//go:build linux

package tun

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newTestRing makes a ring on the test's thread, which it locks: a ring
// belongs to the thread that made it.
func newTestRing(t *testing.T, nbuf int) *Ring {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	r, err := NewRing(nbuf, 65535+10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// collect enters the ring and hands each completion to each, until each
// says it has what it waits for, or 3 s pass.
func collect(t *testing.T, r *Ring, each func(Completion) (done bool)) {
	t.Helper()
	cs := make([]Completion, 0, 16)
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("waited 3 s")
		}
		if err := r.Enter(false); err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Completions(cs[:0]) {
			if each(c) {
				return
			}
		}
	}
}

// TestRing arms a read on both queues of a device: the reply to a ping
// completes in a buffer, the read staying armed; Wake completes under
// WakeToken; Cancel ends each read; and the interface then goes with its
// descriptors, as it must for `down` to remove it.
func TestRing(t *testing.T) {
	dev, req, ns := newTestDevice(t, 2)
	r := newTestRing(t, 8)
	for i, q := range dev.Queues() {
		if err := r.ArmRead(q.(Pollable), uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dev.Queues()[1].Write([][]byte{req}); err != nil {
		t.Fatal(err)
	}
	collect(t, r, func(c Completion) bool {
		if c.Token > 1 || c.Buf < 0 || c.Res <= 0 || !c.More {
			t.Fatalf("completion %+v: want a packet on token 0 or 1, still armed", c)
		}
		defer r.Recycle(c.Buf)
		return isEchoReply(r.Buf(c.Buf)[10:c.Res])
	})

	r.Wake()
	collect(t, r, func(c Completion) bool { return c.Token == WakeToken })

	r.Cancel(0)
	r.Cancel(1)
	ended := map[uint32]int32{}
	collect(t, r, func(c Completion) bool {
		if !c.More {
			ended[c.Token] = c.Res
		}
		return len(ended) == 2
	})
	for tok, res := range ended {
		if res != -int32(unix.ECANCELED) {
			t.Errorf("token %d ended with %d, want -ECANCELED", tok, res)
		}
	}

	dev.Close()
	if linkExists(t, ns, "eth0") {
		t.Fatal("interface still there after its reads were cancelled and its queues closed")
	}
}

// TestRingWrite writes from a ring buffer through QueueWrite: a ping
// request, queued in the buffer its first reply was read into, completes
// under WriteToken naming that buffer, and is answered; a packet the
// device refuses completes with the error; and a queue not opened here is
// not queued at all.
func TestRingWrite(t *testing.T) {
	dev, req, _ := newTestDevice(t, 1)
	r := newTestRing(t, 4)
	if err := r.ArmRead(dev, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Write([][]byte{req}); err != nil {
		t.Fatal(err)
	}
	buf := -1
	collect(t, r, func(c Completion) bool {
		if c.Buf >= 0 && c.Res > 10 && isEchoReply(r.Buf(c.Buf)[10:c.Res]) {
			buf = c.Buf
			return true
		}
		return false
	})

	pkt := r.Buf(buf)[:copy(r.Buf(buf), req)]
	if !r.QueueWrite(dev, buf, pkt) || !r.Queued() {
		t.Fatal("QueueWrite did not queue the write")
	}
	wrote, replied := false, false
	collect(t, r, func(c Completion) bool {
		switch {
		case c.Token == WriteToken:
			if c.Buf != buf || c.Res != int32(len(req)) {
				t.Fatalf("write completion %+v, want buffer %d and %d bytes", c, buf, len(req))
			}
			wrote = true
			r.Recycle(c.Buf)
		case c.Buf >= 0:
			replied = replied || isEchoReply(r.Buf(c.Buf)[10:c.Res])
			r.Recycle(c.Buf)
		}
		return wrote && replied
	})

	// The virtio-net header claims more header than the packet has.
	bad := r.Buf(buf)[:copy(r.Buf(buf), req)]
	bad[2], bad[3] = 0xff, 0xff
	if !r.QueueWrite(dev, buf, bad) {
		t.Fatal("QueueWrite did not queue the write")
	}
	collect(t, r, func(c Completion) bool {
		if c.Token != WriteToken {
			return false
		}
		if c.Res >= 0 || c.Buf != buf {
			t.Fatalf("write completion %+v, want an error for buffer %d", c, buf)
		}
		return true
	})

	if r.QueueWrite(wrapped{dev}, buf, pkt) {
		t.Error("QueueWrite queued a write to a device it does not know the descriptor of")
	}
}

// wrapped is a Device this package did not open.
type wrapped struct{ Device }

// TestRingOutOfBuffers has one buffer: the second packet finds none, the
// read ends with ENOBUFS, and armed again once the buffer is back, it reads
// that packet, which waited in the queue.
func TestRingOutOfBuffers(t *testing.T) {
	dev, req, _ := newTestDevice(t, 1)
	r := newTestRing(t, 1)
	if err := r.ArmRead(dev, 7); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := dev.Write([][]byte{req}); err != nil {
			t.Fatal(err)
		}
	}
	replies := 0
	collect(t, r, func(c Completion) bool {
		switch {
		case c.Buf >= 0 && c.Res > 10 && isEchoReply(r.Buf(c.Buf)[10:c.Res]):
			replies++
			r.Recycle(c.Buf)
		case c.Res == -int32(unix.ENOBUFS) && !c.More && replies == 1:
			if err := r.ArmRead(dev, 7); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("completion %+v after %d replies", c, replies)
		}
		return replies == 2
	})
	r.Cancel(7)
	collect(t, r, func(c Completion) bool { return !c.More })
}

// TestRingArmAllocs arms and cancels a read over and over without
// allocating: the ring worker arms a read again every time the buffers run
// out under it.
func TestRingArmAllocs(t *testing.T) {
	dev, _, _ := newTestDevice(t, 1)
	r := newTestRing(t, 1)
	cs := make([]Completion, 0, 16)
	allocs := testing.AllocsPerRun(100, func() {
		if err := r.ArmRead(dev, 3); err != nil {
			t.Fatal(err)
		}
		r.Cancel(3)
		for ended := false; !ended; {
			if err := r.Enter(true); err != nil {
				t.Fatal(err)
			}
			for _, c := range r.Completions(cs[:0]) {
				ended = ended || (c.Token == 3 && !c.More)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("arming and cancelling a read allocates %.1f times", allocs)
	}
}

// TestRingResident counts the buffers' pages packets have reached: none
// before any packet, a page for each buffer a short packet reached, none
// again after Trim.
func TestRingResident(t *testing.T) {
	dev, req, _ := newTestDevice(t, 1)
	r := newTestRing(t, 4)
	resident := func() int {
		t.Helper()
		n, err := r.Resident()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := resident(); n != 0 {
		t.Fatalf("%d bytes resident before any packet", n)
	}
	if err := r.ArmRead(dev, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Write([][]byte{req}); err != nil {
		t.Fatal(err)
	}
	collect(t, r, func(c Completion) bool {
		if c.Buf < 0 {
			return false
		}
		defer r.Recycle(c.Buf)
		return isEchoReply(r.Buf(c.Buf)[10:c.Res])
	})
	// The namespace's own packets (IPv6 neighbour discovery) may have
	// reached other buffers: a page each.
	if n, page := resident(), os.Getpagesize(); n < page || n > 4*page {
		t.Errorf("%d bytes resident after short packets in 4 buffers, want 1 to 4 pages of %d", n, page)
	}
	if err := r.Trim(); err != nil {
		t.Fatal(err)
	}
	if n := resident(); n != 0 {
		t.Errorf("%d bytes resident after Trim", n)
	}
	r.Cancel(0)
	collect(t, r, func(c Completion) bool { return !c.More })
}

func linkExists(t *testing.T, ns netns.NsHandle, name string) bool {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if err != nil && !errors.As(err, &notFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestRingLendsWhatItMay lends one of four buffers: the second packet finds
// none and its read ends; the buffer handed back is the one lent again, so
// the reads never reach the other three.
func TestRingLendsWhatItMay(t *testing.T) {
	dev, req, _ := newTestDevice(t, 1)
	r := newTestRing(t, 4)
	r.SetBuffers(1)
	if err := r.ArmRead(dev, 3); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := dev.Write([][]byte{req}); err != nil {
			t.Fatal(err)
		}
	}
	var used []int
	collect(t, r, func(c Completion) bool {
		switch {
		case c.Buf >= 0 && c.Res > 10 && isEchoReply(r.Buf(c.Buf)[10:c.Res]):
			used = append(used, c.Buf)
			r.Recycle(c.Buf)
		case c.Res == -int32(unix.ENOBUFS) && !c.More && len(used) == 1:
			if err := r.ArmRead(dev, 3); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("completion %+v after replies in buffers %v", c, used)
		}
		return len(used) == 2
	})
	if used[0] != used[1] {
		t.Errorf("replies in buffers %v: want the one buffer lent, twice", used)
	}
	r.Cancel(3)
	collect(t, r, func(c Completion) bool { return !c.More })
}

// TestRingTrim reads a packet into a buffer; Trim drops the buffer's
// page, which then reads as zeros.
func TestRingTrim(t *testing.T) {
	dev, req, _ := newTestDevice(t, 1)
	r := newTestRing(t, 2)
	if err := r.ArmRead(dev, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Write([][]byte{req}); err != nil {
		t.Fatal(err)
	}
	var b []byte
	collect(t, r, func(c Completion) bool {
		if c.Buf < 0 || c.Res <= 10 || !isEchoReply(r.Buf(c.Buf)[10:c.Res]) {
			t.Fatalf("completion %+v: want the echo reply", c)
		}
		b = r.Buf(c.Buf)[:c.Res]
		r.Recycle(c.Buf)
		return true
	})
	if err := r.Trim(); err != nil {
		t.Fatal(err)
	}
	for i, x := range b {
		if x != 0 {
			t.Fatalf("byte %d of the trimmed buffer is %#x, want 0", i, x)
		}
	}
	r.Cancel(5)
	collect(t, r, func(c Completion) bool { return !c.More })
}
