// Package netx is the one way the lab's built-in services touch the network.
//
// A service never calls net.Listen or net.Dial itself: it is handed a Net,
// which opens sockets as one node. In the lab that means inside the node's
// network namespace, so a service's traffic goes through the dataplane (its
// NSGs and NAT) like any other packet of that node; in tests it means
// loopback (see Loopback), so tests need neither root nor namespaces.
package netx

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Net opens sockets as one node: in the node's network namespace in the lab,
// on loopback in tests.
type Net interface {
	Listen(network, address string) (net.Listener, error)         // e.g. ("tcp", ":80")
	ListenPacket(network, address string) (net.PacketConn, error) // e.g. ("udp", ":7")
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// System is the Net of the calling process's own network namespace. It suits
// a service run as a child process started inside a node's namespace, where
// every socket the process opens is already that node's.
type System struct {
	// Resolver resolves names for DialContext; nil is the system resolver.
	Resolver *net.Resolver
}

// Listen implements Net.
func (s System) Listen(network, address string) (net.Listener, error) {
	return net.Listen(network, address)
}

// ListenPacket implements Net.
func (s System) ListenPacket(network, address string) (net.PacketConn, error) {
	return net.ListenPacket(network, address)
}

// DialContext implements Net.
func (s System) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{Resolver: s.Resolver}
	return d.DialContext(ctx, network, address)
}

// Resolver returns a resolver that sends every query to server ("ip:port")
// through n. Go's own resolver opens its sockets on whatever thread runs the
// lookup, which in the lab may belong to another namespace; this one asks
// the lab's DNS (168.63.129.16:53) from the node itself, through the
// dataplane, as a real VNet machine would.
func Resolver(n Net, server string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return n.DialContext(ctx, network, server)
		},
	}
}

// DialTimeout bounds every dial of Transport.
const DialTimeout = 10 * time.Second

// Transport returns an HTTP transport whose every connection is dialled
// through n. It ignores the process's proxy settings: a proxy of the host is
// not reachable from inside the lab, and using it would bypass the dataplane.
//
// A dial gives up after DialTimeout: in the lab an NSG that drops a SYN
// would otherwise hold the caller for the kernel's two minutes of retries.
//
// Certificates are not verified, because every HTTPS server of the lab has a
// self-signed certificate made at start-up; the lab teaches addresses and
// ports, not PKI.
func Transport(n Net) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, DialTimeout)
			defer cancel()
			return n.DialContext(ctx, network, address)
		},
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// Client returns an HTTP client that dials through n and gives up on a
// request after timeout (0: never).
func Client(n Net, timeout time.Duration) *http.Client {
	return &http.Client{Transport: Transport(n), Timeout: timeout}
}

// AddrPort is a (TCP or UDP) address as netip has it, an IPv4 address
// unmapped: the client of a connection or a query, to compare with the
// lab's addresses. The zero AddrPort for an address that is neither.
func AddrPort(a net.Addr) netip.AddrPort {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
