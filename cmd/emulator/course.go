package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/scripts/labs"
)

// labProbeTimeout bounds one attempt of a lab probe; the commands in the
// labs' checks carry their own shorter time-outs (curl -m, nc -w).
const labProbeTimeout = 30 * time.Second

func labUsage() string {
	return "lab: usage: " + prog + " lab list [--json] | start N [UP FLAGS] | check N [STEP] [--json] | solve N | reset N [UP FLAGS] | files N [DIR]  [--name LAB]"
}

// labUpFlags says what UP FLAGS are: start and reset bring the lab up as up
// does, and run its dataplane as up's flags say.
const labUpFlags = "UP FLAGS are up's: [--queues N] [--busy-poll D] [--io-uring=false] [--metrics 127.0.0.1:PORT]; reset keeps those not given as the lab ran, and a solve that restarts the lab (lab 7's) keeps them all"

// labVerbs are lab's commands.
var labVerbs = []string{"list", "start", "check", "solve", "reset", "files"}

// cmdLab runs the teaching labs of scripts/labs: it starts a lab's topology,
// checks the learner's progress with real probes, and applies the reference
// solution.
func cmdLab(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usagef("%s", labUsage())
	}
	verb := args[0]
	switch {
	case slices.Contains(labVerbs, verb):
	case verb == "-h", verb == "--help", verb == "help":
		return helpRequest{strings.Replace(labUsage(), "lab: usage:", "usage:", 1) + "\n" + labUpFlags + "\n"}
	default:
		if s := closest(verb, labVerbs); s != "" {
			return usagef("lab: unknown command %q; did you mean \"lab %s\"?\n%s", verb, s, labUsage())
		}
		return usagef("lab: unknown command %q\n%s", verb, labUsage())
	}
	fs, name := newFlags("lab " + verb)
	// Only list and check have something to print as JSON; the others
	// refuse --json as any command without it does.
	asJSON := new(bool)
	if verb == "list" || verb == "check" {
		asJSON = fs.Bool("json", false, "print JSON")
	}
	// start and reset are up of the lab's topology: they take up's flags,
	// defined once, in upFlags.
	options := func() (upOptions, error) { return upOptions{busyPoll: dataplane.DefaultSpin}, nil }
	if verb == "start" || verb == "reset" {
		options = upFlags(fs, "lab "+verb)
	}
	// Flags may come before or after the lab number.
	pos, err := parseInterspersed(fs, args[1:], name)
	if err != nil {
		return err
	}
	opt, err := options()
	if err != nil {
		return err
	}
	if verb == "reset" {
		opt = keptOptions(fs, opt, *name)
	}
	if verb == "list" {
		if len(pos) > 0 {
			return usagef("%s", labUsage())
		}
		return labList(stdout, *asJSON)
	}
	maxArgs := 1
	if verb == "check" || verb == "files" {
		maxArgs = 2
	}
	if len(pos) < 1 || len(pos) > maxArgs {
		return usagef("%s", labUsage())
	}
	n, err := strconv.Atoi(pos[0])
	if err != nil {
		return usagef("lab %s: %q is not a lab number ("+self+" lab list)", verb, pos[0])
	}
	lab, err := labs.Get(n)
	if err != nil {
		return usagef("%v", err)
	}
	if verb == "files" {
		// files reads no lab: a --name would be a learner expecting it to
		// act on one (the files of the lab they run), which it never does.
		if flagGiven(fs, "name") {
			return usagef("lab files: --name: lab files reads no lab; it writes lab %d's own files\n%s", n, labUsage())
		}
		// No lab runs and nothing under /run is touched: a learner with
		// only the binary gets the files the guides work from.
		dir := ""
		if len(pos) == 2 {
			dir = pos[1]
		}
		return labFiles(lab, dir, stdout)
	}
	if err := needRoot("lab " + verb); err != nil {
		return err
	}
	c := &course{lab: lab, name: *name, out: stdout, opt: opt}
	switch verb {
	case "start":
		return c.start()
	case "check":
		step := 0
		if len(pos) == 2 {
			if step, err = strconv.Atoi(pos[1]); err != nil || step < 1 || step > len(lab.Steps) {
				return usagef("lab check: step %q: lab %d has steps 1-%d", pos[1], n, len(lab.Steps))
			}
		}
		return c.check(step, *asJSON)
	case "solve":
		return c.solve()
	default: // reset
		if err := downLab(c.name, c.out, false); err != nil {
			return err
		}
		return c.start()
	}
}

