package main

import (
	"io"
	"strings"
	"testing"
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
		{[]string{"up", "-h"}, []string{"usage: emulator up ", "-busy-poll", "-io-uring", "-metrics", "-queues", "-name"}},
		{[]string{"status", "--help"}, []string{"usage: emulator status ", "-json"}},
		{[]string{"capture", "db1", "-h"}, []string{"usage: emulator capture ", "-filter"}},
		{[]string{"lab", "check", "-h"}, []string{"usage: emulator lab ", "-json"}},
		{[]string{"lab", "-h"}, []string{"usage: emulator lab list", "solve N", "files N [DIR]"}},
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
