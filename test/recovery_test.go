package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bigTopology is the default lab with ase1 scaled to 100 front-ends and 100
// workers: 214 nodes, so that `up` takes long enough to be interrupted.
func bigTopology(t *testing.T) string {
	return writeTopology(t, "big.yaml",
		"addressPrefix: 10.0.1.0/26", "addressPrefix: 10.0.1.0/24",
		"    frontEnds: 2\n    workers: 2\n    apps:\n      - name: app1", "    frontEnds: 100\n    workers: 100\n    apps:\n      - name: app1")
}

// upForeground starts `emulator up` (not detached) for lab l, so the test
// holds the emulator's own PID.
func (l *lab) upForeground(args ...string) *exec.Cmd {
	l.t.Helper()
	cmd := exec.Command(emulator, append([]string{"up", "--name", l.name}, args...)...)
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// waitNamespaces waits until the lab has at least n namespaces.
func (l *lab) waitNamespaces(n int) {
	l.t.Helper()
	if !waitFor(2*time.Minute, func() bool { return len(l.namespaces()) >= n }) {
		l.t.Fatalf("lab %s never had %d namespaces (has %d)", l.name, n, len(l.namespaces()))
	}
}

// processesInside lists the processes whose network namespace is one of
// the lab's.
func (l *lab) processesInside() []int {
	inodes := map[string]bool{}
	for _, ns := range l.namespaces() {
		var st syscall.Stat_t
		if syscall.Stat("/run/netns/"+ns, &st) == nil {
			inodes[fmt.Sprintf("net:[%d]", st.Ino)] = true
		}
	}
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/net")
	for _, p := range procs {
		if link, err := os.Readlink(p); err == nil && inodes[link] {
			var pid int
			fmt.Sscanf(p, "/proc/%d/", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

// crashed checks what a crashed emulator (pid) left of lab l: something,
// or the test proves nothing. Then down must remove all of it, including
// the processes still running inside, and a new `up` of the same name
// must work.
func (l *lab) crashed(pid int) {
	t := l.t
	t.Helper()
	if !waitFor(30*time.Second, func() bool { return !processAlive(pid) }) {
		t.Fatalf("the emulator (pid %d) still runs", pid)
	}
	if len(l.leftovers()) == 0 {
		t.Fatal("the crash left nothing behind, so this test proves nothing")
	}
	inside := l.processesInside()
	l.down() // fails the test on any leftover
	for _, p := range inside {
		if processAlive(p) {
			t.Errorf("process %d, inside the lab's namespaces, survived down", p)
		}
	}
	if r := emu(t, "up", "-d", "--name", l.name); r.code != 0 {
		t.Fatalf("up again after the crash and down: %v", r)
	}
	l.mustExec("db1", "ping", "-c", "1", "-W", "2", "10.0.1.6")
}

// SIGKILL in the middle of `up`, once the first namespaces exist.
func TestSIGKILLDuringUp(t *testing.T) {
	before := hostSnapshot(t)
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(func() { l.down() })
	cmd := l.upForeground("-f", bigTopology(t))
	l.waitNamespaces(20)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if n := len(l.namespaces()); n >= 214 {
		t.Logf("up had finished (%d namespaces) before SIGKILL", n)
	}
	l.crashed(cmd.Process.Pid)
	sameHost(t, before, "after the crash, down and a new up")
}

// iperf3 runs between db1 and ase1-w1, both its ends inside the lab.
func (l *lab) iperfLoad() (server, client *bg) {
	server = l.background("ase1-w1", "iperf3", "-s")
	l.waitListening("ase1-w1", 5201)
	client = l.background("db1", "iperf3", "-c", "10.0.1.6", "-t", "60", "-b", "200M")
	// The control connection and at least one data connection.
	if !waitFor(10*time.Second, func() bool { return len(l.tcpFlowsTo("10.0.1.6:5201")) >= 2 }) {
		l.t.Fatal("iperf3 did not start")
	}
	return server, client
}

// SIGKILL of the dataplane while iperf3 runs through it: down stops the
// iperf3 processes left inside and removes everything.
func TestSIGKILLUnderLoad(t *testing.T) {
	before := hostSnapshot(t)
	l := upLab(t)
	pid := l.status().PID
	server, client := l.iperfLoad()
	syscall.Kill(pid, syscall.SIGKILL)
	l.crashed(pid)
	if !server.exited(5*time.Second) || !client.exited(5*time.Second) {
		t.Errorf("iperf3 inside the lab survived down")
	}
	sameHost(t, before, "after the crash, down and a new up")
}

// SIGTERM is a graceful teardown: the emulator removes everything itself,
// under load and in the middle of `up`, before any `down`.
func TestSIGTERM(t *testing.T) {
	t.Run("under load", func(t *testing.T) {
		l := upLab(t)
		pid := l.status().PID
		server, client := l.iperfLoad()
		syscall.Kill(pid, syscall.SIGTERM)
		l.gracefulExit(pid)
		if !server.exited(5*time.Second) || !client.exited(5*time.Second) {
			t.Errorf("iperf3 inside the lab survived the teardown")
		}
	})
	t.Run("during up", func(t *testing.T) {
		l := &lab{t: t, name: uniqueName()}
		t.Cleanup(func() { l.down() })
		cmd := l.upForeground("-f", bigTopology(t))
		l.waitNamespaces(20)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("up after SIGTERM: %v, want a clean exit", err)
		}
		l.gracefulExit(cmd.Process.Pid)
	})
}

// gracefulExit checks that the emulator pid exited and left nothing, so
// that down has nothing to do.
func (l *lab) gracefulExit(pid int) {
	t := l.t
	t.Helper()
	if !waitFor(time.Minute, func() bool { return !processAlive(pid) }) {
		t.Fatalf("the emulator (pid %d) still runs after SIGTERM", pid)
	}
	if left := l.leftovers(); len(left) > 0 {
		t.Errorf("after SIGTERM, before down, lab %s left: %s", l.name, strings.Join(left, "; "))
	}
	if r := emu(t, "down", "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "nothing to do") {
		t.Errorf("down after a graceful exit: want nothing to do, got %v", r)
	}
}

// A panic, injected with the test-only EMULATOR_TEST_PANIC, while `up`
// builds and in a forwarding goroutine: the process dies like on a bug, and
// down leaves nothing.
func TestPanicRecovery(t *testing.T) {
	t.Run("up", func(t *testing.T) {
		t.Setenv("EMULATOR_TEST_PANIC", "up")
		l := &lab{t: t, name: uniqueName()}
		t.Cleanup(func() { l.down() })
		cmd := l.upForeground()
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("up with an injected panic: %v, want the exit status 2 of a Go panic", err)
		}
		os.Unsetenv("EMULATOR_TEST_PANIC")
		l.crashed(cmd.Process.Pid)
	})
	t.Run("forward", func(t *testing.T) {
		t.Setenv("EMULATOR_TEST_PANIC", "forward")
		l := upLab(t)
		os.Unsetenv("EMULATOR_TEST_PANIC")
		pid := l.status().PID
		l.mustExec("db1", "ping", "-c", "1", "-W", "2", "10.0.1.6") // ordinary packets pass
		l.exec("db1", 10*time.Second, "sh", "-c", "echo EMULATOR_TEST_PANIC | nc -u -w 1 10.0.1.6 9")
		if !waitFor(10*time.Second, func() bool { return !processAlive(pid) }) {
			t.Fatal("the dataplane survived the injected panic")
		}
		log, _ := os.ReadFile("/run/emulator/" + l.name + "/emulator.log")
		if !strings.Contains(string(log), "injected panic in the forwarding goroutine") {
			t.Errorf("the emulator's log does not show the panic:\n%s", log)
		}
		l.crashed(pid)
	})
}
