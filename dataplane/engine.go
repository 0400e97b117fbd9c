// Package dataplane carries every packet between the lab's nodes.
//
// Each node's interface is a tun.Device. One goroutine per device reads its
// packets and runs each through the pipeline in forward.go:
//
//	parse → route → [NSG] → [translate] → TTL/MTU → write to the egress device
//
// The goroutine that read a packet writes it; nothing on the way takes a
// lock, sends on a channel or allocates.
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
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
	node    *topology.Node
	dev     tun.Device
	gateway header.Addr // source of the ICMP errors we send to this node
	mtu     int
	stats   portStats
}

// Engine is the dataplane.
type Engine struct {
	ports []*Port
	fib   *route.Table[target]
	pol   *policy
	ct    *nat.Table
	clock *coarseClock // nil when Config.Clock is given
	wg    sync.WaitGroup
	done  chan struct{} // closed by Close: stops the conntrack sweeper
}

// Config holds what the engine takes from outside the topology.
type Config struct {
	Clock nat.Clock // nil: a coarse monotonic clock (clock.go)
}

// New builds an engine for topology t with one port per spec.
func New(t *topology.Topology, specs []PortSpec, cfg Config) (*Engine, error) {
	e := &Engine{done: make(chan struct{})}
	byNode := map[string]int{}
	for i, s := range specs {
		if s.Node == nil || s.Dev == nil {
			return nil, fmt.Errorf("dataplane: port %d has no node or device", i)
		}
		if _, dup := byNode[s.Node.Name]; dup {
			return nil, fmt.Errorf("dataplane: node %s attached twice", s.Node.Name)
		}
		mtu := s.MTU
		if mtu == 0 {
			mtu = DefaultMTU
		}
		byNode[s.Node.Name] = i
		e.ports = append(e.ports, &Port{
			node:    s.Node,
			dev:     s.Dev,
			gateway: header.AddrFromNetip(s.Node.Gateway),
			mtu:     mtu,
		})
	}
	e.fib = compileFIB(t, byNode)
	e.pol = compilePolicy(t)
	clock := cfg.Clock
	if clock == nil {
		e.clock = newCoarseClock()
		clock = e.clock
	}
	ct, err := nat.New(nat.Config{
		MaxFlows: t.Conntrack.MaxFlows,
		Timeouts: nat.Timeouts{
			Idle: t.Conntrack.IdleTimeout,
			Fin:  t.Conntrack.FinTimeout,
			Rst:  t.Conntrack.RstTimeout,
		},
		Clock: clock,
		Pools: e.pol.pools,
	})
	if err != nil {
		return nil, fmt.Errorf("dataplane: %w", err)
	}
	e.ct = ct
	return e, nil
}

// sweepInterval is how often expired flows are reclaimed. Expiry itself
// is exact: a flow past its timeout is gone for lookups at once.
const sweepInterval = time.Second

// Start starts one forwarding goroutine per port and the conntrack
// sweeper. Close stops them.
func (e *Engine) Start() {
	for _, p := range e.ports {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.readLoop(p)
		}()
	}
	if e.clock != nil {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.clock.run(e.done)
		}()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tick := time.NewTicker(sweepInterval)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				e.ct.Expire()
			case <-e.done:
				return
			}
		}
	}()
}

// Close closes every device, which stops the forwarding goroutines, and
// waits for them.
func (e *Engine) Close() error {
	var errs []error
	close(e.done)
	for _, p := range e.ports {
		if err := p.dev.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	e.wg.Wait()
	return errors.Join(errs...)
}

// readLoop owns the port's receive side. Its buffers are reused for every
// packet, which is why the established path allocates nothing.
func (e *Engine) readLoop(p *Port) {
	batch := p.dev.BatchSize()
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, maxPacket)
	}
	sizes := make([]int, batch)
	w := newWorker()
	for {
		n, err := p.dev.Read(bufs, sizes)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			p.stats.drop(DropReadError)
			continue
		}
		now := e.ct.Now()
		for i := 0; i < n; i++ {
			e.forward(p, bufs[i][:sizes[i]], now, w)
		}
	}
}

// PortByNode returns the port of the named node, or nil.
func (e *Engine) PortByNode(name string) *Port {
	for _, p := range e.ports {
		if p.node.Name == name {
			return p
		}
	}
	return nil
}

// Lookup tells where the dataplane would send a packet for dst (for status
// and tests; the hot path uses the same table).
func (e *Engine) Lookup(dst netip.Addr) (node string, kind string) {
	t, _, ok := e.fib.Lookup(header.AddrFromNetip(dst))
	if !ok {
		return "", "no route"
	}
	if t.kind == targetPort {
		return e.ports[t.port].node.Name, t.kind.String()
	}
	return "", t.kind.String()
}
