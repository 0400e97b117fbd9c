// Package app is the web server of an ASE worker: it serves the apps placed
// on the worker, on TCP 80, chosen by Host header (F4).
//
// Each answer says which app answered, from which worker, and the address the
// worker saw the call come from, so a learner can see the front-end in front
// of the worker and the client behind the front-end. /outbound?url=URL makes
// the worker call out, through the dataplane and its NAT, so the same learner
// can ask an app which address it leaves with (F3, F4). /download?bytes=N
// answers N bytes, and an upload's body is read and counted, for bulk
// transfers through the VIP, a front-end and a worker.
//
// The app also serves its content, what FTP publishes to the ASE: GET or
// HEAD of /PATH answers the app's file PATH (/index.html, /css/site.css),
// as App Service serves a site's wwwroot. A folder answers as IIS does
// without directory browsing: /css redirects to /css/, which serves the
// folder's default document (index.html, ...) or answers 403. The JSON
// answer stays the app's own for every other path, / included, so
// content is served only where it exists, and /outbound and /download win
// over files of those names: they are the worker's instruments, which the
// labs rely on whatever a learner uploads. Kudu's name (APP.scm.SUFFIX)
// answers JSON as before: in Azure it is the deployment site, not the
// app's content.
package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/wwwroot"
	"github.com/aseemu/emulator/topology"
)

// Defaults of the Config fields left zero.
const (
	DefaultPort            = 80
	DefaultOutboundTimeout = 5 * time.Second
	// MaxOutboundBody caps the body /outbound relays: enough for any page
	// a learner calls, small enough that a call to something large cannot
	// tie up the worker's memory.
	MaxOutboundBody = 64 << 10
	// MaxDownload caps /download?bytes=N: a bulk transfer through the VIP,
	// the front-end and a worker takes seconds at most.
	MaxDownload = 1 << 30
)

// Config is one worker's web server.
type Config struct {
	Worker    string     // node name, e.g. "ase1-w1"
	Address   netip.Addr // the worker's private address, e.g. 10.0.1.6
	ASE       string     // e.g. "ase1"
	DNSSuffix string     // apps answer to APP.DNSSuffix and APP.scm.DNSSuffix
	Apps      []string   // the apps placed on this worker

	Port            int           // 0: DefaultPort
	OutboundTimeout time.Duration // 0: DefaultOutboundTimeout
	// Content is the ASE's content, which its apps serve. Give the same
	// one to every worker and front-end of an ASE, so that what FTP
	// stores every instance of the app serves. Nil: Start makes one.
	Content *wwwroot.Store
}

// ConfigFor returns the web server of worker, a worker node of a topology:
// the apps are those of its ASE placed on it.
func ConfigFor(worker *topology.Node) Config {
	cfg := Config{Worker: worker.Name, Address: worker.Addr}
	if a := worker.ASE; a != nil {
		cfg.ASE, cfg.DNSSuffix = a.Name, a.DNSSuffix
		for _, ap := range a.Apps {
			// By name: a reloaded topology has new Node values for
			// the same machines.
			if slices.ContainsFunc(ap.Workers, func(n *topology.Node) bool { return n.Name == worker.Name }) {
				cfg.Apps = append(cfg.Apps, ap.Name)
			}
		}
	}
	return cfg
}

// Answer is what an app says about a call (the JSON form of its reply).
type Answer struct {
	App            string `json:"app"`
	ASE            string `json:"ase"`
	Worker         string `json:"worker"`
	WorkerAddress  string `json:"workerAddress"`
	Client         string `json:"client"`                   // the TCP peer: the front-end, or whoever called the worker directly
	ForwardedFor   string `json:"forwardedFor,omitempty"`   // X-Forwarded-For as it arrived
	ForwardedProto string `json:"forwardedProto,omitempty"` // X-Forwarded-Proto as it arrived
	Host           string `json:"host"`
	Kudu           bool   `json:"kudu,omitempty"`     // called as APP.scm.SUFFIX
	Received       int64  `json:"received,omitempty"` // bytes of the request's body (an upload), read to its end
}

// Line is the answer as one human line.
func (a Answer) Line() string {
	s := fmt.Sprintf("%s on %s (%s): you are %s", a.App, a.Worker, a.WorkerAddress, hostOf(a.Client))
	if a.ForwardedFor != "" {
		s += ", forwarded for " + a.ForwardedFor
	}
	return s
}

// OutboundAnswer is the reply of /outbound: what the worker's own call
// brought back, or why it failed.
type OutboundAnswer struct {
	App       string `json:"app"`
	Worker    string `json:"worker"`
	URL       string `json:"url"`
	Status    int    `json:"status,omitempty"`     // the remote's status code; 0 if the call failed
	StatusMsg string `json:"statusText,omitempty"` // e.g. "200 OK"
	Body      string `json:"body"`
	Truncated bool   `json:"truncated,omitempty"` // the body was longer than MaxOutboundBody
	Error     string `json:"error,omitempty"`
}

