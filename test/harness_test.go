// Package test holds the integration tests: each brings up a real lab under
// a unique name with the emulator binary a user would run, probes it with
// real tools inside its namespaces, and tears it down even when it fails.
//
// They need root. Run them with `sudo make test` (or `make integration`).
package test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// emulator is the path of the binary under test.
var emulator string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration tests need root (they create namespaces): run sudo make test")
		if os.Getenv("CI") != "" {
			os.Exit(1) // never pass CI by skipping everything
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "emulator-test-")
	if err != nil {
		panic(err)
	}
	// World-readable, so a test can run the binary as an unprivileged user.
	os.Chmod(dir, 0o755)
	emulator = os.Getenv("EMULATOR")
	if emulator == "" {
		emulator = filepath.Join(dir, "emulator")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		out, err := exec.Command(gobin, "build", "-o", emulator, "../cmd/emulator").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "building the emulator: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a command printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs a command with a deadline and returns what it printed.
func run(t *testing.T, timeout time.Duration, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		r.code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			r.stderr += fmt.Sprintf("\n(killed after %v)", timeout)
		}
	}
	return r
}

// emu runs the emulator binary.
func emu(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, 2*time.Minute, emulator, args...)
}

// lab is a running lab that a test owns.
type lab struct {
	t    *testing.T
	name string
}

// uniqueName is a lab name no other test or run uses. $EMULATOR_TEST_PREFIX
// replaces its leading "t", so that people sharing a machine can tell
// (and tear down) their own labs.
func uniqueName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return cmp.Or(os.Getenv("EMULATOR_TEST_PREFIX"), "t") + hex.EncodeToString(b)
}

// upLab brings a lab up detached under a unique name, with extra `up`
// arguments (e.g. -f FILE), and registers its teardown, which also checks
// that nothing of it remains.
func upLab(t *testing.T, args ...string) *lab {
	t.Helper()
	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(func() { l.down() })
	r := emu(t, append([]string{"up", "-d", "--name", l.name}, args...)...)
	if r.code != 0 {
		t.Fatalf("emulator up failed: %v", r)
	}
	return l
}

// down tears the lab down and fails the test if anything of it remains.
func (l *lab) down() {
	t := l.t
	t.Helper()
	if r := emu(t, "down", "--name", l.name); r.code != 0 {
		t.Errorf("emulator down failed: %v", r)
	}
	if left := l.leftovers(); len(left) > 0 {
		t.Errorf("after down, lab %s left: %s", l.name, strings.Join(left, "; "))
	}
}

// leftovers lists what remains of the lab: namespaces, its state directory,
// its files under /etc/netns, its nodes' UTS namespaces.
func (l *lab) leftovers() []string {
	var left []string
	for _, ns := range l.namespaces() {
		left = append(left, "namespace "+ns)
	}
	if _, err := os.Stat("/run/emulator/" + l.name); err == nil {
		left = append(left, "/run/emulator/"+l.name)
	}
	etc, _ := filepath.Glob("/etc/netns/" + l.name + ".*")
	left = append(left, etc...)
	uts, _ := filepath.Glob("/run/utsns/" + l.name + ".*")
	left = append(left, uts...)
	return left
}

// exec runs a command inside a node with `emulator exec`.
func (l *lab) exec(node string, timeout time.Duration, cmd ...string) result {
	l.t.Helper()
	return run(l.t, timeout, emulator, append([]string{"exec", "--name", l.name, node, "--"}, cmd...)...)
}

// mustExec runs a command inside a node and fails the test if it fails.
func (l *lab) mustExec(node string, cmd ...string) string {
	l.t.Helper()
	r := l.exec(node, 30*time.Second, cmd...)
	if r.code != 0 {
		l.t.Fatalf("%s on %s failed: %v", strings.Join(cmd, " "), node, r)
	}
	return r.stdout
}

// noICMPRateLimit turns off node's per-destination ICMP error rate limit
// (net.ipv4.icmp_ratelimit, in the node's own namespace). A traceroute's
// last hop is the destination's port unreachable, which that limiter may
// drop: a clean-clone CI run lost the first one to a fresh peer
// (IcmpOutRateLimitHost counted it). The limiter is the node's business,
// not the dataplane's that these tests check.
func (l *lab) noICMPRateLimit(node string) {
	l.t.Helper()
	l.mustExec(node, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0")
}

// bg is a command running inside a node, started by a test.
type bg struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
}

