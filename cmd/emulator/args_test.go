package main

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/aseemu/emulator/topology"
)

// A command that takes no positional argument refuses one (exit 2), rather
// than stop reading flags there and act on the default lab: `emulator
// status xa1` must not report on lab "lab", and the --name after it must
// not be dropped. `emulator init lab.yaml` must not look as if it wrote
// lab.yaml.
func TestStrayArgumentIsUsageError(t *testing.T) {
	for _, args := range [][]string{
		{"status", "xa1"},
		{"status", "xa1", "--name", "t"},
		{"flows", "xa1", "--json"},
		{"init", "lab.yaml"}, // init prints; it writes no file
	} {
		var stderr strings.Builder
		code := run(args, io.Discard, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), `unexpected argument "`+args[1]+`"`) {
			t.Errorf("emulator %s: exit %d, %q; want exit 2 naming the stray argument", strings.Join(args, " "), code, stderr.String())
		}
	}
}

// graph --name draws that lab's own topology; for a lab that was never
// started it says so instead of drawing the default lab, which a mistyped
// name would otherwise pass off as the lab asked for.
func TestGraphOfUnknownLab(t *testing.T) {
	var stdout, stderr strings.Builder
	code := run([]string{"graph", "--name", "t-no-such-lab"}, &stdout, &stderr)
	if code == exitOK || stdout.Len() > 0 || !strings.Contains(stderr.String(), "t-no-such-lab") {
		t.Errorf("graph --name of a lab that does not exist: exit %d, %d bytes drawn, %q; want an error naming the lab and no drawing",
			code, stdout.Len(), stderr.String())
	}
}

// CMD -h prints that command's usage and every flag it takes, exit 0; the
// flags of up that the README documents are in emulator help too.
func TestCommandHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"up", "-h"}, []string{"usage: bin/emulator up ", "-busy-poll", "-io-uring", "-metrics", "-queues", "-name"}},
		{[]string{"status", "--help"}, []string{"usage: bin/emulator status ", "-json"}},
		{[]string{"capture", "db1", "-h"}, []string{"usage: bin/emulator capture ", "-filter"}},
		{[]string{"lab", "check", "-h"}, []string{"usage: bin/emulator lab ", "-json"}},
		{[]string{"lab", "-h"}, []string{"usage: bin/emulator lab list", "solve N", "files N [DIR]", "start N [UP FLAGS]", "--busy-poll"}},
		// lab start and reset are up of the lab's topology, with up's flags.
		{[]string{"lab", "start", "-h"}, []string{"usage: bin/emulator lab ", "-busy-poll", "-io-uring", "-metrics", "-queues", "-name"}},
		{[]string{"lab", "reset", "-h"}, []string{"-busy-poll", "-io-uring", "-metrics", "-queues"}},
		{[]string{"help"}, []string{"--busy-poll", "--io-uring", "--metrics"}},
	} {
		var stdout, stderr strings.Builder
		code := run(c.args, &stdout, &stderr)
		for _, w := range c.want {
			if code != exitOK || !strings.Contains(stdout.String(), w) {
				t.Errorf("emulator %s: exit %d, stdout %q, stderr %q; want exit 0 and %q", strings.Join(c.args, " "), code, stdout.String(), stderr.String(), w)
				break
			}
		}
	}
}

// A flag after exec's NODE is not read as one: exec says flags go before
// the node, rather than act on the default lab and report it not running.
func TestExecFlagAfterNode(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"exec", "db1", "--name", "xa1", "--", "true"}, io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "before NODE") {
		t.Errorf("emulator exec db1 --name xa1 -- true: exit %d, %q; want exit 2 saying flags go before NODE", code, stderr.String())
	}
}

// A CI job that sets $EMULATOR_LAB from its own job name (uppercase,
// too long) gets an error naming the variable, not a lab name it never
// typed.
func TestBadLabNameFromEnvironment(t *testing.T) {
	t.Setenv(labEnv, "Build_42")
	var stderr strings.Builder
	code := run([]string{"status"}, io.Discard, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "$"+labEnv+"=Build_42") {
		t.Errorf("status with $%s=Build_42: exit %d, %q; want exit 2 naming $%s", labEnv, code, stderr.String(), labEnv)
	}
	stderr.Reset()
	code = run([]string{"status", "--name", "Bad"}, io.Discard, &stderr)
	if code != exitUsage || strings.Contains(stderr.String(), labEnv) {
		t.Errorf("status --name Bad with $%s set: exit %d, %q; want exit 2 about --name, not $%s", labEnv, code, stderr.String(), labEnv)
	}
}

