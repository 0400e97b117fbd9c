package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/frontend"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/build"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// buildParallelism bounds how many nodes are set up at once. Each node costs
// a handful of syscalls and netlink round trips, which overlap well.
const buildParallelism = 8

// autoQueues picks the queues of each node's interface: one per CPU the
// dataplane takes (dataplane.Cores, half the CPUs), so that every queue's
// worker may busy-poll, and at most 4, since each queue costs a descriptor.
// A queue whose worker may not spin pays a wake-up per packet, and a worker
// per CPU leaves the nodes' programs none. On 2 CPUs, through the lab of
// BENCHMARKS.md, one queue against two (6 alternating rounds, medians):
// new connections 10,589 against 7,230/s, UDP 64 B 235 against 151 kpps
// delivered, round trips and TCP equal. With --busy-poll 0 (3 rounds):
// 10,596 against 7,751/s and 225 against 150 kpps.
// Labs too big for that many descriptors get fewer queues.
func autoQueues(nodes int) int {
	q := min(dataplane.Cores(), 4)
	for q > 1 && nodes*q > maxQueueFDs {
		q--
	}
	return q
}

// descriptorReserve is what the services' connections must leave of the
// process's descriptors (netx.ConnBudget) for lab t with queues per node:
// each node's TUN queues, its namespace handle (kept open for its
// services' sockets) and its services' listeners (a front-end's
// frontend.Listeners, the most; nodeListeners for any other), then
// growthReserve for the nodes an apply adds before the reserve follows it
// (setReserve), and controlReserve. The default lab with one queue keeps
// 13 × 10 + 6 × 31 + 4,096 + 320 = 4,732, so a limit of 20,000 leaves the
// services (20,000 − 4,732) / 2 = 7,634 connections. Reserving for the
// largest lab the emulator accepts instead (4,096 nodes) would keep more
// than such a limit holds, and the services of every lab would be cut to
// netx.ConnBudget's floor for a lab nobody runs.
func descriptorReserve(t *topology.Topology, queues int) int {
	n := growthReserve + controlReserve
	for _, node := range t.Nodes {
		n += queues + 1 + nodeListeners
		if node.Kind == topology.NodeFrontEnd {
			n += frontend.Listeners - nodeListeners
		}
	}
	return n
}

// setReserve keeps back what the running lab needs: at start, and after
// each apply, whose added nodes opened their descriptors out of
// growthReserve.
func (l *runningLab) setReserve() { netx.SetReserve(descriptorReserve(l.topo, l.queues)) }

const (
	// nodeListeners bounds the sockets the services of a node other than a
	// front-end listen on (an app's port; echo's TCP and UDP; DNS's).
	nodeListeners = 8
	// growthReserve is room for an apply to add nodes (with 1 queue, about
	// 400 front-ends or 1,300 other nodes) while the services hold all
	// they may; the reserve then grows with the lab.
	growthReserve = 4096
	// controlReserve is the rest of the process: 64 for control-socket
	// connections (commands at once) and metrics scrapes, and 256 of slack
	// for the lab's lock and state files, flow and DNS logs, the io_uring
	// and epoll descriptors, Go's own, apply's netlink sockets and files
	// while it builds nodes (buildParallelism at a time), and the
	// monitor's probes.
	controlReserve = 64 + 256
)

// maxQueueFDs bounds the TUN descriptors of one lab, well inside the
// 20,000 of a typical RLIMIT_NOFILE that Go raises the soft limit to.
const maxQueueFDs = 8192

// runningLab is a lab this process built and whose dataplane it runs.
type runningLab struct {
	mu       sync.Mutex // guards topo and state against apply
	name     string
	topo     *topology.Topology
	state    *labState
	lock     *labLock
	engine   *dataplane.Engine
	devs     []tun.Device
	queues   int                       // per node interface
	busyPoll time.Duration             // up --busy-poll
	epoll    bool                      // up --io-uring=false
	nets     map[string]netx.Net       // each node's sockets, for its services
	nsh      map[string]netns.NsHandle // by node, kept open for nets
	svc      *labServices
	mon      *monitor
	control  *http.Server
	flowLogs flowLogs // NSG flow logs: flowlog.go

	metrics      *http.Server // up --metrics: metrics.go
	metricsAddr  string
	metricsReady atomic.Bool // the lab is built: serve its counters
}

