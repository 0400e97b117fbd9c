package dataplane

import (
	"testing"

	"github.com/aseemu/emulator/nat"
)

func nextEvent(t *testing.T, f *FlowEvents) FlowEvent {
	t.Helper()
	select {
	case ev := <-f.C():
		return ev
	case <-timeout():
		t.Fatal("no flow event")
	}
	return FlowEvent{}
}

// An allowed flow begins with the rule that admitted it, a denied one is
// reported with the rule that denied it, and a flow's end carries its
// counters.
func TestFlowEvents(t *testing.T) {
	l := newLabFrom(t, parseLab(t, ase2NSG...), nil)
	f := l.e.StartFlowEvents()
	defer l.e.StopFlowEvents(f)

	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 43000, "192.23.2.2", 80, true, false))
	l.recvAny(t, "ase2-fe1", "ase2-fe2")
	ev := nextEvent(t, f)
	nsgs := ev.NSGs()
	if ev.State != FlowBegin || ev.Src != "ase1-w1" || len(nsgs) != 1 || nsgs[0].Rule.Name != "AllowASE1VIP" || nsgs[0].Tuple != ev.Xl {
		t.Fatalf("allowed flow: state %c from %s, NSGs %+v, want B from ase1-w1 decided by AllowASE1VIP on the translated tuple", ev.State, ev.Src, nsgs)
	}

	// Live flows carry their counters, for flow logs' continuing tuples,
	// and their NSGs, for flows under way when logging begins.
	if live := f.Live(); len(live) != 1 || live[0].Orig != ev.Orig || live[0].Packets[0] != 1 {
		t.Errorf("live flows %+v, want the allowed flow with 1 packet out", live)
	} else if nsgs := live[0].NSGs(); len(nsgs) != 1 || nsgs[0].Rule.Name != "AllowASE1VIP" {
		t.Errorf("the live flow's NSGs %+v, want AllowASE1VIP", nsgs)
	}

	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 43001, "192.23.2.2", 80, true, false))
	ev = nextEvent(t, f)
	nsgs = ev.NSGs()
	if ev.State != FlowDeny || len(nsgs) != 1 || nsgs[0].Rule.Name != "DenyInternet" || nsgs[0].Rule.Allow {
		t.Fatalf("denied flow: state %c, NSGs %+v, want D by DenyInternet", ev.State, nsgs)
	}

	// End: shorten the idle timeout so the sweeper removes the flow.
	l.e.ct.SetTimeouts(nat.Timeouts{Idle: 1, Fin: 1, Rst: 1})
	l.e.ct.Expire()
	ev = nextEvent(t, f)
	if ev.State != FlowEnd || ev.Packets[0] != 1 || ev.Orig.SrcPort != 43000 {
		t.Fatalf("end event %+v, want E of the allowed flow with 1 packet out", ev)
	}
	if n := l.e.Stats()[l.portIndex("ase1-w1")].Flows; n != 1 {
		t.Errorf("ase1-w1 started %d flows, want 1", n)
	}
}
