package main

import (
	"os"
	"strings"
)

// prog is the program as the user invoked it: os.Args[0] as typed,
// bin/emulator from the repository as the README writes it, emulator when
// the shell found it through PATH. Usage lines name it: they describe the
// program's syntax, which sudo is no part of.
//
// self is the command advice tells the user to run, so that it can be
// pasted as it is: prog, after sudo when the user ran this very command
// through sudo (sudo bin/emulator up -d), since without it the pasted
// command fails for want of root. In a root shell (sudo -i, sudo su, a
// root login) it is prog alone, as the user would type it there.
var prog, self = adviceName(os.Args[0], os.Getenv("SUDO_USER"), os.Getenv("SUDO_COMMAND"), os.Getenv(sudoAdviceEnv), os.Args[1:])

// sudoAdviceEnv, set to 1, tells up -d's background emulator that the up
// which started it ran through sudo: its advice must say what the
// foreground one's does, though sudo did not run it. The environment
// carries it rather than argv[0], which ps would show as a sudo command.
const sudoAdviceEnv = "EMULATOR_ADVICE_SUDO"

func adviceName(arg0, sudoUser, sudoCommand, sudoAdvice string, args []string) (prog, self string) {
	prog = invokedAs(arg0)
	if sudoAdvice == "1" {
		return prog, "sudo " + prog
	}
	if exe, err := os.Executable(); err == nil && ranBySudo(sudoUser, sudoCommand, exe, args) {
		return prog, "sudo " + prog
	}
	return prog, prog
}

// invokedAs is arg0, or "emulator" when arg0 is empty or holds a
// character a shell would need quoted: advice then names the program
// plainly rather than quote a path nobody types. The name also goes into
// format strings, so it must hold no %.
func invokedAs(arg0 string) string {
	if arg0 == "" || strings.IndexFunc(arg0, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._+-", r))
	}) >= 0 {
		return "emulator"
	}
	return arg0
}

// ranBySudo reports whether sudo ran this process, the executable exe with
// arguments args, itself, from what sudo(8) leaves in the environment:
// SUDO_USER, and SUDO_COMMAND, the command it ran, its path as sudo found
// it (as typed when it holds a /, relative to the directory this process
// started in) and its arguments joined by spaces. Under sudo -i, sudo su
// or sudo sh -c '...' it ran a shell, and a program the shell runs sees
// that shell's SUDO_COMMAND: a root shell, where advice needs no sudo; so
// does a shell in a node (sudo emulator exec NODE), whose SUDO_COMMAND
// names this program but not these arguments. Sudo truncates a
// SUDO_COMMAND over 4096 characters, which then matches no command, and
// advice goes without sudo as it did before sudo was considered.
func ranBySudo(sudoUser, sudoCommand, exe string, args []string) bool {
	if sudoUser == "" {
		return false
	}
	path := sudoCommand
	if len(args) > 0 {
		var ok bool
		if path, ok = strings.CutSuffix(sudoCommand, " "+strings.Join(args, " ")); !ok {
			return false
		}
	}
	ran, err := os.Stat(path)
	if err != nil {
		return false
	}
	me, err := os.Stat(exe)
	return err == nil && os.SameFile(ran, me)
}
