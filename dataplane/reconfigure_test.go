package dataplane

import (
	"testing"

	"github.com/aseemu/emulator/topology"
)

// F15: a front-end out of rotation gets no new flows; with none left the
// VIP answers nothing; back in rotation, it serves again.
func TestRotation(t *testing.T) {
	l := newLab(t, nil)
	l.e.SetInRotation("ase1-fe1", false)
	for i := uint16(0); i < 8; i++ { // 8 flows would hit both front-ends
		l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 41000+i, "192.23.1.2", 80, true, false))
		if _, _, dst, _, _ := tcpOf(t, l.devs["ase1-fe2"].recv(t)); dst != "10.0.1.5" {
			t.Fatalf("flow went to %s with ase1-fe1 out of rotation", dst)
		}
	}
	l.devs["ase1-fe1"].expectNothing(t)

	l.e.SetInRotation("ase1-fe2", false)
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 41100, "192.23.1.2", 80, true, false))
	l.devs["ase1-fe1"].expectNothing(t)
	l.devs["ase1-fe2"].expectNothing(t)
	l.expectDrops(t, DropNoBackend, 1)

	l.e.SetInRotation("ase1-fe1", true)
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 41101, "192.23.1.2", 80, true, false))
	if _, _, dst, _, _ := tcpOf(t, l.devs["ase1-fe1"].recv(t)); dst != "10.0.1.4" {
		t.Fatalf("back in rotation, ase1-fe1 did not get the flow (went to %s)", dst)
	}
}

// Scaling a running lab: a new worker is attached, leaves with the VIP
// (F3) and is reachable; detached, its address no longer answers.
func TestReconfigureAddsAndRemovesPorts(t *testing.T) {
	l := newLab(t, nil)
	bigger := threeWorkers(t)
	w3 := bigger.NodeByName("ase1-w3")
	if w3 == nil || w3.Addr.String() != "10.0.1.8" {
		t.Fatalf("scaled topology has ase1-w3 at %v, want 10.0.1.8", w3)
	}
	dev := newMemDev("ase1-w3")
	if err := l.e.Reconfigure(bigger, []PortSpec{{Node: w3, Dev: dev}}, nil); err != nil {
		t.Fatal(err)
	}
	dev.inject(nil, tcpPkt(t, "10.0.1.8", 42000, "203.0.113.10", 80, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["echo"].recv(t)); src != "192.23.1.2" {
		t.Fatalf("the new worker left with %s, want the VIP", src)
	}
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 42001, "10.0.1.8", 80, true, false))
	tcpOf(t, dev.recv(t))

	if err := l.e.Reconfigure(topology.Default(), nil, []string{"ase1-w3"}); err != nil {
		t.Fatal(err)
	}
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 42002, "10.0.1.8", 80, true, false))
	l.expectDrops(t, DropHostUnreachable, 1)
}

// The lab's drop totals never go back: a worker apply scales away takes
// its drops out of the per-node counts, but not out of the totals, which a
// script compares before and after.
func TestDropTotalsKeepRemovedPorts(t *testing.T) {
	l := newLab(t, nil)
	bigger := threeWorkers(t)
	dev := newMemDev("ase1-w3")
	if err := l.e.Reconfigure(bigger, []PortSpec{{Node: bigger.NodeByName("ase1-w3"), Dev: dev}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"10.0.1.63", "10.0.2.255"} {
		dev.inject(nil, icmpEcho(t, "10.0.1.8", dst))
	}
	l.devs["ase1-w1"].inject(nil, icmpEcho(t, "10.0.1.6", "10.0.1.63"))
	l.expectDrops(t, DropBroadcast, 3)
	before := l.e.DropTotals()["broadcast"]
	if err := l.e.Reconfigure(topology.Default(), nil, []string{"ase1-w3"}); err != nil {
		t.Fatal(err)
	}
	for _, st := range l.e.Stats() {
		if st.Node == "ase1-w3" {
			t.Fatalf("ase1-w3 is still among the ports after it was removed")
		}
	}
	if after := l.e.DropTotals()["broadcast"]; before != 3 || after != 3 {
		t.Errorf("broadcast drops: %d before ase1-w3 (which dropped 2) was removed, %d after; want 3 and 3", before, after)
	}
	if n := l.e.Drops(DropBroadcast); n != 3 {
		t.Errorf("Drops(broadcast) = %d after removing ase1-w3, want 3", n)
	}
}

// threeWorkers is the default lab with ase1 scaled to three workers, as
// apply would scale it: ase1-w3 at 10.0.1.8.
func threeWorkers(t *testing.T) *topology.Topology {
	return parseLab(t, "    workers: 2\n    apps:\n      - name: app1", "    workers: 3\n    apps:\n      - name: app1")
}
