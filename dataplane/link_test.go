package dataplane

import (
	"testing"
	"time"

	"github.com/gopacket/gopacket"
)

// storageLatency gives azure-storage a latency block in place of its
// remote region; "" gives it none.
func storageLatency(latency string) []string {
	if latency != "" {
		latency = "    latency: " + latency + "\n"
	}
	return []string{"    address: 203.0.113.30\n    region: remote\n", "    address: 203.0.113.30\n" + latency}
}

// F16, SPEC §3: a remote host's link delays what it sends and what it
// receives, each way; a round trip through it takes both. The dataplane
// does it, with no kernel qdisc.
func TestImpairedLinkDelaysEachWay(t *testing.T) {
	const delay = 40 * time.Millisecond
	l := newLabFrom(t, parseLab(t, storageLatency("{delay: 40ms}")...), nil)
	p, waited := l.cross(t, "ase1-w1", tcpPkt(t, "10.0.1.6", 46000, "203.0.113.30", 443, true, false), "azure-storage")
	src, vport, _, _, _ := tcpOf(t, p)
	if src != "192.23.1.2" {
		t.Fatalf("azure-storage saw %s, want the VIP", src)
	}
	if waited < delay {
		t.Errorf("the SYN reached the remote host after %v, before its link's %v", waited, delay)
	}
	p, waited = l.cross(t, "azure-storage", tcpPkt(t, "203.0.113.30", 443, "192.23.1.2", vport, true, true), "ase1-w1")
	if _, _, dst, _, _ := tcpOf(t, p); dst != "10.0.1.6" {
		t.Fatalf("the answer reached ase1-w1 for %s, want 10.0.1.6", dst)
	}
	if waited < delay {
		t.Errorf("the answer left the remote host and arrived after %v, before its link's %v", waited, delay)
	}
	// The host's ping of its gateway, which the dataplane answers, crosses
	// its link both ways.
	p, rtt := l.cross(t, "azure-storage", icmpEcho(t, "203.0.113.30", "203.0.113.1"), "azure-storage")
	checkIPv4(t, p)
	if rtt < 2*delay {
		t.Errorf("a ping of the gateway took %v, less than its link's %v each way", rtt, delay)
	}
	// Only the impaired node's link has lines.
	for _, n := range []string{"ase1-w1", "db1", "echo"} {
		if l.e.PortByNode(n).link.Load() != nil {
			t.Errorf("%s's link is impaired", n)
		}
	}
}

// Loss takes the link's packets, counted on the impaired node; and apply
// (Reconfigure) that removes the impairment makes the link plain at once.
func TestImpairedLinkLossAndRemoval(t *testing.T) {
	l := newLabFrom(t, parseLab(t, storageLatency("{loss: 100%}")...), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 46100, "203.0.113.30", 443, true, false))
	l.expectDrops(t, DropLinkLoss, 1)
	if n := l.e.PortByNode("azure-storage").stats.drops[DropLinkLoss].Load(); n != 1 {
		t.Errorf("azure-storage counts %d link-loss drops, want the 1", n)
	}
	l.devs["azure-storage"].expectNothing(t)

	if err := l.e.Reconfigure(parseLab(t, storageLatency("")...), nil, nil); err != nil {
		t.Fatal(err)
	}
	if p := l.e.PortByNode("azure-storage"); p.link.Load() != nil {
		t.Fatal("azure-storage's link is still impaired after Reconfigure without latency")
	}
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 46101, "203.0.113.30", 443, true, false))
	tcpOf(t, l.devs["azure-storage"].recv(t))
	l.expectDrops(t, DropLinkLoss, 1)
}

// A packet between two impaired hosts crosses both links: the sender's
// delay, then the receiver's.
func TestTwoImpairedLinks(t *testing.T) {
	edits := append(storageLatency("{delay: 30ms}"),
		"  - name: azure-sql\n    address: 203.0.113.20\n", "  - name: azure-sql\n    address: 203.0.113.20\n    latency: {delay: 20ms}\n")
	l := newLabFrom(t, parseLab(t, edits...), nil)
	p, waited := l.cross(t, "azure-sql", icmpEcho(t, "203.0.113.20", "203.0.113.30"), "azure-storage")
	if waited < 50*time.Millisecond {
		t.Errorf("the ping crossed 20 ms and 30 ms links in %v", waited)
	}
	if ip := checkIPv4(t, p); ip.SrcIP.String() != "203.0.113.20" {
		t.Errorf("azure-storage got a packet from %v", ip.SrcIP)
	}
	// The line counts a packet after its write returns, which can be after
	// the test has read it from the device.
	tx := &l.e.PortByNode("azure-storage").stats.tx.packets
	for deadline := time.Now().Add(2 * time.Second); tx.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := tx.Load(); n != 1 {
		t.Errorf("azure-storage's tx counts %d packets, want 1", n)
	}
}

// cross injects pkt at node from and returns the packet node to receives
// next, and how long after the injection it came.
func (l *lab) cross(t *testing.T, from string, pkt []byte, to string) (gopacket.Packet, time.Duration) {
	t.Helper()
	sent := time.Now()
	l.devs[from].inject(nil, pkt)
	p := l.devs[to].recv(t)
	return p, time.Since(sent)
}
