package main

// Everything the harness creates is recorded here before it exists, and torn
// down at the end, on error and on SIGINT/SIGTERM/SIGHUP: child processes
// (by their PID, as process groups the harness made), emulator labs (with
// `emulator down`), namespaces (`ip netns del`) and temporary files. Names
// carry the harness's PID (bnchPID-...), so a later run can also remove what
// a SIGKILLed run left behind, and nothing else.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type registry struct {
	mu       sync.Mutex
	closing  bool
	done     chan struct{}     // closed when cleanup has finished
	procs    map[int]*exec.Cmd // running children, by PID (= their process group)
	labs     []string
	netns    []string
	files    []string
	emulator string
	log      io.Writer
}

var reg = &registry{procs: map[int]*exec.Cmd{}, done: make(chan struct{}), log: os.Stderr}

// prefix is this run's name prefix: labs, namespaces.
var prefix = fmt.Sprintf("bnch%d", os.Getpid())

var errInterrupted = errors.New("interrupted")

func (r *registry) addLab(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return errInterrupted
	}
	r.labs = append(r.labs, name)
	return nil
}

func (r *registry) addNetns(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return errInterrupted
	}
	r.netns = append(r.netns, name)
	return nil
}

func (r *registry) addFile(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files = append(r.files, name)
}

// start starts cmd in its own process group, dying with the harness
// (Pdeathsig) and recorded until wait.
func (r *registry) start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return errInterrupted
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return err
	}
	r.procs[cmd.Process.Pid] = cmd
	return nil
}

func (r *registry) wait(cmd *exec.Cmd) error {
	err := cmd.Wait()
	r.mu.Lock()
	delete(r.procs, cmd.Process.Pid)
	r.mu.Unlock()
	return err
}

// stop ends one child: SIGTERM to its process group, SIGKILL after grace.
func (r *registry) stop(cmd *exec.Cmd, grace time.Duration) {
	pid := cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.wait(cmd); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-done
	}
}

// run runs a command to completion (killed at ctx's end) and returns its
// stdout; a failure includes stderr.
func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := reg.start(cmd); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- reg.wait(cmd) }()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return out.String(), nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ctx.Err())
	}
}

// runT is run with a timeout.
func runT(d time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return run(ctx, name, args...)
}

// server is a long-running child that said it was ready.
type server struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	errb  *bytes.Buffer
}

// startServer starts a child and waits until a line of its stdout contains
// ready (or it exits, or timeout).
func startServer(ready string, timeout time.Duration, name string, args ...string) (*server, error) {
	cmd := exec.Command(name, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errb := &bytes.Buffer{}
	cmd.Stderr = errb
	if err := reg.start(cmd); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), errb: errb}
	got := make(chan error, 1)
	go func() {
		for {
			line, err := s.out.ReadString('\n')
			if strings.Contains(line, ready) {
				got <- nil
				return
			}
			if err != nil {
				got <- fmt.Errorf("%s exited before it was ready: %s", name, strings.TrimSpace(errb.String()))
				return
			}
		}
	}()
	select {
	case err = <-got:
	case <-time.After(timeout):
		err = fmt.Errorf("%s %s: not ready after %s", name, strings.Join(args, " "), timeout)
	}
	if err != nil {
		reg.stop(cmd, time.Second)
		return nil, err
	}
	return s, nil
}

// finish closes the server's stdin, reads the rest of its stdout and waits
// for it (killing it after timeout).
func (s *server) finish(timeout time.Duration) (string, error) {
	s.stdin.Close()
	rest := make(chan string, 1)
	go func() { b, _ := io.ReadAll(s.out); rest <- string(b) }()
	select {
	case out := <-rest:
		err := reg.wait(s.cmd)
		return out, err
	case <-time.After(timeout):
		reg.stop(s.cmd, time.Second)
		return "", errors.New("did not finish in time")
	}
}

func (s *server) kill() { reg.stop(s.cmd, 2*time.Second) }

