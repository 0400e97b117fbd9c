package labs

import (
	"fmt"
	"strings"
	"testing"
)

// Every lab folder loads: its checks parse, its topologies are valid, and
// its guide names it and the facts it teaches.
func TestAllLabsLoad(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 9 {
		t.Errorf("%d labs, want at least the nine of issue 9", len(all))
	}
	for i, l := range all {
		if l.Number != i+1 {
			t.Errorf("lab %s has number %d, want %d: labs are numbered without gaps", l.Dir, l.Number, i+1)
		}
		if want := fmt.Sprintf("# Lab %d: %s\n", l.Number, l.Title); !strings.HasPrefix(l.Guide, want) {
			t.Errorf("%s/README.md should start with %q", l.Dir, want)
		}
		for _, f := range l.Facts {
			if !strings.Contains(l.Guide, f) {
				t.Errorf("%s/README.md does not mention %s, a fact the lab teaches", l.Dir, f)
			}
		}
		if !strings.Contains(l.Guide, fmt.Sprintf("emulator lab start %d\n", l.Number)) {
			t.Errorf("%s/README.md never starts the lab", l.Dir)
		}
		// A learner given only the binary has no scripts/labs to read.
		if !strings.Contains(l.Guide, fmt.Sprintf("`emulator lab files %d DIR`", l.Number)) {
			t.Errorf("%s/README.md does not say how to get it and the lab's files with only the binary (emulator lab files %d DIR)", l.Dir, l.Number)
		}
	}
	if _, err := Get(len(all) + 1); err == nil || !strings.Contains(err.Error(), "emulator lab list") {
		t.Errorf("Get of a missing lab: %v", err)
	}
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		p      Probe
		exit   int
		out    string
		ok     bool
		reason string
	}{
		{Probe{}, 0, "", true, ""},
		{Probe{}, 1, "", false, "status 1"},
		// A probe whose command never ran says why, not only its status.
		{Probe{}, 2, "emulator: exec: lab lab has no node \"ase1-w3\"; its nodes are: db1\n", false, `status 2: exec: lab lab has no node "ase1-w3"`},
		{Probe{Fails: true}, 0, "", false, "should fail"},
		{Probe{Fails: true}, 28, "", true, ""},
		// A probe that must fail but could not run at all proves nothing.
		{Probe{Fails: true}, 127, "emulator: exec: curl: command not found in $PATH; ...\n", false, "could not run"},
		{Probe{Fails: true}, 127, "", false, "could not run"},
		{Probe{Fails: true}, 1, "emulator: lab lab is not running\n", false, "could not run"},
		{Probe{Match: `you are 10\.0\.1\.7:`}, 0, "db1: you are 10.0.1.7:5000", true, ""},
		{Probe{Match: `you are 10\.0\.1\.7:`}, 0, "db1: you are 10.0.1.6:5000", false, "does not match"},
		{Probe{NoMatch: `warning`}, 0, "warning: VM db1", false, "matches"},
	} {
		ok, why := c.p.Judge(c.exit, c.out)
		if ok != c.ok || !strings.Contains(why, c.reason) {
			t.Errorf("%+v on exit %d, %q: got %v %q, want %v %q", c.p, c.exit, c.out, ok, why, c.ok, c.reason)
		}
	}
}

func TestProbeValidate(t *testing.T) {
	for _, p := range []Probe{
		{},
		{Exec: []string{"db1"}},
		{Emulator: []string{"apply", "-f", "x.yaml"}},
		{Exec: []string{"db1", "true"}, Emulator: []string{"status"}},
		{Emulator: []string{"status"}, Match: "("},
	} {
		if err := p.validate(); err == nil {
			t.Errorf("%+v: want an error", p)
		}
	}
}

// A step's after: names other steps of the lab, and never comes back to
// itself: such a step could never pass.
func TestAfterValidate(t *testing.T) {
	l, err := Get(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.validate(); err != nil {
		t.Fatalf("lab 4 as shipped: %v", err)
	}
	for _, c := range []struct {
		after map[int][]int // by step index
		want  string
	}{
		{map[int][]int{1: {0}}, "not another step"},
		{map[int][]int{1: {2}}, "not another step"},
		{map[int][]int{1: {len(l.Steps) + 1}}, "not another step"},
		{map[int][]int{0: {2}, 1: {1}}, "comes back to it"},
	} {
		bad := *l
		bad.Steps = append([]Step(nil), l.Steps...)
		for i, a := range c.after {
			bad.Steps[i].After = a
		}
		if err := bad.validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("after %v: got %v, want an error saying %q", c.after, err, c.want)
		}
	}
}
