// Package peer is a host that tells each caller the address it sees: Azure
// SQL (1433) and Azure Storage (80, 443) on the Internet, db1 (1433) in the
// VNet. Whether that is a worker's own address (F4) or the ASE's VIP (F3)
// is the lesson, so the answer is the address and nothing else.
package peer

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/certs"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
)

// Config is one peer host.
type Config struct {
	Name       string // who answers: "azure-sql"
	TCPPorts   []int  // each answers one line and closes
	HTTPPorts  []int  // each answers the line as an HTTP body
	HTTPSPorts []int  // the same over TLS
	// Certificate is served on HTTPSPorts; nil: one is made for TLSNames.
	Certificate *tls.Certificate
	// TLSNames are the names of the certificate made when Certificate is
	// nil; nil: Name.
	TLSNames []string
}

// hosts are the peer hosts of the default lab (SPEC §3). Another host is
// one more line here.
var hosts = map[string]Config{
	"azure-sql":     {Name: "azure-sql", TCPPorts: []int{1433}},
	"azure-storage": {Name: "azure-storage", HTTPPorts: []int{80}, HTTPSPorts: []int{443}, TLSNames: []string{"storage.blob.core.windows.net", "*.blob.core.windows.net", "azure-storage"}},
	"db1":           {Name: "db1", TCPPorts: []int{1433}},
}

// ForNode returns the peer service the lab runs on the node called name,
// and false if that node runs none.
func ForNode(name string) (Config, bool) {
	c, ok := hosts[name]
	return c, ok
}

// Line is what a peer called name answers a caller from addr ("ip:port").
func Line(name, addr string) string { return name + ": you are " + addr + "\n" }

// Server is a running peer host.
type Server struct{ g netx.Group }

// Start opens every port of cfg through n, and serves until Close.
func Start(n netx.Net, cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("peer: Config.Name is empty")
	}
	cert := cfg.Certificate
	if cert == nil && len(cfg.HTTPSPorts) > 0 {
		names := cfg.TLSNames
		if len(names) == 0 {
			names = []string{cfg.Name}
		}
		c, err := certs.SelfSigned("emulated "+cfg.Name, names...)
		if err != nil {
			return nil, fmt.Errorf("peer %s: certificate: %w", cfg.Name, err)
		}
		cert = &c
	}
	ls := netx.NewListeners(n)
	listen := func(ports []int) []net.Listener {
		var out []net.Listener
		for _, p := range ports {
			out = append(out, ls.TCP(p))
		}
		return out
	}
	tcpL, httpL, httpsL := listen(cfg.TCPPorts), listen(cfg.HTTPPorts), listen(cfg.HTTPSPorts)
	if err := ls.Err(); err != nil {
		return nil, fmt.Errorf("peer %s: %w", cfg.Name, err)
	}

	s := &Server{}
	for _, l := range tcpL {
		s.g.Serve(l, func(c net.Conn) {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, Line(cfg.Name, c.RemoteAddr().String()))
		})
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, Line(cfg.Name, r.RemoteAddr))
	})
	for _, l := range httpL {
		s.g.ServeHTTP(l, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, false)
	}
	for _, l := range httpsL {
		s.g.ServeHTTP(l, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}}, true)
	}
	return s, nil
}

// Close stops every port and ends every open connection.
func (s *Server) Close() error { return s.g.Close() }

// String names the ports, for logs: "azure-storage: http 80, https 443".
func (c Config) String() string {
	var parts []string
	for _, p := range []struct {
		proto string
		ports []int
	}{{"tcp", c.TCPPorts}, {"http", c.HTTPPorts}, {"https", c.HTTPSPorts}} {
		for _, port := range p.ports {
			parts = append(parts, fmt.Sprintf("%s %d", p.proto, port))
		}
	}
	return c.Name + ": " + strings.Join(parts, ", ")
}
