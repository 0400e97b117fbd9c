package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/build"
)

// readyFDEnv names the descriptor on which a detached child reports to the
// `up -d` that started it: the node table and then readyLine, or an error.
const (
	readyFDEnv = "EMULATOR_READY_FD"
	readyLine  = "\x00ready"
	// lockFDEnv names the descriptor of the lab's lock, which `up -d` takes
	// before it touches the lab's log and hands to its child.
	lockFDEnv = "EMULATOR_LOCK_FD"
)

func cmdUp(args []string, stdout io.Writer) error {
	fs, name := newFlags("up")
	file := fs.String("f", "", "topology file (default: the embedded default lab)")
	detach := fs.Bool("d", false, "return once the lab is ready and keep it running in the background")
	options := upFlags(fs, "up")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	opt, err := options()
	if err != nil {
		return err
	}
	if err := fileArgs(fs, *file); err != nil {
		return err
	}
	if err := noStdinFile(fs, *file); err != nil {
		return err
	}
	topo, source, err := loadTopology(*file)
	if err != nil {
		return err
	}
	if err := needRoot("up"); err != nil {
		return err
	}
	if *detach {
		return upDetached(*name, *file, opt, stdout, nil)
	}

	// A detached child reports on its ready pipe; a foreground run prints.
	var ready *os.File
	if fd := os.Getenv(readyFDEnv); fd != "" {
		ready = os.NewFile(3, "ready")
		os.Unsetenv(readyFDEnv)
	}
	var lock *labLock
	if os.Getenv(lockFDEnv) != "" {
		lock = inheritedLock(4)
		os.Unsetenv(lockFDEnv)
	}
	// Catch signals before building, so Ctrl-C during `up` still tears down.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	// A closed stdout (`emulator up | head -1`) fails a write instead of
	// killing the process before it tears the lab down.
	signal.Ignore(syscall.SIGPIPE)

	lab, err := startLab(*name, topo, source, opt, lock)
	if err != nil {
		if ready != nil {
			fmt.Fprintf(ready, "%v\n", err)
		}
		return err
	}
	var table bytes.Buffer
	printLab(&table, *name, topo, source)
	if lab.metricsAddr != "" {
		fmt.Fprintf(&table, "\nPrometheus metrics: http://%s/metrics\n", lab.metricsAddr)
	}
	if ready != nil {
		ready.Write(table.Bytes())
		fmt.Fprintln(ready, readyLine)
		ready.Close()
	} else {
		stdout.Write(table.Bytes())
		fmt.Fprintf(stdout, "\nThe lab runs until Ctrl-C.\n")
	}

	sig := <-sigs
	lab.lock.goingDown() // before the words, which a script may wait for
	fmt.Fprintf(stdout, "%v: tearing lab %s down\n", sig, *name)
	if err := lab.stop(); err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	// The words down ends with: without them a user who pressed Ctrl-C
	// cannot tell a finished teardown from one cut short.
	fmt.Fprintf(stdout, "Lab %s is down.\n", *name)
	return nil
}

// loadTopology loads file, or the embedded default lab when file is "",
// or standard input when file is "-" (graph draws a pipe; up and apply
// refuse it first, see noStdinFile).
func loadTopology(file string) (*topology.Topology, string, error) {
	if file == "" {
		return topology.Default(), "the default lab", nil
	}
	if file == "-" {
		// One byte past the limit, so Parse reports the input too large.
		data, err := io.ReadAll(io.LimitReader(os.Stdin, topology.MaxFileSize+1))
		if err != nil {
			return nil, "", unreadable("<stdin>", err)
		}
		t, err := topology.Parse("<stdin>", data)
		return t, "standard input", err
	}
	t, err := topology.Load(file)
	if err != nil {
		var te topology.Errors
		if errors.As(err, &te) {
			return nil, "", err
		}
		return nil, "", unreadable(file, err)
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	return t, abs, nil
}

// unreadable is the error for a topology file that cannot be read: a bad
// topology, so exit status 2 (SPEC §5), like one that does not parse.
func unreadable(file string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is named once, in our words
	}
	return usagef("cannot read the topology file %s: %v", file, err)
}

// upOptions are the flags of up that a detached child is given again.
type upOptions struct {
	queues   int           // --queues: per node interface, 0 automatic
	metrics  string        // --metrics: the loopback address to serve metrics on
	busyPoll time.Duration // --busy-poll: 0 never
	epoll    bool          // --io-uring=false
}

// upFlags defines on fs the flags of how the dataplane runs, for up and
// for the commands that are up of a lab's own topology (lab start and
// reset); once fs is parsed, options checks them (usage errors naming cmd)
// and returns them.
func upFlags(fs *flag.FlagSet, cmd string) (options func() (upOptions, error)) {
	queues := fs.Int("queues", 0, "queues per node interface (0: half the CPUs, at least 1, up to 4)")
	metrics := fs.String("metrics", "", "export Prometheus metrics on this loopback ADDR:PORT, one no other lab serves (port 0: a free one, which status shows)")
	busyPoll := fs.Duration("busy-poll", dataplane.DefaultSpin, "how long the dataplane looks for packets before it sleeps (0: never)")
	uring := fs.Bool("io-uring", true, "read the node interfaces through io_uring where the kernel can (false: always epoll)")
	return func() (upOptions, error) {
		if *metrics != "" {
			if err := checkMetricsAddr(*metrics); err != nil {
				return upOptions{}, usagef("%s: %v", cmd, err)
			}
		}
		if *queues < 0 || *queues > tun.MaxQueues {
			return upOptions{}, usagef("%s: --queues %d: use 0 (automatic) to %d", cmd, *queues, tun.MaxQueues)
		}
		if *busyPoll < 0 || *busyPoll > maxBusyPoll {
			return upOptions{}, usagef("%s: --busy-poll %v: use 0 to %v", cmd, *busyPoll, maxBusyPoll)
		}
		return upOptions{queues: *queues, metrics: *metrics, busyPoll: *busyPoll, epoll: !*uring}, nil
	}
}