// background starts a command inside a node and stops it (by its PID) when
// the test ends.
func (l *lab) background(node string, cmd ...string) *bg {
	l.t.Helper()
	b := &bg{done: make(chan struct{})}
	b.cmd = exec.Command(emulator, append([]string{"exec", "--name", l.name, node, "--"}, cmd...)...)
	b.cmd.Stdout, b.cmd.Stderr = &b.stdout, &b.stderr
	// Its own process group, so that kill reaches what it started too (a
	// shell's nc); and a bound on waiting for output a survivor holds open.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.cmd.WaitDelay = 2 * time.Second
	if err := b.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.done) }()
	l.t.Cleanup(func() {
		b.kill()
		<-b.done
	})
	return b
}

// kill kills the command's process group: the processes this test started.
func (b *bg) kill() { syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) }

// exited reports whether the command ended by itself within d.
func (b *bg) exited(d time.Duration) bool {
	select {
	case <-b.done:
		return true
	case <-time.After(d):
		return false
	}
}

// wait waits for the command to end (killing it after 10 s) and returns
// what it printed.
func (b *bg) wait() result {
	if !b.exited(10 * time.Second) {
		b.kill()
		<-b.done
	}
	return result{stdout: b.stdout.String(), stderr: b.stderr.String(), code: b.cmd.ProcessState.ExitCode()}
}

// waitListening waits until something listens on TCP port inside node.
func (l *lab) waitListening(node string, port int) {
	l.t.Helper()
	want := fmt.Sprintf(":%d ", port)
	for i := 0; i < 100; i++ {
		r := l.exec(node, 10*time.Second, "ss", "-Htln")
		if strings.Contains(r.stdout, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("nothing listens on %s:%d", node, port)
}

// emuJSON runs `emulator CMD --json --name LAB ARGS...` and decodes its
// output into out, failing the test if either fails.
func (l *lab) emuJSON(out any, cmd string, args ...string) {
	l.t.Helper()
	r := emu(l.t, append([]string{cmd, "--json", "--name", l.name}, args...)...)
	if r.code != 0 {
		l.t.Fatalf("emulator %s %s: %v", cmd, strings.Join(args, " "), r)
	}
	if err := json.Unmarshal([]byte(r.stdout), out); err != nil {
		l.t.Fatalf("emulator %s --json: %v\n%s", cmd, err, r.stdout)
	}
}

// status returns the lab's `status --json`.
func (l *lab) status() statusJSON {
	l.t.Helper()
	var s statusJSON
	l.emuJSON(&s, "status")
	return s
}

type nodeJSON struct {
	Name       string            `json:"name"`
	Kind       string            `json:"kind"`
	Address    string            `json:"address"`
	Subnet     string            `json:"subnet"`
	Namespace  string            `json:"namespace"`
	RxPackets  uint64            `json:"rxPackets"`
	Drops      map[string]uint64 `json:"drops"`
	QueueDrops uint64            `json:"queueDrops"`
}

// node returns one node's entry in the lab's `status --json`.
func (l *lab) node(name string) nodeJSON {
	l.t.Helper()
	for _, n := range l.status().Nodes {
		if n.Name == name {
			return n
		}
	}
	l.t.Fatalf("status has no node %s", name)
	return nodeJSON{}
}

type statusJSON struct {
	Lab   string     `json:"lab"`
	PID   int        `json:"pid"`
	Nodes []nodeJSON `json:"nodes"`
	ASEs  []struct {
		Name string `json:"name"`
		VIP  string `json:"vip"`
		ILB  string `json:"ilb"`
	} `json:"ases"`
	Drops  map[string]int `json:"drops"`
	Reader struct {
		Workers     []string `json:"workers"`
		NoIOURing   string   `json:"noIOURing"`
		BufferBytes uint64   `json:"bufferBytes"`
	} `json:"reader"`
	NAT struct {
		Flows         int    `json:"flows"`
		PoolExhausted uint64 `json:"poolExhausted"`
		Pools         []struct {
			Address string `json:"address"`
			Proto   string `json:"proto"`
			Shares  []struct {
				Address   string `json:"address"`
				Range     string `json:"range"`
				Exhausted uint64 `json:"exhausted"`
			} `json:"shares"`
		} `json:"pools"`
	} `json:"nat"`
}
