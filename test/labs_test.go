package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The teaching labs of scripts/labs, each as a learner and as a teacher
// would run it: the guide's commands in a fresh lab (the checker must fail
// every step after `lab start`, and pass them all at the end of the guide,
// and what they print must be what the guide shows: outputDrift), then
// `lab reset` and `lab solve` (the checker passes).
func TestLabs(t *testing.T) {
	dirs, err := filepath.Glob("../scripts/labs/[0-9][0-9]-*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no labs under scripts/labs: %v", err)
	}
	for _, dir := range dirs {
		num := strings.TrimLeft(filepath.Base(dir)[:2], "0")
		// In parallel (up to -parallel, GOMAXPROCS by default): a lab
		// spends most of its time waiting for time-outs and teardowns.
		t.Run(filepath.Base(dir), func(t *testing.T) { t.Parallel(); testLab(t, dir, num) })
	}
}

func testLab(t *testing.T, dir, num string) {
	guide, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmds := guideCommands(string(guide))
	if len(cmds) == 0 || cmds[0].line != "emulator lab start "+num {
		t.Fatalf("the guide's first command should be `emulator lab start %s`, got %+v", num, cmds)
	}
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(l.down)
	work := guideDir(t)
	check := "emulator lab check " + num
	printed := map[int]string{} // by block: what its commands printed
	byHand := map[int]bool{}    // blocks with a command the test does not run
	for i, c := range cmds {
		if c.byHand {
			byHand[c.block] = true
			continue
		}
		r := l.shell(work, c.line)
		printed[c.block] += asInGuide(r.stdout+r.stderr, l.name, work)
		if c.fails != (r.code != 0) {
			t.Fatalf("guide command `%s` (fails: %v): %v", c.line, c.fails, r)
		}
		// Right after lab start the checker must fail every step: a ✓
		// there tells a learner they did what they never did (lab 4's
		// "client reaches app1" held before any NSG was written). In the
		// guide's own check if it has one there, else in the test's.
		switch {
		case i == 1 && c.line == check:
			if !strings.Contains(r.stdout, "✗") || strings.Contains(r.stdout, "✓") {
				t.Fatalf("right after lab start, lab check should fail every step with a ✗: %v", r)
			}
		case i == 0 && (len(cmds) < 2 || cmds[1].line != check):
			if r := emu(t, "lab", "check", num, "--name", l.name); r.code == 0 || !strings.Contains(r.stdout, "✗") || strings.Contains(r.stdout, "✓") {
				t.Fatalf("right after lab start, lab check should fail every step with a ✗: %v", r)
			}
		}
	}
	if r := emu(t, "lab", "check", num, "--name", l.name); r.code != 0 {
		t.Fatalf("after the guide's commands, lab check should pass: %v", r)
	}
	for b, want := range guideOutputs(string(guide)) {
		if byHand[b] {
			continue
		}
		if missing := outputDrift(want, printed[b]); len(missing) > 0 {
			t.Errorf("the output block after the guide's command block %d shows lines its commands did not print (numbers aside):\n%s\nthey printed:\n%s",
				b+1, strings.Join(missing, "\n"), printed[b])
		}
	}

	if r := emu(t, "lab", "reset", num, "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "Step 1 of") {
		t.Fatalf("lab reset: %v", r)
	}
	if r := emu(t, "lab", "solve", num, "--name", l.name); r.code != 0 {
		t.Fatalf("lab solve: %v", r)
	}
	if r := emu(t, "lab", "check", num, "--name", l.name); r.code != 0 || strings.Contains(r.stdout, "✗") {
		t.Fatalf("after lab solve, lab check should pass: %v", r)
	}
}

// guideCommand is one command of a guide's ```sh blocks. A trailing
// `# fails` says it must exit non-zero; `# by hand` that the tests skip it
// (interactive or long). A here-document (<<'EOF' ... EOF) belongs to the
// command that opens it.
type guideCommand struct {
	line          string
	fails, byHand bool
	block         int // which ```sh block of the guide, from 0
}

var (
	shBlock = regexp.MustCompile("(?ms)^```sh\n(.*?)^```")
	hereDoc = regexp.MustCompile(`<<-?'?(\w+)'?\s*$`)
)

