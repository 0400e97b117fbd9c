//go:build linux

package dataplane

import (
	"bytes"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/test/nstest"
	"golang.org/x/sys/unix"
)

// The kernel takes the super-packet the coalescer builds, on a real TUN,
// and gives the receiving socket each datagram whole and in order: the
// unit tests check the headers against a model of the split, this checks
// the kernel agrees.
func TestKernelSplitsCoalescedDatagrams(t *testing.T) {
	dev, sock := tunAndSocket(t)
	sizes := []int{64, 64, 64, 64, 64, 64, 64, 30}
	var c coalescer
	for i, n := range sizes {
		d := udpWithVnet(t, "10.9.0.1", 5000, "10.9.0.2", 7000, uint16(300+i), payloadOf(i, n), false)
		if i == 0 {
			c.start(dev, nil, nil, d)
		} else if !c.join(dev, d) {
			t.Fatalf("datagram %d did not join", i)
		}
	}
	pkt, _ := c.seal()
	if _, err := dev.Write([][]byte{pkt}); err != nil {
		t.Fatalf("the kernel refused the super-packet: %v", err)
	}
	buf := make([]byte, 2048)
	for i, n := range sizes {
		k, _, err := unix.Recvfrom(sock, buf, 0)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, len(sizes), err)
		}
		if !bytes.Equal(buf[:k], payloadOf(i, n)) {
			t.Fatalf("datagram %d: %q, want %q", i, buf[:k], payloadOf(i, n))
		}
	}
	if k, _, err := unix.Recvfrom(sock, buf, unix.MSG_DONTWAIT); err == nil {
		t.Fatalf("an extra datagram: %q", buf[:k])
	}
}

// tunAndSocket creates a TUN "eth0" at 10.9.0.2/24 in a fresh, unnamed
// namespace, and a UDP socket bound to 10.9.0.2:7000 in it that gives up
// a read after 3 s.
func tunAndSocket(t *testing.T) (*tun.Linux, int) {
	t.Helper()
	var dev *tun.Linux
	var sock int
	ns := nstest.New(t, func() (err error) {
		if dev, err = tun.Create("eth0", 1); err != nil {
			return err
		}
		t.Cleanup(func() { dev.Close() })
		if sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(sock) })
		return nil
	})
	nstest.Up(t, ns, "eth0", "10.9.0.2/24")
	tv := unix.NsecToTimeval(int64(3 * time.Second))
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(sock, &unix.SockaddrInet4{Port: 7000, Addr: [4]byte{10, 9, 0, 2}}); err != nil {
		t.Fatal(err)
	}
	return dev, sock
}
