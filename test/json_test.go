package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// flowLogJSON is `flowlog --json` and status's flowLogs.
type flowLogJSON struct {
	Enabled   bool   `json:"enabled"`
	Directory string `json:"directory"`
	Current   string `json:"current"`
	Lost      uint64 `json:"lost"`
}

// flowlog --json answers the query and the on/off forms with the state the
// lab is in afterwards, the same as status --json reports.
func TestFlowlogJSON(t *testing.T) {
	l := upLab(t)
	dir := filepath.Join("/run/emulator", l.name, "flowlogs")
	for _, c := range []struct {
		args []string
		on   bool
	}{
		{nil, false}, // the default lab starts with flow logs off
		{[]string{"on"}, true},
		{nil, true},
		{[]string{"off"}, false},
	} {
		var got flowLogJSON
		l.emuJSON(&got, "flowlog", c.args...)
		if got.Enabled != c.on || (c.on && got.Directory != dir) {
			t.Errorf("flowlog --json %v = %+v; want enabled %v, directory %s while on", c.args, got, c.on, dir)
		}
		var st struct {
			FlowLogs flowLogJSON `json:"flowLogs"`
		}
		l.emuJSON(&st, "status")
		if st.FlowLogs.Enabled != got.Enabled || st.FlowLogs.Directory != got.Directory {
			t.Errorf("after flowlog --json %v: status says %+v, flowlog said %+v", c.args, st.FlowLogs, got)
		}
	}
}

// labCheckJSON is `lab check --json`.
type labCheckJSON struct {
	Lab   int    `json:"lab"`
	Title string `json:"title"`
	Steps []struct {
		Step    int    `json:"step"`
		Name    string `json:"name"`
		Pass    bool   `json:"pass"`
		Seen    string `json:"seen"`
		Command string `json:"command"`
		Message string `json:"message"`
		Hint    string `json:"hint"`
	} `json:"steps"`
	Done bool `json:"done"`
}

