//go:build linux

package build

import (
	"net"
	"testing"

	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/test/nstest"
	"github.com/vishvananda/netns"
)

// TestTxDroppedCountsAFullQueue sends more datagrams into a TUN interface
// than its queue holds, with nobody reading the device: the kernel drops
// the rest at the queue, and TxDropped must count them, for that
// namespace and no other.
func TestTxDroppedCountsAFullQueue(t *testing.T) {
	var nss []netns.NsHandle
	for range 2 {
		var dev *tun.Linux
		ns := nstest.New(t, func() (err error) {
			dev, err = tun.Create("eth0", 1)
			return err
		})
		t.Cleanup(func() { dev.Close() })
		nstest.Up(t, ns, "eth0", "10.9.0.1/24")
		nss = append(nss, ns)
	}

	before, err := TxDropped(nss, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if before[0] != 0 || before[1] != 0 {
		t.Fatalf("TxDropped before sending = %v, want 0s", before)
	}
	const sent, queue = 2000, 500 // queue: a TUN's default txqueuelen
	err = Do(nss[1], func() error {
		c, err := net.Dial("udp4", "10.9.0.2:9")
		if err != nil {
			return err
		}
		defer c.Close()
		for range sent {
			if _, err := c.Write([]byte("x")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := TxDropped(nss, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 0 || got[1] != sent-queue {
		t.Fatalf("TxDropped = %v after %d datagrams into the second namespace's queue of %d, which nobody reads; want [0 %d]", got, sent, queue, sent-queue)
	}
	if _, err := TxDropped(nss, "eth9"); err == nil {
		t.Fatal("TxDropped of a missing interface: no error")
	}
}
