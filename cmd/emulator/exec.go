package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/aseemu/emulator/topology/build"
	"golang.org/x/sys/unix"
)

// cmdExec replaces this process with CMD running inside NODE's namespaces
// (network, and UTS for its hostname), as `ip netns exec` does. It only
// returns on error; otherwise CMD's exit status is the command's.
func cmdExec(args []string) error {
	fs, name := newFlags("exec")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 1 {
		return usagef("exec: usage: %s exec [--name LAB] NODE [-- CMD [ARG...]]", prog)
	}
	node, cmd := rest[0], rest[1:]
	if len(cmd) > 0 && cmd[0] == "--" {
		cmd = cmd[1:]
	} else if len(cmd) > 0 && strings.HasPrefix(cmd[0], "-") {
		// Flag parsing stops at NODE: a --name here would otherwise be
		// taken for the command, and the default lab for the lab.
		return usagef("exec: %s after %s: flags go before NODE: "+prog+" exec [--name LAB] NODE [-- CMD [ARG...]]", cmd[0], node)
	}
	if len(cmd) == 0 {
		// A shell in the node, as `docker exec -it NODE sh` gives one: the
		// user's own, or sh. On a terminal it is interactive, and its
		// prompt shows the node's hostname.
		cmd = []string{cmp.Or(os.Getenv("SHELL"), "/bin/sh")}
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
	// env -i, or a sudo that passes no PATH, leaves none: find the tools
	// where a root login shell would (Debian's /etc/profile for uid 0, and
	// sudo's secure_path), not "not installed", and hand the command that
	// PATH, so that what it runs in turn is found too.
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", rootPath)
	}
	path, err := exec.LookPath(cmd[0])
	if errors.Is(err, exec.ErrNotFound) {
		return codedError{notInstalled(cmd[0]), 127}
	} else if errors.Is(err, os.ErrNotExist) {
		return codedError{err, 127} // ./tool that is not there, as sh says it
	} else if err != nil {
		return codedError{err, 126} // exec.Error says "exec: ..." itself
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
	// As sh and env say it: 127 when what the file needs is missing (a
	// script's interpreter), 126 when it is there but cannot run (not a
	// program this kernel runs), never a status the command might exit with.
	if errors.Is(err, syscall.ENOENT) {
		// The file was found: what is missing is what it names.
		return codedError{fmt.Errorf("exec %s: %w (its interpreter, or the loader it names, is missing)", path, err), 127}
	}
	return codedError{fmt.Errorf("exec %s: %w", path, err), 126}
}

// rootPath is the PATH exec gives a command when the caller has none.
const rootPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// packageOf names the Debian package of the tools the README and the
// teaching labs' guides run in nodes (scripts/install-deps.sh installs
// them for the tests), where the package's name is not the tool's.
var packageOf = map[string]string{
	"nc":       "netcat-openbsd",
	"ping":     "iputils-ping",
	"nslookup": "dnsutils",
	"dig":      "dnsutils",
	"host":     "dnsutils",
	"ip":       "iproute2",
	"ss":       "iproute2",
}

// notInstalled says why a command is not found in a node: a namespace has
// no programs of its own, only the host's, so "not in $PATH" is about this
// machine, and installing the tool here is what makes it run there.
func notInstalled(cmd string) error {
	if strings.Contains(cmd, "/") {
		return fmt.Errorf("exec: %s: not found", cmd)
	}
	pkg := packageOf[cmd]
	if pkg == "" {
		pkg = cmd
	}
	return fmt.Errorf("exec: %s: command not found in $PATH; a node runs this machine's programs, so install it here (on Debian: apt-get install %s)",
		cmd, pkg)
}
