// Package labs holds the teaching labs: one folder per lab (NN-name/) with a
// guide (README.md), the topology the lab starts from (topology.yaml), and
// checks.yaml, which names the lab, the facts it teaches, the steps a
// learner works through (each a probe with its expected result and a hint)
// and the reference solution. The folders are embedded, so adding a lab is
// adding a folder; the emulator's `lab` command runs them.
package labs

import (
	"bytes"
	"cmp"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aseemu/emulator/topology"
	"gopkg.in/yaml.v3"
)

//go:embed [0-9][0-9]-*
var files embed.FS

// Lab is one teaching lab.
type Lab struct {
	Number int    `yaml:"-"`
	Dir    string `yaml:"-"` // e.g. "03-inside-the-vnet"
	Guide  string `yaml:"-"` // the README.md

	Title    string   `yaml:"title"`
	Facts    []string `yaml:"facts"`
	Goal     string   `yaml:"goal"`
	Solution []Action `yaml:"solution"`
	Steps    []Step   `yaml:"steps"`
}

// Probe is one command whose result a step or a solution expects. Exactly
// one of Exec (NODE CMD ARGS..., run inside NODE as `emulator exec` does) and
// Emulator (an emulator subcommand that reads the lab: status, flows, dns,
// verify, nexthop) is set.
type Probe struct {
	Exec     []string `yaml:"exec"`
	Emulator []string `yaml:"emulator"`
	// Fails expects a non-zero exit status (a connection that must not get
	// through); otherwise the command must exit 0.
	Fails bool `yaml:"fails"`
	// Match and NoMatch are regular expressions on stdout and stderr together.
	Match   string `yaml:"match"`
	NoMatch string `yaml:"noMatch"`
	// Within retries the probe until it passes or this much time has gone:
	// for what the lab re-evaluates on its own, such as ASE health.
	Within time.Duration `yaml:"within"`
}

// Step is one thing the learner does, with the probe that tells whether it
// is done.
type Step struct {
	Name string `yaml:"name"`
	Task string `yaml:"task"` // what to do, as `lab start` prints it
	Hint string `yaml:"hint"` // printed when the step fails
	// After lists other steps (from 1) that must pass before this one
	// counts: for what already holds in the lab's starting topology
	// (client reaches app1 before any NSG is there) and only means
	// something once the learner has made their change.
	After []int `yaml:"after"`
	// Remember keeps the step done, once a check has seen it pass, for as
	// long as the lab runs: for a probe on evidence that goes away by
	// itself, such as a flow that leaves the connection table.
	Remember bool `yaml:"remember"`
	Probe    `yaml:",inline"`
}

// Action is one step of the reference solution: apply a topology file to the
// running lab, restart the lab from a file (for what apply cannot change),
// or run a probe that must give its expected result.
type Action struct {
	Apply   string `yaml:"apply"`
	Restart string `yaml:"restart"`
	Probe   `yaml:",inline"`
}

// StartFile is the topology every lab starts from.
const StartFile = "topology.yaml"

var dirRE = regexp.MustCompile(`^(\d\d)-[a-z0-9-]+$`)

// All returns every lab, in order of number.
func All() ([]*Lab, error) {
	ents, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	var labs []*Lab
	for _, e := range ents {
		m := dirRE.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		l, err := load(e.Name())
		if err != nil {
			return nil, err
		}
		l.Number, _ = strconv.Atoi(m[1])
		labs = append(labs, l)
	}
	sort.Slice(labs, func(i, j int) bool { return labs[i].Number < labs[j].Number })
	return labs, nil
}

// Get returns lab n.
func Get(n int) (*Lab, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	var nums []string
	for _, l := range all {
		if l.Number == n {
			return l, nil
		}
		nums = append(nums, strconv.Itoa(l.Number))
	}
	return nil, fmt.Errorf("there is no lab %d; the labs are %s (emulator lab list)", n, strings.Join(nums, ", "))
}

// File returns a file of the lab's folder.
func (l *Lab) File(name string) ([]byte, error) {
	return fs.ReadFile(files, path.Join(l.Dir, name))
}

