// Package frontend is an ASE front-end: the machine behind the ASE's VIP (or
// ILB address) that takes every inbound port of F2 and F7.
//
// HTTP (80) and HTTPS (443, TLS ended here) are reverse-proxied by Host
// header to a worker that runs the app. FTP (21) and implicit FTPS (990,
// TLS from the first byte with 443's certificate) are a passive-mode FTP
// server (ftp.go) whose data connections arrive on 10001-10020. The other
// ports answer just enough for nc and curl to show where each one lands:
// management (454, 455) a status line, remote debugging (4016, 4018, 4020)
// a banner naming the Visual Studio version.
package frontend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/app"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/certs"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/topology"
)

// The ports a front-end listens on (F2).
const (
	HTTPPort     = 80
	HTTPSPort    = 443
	FTPPort      = 21
	FTPSPort     = 990
	FTPDataFirst = 10001
	FTPDataLast  = 10020
	WorkerPort   = 80 // where the front-end reaches the apps on a worker
)

// ManagementPorts are Azure management's and the load balancer probes'.
var ManagementPorts = []int{454, 455}

// DebugPorts are the remote debugging ports and the Visual Studio version
// each one serves.
var DebugPorts = map[int]string{4016: "VS2012", 4018: "VS2013", 4020: "VS2015"}

// Listeners is how many sockets a front-end listens on (Start), the most of
// any node's services.
var Listeners = 4 + len(ManagementPorts) + FTPDataLast - FTPDataFirst + 1 + len(DebugPorts)

// bannerWriteTimeout bounds a remote debugging banner's write, so that a
// client that reads nothing does not hold the connection.
const bannerWriteTimeout = 3 * time.Second

// Config is one front-end.
type Config struct {
	// FrontEnd is the front-end node; FrontEnd.ASE is its ASE, whose apps
	// and their workers it routes to.
	FrontEnd *topology.Node
	// Certificate is served on 443, and on 990 and its data connections
	// (FTPS). Nil: Start makes one with Certificate. Make one per ASE and
	// give it to each front-end, so that all of an ASE's front-ends show
	// the same certificate, as behind a real VIP.
	Certificate *tls.Certificate
	// FTP is the ASE's FTP content and passive sessions. Nil: Start makes
	// one. Give one per ASE to each of its front-ends, so that a data
	// connection the load balancer sends to another front-end than its
	// control connection's still finds its session.
	FTP *FTPSite
}

// Certificate returns a self-signed certificate for ASE a's app names:
// *.SUFFIX, *.scm.SUFFIX (Kudu) and SUFFIX itself.
func Certificate(a *topology.ASE) (tls.Certificate, error) {
	return certs.SelfSigned("emulated ASE "+a.Name, "*."+a.DNSSuffix, "*.scm."+a.DNSSuffix, a.DNSSuffix)
}

// Server is a running front-end.
type Server struct {
	state atomic.Pointer[state]
	tls   *tls.Config // 443's and FTPS's: the state's certificate
	// dataTLS is for FTPS data connections. It issues no session tickets:
	// a client that uploads and closes without reading them makes its
	// kernel reset the connection, which can cut the upload's end.
	dataTLS *tls.Config
	tr      *http.Transport
	proxy   *httputil.ReverseProxy
	site    *FTPSite
	ctx     context.Context // done once Close begins
	g       netx.Group
}

// state is what Update replaces in one piece, so that a request sees
// either the old ASE or the new one, never half of each.
type state struct {
	fe, ase, suffix string
	apps            map[string]*route // by lower-case app name
	names           []string
	ftpAddr         netip.Addr // where clients reach FTP, which PASV advertises
	cert            *tls.Certificate
	certMade        bool // made by Start, so remade if the suffix changes
}

type route struct {
	app     string
	workers []*topology.Node
	next    atomic.Uint32 // round-robin over workers
}

type targetKey struct{}

type target struct {
	app    string
	worker *topology.Node
	addr   string
}

// Start opens every port of the front-end through n, and serves until
// Close. A port that cannot be opened fails Start and leaves none open.
func Start(n netx.Net, cfg Config) (*Server, error) {
	if err := check(cfg.FrontEnd); err != nil {
		return nil, err
	}
	st, err := newState(cfg.FrontEnd, cfg.Certificate, nil)
	if err != nil {
		return nil, err
	}

	ls := netx.NewListeners(n)
	httpL, httpsL := ls.TCP(HTTPPort), ls.TCP(HTTPSPort)
	var mgmtL []net.Listener
	for _, p := range ManagementPorts {
		mgmtL = append(mgmtL, ls.TCP(p))
	}
	ftpL, ftpsL := ls.TCP(FTPPort), ls.TCP(FTPSPort)
	var dataL []net.Listener
	for p := FTPDataFirst; p <= FTPDataLast; p++ {
		dataL = append(dataL, ls.TCP(p))
	}
	debugL := map[int]net.Listener{}
	for _, p := range slices.Sorted(maps.Keys(DebugPorts)) {
		debugL[p] = ls.TCP(p)
	}
	if err := ls.Err(); err != nil {
		return nil, fmt.Errorf("front-end %s: %w", cfg.FrontEnd.Name, err)
	}

	s := &Server{tr: netx.Transport(n), site: cfg.FTP}
	s.tls = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Through the state, so that Update can change it.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.state.Load().cert, nil },
	}
	s.dataTLS = s.tls.Clone()
	s.dataTLS.SessionTicketsDisabled = true
	if s.site == nil {
		s.site = NewFTPSite(nil)
	}
	var cancel context.CancelFunc
	s.ctx, cancel = context.WithCancel(context.Background())
	s.g.OnClose(func() error { cancel(); return nil })
	s.state.Store(st)
	s.proxy = &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    s.tr,
		ErrorHandler: s.proxyError,
	}
	s.g.OnClose(func() error { s.tr.CloseIdleConnections(); return nil })

	s.g.ServeHTTP(httpL, &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}, false)
	// A copy of its own: http.Server adds h2 and http/1.1 to its TLS
	// configuration's ALPN as it starts, which FTPS, serving with s.tls
	// meanwhile, must neither race with nor offer its clients.
	s.g.ServeHTTP(httpsL, &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, TLSConfig: s.tls.Clone()}, true)
	mgmt := http.HandlerFunc(s.management)
	for _, l := range mgmtL {
		s.g.ServeHTTP(l, &http.Server{Handler: mgmt, ReadHeaderTimeout: 10 * time.Second}, false)
	}
	s.g.Serve(ftpL, func(c net.Conn) { s.ftp(c, "FTP") })
	s.g.Serve(ftpsL, s.ftps)
	for i, l := range dataL {
		s.g.Serve(l, func(c net.Conn) { s.site.accept(c, FTPDataFirst+i, s.ctx.Done()) })
	}
	for p, l := range debugL {
		s.g.Serve(l, func(c net.Conn) { s.debug(c, p) })
	}
	return s, nil
}

