package main

import (
	"context"
	"net"
	"net/netip"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/build"
	"github.com/vishvananda/netns"
)

// nsNet opens sockets inside one node's network namespace, for the
// services the lab runs there. A socket belongs to the namespace of the
// thread that created it for its whole life, so each one is created on a
// thread switched into the namespace, and is then used from anywhere.
type nsNet struct {
	ns   netns.NsHandle
	addr netip.Addr // the node's, which its connections leave from
}

var _ netx.DialerNet = nsNet{}

// azureDNS is where a node's names resolve, as its resolv.conf says. Go's
// resolver would read the host's /etc/resolv.conf instead.
var azureDNS = net.JoinHostPort(topology.PlatformAddr.String(), "53")

func (n nsNet) Listen(network, address string) (l net.Listener, err error) {
	err = build.Do(n.ns, func() error {
		l, err = net.Listen(network, address)
		return err
	})
	return l, err
}

func (n nsNet) ListenPacket(network, address string) (c net.PacketConn, err error) {
	err = build.Do(n.ns, func() error {
		c, err = net.ListenPacket(network, address)
		return err
	})
	return c, err
}

// DialContext resolves a name through Azure DNS, from this node, then
// connects from inside the namespace.
func (n nsNet) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return n.DialWith(ctx, &net.Dialer{}, network, address)
}

// DialWith is DialContext with d, whose Control runs inside the namespace:
// netx.Exempt's binds the socket there.
func (n nsNet) DialWith(ctx context.Context, d *net.Dialer, network, address string) (c net.Conn, err error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		addrs, err := netx.Resolver(n, azureDNS).LookupHost(ctx, host)
		if err != nil {
			return nil, err
		}
		address = net.JoinHostPort(addrs[0], port)
	}
	err = build.Do(n.ns, func() error {
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// LocalAddr implements netx.DialerNet.
func (n nsNet) LocalAddr() netip.Addr { return n.addr }