// Files lists the files of the lab's folder: its guide, the topology it
// starts from, its checks and its solution's files.
func (l *Lab) Files() ([]string, error) {
	ents, err := fs.ReadDir(files, l.Dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// FactList is the facts the lab teaches, e.g. "F2, F9-F13".
func (l *Lab) FactList() string { return strings.Join(l.Facts, ", ") }

func load(dir string) (*Lab, error) {
	l := &Lab{Dir: dir}
	b, err := fs.ReadFile(files, path.Join(dir, "checks.yaml"))
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(l); err != nil {
		return nil, fmt.Errorf("scripts/labs/%s/checks.yaml: %w", dir, err)
	}
	guide, err := fs.ReadFile(files, path.Join(dir, "README.md"))
	if err != nil {
		return nil, err
	}
	l.Guide = string(guide)
	if err := l.validate(); err != nil {
		return nil, fmt.Errorf("scripts/labs/%s: %w", dir, err)
	}
	return l, nil
}

// validate checks what a mistake in a lab's folder would otherwise only
// show when a learner runs it.
func (l *Lab) validate() error {
	if l.Title == "" || len(l.Facts) == 0 || l.Goal == "" || len(l.Steps) == 0 || len(l.Solution) == 0 {
		return fmt.Errorf("checks.yaml needs a title, facts, a goal, steps and a solution")
	}
	for _, f := range append([]string{StartFile}, l.topologyFiles()...) {
		b, err := l.File(f)
		if err != nil {
			return err
		}
		if _, err := topology.Parse(path.Join(l.Dir, f), b); err != nil {
			return err
		}
	}
	for i, s := range l.Steps {
		if s.Name == "" || s.Task == "" || s.Hint == "" {
			return fmt.Errorf("step %d needs a name, a task and a hint", i+1)
		}
		if err := s.Probe.validate(); err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, s.Name, err)
		}
		for _, a := range s.After {
			if a < 1 || a > len(l.Steps) || a == i+1 {
				return fmt.Errorf("step %d (%s): after: %d is not another step of the lab", i+1, s.Name, a)
			}
		}
	}
	if err := l.afterCycle(); err != nil {
		return err
	}
	for i, a := range l.Solution {
		n := 0
		for _, set := range []bool{a.Apply != "", a.Restart != "", a.Exec != nil || a.Emulator != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("solution action %d: want exactly one of apply, restart, exec, emulator", i+1)
		}
		if a.Exec != nil || a.Emulator != nil {
			if err := a.Probe.validate(); err != nil {
				return fmt.Errorf("solution action %d: %w", i+1, err)
			}
		}
	}
	return nil
}

// afterCycle finds steps that come after each other, which no learner
// could ever pass.
func (l *Lab) afterCycle() error {
	const (
		unseen = iota
		visiting
		done
	)
	state := make([]int, len(l.Steps))
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case visiting:
			return fmt.Errorf("step %d (%s): its after: comes back to it", i+1, l.Steps[i].Name)
		case done:
			return nil
		}
		state[i] = visiting
		for _, a := range l.Steps[i].After {
			if err := visit(a - 1); err != nil {
				return err
			}
		}
		state[i] = done
		return nil
	}
	for i := range l.Steps {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// topologyFiles lists the files the solution applies or restarts from.
func (l *Lab) topologyFiles() []string {
	var out []string
	for _, a := range l.Solution {
		for _, f := range []string{a.Apply, a.Restart} {
			if f != "" {
				out = append(out, f)
			}
		}
	}
	return out
}

// readOnly are the emulator subcommands a probe may run: they read the lab
// and change nothing.
var readOnly = map[string]bool{"status": true, "flows": true, "dns": true, "verify": true, "nexthop": true}

func (p Probe) validate() error {
	switch {
	case (p.Exec == nil) == (p.Emulator == nil):
		return fmt.Errorf("want exactly one of exec and emulator")
	case p.Exec != nil && len(p.Exec) < 2:
		return fmt.Errorf("exec: want NODE CMD [ARG...]")
	case p.Emulator != nil && !readOnly[p.Emulator[0]]:
		return fmt.Errorf("emulator %q: a probe may only run status, flows, dns, verify or nexthop", p.Emulator[0])
	}
	for _, re := range []string{p.Match, p.NoMatch} {
		if _, err := regexp.Compile(re); err != nil {
			return err
		}
	}
	return nil
}

// Judge says whether a probe's result is the expected one, and if not, why.
func (p Probe) Judge(exit int, output string) (ok bool, why string) {
	// The emulator's own error means the probe never ran (no such node
	// yet, the lab not running, its tool not installed): a bare status
	// would leave the learner guessing.
	var never string
	for _, line := range strings.Split(output, "\n") {
		if msg, ok := strings.CutPrefix(line, "emulator: "); ok {
			never = msg
			break
		}
	}
	switch {
	case p.Fails && exit == 0:
		return false, "it succeeded; it should fail"
	case p.Fails && (never != "" || exit == 126 || exit == 127):
		// A probe that could not run shows nothing about the lab: with
		// curl missing, "echo cannot reach app1" passed with no rule in
		// place.
		return false, fmt.Sprintf("it could not run, so it shows nothing: status %d: %s", exit, cmp.Or(never, "command not found or not executable"))
	case !p.Fails && exit != 0:
		if never != "" {
			return false, fmt.Sprintf("it exited with status %d: %s", exit, never)
		}
		return false, fmt.Sprintf("it exited with status %d", exit)
	case p.Match != "" && !regexp.MustCompile(p.Match).MatchString(output):
		return false, fmt.Sprintf("its output does not match `%s`", p.Match)
	case p.NoMatch != "" && regexp.MustCompile(p.NoMatch).MatchString(output):
		return false, fmt.Sprintf("its output matches `%s`", p.NoMatch)
	}
	return true, ""
}

// Command is the probe as a learner would type it, for messages.
func (p Probe) Command() string {
	if p.Exec != nil {
		return "emulator exec " + p.Exec[0] + " -- " + quote(p.Exec[1:])
	}
	return "emulator " + quote(p.Emulator)
}

func quote(args []string) string {
	var out []string
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$&|;<>()*?[]{}") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}
