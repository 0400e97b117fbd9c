// Package dataplane carries every packet between the lab's nodes.
//
// Each node's interface is a tun.Device, with one or more queues. A worker
// per queue number waits on that queue of every node at once (poll.go),
// reads each packet and runs it through the pipeline in forward.go:
//
//	parse → TTL → conntrack (a new flow: policy) → route → MTU → translate → write
//
// The worker that read a packet writes it; nothing on the way takes a lock,
// sends on a channel or allocates.
//
// What the pipeline consults (ports, forwarding table, policy) is one
// immutable snapshot behind an atomic pointer. Reconfiguring the lab (a
// changed topology, a front-end leaving rotation) builds a new snapshot and
// swaps it in; packets in flight finish with the one they loaded.
package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/dataplane/route"
	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

// DefaultMTU is the MTU of every node interface unless a port says otherwise.
const DefaultMTU = 1500

// maxPacket is the largest packet a device can hand us: a virtio-net header
// and a 64 KiB GSO super-packet.
const maxPacket = header.VirtioNetHdrLen + 65535

// PortSpec attaches a node's device to the engine.
type PortSpec struct {
	Node *topology.Node
	Dev  tun.Device
	MTU  int // 0 means DefaultMTU
}

// Port is one node's interface as the dataplane sees it.
type Port struct {
	// The node's settings in the current snapshot: compile swaps them
	// while the workers read them.
	nodeP   atomic.Pointer[topology.Node]
	dev     tun.Device
	queues  []tun.Device // dev's queues; queues[0] is dev's own
	gateway header.Addr  // source of the ICMP errors we send to this node
	mtu     int
	stats   portStats
	fragMu  sync.Mutex // guards frags: each queue's goroutine may see fragments
	frags   *fragTable // first fragments seen (frag.go)

	link  atomic.Pointer[portLink] // the node's impaired link, or nil (link.go)
	sinks linkSinks
}

func (p *Port) node() *topology.Node     { return p.nodeP.Load() }
func (p *Port) setNode(n *topology.Node) { p.nodeP.Store(n) }

// snapshot is everything the pipeline consults, compiled from one topology.
// It is never modified once published.
type snapshot struct {
	topo   *topology.Topology
	ports  []*Port // target.port indexes this
	fib    *route.Table[target]
	pol    *policy
	nsgs   *nsg.Set
	routes *routing
}

// Engine is the dataplane.
type Engine struct {
	cur  atomic.Pointer[snapshot]
	ct   *nat.Table
	wg   sync.WaitGroup
	done chan struct{} // closed by Close: stops the sweeper

	obsState // capture and trace taps: capture.go

	mu        sync.Mutex      // serialises reconfiguration
	unhealthy map[string]bool // front-ends out of rotation (F15)
	started   bool
	workers   []*pollWorker // by queue number: poll.go
	ringErr   error         // why the last worker that tried io_uring could not
	// retired are the drops, by reason, of the ports Reconfigure removed,
	// so that the lab's totals never go back when apply scales a node
	// away (a script comparing totals before and after saw them fall).
	// Guarded by mu.
	retired [numDropReasons]uint64

	epoll       bool          // Config.Epoll
	spin        time.Duration // Config.Spin
	maxSpinners int32         // workers that may spin at once
	spinners    atomic.Int32
	sweepEvery  time.Duration // sweepInterval, but for a test that asks the ring workers to trim itself
}

// Config holds what the engine takes from outside the topology.
type Config struct {
	// Clock is conntrack's time; nil means nat.SystemClock. The workers
	// read it once per batch, never per packet: 31 ns a read here (tsc
	// through the vDSO). A clock that a 1 ms ticker stamped instead woke
	// an idle lab's dataplane 2,977 times a second (commit 7b65dda).
	Clock nat.Clock
	// Spin is how long a worker keeps looking for packets before it
	// sleeps (tun.Poller.Wait). 0 means DefaultSpin; negative, never.
	Spin time.Duration
	// Epoll makes the workers read through epoll even where the kernel
	// offers io_uring's multishot reads (ring.go).
	Epoll bool
	// AwaitProbes starts every front-end out of its VIP's rotation, as
	// Azure's load balancer starts a new instance, until SetInRotation
	// puts it in after its first successful probe (F15).
	AwaitProbes bool
}

// DefaultSpin is Config.Spin's default.
const DefaultSpin = 50 * time.Microsecond