// keptOptions are the options lab reset brings the lab up with: those of
// up's flags the learner gave, and for the others what the lab ran with, as
// its state records. Starting a lab over is the same lab afresh: a learner
// who started it with --metrics expects the endpoint they scrape to stay.
func keptOptions(fs *flag.FlagSet, given upOptions, name string) upOptions {
	st, err := readState(name)
	if err != nil {
		return given
	}
	opt := st.upOptions()
	if flagGiven(fs, "queues") {
		opt.queues = given.queues
	}
	if flagGiven(fs, "metrics") {
		opt.metrics = given.metrics
	}
	if flagGiven(fs, "busy-poll") {
		opt.busyPoll = given.busyPoll
	}
	if flagGiven(fs, "io-uring") {
		opt.epoll = given.epoll
	}
	return opt
}

// labListEntry is one lab of `lab list --json`: what the text listing
// shows, with the facts as a list.
type labListEntry struct {
	Number int      `json:"number"`
	Title  string   `json:"title"`
	Facts  []string `json:"facts"`
	Guide  string   `json:"guide"`
}

func labList(stdout io.Writer, asJSON bool) error {
	all, err := labs.All()
	if err != nil {
		return err
	}
	if asJSON {
		list := []labListEntry{}
		for _, l := range all {
			facts := append([]string{}, l.Facts...) // [], not null, for a lab without facts
			list = append(list, labListEntry{l.Number, l.Title, facts, labGuide(l)})
		}
		return printJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAB\tTITLE\tFACTS\tGUIDE")
	for _, l := range all {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", l.Number, l.Title, l.FactList(), labGuide(l))
	}
	return tw.Flush()
}

// labGuide is the path of a lab's guide, from the repository's root.
func labGuide(l *labs.Lab) string { return "scripts/labs/" + l.Dir + "/README.md" }

// labFiles prints the topology lab l starts from, the file its guide has
// the learner copy and edit, or with dir writes every file of the lab's
// folder there. It never overwrites: a learner's edited copy is their work.
func labFiles(l *labs.Lab, dir string, stdout io.Writer) error {
	if dir == "" {
		b, err := l.File(labs.StartFile)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	names, err := l.Files()
	if err != nil {
		return err
	}
	for _, f := range names {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("lab files: %s exists; lab files writes only new files: name another directory", filepath.Join(dir, f))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range names {
		b, err := l.File(f)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, f)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}

// course is one lab running under one lab name.
type course struct {
	lab  *labs.Lab
	name string
	out  io.Writer
	opt  upOptions // how start and reset run the dataplane: up's flags
}

// labFlag is what a learner adds to a command for this lab name.
func (c *course) labFlag() string { return labFlag(c.name) }

// start brings the lab's topology up detached and prints the first step.
func (c *course) start() error {
	if err := c.up(labs.StartFile); err != nil {
		return err
	}
	l := c.lab
	fmt.Fprintf(c.out, "\nLab %d: %s (%s)\n\n%s\n", l.Number, l.Title, l.FactList(), strings.TrimSpace(l.Goal))
	s := l.Steps[0]
	fmt.Fprintf(c.out, "\nStep 1 of %d: %s\n%s\n", len(l.Steps), s.Name, indent(s.Task))
	fmt.Fprintf(c.out, "\nThe guide: %s ("+self+" lab files %d DIR writes it and the lab's files into DIR)\nCheck your progress: "+self+" lab check %d%s\n",
		labGuide(l), l.Number, l.Number, c.labFlag())
	if c.labFlag() != "" {
		// The guide's commands carry no --name; without this they act on
		// the default lab, which is not running or is someone else's.
		fmt.Fprintf(c.out, "The guide's commands act on the lab named %s; first run: export EMULATOR_LAB=%s\n", defaultLabName(), c.name)
	}
	return nil
}

// up brings the lab up from one of its topology files, written to the lab's
// state directory (which `down` removes) for the background emulator to
// read.
func (c *course) up(file string) error {
	content, err := c.lab.File(file)
	if err != nil {
		return err
	}
	if labRunning(c.name) {
		n := c.lab.Number
		// On a class's machine the lab may be another learner's (one
		// whose sudo dropped EMULATOR_LAB): say since when it runs, and
		// how to run one's own beside it, not only how to reset it.
		since := c.runningSince()
		beside := fmt.Sprintf("; if it is someone else's, run yours beside it: export EMULATOR_LAB=NAME, then "+self+" lab start %d", n)
		switch running := c.teachingLab(); running {
		case n:
			return usagef("lab %s is already running%s; start lab %d over with: "+self+" lab reset %d%s%s", c.name, since, n, n, c.labFlag(), beside)
		case 0:
			// Most likely make up's default lab: a reset would take it
			// down from under whoever runs it.
			return usagef("lab %s is already running%s, and not a teaching lab; to run lab %d beside it: "+self+" lab start %d --name NAME; to replace it: "+self+" lab reset %d%s",
				c.name, since, n, n, n, c.labFlag())
		default:
			return usagef("lab %s already runs teaching lab %d%s; to replace it with lab %d: "+self+" lab reset %d%s%s", c.name, running, since, n, n, c.labFlag(), beside)
		}
	}
	// The file goes into the lab's directory under the lab's lock: a down
	// clearing what a killed lab left would remove it, and a lab that an
	// up brought up meanwhile would pass for this teaching lab.
	lock, err := lockForUp(c.name)
	if err != nil {
		return err
	}
	path, err := c.save(file, content)
	if err != nil {
		lock.release()
		return err
	}
	return upDetached(c.name, path, c.opt, c.out, lock)
}

// save writes one of the lab's files into the lab's state directory and
// returns its path: the lab records where its topology came from, and
// graph --name and status read it back from there.
func (c *course) save(file string, content []byte) (string, error) {
	path := filepath.Join(labDir(c.name), fmt.Sprintf("lab%02d-%s", c.lab.Number, file))
	return path, os.WriteFile(path, content, 0o600)
}

// sameLab refuses to check this lab against another teaching
// lab's topology, which lab start or solve left running under this name:
// its probes would judge the wrong topology (lab 7's pass on lab 4's as
// it starts), also after the learner applied their copy of it. A lab the
// learner brought up with up is theirs to check.
func (c *course) sameLab() error {
	running := c.teachingLab()
	if running == 0 || running == c.lab.Number {
		return nil
	}
	return fmt.Errorf("lab %s runs teaching lab %d, not lab %d; to work on lab %d: "+self+" lab reset %d%s",
		c.name, running, c.lab.Number, c.lab.Number, c.lab.Number, c.labFlag())
}

// runningSince says since when the lab runs, as " (up since 15:04:05,
// 12m ago)", or "" if its state cannot be read.
func (c *course) runningSince() string {
	st, err := readState(c.name)
	if err != nil || st.Started.IsZero() {
		return ""
	}
	ago := time.Since(st.Started).Round(time.Second)
	return fmt.Sprintf(" (up since %s, %v ago)", st.Started.Local().Format("15:04:05"), ago)
}

// teachingLab is the number of the teaching lab that lab start brought up
// under this name, or 0 when up did. It reads the files lab start and solve
// saved in the lab's directory (which down removes), not the topology the
// lab records: that is the learner's own file once they apply a copy, as
// every guide from lab 3 on has them do, and the lab is still the same.
func (c *course) teachingLab() int {
	saved, _ := filepath.Glob(filepath.Join(labDir(c.name), "lab[0-9][0-9]-*"))
	for _, path := range saved {
		var n int
		if _, err := fmt.Sscanf(filepath.Base(path), "lab%02d-", &n); err == nil {
			return n
		}
	}
	return 0
}

// labCheck is what `lab check --json` prints.
type labCheck struct {
	Lab   int         `json:"lab"`
	Title string      `json:"title"`
	Steps []stepCheck `json:"steps"` // the steps checked, all or the one asked for
	Done  bool        `json:"done"`  // every step checked passed; the exit status says the same
}

// stepCheck is one step's result; a failed step carries what the text
// prints under its ✗.
type stepCheck struct {
	Step    int    `json:"step"`
	Name    string `json:"name"`
	Pass    bool   `json:"pass"`
	Seen    string `json:"seen,omitempty"`    // a remembered step's pass: when a check saw it, its evidence gone since
	Command string `json:"command,omitempty"` // the probe that failed; none when a step it comes after failed
	Message string `json:"message,omitempty"` // why it failed
	Hint    string `json:"hint,omitempty"`
}

// check runs every step's probe (or only step `only`, and the steps it
// comes after), prints ✓ or ✗ with a hint for each, or with asJSON all of
// them at the end, and fails unless all pass.
func (c *course) check(only int, asJSON bool) error {
	if !labRunning(c.name) {
		return fmt.Errorf("lab %s is not running; start it with: "+self+" lab start %d%s%s", c.name, c.lab.Number, c.labFlag(), othersRunning())
	}
	if err := c.sameLab(); err != nil {
		return err
	}
	started := c.teachingLab() == c.lab.Number
	if !asJSON && !started {
		// Lab 7 has the learner bring up their own file, so this is no
		// refusal; but a lab up brought up (the default lab, after a down)
		// passes some steps by itself.
		fmt.Fprintf(os.Stderr, "note: lab %s was not started with "+self+" lab start %d; checking what it runs\n", c.name, c.lab.Number)
	}
	seen := c.loadSeen()
	results := map[int]*stepCheck{}
	var eval func(i int) *stepCheck
	eval = func(i int) *stepCheck {
		if sc := results[i]; sc != nil {
			return sc
		}
		s := c.lab.Steps[i]
		sc := &stepCheck{Step: i + 1, Name: s.Name}
		results[i] = sc
		for _, a := range s.After {
			if pre := eval(a - 1); !pre.Pass {
				sc.Message = fmt.Sprintf("checked once step %d (%s) passes: before that it holds with nothing done", a, pre.Name)
				sc.Hint = strings.Join(strings.Fields(s.Hint), " ")
				return sc
			}
		}
		var out string
		sc.Pass, sc.Message, out = c.probe(s.Probe)
		switch {
		case !s.Remember:
		case sc.Pass && started && seen[sc.Step] == nil:
			seen[sc.Step] = &seenStep{Time: time.Now().UTC(), Evidence: evidence(s.Probe, out)}
			c.saveSeen(seen)
		case !sc.Pass && seen[sc.Step] != nil:
			sc.Pass, sc.Message = true, ""
			sc.Seen = seen[sc.Step].Time.Format(time.RFC3339)
		}
		if !sc.Pass {
			sc.Command, sc.Hint = s.Command(), strings.Join(strings.Fields(s.Hint), " ")
		}
		return sc
	}
	res := labCheck{Lab: c.lab.Number, Title: c.lab.Title, Steps: []stepCheck{}}
	failed := 0
	for i := range c.lab.Steps {
		if only != 0 && i+1 != only {
			continue
		}
		sc := eval(i)
		if !sc.Pass {
			failed++
		}
		res.Steps = append(res.Steps, *sc)
		// A probe can take its Within to fail, so the text shows each step
		// as soon as it is known rather than all at the end.
		switch {
		case asJSON:
		case sc.Pass && sc.Seen != "":
			fmt.Fprintf(c.out, "✓ %d. %s (lab check saw it at %s: %s; gone since)\n", sc.Step, sc.Name,
				seen[sc.Step].Time.Format("15:04:05 MST"), seen[sc.Step].Evidence)
		case sc.Pass:
			fmt.Fprintf(c.out, "✓ %d. %s\n", sc.Step, sc.Name)
		case sc.Command == "":
			fmt.Fprintf(c.out, "✗ %d. %s\n    %s\n    hint: %s\n", sc.Step, sc.Name, sc.Message, sc.Hint)
		default:
			fmt.Fprintf(c.out, "✗ %d. %s\n    %s: %s\n    hint: %s\n", sc.Step, sc.Name, sc.Command, sc.Message, sc.Hint)
		}
	}
	res.Done = failed == 0
	switch {
	case asJSON:
		if err := printJSON(c.out, res); err != nil {
			return err
		}
	case res.Done && only != 0:
		fmt.Fprintf(c.out, "Lab %d: step %d done.\n", c.lab.Number, only)
	case res.Done:
		fmt.Fprintf(c.out, "Lab %d: all %d steps done.\n", c.lab.Number, len(res.Steps))
	}
	switch {
	case res.Done:
		return nil
	case only != 0:
		return fmt.Errorf("lab %d: step %d not done yet", c.lab.Number, only)
	}
	return fmt.Errorf("lab %d: %d of %d steps not done yet", c.lab.Number, failed, len(res.Steps))
}

// seenStep is a remembered step: when a check first saw it pass, and what
// it saw.
type seenStep struct {
	Time     time.Time `json:"time"`
	Evidence string    `json:"evidence"`
}

// seenFile holds the remembered steps in the lab's directory, which down
// (and so reset) removes: a step stays done while the lab runs, and a lab
// started over starts with none.
func (c *course) seenFile() string {
	return filepath.Join(labDir(c.name), fmt.Sprintf("lab%02d-seen.json", c.lab.Number))
}

func (c *course) loadSeen() map[int]*seenStep {
	seen := map[int]*seenStep{}
	if b, err := os.ReadFile(c.seenFile()); err == nil {
		// A damaged file forgets, and the probes decide again.
		_ = json.Unmarshal(b, &seen)
	}
	return seen
}

func (c *course) saveSeen(seen map[int]*seenStep) {
	b, err := json.Marshal(seen)
	if err != nil {
		return
	}
	// Not remembering costs the learner a step to do again, never a wrong
	// ✓: a failure to write is no reason to fail the check.
	tmp := c.seenFile() + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, c.seenFile())
	}
}

// evidence is what a passing probe's output showed: the line its Match
// found (a flow, a counter), its runs of blanks as one.
func evidence(p labs.Probe, out string) string {
	if p.Match != "" {
		if loc := regexp.MustCompile(p.Match).FindStringIndex(out); loc != nil {
			start := strings.LastIndexByte(out[:loc[0]], '\n') + 1
			end := loc[1] + strings.IndexByte(out[loc[1]:]+"\n", '\n')
			out = out[start:end]
		}
	}
	// A match across lines (lab 2's call to app1 and app1's own call
	// after it) is shown by its first line and its last: the flows
	// between them are other machines' and would bury the two.
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) > 2 {
		out = lines[0] + " … " + lines[len(lines)-1]
	}
	return strings.Join(strings.Fields(out), " ")
}