func guideCommands(guide string) []guideCommand {
	var cmds []guideCommand
	for b, m := range shBlock.FindAllStringSubmatch(guide, -1) {
		lines := strings.Split(strings.ReplaceAll(m[1], "\\\n", " "), "\n")
		for i := 0; i < len(lines); i++ {
			line := strings.TrimSpace(lines[i])
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			c := guideCommand{line: line, block: b}
			if hd := hereDoc.FindStringSubmatch(line); hd != nil {
				for i++; i < len(lines) && lines[i] != hd[1]; i++ {
					c.line += "\n" + lines[i]
				}
				c.line += "\n" + hd[1]
				cmds = append(cmds, c)
				continue
			}
			if cmd, comment, ok := strings.Cut(line, " # "); ok {
				c.line = strings.TrimSpace(cmd)
				c.fails = strings.Contains(comment, "fails")
				c.byHand = strings.Contains(comment, "by hand")
			}
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// fence is any fenced block of a guide: its language and its text.
var fence = regexp.MustCompile("(?ms)^```(\\w*)\n(.*?)^```")

// guideOutputs gives, by ```sh block (numbered as guideCommands numbers
// them), the ```text block that follows it with nothing but blank lines
// between: what the guide says its commands print.
func guideOutputs(guide string) map[int]string {
	outs := map[int]string{}
	sh, prevEnd, prevSh := -1, 0, false
	for _, m := range fence.FindAllStringSubmatchIndex(guide, -1) {
		lang := guide[m[2]:m[3]]
		if lang == "text" && prevSh && strings.TrimSpace(guide[prevEnd:m[0]]) == "" {
			outs[sh] = guide[m[4]:m[5]]
		}
		if prevSh = lang == "sh"; prevSh {
			sh++
		}
		prevEnd = m[1]
	}
	return outs
}

// guideHome is where a guide's learner works: what the guides show where
// the test's own working directory is.
const guideHome = "/home/you/ase-emulator"

// asInGuide is a command's output as the guide would show it: the lab is
// the default one, named lab, and the working directory guideHome. Each
// command's output ends a line, as the next prompt would end it.
func asInGuide(out, name, work string) string {
	out = strings.ReplaceAll(out, work, guideHome)
	out = regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\b`).ReplaceAllString(out, "lab")
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out
}

// outputDrift returns the lines of want that match no line of got, with
// runs of blanks taken as one, any number standing for any other, and any
// HTTP date for any other: ports, counters, times, dates and which
// front-end or worker answered change from run to run, the words and the
// shape of the output do not. A date's day and month are words that
// change too: lab 10's guide shows curl's Last-Modified of a Monday, and
// passed only on Mondays of December while numbers alone were set aside.
func outputDrift(want, got string) []string {
	var gotLines []string
	for _, line := range strings.Split(got, "\n") {
		gotLines = append(gotLines, strings.Join(strings.Fields(line), " "))
	}
	var missing []string
	for _, line := range strings.Split(want, "\n") {
		norm := strings.Join(strings.Fields(line), " ")
		if norm == "" || norm == "..." { // "..." marks lines the guide leaves out
			continue
		}
		re := regexp.MustCompile("^" + linePattern(norm) + "$")
		if !slices.ContainsFunc(gotLines, re.MatchString) {
			missing = append(missing, line)
		}
	}
	return missing
}

// linePattern is the expression a line of a guide's output stands for in
// outputDrift: itself, with any HTTP date and any number free.
func linePattern(line string) string {
	var b strings.Builder
	anyNumber := func(s string) { b.WriteString(digits.ReplaceAllString(regexp.QuoteMeta(s), "[0-9]+")) }
	last := 0
	for _, m := range httpDate.FindAllStringIndex(line, -1) {
		anyNumber(line[last:m[0]])
		b.WriteString(httpDate.String())
		last = m[1]
	}
	anyNumber(line[last:])
	return b.String()
}

var (
	digits   = regexp.MustCompile("[0-9]+")
	httpDate = regexp.MustCompile(`(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT`)
)

// A guide's output matches what its commands print on any other day:
// numbers and HTTP dates are free, words are not.
func TestOutputDriftSetsDatesAside(t *testing.T) {
	want := "Last-Modified: Mon, 07 Dec 2026 04:40:48 GMT\nContent-Length: 133"
	for got, drift := range map[string]bool{
		"Last-Modified: Tue, 08 Dec 2026 00:06:09 GMT\nContent-Length: 145": false,
		"Last-Modified: Fri, 01 Jan 2027 23:59:59 GMT\nContent-Length: 1":   false,
		"Last-Modified: yesterday\nContent-Length: 133":                     true,
		"Last-Modified: Tue, 08 Dec 2026 00:06:09 UTC\nContent-Length: 133": true,
		"Last-Changed: Tue, 08 Dec 2026 00:06:09 GMT\nContent-Length: 133":  true,
	} {
		if missing := outputDrift(want, got); (len(missing) > 0) != drift {
			t.Errorf("outputDrift of %q: %q, want drift %v", got, missing, drift)
		}
	}
}

// guideDir is a working directory like the repository's root, where a
// guide's commands run: scripts/ is there, bin/emulator is the binary under
// test, and what the commands write stays in the test's temporary
// directory.
func guideDir(t *testing.T) string {
	dir := t.TempDir()
	scripts, err := filepath.Abs("../scripts")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := filepath.Abs(emulator)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"scripts": scripts, "bin/emulator": bin} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// shell runs a guide's command line with bash in dir, as a learner would:
// bin/ on PATH and this lab as the default lab.
func (l *lab) shell(dir, line string) result {
	l.t.Helper()
	script := fmt.Sprintf("cd %q && export EMULATOR_LAB=%s PATH=%q:$PATH && %s", dir, l.name, filepath.Join(dir, "bin"), line)
	return run(l.t, time.Minute, "bash", "-c", script)
}

// Bad `lab` invocations are usage errors (exit 2) that say what is wrong,
// and create nothing.
func TestLabUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"lab"}, "usage: " + emulator + " lab list"},
		{[]string{"lab", "frob", "3"}, `unknown command "frob"`},
		{[]string{"lab", "start"}, "usage: " + emulator + " lab list"},
		{[]string{"lab", "start", "99"}, "there is no lab 99"},
		{[]string{"lab", "start", "one"}, `"one" is not a lab number`},
		{[]string{"lab", "check", "3", "9"}, "lab 3 has steps 1-4"},
		{[]string{"lab", "check", "3", "--name", "Bad_Name"}, `lab name "Bad_Name"`},
		{[]string{"lab", "files"}, "usage: " + emulator + " lab list"},
		{[]string{"lab", "files", "3", "a", "b"}, "usage: " + emulator + " lab list"},
		{[]string{"lab", "files", "99"}, "there is no lab 99"},
		// files runs no lab: a name there meant nothing, and was ignored.
		{[]string{"lab", "files", "3", "--name", "mine"}, "lab files: --name"},
		// start and reset are up of the lab's topology, with up's checks.
		{[]string{"lab", "start", "3", "--queues", "99"}, "lab start: --queues 99"},
		{[]string{"lab", "reset", "3", "--busy-poll", "1s"}, "lab reset: --busy-poll 1s"},
		{[]string{"lab", "start", "3", "--metrics", "0.0.0.0:9100"}, "lab start: "},
		{[]string{"lab", "check", "3", "--queues", "2"}, "-queues"},
	} {
		if r := emu(t, c.args...); r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("emulator %s: want exit 2 saying %q, got %v", strings.Join(c.args, " "), c.want, r)
		}
	}
	name := uniqueName()
	if r := emu(t, "lab", "check", "3", "--name", name); r.code != 1 || !strings.Contains(r.stderr, "emulator lab start 3 --name "+name) {
		t.Errorf("lab check of a lab that is not running: want exit 1 saying how to start it, got %v", r)
	}
}

// After lab start 4 --name: it says how to run the guide's commands on
// that lab; lab check and lab solve refuse to judge or change
// another teaching lab than the one that runs (lab 7's checks all passed
// on lab 4's topology, telling a learner who never started lab 7 that it
// was done); and graph --name draws what the lab runs also after lab solve
// applied a solution (lab 4's puts ase1-nsg on ase1-subnet).
func TestLabStartThenSolve(t *testing.T) {
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(l.down)
	r := emu(t, "lab", "start", "4", "--name", l.name)
	if r.code != 0 {
		t.Fatalf("lab start 4: %v", r)
	}
	// The guide's commands carry no --name: a learner who started the lab
	// under another name must be told how to point them at it.
	if !strings.Contains(r.stdout, "export EMULATOR_LAB="+l.name) {
		t.Errorf("lab start 4 --name %s should say to export EMULATOR_LAB=%s for the guide's commands: %v", l.name, l.name, r)
	}
	// A guide's command typed without --name names a lab that does not
	// run: the error names the labs that do, rather than only sending the
	// learner to up a default lab they do not want.
	other := uniqueName()
	for _, args := range [][]string{{"status", "--name", other}, {"exec", "--name", other, "db1", "--", "true"}, {"lab", "check", "4", "--name", other}} {
		if r := emu(t, args...); r.code != 1 || !strings.Contains(r.stderr, l.name) {
			t.Errorf("emulator %s while %s runs: want exit 1 naming it, got %v", strings.Join(args, " "), l.name, r)
		}
	}
	// A learner names the machine they mean; verify, trace and nexthop
	// take an address, and say which (nexthop's has no port).
	for _, c := range []struct{ cmd, to, want string }{
		{"verify", "echo:80", "echo is a node; give its address: --to 203.0.113.10:80\n"},
		{"trace", "echo:80", "echo is a node; give its address: --to 203.0.113.10:80\n"},
		{"trace", "echo", "echo is a node; give its address: --to 203.0.113.10\n"},
		{"nexthop", "echo", "echo is a node; give its address: --to 203.0.113.10\n"},
		{"nexthop", "echo:80", "echo is a node; give its address: --to 203.0.113.10\n"},
	} {
		if r := emu(t, c.cmd, "--name", l.name, "--from", "client", "--to", c.to); r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s --to %s: want exit 2 and %q, got %v", c.cmd, c.to, c.want, r)
		}
	}
	// Like up of a lab that runs (README: exit 2), which a script tells
	// from a lab that failed to come up (exit 1).
	if r := emu(t, "lab", "start", "4", "--name", l.name); r.code != 2 || !strings.Contains(r.stderr, "already running") {
		t.Errorf("lab start 4 while it runs: want exit 2 saying it already runs, as up does, got %v", r)
	}
	// Starting the next lab without a reset: told which lab runs, and that
	// reset replaces it, not asked to "start lab 7 over".
	if r := emu(t, "lab", "start", "7", "--name", l.name); r.code != 2 || !strings.Contains(r.stderr, "runs teaching lab 4") || !strings.Contains(r.stderr, "emulator lab reset 7") {
		t.Errorf("lab start 7 while lab 4 runs: want exit 2 saying lab 4 runs and to reset 7, got %v", r)
	}
	if r := emu(t, "lab", "check", "7", "--name", l.name); r.code == 0 || !strings.Contains(r.stderr, "runs teaching lab 4, not lab 7") {
		t.Errorf("lab check 7 while lab 4 runs: want a failure saying lab 4 runs, got %v", r)
	}
	// A usage error, as lab start of a running lab: it would overwrite
	// the learner's lab 4 with lab 7's solution.
	if r := emu(t, "lab", "solve", "7", "--name", l.name); r.code != 2 || !strings.Contains(r.stderr, "runs teaching lab 4, not lab 7") {
		t.Errorf("lab solve 7 while lab 4 runs: want exit 2 saying lab 4 runs, got %v", r)
	}
	if r := emu(t, "lab", "solve", "4", "--name", l.name); r.code != 0 {
		t.Fatalf("lab solve 4: %v", r)
	}
	if r := emu(t, "graph", "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "ase1-nsg") {
		t.Errorf("graph --name after lab solve 4 should draw the solution's NSG ase1-nsg: %v", r)
	}
	// Every guide from lab 3 on has the learner apply a copy of the lab's
	// topology: the lab is still lab 4, for lab start and check of another.
	mine, err := filepath.Abs("../scripts/labs/04-lock-down-inbound/solution.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r := emu(t, "apply", "--name", l.name, "-f", mine); r.code != 0 {
		t.Fatalf("apply of the learner's own file: %v", r)
	}
	for _, verb := range []string{"start", "check"} {
		if r := emu(t, "lab", verb, "7", "--name", l.name); r.code == 0 || !strings.Contains(r.stderr, "runs teaching lab 4") {
			t.Errorf("lab %s 7 after the learner applied a file to lab 4: want a failure saying lab 4 runs, got %v", verb, r)
		}
	}
}

// lab start under the name of a lab that up started (make up's default
// lab, say) says so, and how to run the teaching lab beside it, rather
// than to "start lab 3 over" with a reset that would take that lab down.
func TestLabStartOverOwnLab(t *testing.T) {
	l := upLab(t)
	r := emu(t, "lab", "start", "3", "--name", l.name)
	if r.code != 2 || !strings.Contains(r.stderr, "not a teaching lab") || !strings.Contains(r.stderr, "emulator lab start 3 --name ") {
		t.Errorf("lab start 3 where up runs the default lab: want exit 2 saying it is not a teaching lab and how to start lab 3 beside it, got %v", r)
	}
	// Checked all the same (lab 7's guide checks a lab the learner brought
	// up), but a ✓ there (db1 answers: the default lab has no NSG) must
	// not pass for progress in lab 3 unremarked.
	if r := emu(t, "lab", "check", "3", "--name", l.name); !strings.Contains(r.stderr, "not started with "+emulator+" lab start 3") {
		t.Errorf("lab check 3 where up runs the default lab: want a note that lab 3 was not started, got %v", r)
	}
	// lab solve 3 applied lab 3's solution over whatever the lab ran: it
	// refuses, as lab start does, and the lab runs what it ran.
	if r := emu(t, "lab", "solve", "3", "--name", l.name); r.code != 2 || !strings.Contains(r.stderr, "not started with "+emulator+" lab start 3") || !strings.Contains(r.stderr, "emulator lab start 3 --name NAME") {
		t.Errorf("lab solve 3 where up runs the default lab: want exit 2 saying lab 3 was not started and how to start it beside, got %v", r)
	}
	// Lab 3's solution gives ase1 a third worker.
	for _, n := range l.status().Nodes {
		if n.Name == "ase1-w3" {
			t.Errorf("after a refused lab solve 3 the lab has ase1-w3: lab 3's solution was applied")
		}
	}
}

// A learner with only the binary gets a lab's files from it: lab files N
// prints the topology the guide has them copy, lab files N DIR writes the
// lab's folder, byte for byte, and never over a file already there (their
// edited copy). It needs no running lab.
func TestLabFiles(t *testing.T) {
	src := "../scripts/labs/03-inside-the-vnet"
	want, err := os.ReadFile(filepath.Join(src, "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if r := emu(t, "lab", "files", "3"); r.code != 0 || r.stdout != string(want) {
		t.Errorf("lab files 3: want exit 0 printing %s/topology.yaml, got %v", src, r)
	}
	dir := filepath.Join(t.TempDir(), "lab3")
	r := emu(t, "lab", "files", "3", dir)
	if r.code != 0 {
		t.Fatalf("lab files 3 DIR: %v", r)
	}
	names, _ := filepath.Glob(filepath.Join(src, "*"))
	if len(names) < 4 {
		t.Fatalf("%s has %d files, want a guide, a topology, checks and a solution", src, len(names))
	}
	for _, n := range names {
		w, _ := os.ReadFile(n)
		got, err := os.ReadFile(filepath.Join(dir, filepath.Base(n)))
		if err != nil || string(got) != string(w) {
			t.Errorf("lab files 3 DIR: %s differs from %s (%v)", filepath.Join(dir, filepath.Base(n)), n, err)
		}
		if !strings.Contains(r.stdout, filepath.Join(dir, filepath.Base(n))) {
			t.Errorf("lab files 3 DIR should name %s among what it wrote: %v", filepath.Base(n), r)
		}
	}
	mine := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(mine, []byte("# my edits\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := emu(t, "lab", "files", "3", dir); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("lab files 3 DIR over an earlier copy: want exit 1 saying a file exists, got %v", r)
	}
	if got, _ := os.ReadFile(mine); string(got) != "# my edits\n" {
		t.Errorf("lab files 3 DIR overwrote the learner's %s: %q", mine, got)
	}
}

// The files a guide has the learner write in the repository's root (their
// copies of a lab's topology) are ignored by git: a class's clones stay
// clean, and nobody commits lab4.yaml by mistake.
func TestGuideFilesIgnored(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	written := regexp.MustCompile(`(?:^cp \S+ |[^-]> )([\w.-]+)`)
	guides, _ := filepath.Glob("../scripts/labs/[0-9][0-9]-*/README.md")
	for _, g := range guides {
		text, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range guideCommands(string(text)) {
			for _, m := range written.FindAllStringSubmatch(c.line, -1) {
				if r := run(t, time.Minute, "git", "-C", "..", "check-ignore", "-q", m[1]); r.code != 0 {
					t.Errorf("%s writes %s in the repository's root, which git does not ignore", g, m[1])
				}
			}
		}
	}
}

// A lab whose dataplane was killed is not named among the running labs,
// also where nothing reaps it (a container's init leaves it a zombie).
func TestNotRunningOmitsKilledLab(t *testing.T) {
	l := upLab(t)
	if err := syscall.Kill(l.status().PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The killed process's lock goes with it; status says so first.
	for i := 0; i < 50 && emu(t, "status", "--name", l.name).code == 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if r := emu(t, "status", "--name", uniqueName()); r.code != 1 || strings.Contains(r.stderr, l.name) {
		t.Errorf("status of a lab that does not run, beside one that was killed: want exit 1 not naming %s, got %v", l.name, r)
	}
}

// A step's check passes only once the learner has done what the step
// teaches: here each lab is started, something else or less than a step
// asks is done, and lab check must still fail that step.
func TestLabChecksWantTheLesson(t *testing.T) {
	for _, c := range []struct {
		name string
		lab  string
		step string
		// do is the wrong or lesser thing the learner did.
		do func(l *lab, work string)
	}{
		// Lab 1 step 3 counted any host-unreachable drop in the lab: db1
		// pinging an address of its own subnet passed "a worker has
		// pinged an address no machine has".
		{"lab1-step3-db1-not-a-worker", "1", "3", func(l *lab, _ string) {
			l.exec("db1", 30*time.Second, "ping", "-c", "1", "-W", "1", "10.0.2.99")
		}},
		// Lab 2 step 2 asks the learner to resolve app1's name; any
		// query from client to Azure DNS passed it.
		{"lab2-step2-another-name", "2", "2", func(l *lab, _ string) {
			l.mustExec("client", "nslookup", "echo.example.net")
		}},
		// Lab 2 step 3 asks the learner to have app1 call echo through
		// /outbound; a plain request to app1, after the worker's own call
		// of step 1, passed it.
		{"lab2-step3-no-outbound-call", "2", "3", func(l *lab, _ string) {
			l.mustExec("ase1-w1", "curl", "-s", "-m", "5", "http://echo/")
			l.mustExec("client", "curl", "-s", "-m", "5", "http://app1.ase1.p.azurewebsites.net/")
		}},
		// Lab 4 asks to let only client at the apps; opening them to the
		// whole Internet but echo, the one host step 4 tries, passed
		// every step.
		{"lab4-open-to-all-but-echo", "4", "", func(l *lab, work string) {
			f := filepath.Join(work, "lab4.yaml")
			if r := l.shell(work, `sed -e 's|sourceAddressPrefix: 198.51.100.10,|sourceAddressPrefix: "*",|' -e 's|DenyInternet, priority: 300,\(.*\)sourceAddressPrefix: Internet}|DenyEcho, priority: 150,\1sourceAddressPrefix: 203.0.113.10}|' scripts/labs/04-lock-down-inbound/solution.yaml > `+f+" && emulator apply -f "+f); r.code != 0 {
				l.t.Fatalf("opening the apps to all but echo: %v", r)
			}
		}},
		// Lab 8 step 2 asks for 0.0.0.0/0 to the Internet on ase1-subnet; a
		// route for the one /24 this lab's Internet hosts and Azure's
		// endpoints share passed every step.
		{"lab8-route-one-prefix", "8", "", func(l *lab, work string) {
			f := filepath.Join(work, "lab8.yaml")
			if r := l.shell(work, "emulator lab files 8 | sed -e 's/advertiseDefaultRoute: false/advertiseDefaultRoute: true/' -e 's|    routes: \\[\\]|    routes:\\n      - {name: ToEcho, addressPrefix: 203.0.113.0/24, nextHopType: Internet}|' > "+f+" && emulator apply -f "+f); r.code != 0 {
				l.t.Fatalf("routing 203.0.113.0/24 to the Internet: %v", r)
			}
		}},
		// Lab 6 asks to let management (454-455) through ase3's NSG;
		// taking the NSG off ase3-subnet passed every step.
		{"lab6-nsg-removed", "6", "", func(l *lab, work string) {
			f := filepath.Join(work, "lab6.yaml")
			if r := l.shell(work, "emulator lab files 6 | sed '/networkSecurityGroup: ase3-nsg/d' > "+f+" && emulator apply -f "+f); r.code != 0 {
				l.t.Fatalf("taking the NSG off ase3-subnet: %v", r)
			}
		}},
		// ... or letting the whole Internet in above DenyInternet.
		{"lab6-internet-allowed", "6", "", func(l *lab, work string) {
			f := filepath.Join(work, "lab6.yaml")
			if r := l.shell(work, `emulator lab files 6 | sed 's|      - {name: DenyInternet, priority: 100,|      - {name: AllowAll, priority: 100, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: "*"}\n      - {name: DenyInternet, priority: 200,|' > `+f+" && emulator apply -f "+f); r.code != 0 {
				l.t.Fatalf("allowing the Internet: %v", r)
			}
		}},
		// Lab 6 step 2 asks that the Internet not reach app3. Apply
		// refuses a new ILB mode, but down and up of the learner's file
		// take it: in mode "Publishing" HTTP and HTTPS are on the public
		// VIP (F7), and with either port open to the Internet client
		// reaches app3 there, while the ILB address stays out of its
		// reach whatever the learner does.
		{"lab6-publishing-http-open", "6", "2", lab6Publishing("80")},
		{"lab6-publishing-https-open", "6", "2", lab6Publishing("443")},
		// Lab 10 asks to let FTP's data ports in for the developer only;
		// opening them to the whole Internet gets the developer's upload
		// through as well.
		{"lab10-data-ports-open-to-internet", "10", "4", lab10Applied(
			`s|AllowFtpDataFromDeveloper, priority: 130, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: 198.51.100.10,|AllowFtpData, priority: 130, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: Internet,|`, true)},
		// ... or to all of it but echo, the one host step 4 tries.
		{"lab10-data-ports-open-to-all-but-echo", "10", "6", lab10Applied(
			`s|^      - {name: DenyInternet,|      - {name: DenyEcho, priority: 125, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: 203.0.113.10}\n      - {name: AllowFtpData, priority: 126, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: "*", destinationPortRange: 10001-10020}\n&|`, true)},
		// ... and so does opening FTP, control and data, to everyone.
		{"lab10-ftp-open-to-all", "10", "3", lab10Applied(`s|sourceAddressPrefix: 198.51.100.10,|sourceAddressPrefix: "*",|`, true)},
		// The front-ends hand out the data ports in turn: 10001 alone
		// lets a transfer through now and then.
		{"lab10-first-data-port-only", "10", "1", lab10Applied(`s|destinationPortRange: 10001-10020|destinationPortRange: "10001"|`, true)},
		// ... and so do both ends of the range without the ports between.
		{"lab10-data-range-ends-only", "10", "1", lab10Applied(`s|destinationPortRange: 10001-10020|destinationPortRanges: ["10001", "10020"]|`, false)},
		// The rule, with nothing published.
		{"lab10-no-upload", "10", "2", lab10Applied("", false)},
		// ase1 checks its dependencies every 2 s: Unhealthy within 6.
		{"lab10-management-dropped", "10", "5", func(l *lab, work string) {
			lab10Applied("/AllowManagement/d", true)(l, work)
			time.Sleep(6 * time.Second)
		}},
		// Lab 11 asks to let back in the two kinds of traffic its deny-all
		// shuts out. With the probes alone, the front-ends are back in
		// rotation and ase1 is Healthy, but they cannot reach a worker.
		{"lab11-probes-only", "11", "2", lab11Applied("/AllowVnet/d")},
		// ... and a rule that lets in everything passes the rest.
		{"lab11-allow-all-above-deny", "11", "4", lab11Applied(`s|sourceAddressPrefix: AzureLoadBalancer|sourceAddressPrefix: "*"|`)},
		// ... as does management opened to every source.
		{"lab11-management-open-to-all", "11", "4", lab11Applied(`s|sourceAddressPrefix: 203.0.113.40|sourceAddressPrefix: "*"|`)},
		// Lab 12 asks to fix each flow in the NSG that denies it, keeping
		// both: taking both NSGs off lets ase1 in and db1 out, and ase2 in.
		{"lab12-nsgs-removed", "12", "3", lab12Applied("/networkSecurityGroup: /d")},
		// ... and so does opening db1's NIC NSG to every source, which
		// vm-nsg's admitting ase2-subnet leaves ase2 through.
		{"lab12-nic-open-to-all", "12", "3", lab12Applied(`s|sourceAddressPrefix: 10.0.1.0/26,|sourceAddressPrefix: "*",|`)},
		// Taking db1-nsg off db1 and narrowing vm-nsg to ase1's subnet
		// keeps ase2 out with one NSG on the path, not two.
		{"lab12-nic-nsg-removed", "12", "4", lab12Applied(`/networkSecurityGroup: db1-nsg/d; s|\[10.0.1.0/26, 10.0.3.0/26\]|[10.0.1.0/26]|`)},
		// db1-nsg admitting one worker's address, not ase1's subnet.
		{"lab12-nic-one-worker", "12", "2", lab12Applied(`s|sourceAddressPrefix: 10.0.1.0/26,|sourceAddressPrefix: 10.0.1.6/32,|`)},
		// Taking vm-nsg off vm-subnet lets the backup out through the
		// NIC's NSG alone.
		{"lab12-subnet-nsg-removed", "12", "6", lab12Applied("/networkSecurityGroup: vm-nsg/d")},
		// Letting db1 out to the whole Internet on 443, not to Azure
		// Storage: echo serves no HTTPS, ase2's VIP does.
		{"lab12-backup-to-internet", "12", "7", lab12Applied(`s|destinationAddressPrefix: 203.0.113.30|destinationAddressPrefix: Internet|`)},
		// ... or dropping vm-nsg's DenyInternetOut.
		{"lab12-internet-out-allowed", "12", "7", lab12Applied("/DenyInternetOut/d")},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := &lab{t: t, name: uniqueName()}
			t.Cleanup(l.down)
			if r := emu(t, "lab", "start", c.lab, "--name", l.name); r.code != 0 {
				t.Fatalf("lab start %s: %v", c.lab, r)
			}
			c.do(l, guideDir(t))
			args := []string{"lab", "check", c.lab, "--name", l.name}
			if c.step != "" {
				args = append(args, c.step)
			}
			// A step not done: exit 1 and its ✗. A usage error (2) or
			// another step's ✗ would pass a case that tests nothing.
			want := "✗ " + c.step + ". "
			if c.step == "" {
				want = "✗ "
			}
			if r := emu(t, args...); r.code != 1 || !strings.Contains(r.stdout, want) {
				t.Errorf("lab check %s %s should fail with %q, though the learner did not do what it teaches: %v", c.lab, c.step, want, r)
			}
		})
	}
}

// lab6Publishing brings lab 6 up again from the learner's copy with ase3 in
// mode "Publishing", management let in, and TCP port open to the Internet.
func lab6Publishing(port string) func(l *lab, work string) {
	return func(l *lab, work string) {
		f := filepath.Join(work, "lab6.yaml")
		open := `      - {name: AllowManagement, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: "*", destinationPortRange: 454-455}\n` +
			`      - {name: AllowApps, priority: 110, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: "*", destinationPortRange: "` + port + `"}\n` +
			`      - {name: DenyInternet, priority: 200,`
		if r := l.shell(work, `emulator lab files 6 | sed -e 's|internalLoadBalancingMode: Web, Publishing|internalLoadBalancingMode: Publishing|' -e 's|      - {name: DenyInternet, priority: 100,|`+open+`|' > `+f+" && emulator down && emulator up -d -f "+f); r.code != 0 {
			l.t.Fatalf("putting app3 on the public VIP, port %s open to the Internet: %v", port, r)
		}
	}
}

// lab10Applied applies lab 10's solution edited by a sed script ("" to
// apply it as it is), and uploads hello.txt from client if upload.
func lab10Applied(script string, upload bool) func(l *lab, work string) {
	return func(l *lab, work string) {
		l.applyEditedSolution(work, "10-ftp-publishing", script)
		if upload {
			// Bounded: with the data ports shut the upload hangs.
			l.exec("client", 30*time.Second, "sh", "-c", "echo hello | curl -sS --connect-timeout 3 -m 10 -T - ftp://192.23.1.2/app1/hello.txt")
		}
	}
}

// lab11Applied applies lab 11's solution edited by a sed script.
func lab11Applied(script string) func(l *lab, work string) {
	return func(l *lab, work string) { l.applyEditedSolution(work, "11-out-of-rotation", script) }
}

// lab12Applied applies lab 12's solution edited by a sed script.
func lab12Applied(script string) func(l *lab, work string) {
	return func(l *lab, work string) { l.applyEditedSolution(work, "12-two-nsgs", script) }
}

// applyEditedSolution applies the solution.yaml of the lab folder dir,
// edited by a sed script, as a learner's copy in work.
func (l *lab) applyEditedSolution(work, dir, script string) {
	l.t.Helper()
	f := filepath.Join(work, "solution.yaml")
	if r := l.shell(work, "sed -e '"+script+"' scripts/labs/"+dir+"/solution.yaml > "+f+" && emulator apply -f "+f); r.code != 0 {
		l.t.Fatalf("applying %s's solution edited by %q: %v", dir, script, r)
	}
}

// lab start is up of the lab's topology, and takes up's flags: the lab
// runs with them, as up -d would run it.
func TestLabStartUpFlags(t *testing.T) {
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(l.down)
	if r := emu(t, "lab", "start", "1", "--name", l.name, "--io-uring=false", "--queues", "1", "--busy-poll", "0", "--metrics", "127.0.0.1:0"); r.code != 0 {
		t.Fatalf("lab start 1 with up's flags: %v", r)
	}
	r := emu(t, "status", "--name", l.name)
	if r.code != 0 || !strings.Contains(r.stdout, "epoll") || !strings.Contains(r.stdout, "Prometheus metrics: http://127.0.0.1:") {
		t.Errorf("after lab start 1 --io-uring=false --metrics 127.0.0.1:0, status should show epoll and the metrics address: %v", r)
	}
}

// lab solve 7 restarts the lab (down, then up of the solution), and lab
// reset starts it over: both run it as the learner started it, not with
// up's defaults. A learner who started lab 7 with --metrics lost the
// endpoint at lab solve 7.
func TestLabRestartKeepsUpFlags(t *testing.T) {
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(l.down)
	if r := emu(t, "lab", "start", "7", "--name", l.name, "--io-uring=false", "--busy-poll", "200us", "--metrics", "127.0.0.1:0"); r.code != 0 {
		t.Fatalf("lab start 7 with up's flags: %v", r)
	}
	type flags struct {
		Metrics string `json:"metrics"`
		Reader  struct {
			Epoll    bool   `json:"epoll"`
			BusyPoll string `json:"busyPoll"`
		} `json:"reader"`
	}
	var started flags
	l.emuJSON(&started, "status")
	if !strings.HasPrefix(started.Metrics, "http://127.0.0.1:") || !started.Reader.Epoll || started.Reader.BusyPoll != "200µs" {
		t.Fatalf("after lab start 7 --io-uring=false --busy-poll 200us --metrics 127.0.0.1:0, status shows metrics %q, epoll %v, busy-poll %q", started.Metrics, started.Reader.Epoll, started.Reader.BusyPoll)
	}
	for _, verb := range []string{"solve", "reset"} {
		if r := emu(t, "lab", verb, "7", "--name", l.name); r.code != 0 {
			t.Fatalf("lab %s 7: %v", verb, r)
		}
		var now flags
		l.emuJSON(&now, "status")
		// The same address: the learner's scraper keeps working.
		if now.Metrics != started.Metrics || !now.Reader.Epoll || now.Reader.BusyPoll != started.Reader.BusyPoll {
			t.Errorf("after lab %s 7, status shows metrics %q, epoll %v, busy-poll %q; want %q, epoll and %s, as lab start 7 had them",
				verb, now.Metrics, now.Reader.Epoll, now.Reader.BusyPoll, started.Metrics, started.Reader.BusyPoll)
			continue
		}
		if r := run(t, 10*time.Second, "curl", "-s", "-f", now.Metrics); r.code != 0 || !strings.Contains(r.stdout, "emulator_") {
			t.Errorf("after lab %s 7, %s does not answer with the lab's metrics: %v", verb, now.Metrics, r)
		}
	}
	// Flags given to reset are the learner's new choice; those not given
	// stay as they were.
	if r := emu(t, "lab", "reset", "7", "--name", l.name, "--io-uring=true"); r.code != 0 {
		t.Fatalf("lab reset 7 --io-uring=true: %v", r)
	}
	var reset flags
	l.emuJSON(&reset, "status")
	if reset.Metrics != started.Metrics || reset.Reader.Epoll || reset.Reader.BusyPoll != started.Reader.BusyPoll {
		t.Errorf("after lab reset 7 --io-uring=true, status shows metrics %q, epoll %v, busy-poll %q; want %q without epoll, and %s",
			reset.Metrics, reset.Reader.Epoll, reset.Reader.BusyPoll, started.Metrics, started.Reader.BusyPoll)
	}
}
