// Command emulator builds and runs an emulated Azure App Service Environment
// network: every node is a network namespace and one Go dataplane carries
// every packet between them. See README.md.
package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/aseemu/emulator/topology"
)

// Exit statuses (SPEC §5).
const (
	exitOK    = 0
	exitFail  = 1 // a runtime failure
	exitUsage = 2 // bad usage, a bad topology, or not root
)

// defaultLab is the lab name when neither --name nor $EMULATOR_LAB is given.
const defaultLab = "lab"

// labEnv names another default lab name, so a lab guide's commands work
// unchanged against any lab.
const labEnv = "EMULATOR_LAB"

// defaultLabName is the lab a command without --name acts on.
func defaultLabName() string {
	if n := os.Getenv(labEnv); n != "" {
		return n
	}
	return defaultLab
}

// labNameRE keeps lab names usable as namespace prefixes and file names:
// no dots (the namespace separator), slashes or shell metacharacters.
var labNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

const usage = `usage: emulator COMMAND [ARGS]

Commands:
  up [-f FILE] [--name LAB] [-d] [--queues N] [--busy-poll D] [--io-uring=false] [--metrics 127.0.0.1:PORT]
                                     build a lab and run its dataplane (Ctrl-C tears it down)
  down [--name LAB]                  tear a lab down completely (idempotent)
  status [--name LAB] [--json]       nodes, addresses, VIPs and counters of a running lab
  exec [--name LAB] NODE [-- CMD...]
                                     run a command inside a node's namespace (none: a shell there)
  flows [--name LAB] [--filter EXPR] [--json]
                                     tracked flows with their original and translated tuples
  dns [--name LAB] [--filter EXPR] [--json]
                                     the last queries Azure DNS (168.63.129.16) answered: who asked what, and the answer
  apply [--name LAB] -f FILE         apply changed NSGs, routes, ASE scale and apps to a running lab
  verify [--name LAB] --from NODE --to ADDR[:PORT] [--proto P] [--direction D] [--json]
                                     IP flow verify: would the NSGs allow this flow, and which rule decides
  nexthop [--name LAB] --from NODE --to ADDR [--json]
                                     the next hop and the route that decides it (F18)
  capture NODE|VIP [--name LAB] [-w FILE|-] [--filter EXPR] [-c N]
                                     pcapng of what the dataplane sees; translated packets twice, commented
  trace [--name LAB] --from NODE --to ADDR[:PORT] [--proto P] [--json]
                                     send one real probe and show its path: route, NSG rules, NAT, delivery or drop
  flowlog [--name LAB] [on|off] [--json]
                                     NSG flow logs (Azure's version 2 JSON), one file a minute; where they are
  graph [-f FILE | --name LAB] [--format dot|mermaid]
                                     draw the lab: VNets, subnets with NSGs and route tables, ASEs, VMs, hosts
  init                               print the default lab's topology file
  version                            the emulator's version and the Go that built it (also --version)
  lab list [--json] | start N [UP FLAGS] | check N [STEP] [--json] | solve N | reset N [UP FLAGS] | files N [DIR]  [--name LAB]
                                     teaching labs (scripts/labs): start one (up's flags), check each step, apply its solution,
                                     print its topology or write its files (guide included) into DIR

The default lab name is "` + defaultLab + `", or $` + labEnv + ` when set. Run as root (sudo).
emulator COMMAND -h (or emulator help COMMAND) lists the command's flags.
`

// usageText is the usage with the program named as the user invoked it.
func usageText() string { return strings.ReplaceAll(usage, "emulator ", prog+" ") }

// usageError is a bad invocation: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "up":
		err = cmdUp(rest, stdout)
	case "down":
		err = cmdDown(rest, stdout)
	case "status":
		err = cmdStatus(rest, stdout)
	case "exec":
		err = cmdExec(rest)
	case "flows":
		err = cmdFlows(rest, stdout)
	case "dns":
		err = cmdDNS(rest, stdout)
	case "apply":
		err = cmdApply(rest, stdout)
	case "verify":
		err = cmdVerify(rest, stdout)
	case "nexthop":
		err = cmdNexthop(rest, stdout)
	case "trace":
		err = cmdTrace(rest, stdout)
	case "flowlog":
		err = cmdFlowlog(rest, stdout)
	case "graph":
		err = cmdGraph(rest, stdout, stderr)
	case "capture":
		err = cmdCapture(rest, stdout)
	case "lab":
		err = cmdLab(rest, stdout)
	case "init":
		fs := flag.NewFlagSet("init", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if fs.Parse(rest) == flag.ErrHelp {
			err = commandHelp(fs)
			break
		}
		if len(rest) > 0 {
			err = usagef("init: unexpected argument %q: init prints the default lab; save it with: "+self+" init > FILE", rest[0])
			break
		}
		_, err = stdout.Write(topology.DefaultYAML())
	case "help", "-h", "--help":
		if len(rest) > 0 && rest[0] != "help" && rest[0] != "-h" && rest[0] != "--help" {
			// help CMD is CMD -h, as go and git read it.
			return run([]string{rest[0], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usageText())
		return exitOK
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine())
		return exitOK
	default:
		// The whole usage after a typo would scroll the one line that
		// matters off the screen.
		msg := fmt.Sprintf("unknown command %q", cmd)
		if s := cmp.Or(otherToolsVerbs[cmd], closest(cmd, commandNames())); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		fmt.Fprintf(stderr, "emulator: %s ("+self+" help lists the commands)\n", msg)
		return exitUsage
	}
	var h helpRequest
	if errors.As(err, &h) {
		fmt.Fprint(stdout, h.text)
		return exitOK
	}
	return report(err, stderr)
}

