package netx

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// exemptServer serves an echo on srv's port 21 under a budget of 4
// connections, holds 4 of them, and returns srv with a function that
// reports whether a connection is served (its byte echoed).
func exemptServer(t *testing.T) (*Loopback, func(c net.Conn) bool) {
	t.Helper()
	old := nofile
	nofile = func() int64 { return 8 } // no reserve: 4 connections
	t.Cleanup(func() { nofile = old })
	n := NewLoopback("srv")
	l, err := n.Listen("tcp", ":21")
	if err != nil {
		t.Fatal(err)
	}
	var g Group
	t.Cleanup(func() { g.Close() })
	g.Serve(l, func(c net.Conn) { io.Copy(c, c) })
	served := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "x")
		_, err := c.Read(make([]byte, 1))
		return err == nil
	}
	for i := range 4 {
		c, err := net.Dial("tcp", n.Addr("tcp", 21))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if !served(c) {
			t.Fatalf("connection %d within the budget of 4 was not served", i+1)
		}
	}
	return n, served
}

// dialersOpen is how many exempt sockets are registered.
func dialersOpen() int {
	dialers.mu.Lock()
	defer dialers.mu.Unlock()
	return len(dialers.m)
}

// With the budget spent, a connection dialled through Exempt is served,
// and one dialled otherwise, while it is open, is still refused; the
// exempt socket's address is registered until it closes, or not at all
// if its dial fails.
func TestExemptDialsAreServedPastTheBudget(t *testing.T) {
	n, served := exemptServer(t)
	ctx := context.Background()
	x := Exempt(n)
	c, err := x.DialContext(ctx, "tcp", "srv:21")
	if err != nil {
		t.Fatal(err)
	}
	if !served(c) {
		t.Error("an exempt connection was refused with the budget spent")
	}
	if dialersOpen() != 1 || !registered(AddrPort(c.LocalAddr())) {
		t.Errorf("an open exempt connection from %s: %d registered, want that one", c.LocalAddr(), dialersOpen())
	}
	plain, err := n.DialContext(ctx, "tcp", "srv:21")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if served(plain) {
		t.Error("a connection not dialled through Exempt was served past the budget while an exempt one was open")
	}
	c.Close()
	if dialersOpen() != 0 {
		t.Errorf("a closed exempt connection left %d registered", dialersOpen())
	}
	if _, err := x.DialContext(ctx, "tcp", "127.0.0.1:1"); err == nil {
		t.Fatal("an exempt dial to a closed port succeeded")
	}
	if dialersOpen() != 0 {
		t.Errorf("a failed exempt dial left %d registered", dialersOpen())
	}
	if _, ok := Exempt(System{}).(exemptNet); ok {
		t.Error("Exempt made System exempt, which cannot bind its dials")
	}
}

// The budget asks SetOrigin where a connection was dialled from, and
// only when it would refuse it: in the lab that is the address before
// NAT, which the connection's remote address is not.
func TestBudgetAsksOriginOnlyPastIt(t *testing.T) {
	defer SetOrigin(nil)
	var asked atomic.Int32
	var said atomic.Pointer[netip.AddrPort]
	var srvAddr atomic.Pointer[netip.AddrPort] // read on the accept loop
	SetOrigin(func(remote, local netip.AddrPort) netip.AddrPort {
		asked.Add(1)
		if want := srvAddr.Load(); want == nil || local != *want {
			t.Errorf("origin asked with local %s, want the server's %v", local, want)
		}
		if ap := said.Load(); ap != nil {
			return *ap
		}
		return remote
	})
	// Within the budget nothing asks.
	func() {
		defer func(f func() int64) { nofile = f }(nofile)
		nofile = func() int64 { return 1 << 20 }
		n := NewLoopback("srv")
		l, err := n.Listen("tcp", ":21")
		if err != nil {
			t.Fatal(err)
		}
		var g Group
		defer g.Close()
		g.Serve(l, func(c net.Conn) { io.Copy(c, c) })
		c, err := n.DialContext(context.Background(), "tcp", "srv:21")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "x")
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		if asked.Load() != 0 {
			t.Errorf("the budget asked where a connection came from %d times while it lasted", asked.Load())
		}
	}()

	n, served := exemptServer(t)
	srvAddr.Store(new(netip.MustParseAddrPort(n.Addr("tcp", 21))))
	ctx := context.Background()
	x, err := Exempt(n).DialContext(ctx, "tcp", "srv:21")
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	// Translated by a NAT that origin undoes: a plain connection is served
	// when origin says it was dialled from the exempt socket...
	from := AddrPort(x.LocalAddr())
	said.Store(&from)
	plain, err := n.DialContext(ctx, "tcp", "srv:21")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if !served(plain) {
		t.Errorf("a connection that origin says came from the exempt %s was refused", from)
	}
	// ...and the exempt socket's own is refused when origin says it came
	// from elsewhere: its remote address is not what counts.
	other := netip.MustParseAddrPort("10.0.1.6:40000")
	said.Store(&other)
	again, err := Exempt(n).DialContext(ctx, "tcp", "srv:21")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if served(again) {
		t.Errorf("an exempt connection that origin says came from %s was served past the budget", other)
	}
	if asked.Load() < 2 {
		t.Errorf("the budget asked origin %d times for 2 connections past it", asked.Load())
	}
}

// An exempt dial binds its socket to the node's address before it
// connects; a node whose address the host does not have fails to dial
// rather than dial unregistered.
func TestExemptDialBindsTheNodeAddress(t *testing.T) {
	n := NewLoopback("srv")
	l, err := n.Listen("tcp", ":21")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Exempt(foreignNode{n}).DialContext(context.Background(), "tcp", "srv:21")
	if !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Errorf("an exempt dial from 192.0.2.1, an address the host lacks: err = %v, want address not available", err)
	}
	if dialersOpen() != 0 {
		t.Errorf("a failed exempt dial left %d registered", dialersOpen())
	}
}

// foreignNode is a Loopback node that claims an address the host lacks.
type foreignNode struct{ *Loopback }

func (foreignNode) LocalAddr() netip.Addr { return netip.MustParseAddr("192.0.2.1") }
