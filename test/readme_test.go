package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's first walk-through puts a listener on ase1-w1 and connects
// to it from db1 to show that the worker sees db1's own address (F4). Run
// those two lines as written: a port the worker's own services hold (the
// apps on 80) leaves nc -l nothing to bind, and db1 reaches the app instead;
// and without -n, nc names db1 by its reverse DNS record rather than show
// the address the walk-through is about.
func TestReadmeListener(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	listen := regexp.MustCompile(`emulator exec ase1-w1 -- nc -lnv (\d+) &`).FindStringSubmatch(string(readme))
	connect := regexp.MustCompile(`emulator exec db1 -- nc -v 10\.0\.1\.6 (\d+)`).FindStringSubmatch(string(readme))
	if listen == nil || connect == nil {
		t.Fatalf("the README's listener walk-through is gone: listen %q, connect %q", listen, connect)
	}
	if listen[1] != connect[1] {
		t.Fatalf("the README listens on %s but connects to %s", listen[1], connect[1])
	}
	l := upLab(t)
	nc := l.background("ase1-w1", "nc", "-lnv", listen[1])
	port, _ := strconv.Atoi(listen[1])
	l.waitListening("ase1-w1", port)
	l.exec("db1", 10*time.Second, "sh", "-c", "echo hello | nc -v -q1 -w3 10.0.1.6 "+connect[1])
	r := nc.wait()
	if out := r.stdout + r.stderr; !strings.Contains(out, "10.0.2.4") || !strings.Contains(out, "hello") {
		t.Errorf("the listener on ase1-w1 should see db1's 10.0.2.4 and its line: %v", r)
	}
}

// The README's verify example names the lab it comes from; run there, it
// prints what the README shows.
func TestReadmeVerify(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)In lab (\\d+)'s topology.*?```\n\\$ emulator verify ([^\n]*)\n(.*?)```").FindStringSubmatch(string(readme))
	if m == nil {
		t.Fatal("the README's verify example does not say which lab's topology it runs in")
	}
	dir, err := filepath.Glob("../scripts/labs/0" + m[1] + "-*/topology.yaml")
	if err != nil || len(dir) != 1 {
		t.Fatalf("lab %s's topology: %v %v", m[1], dir, err)
	}
	l := upLab(t, "-f", dir[0])
	r := emu(t, append([]string{"verify", "--name", l.name}, strings.Fields(m[2])...)...)
	if r.stdout != m[3] {
		t.Errorf("the README shows\n%s\nverify printed\n%s", m[3], r.stdout)
	}
}