// maxBusyPoll bounds --busy-poll: past a millisecond a worker spins through
// gaps that are not between two packets of one exchange.
const maxBusyPoll = time.Millisecond

// upDetached starts this program again as a background process that runs
// the lab, waits until that process reports the lab ready or failed, and
// prints what it reported. lock is the lab's lock if the caller took it (to
// write the topology file into the lab's directory first); nil to take it
// here.
func upDetached(name, file string, opt upOptions, stdout io.Writer, lock *labLock) error {
	// The lab's lock comes before its log: a second `up -d` that only
	// checked for a running lab could pass that check while the first
	// one's child was starting, truncate the log the winner then wrote,
	// and have its own refused child write there. The child inherits the
	// lock, so no other `up` can slip in before it runs the lab.
	if lock == nil {
		var err error
		if lock, err = lockForUp(name); err != nil {
			return err
		}
	}
	defer lock.release()
	logf, err := os.OpenFile(logPath(name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()

	args := []string{"up", "--name", name, "--queues", strconv.Itoa(opt.queues), "--busy-poll", opt.busyPoll.String(),
		"--io-uring=" + strconv.FormatBool(!opt.epoll)}
	if opt.metrics != "" {
		args = append(args, "--metrics", opt.metrics)
	}
	if file != "" {
		abs, err := filepath.Abs(file)
		if err != nil {
			return err
		}
		args = append(args, "-f", abs)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, args...)
	// The background emulator's advice (apply's "bring the file up
	// instead: emulator down, ...") names the program as the user typed
	// it, as this process's does, after sudo if this one's does: sudo did
	// not run that process (sudoAdviceEnv).
	cmd.Args[0] = prog
	cmd.Env = append(os.Environ(), readyFDEnv+"=3", lockFDEnv+"=4")
	if self != prog {
		cmd.Env = append(cmd.Env, sudoAdviceEnv+"=1")
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w, lock.f}
	cmd.Dir = "/"
	// Its own session: the terminal's Ctrl-C and hangup do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return err
	}
	w.Close()
	cmd.Process.Release()

	// The child holds the lock it inherited, so it cannot find the lab
	// running: what it reports is a failure to build, never bad usage.
	var out bytes.Buffer
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == readyLine {
			stdout.Write(out.Bytes())
			fmt.Fprintf(stdout, "\nLab %s runs in the background; stop it with: "+self+" down --name %s\n", name, name)
			return nil
		}
		out.WriteString(sc.Text() + "\n")
	}
	msg := strings.TrimSpace(out.String())
	if msg == "" {
		msg = "the background emulator exited before the lab was ready; see " + logPath(name)
	}
	return fmt.Errorf("%s", msg)
}

// lockForUp takes the lab's lock for an up, or says why it cannot.
func lockForUp(name string) (*labLock, error) {
	lock, err := acquireLock(name)
	if errors.Is(err, errLabRunning) {
		return nil, usagef("lab %s is already running; stop it with: "+self+" down --name %s", name, name)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	return lock, nil
}

// nodeSubnet is what the SUBNET column (and status --json's subnet) says
// of where a node is: its subnet, the on-premises network, the Azure
// platform or the Internet.
func nodeSubnet(n *topology.Node) string {
	switch {
	case n.Subnet != nil:
		return n.Subnet.Name
	case n.Kind == topology.NodeOnPrem || n.Kind == topology.NodeOnPremGateway:
		return "on-premises"
	case n.Kind == topology.NodePlatform:
		// 168.63.129.16 is no Internet host: NSGs count it in the
		// VirtualNetwork tag (F11), and only Azure's machines reach it.
		return "Azure platform"
	}
	return "Internet"
}

// printLab prints the table `up` shows: every node with its address, and
// every ASE with its VIP and ILB address.
func printLab(w io.Writer, name string, t *topology.Topology, source string) {
	fmt.Fprintf(w, "Lab %s is up: %d nodes, from %s\n\n", name, len(t.Nodes), source)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKIND\tADDRESS\tSUBNET\tGATEWAY\tNAMESPACE")
	for _, n := range t.Nodes {
		subnet := nodeSubnet(n)
		fmt.Fprintf(tw, "%s\t%s\t%s/%d\t%s\t%s\t%s\n", n.Name, n.Kind, n.Addr, n.Prefix.Bits(), subnet, n.Gateway, build.NamespaceName(name, n.Name))
	}
	tw.Flush()
	printASEs(w, aseRows(t))
	for _, warn := range labWarnings(t) {
		fmt.Fprintf(w, "\nwarning: %s\n", warn)
	}
}

// labWarnings are what is legal in a topology but probably not meant. up
// prints them under its table, and graph -f, which checks a file as up
// would, on stderr.
func labWarnings(t *topology.Topology) []string {
	var out []string
	for _, vm := range t.VMs {
		if a := vm.Subnet.ASE; a != nil {
			out = append(out, fmt.Sprintf("VM %s is in ASE %s's subnet %s: %s's machines cannot reach it (F8); put it in another subnet",
				vm.Name, a.Name, vm.Subnet.Name, a.Name))
		}
	}
	return out
}
