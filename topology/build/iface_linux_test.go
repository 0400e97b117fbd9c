//go:build linux

package build

import (
	"net"
	"testing"

	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/test/nstest"
)

// TestTxDroppedCountsAFullQueue sends more datagrams into a TUN interface
// than its queue holds, with nobody reading the device: the kernel drops
// the rest at the queue, and TxDropped must count them.
func TestTxDroppedCountsAFullQueue(t *testing.T) {
	var dev *tun.Linux
	ns := nstest.New(t, func() (err error) {
		dev, err = tun.Create("eth0", 1)
		return err
	})
	t.Cleanup(func() { dev.Close() })
	nstest.Up(t, ns, "eth0", "10.9.0.1/24")

	before, err := TxDropped(ns, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if before != 0 {
		t.Fatalf("TxDropped before sending = %d, want 0", before)
	}
	const sent, queue = 2000, 500 // queue: a TUN's default txqueuelen
	err = Do(ns, func() error {
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
	got, err := TxDropped(ns, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got != sent-queue {
		t.Fatalf("TxDropped = %d after %d datagrams into a queue of %d nobody reads, want %d", got, sent, queue, sent-queue)
	}
	if _, err := TxDropped(ns, "eth9"); err == nil {
		t.Fatal("TxDropped of a missing interface: no error")
	}
}
