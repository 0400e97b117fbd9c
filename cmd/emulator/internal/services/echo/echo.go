// Package echo is the Internet host "echo": a "what is my IP" web server,
// and the echo service of RFC 862 on TCP and UDP.
//
// It answers with the caller's address as it arrived, after every NAT on the
// way: from inside an ASE that is the ASE's VIP (F3), which is the point.
package echo

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
)

// Defaults of the Config fields left zero.
const (
	DefaultHTTPPort = 80
	DefaultEchoPort = 7
	// IdleTimeout ends a TCP echo session nobody has typed into for this
	// long, so that forgotten nc sessions do not pile up over a lab's life.
	IdleTimeout = 5 * time.Minute
)

// Config is the echo host's ports.
type Config struct {
	HTTPPort int // "what is my IP"; 0: DefaultHTTPPort
	EchoPort int // TCP and UDP echo; 0: DefaultEchoPort
}

// Answer is the JSON form (?format=json) of the HTTP reply.
type Answer struct {
	Address string `json:"address"` // the caller's address as it arrived
	Port    int    `json:"port"`    // the caller's port: after SNAT, one from the VIP's pool (F17)
}

// Server is the running echo host.
type Server struct{ g netx.Group }

// Start opens the HTTP port and both echo ports through n, and serves until
// Close.
func Start(n netx.Net, cfg Config) (*Server, error) {
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = DefaultHTTPPort
	}
	if cfg.EchoPort == 0 {
		cfg.EchoPort = DefaultEchoPort
	}
	ls := netx.NewListeners(n)
	httpL, tcpL, udp := ls.TCP(cfg.HTTPPort), ls.TCP(cfg.EchoPort), ls.UDP(cfg.EchoPort)
	if err := ls.Err(); err != nil {
		return nil, err
	}
	s := &Server{}
	s.g.ServeHTTP(httpL, &http.Server{Handler: http.HandlerFunc(whatIsMyIP), ReadHeaderTimeout: 10 * time.Second}, false)
	s.g.Serve(tcpL, echoTCP)
	s.g.OnClose(udp.Close)
	s.g.Go(func() { echoUDP(udp) })
	return s, nil
}

// Close stops every port and ends every open session.
func (s *Server) Close() error { return s.g.Close() }

func whatIsMyIP(w http.ResponseWriter, r *http.Request) {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if strings.EqualFold(r.URL.Query().Get("format"), "json") {
		p, _ := strconv.Atoi(port)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Answer{Address: host, Port: p})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, host+"\n")
}

func echoTCP(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		c.SetReadDeadline(time.Now().Add(IdleTimeout))
		n, err := c.Read(buf)
		if n > 0 {
			c.SetWriteDeadline(time.Now().Add(IdleTimeout))
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func echoUDP(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP errors from earlier replies surface here on some
			// systems; they end one exchange, not the service.
			continue
		}
		pc.WriteTo(buf[:n], from)
	}
}
