package test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Labs of a class share one machine and reuse the same addresses: one
// learner's traffic must never reach another's nodes. echo and db1 take no
// part in the labs' own health checks, so in a lab nobody uses their
// counters stay where they are whatever the other lab sends them.
func TestClassroomLabsKeepTheirTraffic(t *testing.T) {
	quiet, busy := upLab(t), upLab(t)
	before := map[string]uint64{"echo": quiet.node("echo").RxPackets, "db1": quiet.node("db1").RxPackets}

	for range 3 {
		busy.mustExec("client", "curl", "-s", "-m", "5", "http://echo.example.net/")
		busy.mustExec("ase1-w1", "ping", "-c", "1", "-W", "2", "10.0.2.4")
	}
	if n := busy.node("echo").RxPackets; n == 0 {
		t.Fatalf("lab %s: echo received nothing from its own client", busy.name)
	}
	for node, n := range before {
		if after := quiet.node(node).RxPackets; after != n {
			t.Errorf("lab %s: %s received %d packets while only lab %s had traffic for it", quiet.name, node, after-n, busy.name)
		}
	}
}

// Learners copy the README's --metrics port: the second one's up must say
// which lab serves it, and leave nothing behind.
func TestClassroomMetricsPortTaken(t *testing.T) {
	first := upLab(t, "--metrics", "127.0.0.1:0")
	var st struct {
		Metrics string `json:"metrics"`
	}
	r := emu(t, "status", "--json", "--name", first.name)
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || !strings.HasPrefix(st.Metrics, "http://127.0.0.1:") {
		t.Fatalf("status of %s: metrics %q (%v)\n%v", first.name, st.Metrics, err, r)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(st.Metrics, "http://"), "/metrics")

	second := &lab{t: t, name: uniqueName()}
	t.Cleanup(second.down)
	r = emu(t, "up", "-d", "--name", second.name, "--metrics", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "lab "+first.name) {
		t.Errorf("up of a second lab on %s's metrics port %s: want exit 1 naming lab %s; got %v", first.name, addr, first.name, r)
	}
	if left := second.leftovers(); len(left) > 0 {
		t.Errorf("the refused up left: %s", strings.Join(left, "; "))
	}
}

// A learner who forgot EMULATOR_LAB hears which labs run, in the order
// the teacher numbered them.
func TestClassroomRunningLabsInOrder(t *testing.T) {
	base := uniqueName()
	var names []string
	for _, n := range []string{"-10", "-2"} {
		l := &lab{t: t, name: base + n}
		t.Cleanup(l.down)
		if r := emu(t, "up", "-d", "--name", l.name); r.code != 0 {
			t.Fatalf("up %s: %v", l.name, r)
		}
		names = append(names, l.name)
	}
	r := emu(t, "status", "--name", base+"-1")
	i2, i10 := strings.Index(r.stderr, names[1]+","), strings.Index(r.stderr, names[0])
	if r.code != 1 || i2 < 0 || i10 < 0 || i2 > i10 {
		t.Errorf("status of a lab that does not run: want exit 1 listing %s before %s; got %v", names[1], names[0], r)
	}
}

// A learner whose sudo dropped EMULATOR_LAB starts their lab on another's
// name: the refusal must say since when that lab runs and how to run
// theirs beside it, not only the reset that would take the other's down.
func TestClassroomStartOnAnothersLab(t *testing.T) {
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(l.down)
	if r := emu(t, "lab", "start", "1", "--name", l.name); r.code != 0 {
		t.Fatalf("lab start 1: %v", r)
	}
	for _, n := range []string{"1", "2"} {
		r := emu(t, "lab", "start", n, "--name", l.name)
		if r.code != 2 || !strings.Contains(r.stderr, "ago)") || !strings.Contains(r.stderr, "beside it: export EMULATOR_LAB=NAME, then "+emulator+" lab start "+n) {
			t.Errorf("lab start %s on a lab that runs lab 1: want exit 2 saying since when it runs and how to start one beside it; got %v", n, r)
		}
	}
}

// A learner whose sudo dropped EMULATOR_LAB runs down on the default name:
// "nothing to do" alone let them think their lab gone while it ran on.
func TestClassroomDownOfNoLabNamesRunning(t *testing.T) {
	l := upLab(t)
	r := emu(t, "down", "--name", uniqueName())
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to do; running: ") || !strings.Contains(r.stdout, l.name) {
		t.Errorf("down of a lab that does not run while %s runs: want exit 0, nothing to do, naming %s; got %v", l.name, l.name, r)
	}
}
