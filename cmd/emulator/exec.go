package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/aseemu/emulator/topology/build"
	"golang.org/x/sys/unix"
)

// cmdExec replaces this process with CMD running inside NODE's namespace,
// as `ip netns exec` does. It only returns on error; otherwise CMD's exit
// status is the command's.
func cmdExec(args []string) error {
	fs, name := newFlags("exec")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 1 {
		return usagef("exec: usage: emulator exec [--name LAB] NODE -- CMD [ARG...]")
	}
	node, cmd := rest[0], rest[1:]
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	} else if len(cmd) > 0 && strings.HasPrefix(cmd[0], "-") {
		// Flag parsing stops at NODE: a --name here would otherwise be
		// taken for the command, and the default lab for the lab.
		return usagef("exec: %s after %s: flags go before NODE: emulator exec [--name LAB] NODE -- CMD [ARG...]", cmd[0], node)
	}
	if len(cmd) == 0 {
		return usagef("exec: no command given: emulator exec [--name LAB] %s -- CMD [ARG...]", node)
	}
	if err := needRoot("exec"); err != nil {
		return err
	}
	// Held until execve closes it: see lockEntry.
	entry, err := lockEntry(*name, unix.LOCK_SH)
	if errors.Is(err, os.ErrNotExist) {
		return notRunning(*name)
	} else if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	defer entry.Close()
	st, err := readState(*name)
	if errors.Is(err, os.ErrNotExist) || (err == nil && !labRunning(*name)) {
		return notRunning(*name)
	}
	if err != nil {
		return err
	}
	// Only the lab's own nodes: a name is never turned into an arbitrary
	// namespace path.
	var nodes []string
	ns := ""
	for _, n := range st.Nodes {
		nodes = append(nodes, n.Name)
		if n.Name == node {
			ns = n.Namespace
		}
	}
	if ns == "" {
		return usagef("exec: %s", noSuchNode(*name, node, nodes))
	}
	path, err := exec.LookPath(cmd[0])
	if errors.Is(err, exec.ErrNotFound) {
		return codedError{err, 127} // exec.Error says "exec: ..." itself
	} else if err != nil {
		return codedError{err, 126}
	}

	// setns(2) moves only this thread, and execve(2) keeps this thread's
	// namespaces for the new program; Enter locks the thread.
	if err := build.Enter(ns); errors.Is(err, os.ErrNotExist) {
		if !labRunning(*name) {
			return notRunning(*name)
		}
		return fmt.Errorf("lab %s is coming up or going down: node %s has no namespace yet (or any more); try again once up has returned", *name, node)
	} else if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	err = syscall.Exec(path, cmd, os.Environ())
	return fmt.Errorf("exec %s: %w", path, err)
}