// New builds an engine for topology t with one port per spec.
func New(t *topology.Topology, specs []PortSpec, cfg Config) (*Engine, error) {
	e := &Engine{done: make(chan struct{}), unhealthy: map[string]bool{}, spin: cfg.Spin, epoll: cfg.Epoll, sweepEvery: sweepInterval}
	if e.spin == 0 {
		e.spin = DefaultSpin
	}
	e.maxSpinners = int32(Cores())
	if cfg.AwaitProbes {
		for _, a := range t.ASEs {
			for _, fe := range a.FrontEnds {
				e.unhealthy[fe.Name] = true
			}
		}
	}
	ports, err := newPorts(nil, specs)
	if err != nil {
		return nil, err
	}
	s, err := e.compile(t, ports)
	if err != nil {
		return nil, err
	}
	ct, err := nat.New(nat.Config{
		MaxFlows: t.Conntrack.MaxFlows,
		Timeouts: nat.Timeouts{
			Idle: t.Conntrack.IdleTimeout,
			Fin:  t.Conntrack.FinTimeout,
			Rst:  t.Conntrack.RstTimeout,
		},
		Clock: cfg.Clock,
		Pools: s.pol.pools,
	})
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	e.ct = ct
	e.cur.Store(s)
	e.setLinks(s)
	return e, nil
}

// newPorts returns keep followed by a port for each spec.
func newPorts(keep []*Port, specs []PortSpec) ([]*Port, error) {
	ports := append([]*Port(nil), keep...)
	seen := map[string]bool{}
	for _, p := range keep {
		seen[p.node().Name] = true
	}
	for i, s := range specs {
		if s.Node == nil || s.Dev == nil {
			return nil, fmt.Errorf("dataplane: port %d has no node or device", i)
		}
		if seen[s.Node.Name] {
			return nil, fmt.Errorf("dataplane: node %s attached twice", s.Node.Name)
		}
		seen[s.Node.Name] = true
		mtu := s.MTU
		if mtu == 0 {
			mtu = DefaultMTU
		}
		queues := []tun.Device{s.Dev}
		if mq, ok := s.Dev.(tun.MultiQueue); ok {
			queues = mq.Queues()
		}
		p := &Port{dev: s.Dev, queues: queues, gateway: header.AddrFromNetip(s.Node.Gateway), mtu: mtu}
		p.setNode(s.Node)
		p.sinks = newLinkSinks(p)
		ports = append(ports, p)
	}
	return ports, nil
}

// compile builds a snapshot of t over ports. Ports keep their counters
// across snapshots; their node is the one of t by the same name.
func (e *Engine) compile(t *topology.Topology, ports []*Port) (*snapshot, error) {
	byNode := make(map[string]int, len(ports))
	for i, p := range ports {
		if n := t.NodeByName(p.node().Name); n != nil {
			p.setNode(n)
		}
		byNode[p.node().Name] = i
	}
	set, err := nsg.Compile(t)
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	return &snapshot{topo: t, ports: ports, fib: compileFIB(t, byNode), pol: compilePolicy(t, e.unhealthy), nsgs: set, routes: compileRouting(t)}, nil
}

// sweepInterval is how often expired flows are reclaimed. Expiry itself
// is exact: a flow past its timeout is gone for lookups at once.
const sweepInterval = time.Second

// Start starts the forwarding: a worker per queue number for the ports
// whose queues can be polled (poll.go), a goroutine per queue for the
// others; and the conntrack sweeper. Close stops them.
func (e *Engine) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.started = true
	e.startPorts(e.cur.Load().ports)
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tick := time.NewTicker(e.sweepEvery)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				e.ct.Expire()
				e.askTrims()
			case <-e.done:
				return
			}
		}
	}()
}

// Reconfigure moves the running engine to topology t: the ports of the
// nodes named in remove are detached and their devices closed, a port is
// attached for each spec in add, and the forwarding table and policy are
// compiled anew. Established flows keep their translation (F12); new flows
// follow t. SNAT pools of new VIPs are created.
func (e *Engine) Reconfigure(t *topology.Topology, add []PortSpec, remove []string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.cur.Load()
	gone := map[string]bool{}
	for _, n := range remove {
		gone[n] = true
	}
	var keep, closing []*Port
	for _, p := range old.ports {
		if gone[p.node().Name] {
			closing = append(closing, p)
		} else {
			keep = append(keep, p)
		}
	}
	ports, err := newPorts(keep, add)
	if err != nil {
		return err
	}
	// A front-end scaled away takes its rotation with it, and one added
	// (even under an old name) is a new machine that the load balancer
	// sends nothing until its first probe succeeds (F15): Azure's probes
	// "must not be blocked for probes to mark up your instance".
	prev := maps.Clone(e.unhealthy)
	defer func() {
		if e.cur.Load() == old {
			e.unhealthy = prev // the new topology was refused
		}
	}()
	for _, n := range remove {
		delete(e.unhealthy, n)
	}
	for _, a := range add {
		if a.Node.Kind == topology.NodeFrontEnd {
			e.unhealthy[a.Node.Name] = true
		}
	}
	s, err := e.compile(t, ports)
	if err != nil {
		return err
	}
	s.nsgs.InheritHits(old.nsgs)
	if t.Conntrack != old.topo.Conntrack {
		e.ct.SetTimeouts(nat.Timeouts{Idle: t.Conntrack.IdleTimeout, Fin: t.Conntrack.FinTimeout, Rst: t.Conntrack.RstTimeout})
	}
	for _, pc := range s.pol.pools {
		if err := e.ct.SetPool(pc); err != nil {
			return err
		}
	}
	e.cur.Store(s)
	e.setLinks(s)
	if e.started {
		e.startPorts(ports[len(keep):])
	}
	e.cancelReads(closing)
	err = closePorts(closing)
	e.detachPolled(closing)
	closeLinks(closing)
	// Read once the ports are closed, when their counts have settled: a
	// straggler counted later is lost, never counted twice.
	for _, p := range closing {
		for r := range e.retired {
			e.retired[r] += p.stats.drops[r].Load()
		}
	}
	return err
}

