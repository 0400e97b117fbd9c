package netx

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The lab's own checks of its services, the load balancer's probes (F15)
// and an ASE's dependency checks (F16), land on the same budgeted
// listeners as a client's load, and the dependency checks, after SNAT
// (F3), come from the same VIP: no source address tells them apart. With
// the budget spent by a client, they were refused, and every ASE turned
// Unhealthy: the emulator's own shortage of descriptors shown as a
// failure of Azure's. So a check dials through Exempt, which records its
// socket's own address and port before it connects, and the budget, on
// its refusal path only, asks the lab (SetOrigin) where the connection it
// accepted was dialled from before NAT, and serves it if that is one of
// these sockets. Nothing else is exempted: the port is bound to the check's
// socket until it closes, so no other connection can leave from it.

// DialerNet is a Net that Exempt can make exempt: it dials with a
// net.Dialer it is handed, from an address of its own.
type DialerNet interface {
	Net
	// DialWith is DialContext with d's settings: its Control, here.
	DialWith(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error)
	// LocalAddr is the address the node's connections leave from.
	LocalAddr() netip.Addr
}

// dialers are the local addresses of the exempt sockets open now.
var dialers struct {
	mu sync.Mutex
	m  map[netip.AddrPort]struct{}
}

func register(ap netip.AddrPort) {
	dialers.mu.Lock()
	defer dialers.mu.Unlock()
	if dialers.m == nil {
		dialers.m = map[netip.AddrPort]struct{}{}
	}
	dialers.m[ap] = struct{}{}
}

func unregister(ap netip.AddrPort) {
	dialers.mu.Lock()
	defer dialers.mu.Unlock()
	delete(dialers.m, ap)
}

func registered(ap netip.AddrPort) bool {
	dialers.mu.Lock()
	defer dialers.mu.Unlock()
	_, ok := dialers.m[ap]
	return ok
}

// SetOrigin has the budget ask origin where a connection it would refuse
// was dialled from: remote and local are the accepted socket's addresses,
// and origin returns the dialler's own, as it was before any NAT on the
// way. Unset (nil), the remote address is the dialler's, as on Loopback.
// The lab sets it to a lookup in the dataplane's connection tracking.
func SetOrigin(origin func(remote, local netip.AddrPort) netip.AddrPort) {
	if origin == nil {
		budget.origin.Store(nil)
		return
	}
	budget.origin.Store(&origin)
}

// exempt reports whether c, an accepted connection, was dialled through
// Exempt, and so is served past the budget. Only the refusal path asks,
// so the lookup costs nothing while the budget lasts.
func exempt(c net.Conn) bool {
	from := AddrPort(c.RemoteAddr())
	if o := budget.origin.Load(); o != nil {
		from = (*o)(from, AddrPort(c.LocalAddr()))
	}
	return registered(from)
}

// Exempt returns n with its TCP connections never refused by the budget
// of the lab's services (they count in it): for the lab's own checks. A
// Net that cannot dial with a given net.Dialer (System, whose services run
// in another process, with a budget of their own) is returned as it is.
func Exempt(n Net) Net {
	if dn, ok := n.(DialerNet); ok {
		return exemptNet{dn}
	}
	return n
}

type exemptNet struct{ DialerNet }

// DialContext binds each TCP socket to the node's address, port 0, and
// registers the port the kernel picked before the socket connects: the
// service may accept the connection, and the budget look for it, before
// DialWith returns. Other networks (DNS's UDP) are not budgeted.
func (n exemptNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if !strings.HasPrefix(network, "tcp") {
		return n.DialerNet.DialContext(ctx, network, address)
	}
	local := n.LocalAddr()
	var mu sync.Mutex
	var bound []netip.AddrPort // one a socket: a dial may try several addresses
	d := &net.Dialer{Control: func(network, _ string, rc syscall.RawConn) error {
		ap, err := bindExempt(rc, network, local)
		if err != nil {
			return err
		}
		mu.Lock()
		bound = append(bound, ap)
		mu.Unlock()
		return nil
	}}
	c, err := n.DialWith(ctx, d, network, address)
	var kept netip.AddrPort
	if err == nil {
		kept = AddrPort(c.LocalAddr())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ap := range bound {
		if ap != kept {
			unregister(ap) // a socket of an address the dial gave up on
		}
	}
	if err != nil {
		return nil, err
	}
	return &exemptConn{Conn: c, local: kept}, nil
}

// bindExempt binds the socket of rc to local, port 0, and registers the
// address the kernel gave it.
func bindExempt(rc syscall.RawConn, network string, local netip.Addr) (netip.AddrPort, error) {
	if !strings.HasSuffix(network, "4") || !local.Is4() {
		return netip.AddrPort{}, fmt.Errorf("netx: an exempt dial over %s from %s: the lab is IPv4 only", network, local)
	}
	var ap netip.AddrPort
	var serr error
	err := rc.Control(func(fd uintptr) {
		if serr = unix.Bind(int(fd), &unix.SockaddrInet4{Addr: local.As4()}); serr != nil {
			return
		}
		var sa unix.Sockaddr
		if sa, serr = unix.Getsockname(int(fd)); serr != nil {
			return
		}
		in4, ok := sa.(*unix.SockaddrInet4)
		if !ok {
			serr = fmt.Errorf("netx: an IPv4 socket named %T", sa)
			return
		}
		ap = netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))
		register(ap)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("netx: binding an exempt socket to %s: %w", local, err)
	}
	return ap, nil
}

// exemptConn unregisters its address on its first Close.
type exemptConn struct {
	net.Conn
	local netip.AddrPort
	once  sync.Once
}

// Close unregisters first: closed, the port is free for any socket of
// the node, whose connections must not be exempted.
func (c *exemptConn) Close() error {
	c.once.Do(func() { unregister(c.local) })
	return c.Conn.Close()
}

// CloseWrite keeps the TCP half-close that the embedded net.Conn hides.
func (c *exemptConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