// Server is a worker's running web server.
type Server struct {
	cfg     atomic.Pointer[Config]
	content *wwwroot.Store
	client  *http.Client
	g       netx.Group
}

// Start opens the worker's port through n and serves until Close.
func Start(n netx.Net, cfg Config) (*Server, error) {
	cfg = withDefaults(cfg)
	ls := netx.NewListeners(n)
	l := ls.TCP(cfg.Port)
	if err := ls.Err(); err != nil {
		return nil, fmt.Errorf("app server on %s: %w", cfg.Worker, err)
	}
	tr := netx.Transport(n)
	// A new connection per call, so each /outbound is one new flow through
	// the dataplane: what a learner sees in `emulator flows` and in the
	// SNAT port count (F17) is then one entry per call.
	tr.DisableKeepAlives = true
	if cfg.Content == nil {
		cfg.Content = wwwroot.New()
	}
	s := &Server{content: cfg.Content, client: &http.Client{
		Transport: tr,
		Timeout:   cfg.OutboundTimeout,
		// "What came back" is the remote's own answer, a redirect
		// included: following it would call a second endpoint.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	s.cfg.Store(&cfg)
	s.g.ServeHTTP(l, &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}, false)
	s.g.OnClose(func() error { tr.CloseIdleConnections(); return nil })
	return s, nil
}

// Update changes the apps placed on the worker (apps move between workers,
// F4) without closing its port. Port, Worker and Content are not changed.
func (s *Server) Update(cfg Config) {
	old := s.cfg.Load()
	cfg = withDefaults(cfg)
	cfg.Port, cfg.Worker = old.Port, old.Worker
	s.cfg.Store(&cfg)
}

// Close stops serving and ends every open connection.
func (s *Server) Close() error { return s.g.Close() }

func withDefaults(cfg Config) Config {
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.OutboundTimeout == 0 {
		cfg.OutboundTimeout = DefaultOutboundTimeout
	}
	cfg.Apps = slices.Clone(cfg.Apps)
	return cfg
}

// ServeHTTP answers as the app the Host header names.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	w.Header().Set("X-ASE-Worker", cfg.Worker)
	name, kudu, ok := ParseHost(r.Host, cfg.DNSSuffix)
	i := -1
	if ok {
		i = slices.IndexFunc(cfg.Apps, func(a string) bool { return strings.EqualFold(a, name) })
	}
	if i < 0 {
		runs := "no apps"
		if len(cfg.Apps) > 0 {
			runs = strings.Join(cfg.Apps, ", ")
		}
		http.Error(w, fmt.Sprintf("%s (%s): no app for host %q on this worker; it runs: %s", cfg.Worker, cfg.Address, r.Host, runs), http.StatusNotFound)
		return
	}
	app := cfg.Apps[i]
	switch r.URL.Path {
	case "/outbound":
		s.outbound(w, r, cfg, app)
		return
	case "/download":
		download(w, r)
		return
	}
	if !kudu && (r.Method == http.MethodGet || r.Method == http.MethodHead) && s.serveContent(w, r, app) {
		return
	}
	// An upload is read to its end and counted, so that a POST through
	// the VIP carries its body: answered unread, curl's Expect:
	// 100-continue got its answer first and curl sent nothing at all.
	received, _ := io.Copy(io.Discard, r.Body)
	a := Answer{
		App: app, ASE: cfg.ASE, Worker: cfg.Worker, WorkerAddress: cfg.Address.String(),
		Client:         r.RemoteAddr,
		ForwardedFor:   strings.Join(r.Header.Values("X-Forwarded-For"), ", "),
		ForwardedProto: r.Header.Get("X-Forwarded-Proto"),
		Host:           r.Host,
		Kudu:           kudu,
		Received:       received,
	}
	if wantsText(r) {
		writeText(w, http.StatusOK, a.Line()+"\n")
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// defaultDocuments are what a folder's URL serves, the first there, as
// App Service's IIS has them (those of ASP and PHP left out: the workers
// run neither).
var defaultDocuments = []string{"Default.htm", "Default.html", "index.htm", "index.html", "iisstart.htm", wwwroot.StartFile}

// serveContent answers a GET or HEAD of app's content at the request's
// path, and reports whether there was any. The path is decoded
// (/my%20file.css is "my file.css"), and the Store takes it only as names
// in the app's directory: "..", "." and empty names find nothing, so no
// URL reaches past the app's content.
func (s *Server) serveContent(w http.ResponseWriter, r *http.Request, app string) bool {
	p, slash := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if p == "" {
		return false
	}
	f, ok := s.content.Get(app, p)
	switch {
	case !ok || !f.Dir && slash:
		return false
	case !f.Dir:
		serveFile(w, r, f)
	case !slash:
		// IIS's courtesy redirect: relative links in the folder's
		// page then resolve in the folder.
		u := url.URL{Path: r.URL.Path + "/", RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
	default:
		for _, name := range defaultDocuments {
			if f, ok := s.content.Get(app, p+"/"+name); ok && !f.Dir {
				serveFile(w, r, f)
				return true
			}
		}
		http.Error(w, fmt.Sprintf("403 - Forbidden: /%s/ is a folder with no default document (%s), and directory browsing is off, as on App Service.", p, strings.Join(defaultDocuments, ", ")), http.StatusForbidden)
	}
	return true
}

// serveFile answers f. ServeContent types it by its extension and answers
// HEAD, ranges and If-Modified-Since as a web server does.
func serveFile(w http.ResponseWriter, r *http.Request, f *wwwroot.File) {
	http.ServeContent(w, r, f.Name, f.Mod, bytes.NewReader(f.Data))
}

// download answers ?bytes=N bytes (zeros), for a bulk transfer through the
// front-end and the dataplane: curl -o /dev/null -w %{speed_download}.
func download(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.ParseInt(r.URL.Query().Get("bytes"), 10, 64)
	if err != nil || n < 0 || n > MaxDownload {
		http.Error(w, fmt.Sprintf("want /download?bytes=N, N from 0 to %d", MaxDownload), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 64<<10)
	for n > 0 {
		k, err := w.Write(buf[:min(n, int64(len(buf)))])
		if err != nil {
			return
		}
		n -= int64(k)
	}
}

func (s *Server) outbound(w http.ResponseWriter, r *http.Request, cfg *Config, app string) {
	a := OutboundAnswer{App: app, Worker: cfg.Worker, URL: r.URL.Query().Get("url")}
	code := http.StatusOK
	if err := s.fetch(r, &a); err != nil {
		a.Error = err.Error()
		code = http.StatusBadGateway
		var bad badURLError
		if errors.As(err, &bad) {
			code = http.StatusBadRequest
		}
	}
	if wantsText(r) {
		line := fmt.Sprintf("%s on %s (%s): GET %s: ", app, cfg.Worker, cfg.Address, a.URL)
		if a.Error != "" {
			line += "error: " + a.Error + "\n"
		} else {
			line += a.StatusMsg + "\n" + a.Body
		}
		writeText(w, code, line)
		return
	}
	writeJSON(w, code, a)
}

type badURLError struct{ error }

func (s *Server) fetch(r *http.Request, a *OutboundAnswer) error {
	u, err := url.Parse(a.URL)
	switch {
	case a.URL == "":
		return badURLError{errors.New("missing ?url=http://HOST/PATH")}
	case err != nil:
		return badURLError{err}
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return badURLError{fmt.Errorf("url %q: want http://HOST/PATH or https://HOST/PATH", a.URL)}
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return badURLError{err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	a.Status, a.StatusMsg = resp.StatusCode, resp.Status
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxOutboundBody+1))
	if len(body) > MaxOutboundBody {
		body, a.Truncated = body[:MaxOutboundBody], true
	}
	a.Body = string(body)
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	return nil
}

// ParseHost finds the app a Host header names under suffix: "app1" for
// "APP1.ase1.p.azurewebsites.net:80", with kudu set for
// "app1.scm.ase1.p.azurewebsites.net". The name is lower-case; ok is false
// if host is not one app name under suffix.
func ParseHost(host, suffix string) (app string, kudu, ok bool) {
	h := strings.ToLower(strings.TrimSuffix(hostOf(host), "."))
	suffix = strings.ToLower(strings.Trim(suffix, "."))
	if suffix == "" {
		return "", false, false
	}
	rest, found := strings.CutSuffix(h, "."+suffix)
	if !found {
		return "", false, false
	}
	if name, isKudu := strings.CutSuffix(rest, ".scm"); isKudu {
		rest, kudu = name, true
	}
	// "scm.SUFFIX" is Kudu's parent name, not an app's.
	if rest == "" || rest == "scm" || strings.Contains(rest, ".") {
		return "", false, false
	}
	return rest, kudu, true
}

// hostOf strips the port of "host:port", "[v6]:port" or a bare host.
func hostOf(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// wantsText: ?format= wins; otherwise text when the client asks for
// text/plain and not for JSON (curl's "*/*" gets JSON).
func wantsText(r *http.Request) bool {
	switch strings.ToLower(r.URL.Query().Get("format")) {
	case "text", "txt", "plain":
		return true
	case "json":
		return false
	}
	accept := strings.ToLower(strings.Join(r.Header.Values("Accept"), ","))
	return strings.Contains(accept, "text/plain") && !strings.Contains(accept, "application/json")
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, s)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// One line, so that grep finds a field in curl's output.
	json.NewEncoder(w).Encode(v)
}
