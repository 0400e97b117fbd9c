package netx

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/certs"
)

func TestLoopbackDialsNodesByNameAndAddress(t *testing.T) {
	reg := NewRegistry()
	w1 := reg.Node("ase1-w1", "10.0.1.6")
	fe := reg.Node("ase1-fe1", "10.0.1.4")

	l, err := w1.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := w1.Addr("tcp", 80); got != l.Addr().String() || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Fatalf("Addr(tcp, 80) = %q, want the listener's %s on 127.0.0.1", got, l.Addr())
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "w1\n")
			c.Close()
		}
	}()

	for _, target := range []string{"10.0.1.6:80", "ase1-w1:80", "ASE1-W1.:80"} {
		c, err := fe.DialContext(context.Background(), "tcp", target)
		if err != nil {
			t.Fatalf("front-end dialling %s: %v", target, err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "w1\n" {
			t.Errorf("dialling %s reached %q, want the worker's listener", target, b)
		}
	}

	_, err = fe.DialContext(context.Background(), "tcp", "10.0.1.7:80")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("dialling a node that does not exist: err = %v, want a not-found DNS error", err)
	}
	_, err = fe.DialContext(context.Background(), "tcp", "10.0.1.6:443")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dialling a port nothing listens on: err = %v, want connection refused", err)
	}
}

func TestLoopbackPortClashAndRelease(t *testing.T) {
	n := NewLoopback("echo")
	l, err := n.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Listen("tcp4", "0.0.0.0:7"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("second listen on tcp 7: err = %v, want address in use", err)
	}
	// The same port on the other protocol is free, as on a real host.
	pc, err := n.ListenPacket("udp", ":7")
	if err != nil {
		t.Fatalf("udp 7 beside tcp 7: %v", err)
	}
	defer pc.Close()
	l.Close()
	if n.Addr("tcp", 7) != "" {
		t.Error("a closed listener is still registered")
	}
	l2, err := n.Listen("tcp", ":7")
	if err != nil {
		t.Fatalf("listen again after close: %v", err)
	}
	l2.Close()
}

func TestLoopbackPortZeroIsDialable(t *testing.T) {
	reg := NewRegistry()
	a, b := reg.Node("a"), reg.Node("b")
	l, err := a.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	c, err := b.DialContext(context.Background(), "tcp", "a:"+port)
	if err != nil {
		t.Fatalf("dial a port-0 listener by its real port: %v", err)
	}
	c.Close()
}

func TestLoopbackUDP(t *testing.T) {
	reg := NewRegistry()
	srv, cli := reg.Node("dns", "168.63.129.16"), reg.Node("client")
	pc, err := srv.ListenPacket("udp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err == nil {
			pc.WriteTo(buf[:n], from)
		}
	}()
	c, err := cli.DialContext(context.Background(), "udp", "168.63.129.16:53")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Errorf("udp round trip: %q, %v", buf[:n], err)
	}
}

func TestGroupCloseEndsOpenConnections(t *testing.T) {
	n := NewLoopback("srv")
	l, err := n.Listen("tcp", ":9")
	if err != nil {
		t.Fatal(err)
	}
	var g Group
	handled := make(chan struct{})
	g.Serve(l, func(c net.Conn) {
		close(handled)
		io.Copy(io.Discard, c) // blocks until Close closes c
	})
	c, err := net.Dial("tcp", n.Addr("tcp", 9))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-handled
	done := make(chan error)
	go func() { done <- g.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a handler blocked on an open connection")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the client's connection is still open after Close")
	}
	if n.Addr("tcp", 9) != "" {
		t.Error("Close left the listener open")
	}
}

func TestListenersRollBackOnClash(t *testing.T) {
	n := NewLoopback("fe")
	taken, err := n.Listen("tcp", ":443")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ls := NewListeners(n)
	ls.TCP(80)
	ls.TCP(443)
	ls.UDP(53)
	if err := ls.Err(); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Err = %v, want address in use", err)
	}
	if n.Addr("tcp", 80) != "" || n.Addr("udp", 53) != "" {
		t.Error("a failed start left listeners open")
	}
}

