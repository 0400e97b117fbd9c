package test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileDir holds the hostile topology files and want.txt, which gives each
// one's expected line, field and message (see its header).
const hostileDir = "../topology/testdata/hostile"

// refused checks what `emulator up -d --name NAME ARGS...` did with a
// topology or name it must refuse: exit status 2, want in its message, and
// nothing of lab name created.
func refused(t *testing.T, name, want string, args ...string) {
	t.Helper()
	r := emu(t, append([]string{"up", "-d", "--name", name}, args...)...)
	if r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("up %s: want exit 2 and %q, got %v", strings.Join(args, " "), want, r)
	}
	if left := (&lab{t: t, name: name}).leftovers(); len(left) > 0 {
		t.Errorf("a refused up created: %s", strings.Join(left, "; "))
		emu(t, "down", "--name", name)
	}
}

// Every hostile file makes `up` exit 2 naming file:line and field, before
// it creates a namespace or the lab's state directory.
func TestHostileTopologies(t *testing.T) {
	f, err := os.Open(filepath.Join(hostileDir, "want.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		p := strings.Split(l, "\t")
		if len(p) != 4 {
			t.Fatalf("want.txt: bad line %q", l)
		}
		file := filepath.Join(hostileDir, p[0])
		want := fmt.Sprintf("%s:%s: %s: %s", file, p[1], p[2], p[3])
		if p[2] == "-" { // a syntax error has no field
			want = fmt.Sprintf("%s:%s: %s", file, p[1], p[3])
		}
		refused(t, uniqueName(), want, "-f", file)
		n++
	}
	if n < 30 {
		t.Errorf("only %d hostile files", n)
	}

	// A file over the 4 MiB limit, made here rather than committed.
	huge := filepath.Join(t.TempDir(), "huge.yaml")
	pad := strings.Repeat("# "+strings.Repeat("x", 97)+"\n", 45000) // 4.5 MB of comments
	if err := os.WriteFile(huge, []byte("virtualNetworks: []\n"+pad), 0o644); err != nil {
		t.Fatal(err)
	}
	refused(t, uniqueName(), huge+":41944: the file is over 4 MiB", "-f", huge)
}

// A topology file that cannot be read is a bad topology: up and apply exit
// 2 naming the file, and up creates nothing.
func TestUnreadableTopology(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	want := "cannot read the topology file " + missing + ": no such file or directory"
	refused(t, uniqueName(), want, "-f", missing)
	if r := emu(t, "apply", "--name", uniqueName(), "-f", missing); r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("apply -f %s: want exit 2 and %q, got %v", missing, want, r)
	}
}

// Lab names are namespace prefixes and directory names: ones with shell
// metacharacters, path separators, the namespace separator or too many
// characters are refused before anything exists.
func TestHostileLabNames(t *testing.T) {
	for _, name := range []string{"a;reboot", "../etc", "a/b", "lab.db1", "-rf", "Lab", "$(id)", "", strings.Repeat("a", 33)} {
		r := emu(t, "up", "-d", "--name", name)
		if r.code != 2 || !strings.Contains(r.stderr, "lab name") {
			t.Errorf("up --name %q: want exit 2 naming the lab name, got %v", name, r)
		}
	}
	ents, _ := os.ReadDir("/run/emulator")
	for _, e := range ents {
		if strings.ContainsAny(e.Name(), ";./$") || strings.HasPrefix(e.Name(), "-") || e.Name() == "Lab" {
			t.Errorf("/run/emulator/%s exists", e.Name())
		}
	}
}

// Overlapping labs: an `up` of a name that runs is refused (exit 2) and
// leaves the running lab alone; a lab whose name extends another's (A and
// A-db1) shares no namespace with it, and `down` of one leaves the other whole.
func TestOverlappingLabs(t *testing.T) {
	a := upLab(t)
	pid := a.status().PID
	refusedAgain := emu(t, "up", "-d", "--name", a.name)
	if refusedAgain.code != 2 || !strings.Contains(refusedAgain.stderr, "already running") {
		t.Errorf("second up of %s: want exit 2, already running; got %v", a.name, refusedAgain)
	}
	if st := a.status(); st.PID != pid {
		t.Errorf("the running lab's dataplane changed from pid %d to %d", pid, st.PID)
	}

	b := &lab{t: t, name: a.name + "-db1"}
	t.Cleanup(func() { b.down() })
	if r := emu(t, "up", "-d", "--name", b.name); r.code != 0 {
		t.Fatalf("up %s: %v", b.name, r)
	}
	nodes := len(b.status().Nodes)
	a.down()
	if got := len(b.namespaces()); got != nodes {
		t.Errorf("after down of %s, lab %s has %d namespaces, want %d", a.name, b.name, got, nodes)
	}
	if r := b.exec("db1", 20*time.Second, "ping", "-c", "1", "-W", "2", "10.0.1.6"); r.code != 0 {
		t.Errorf("lab %s stopped working when %s went down: %v", b.name, a.name, r)
	}
}

// namespaces lists the lab's namespaces in /run/netns.
func (l *lab) namespaces() []string {
	var out []string
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), l.name+".") {
			out = append(out, e.Name())
		}
	}
	return out
}
