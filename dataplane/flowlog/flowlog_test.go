package flowlog

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/nat"
)

func key(src string, sport uint16, dst string, dport uint16) nat.Key {
	return nat.Key{Src: header.AddrFromNetip(netip.MustParseAddr(src)), Dst: header.AddrFromNetip(netip.MustParseAddr(dst)),
		SrcPort: sport, DstPort: dport, Proto: header.ProtoTCP}
}

// Begin, end and deny events become version 2 records: one per NSG and
// NIC, tuples under their rule, one file per minute.
func TestWriter(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	allow := &nsg.Rule{NSG: "vm-nsg", Name: "AllowInternetOutBound", Priority: 65001, Allow: true, Default: true}
	deny := &nsg.Rule{NSG: "vm-nsg", Name: "DenyASE1SQL", Priority: 100}
	out := key("10.0.2.4", 40000, "203.0.113.10", 80)
	in := key("10.0.1.6", 41000, "10.0.2.4", 1433)
	t0 := time.Date(2026, 11, 23, 21, 0, 5, 0, time.UTC)

	begin := dataplane.FlowEvent{Time: t0, State: dataplane.FlowBegin, Orig: out, Xl: out}
	w.addLocked(begin, []dataplane.FlowNSG{{Node: "db1", Direction: nsg.Outbound, Rule: allow, Tuple: out}})
	w.addLocked(dataplane.FlowEvent{Time: t0.Add(time.Second), State: dataplane.FlowDeny, Orig: in, Xl: in},
		[]dataplane.FlowNSG{{Node: "db1", Direction: nsg.Inbound, Rule: deny, Tuple: in}})
	end := dataplane.FlowEvent{Time: t0.Add(2 * time.Second), State: dataplane.FlowEnd, Orig: out, Xl: out,
		Packets: [2]uint64{6, 4}, Bytes: [2]uint64{388, 343}}
	w.addLocked(end, w.begun[out].nsgs)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(w.begun) != 0 {
		t.Errorf("an ended flow is still remembered: %v", w.begun)
	}
	want := filepath.Join(dir, "y=2026/m=11/d=23/h=21/m=00/PT1M.json")
	if w.Current() != want {
		t.Fatalf("file %s, want %s", w.Current(), want)
	}
	var f File
	b, _ := os.ReadFile(want)
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Records) != 1 {
		t.Fatalf("%d records, want one for vm-nsg at db1's NIC: %s", len(f.Records), b)
	}
	r := f.Records[0]
	if r.Category != "NetworkSecurityGroupFlowEvent" || r.OperationName != "NetworkSecurityGroupFlowEvents" || r.Properties.Version != 2 ||
		r.MACAddress != "000D3A000204" || r.Time != "2026-11-23T21:00:00.0000000Z" ||
		r.ResourceID != "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/LAB/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/VM-NSG" {
		t.Errorf("record header %+v", r)
	}
	got := map[string][]string{}
	for _, rf := range r.Properties.Flows {
		for _, mf := range rf.Flows {
			if mf.MAC != r.MACAddress {
				t.Errorf("tuples under MAC %s in the record of %s", mf.MAC, r.MACAddress)
			}
			got[rf.Rule] = append(got[rf.Rule], mf.FlowTuples...)
		}
	}
	wantTuples := map[string][]string{
		"DefaultRule_AllowInternetOutBound": {
			"1795467605,10.0.2.4,203.0.113.10,40000,80,T,O,A,B,,,,",
			"1795467607,10.0.2.4,203.0.113.10,40000,80,T,O,A,E,6,388,4,343",
		},
		"UserRule_DenyASE1SQL": {"1795467606,10.0.1.6,10.0.2.4,41000,1433,T,I,D,B,,,,"},
	}
	for rule, ts := range wantTuples {
		if len(got[rule]) != len(ts) {
			t.Errorf("%s: tuples %v, want %v", rule, got[rule], ts)
			continue
		}
		for i := range ts {
			if got[rule][i] != ts[i] {
				t.Errorf("%s tuple %d = %s, want %s", rule, i, got[rule][i], ts[i])
			}
		}
	}

	// The next minute starts a new file and leaves the last one complete.
	w.addLocked(dataplane.FlowEvent{Time: t0.Add(time.Minute), State: dataplane.FlowBegin, Orig: out, Xl: out},
		[]dataplane.FlowNSG{{Node: "db1", Direction: nsg.Outbound, Rule: allow, Tuple: out}})
	w.Flush()
	if w.Current() == want {
		t.Error("a new minute wrote into the old minute's file")
	}
	if b2, _ := os.ReadFile(want); string(b2) != string(b) {
		t.Error("the old minute's file changed")
	}
}