// A mistyped command or flag exits 2 with one line that names what was
// probably meant and where the list is, rather than a screenful of usage
// (for a command) or Go's "flag provided but not defined" (for a flag).
func TestTypoSuggestion(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"stauts"}, `unknown command "stauts"; did you mean "status"? (bin/emulator help lists the commands)`},
		{[]string{"lba", "list"}, `did you mean "lab"?`},
		{[]string{"Down"}, `did you mean "down"?`},
		{[]string{"deploy"}, `did you mean "up"?`}, // containerlab's verbs
		{[]string{"destroy"}, `did you mean "down"?`},
		{[]string{"up", "--nmae", "x"}, "up: unknown flag --nmae; did you mean --name? (bin/emulator up -h lists its flags)"},
		{[]string{"status", "--jsn"}, "did you mean --json?"},
		{[]string{"verify", "--form", "db1"}, "did you mean --from?"},
		{[]string{"capture", "db1", "-W", "x.pcapng"}, "unknown flag -W; did you mean -w?"},
		{[]string{"up", "--queues", "x"}, `up: invalid value "x" for flag --queues: parse error (bin/emulator up -h lists its flags)`},
		{[]string{"verify", "--from"}, "verify: flag needs an argument: --from (bin/emulator verify -h lists its flags)"},
		{[]string{"lab", "strat", "1"}, `lab: unknown command "strat"; did you mean "lab start"?`},
		{[]string{"lab", "check", "1", "--jsno"}, "lab check: unknown flag --jsno; did you mean --json? (bin/emulator lab check -h lists its flags)"},
	} {
		var stdout, stderr strings.Builder
		code := run(c.args, &stdout, &stderr)
		// One line; lab's one-line usage may follow.
		lines := strings.Count(stderr.String(), "\n") - strings.Count(stderr.String(), "lab: usage:")
		if code != exitUsage || !strings.Contains(stderr.String(), c.want) || lines != 1 || stdout.Len() > 0 {
			t.Errorf("emulator %s: exit %d, stderr %q; want exit 2 and one line with %q", strings.Join(c.args, " "), code, stderr.String(), c.want)
		}
	}
	// Nothing near enough: no guess, which would send the user the wrong way.
	for _, args := range [][]string{{"xyz"}, {"up", "-x"}} {
		var stderr strings.Builder
		if code := run(args, io.Discard, &stderr); code != exitUsage || strings.Contains(stderr.String(), "did you mean") {
			t.Errorf("emulator %s: exit %d, %q; want exit 2 and no suggestion", strings.Join(args, " "), code, stderr.String())
		}
	}
}

// help CMD is CMD -h, as in go and git, for every command the usage
// lists; `emulator help up` printed the general usage instead.
func TestHelpCommand(t *testing.T) {
	for _, cmd := range []string{"up", "down", "status", "exec", "flows", "dns", "apply", "verify", "nexthop", "capture", "trace", "flowlog", "graph", "init", "lab"} {
		var viaHelp, viaFlag, stderr strings.Builder
		code := run([]string{"help", cmd}, &viaHelp, &stderr)
		if code != exitOK || !strings.HasPrefix(viaHelp.String(), "usage: bin/emulator "+cmd) {
			t.Errorf("emulator help %s: exit %d, stdout %q, stderr %q; want exit 0 and that command's usage", cmd, code, viaHelp.String(), stderr.String())
			continue
		}
		run([]string{cmd, "-h"}, &viaFlag, io.Discard)
		if viaHelp.String() != viaFlag.String() {
			t.Errorf("emulator help %s printed\n%s\nbut emulator %s -h\n%s", cmd, viaHelp.String(), cmd, viaFlag.String())
		}
	}
}

// A user who asks for the version, the way most tools take it, gets it:
// the Go release that built the binary is in it, for a bug report.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		var stdout, stderr strings.Builder
		code := run([]string{arg}, &stdout, &stderr)
		if code != exitOK || !strings.HasPrefix(stdout.String(), "emulator ") || !strings.Contains(stdout.String(), runtime.Version()) {
			t.Errorf("emulator %s: exit %d, stdout %q, stderr %q; want exit 0 and a line naming %s", arg, code, stdout.String(), stderr.String(), runtime.Version())
		}
	}
}