// cleanup tears everything down; it runs once, and afterwards nothing new
// can be registered. A second caller waits until the first has finished, so
// that nobody exits the process halfway through the teardown.
func (r *registry) cleanup() {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		<-r.done
		return
	}
	r.closing = true
	defer close(r.done)
	procs := make([]*exec.Cmd, 0, len(r.procs))
	for _, c := range r.procs {
		procs = append(procs, c)
	}
	labs, netns, files := r.labs, r.netns, r.files
	r.mu.Unlock()

	for _, c := range procs {
		syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, c := range procs {
		for time.Now().Before(deadline) && syscall.Kill(c.Process.Pid, 0) == nil && !reaped(c) {
			time.Sleep(20 * time.Millisecond)
		}
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	// Reap them (unless a goroutine waiting for one already has), so none
	// is left a zombie.
	deadline = time.Now().Add(2 * time.Second)
	for _, c := range procs {
		for time.Now().Before(deadline) {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(c.Process.Pid, &ws, syscall.WNOHANG, nil)
			if pid == c.Process.Pid || err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, lab := range labs {
		labDown(lab)
	}
	for i := len(netns) - 1; i >= 0; i-- {
		netnsDel(netns[i])
	}
	for _, f := range files {
		os.RemoveAll(f)
	}
}

// interrupted reports whether the teardown has begun (a signal came).
func (r *registry) interrupted() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// reaped reports whether c has exited (zombie or gone).
func reaped(c *exec.Cmd) bool {
	f, err := statFields(c.Process.Pid)
	return err != nil || f[0] == "Z"
}

// statFields is a process's /proc/PID/stat from its state on (field 3):
// the fields after the command's closing parenthesis, since the command
// may hold spaces.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) == 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no fields after the command", pid)
	}
	return f, nil
}

// labDown takes a lab down, directly (not through reg: it runs during
// cleanup too).
func labDown(lab string) (string, error) {
	cmd := exec.Command(reg.emulator, "down", "--name", lab)
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Fprintf(reg.log, "bench: emulator down --name %s: %v: %s\n", lab, err, out)
	}
	return string(out), err
}

func netnsDel(name string) {
	if _, err := os.Stat("/run/netns/" + name); err != nil {
		return
	}
	// Processes still inside would keep it alive unseen; kill them by PID.
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		fmt.Fprintf(reg.log, "bench: ip netns del %s: %v: %s\n", name, err, out)
	}
}

// handleSignals tears down and exits on SIGINT, SIGTERM or SIGHUP.
func handleSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-ch
		fmt.Fprintf(reg.log, "\nbench: %v: tearing down...\n", s)
		reg.cleanup()
		fmt.Fprintln(reg.log, "bench: torn down")
		os.Exit(130)
	}()
}

var staleRE = regexp.MustCompile(`^bnch([0-9]+)-`)

// sweepStale removes the labs and namespaces of earlier runs whose harness
// process is gone (killed with SIGKILL, so it could not clean up).
func sweepStale() {
	dead := func(name string) bool {
		m := staleRE.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			return false
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return err != nil || strings.TrimSpace(string(b)) != "bench"
	}
	labs := map[string]bool{}
	if ents, err := os.ReadDir("/run/emulator"); err == nil {
		for _, e := range ents {
			if dead(e.Name()) {
				labs[e.Name()] = true
			}
		}
	}
	var plain []string
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			n := e.Name()
			if !dead(n) {
				continue
			}
			if lab, _, ok := strings.Cut(n, "."); ok {
				labs[lab] = true
			} else {
				plain = append(plain, n)
			}
		}
	}
	names := make([]string, 0, len(labs))
	for l := range labs {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		fmt.Fprintf(reg.log, "bench: removing lab %s left by an earlier run\n", l)
		labDown(l)
	}
	for _, n := range plain {
		fmt.Fprintf(reg.log, "bench: removing namespace %s left by an earlier run\n", n)
		netnsDel(n)
	}
	if ents, err := os.ReadDir(os.TempDir()); err == nil {
		for _, e := range ents {
			if e.IsDir() && dead(e.Name()) {
				os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
			}
		}
	}
}

// leftovers lists this run's namespaces and labs still present.
func leftovers() []string {
	var left []string
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix+"-") {
				left = append(left, "netns "+e.Name())
			}
		}
	}
	if ents, err := os.ReadDir("/run/emulator"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix+"-") {
				left = append(left, "lab "+e.Name())
			}
		}
	}
	return left
}
