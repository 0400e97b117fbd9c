package test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Everything a running lab keeps under /run/emulator (its directory, state,
// lock, control socket and log) is root's and root-only, and another user
// can neither read the state nor talk to the control socket.
func TestStateIsRootOnly(t *testing.T) {
	l := upLab(t)
	dir := "/run/emulator/" + l.name
	seen := map[string]bool{}
	check := func(path string, info fs.FileInfo) {
		st := info.Sys().(*syscall.Stat_t)
		mode := info.Mode()
		switch {
		case st.Uid != 0:
			t.Errorf("%s belongs to uid %d, want root", path, st.Uid)
		case mode.IsDir() && mode.Perm() != 0o700:
			t.Errorf("%s is %v, want drwx------", path, mode)
		case !mode.IsDir() && mode.Perm() != 0o600:
			t.Errorf("%s is %v, want -rw-------", path, mode)
		}
	}
	root, err := os.Stat("/run/emulator")
	if err != nil {
		t.Fatal(err)
	}
	check("/run/emulator", root)
	filepath.Walk(dir, func(path string, info fs.FileInfo, err error) error {
		if err != nil {
			t.Error(err)
			return nil
		}
		seen[filepath.Base(path)] = true
		check(path, info)
		return nil
	})
	for _, f := range []string{"state.json", "lock", "control.sock", "emulator.log"} {
		if !seen[f] {
			t.Errorf("%s/%s is missing; the test expects every state file", dir, f)
		}
	}

	for _, cmd := range [][]string{
		{"cat", dir + "/state.json"},
		{"nc", "-U", "-w", "1", dir + "/control.sock"},
		{"ls", dir},
	} {
		c := exec.Command(cmd[0], cmd[1:]...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		c.Stdin = strings.NewReader("GET /status HTTP/1.0\r\n\r\n")
		out, err := c.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "ermission denied") {
			t.Errorf("as nobody, %s: want permission denied, got %v: %s", strings.Join(cmd, " "), err, out)
		}
	}
}

// exec runs commands only in the lab's own nodes: a name that is not one,
// another lab's namespace, or a path is refused with exit 2 and nothing runs.
func TestExecRefusesUnknownNode(t *testing.T) {
	l := upLab(t)
	marker := filepath.Join(t.TempDir(), "ran")
	for _, node := range []string{"nosuch", l.name + ".db1", "../../proc/1/ns/net", "/run/netns/" + l.name + ".db1", "", "db1;id", "DB1"} {
		r := run(t, 20*time.Second, emulator, "exec", "--name", l.name, node, "--", "touch", marker)
		if r.code != 2 || !strings.Contains(r.stderr, "has no node") {
			t.Errorf("exec in %q: want exit 2 and has no node, got %v", node, r)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("exec in %q ran the command", node)
		}
	}
	if r := emu(t, "exec", "--name", uniqueName(), "db1", "--", "touch", marker); r.code == 0 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("exec in a lab that does not run: want an error saying so, got %v", r)
	}
	l.mustExec("db1", "touch", marker) // and the lab's own node works
	// A command that cannot run exits as sh and env say it, apart from the
	// command's own statuses: 127 not found, 126 not executable.
	if r := l.exec("db1", 20*time.Second, "no-such-command"); r.code != 127 || strings.Count(r.stderr, "exec:") != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("exec of a command that does not exist: want exit 127 and one 'exec:' saying not found, got %v", r)
	}
	if r := l.exec("db1", 20*time.Second, marker); r.code != 126 {
		t.Errorf("exec of a file that is not executable: want exit 126, got %v", r)
	}
}

// Every command that takes a node refuses one the lab does not have as exec
// does: exit 2, naming the lab and the nodes it has, so a script's typo
// says what to write instead.
func TestQueriesRefuseUnknownNode(t *testing.T) {
	l := upLab(t)
	for _, args := range [][]string{
		{"verify", "--from", "nosuch", "--to", "203.0.113.10:80"},
		{"trace", "--from", "nosuch", "--to", "203.0.113.10:80"},
		{"nexthop", "--from", "nosuch", "--to", "203.0.113.10"},
		{"capture", "nosuch", "-c", "1", "-w", os.DevNull},
	} {
		r := emu(t, append(args[:1:1], append([]string{"--name", l.name}, args[1:]...)...)...)
		if r.code != 2 || !strings.Contains(r.stderr, `lab `+l.name+` has no node "nosuch"; its nodes are: `) || !strings.Contains(r.stderr, "db1") {
			t.Errorf("emulator %s: want exit 2 saying lab %s has no node \"nosuch\" and listing its nodes, got %v", strings.Join(args, " "), l.name, r)
		}
	}
}