// Update points the front-end at its ASE as it now is: the ASE scaled, or
// apps moved between workers (F4). fe is the same front-end in the new
// topology. Requests under way finish on the worker they were sent to.
func (s *Server) Update(fe *topology.Node) error {
	if err := check(fe); err != nil {
		return err
	}
	st, err := newState(fe, nil, s.state.Load())
	if err != nil {
		return err
	}
	s.state.Store(st)
	return nil
}

// Close stops every port and ends every open connection.
func (s *Server) Close() error { return s.g.Close() }

func check(fe *topology.Node) error {
	if fe == nil || fe.ASE == nil || fe.Kind != topology.NodeFrontEnd {
		return errors.New("frontend: the node must be a front-end of an ASE")
	}
	return nil
}

func newState(fe *topology.Node, cert *tls.Certificate, old *state) (*state, error) {
	a := fe.ASE
	st := &state{fe: fe.Name, ase: a.Name, suffix: a.DNSSuffix, apps: make(map[string]*route, len(a.Apps)), ftpAddr: a.FTPAddr(), cert: cert}
	for _, ap := range a.Apps {
		st.apps[strings.ToLower(ap.Name)] = &route{app: ap.Name, workers: slices.Clone(ap.Workers)}
		st.names = append(st.names, ap.Name)
	}
	slices.Sort(st.names)
	switch {
	case st.cert != nil:
	case old != nil && (!old.certMade || strings.EqualFold(old.suffix, st.suffix)):
		st.cert, st.certMade = old.cert, old.certMade
	default:
		c, err := Certificate(a)
		if err != nil {
			return nil, fmt.Errorf("front-end %s: certificate: %w", fe.Name, err)
		}
		st.cert, st.certMade = &c, true
	}
	return st, nil
}

// ServeHTTP routes an app request (80 and 443) to one of the app's workers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	w.Header().Set("X-ASE-FrontEnd", st.fe)
	name, _, ok := app.ParseHost(r.Host, st.suffix)
	rt := st.apps[name]
	if !ok || rt == nil {
		if !ok {
			name = r.Host
			if h, _, err := net.SplitHostPort(r.Host); err == nil {
				name = h
			}
		}
		apps := "none"
		if len(st.names) > 0 {
			apps = strings.Join(st.names, ", ")
		}
		http.Error(w, fmt.Sprintf("404: no app %s on ASE %s (front-end %s; its apps, as APP.%s: %s)", name, st.ase, st.fe, st.suffix, apps), http.StatusNotFound)
		return
	}
	if len(rt.workers) == 0 {
		http.Error(w, fmt.Sprintf("503: app %s on ASE %s runs on no worker (front-end %s)", rt.app, st.ase, st.fe), http.StatusServiceUnavailable)
		return
	}
	wk := rt.workers[int(rt.next.Add(1)-1)%len(rt.workers)]
	t := target{app: rt.app, worker: wk, addr: net.JoinHostPort(wk.Addr.String(), fmt.Sprint(WorkerPort))}
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(target)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = t.addr
	// The worker chooses the app by Host, so it gets the client's.
	pr.Out.Host = pr.In.Host
	// Append to the client's X-Forwarded-For rather than replace it, as
	// Azure's front-ends do: a call that went through another proxy keeps
	// the whole chain.
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
}

func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t := r.Context().Value(targetKey{}).(target)
	st := s.state.Load()
	http.Error(w, fmt.Sprintf("502: front-end %s of ASE %s cannot reach worker %s (%s) for app %s: %v", st.fe, st.ase, t.worker.Name, t.addr, t.app, err), http.StatusBadGateway)
}

// management answers every request on 454/455, the load balancer's probe
// (GET /probe) included, at once. It names the caller as it arrived, so a
// learner sees that the load balancer kept the client's address (F2).
func (s *Server) management(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, s.state.Load().fe+" management: ok, you are "+r.RemoteAddr+"\n")
}

func (s *Server) debug(c net.Conn, port int) {
	st := s.state.Load()
	c.SetWriteDeadline(time.Now().Add(bannerWriteTimeout))
	vs := DebugPorts[port]
	fmt.Fprintf(c, "%s remote debugging %s (Visual Studio %s msvsmon, port %d, emulated ASE %s)\r\n",
		st.fe, vs, strings.TrimPrefix(vs, "VS"), port, st.ase)
}
