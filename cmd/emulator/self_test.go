package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain names the program as the README runs it: os.Args[0] is the
// test binary's path here, which no advice a test pins would name.
func TestMain(m *testing.M) {
	prog, self = "bin/emulator", "bin/emulator"
	os.Exit(m.Run())
}

func TestInvokedAs(t *testing.T) {
	for arg0, want := range map[string]string{
		"bin/emulator":            "bin/emulator",
		"emulator":                "emulator",
		"/usr/local/bin/emulator": "/usr/local/bin/emulator",
		"./emulator":              "./emulator",
		"":                        "emulator",
		"my bin/emulator":         "emulator", // a shell would need it quoted
		"bin/emu%dlator":          "emulator", // and it goes into format strings
		"sudo bin/emulator":       "emulator",
	} {
		if got := invokedAs(arg0); got != want {
			t.Errorf("invokedAs(%q) = %q, want %q", arg0, got, want)
		}
	}
}

// The environment each way a user reaches root gives the programs it runs,
// as sudo 1.9 sets it.
func TestRanBySudo(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// SUDO_COMMAND's path is as typed: relative to the working directory
	// when the user typed it so.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, exe)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "emulator")
	if err := os.WriteFile(other, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	up := []string{"up", "-d", "--name", "x"}
	for _, c := range []struct {
		what                  string
		sudoUser, sudoCommand string
		args                  []string
		want                  bool
	}{
		{"sudo PROG up -d --name x", "alice", exe + " up -d --name x", up, true},
		{"sudo by a relative path", "alice", rel + " up -d --name x", up, true},
		{"sudo PROG with no arguments", "alice", exe, nil, true},
		{"an argument with a space", "alice", exe + " up --name a b", []string{"up", "--name", "a b"}, true},
		{"root's own sudo, in a root shell", "root", exe + " up -d --name x", up, true},
		{"no sudo", "", "", up, false},
		{"a root login that kept SUDO_COMMAND but not SUDO_USER", "", exe + " up -d --name x", up, false},
		{"sudo -i, then PROG", "alice", "/bin/bash", up, false},
		{"sudo -i, then PROG with no arguments", "alice", "/bin/bash", nil, false},
		{"sudo su, then PROG", "alice", "/usr/bin/su", up, false},
		{"sudo sh -c 'PROG up -d --name x'", "alice", "/usr/bin/sh -c " + exe + " up -d --name x", up, false},
		{"sudo sh -c 'PROG' with no arguments", "alice", "/usr/bin/sh -c " + exe, nil, false},
		{"a shell in a node, from sudo PROG exec NODE", "alice", exe + " exec db1", up, false},
		{"PROG's arguments are a tail of another's", "alice", exe + " exec db1 -- " + exe + " up -d --name x", up, false},
		{"sudo another emulator", "alice", other + " up -d --name x", up, false},
		{"sudo a path that is no more", "alice", filepath.Join(t.TempDir(), "gone") + " up -d --name x", up, false},
		{"sudo PROG with other arguments", "alice", exe + " up --name x", up, false},
	} {
		if got := ranBySudo(c.sudoUser, c.sudoCommand, exe, c.args); got != c.want {
			t.Errorf("%s: ranBySudo(%q, %q, %q, %q) = %v, want %v", c.what, c.sudoUser, c.sudoCommand, exe, c.args, got, c.want)
		}
	}
}

// Advice goes after sudo, usage lines do not; sudoAdviceEnv carries sudo
// to the background emulator.
func TestAdviceName(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		arg0, sudoUser, sudoCommand, sudoAdvice string
		args                                    []string
		prog, self                              string
	}{
		{"bin/emulator", "", "", "", []string{"status"}, "bin/emulator", "bin/emulator"},
		{"bin/emulator", "alice", exe + " status", "", []string{"status"}, "bin/emulator", "sudo bin/emulator"},
		{"bin/emulator", "alice", "/bin/bash", "", []string{"status"}, "bin/emulator", "bin/emulator"},
		// up -d's background emulator: sudo ran its parent, with -d.
		{"bin/emulator", "alice", exe + " up -d --name x", "1", []string{"up", "--name", "x"}, "bin/emulator", "sudo bin/emulator"},
		{"bin/emulator", "alice", exe + " up -d --name x", "", []string{"up", "--name", "x"}, "bin/emulator", "bin/emulator"},
	} {
		prog, self := adviceName(c.arg0, c.sudoUser, c.sudoCommand, c.sudoAdvice, c.args)
		if prog != c.prog || self != c.self {
			t.Errorf("adviceName(%q, %q, %q, %q, %q) = %q, %q, want %q, %q", c.arg0, c.sudoUser, c.sudoCommand, c.sudoAdvice, c.args, prog, self, c.prog, c.self)
		}
	}
}