func TestClientDialsThroughNet(t *testing.T) {
	reg := NewRegistry()
	web, worker := reg.Node("echo.example.net"), reg.Node("ase1-w1")
	l, err := web.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host)
	})}
	var g Group
	g.ServeHTTP(l, srv, false)
	defer g.Close()

	c := Client(worker, 5*time.Second)
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://echo.example.net/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello from echo.example.net" {
		t.Errorf("body = %q", b)
	}
}

func TestResolverAsksThroughNet(t *testing.T) {
	n := NewLoopback("client")
	r := Resolver(n, "168.63.129.16:53")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// No DNS node exists on this registry, so the lookup must fail: it
	// proves the query went through n rather than to the host's resolver.
	if _, err := r.LookupHost(ctx, "echo.example.net"); err == nil {
		t.Error("lookup succeeded without a DNS server on the pretend network")
	}
}

// Closing a group whose HTTPS server holds a connection still in its TLS
// handshake (a health check's, when up is stopped) logs nothing: net/http
// logged "http: TLS handshake error ...: use of closed network connection"
// on the terminal of every up that Ctrl-C tore down mid-check.
func TestCloseDuringTLSHandshakeLogsNothing(t *testing.T) {
	var logged strings.Builder
	out := log.Writer()
	log.SetOutput(&logged)
	defer log.SetOutput(out)

	cert, err := certs.SelfSigned("test", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted, closed := make(chan struct{}), make(chan struct{})
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				close(accepted)
			case http.StateClosed:
				close(closed)
			}
		},
	}
	var g Group
	g.ServeHTTP(l, srv, true)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-accepted // the server now waits for a ClientHello that never comes
	g.Close()
	// net/http logs the handshake's failure before it marks the
	// connection closed.
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection was not closed by Close")
	}
	if logged.Len() > 0 {
		t.Errorf("closing the group logged %q; want nothing", logged.String())
	}
}

// What the server logs while it runs still reaches the log.
func TestServerErrorsBeforeCloseAreLogged(t *testing.T) {
	var logged strings.Builder
	out := log.Writer()
	log.SetOutput(&logged)
	defer log.SetOutput(out)
	srv := &http.Server{}
	var g Group
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.ServeHTTP(l, srv, false)
	defer g.Close()
	srv.ErrorLog.Print("a real error")
	if !strings.Contains(logged.String(), "a real error") {
		t.Errorf("the server's error log wrote %q before Close; want its line", logged.String())
	}
}

// A keep-alive connection left idle after its request is ended: a lab's
// client must not hold a service's goroutines and descriptors for ever.
func TestServeHTTPEndsIdleConnections(t *testing.T) {
	defer func(d time.Duration) { idleTimeout = d }(idleTimeout)
	idleTimeout = 100 * time.Millisecond
	n := NewLoopback("srv")
	l, err := n.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	var g Group
	defer g.Close()
	g.ServeHTTP(l, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: time.Second}, false)
	c, err := net.Dial("tcp", n.Addr("tcp", 80))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: srv\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("an idle keep-alive connection: read %v, want EOF once idle for %v", err, idleTimeout)
	}
}

// The budget is what the limit leaves after the reserve, two descriptors a
// connection, and never less than an eighth of the limit.
func TestConnBudget(t *testing.T) {
	defer func(f func() int64) { nofile = f }(nofile)
	defer SetReserve(0)
	for _, c := range []struct{ limit, reserve, want int64 }{
		{1 << 20, 150_000, (1<<20 - 150_000) / 2},
		{20_000, 8_000, 6_000},
		{20_000, 150_000, 2_500}, // the reserve takes it all: an eighth
		{1024, 150_000, 128},
	} {
		nofile = func() int64 { return c.limit }
		SetReserve(int(c.reserve))
		if got := ConnBudget(); got != c.want {
			t.Errorf("limit %d, reserve %d: budget %d connections, want %d", c.limit, c.reserve, got, c.want)
		}
	}
}