// helpRequest is CMD -h: the command's usage and flags, for stdout.
type helpRequest struct{ text string }

func (h helpRequest) Error() string { return "help requested" }

var usageGap = regexp.MustCompile(`\s{3,}`)

// commandHelp is fs's command's lines of the usage, then its flags.
func commandHelp(fs *flag.FlagSet) helpRequest {
	var b strings.Builder
	cmd, _, _ := strings.Cut(fs.Name(), " ")
	lines := strings.Split(usage, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "  "+cmd+" ") && l != "  "+cmd {
			continue
		}
		// The description is on the same line, after a gap, or on the next.
		parts := usageGap.Split(strings.TrimSpace(l), 2)
		if len(parts) == 1 && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "       ") {
			parts = append(parts, strings.TrimSpace(lines[i+1]))
		}
		fmt.Fprintf(&b, "usage: "+prog+" %s\n", parts[0])
		if len(parts) == 2 {
			fmt.Fprintf(&b, "  %s\n", parts[1])
		}
	}
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if !hasFlags {
		return helpRequest{b.String()}
	}
	b.WriteString("\nFlags:\n")
	// flag.PrintDefaults spells every flag with one dash (-name), where
	// the usage line above and the README write --name: the same flag
	// spelled two ways on one screen.
	fs.VisitAll(func(f *flag.Flag) {
		typ, text := flag.UnquoteUsage(f)
		fmt.Fprintf(&b, "  %s", dashes(f.Name))
		if typ != "" {
			fmt.Fprintf(&b, " %s", typ)
		}
		fmt.Fprintf(&b, "\n    \t%s", strings.ReplaceAll(text, "\n", "\n    \t"))
		switch f.DefValue {
		case "", "0", "false", "0s":
		default:
			if typ == "string" {
				fmt.Fprintf(&b, " (default %q)", f.DefValue)
			} else {
				fmt.Fprintf(&b, " (default %s)", f.DefValue)
			}
		}
		b.WriteString("\n")
	})
	return helpRequest{b.String()}
}

// report prints err and maps it to an exit status.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "emulator: %v\n", err)
	var ue usageError
	var te topology.Errors
	var ce codedError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ue) || errors.As(err, &te):
		return exitUsage
	}
	return exitFail
}

// codedError is an error that exits with a status of its own, as exec's
// command that cannot run does: 127 not found, 126 not executable, as
// sh(1) and env(1) say it, so that a script can tell them from the
// command's own exit statuses.
type codedError struct {
	err  error
	code int
}

func (e codedError) Error() string { return e.err.Error() }
func (e codedError) Unwrap() error { return e.err }

// newFlags returns a flag set for a subcommand with the common --name flag.
func newFlags(cmd string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", defaultLabName(), "lab name")
	return fs, name
}

// parseFlags parses args and checks the lab name.
func parseFlags(fs *flag.FlagSet, args []string, name *string) error {
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return commandHelp(fs)
	} else if err != nil {
		return flagError(fs, err)
	}
	if !labNameRE.MatchString(*name) {
		const rule = "use 1-32 lowercase letters, digits and '-', starting and ending with a letter or digit"
		if !flagGiven(fs, "name") && os.Getenv(labEnv) != "" {
			// A name the user never typed: say where it came from.
			return usagef("$%s=%s is not a lab name: %s (or give --name)", labEnv, *name, rule)
		}
		return usagef("lab name %q: %s", *name, rule)
	}
	return nil
}