// capture of an address nothing in the lab holds would wait for packets
// that never come: it says so at once, exit 2 as for a node it does not
// have, naming the lab. An address the lab does hold (a node's, a VIP, an
// ILB address) still starts a capture.
func TestCaptureRefusesUnheldAddress(t *testing.T) {
	l := upLab(t)
	r := run(t, 20*time.Second, emulator, "capture", "--name", l.name, "203.0.113.99", "-c", "1", "-w", os.DevNull)
	if want := "no node or VIP of lab " + l.name + " holds 203.0.113.99"; r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("capture of an address no node or VIP holds: want exit 2 saying %q, got %v", want, r)
	}
	for _, a := range []string{"10.0.2.4", "192.23.1.2", "10.0.4.8"} {
		file := filepath.Join(t.TempDir(), "c.pcapng")
		startCapture(t, file, a, "--name", l.name)
	}
}

// SPEC §6: after the last lab's down, the host is as it was: the emulator's
// state directory and the per-namespace /etc/netns it made are gone too.
// Another lab, on this machine for something else, keeps both; the test
// then cannot tell and skips.
func TestLastDownLeavesNoDirectories(t *testing.T) {
	dirs := []string{"/run/emulator", "/etc/netns"}
	for _, d := range dirs {
		if ents, err := os.ReadDir(d); err == nil && len(ents) > 0 {
			t.Skipf("%s holds %d entries of other labs", d, len(ents))
		}
	}
	for _, args := range [][]string{{"up", "-d"}, {"lab", "start", "1"}} {
		name := uniqueName()
		t.Cleanup(func() { emu(t, "down", "--name", name) })
		if r := emu(t, append(args, "--name", name)...); r.code != 0 {
			t.Fatalf("%s: %v", strings.Join(args, " "), r)
		}
		if r := emu(t, "down", "--name", name); r.code != 0 {
			t.Fatalf("down: %v", r)
		}
		for _, d := range dirs {
			if _, err := os.Stat(d); err == nil {
				ents, _ := os.ReadDir(d)
				t.Errorf("after %s and down, %s is still there (%d entries)", strings.Join(args, " "), d, len(ents))
			}
		}
	}
	// down of a lab that is not running leaves them as they are, absent.
	if r := emu(t, "down", "--name", uniqueName()); r.code != 0 {
		t.Fatalf("down of no lab: %v", r)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("down of no lab made %s", d)
		}
	}
}

