package netx

import (
	"errors"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The services' accepted connections are descriptors of the emulator's own
// process, which also holds every node's TUN queues and the control socket.
// A client of the lab holding thousands of connections (a load test on a
// VIP's port 80, FTP logins) would otherwise use up RLIMIT_NOFILE: `apply`
// could then not open the queues of the nodes it adds, and status would fail
// with EMFILE until the connections closed. So every connection Serve and
// ServeHTTP accept takes a place in one process-wide budget, and one past
// it is closed at once and counted (Refused).
//
// There is no share per client: everything an ASE sends out arrives from its
// VIP after SNAT (F3), so a cap per source address below a VIP's SNAT ports
// (1,024 per instance in the default lab, F17) would have echo refuse an
// ASE's connections before its SNAT ports ran out, and the lab teach the
// wrong limit.
var budget struct {
	reserve atomic.Int64  // descriptors kept back for the rest of the process: SetReserve
	held    atomic.Int64  // connections accepted and not yet closed
	refused atomic.Uint64 // connections closed at once, past the budget
	// where a connection was dialled from, before NAT: SetOrigin (exempt.go)
	origin atomic.Pointer[func(remote, local netip.AddrPort) netip.AddrPort]
}

// SetReserve keeps n descriptors of the process's limit back from the
// services' connections: what the lab's dataplane and control need.
func SetReserve(n int) { budget.reserve.Store(int64(n)) }

// nofile is the descriptor limit in force: the soft RLIMIT_NOFILE, which
// Go's syscall package raises to the hard one at start (syscall/rlimit.go). It is read at each accept, not once, so
// the budget follows a limit lowered later (prlimit). A variable for tests.
var nofile = func() int64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return math.MaxInt64
	}
	return int64(min(r.Cur, math.MaxInt64)) // RLIM_INFINITY is all ones
}

// ConnBudget is how many connections the services may hold at once: half
// of what the limit leaves after the reserve, since a service may hold a
// second descriptor for each connection it accepted (a front-end's request
// to a worker, an app's outbound call; both dial at most one connection per
// request, and the front-end's requests land on the workers' budgeted
// ports). A limit that leaves little or nothing after the reserve still
// gives an eighth of itself (a fourth of its descriptors, counting two a
// connection): the services of a small lab keep working, and the
// dataplane keeps three fourths, which bounds the lab that machine can run
// with or without them. On a hard limit of 1024 that is 128 connections.
func ConnBudget() int64 {
	limit := nofile()
	return max(limit/8, (limit-budget.reserve.Load())/2)
}

// BudgetStats are the budget's figures now.
type BudgetStats struct {
	Budget  int64  // connections the services may hold: ConnBudget
	Held    int64  // connections they hold
	Refused uint64 // connections closed at once past the budget, since start
}

// Budget returns the budget's figures.
func Budget() BudgetStats {
	return BudgetStats{Budget: ConnBudget(), Held: budget.held.Load(), Refused: budget.refused.Load()}
}

// take claims a place for an accepted connection, or counts it refused.
func take(c net.Conn) bool {
	if budget.held.Add(1) > ConnBudget() && !exempt(c) {
		budget.held.Add(-1)
		budget.refused.Add(1)
		return false
	}
	return true
}

func release() { budget.held.Add(-1) }

// Budgeted returns l with its accepted connections in the budget, as
// Serve's and ServeHTTP's are: for a server with its own accept loop, such
// as the DNS server's TCP, which a client could otherwise hold open past
// the process's descriptors (TestDNSOverTCPStaysInTheBudget).
func Budgeted(l net.Listener) net.Listener { return budgetListener{l} }

// budgetListener closes at once what its listener accepts past the budget,
// and hands out the rest as budgetConns: Serve's accept loop, net/http's
// and the DNS server's all take their connections from one.
//
// It also waits out a failed accept (EMFILE, ECONNABORTED) and tries
// again, with a delay doubling from 5 ms to a second as net/http's does,
// and returns only once the listener is closed: the DNS library's loop
// retries a temporary error at once, and spun on a CPU for as long as the
// process was out of descriptors.
type budgetListener struct{ net.Listener }

// acceptBackoff is the first and the longest wait after a failed accept.
var acceptBackoff = [2]time.Duration{5 * time.Millisecond, time.Second}

func (l budgetListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err != nil {
			delay = min(max(2*delay, acceptBackoff[0]), acceptBackoff[1])
			time.Sleep(delay)
			continue
		}
		delay = 0
		if take(c) {
			return &budgetConn{Conn: c}, nil
		}
		c.Close()
	}
}

// budgetConn gives its place back on its first Close.
type budgetConn struct {
	net.Conn
	once sync.Once
}

func (c *budgetConn) Close() error {
	c.once.Do(release)
	return c.Conn.Close()
}

// CloseWrite keeps the TCP half-close net/http uses to end a connection
// cleanly, which the embedded net.Conn hides.
func (c *budgetConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