// startLab builds lab name from topo and starts its dataplane. On failure
// nothing of the lab is left behind.
// opt.queues is the number of queues of each node's interface; 0 picks it.
// lock is the lab's lock when `up -d` took it for this process; nil to take
// it here.
func startLab(name string, topo *topology.Topology, source string, opt upOptions, lock *labLock) (*runningLab, error) {
	if lock == nil {
		var err error
		if lock, err = lockForUp(name); err != nil {
			return nil, err
		}
	}
	// A lab of this name that crashed left namespaces behind: clear them so
	// this one starts clean.
	old, _ := readState(name)
	if err := removeLabNamespaces(name, old); err != nil {
		lock.release()
		return nil, fmt.Errorf("clearing what an earlier lab %s left: %w", name, err)
	}
	var metrics net.Listener
	if opt.metrics != "" {
		var err error
		if metrics, err = listenMetrics(opt.metrics); err != nil {
			removeLabDir(name)
			lock.release()
			return nil, err
		}
	}

	self := os.Getpid()
	ticks, _ := procStartTicks(self)
	st := &labState{Lab: name, PID: self, StartTicks: ticks, Topology: source, Started: time.Now().UTC(), Options: newRunOptions(opt)}
	st.record(topo)
	if metrics != nil {
		st.Metrics = metrics.Addr().String() // for another up that wants the port: metricsHolder
	}
	// Recorded before the first namespace exists, so `down` can always find
	// everything this run creates.
	if err := writeState(st); err != nil {
		closeListener(metrics)
		lock.release()
		return nil, err
	}
	queues := opt.queues
	if queues == 0 {
		queues = autoQueues(len(topo.Nodes))
	}
	l := &runningLab{name: name, topo: topo, state: st, lock: lock, queues: queues, busyPoll: opt.busyPoll, epoll: opt.epoll}
	l.setReserve()
	if metrics != nil {
		l.serveMetrics(metrics)
	}
	if err := l.build(); err != nil {
		l.stop()
		return nil, err
	}
	l.metricsReady.Store(true)
	return l, nil
}

