package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/build"
	"golang.org/x/sys/unix"
)

// stateRoot holds one root-only directory per running lab: its recorded
// state, the lock its dataplane holds while it runs, its control socket and
// its log.
const stateRoot = "/run/emulator"

func labDir(lab string) string     { return filepath.Join(stateRoot, lab) }
func statePath(lab string) string  { return filepath.Join(labDir(lab), "state.json") }
func lockPath(lab string) string   { return filepath.Join(labDir(lab), "lock") }
func socketPath(lab string) string { return filepath.Join(labDir(lab), "control.sock") }
func logPath(lab string) string    { return filepath.Join(labDir(lab), "emulator.log") }

// labState is what a lab records so that `down`, `status` and `exec` can
// find it, even after its dataplane was killed.
type labState struct {
	Lab        string      `json:"lab"`
	PID        int         `json:"pid"`
	StartTicks uint64      `json:"startTicks"` // /proc/PID/stat start time, against PID reuse
	Topology   string      `json:"topology"`
	Started    time.Time   `json:"started"`
	Namespaces []string    `json:"namespaces"`        // written before any is created
	Metrics    string      `json:"metrics,omitempty"` // the address up --metrics serves, for another up that wants it
	Options    *runOptions `json:"options,omitempty"` // up's other flags, for a restart: labState.upOptions
	Nodes      []nodeState `json:"nodes"`
}

// runOptions are the flags of up (but --metrics, which labState.Metrics
// records) that the lab was brought up with, as given: queues 0 is
// automatic, which a restart from another file sizes anew.
type runOptions struct {
	Queues   int    `json:"queues"`
	BusyPoll string `json:"busyPoll"`
	IOUring  bool   `json:"ioUring"`
}

func newRunOptions(opt upOptions) *runOptions {
	return &runOptions{Queues: opt.queues, BusyPoll: opt.busyPoll.String(), IOUring: !opt.epoll}
}

// upOptions are the flags to bring the lab up again with as it runs: lab
// solve's restart and lab reset keep what the learner started it with. The
// metrics stay on the address they were served on, port 0's pick too, so
// the URL the learner was shown still answers. A lab recorded by an
// emulator that did not record its options gets up's defaults for them.
func (st *labState) upOptions() upOptions {
	opt := upOptions{metrics: st.Metrics, busyPoll: dataplane.DefaultSpin}
	if o := st.Options; o != nil {
		opt.queues, opt.epoll = o.Queues, !o.IOUring
		if d, err := time.ParseDuration(o.BusyPoll); err == nil {
			opt.busyPoll = d
		}
	}
	return opt
}

type nodeState struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Address   string `json:"address"`
}

// record sets the namespaces and nodes of topology t.
func (st *labState) record(t *topology.Topology) {
	st.Namespaces, st.Nodes = nil, nil
	for _, n := range t.Nodes {
		ns := build.NamespaceName(st.Lab, n.Name)
		st.Namespaces = append(st.Namespaces, ns)
		st.Nodes = append(st.Nodes, nodeState{Name: n.Name, Kind: string(n.Kind), Namespace: ns, Address: n.Addr.String()})
	}
}

func writeState(st *labState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := statePath(st.Lab) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, statePath(st.Lab))
}

func readState(lab string) (*labState, error) {
	b, err := os.ReadFile(statePath(lab))
	if err != nil {
		return nil, err
	}
	var st labState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath(lab), err)
	}
	return &st, nil
}

// makeLabDir creates the lab's directory, root-only, and stateRoot if it
// must: see build.MkdirAll for a concurrent down.
func makeLabDir(lab string) error { return build.MkdirAll(labDir(lab), 0o700) }

// removeLabDir removes the lab's directory, and stateRoot with it once no
// other lab has one there: after the last lab, /run is as it was (SPEC §6).
// A lab coming up meanwhile keeps stateRoot, which is then not empty.
func removeLabDir(lab string) error {
	if err := os.RemoveAll(labDir(lab)); err != nil {
		return err
	}
	os.Remove(stateRoot) // fails, as it should, while another lab is there
	return nil
}

