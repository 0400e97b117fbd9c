package dataplane

import (
	"testing"
	"time"
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
	sent := time.Now()
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 46000, "203.0.113.30", 443, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["azure-storage"].recv(t)); src != "192.23.1.2" {
		t.Fatalf("azure-storage saw %s, want the VIP", src)
	}
	if waited := time.Since(sent); waited < delay {
		t.Errorf("the SYN reached the remote host after %v, before its link's %v", waited, delay)
	}
	sent = time.Now()
	l.devs["azure-storage"].inject(nil, tcpPkt(t, "203.0.113.30", 443, "192.23.1.2", 46000, true, true))
	if _, _, dst, _, _ := tcpOf(t, l.devs["ase1-w1"].recv(t)); dst != "10.0.1.6" {
		t.Fatalf("the answer reached ase1-w1 for %s, want 10.0.1.6", dst)
	}
	if waited := time.Since(sent); waited < delay {
		t.Errorf("the answer left the remote host and arrived after %v, before its link's %v", waited, delay)
	}
	// The host's ping of its gateway, which the dataplane answers, crosses
	// its link both ways.
	sent = time.Now()
	l.devs["azure-storage"].inject(nil, icmpEcho(t, "203.0.113.30", "203.0.113.1"))
	checkIPv4(t, l.devs["azure-storage"].recv(t))
	if rtt := time.Since(sent); rtt < 2*delay {
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
	sent := time.Now()
	l.devs["azure-sql"].inject(nil, icmpEcho(t, "203.0.113.20", "203.0.113.30"))
	p := l.devs["azure-storage"].recv(t)
	if waited := time.Since(sent); waited < 50*time.Millisecond {
		t.Errorf("the ping crossed 20 ms and 30 ms links in %v", waited)
	}
	if ip := checkIPv4(t, p); ip.SrcIP.String() != "203.0.113.20" {
		t.Errorf("azure-storage got a packet from %v", ip.SrcIP)
	}
	if n := l.e.PortByNode("azure-storage").stats.tx.packets.Load(); n != 1 {
		t.Errorf("azure-storage's tx counts %d packets, want 1", n)
	}
}