// A tool a guide runs in a node comes from this machine, since a namespace
// has no programs of its own: when it is missing, exec says so and names
// the package (exit 127), rather than Go's `"iperf3": executable file not
// found in $PATH`. A file exec finds but cannot run exits 126 or 127 as sh
// says it, never 1, which a script would take for the command's own.
func TestExecCommandThatCannotRun(t *testing.T) {
	l := upLab(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	garbage := filepath.Join(dir, "garbage")
	noInterp := filepath.Join(dir, "script")
	if err := os.WriteFile(garbage, []byte{0, 1, 2, 3}, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(noInterp, []byte("#!/nonexistent/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, emulator, "exec", "--name", l.name, "db1", "--", "iperf3", "-c", "10.0.1.6")
	c.Env = append(os.Environ(), "PATH="+dir) // as on a machine without iperf3
	out, err := c.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 127 || !strings.Contains(string(out), "apt-get install iperf3") || !strings.Contains(string(out), "this machine") {
		t.Errorf("exec of iperf3 where it is not installed: %v, %q; want exit 127 saying to install iperf3 on this machine", err, out)
	}
	for _, c := range []struct {
		cmd  string
		code int
	}{
		{garbage, 126},  // found, executable, but no program: ENOEXEC
		{noInterp, 127}, // its interpreter is missing
		{"./no-such-tool", 127},
	} {
		if r := l.exec("db1", 20*time.Second, c.cmd); r.code != c.code || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("exec of %s: want exit %d and one error line, got %v", c.cmd, c.code, r)
		}
	}
}

// exec with PATH unset or empty (env -i, a restricted sudo) finds a
// node's tools where a root login shell would, and hands the command
// that PATH, so what it runs in turn is found too.
func TestExecWithoutPath(t *testing.T) {
	l := upLab(t)
	for _, env := range [][]string{{}, {"PATH="}} {
		for _, cmd := range [][]string{
			{"curl", "--version"},
			{"ping", "-c", "1", "-W", "5", "10.0.2.1"}, // db1's gateway
			{"ip", "-brief", "address"},                // in /usr/sbin on Debian
			{"sh", "-c", "command -v nc"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			c := exec.CommandContext(ctx, emulator, append([]string{"exec", "--name", l.name, "db1", "--"}, cmd...)...)
			c.Env = env
			out, err := c.CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("with environment %q, exec %s: %v\n%s", env, strings.Join(cmd, " "), err, out)
			}
		}
	}
}

// Advice names the program as the user invoked it, so it can be pasted as
// it is: bin/emulator from the repository (as the README writes it), plain
// emulator when the shell found it through PATH.
func TestAdviceNamesTheProgramAsInvoked(t *testing.T) {
	dir, base := filepath.Split(filepath.Dir(emulator))
	lab := uniqueName()
	for _, c := range []struct {
		arg0, dir string
		env       []string
	}{
		{filepath.Join(base, "emulator"), dir, nil},
		{"emulator", "/", []string{"PATH=" + filepath.Dir(emulator)}},
	} {
		for _, args := range []struct {
			cmd  []string
			want string
		}{
			{[]string{"status", "--name", lab}, "(start it with: " + c.arg0 + " up --name " + lab + ")"},
			{[]string{"stauts"}, "(" + c.arg0 + " help lists the commands)"},
			{[]string{"up", "--nmae", "x"}, "(" + c.arg0 + " up -h lists its flags)"},
		} {
			// As a shell runs it: arg0 as typed, the file it found.
			cmd := &exec.Cmd{Path: emulator, Args: append([]string{c.arg0}, args.cmd...), Dir: c.dir, Env: c.env}
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), args.want) {
				t.Errorf("%s %s in %s: %q, want it to say %q", c.arg0, strings.Join(args.cmd, " "), c.dir, out, args.want)
			}
		}
	}
}

// Advice run through sudo repeats it, so that it can still be pasted as it
// is: after sudo bin/emulator up -d, stop the lab with sudo bin/emulator
// down, and so says what the lab's background emulator writes (apply's
// refusal), which sudo did not run. Without sudo, or in a shell sudo ran
// (sudo sh -c, sudo -i), the user is root already and advice names the
// program alone. Usage lines give the program's syntax: never sudo.
func TestAdviceRepeatsSudo(t *testing.T) {
	if _, err := exec.LookPath("sudo"); err != nil {
		t.Fatal("sudo is not installed (scripts/install-deps.sh installs it)")
	}
	dir, base := filepath.Split(filepath.Dir(emulator))
	prog := filepath.Join(base, "emulator")
	renumber := writeTopology(t, "renumber.yaml", "addressPrefix: 10.0.2.0/24", "addressPrefix: 10.0.2.0/25")
	inShell := func(args []string) string {
		line := "cd '" + dir + "' && '" + prog + "'"
		for _, a := range args {
			line += " '" + a + "'"
		}
		return line
	}
	for _, c := range []struct {
		how  string
		cmd  func(args []string) *exec.Cmd
		sudo bool
	}{
		{"sudo PROG", func(args []string) *exec.Cmd { return exec.Command("sudo", append([]string{prog}, args...)...) }, true},
		{"PROG", func(args []string) *exec.Cmd { return exec.Command(prog, args...) }, false},
		{"sudo sh -c 'PROG'", func(args []string) *exec.Cmd { return exec.Command("sudo", "sh", "-c", inShell(args)) }, false},
		{"sudo -i PROG", func(args []string) *exec.Cmd { return exec.Command("sudo", "-i", "sh", "-c", inShell(args)) }, false},
	} {
		t.Run(c.how, func(t *testing.T) {
			l := &lab{t: t, name: uniqueName()}
			t.Cleanup(l.down)
			advice := prog
			if c.sudo {
				advice = "sudo " + prog
			}
			emu := func(args ...string) string {
				cmd := c.cmd(args)
				cmd.Dir = dir
				out, _ := cmd.CombinedOutput()
				return string(out)
			}
			if out, want := emu("up", "-d", "--name", l.name), "stop it with: "+advice+" down --name "+l.name+"\n"; !strings.Contains(out, want) {
				t.Fatalf("%s up -d: %q, want it to say %q", c.how, out, want)
			}
			if out, want := emu("apply", "--name", l.name, "-f", renumber), "(bring the file up instead: "+advice+" down --name "+l.name+", then "+advice+" up -d -f "; !strings.Contains(out, want) {
				t.Errorf("%s apply, refused by the background emulator: %q, want it to say %q", c.how, out, want)
			}
			if out, want := emu("apply"), "apply: usage: "+prog+" apply "; !strings.Contains(out, want) {
				t.Errorf("%s apply with no file: %q, want it to say %q", c.how, out, want)
			}
		})
	}
}