// The lab's lock file carries two OFD locks (fcntl F_OFD_SETLK), on one
// byte each. Like flock, an OFD lock belongs to the open file: `up -d`
// hands it to its background emulator with the descriptor, and the kernel
// drops it when the last holder dies, however it dies, so "is the lab
// running?" never depends on a PID that may have been reused. Unlike flock,
// it can be tested without being taken (F_OFD_GETLK): a query that took it
// for a moment, as queries once did, made an up of the lab at that moment
// find it running and refuse.
const (
	// lockRun is held by the emulator that runs the lab, from before it
	// builds the lab until it has removed it, and by a down while it
	// removes what a lab that does not run left behind.
	lockRun = 0
	// lockClear is held by such a down from before it takes lockRun until
	// it has removed the lab's directory, and by the emulator that runs the
	// lab once it has begun to tear it down (goingDown): it tells an up to
	// wait for the lab to be gone rather than refuse a lab that runs, and a
	// query that the lab does not run.
	lockClear = 1
)

// labLock is the lab's lock file, holding lockRun (and lockClear for a
// down); closing it releases them.
type labLock struct{ f *os.File }

// acquireLock creates the lab's directory (root-only) and takes lockRun
// for an up, or says that another emulator runs the lab. A down that is
// removing what an earlier run left is waited for.
func acquireLock(lab string) (*labLock, error) { return takeLock(lab, false) }

// acquireClearLock takes lockClear and lockRun for a down that removes
// what lab left, waiting for any other such down. It returns
// errLabRunning if an emulator runs the lab or an up of it is under way.
func acquireClearLock(lab string) (*labLock, error) { return takeLock(lab, true) }

// clearWait bounds how long an up waits for a down that removes what an
// earlier run left: its processes' grace period, and deleting namespaces.
const clearWait = 30 * time.Second

func takeLock(lab string, forDown bool) (*labLock, error) {
	deadline := time.Now().Add(clearWait)
	for {
		if err := makeLabDir(lab); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(lockPath(lab), os.O_CREATE|os.O_RDWR, 0o600)
		if errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline) {
			continue // a down removed the directory after this made it
		} else if err != nil {
			return nil, err
		}
		if forDown {
			if err := setLock(f, lockClear, unix.F_OFD_SETLKW); err != nil {
				f.Close()
				return nil, err
			}
		}
		err = setLock(f, lockRun, unix.F_OFD_SETLK)
		switch {
		case err == nil && !sameFile(f, lockPath(lab)):
			// A down removed the directory after this opened the file: the
			// lock no longer guards the lab. Make it anew.
			f.Close()
			continue
		case err == nil:
			// An emulator from before OFD locks tests and holds flock: it
			// must find this lab running too, and this one find its lab.
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
				f.Close()
				if errors.Is(err, unix.EWOULDBLOCK) {
					return nil, errOlderEmulator
				}
				return nil, err
			}
			return &labLock{f}, nil
		case !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES):
			f.Close()
			return nil, err
		}
		clearing := !forDown && lockTaken(f, lockClear)
		f.Close()
		if !clearing {
			return nil, errLabRunning
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("a down of lab %s has been removing what it left for %v; try again once it has returned", lab, clearWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setLock takes byte b of the lock file for writing, with cmd F_OFD_SETLK
// or F_OFD_SETLKW.
func setLock(f *os.File, b int64, cmd int) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: b, Len: 1}
	return unix.FcntlFlock(f.Fd(), cmd, &lk)
}

// lockTaken reports whether another open file holds byte b of the lock
// file f. It takes nothing.
func lockTaken(f *os.File, b int64) bool {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: b, Len: 1}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk) == nil && lk.Type != unix.F_UNLCK
}

// sameFile reports whether f is still the file at path.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func (l *labLock) release() { l.f.Close() }

// goingDown marks the lab as being torn down by the emulator that holds l:
// it takes lockClear beside lockRun. A suite that stopped a foreground up
// with Ctrl-C and brought the lab up again at once was refused, "already
// running", by a lab a moment from gone; its up now waits (takeLock). A
// down holds lockClear only while it tries lockRun, which this holds, so
// the wait is short. If the lock cannot be taken, an up is refused as
// before.
func (l *labLock) goingDown() { setLock(l.f, lockClear, unix.F_OFD_SETLKW) }

// inheritedLock is the lab's lock that `up -d` took and passed on as
// descriptor fd. Close-on-exec, so that nothing this process starts keeps
// the lab "running" after it is gone.
func inheritedLock(fd int) *labLock {
	unix.CloseOnExec(fd)
	return &labLock{os.NewFile(uintptr(fd), "lock")}
}

var errLabRunning = errors.New("lab is running")

// errOlderEmulator says that the lab's flock is held: an emulator from
// before OFD locks runs the lab, or tests its lock for a moment. To an up
// that is a lab that runs.
var errOlderEmulator = fmt.Errorf("an older emulator holds the lab's lock: %w", errLabRunning)

