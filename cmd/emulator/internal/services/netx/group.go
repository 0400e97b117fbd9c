package netx

import (
	"errors"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Group runs a service's goroutines (accept loops, connection handlers) and
// ends them all on Close. Services live as long as a lab and are stopped and
// started again when it is reloaded, so a connection left open by a client,
// or a handler still running, must not outlive its service.
//
// The zero Group is ready to use.
type Group struct {
	mu      sync.Mutex
	closed  bool
	closers []func() error
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// Go runs f on a goroutine that Close waits for. f must return once Close
// has run the functions given to OnClose. After Close, Go does nothing.
func (g *Group) Go(f func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Under mu, so that no Add can race with the Wait in Close.
	if g.closed {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
}

// OnClose adds f to what Close runs before it waits. Called after Close, it
// runs f at once.
func (g *Group) OnClose(f func() error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		f()
		return
	}
	g.closers = append(g.closers, f)
	g.mu.Unlock()
}

// Serve accepts connections on l until Close and runs handle on each, on its
// own goroutine. The connection is closed when handle returns, and at once
// by Close. One past the process's budget (ConnBudget) is closed at once.
func (g *Group) Serve(l net.Listener, handle func(net.Conn)) {
	g.OnClose(l.Close)
	bl := budgetListener{l}
	g.Go(func() {
		for {
			// bl waits out a failed accept itself: it fails only once
			// l is closed.
			c, err := bl.Accept()
			if err != nil {
				return
			}
			// c gives its place in the budget back when it is closed:
			// here, by untrack, or by Close, which closes what it tracks.
			if !g.track(c) {
				c.Close()
				return
			}
			g.Go(func() {
				defer g.untrack(c)
				handle(c)
			})
		}
	})
}

// idleTimeout ends a keep-alive connection that no request has used for
// this long, as Azure's load balancer ends an idle TCP connection after 4
// minutes. net/http's zero IdleTimeout (with no ReadTimeout) waits for the
// next request for ever: a client in the lab could keep connections, and
// their goroutines and descriptors, open for the life of the emulator.
var idleTimeout = 4 * time.Minute

// ServeHTTP serves HTTP with srv on l until Close, and closes srv's
// connections on Close. With tls set, srv.TLSConfig must hold a certificate
// (Certificates or GetCertificate) and l is served as HTTPS. A zero
// srv.IdleTimeout becomes 4 minutes. A connection past the process's budget
// (ConnBudget) is closed before srv sees it.
func (g *Group) ServeHTTP(l net.Listener, srv *http.Server, tls bool) {
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = idleTimeout
	}
	if srv.ErrorLog == nil {
		// Close cuts the connections srv holds, and srv logs each one
		// still in its TLS handshake ("use of closed network connection"):
		// on the terminal of an up that Ctrl-C tears down, lines that look
		// like a failure. What srv logs before Close still goes to the log.
		srv.ErrorLog = log.New(unlessClosed{g}, log.Prefix(), log.Flags())
	}
	g.OnClose(func() error {
		l.Close() // in case Close came before Serve could take l
		return srv.Close()
	})
	bl := budgetListener{l}
	g.Go(func() {
		if tls {
			srv.ServeTLS(bl, "", "")
		} else {
			srv.Serve(bl)
		}
	})
}

// unlessClosed writes to the standard logger's output until its group
// closes, and then drops what it is given.
type unlessClosed struct{ g *Group }

func (u unlessClosed) Write(p []byte) (int, error) {
	if u.g.isClosed() {
		return len(p), nil
	}
	return log.Writer().Write(p)
}

// Close runs the OnClose functions, closes the connections Serve accepted
// and waits for every goroutine. It returns the first real error, ignoring
// those that only say a thing was already closed.
func (g *Group) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		g.wg.Wait()
		return nil
	}
	g.closed = true
	closers := g.closers
	g.closers = nil
	conns := g.conns
	g.conns = nil
	g.mu.Unlock()

	var errs []error
	for _, f := range closers {
		if err := f(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	for c := range conns {
		c.Close()
	}
	g.wg.Wait()
	return errors.Join(errs...)
}

func (g *Group) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (g *Group) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	if g.conns == nil {
		g.conns = make(map[net.Conn]struct{})
	}
	g.conns[c] = struct{}{}
	return true
}

func (g *Group) untrack(c net.Conn) {
	c.Close()
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// Listeners opens every listener a service needs before it serves any, so
// that a port already taken fails the start and leaves nothing open.
type Listeners struct {
	n    Net
	open []interface{ Close() error }
	err  error
}

// NewListeners starts opening listeners on n.
func NewListeners(n Net) *Listeners { return &Listeners{n: n} }

// TCP opens a TCP listener on port, or returns nil after the first error.
func (ls *Listeners) TCP(port int) net.Listener {
	if ls.err != nil {
		return nil
	}
	l, err := ls.n.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		ls.err = err
		return nil
	}
	ls.open = append(ls.open, l)
	return l
}

// UDP opens a UDP socket on port, or returns nil after the first error.
func (ls *Listeners) UDP(port int) net.PacketConn {
	if ls.err != nil {
		return nil
	}
	pc, err := ls.n.ListenPacket("udp", ":"+strconv.Itoa(port))
	if err != nil {
		ls.err = err
		return nil
	}
	ls.open = append(ls.open, pc)
	return pc
}

// Err closes everything opened so far if any open failed, and returns the
// first error.
func (ls *Listeners) Err() error {
	if ls.err != nil {
		for _, c := range ls.open {
			c.Close()
		}
		ls.open = nil
	}
	return ls.err
}