// Events reach the writer from several dataplane workers and the conntrack
// sweeper, each stamped before it is queued, so one stamped just before a
// minute ends can arrive after one of the next minute. That late event
// must not replace the finished minute's file with itself alone.
func TestWriterLateEventKeepsFiles(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	allow := &nsg.Rule{NSG: "vm-nsg", Name: "AllowInternetOutBound", Priority: 65001, Allow: true, Default: true}
	t0 := time.Date(2026, 11, 23, 21, 0, 59, 900_000_000, time.UTC)
	times := []time.Time{t0, t0.Add(200 * time.Millisecond), t0.Add(50 * time.Millisecond)}
	for i, ts := range times {
		k := key("10.0.2.4", uint16(40000+i), "203.0.113.10", 80)
		w.addLocked(dataplane.FlowEvent{Time: ts, State: dataplane.FlowBegin, Orig: k, Xl: k},
			[]dataplane.FlowNSG{{Node: "db1", Direction: nsg.Outbound, Rule: allow, Tuple: k}})
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range []string{"00", "01"} {
		b, err := os.ReadFile(filepath.Join(dir, "y=2026/m=11/d=23/h=21/m="+m+"/PT1M.json"))
		if err != nil {
			t.Fatal(err)
		}
		var f File
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Records {
			for _, rf := range r.Properties.Flows {
				for _, mf := range rf.Flows {
					for _, tu := range mf.FlowTuples {
						if seen[tu] {
							t.Errorf("tuple %s logged twice", tu)
						}
						seen[tu] = true
					}
				}
			}
		}
	}
	if len(seen) != len(times) {
		t.Errorf("%d tuples in the files, want %d: %v", len(seen), len(times), seen)
	}
}

// Turning logging off stops the subscription and then the writer: the
// events still queued happened while logging was on and belong in the file.
func TestWriterStopKeepsQueuedEvents(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	allow := &nsg.Rule{NSG: "vm-nsg", Name: "AllowInternetOutBound", Priority: 65001, Allow: true, Default: true}
	t0 := time.Date(2026, 11, 23, 21, 0, 5, 0, time.UTC)
	const n = 64
	events := make(chan dataplane.FlowEvent, n)
	for i := range n {
		k := key("10.0.2.4", uint16(40000+i), "203.0.113.10", 80)
		// Ends of flows whose beginning the writer saw carry their NSGs
		// with them, so these events need no dataplane snapshot.
		w.begun[k] = &begun{nsgs: []dataplane.FlowNSG{{Node: "db1", Direction: nsg.Outbound, Rule: allow, Tuple: k}}}
		events <- dataplane.FlowEvent{Time: t0, State: dataplane.FlowEnd, Orig: k, Xl: k, Packets: [2]uint64{1, 1}, Bytes: [2]uint64{60, 60}}
	}
	stop := make(chan struct{})
	close(stop)
	w.run(events, func() []dataplane.FlowEvent { return nil }, stop)
	b, err := os.ReadFile(filepath.Join(dir, "y=2026/m=11/d=23/h=21/m=00/PT1M.json"))
	if err != nil {
		t.Fatalf("nothing written: %v", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, r := range f.Records {
		for _, rf := range r.Properties.Flows {
			for _, mf := range rf.Flows {
				got += len(mf.FlowTuples)
			}
		}
	}
	if got != n {
		t.Errorf("%d of %d queued events logged when logging stopped", got, n)
	}
}

// tuplesOf reads the tuples of the minute file at path, by rule.
func tuplesOf(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, r := range f.Records {
		for _, rf := range r.Properties.Flows {
			for _, mf := range rf.Flows {
				got[rf.Rule] = append(got[rf.Rule], mf.FlowTuples...)
			}
		}
	}
	return got
}

// A denied TCP connect is one flow however many SYNs the client's kernel
// resends with the same tuple: Azure logs flows, one tuple per flow in a
// minute's record, not one per packet. A later minute logs it again, as
// it would any flow the NSG still sees then.
func TestWriterDeniedRetriesOneTuple(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	deny := &nsg.Rule{NSG: "vm-nsg", Name: "DenyASE1SQL", Priority: 100}
	in := key("10.0.1.6", 41000, "10.0.2.4", 1433)
	other := key("10.0.1.6", 41001, "10.0.2.4", 1433)
	t0 := time.Date(2026, 11, 23, 21, 0, 5, 0, time.UTC)
	denied := func(at time.Duration, k nat.Key) {
		w.addLocked(dataplane.FlowEvent{Time: t0.Add(at), State: dataplane.FlowDeny, Orig: k, Xl: k},
			[]dataplane.FlowNSG{{Node: "db1", Direction: nsg.Inbound, Rule: deny, Tuple: k}})
	}
	// Linux resends a SYN after 1, 3, 7, 15 and 31 s.
	for _, s := range []time.Duration{0, 1, 3, 7, 15, 31} {
		denied(s*time.Second, in)
	}
	denied(2*time.Second, other)
	denied(63*time.Second, in) // the next minute
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	first := tuplesOf(t, filepath.Join(dir, "y=2026/m=11/d=23/h=21/m=00/PT1M.json"))["UserRule_DenyASE1SQL"]
	want := []string{"1795467605,10.0.1.6,10.0.2.4,41000,1433,T,I,D,B,,,,", "1795467607,10.0.1.6,10.0.2.4,41001,1433,T,I,D,B,,,,"}
	if len(first) != len(want) || first[0] != want[0] || first[1] != want[1] {
		t.Errorf("first minute's denied tuples %v, want %v: one per flow", first, want)
	}
	next := tuplesOf(t, filepath.Join(dir, "y=2026/m=11/d=23/h=21/m=01/PT1M.json"))["UserRule_DenyASE1SQL"]
	if len(next) != 1 || next[0] != "1795467668,10.0.1.6,10.0.2.4,41000,1433,T,I,D,B,,,," {
		t.Errorf("next minute's denied tuples %v, want the flow's retry there once", next)
	}
}

// A flow that lives on gets a continuing (C) tuple every ContinueEvery
// with what it carried since its last tuple, as Azure gives statistics of
// ongoing flows; its end (E) then counts from the last C, so that the
// tuples of a flow add up to its traffic.
func TestWriterContinuing(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	allow := &nsg.Rule{NSG: "vm-nsg", Name: "AllowInternetOutBound", Priority: 65001, Allow: true, Default: true}
	out := key("10.0.2.4", 40000, "203.0.113.10", 80)
	short := key("10.0.2.4", 40001, "203.0.113.10", 80)
	t0 := time.Date(2026, 11, 23, 21, 0, 5, 0, time.UTC)
	for _, k := range []nat.Key{out, short} {
		w.addLocked(dataplane.FlowEvent{Time: t0, State: dataplane.FlowBegin, Orig: k, Xl: k},
			[]dataplane.FlowNSG{{Node: "db1", Direction: nsg.Outbound, Rule: allow, Tuple: k}})
	}
	var live []dataplane.FlowEvent
	asked := 0
	liveFlows := func() []dataplane.FlowEvent { asked++; return live }

	// Not yet due: the live flows are not even read.
	live = []dataplane.FlowEvent{counted(out, 10, 1000, 8, 5000), counted(short, 1, 60, 1, 60)}
	w.continueFlows(t0.Add(ContinueEvery-time.Second), liveFlows)
	if asked != 0 {
		t.Errorf("read the live flows %d times before any was due", asked)
	}
	// Due: both get a C with their counters so far.
	t1 := t0.Add(ContinueEvery + time.Second)
	w.continueFlows(t1, liveFlows)
	if asked != 1 {
		t.Fatalf("read the live flows %d times for one due interval", asked)
	}
	// The short flow ends, the long one carries on for another interval.
	w.Add(dataplane.FlowEvent{Time: t1.Add(time.Second), State: dataplane.FlowEnd, Orig: short, Xl: short,
		Packets: [2]uint64{3, 2}, Bytes: [2]uint64{180, 120}})
	live = []dataplane.FlowEvent{counted(out, 15, 1500, 12, 7000)}
	t2 := t1.Add(ContinueEvery)
	w.continueFlows(t2, liveFlows)
	w.Add(dataplane.FlowEvent{Time: t2.Add(time.Second), State: dataplane.FlowEnd, Orig: out, Xl: out,
		Packets: [2]uint64{16, 13}, Bytes: [2]uint64{1560, 7060}})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	var got []string
	for _, m := range []string{"00", "05", "10"} {
		got = append(got, tuplesOf(t, filepath.Join(dir, "y=2026/m=11/d=23/h=21/m="+m+"/PT1M.json"))["DefaultRule_AllowInternetOutBound"]...)
	}
	ts := func(d time.Time) string { return strconv.FormatInt(d.Unix(), 10) }
	want := []string{
		ts(t0) + ",10.0.2.4,203.0.113.10,40000,80,T,O,A,B,,,,",
		ts(t0) + ",10.0.2.4,203.0.113.10,40001,80,T,O,A,B,,,,",
		ts(t1) + ",10.0.2.4,203.0.113.10,40000,80,T,O,A,C,10,1000,8,5000",
		ts(t1) + ",10.0.2.4,203.0.113.10,40001,80,T,O,A,C,1,60,1,60",
		ts(t1.Add(time.Second)) + ",10.0.2.4,203.0.113.10,40001,80,T,O,A,E,2,120,1,60",
		ts(t2) + ",10.0.2.4,203.0.113.10,40000,80,T,O,A,C,5,500,4,2000",
		ts(t2.Add(time.Second)) + ",10.0.2.4,203.0.113.10,40000,80,T,O,A,E,1,60,1,60",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tuples:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(w.begun) != 0 {
		t.Errorf("ended flows still remembered: %v", w.begun)
	}
}

// A flow the destination's NSG denies may have been allowed by the
// source's: that NSG logs it as allowed, and a resent SYN is the same
// flow there too, not another A,B tuple for each.
func TestWriterDeniedRetriesAllowedAtSource(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	allow := &nsg.Rule{NSG: "ase1-nsg", Name: "AllowVnetOutBound", Priority: 65000, Allow: true, Default: true}
	deny := &nsg.Rule{NSG: "vm-nsg", Name: "DenyASE1SQL", Priority: 100}
	k := key("10.0.1.6", 41000, "10.0.2.4", 1433)
	t0 := time.Date(2026, 11, 23, 21, 0, 5, 0, time.UTC)
	for _, s := range []time.Duration{0, 1, 3, 7} {
		w.addLocked(dataplane.FlowEvent{Time: t0.Add(s * time.Second), State: dataplane.FlowDeny, Orig: k, Xl: k},
			[]dataplane.FlowNSG{{Node: "ase1-w1", Direction: nsg.Outbound, Rule: allow, Tuple: k}, {Node: "db1", Direction: nsg.Inbound, Rule: deny, Tuple: k}})
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := tuplesOf(t, filepath.Join(dir, "y=2026/m=11/d=23/h=21/m=00/PT1M.json"))
	if a := got["DefaultRule_AllowVnetOutBound"]; len(a) != 1 || a[0] != "1795467605,10.0.1.6,10.0.2.4,41000,1433,T,O,A,B,,,," {
		t.Errorf("source NSG's tuples %v, want the flow's A,B once", a)
	}
	if d := got["UserRule_DenyASE1SQL"]; len(d) != 1 {
		t.Errorf("destination NSG's tuples %v, want the flow's D,B once", d)
	}
}

// counted is live flow k as FlowEvents.Live gives it, with its counters.
func counted(k nat.Key, p0, b0, p1, b1 uint64) dataplane.FlowEvent {
	return dataplane.FlowEvent{Orig: k, Xl: k, Packets: [2]uint64{p0, p1}, Bytes: [2]uint64{b0, b1}}
}

// A flow already live when logging begins has no B tuple, but gets its C
// tuples and its E, each counting from when logging began; before, it got
// no C however long it lived, and an E counting from its start.
func TestWriterAdoptsLiveFlows(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	allow := &nsg.Rule{NSG: "vm-nsg", Name: "AllowInternetOutBound", Priority: 65001, Allow: true, Default: true}
	k := key("10.0.2.4", 40000, "203.0.113.10", 80)
	t0 := time.Date(2026, 11, 23, 21, 0, 5, 0, time.UTC)
	w.mu.Lock()
	w.adoptLocked(t0, counted(k, 100, 9000, 80, 50000), []dataplane.FlowNSG{{Node: "db1", Direction: nsg.Outbound, Rule: allow, Tuple: k}})
	w.mu.Unlock()
	t1 := t0.Add(ContinueEvery)
	w.continueFlows(t1, func() []dataplane.FlowEvent { return []dataplane.FlowEvent{counted(k, 110, 9600, 85, 60000)} })
	w.Add(dataplane.FlowEvent{Time: t1.Add(time.Second), State: dataplane.FlowEnd, Orig: k, Xl: k,
		Packets: [2]uint64{111, 86}, Bytes: [2]uint64{9660, 60060}})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := tuplesOf(t, filepath.Join(dir, "y=2026/m=11/d=23/h=21/m=05/PT1M.json"))["DefaultRule_AllowInternetOutBound"]
	ts := func(d time.Time) string { return strconv.FormatInt(d.Unix(), 10) }
	want := []string{
		ts(t1) + ",10.0.2.4,203.0.113.10,40000,80,T,O,A,C,10,600,5,10000",
		ts(t1.Add(time.Second)) + ",10.0.2.4,203.0.113.10,40000,80,T,O,A,E,1,60,1,60",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tuples of a flow live when logging began:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A flow the source's NSG allowed and the destination's denied never
// enters conntrack, so no E came for it: the source NSG's log showed it
// begin and never end. Now it ends, with what it sent, once nothing of it
// came for the idle timeout, as conntrack ends an unanswered flow; a flow
// that keeps sending gets its C tuples meanwhile.
func TestWriterHalfOpenFlowEnds(t *testing.T) {
	dir := t.TempDir()
	w := New(dir, "lab")
	w.idle = func() time.Duration { return 20 * time.Second }
	allow := &nsg.Rule{NSG: "vm-nsg", Name: "AllowVnetOutBound", Priority: 65000, Allow: true, Default: true}
	deny := &nsg.Rule{NSG: "ase1-nsg", Name: "Deny8080", Priority: 100}
	k := key("10.0.2.4", 41000, "10.0.1.6", 8080)
	udp := key("10.0.2.4", 41001, "10.0.1.6", 8080)
	udp.Proto = header.ProtoUDP
	t0 := time.Date(2026, 11, 23, 21, 0, 5, 0, time.UTC)
	denied := func(at time.Duration, k nat.Key) {
		w.addLocked(dataplane.FlowEvent{Time: t0.Add(at), State: dataplane.FlowDeny, Orig: k, Xl: k, Packets: [2]uint64{1, 0}, Bytes: [2]uint64{60, 0}},
			[]dataplane.FlowNSG{{Node: "db1", Direction: nsg.Outbound, Rule: allow, Tuple: k}, {Node: "ase1-w1", Direction: nsg.Inbound, Rule: deny, Tuple: k}})
	}
	datagrams := func(from, to time.Duration) { // one every 10 s: a flow that goes on
		for s := from; s <= to; s += 10 {
			denied(s*time.Second, udp)
		}
	}
	for _, s := range []time.Duration{0, 1, 3, 7} {
		denied(s*time.Second, k)
	}
	datagrams(0, 20)
	w.endHalfOpen(t0.Add(26 * time.Second)) // 19 s after the last SYN: not yet
	w.endHalfOpen(t0.Add(27 * time.Second))
	datagrams(30, 300)
	w.endHalfOpen(t0.Add(ContinueEvery))
	datagrams(310, 360)
	w.endHalfOpen(t0.Add(380 * time.Second))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, tuplesOf(t, path)["DefaultRule_AllowVnetOutBound"]...)
		}
		return nil
	})
	ts := func(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }
	want := []string{
		ts(0) + ",10.0.2.4,10.0.1.6,41000,8080,T,O,A,B,,,,",
		ts(0) + ",10.0.2.4,10.0.1.6,41001,8080,U,O,A,B,,,,",
		ts(27*time.Second) + ",10.0.2.4,10.0.1.6,41000,8080,T,O,A,E,4,240,0,0",
		ts(ContinueEvery) + ",10.0.2.4,10.0.1.6,41001,8080,U,O,A,C,31,1860,0,0",
		ts(380*time.Second) + ",10.0.2.4,10.0.1.6,41001,8080,U,O,A,E,6,360,0,0",
	}
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("source NSG's tuples:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(w.half) != 0 {
		t.Errorf("ended half-open flows still remembered: %v", w.half)
	}
}