// lab check --json gives each step's result, with the exit status of the
// text form: 1 while a step fails, 0 once all checked pass. Lab 1's checks
// read flows and status, so a fresh lab fails its first step at once.
func TestLabCheckJSON(t *testing.T) {
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(l.down)
	if r := emu(t, "lab", "start", "1", "--name", l.name); r.code != 0 {
		t.Fatalf("lab start 1: %v", r)
	}
	check := func(args ...string) (labCheckJSON, result) {
		t.Helper()
		r := emu(t, append([]string{"lab", "check", "1", "--name", l.name, "--json"}, args...)...)
		var got labCheckJSON
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("lab check 1 --json %v: %v\n%v", args, err, r)
		}
		return got, r
	}

	got, r := check()
	text := emu(t, "lab", "check", "1", "--name", l.name)
	if r.code != 1 || text.code != r.code || !strings.Contains(r.stderr, "steps not done yet") {
		t.Errorf("lab check 1 of a fresh lab: --json exits %d, text %d; want 1 for both, saying steps are not done:\n%v", r.code, text.code, r)
	}
	if got.Lab != 1 || got.Title == "" || got.Done || len(got.Steps) != 3 {
		t.Fatalf("lab check 1 --json of a fresh lab = %+v; want lab 1 with its title, 3 steps, not done", got)
	}
	for i, s := range got.Steps {
		if s.Step != i+1 || s.Name == "" {
			t.Errorf("step %d = %+v; want its number and name", i+1, s)
		}
	}
	if s := got.Steps[0]; s.Pass || s.Command != "emulator flows" || !strings.Contains(s.Message, "does not match") || s.Hint == "" {
		t.Errorf("step 1 of a fresh lab = %+v; want failed, with the probe, why and a hint", s)
	}

	// Checking one step speaks of that step, not of "1 of 1 steps".
	if r := emu(t, "lab", "check", "1", "2", "--name", l.name); r.code != 1 || !strings.Contains(r.stderr, "lab 1: step 2 not done yet") {
		t.Errorf("lab check 1 2 of a fresh lab: want exit 1 saying step 2 is not done yet, got %v", r)
	}

	// Step 1 done; checking only it passes.
	l.mustExec("db1", "ping", "-c", "1", "-W", "2", "10.0.1.7")
	if r := emu(t, "lab", "check", "1", "1", "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "Lab 1: step 1 done.\n") {
		t.Errorf("lab check 1 1 after the ping: want exit 0 saying step 1 is done, got %v", r)
	}
	got, r = check("1")
	if r.code != 0 || !got.Done || len(got.Steps) != 1 {
		t.Fatalf("lab check 1 1 --json after the ping: want exit 0, done, one step: %+v\n%v", got, r)
	}
	if s := got.Steps[0]; s.Step != 1 || !s.Pass || s.Message != "" || s.Command != "" || s.Hint != "" || s.Seen != "" {
		t.Errorf("step 1 after the ping = %+v; want passed, with nothing to fix", s)
	}

	// The ping's flow leaves the table once idle for the lab's timeout
	// (30 minutes in lab 1; a second in the learner's copy applied
	// here): a step the check saw done stays done while the lab runs.
	orig, err := os.ReadFile("../scripts/labs/01-tour/topology.yaml")
	if err != nil {
		t.Fatal(err)
	}
	short := strings.NewReplacer("idleTimeout: 30m", "idleTimeout: 1s", "finTimeout: 30m", "finTimeout: 1s").Replace(string(orig))
	if short == string(orig) {
		t.Fatal("lab 1's topology no longer sets 30-minute timeouts; this test shortens them")
	}
	mine := filepath.Join(t.TempDir(), "lab1.yaml")
	if err := os.WriteFile(mine, []byte(short), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := emu(t, "apply", "--name", l.name, "-f", mine); r.code != 0 {
		t.Fatalf("apply of lab 1 with 1 s timeouts: %v", r)
	}
	for i := 0; strings.Contains(emu(t, "flows", "--name", l.name).stdout, "10.0.2.4 -> 10.0.1.7"); i++ {
		if i == 50 {
			t.Fatal("db1's ping is still in flows 10 s after its idle timeout of 1 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	got, r = check("1")
	if s := got.Steps[0]; r.code != 0 || !s.Pass || s.Seen == "" {
		t.Errorf("lab check 1 1 --json once the ping's flow expired: want exit 0, step 1 passed with when it was seen, got %+v\n%v", got, r)
	}
	if r := emu(t, "lab", "check", "1", "1", "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "(lab check saw it at ") {
		t.Errorf("lab check 1 1 once the ping's flow expired: want exit 0 saying when the check saw it, got %v", r)
	}
	// Nothing remembered passes a step of a lab started over.
	if r := emu(t, "lab", "reset", "1", "--name", l.name); r.code != 0 {
		t.Fatalf("lab reset 1: %v", r)
	}
	if got, r := check("1"); r.code != 1 || got.Steps[0].Pass {
		t.Errorf("lab check 1 1 --json after lab reset 1: want step 1 failed, got %+v\n%v", got, r)
	}
}

// Lists in --json are [] when empty, never null, as flows --json and lab
// list --json already give them: a script's `.evaluated[]` or `.hops[]`
// (jq) fails on null. Cases: verify and trace with no NSG on the way, a
// trace that never reaches the dataplane, status of a lab without ASEs.
func TestJSONListsNeverNull(t *testing.T) {
	l := upLab(t)
	noASE := filepath.Join(t.TempDir(), "hosts.yaml")
	if err := os.WriteFile(noASE, []byte("internetHosts: [{name: client, address: 198.51.100.10}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := upLab(t, "-f", noASE)
	for _, c := range []struct {
		lab  *lab
		args []string
	}{
		{l, []string{"verify", "--from", "client", "--to", "192.23.1.2:80"}},
		{l, []string{"trace", "--from", "client", "--to", "192.23.1.2:80"}},
		{l, []string{"trace", "--from", "client", "--to", "127.0.0.1:80"}}, // stays inside client
		{m, []string{"status"}},
		{l, []string{"dns"}}, // the health checks' AAAA queries, which have no answers
		{m, []string{"dns"}},
	} {
		r := emu(t, append(c.args, "--name", c.lab.name, "--json")...)
		var v any
		if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil {
			t.Fatalf("emulator %s --json: %v, %v", strings.Join(c.args, " "), err, r)
		}
		if path := nullAt(v, ""); path != "" {
			t.Errorf("emulator %s --json has null at %s: %s", strings.Join(c.args, " "), path, r.stdout)
		}
	}
}

// nullAt returns the path of the first null in v, or "".
func nullAt(v any, path string) string {
	switch v := v.(type) {
	case nil:
		return path
	case map[string]any:
		for k, e := range v {
			if p := nullAt(e, path+"."+k); p != "" {
				return p
			}
		}
	case []any:
		for i, e := range v {
			if p := nullAt(e, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}