// Every field a --json output has is one the README's table of --json
// fields names for that command, so a script written from the README reads
// what is there, and a renamed field fails here before it fails a script.
// Lab 5's topology has an NSG, so verify and trace evaluate rules and
// status lists them; a flow and flow logs fill flows and flowlog.
func TestReadmeJSONFields(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| `(\\w+)[^|]*\\| (.*) \\|$")
	name := regexp.MustCompile("`(\\w+)`")
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		if documented[m[1]] == nil {
			documented[m[1]] = map[string]bool{}
		}
		for _, f := range name.FindAllStringSubmatch(m[2], -1) {
			documented[m[1]][f[1]] = true
		}
	}
	l := upLab(t, "-f", "../scripts/labs/05-ase-to-ase/topology.yaml", "--metrics", "127.0.0.1:0")
	l.mustExec("client", "curl", "-s", "-m", "5", "http://app1.ase1.p.azurewebsites.net/")
	if r := emu(t, "flowlog", "--name", l.name, "on"); r.code != 0 {
		t.Fatalf("flowlog on: %v", r)
	}
	for _, c := range [][]string{
		{"status"},
		{"flows"},
		{"dns"},
		{"verify", "--from", "client", "--to", "192.23.2.2:80"},
		{"nexthop", "--from", "ase1-w1", "--to", "203.0.113.10"},
		{"trace", "--from", "client", "--to", "192.23.2.2:80"},
		{"trace", "--from", "ase1-w1", "--to", "203.0.113.10:80"},
		{"flowlog"},
		{"lab", "list"},
		{"lab", "check", "5"},
	} {
		var out any
		if c[0] == "lab" {
			// lab check exits 1 while a step fails, as here.
			r := emu(t, append(c, "--name", l.name, "--json")...)
			if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
				t.Fatalf("emulator %s --json: %v\n%v", strings.Join(c, " "), err, r)
			}
		} else {
			l.emuJSON(&out, c[0], c[1:]...)
		}
		if documented[c[0]] == nil {
			t.Errorf("the README's table of --json fields has no row for %s", c[0])
			continue
		}
		for _, f := range jsonFields(out, 3) {
			if !documented[c[0]][f] {
				t.Errorf("%s --json has field %q, which the README's table of --json fields does not name", strings.Join(c, " "), f)
			}
		}
	}
}

// jsonFields lists the object keys in v down to depth levels of objects,
// through lists; a map of counters by drop reason has no fields to name.
func jsonFields(v any, depth int) []string {
	var fields []string
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			fields = append(fields, jsonFields(e, depth)...)
		}
	case map[string]any:
		if depth == 0 {
			return nil
		}
		for k, e := range v {
			fields = append(fields, k)
			if k != "drops" {
				fields = append(fields, jsonFields(e, depth-1)...)
			}
		}
	}
	return fields
}

// Every command of the README's "First things to try", run as written
// against a lab of this test's own (--name added, lab.db1 renamed), exits
// 0 and prints what its comment promises: each address the comment names,
// and a round trip of at least the milliseconds it names. The nc pair is
// TestReadmeListener's; down is the lab's own teardown.
func TestReadmeFirstThings(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)## First things to try.*?```sh\n(.*?)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("the README has no First things to try block")
	}
	l := upLab(t)
	addr := regexp.MustCompile(`\b\d+\.\d+\.\d+\.\d+\b`)
	ms := regexp.MustCompile(`\b(\d+) ms\b`)
	ran := 0
	for _, line := range strings.Split(string(block[1]), "\n") {
		cmd, comment, _ := strings.Cut(line, " # ")
		words := shellWords(strings.TrimSpace(cmd))
		if len(words) < 3 || words[0] != "sudo" || strings.Contains(cmd, " nc ") {
			continue
		}
		var r result
		switch {
		case words[1] == "bin/emulator" && words[2] == "down":
			continue
		case words[1] == "bin/emulator":
			r = emu(t, append([]string{words[2], "--name", l.name}, words[3:]...)...)
		case words[1] == "ip":
			for i, w := range words {
				if strings.HasPrefix(w, "lab.") {
					words[i] = l.name + "." + strings.TrimPrefix(w, "lab.")
				}
			}
			r = run(t, 30*time.Second, words[1], words[2:]...)
		default:
			t.Errorf("the README runs %q, which this test does not know how to run", cmd)
			continue
		}
		ran++
		if r.code != 0 {
			t.Errorf("%s: %v", cmd, r)
			continue
		}
		for _, a := range addr.FindAllString(comment, -1) {
			if !strings.Contains(r.stdout, a) {
				t.Errorf("%s: the README says %q, but %s is not in what it printed:\n%s", cmd, comment, a, r.stdout)
			}
		}
		if m := ms.FindStringSubmatch(comment); m != nil {
			want, _ := strconv.Atoi(m[1])
			for _, rtt := range regexp.MustCompile(`time=([\d.]+) ms`).FindAllStringSubmatch(r.stdout, -1) {
				if got, _ := strconv.ParseFloat(rtt[1], 64); got < float64(want) {
					t.Errorf("%s: the README says %q, but a round trip took %s ms", cmd, comment, rtt[1])
				}
			}
		}
	}
	if ran < 8 {
		t.Errorf("ran %d of the README's first commands; the block has changed shape", ran)
	}
}

// shellWords splits a command line as sh would for the README's commands:
// on blanks, with single quotes keeping what they enclose.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, c := range s {
		switch {
		case c == '\'':
			quoted, inWord = !quoted, true
		case (c == ' ' || c == '\t') && !quoted:
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
