package netx

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Registry is a pretend network for tests: the Loopback nodes made from it
// can dial each other by name or address ("ase1-w1:80", "10.0.1.6:80"), so
// services can talk to each other (front-end to worker) with no namespaces.
type Registry struct {
	mu    sync.Mutex
	hosts map[string]*Loopback // by lower-case name or address
}

// NewRegistry returns an empty pretend network.
func NewRegistry() *Registry {
	return &Registry{hosts: make(map[string]*Loopback)}
}

// Node adds a node known by every one of names (its name, its lab address,
// DNS names...). A name already taken is a mistake in the test: Node panics.
func (r *Registry) Node(names ...string) *Loopback {
	if len(names) == 0 {
		panic("netx: a Loopback node needs a name")
	}
	l := &Loopback{reg: r, name: names[0], ports: make(map[portKey]string)}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		k := strings.ToLower(n)
		if _, dup := r.hosts[k]; dup {
			panic(fmt.Sprintf("netx: two Loopback nodes are called %q", n))
		}
		r.hosts[k] = l
	}
	return l
}

// NewLoopback returns a node on a registry of its own.
func NewLoopback(names ...string) *Loopback { return NewRegistry().Node(names...) }

// Loopback is a Net for tests. A requested port is opened as an ephemeral
// port on 127.0.0.1, so tests need no root and never clash with each other
// or with the host; Addr tells the test where a requested port really is.
type Loopback struct {
	reg   *Registry
	name  string
	ports map[portKey]string // requested port -> actual 127.0.0.1 address; under reg.mu
}

type portKey struct {
	network string // "tcp" or "udp"
	port    int
}

var _ DialerNet = (*Loopback)(nil)

// LocalAddr implements DialerNet: every Loopback node dials from 127.0.0.1.
func (l *Loopback) LocalAddr() netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, 1}) }

// Name is the node's first name.
func (l *Loopback) Name() string { return l.name }

// Addr returns the actual address ("127.0.0.1:43210") of the port the node
// asked for on network ("tcp" or "udp"), or "" if nothing listens there.
func (l *Loopback) Addr(network string, port int) string {
	l.reg.mu.Lock()
	defer l.reg.mu.Unlock()
	return l.ports[portKey{baseNetwork(network), port}]
}

// Listen implements Net.
func (l *Loopback) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	release, err := l.bind(network, address, "tcp", func() (net.Addr, error) {
		var err error
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		return ln.Addr(), nil
	})
	if err != nil {
		return nil, err
	}
	return &loopbackListener{Listener: ln, release: release}, nil
}

// ListenPacket implements Net.
func (l *Loopback) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	release, err := l.bind(network, address, "udp", func() (net.Addr, error) {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		return pc.LocalAddr(), nil
	})
	if err != nil {
		return nil, err
	}
	return &loopbackPacketConn{PacketConn: pc, release: release}, nil
}

// bind checks that network is of kind base and that the port address asks
// for is free on this node, opens the real loopback socket with open and
// claims the port for it. The registry lock is held across open so that
// two sockets racing for one requested port cannot both succeed. It
// returns what releases the port when the socket closes.
func (l *Loopback) bind(network, address, base string, open func() (net.Addr, error)) (func(), error) {
	if baseNetwork(network) != base {
		return nil, &net.OpError{Op: "listen", Net: network, Err: net.UnknownNetworkError(network)}
	}
	port, err := requestedPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	l.reg.mu.Lock()
	defer l.reg.mu.Unlock()
	if port != 0 && l.ports[portKey{base, port}] != "" {
		return nil, l.inUse("listen", network, port)
	}
	actual, err := open()
	if err != nil {
		return nil, err
	}
	return l.releaser(l.claim(base, port, actual), actual.String()), nil
}

// DialContext implements Net. The host is looked up among the registry's
// nodes; 127.0.0.1 and localhost are dialled as they are, so a test may point
// a service at a server of its own.
func (l *Loopback) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return l.DialWith(ctx, &net.Dialer{}, network, address)
}

// DialWith implements DialerNet: DialContext with d.
func (l *Loopback) DialWith(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if host == "localhost" || host == "127.0.0.1" {
		return d.DialContext(ctx, network, address)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("bad port %q", portStr)}
	}
	l.reg.mu.Lock()
	peer := l.reg.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
	var actual string
	if peer != nil {
		actual = peer.ports[portKey{baseNetwork(network), port}]
	}
	l.reg.mu.Unlock()
	switch {
	case peer == nil:
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	case actual == "":
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%s (%s): %w", address, peer.name, syscall.ECONNREFUSED)}
	}
	return d.DialContext(ctx, network, actual)
}

func (l *Loopback) inUse(op, network string, port int) error {
	return &net.OpError{Op: op, Net: network, Err: fmt.Errorf("%s port %d: %w", l.name, port, syscall.EADDRINUSE)}
}

// claim records a listener; port 0 is recorded as the real port, so that a
// peer can still dial it. reg.mu must be held.
func (l *Loopback) claim(base string, port int, actual net.Addr) portKey {
	if port == 0 {
		_, p, _ := net.SplitHostPort(actual.String())
		port, _ = strconv.Atoi(p)
	}
	k := portKey{base, port}
	l.ports[k] = actual.String()
	return k
}

func (l *Loopback) releaser(k portKey, actual string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.reg.mu.Lock()
			defer l.reg.mu.Unlock()
			if l.ports[k] == actual {
				delete(l.ports, k)
			}
		})
	}
}

// baseNetwork folds "tcp4"/"tcp6" into "tcp", and the same for udp: the
// lab is IPv4 only.
func baseNetwork(network string) string {
	switch {
	case strings.HasPrefix(network, "tcp"):
		return "tcp"
	case strings.HasPrefix(network, "udp"):
		return "udp"
	}
	return network
}

func requestedPort(address string) (int, error) {
	_, p, err := net.SplitHostPort(address)
	if err != nil {
		return 0, err
	}
	if p == "" {
		return 0, nil
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return port, nil
}

// The wrappers free the requested port on Close, so a service can be
// stopped and started again on the same node, as the lab does on reload.
type loopbackListener struct {
	net.Listener
	release func()
}

func (l *loopbackListener) Close() error {
	l.release()
	return l.Listener.Close()
}

type loopbackPacketConn struct {
	net.PacketConn
	release func()
}

func (c *loopbackPacketConn) Close() error {
	c.release()
	return c.PacketConn.Close()
}