// SetInRotation takes a front-end out of its VIP's rotation, or puts it
// back (F15): new flows to the VIP go only to front-ends in rotation.
func (e *Engine) SetInRotation(frontEnd string, in bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unhealthy[frontEnd] == !in {
		return
	}
	if in {
		delete(e.unhealthy, frontEnd)
	} else {
		e.unhealthy[frontEnd] = true
	}
	old := e.cur.Load()
	s := *old
	s.pol = compilePolicy(old.topo, e.unhealthy)
	e.cur.Store(&s)
}

// InRotation says whether the VIP sends new flows to a front-end (F15).
func (e *Engine) InRotation(frontEnd string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.unhealthy[frontEnd]
}

// Close closes every device, which stops the forwarding goroutines, stops
// the rest, and waits for them all.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	close(e.done)
	for _, pw := range e.workers {
		switch {
		case pw == nil:
		case pw.ring != nil:
			pw.ring.stop() // its reads hold the queues open
		default:
			pw.poller.Wake()
		}
	}
	err := closePorts(e.cur.Load().ports)
	e.wg.Wait()
	closeLinks(e.cur.Load().ports)
	for _, pw := range e.workers {
		if pw != nil && pw.poller != nil {
			pw.poller.Close()
		}
	}
	return err
}

// closeParallelism bounds the devices closed at once. Closing a node's
// TUN unregisters its interface, and the kernel then waits for an RCU
// barrier outside the RTNL lock (netdev_run_todo). Closers that wait at
// the same time share one barrier, so the more are in flight, the fewer
// barriers: for 1,000 single-queue nodes, `down` took 2.4 s with 64 at
// once (82 barriers of ~20 ms, perf sched), 1.4 s with 512 and 0.7 s with
// 1,024 (32 barriers). Each closer blocks an OS thread in close(2), so this
// is also the most threads that closing adds, at teardown or when apply
// removes nodes (Go's limit is 10,000); one after another, 1,000 nodes
// took 19.5 s.
const closeParallelism = 1024

// closePorts closes the ports' devices, several at a time.
func closePorts(ports []*Port) error {
	errs := make([]error, len(ports))
	sem := make(chan struct{}, closeParallelism)
	var wg sync.WaitGroup
	for i, p := range ports {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := p.dev.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readLoop owns queue q (number i) of the port's receive side. Its buffers
// are reused for every packet, which is why the established path allocates
// nothing.
func (e *Engine) readLoop(p *Port, q tun.Device, i int) {
	batch := q.BatchSize()
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, maxPacket)
	}
	sizes := make([]int, batch)
	w := newWorker(i)
	for {
		n, err := q.Read(bufs, sizes)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			p.stats.drop(DropReadError)
			continue
		}
		now := e.ct.Now()
		s := e.cur.Load()
		for i := 0; i < n; i++ {
			e.forward(s, p, bufs[i][:sizes[i]], now, w)
		}
		e.flush(w)
	}
}

// PortByNode returns the port of the named node, or nil.
func (e *Engine) PortByNode(name string) *Port {
	for _, p := range e.cur.Load().ports {
		if p.node().Name == name {
			return p
		}
	}
	return nil
}

// Lookup tells where the dataplane would send a packet for dst (for status
// and tests; the hot path uses the same table).
func (e *Engine) Lookup(dst netip.Addr) (node string, kind string) {
	s := e.cur.Load()
	t, _, ok := s.fib.Lookup(header.AddrFromNetip(dst))
	if !ok {
		return "", "no route"
	}
	if t.kind == targetPort {
		return s.ports[t.port].node().Name, t.kind.String()
	}
	return "", t.kind.String()
}