// A connection past the budget is closed at once and counted, whichever
// way the service accepts; one that closes gives its place to the next.
func TestBudgetClosesConnectionsPastIt(t *testing.T) {
	defer func(f func() int64) { nofile = f }(nofile)
	nofile = func() int64 { return 8 } // no reserve: 4 connections
	n := NewLoopback("srv")
	raw, err := n.Listen("tcp", ":21")
	if err != nil {
		t.Fatal(err)
	}
	web, err := n.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	var g Group
	defer g.Close()
	g.Serve(raw, func(c net.Conn) { io.Copy(c, c) })
	g.ServeHTTP(web, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: 5 * time.Second}, false)

	// open dials port through via and says whether the service answers
	// on it: an echoed byte, or an HTTP response.
	var via Net = n
	open := func(port int) (net.Conn, bool) {
		t.Helper()
		c, err := via.DialContext(context.Background(), "tcp", fmt.Sprintf("srv:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if port == 21 {
			io.WriteString(c, "x")
			_, err = c.Read(make([]byte, 1))
			return c, err == nil
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: srv\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		return c, err == nil
	}
	before := Budget().Refused
	var held []net.Conn
	for i, port := range []int{21, 80, 21, 80} {
		c, ok := open(port)
		if !ok {
			t.Fatalf("connection %d (port %d) within the budget of 4 got no answer", i+1, port)
		}
		held = append(held, c)
	}
	for _, port := range []int{21, 80} {
		if _, ok := open(port); ok {
			t.Errorf("a fifth connection, to port %d, was served past the budget of 4", port)
		}
	}
	if got := Budget().Refused - before; got != 2 {
		t.Errorf("refused %d connections past the budget, want 2", got)
	}
	// An exempt client (the load balancer's probes and the health
	// checks, in a lab) is served with the budget spent.
	via = Exempt(n)
	for _, port := range []int{21, 80} {
		c, ok := open(port)
		if !ok {
			t.Errorf("the exempt client's connection to port %d was refused with the budget spent", port)
		}
		c.Close()
	}
	via = n
	held[0].Close()
	held[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for Budget().Held > 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, port := range []int{80, 21} {
		if _, ok := open(port); !ok {
			t.Errorf("port %d refused a connection after two of the four had closed", port)
		}
	}
}

// failingListener fails its first fails accepts as a process out of
// descriptors does, then hands out one end of a pipe; Close makes it
// answer net.ErrClosed.
type failingListener struct {
	net.Listener // for Addr; unused
	fails, calls int
	closed       bool
}

func (l *failingListener) Accept() (net.Conn, error) {
	l.calls++
	switch {
	case l.closed:
		return nil, net.ErrClosed
	case l.calls <= l.fails:
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	c, _ := net.Pipe()
	return c, nil
}

func (l *failingListener) Close() error { l.closed = true; return nil }

// A budgeted listener waits out failed accepts, a delay doubling each
// time, and returns only a connection or, once closed, net.ErrClosed:
// the DNS server's accept loop, which retries a temporary error at once,
// spun on a CPU while the process was out of descriptors.
func TestBudgetedWaitsOutFailedAccepts(t *testing.T) {
	defer func(b [2]time.Duration) { acceptBackoff = b }(acceptBackoff)
	acceptBackoff = [2]time.Duration{10 * time.Millisecond, 40 * time.Millisecond}
	fl := &failingListener{fails: 4}
	l := Budgeted(fl)
	t0 := time.Now()
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept after %d failed accepts: %v, want the connection that followed", fl.fails, err)
	}
	c.Close()
	// Sleeps of 10, 20, 40 and 40 ms: time.Sleep never wakes early.
	if took := time.Since(t0); took < 110*time.Millisecond || fl.calls != 5 {
		t.Errorf("Accept took %v and %d accepts for %d failures, want at least 110ms and 5", took, fl.calls, fl.fails)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}