// flagError says what was wrong with a flag, suggests the flag a typo
// was likely meant to be, and where the command's flags are listed.
func flagError(fs *flag.FlagSet, err error) error {
	// Go's messages spell a long flag with one dash: -queues.
	msg := goFlagSpelling.ReplaceAllString(err.Error(), "$1--$2")
	if bad, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
		bad = strings.TrimLeft(bad, "-")
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		msg = fmt.Sprintf("unknown flag %s", dashes(bad))
		if s := closest(bad, names); s != "" {
			msg += fmt.Sprintf("; did you mean %s?", dashes(s))
		}
	}
	return usagef("%s: %s ("+self+" %s -h lists its flags)", fs.Name(), msg, fs.Name())
}

var goFlagSpelling = regexp.MustCompile(`(flag |argument: |for )-([a-z][a-z-]+)`)

// dashes spells a flag as the README and the usage do: -w, -f, --name.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// otherToolsVerbs are what containerlab and docker compose users type for
// our verbs (STYLE: up/down are their deploy/destroy, status inspect).
var otherToolsVerbs = map[string]string{
	"deploy": "up", "start": "up", "destroy": "down", "stop": "down",
	"inspect": "status", "ps": "status", "shell": "exec",
}

// commandNames are the commands the usage lists, and help.
func commandNames() []string {
	names := []string{"help"}
	for _, l := range strings.Split(usage, "\n") {
		if w, ok := strings.CutPrefix(l, "  "); ok && w != "" && w[0] >= 'a' && w[0] <= 'z' {
			names = append(names, strings.Fields(w)[0])
		}
	}
	return names
}

// closest is the candidate a typo of word most likely meant, case
// aside: within two edits (one for words of up to four letters, none for
// one or two, where any other letter would be one edit away), swapping two
// neighbouring letters counting as one; "" when none is that near.
func closest(word string, candidates []string) string {
	best, bestD := "", 3
	switch {
	case len(word) <= 2:
		bestD = 1
	case len(word) <= 4:
		bestD = 2
	}
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(word), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// versionLine is what --version prints: the module version and commit
// the binary was built from, where the build recorded them, and the Go
// that built it, which is what a bug report needs.
func versionLine() string {
	v := "(unknown)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Sprintf("emulator %s, %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	}
	v = bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (commit %.12s%s)", rev, modified)
	}
	return fmt.Sprintf("emulator %s, %s %s/%s", v, bi.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// fileArgs refuses a positional argument to a command that takes its
// topology file with -f, as `up`, `apply` and `graph` do: typed as
// docker compose or containerlab users would, `up lab.yaml` should say how
// the file is given.
func fileArgs(fs *flag.FlagSet, file string) error {
	if fs.NArg() == 0 {
		return nil
	}
	if file == "" && (strings.HasSuffix(fs.Arg(0), ".yaml") || strings.HasSuffix(fs.Arg(0), ".yml") || isFile(fs.Arg(0))) {
		lab := ""
		if fs.Name() != "graph" { // which draws a file or a lab, not both
			lab = labFlag(fs.Lookup("name").Value.String())
		}
		return usagef("%s: unexpected argument %q: a topology file is given with -f: "+self+" %s%s -f %s", fs.Name(), fs.Arg(0), fs.Name(), lab, fs.Arg(0))
	}
	return usagef("%s: unexpected argument %q ("+self+" %s -h lists its flags)", fs.Name(), fs.Arg(0), fs.Name())
}

// flagGiven says whether the command line set flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// noStdinFile refuses -f - for a command whose lab keeps its topology
// file's path: apply and status name it, and up -d reads it again in the
// detached child, where standard input is gone.
func noStdinFile(fs *flag.FlagSet, file string) error {
	if file != "-" {
		return nil
	}
	return usagef("%s: -f -: a running lab's topology must be a file, not standard input (the lab keeps its path); write it to one first, e.g. %s init > lab.yaml", fs.Name(), self)
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// labFlag is what a command printed as advice needs to act on lab name:
// nothing for the default lab, else its --name, without which the advice
// would act on another lab.
func labFlag(name string) string {
	if name == "" || name == defaultLabName() {
		return ""
	}
	return " --name " + name
}

// noArgs refuses a stray argument to a command that takes none: read as
// a lab's name, it would otherwise be dropped and the default lab used.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() == 0 {
		return nil
	}
	return usagef("%s: unexpected argument %q (the lab is given with --name)", fs.Name(), fs.Arg(0))
}

// needRoot refuses to go on without the privileges namespaces and TUN
// devices need.
func needRoot(cmd string) error {
	if os.Geteuid() != 0 {
		return usagef("%s needs root: a lab's namespaces, devices, state and control socket are root's; run it with sudo", cmd)
	}
	return nil
}
