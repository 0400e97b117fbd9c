package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aseemu/emulator/topology/build"
	"golang.org/x/sys/unix"
)

// downGrace is how long `down` waits for a running dataplane to tear its lab
// down after SIGTERM before it kills it and cleans up itself.
const downGrace = 15 * time.Second

func cmdDown(args []string, stdout io.Writer) error {
	fs, name := newFlags("down")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := needRoot("down"); err != nil {
		return err
	}
	return downLab(*name, stdout, true)
}

// downLab tears lab down and says what it found; with others, of a lab
// that is not running, which labs are: a learner whose sudo dropped
// EMULATOR_LAB hears that theirs still runs, not only "nothing to do".
func downLab(lab string, stdout io.Writer, others bool) error {
	st, stErr := readState(lab)
	if stErr != nil {
		st = nil // a dead run's namespaces are still found by the lab's prefix
	}
	left, _ := os.Stat(labDir(lab))
	stopped, running := false, false
	var held *labLock
	olderDeadline := time.Now().Add(downGrace)
	for held == nil {
		if live := liveState(lab); live != nil {
			st, running = live, true
			stopped = stopDataplane(st)
		} else if labRunning(lab) {
			// Without its state, a running emulator cannot be told to stop.
			if stErr == nil || errors.Is(stErr, os.ErrNotExist) {
				return fmt.Errorf("lab %s: its emulator has not recorded itself in %s within %v", lab, statePath(lab), downGrace)
			}
			return stErr
		}
		// Whatever is left (all of it, if the emulator was killed) goes
		// now, under the lab's lock: an up that started meanwhile would
		// otherwise lose its directory, its log and its namespaces to this
		// down.
		var err error
		held, err = acquireClearLock(lab)
		switch {
		case errors.Is(err, errOlderEmulator):
			// Its state names its process, which is stopped as any
			// emulator's; until then it may be only testing the lock.
			if old, _ := readState(lab); old != nil && old.alive() && !running {
				st, running = old, true
				stopped = stopDataplane(st)
			} else if time.Now().After(olderDeadline) {
				return fmt.Errorf("lab %s: an emulator built before this one holds its lock (%s) and has not recorded itself; stop it with that emulator's down", lab, lockPath(lab))
			}
			time.Sleep(10 * time.Millisecond)
		case errors.Is(err, errLabRunning) && running:
			// An up took the lab after its emulator stopped: that is
			// another lab, which clears what this one left itself.
			fmt.Fprintf(stdout, "Lab %s is down.\n", lab)
			return nil
		case errors.Is(err, errLabRunning):
			// An up began after this down looked: stop it as any lab found
			// running.
			continue
		case err != nil:
			return fmt.Errorf("down %s: %w", lab, err)
		}
	}
	defer held.release()
	if st == nil {
		st, _ = readState(lab)
	}
	// Namespaces without a directory: a lab whose directory was removed
	// by hand.
	named, _ := build.LabNamespaces(lab)
	if err := removeLabNamespaces(lab, st); err != nil {
		return fmt.Errorf("down %s: %w", lab, err)
	}
	if err := removeLabDir(lab); err != nil {
		return err
	}
	switch {
	case stopped:
		fmt.Fprintf(stdout, "Lab %s is down.\n", lab)
	case running:
		fmt.Fprintf(stdout, "Lab %s did not stop within %v: killed its emulator (pid %d) and removed what it left behind.\n", lab, downGrace, st.PID)
	case st != nil || left != nil || len(named) > 0:
		fmt.Fprintf(stdout, "Lab %s was not running; removed what it left behind.\n", lab)
	case others && len(runningLabs()) > 0:
		fmt.Fprintf(stdout, "Lab %s is not running; nothing to do%s.\n", lab, othersRunning())
	default:
		fmt.Fprintf(stdout, "Lab %s is not running; nothing to do.\n", lab)
	}
	return nil
}

// liveState waits until the process that holds lab's lock has recorded
// itself, and returns its state; nil once no process holds the lock. An up
// holds the lock before it writes its state: until then the file is absent,
// or a crashed run's, which names a process that is gone. Removing the lab
// then would pull its directory and namespaces from under that up. An
// emulator already tearing its lab down is live too: down waits for it as
// for one it asks to stop, and says the lab is down, not that it was not
// running.
func liveState(lab string) *labState {
	for deadline := time.Now().Add(downGrace); labRunning(lab); time.Sleep(10 * time.Millisecond) {
		if st, err := readState(lab); err == nil && st.alive() {
			return st
		}
		if time.Now().After(deadline) {
			return nil
		}
	}
	return goingDownState(lab)
}

// stopDataplane asks the lab's emulator process to tear its lab down, kills
// it if it has not exited within downGrace, and returns once it is gone. It
// reports whether the process exited by itself. The process is held by a
// pidfd, taken only after its start time matched the recorded one, so a
// reused PID is never signalled.
func stopDataplane(st *labState) bool {
	fd, err := unix.PidfdOpen(st.PID, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if !sameProcess(st.PID, st.StartTicks) {
		return false
	}
	exited := func(d time.Duration) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(pfd, int(d.Milliseconds()))
		return n > 0
	}
	unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0)
	if exited(downGrace) {
		return true
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	exited(5 * time.Second)
	return false
}