// notRunning is the error of a command on a lab that does not run. A
// learner who started a teaching lab under --name and then types a guide's
// command without it must hear which labs do run, not only how to up a
// default lab they never wanted. Of a lab whose emulator was killed, which
// left its namespaces behind, they hear that too, and how to remove them.
func notRunning(lab string) error {
	if st := goingDownState(lab); st != nil {
		return fmt.Errorf("lab %s is going down: its emulator (pid %d) is tearing it down", lab, st.PID)
	}
	if st, err := readState(lab); err == nil && !st.alive() {
		return fmt.Errorf("lab %s is not running: its emulator (pid %d) ended without tearing it down (see %s); remove what it left with: "+self+" down --name %s, or start it again with: "+self+" up --name %s%s",
			lab, st.PID, logPath(lab), lab, lab, othersRunning())
	}
	return fmt.Errorf("lab %s is not running (start it with: "+self+" up --name %s)%s", lab, lab, othersRunning())
}

// othersRunning ends a "lab is not running" error: the labs that run, if
// any, and how to name one.
func othersRunning() string {
	others := runningLabs()
	if len(others) == 0 {
		return ""
	}
	return fmt.Sprintf("; running: %s (name one with --name LAB, or export EMULATOR_LAB=LAB)", strings.Join(others, ", "))
}

// runningLabs names the labs whose recorded process is alive.
func runningLabs() []string {
	entries, err := os.ReadDir(stateRoot)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if st, err := readState(e.Name()); err == nil && st.alive() {
			names = append(names, e.Name())
		}
	}
	slices.SortFunc(names, compareLabNames)
	return names
}

// compareLabNames orders lab names as a teacher numbers a class: hc-2
// before hc-10, each run of digits by its value.
func compareLabNames(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun is the length of the run of digits s starts with.
func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// labRunning reports whether an emulator runs the lab or an up of it is
// under way: whether lockRun is held, by other than a down that removes
// what the lab left. It takes no lock, so it never gets in an up's way.
func labRunning(lab string) bool {
	f, err := os.Open(lockPath(lab))
	if err != nil {
		return false
	}
	defer f.Close()
	return !lockTaken(f, lockClear) && lockTaken(f, lockRun)
}

// goingDownState is the state of lab's emulator while it tears the lab
// down (labLock.goingDown), else nil. A down that clears what a killed
// emulator left holds the same two locks, but its lab's recorded process
// is gone.
func goingDownState(lab string) *labState {
	f, err := os.Open(lockPath(lab))
	if err != nil {
		return nil
	}
	defer f.Close()
	if !lockTaken(f, lockClear) || !lockTaken(f, lockRun) {
		return nil
	}
	st, err := readState(lab)
	if err != nil || !st.alive() {
		return nil
	}
	return st
}

// lockEntry takes the lock on the lab's directory that orders `exec` and
// the teardown of namespaces: shared by an exec from before it checks that
// the lab runs until its execve (the descriptor is close-on-exec), exclusive
// by a teardown from before it looks for the processes in the namespaces
// until it has deleted them. Without it an exec could enter a namespace
// after the teardown looked and run on, unseen, in a namespace without a
// name. It returns the descriptor that holds the lock.
func lockEntry(lab string, how int) (*os.File, error) {
	f, err := os.Open(labDir(lab))
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// procStat reads /proc/PID/stat from its state (field 3) on. The command
// name (field 2) may hold spaces and parentheses, so the fields are counted
// from its last closing parenthesis.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strings.Fields(s[i+1:]), nil
}

// procStartTicks reads a process's start time (field 22 of /proc/PID/stat),
// which together with the PID names one process for its whole life.
func procStartTicks(pid int) (uint64, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// zombie reports whether pid has exited and waits to be reaped: a killed
// lab's dataplane stays so where nothing reaps it (a container's init).
func zombie(pid int) bool {
	f, err := procStat(pid)
	return err == nil && len(f) > 0 && f[0] == "Z"
}

// alive reports whether the emulator st records still runs: the same
// process (its PID and start time, against reuse), and not a zombie.
func (st *labState) alive() bool {
	return st.PID > 0 && sameProcess(st.PID, st.StartTicks) && !zombie(st.PID)
}

// sameProcess reports whether pid is still the process that started at
// ticks.
func sameProcess(pid int, ticks uint64) bool {
	t, err := procStartTicks(pid)
	return err == nil && t == ticks
}
