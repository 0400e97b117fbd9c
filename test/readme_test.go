package test

import (
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
// apps on 80) leaves nc -l nothing to bind, and db1 reaches the app instead.
func TestReadmeListener(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	listen := regexp.MustCompile(`emulator exec ase1-w1 -- nc -lv (\d+) &`).FindStringSubmatch(string(readme))
	connect := regexp.MustCompile(`emulator exec db1 -- nc -v 10\.0\.1\.6 (\d+)`).FindStringSubmatch(string(readme))
	if listen == nil || connect == nil {
		t.Fatalf("the README's listener walk-through is gone: listen %q, connect %q", listen, connect)
	}
	if listen[1] != connect[1] {
		t.Fatalf("the README listens on %s but connects to %s", listen[1], connect[1])
	}
	l := upLab(t)
	nc := l.background("ase1-w1", "nc", "-lv", listen[1])
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
