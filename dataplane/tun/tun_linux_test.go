//go:build linux

package tun

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
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
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root: creates a namespace and a TUN device")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New() // unnamed; moves this thread into it
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	dev, err := Create("eth0", queues)
	netns.Set(orig)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if got := len(dev.Queues()); got != queues {
		t.Fatalf("%d queues, want %d", got, queues)
	}

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := netlink.ParseAddr("10.9.0.2/24")
	if err := h.AddrAdd(link, a); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}

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
				p := buf[10:sizes[0]]
				if len(p) >= 28 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_ICMP && p[20] == 0 {
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