func (l *runningLab) build() error {
	l.devs = make([]tun.Device, len(l.topo.Nodes))
	handles := make([]netns.NsHandle, len(l.topo.Nodes))
	l.nsh = map[string]netns.NsHandle{}
	l.nets = map[string]netx.Net{}
	errs := make([]error, len(l.topo.Nodes))
	sem := make(chan struct{}, buildParallelism)
	var wg sync.WaitGroup
	var built atomic.Int32
	for i, n := range l.topo.Nodes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			l.devs[i], handles[i], errs[i] = l.buildNode(n)
			testPanicBuild(int(built.Add(1)), len(l.topo.Nodes))
		}()
	}
	wg.Wait()
	for i, n := range l.topo.Nodes {
		if handles[i].IsOpen() {
			l.nsh[n.Name] = handles[i]
			l.nets[n.Name] = nsNet{handles[i], n.Addr}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	specs := make([]dataplane.PortSpec, len(l.topo.Nodes))
	for i, n := range l.topo.Nodes {
		specs[i] = dataplane.PortSpec{Node: n, Dev: testPanicDevice(l.devs[i])}
	}
	spin := l.busyPoll
	if spin == 0 {
		spin = -1 // Config's "never"
	}
	// The injected forward panic hooks TryRead, which only the epoll
	// workers call: an io_uring worker reads the queues itself.
	epoll := l.epoll || testPanic == "forward"
	e, err := dataplane.New(l.topo, specs, dataplane.Config{Spin: spin, Epoll: epoll, AwaitProbes: true})
	if err != nil {
		return err
	}
	l.engine = e
	// The ASEs' health checks (F16) dial through netx.Exempt, and reach
	// the services after NAT: the budget finds their own address in the
	// connection's flow.
	netx.SetOrigin(func(remote, local netip.AddrPort) netip.AddrPort {
		if from, ok := e.OriginalSource(header.ProtoTCP, remote, local); ok {
			return from
		}
		return remote // untranslated
	})
	e.Start()
	if l.svc, err = startServices(l.topo, l.nets); err != nil {
		return err
	}
	l.mon = startMonitor(l)
	l.flowLogs.set(l, l.topo.FlowLogs)
	return l.serveControl()
}

// buildNode creates node n's namespace, whose hostname is n's name, and its
// eth0, a TUN whose other end is the dataplane. It returns the device and a
// handle on the namespace.
func (l *runningLab) buildNode(n *topology.Node) (tun.Device, netns.NsHandle, error) {
	name := build.NamespaceName(l.name, n.Name)
	ns, err := build.CreateNamespace(name, n.Name)
	if err != nil {
		return nil, netns.None(), err
	}
	dev, err := l.setupNode(ns, name, n)
	if err != nil {
		ns.Close()
		return nil, netns.None(), err
	}
	return dev, ns, nil
}

// setupNode creates eth0 in namespace ns and configures it.
func (l *runningLab) setupNode(ns netns.NsHandle, name string, n *topology.Node) (tun.Device, error) {
	var dev *tun.Linux
	err := build.Do(ns, func() error {
		if err := build.DisableIPv6(); err != nil {
			return fmt.Errorf("disable IPv6: %w", err)
		}
		if n.IPForwarding {
			if err := build.EnableForwarding(); err != nil {
				return fmt.Errorf("enable forwarding: %w", err)
			}
		}
		var err error
		dev, err = tun.Create("eth0", l.queues)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	// Short names resolve too: echo (echo.example.net), db1
	// (db1.internal.cloudapp.net).
	if err := build.WriteResolvConf(name, topology.PlatformAddr.String(), "internal.cloudapp.net example.net"); err != nil {
		dev.Close()
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := build.WriteHostname(name, n.Name); err != nil {
		dev.Close()
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	err = build.Configure(ns, build.Iface{
		Name:    "eth0",
		Addr:    netip.PrefixFrom(n.Addr, n.Prefix.Bits()),
		Gateway: n.Gateway,
		MTU:     dataplane.DefaultMTU,
	})
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return dev, nil
}

// serveControl answers `status` (and later commands) on a root-only unix
// socket in the lab's directory.
func (l *runningLab) serveControl() error {
	path := socketPath(l.name)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", l.handleStatus)
	mux.HandleFunc("GET /flows", l.handleFlows)
	mux.HandleFunc("GET /dns", l.handleDNS)
	mux.HandleFunc("POST /apply", l.handleApply)
	mux.HandleFunc("POST /verify", l.handleVerify)
	mux.HandleFunc("POST /nexthop", l.handleNexthop)
	mux.HandleFunc("GET /capture", l.handleCapture)
	mux.HandleFunc("POST /trace", l.handleTrace)
	mux.HandleFunc("POST /flowlog", l.handleFlowlog)
	mux.HandleFunc("GET /graph", l.handleGraph)
	l.control = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go l.control.Serve(ln)
	return nil
}

// stop tears the lab down: control socket, dataplane, the lab's processes
// and namespaces, and its directory. It is safe on a half-built lab.
func (l *runningLab) stop() error {
	l.lock.goingDown()
	if l.control != nil {
		l.control.Close()
	}
	l.stopMetrics()
	var errs []error
	if l.mon != nil {
		l.mon.stop()
	}
	if l.svc != nil {
		errs = append(errs, l.svc.close())
	}
	if l.engine != nil {
		netx.SetOrigin(nil) // the services are closed: nothing asks
		l.flowLogs.set(l, false)
		errs = append(errs, l.engine.Close())
	} else {
		for _, d := range l.devs {
			if d != nil {
				d.Close()
			}
		}
	}
	for _, h := range l.nsh {
		h.Close()
	}
	errs = append(errs, removeLabNamespaces(l.name, l.state))
	removeLabDir(l.name)
	l.lock.release()
	return errors.Join(errs...)
}

// checkDir ends this process if the lab's directory, or its lock file, was
// removed (by hand, or with /run): no command can find or stop the lab any
// more, and its dataplane would run on, unseen, for good. It ends as if
// killed, leaving what bears the lab's name for down, or the next up, to
// remove: that name may already be another lab's, whose namespaces and
// directory a teardown of this one would remove.
func (l *runningLab) checkDir() {
	if l.lock == nil || sameFile(l.lock.f, lockPath(l.name)) {
		return
	}
	fmt.Fprintf(os.Stderr, "emulator: lab %s: %s was removed, so no command can find or stop this lab: exiting as if killed ("+self+" down --name %s removes what is left)\n", l.name, lockPath(l.name), l.name)
	os.Exit(1)
}

// removeLabNamespaces stops every process still inside the lab's namespaces
// and deletes the namespaces: those recorded in st and any other whose name
// carries the lab's prefix.
func removeLabNamespaces(lab string, st *labState) error {
	names, err := build.LabNamespaces(lab)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, n := range names {
		seen[n] = true
	}
	if st != nil {
		for _, n := range st.Namespaces {
			if !seen[n] {
				names = append(names, n)
			}
		}
	}
	if entry, err := lockEntry(lab, unix.LOCK_EX); err == nil {
		defer entry.Close()
	}
	stopProcesses(build.PidsIn(names))
	var errs []error
	for _, n := range names {
		errs = append(errs, build.DeleteNamespace(n), build.RemoveEtc(n))
	}
	return errors.Join(errs...)
}

// stopProcesses asks each process to stop, and kills the ones still there
// after a grace period. These are processes running inside the lab's own
// namespaces: started by the lab or by a user through `emulator exec`. Each
// is held by a pidfd, so a PID reused meanwhile is never signalled.
func stopProcesses(pids []int) {
	var fds []int
	for _, p := range pids {
		fd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			continue // already gone
		}
		fds = append(fds, fd)
		unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0)
	}
	deadline := time.Now().Add(2 * time.Second)
	for _, fd := range fds {
		// A pidfd polls readable once its process has exited.
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		ms := max(int(time.Until(deadline).Milliseconds()), 0)
		if n, _ := unix.Poll(pfd, ms); n == 0 {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
		unix.Close(fd)
	}
}