// probe runs p against the running lab until it gives the expected result
// or its Within has passed, and returns the last result and output.
func (c *course) probe(p labs.Probe) (bool, string, string) {
	deadline := time.Now().Add(p.Within)
	for {
		exit, out := c.run(p)
		ok, why := p.Judge(exit, out)
		if ok || time.Now().After(deadline) {
			return ok, why, out
		}
		time.Sleep(time.Second)
	}
}

// run runs a probe's command and returns its exit status and output. A
// node command runs through `emulator exec`, as the learner would run it;
// an emulator subcommand runs in this process.
func (c *course) run(p labs.Probe) (int, string) {
	if p.Emulator != nil {
		var out bytes.Buffer
		args := append([]string{p.Emulator[0], "--name", c.name}, p.Emulator[1:]...)
		code := run(args, &out, &out)
		return code, out.String()
	}
	self, err := os.Executable()
	if err != nil {
		return -1, err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), labProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, append([]string{"exec", "--name", c.name, p.Exec[0], "--"}, p.Exec[1:]...)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	default:
		return -1, string(out) + err.Error()
	}
}

// solve applies the lab's reference solution, action by action, to a lab
// that lab start brought up as this lab: anything else (make up's default
// lab, a learner's own, another teaching lab) it would overwrite, or, for
// lab 7's restart, tear down. Like lab start over a running lab, that is a
// usage error.
func (c *course) solve() error {
	if !labRunning(c.name) {
		return fmt.Errorf("lab %s is not running; start it with: "+self+" lab start %d%s%s", c.name, c.lab.Number, c.labFlag(), othersRunning())
	}
	n := c.lab.Number
	switch running := c.teachingLab(); running {
	case n:
	case 0:
		return usagef("lab %s was not started with "+self+" lab start %d, and lab solve %d would overwrite what it runs; to solve lab %d beside it: "+self+" lab start %d --name NAME, then "+self+" lab solve %d --name NAME; to replace it: "+self+" lab reset %d%s, then "+self+" lab solve %d%s",
			c.name, n, n, n, n, n, n, c.labFlag(), n, c.labFlag())
	default:
		return usagef("lab %s runs teaching lab %d, not lab %d, and lab solve %d would overwrite it; to work on lab %d: "+self+" lab reset %d%s",
			c.name, running, n, n, n, n, c.labFlag())
	}
	for _, a := range c.lab.Solution {
		switch {
		case a.Apply != "":
			content, err := c.lab.File(a.Apply)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.out, "$ "+self+" apply -f scripts/labs/%s/%s\n", c.lab.Dir, a.Apply)
			path, err := c.save(a.Apply, content)
			if err != nil {
				return err
			}
			if err := applyContent(c.name, path, content, c.out); err != nil {
				return err
			}
		case a.Restart != "":
			fmt.Fprintf(c.out, "$ "+self+" down, then up -d -f scripts/labs/%s/%s\n", c.lab.Dir, a.Restart)
			// The lab comes back as the learner started it (its metrics
			// on the same address), which down forgets with its state.
			if st, err := readState(c.name); err == nil {
				c.opt = st.upOptions()
			}
			if err := downLab(c.name, c.out, false); err != nil {
				return err
			}
			if err := c.up(a.Restart); err != nil {
				return err
			}
		default:
			fmt.Fprintf(c.out, "$ %s\n", a.Command())
			exit, out := c.run(a.Probe)
			fmt.Fprint(c.out, out)
			if ok, why := a.Judge(exit, out); !ok {
				return fmt.Errorf("lab %d solution: %s: %s", c.lab.Number, a.Command(), why)
			}
		}
	}
	fmt.Fprintf(c.out, "\nLab %d solved; see it with: "+self+" lab check %d%s\n", c.lab.Number, c.lab.Number, c.labFlag())
	return nil
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}