// Advice a command prints for a lab other than the default one names that
// lab: `flowlog --name x` said "turn on with: emulator flowlog on", and
// apply's refusal "emulator down, then emulator up -d -f FILE", which,
// typed as shown, turn on logs in, or tear down, the default lab instead.
func TestAdviceNamesTheLab(t *testing.T) {
	t.Setenv(labEnv, "")
	var b strings.Builder
	printFlowLogs(&b, flowLogStatus{}, "hq-x")
	if !strings.Contains(b.String(), "bin/emulator flowlog --name hq-x on") {
		t.Errorf("flowlog of lab hq-x printed %q; want the advice to name --name hq-x", b.String())
	}
	b.Reset()
	printFlowLogs(&b, flowLogStatus{}, defaultLab)
	if !strings.Contains(b.String(), "bin/emulator flowlog on)") {
		t.Errorf("flowlog of the default lab printed %q; want plain emulator flowlog on", b.String())
	}
	msg := refusal{problems: []string{"node db1 would change"}, lab: "hq-x", file: "/tmp/l.yaml"}.Error()
	if !strings.Contains(msg, "bin/emulator down --name hq-x, then bin/emulator up -d -f /tmp/l.yaml --name hq-x") {
		t.Errorf("apply's refusal in lab hq-x: %q; want it to down and up lab hq-x with the file", msg)
	}
}

// graph draws a file or what a running lab runs: given both, it drew the
// file as if it were the lab's, silently ignoring --name.
func TestGraphFileAndNameIsUsageError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(file, topology.DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := run([]string{"graph", "-f", file, "--name", "t-other"}, &stdout, &stderr)
	if code != exitUsage || stdout.Len() > 0 || !strings.Contains(stderr.String(), "not both") {
		t.Errorf("graph -f FILE --name LAB: exit %d, %d bytes drawn, %q; want exit 2 saying to give one of them", code, stdout.Len(), stderr.String())
	}
}

// `up lab.yaml`, as docker compose or containerlab users would type it,
// says that the file is given with -f, keeping the lab's --name; it said
// only `unexpected argument "lab.yaml"` (up) or printed the usage (apply).
func TestTopologyFileWithoutF(t *testing.T) {
	t.Setenv(labEnv, "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"up", "lab.yaml"}, "a topology file is given with -f: bin/emulator up -f lab.yaml"},
		{[]string{"up", "--name", "hq-x", "lab.yaml"}, "bin/emulator up --name hq-x -f lab.yaml"},
		{[]string{"apply", "--name", "hq-x", "new.yml"}, "bin/emulator apply --name hq-x -f new.yml"},
		{[]string{"graph", "lab.yaml"}, "bin/emulator graph -f lab.yaml"},
	} {
		var stderr strings.Builder
		code := run(c.args, io.Discard, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("emulator %s: exit %d, %q; want exit 2 and %q", strings.Join(c.args, " "), code, stderr.String(), c.want)
		}
	}
}

// CMD -h lists the flags as its usage line and the README spell them:
// --name, -f. Go's flag.PrintDefaults wrote -name under a usage line
// that says --name.
func TestHelpSpellsFlagsAsUsage(t *testing.T) {
	oneDash := regexp.MustCompile(`(?m)^  -[a-z][a-z-]+\b`)
	for _, cmd := range []string{"up", "down", "status", "exec", "flows", "dns", "apply", "verify", "nexthop", "capture", "trace", "flowlog", "graph"} {
		var stdout strings.Builder
		run([]string{cmd, "-h"}, &stdout, io.Discard)
		if bad := oneDash.FindAllString(stdout.String(), -1); len(bad) > 0 || !strings.Contains(stdout.String(), "  --name string") {
			t.Errorf("emulator %s -h lists %q with one dash; want --name as in its usage line:\n%s", cmd, bad, stdout.String())
		}
	}
}

// graph -f checks a file as up does (README): up's warnings, such as a VM
// in an ASE's subnet (F8), go to stderr, and the drawing to stdout stays
// clean.
func TestGraphFileWarnsAsUpDoes(t *testing.T) {
	lab := strings.Join([]string{
		"virtualNetworks:",
		"  - name: vn",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets: [{name: s1, addressPrefix: 10.0.1.0/24}]",
		"appServiceEnvironments: [{name: x, subnet: s1, kind: External, virtualIp: 192.23.1.2}]",
		"virtualMachines: [{name: m, subnet: s1}]",
	}, "\n")
	file := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(file, []byte(lab), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := run([]string{"graph", "-f", file}, &stdout, &stderr)
	want := "warning: VM m is in ASE x's subnet s1: x's machines cannot reach it (F8)"
	if code != exitOK || !strings.Contains(stderr.String(), want) || strings.Contains(stdout.String(), "warning") || !strings.Contains(stdout.String(), "digraph") {
		t.Errorf("graph -f of a lab with a VM in an ASE's subnet: exit %d, stderr %q; want exit 0, %q on stderr and a clean drawing on stdout", code, stderr.String(), want)
	}
}
