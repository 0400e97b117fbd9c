package main

import (
	"context"
	"net"

	"github.com/aseemu/emulator/topology/build"
	"github.com/vishvananda/netns"
)

// nsNet opens sockets inside one node's network namespace, for the
// services the lab runs there (netx.Net). A socket belongs to the namespace
// of the thread that created it for its whole life, so each one is created
// on a thread switched into the namespace, and is then used from anywhere.
type nsNet struct{ ns netns.NsHandle }

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

func (n nsNet) DialContext(ctx context.Context, network, address string) (c net.Conn, err error) {
	err = build.Do(n.ns, func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}
