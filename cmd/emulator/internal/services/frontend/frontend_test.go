package frontend

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/app"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/topology"
)

const suffix = "ase1.p.azurewebsites.net"

// lab is ase1 of the default lab on a pretend network: its front-end
// ase1-fe1, and app servers on ase1-w1 and ase1-w2.
type lab struct {
	topo *topology.Topology
	reg  *netx.Registry
	fe   *netx.Loopback
	srv  *Server
}

func newLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{topo: topology.Default(), reg: netx.NewRegistry()}
	for _, name := range []string{"ase1-w1", "ase1-w2"} {
		l.startWorker(t, l.topo.NodeByName(name))
	}
	fe := l.topo.NodeByName("ase1-fe1")
	l.fe = l.reg.Node(fe.Name, fe.Addr.String())
	var err error
	l.srv, err = Start(l.fe, Config{FrontEnd: fe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func (l *lab) startWorker(t testing.TB, w *topology.Node) {
	t.Helper()
	s, err := app.Start(l.reg.Node(w.Name, w.Addr.String()), app.ConfigFor(w))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
}

func (l *lab) get(t *testing.T, scheme string, port int, host string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", scheme+"://"+l.fe.Addr("tcp", port)+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: hostOnly(host)},
	}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s://%s/ on port %d: %v", scheme, host, port, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func hostOnly(h string) string {
	if x, _, err := net.SplitHostPort(h); err == nil {
		return x
	}
	return h
}

func decode(t *testing.T, body string) app.Answer {
	t.Helper()
	var a app.Answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("worker answer is not JSON: %v: %q", err, body)
	}
	return a
}

func TestProxiesToTheAppsWorkers(t *testing.T) { // F2, F4
	l := newLab(t)
	seen := map[string]int{}
	for i := 0; i < 4; i++ {
		resp, body := l.get(t, "http", 80, "app1."+suffix, "X-Forwarded-For", "198.51.100.10")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		a := decode(t, body)
		seen[a.Worker]++
		if a.App != "app1" {
			t.Errorf("answered by app %q, want app1", a.App)
		}
		// The client's own X-Forwarded-For is kept and the address the
		// front-end saw is appended.
		if a.ForwardedFor != "198.51.100.10, 127.0.0.1" || a.ForwardedProto != "http" {
			t.Errorf("worker saw X-Forwarded-For %q proto %q, want \"198.51.100.10, 127.0.0.1\" and http", a.ForwardedFor, a.ForwardedProto)
		}
		if got := resp.Header.Get("X-ASE-FrontEnd"); got != "ase1-fe1" {
			t.Errorf("X-ASE-FrontEnd = %q, want ase1-fe1", got)
		}
	}
	if seen["ase1-w1"] != 2 || seen["ase1-w2"] != 2 {
		t.Errorf("4 requests went to %v, want 2 to each of ase1-w1 and ase1-w2", seen)
	}

	_, body := l.get(t, "http", 80, "APP1.ASE1.P.AZUREWEBSITES.NET:80")
	if a := decode(t, body); a.ForwardedFor != "127.0.0.1" {
		t.Errorf("without a client X-Forwarded-For the worker saw %q, want the client address 127.0.0.1", a.ForwardedFor)
	}
}

func TestHTTPSWithACertificateForTheASE(t *testing.T) { // F2
	l := newLab(t)
	for _, name := range []string{"app1." + suffix, "app1.scm." + suffix} {
		c, err := tls.Dial("tcp", l.fe.Addr("tcp", 443), &tls.Config{InsecureSkipVerify: true, ServerName: name})
		if err != nil {
			t.Fatalf("TLS to 443 as %s: %v", name, err)
		}
		if err := c.ConnectionState().PeerCertificates[0].VerifyHostname(name); err != nil {
			t.Errorf("certificate on 443 is not valid for %s: %v", name, err)
		}
		c.Close()
	}
	resp, body := l.get(t, "https", 443, "app1."+suffix)
	if resp.StatusCode != 200 {
		t.Fatalf("https status %d: %s", resp.StatusCode, body)
	}
	if a := decode(t, body); a.ForwardedProto != "https" || a.ForwardedFor != "127.0.0.1" {
		t.Errorf("via 443 the worker saw proto %q X-Forwarded-For %q, want https and 127.0.0.1", a.ForwardedProto, a.ForwardedFor)
	}
}

func TestSharedCertificate(t *testing.T) {
	topo := topology.Default()
	cert, err := Certificate(topo.ASEByName("ase1"))
	if err != nil {
		t.Fatal(err)
	}
	n := netx.NewLoopback("ase1-fe2")
	s, err := Start(n, Config{FrontEnd: topo.NodeByName("ase1-fe2"), Certificate: &cert})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := tls.Dial("tcp", n.Addr("tcp", 443), &tls.Config{InsecureSkipVerify: true, ServerName: "app1." + suffix})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.ConnectionState().PeerCertificates[0].Equal(cert.Leaf) {
		t.Error("front-end does not serve the certificate it was given")
	}
}

func TestUnknownAppIs404NamingTheASE(t *testing.T) {
	l := newLab(t)
	for _, c := range []struct{ host, want string }{
		{"app9." + suffix, "no app app9 on ASE ase1"},
		{"app2.ase2.p.azurewebsites.net", "no app app2.ase2.p.azurewebsites.net on ASE ase1"},
		{"192.23.1.2", "no app 192.23.1.2 on ASE ase1"},
	} {
		for _, scheme := range []string{"http", "https"} {
			port := map[string]int{"http": 80, "https": 443}[scheme]
			resp, body := l.get(t, scheme, port, c.host)
			if resp.StatusCode != 404 || !strings.Contains(body, c.want) {
				t.Errorf("%s Host %s: %d %q, want 404 saying %q", scheme, c.host, resp.StatusCode, body, c.want)
			}
		}
	}
}

func TestUnreachableWorkerIs502NamingIt(t *testing.T) {
	l := newLab(t)
	topo := topology.Default()
	a := topo.ASEByName("ase1")
	// ase1-w3 exists in the ASE but nothing on the network answers for it.
	w3 := &topology.Node{Name: "ase1-w3", Kind: topology.NodeWorker, Addr: netip.MustParseAddr("10.0.1.8"), ASE: a}
	a.Apps[0].Workers = []*topology.Node{w3}
	if err := l.srv.Update(topo.NodeByName("ase1-fe1")); err != nil {
		t.Fatal(err)
	}
	resp, body := l.get(t, "http", 80, "app1."+suffix)
	if resp.StatusCode != 502 || !strings.Contains(body, "ase1-w3") || !strings.Contains(body, "10.0.1.8:80") {
		t.Errorf("unreachable worker: %d %q, want 502 naming ase1-w3 (10.0.1.8:80)", resp.StatusCode, body)
	}
}

func TestUpdateFollowsScaling(t *testing.T) { // F4: the worker pool changes when the ASE scales
	l := newLab(t)
	topo := topology.Default()
	a := topo.ASEByName("ase1")
	w3 := &topology.Node{Name: "ase1-w3", Kind: topology.NodeWorker, Addr: netip.MustParseAddr("10.0.1.8"), ASE: a}
	a.Workers = append(a.Workers, w3)
	a.Apps[0].Workers = []*topology.Node{w3}
	l.startWorker(t, w3)
	if err := l.srv.Update(topo.NodeByName("ase1-fe1")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		_, body := l.get(t, "http", 80, "app1."+suffix)
		if a := decode(t, body); a.Worker != "ase1-w3" || a.WorkerAddress != "10.0.1.8" {
			t.Errorf("after app1 moved to ase1-w3 it answered from %s (%s)", a.Worker, a.WorkerAddress)
		}
	}
}

func TestManagementPorts(t *testing.T) { // F2, F15: management and probes on 454-455
	l := newLab(t)
	for _, port := range ManagementPorts {
		for _, path := range []string{"/probe", "/"} {
			c := &http.Client{Timeout: 2 * time.Second}
			resp, err := c.Get("http://" + l.fe.Addr("tcp", port) + path)
			if err != nil {
				t.Fatalf("GET %s on %d: %v", path, port, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "ase1-fe1 management: ok, you are 127.0.0.1:") {
				t.Errorf("GET %s on %d: %d %q, want 200 \"ase1-fe1 management: ok, you are 127.0.0.1:PORT\"", path, port, resp.StatusCode, b)
			}
		}
	}
}

func dialLine(t *testing.T, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading banner from %s: %v (got %q)", addr, err, line)
	}
	return c, r, line
}

func TestFTPBanners(t *testing.T) { // F2: FTP 21, FTPS 990 (in TLS)
	l := newLab(t)
	for port, want := range map[int]string{21: "220 ase1-fe1 FTP (emulated ASE ase1)\r\n", 990: "220 ase1-fe1 FTPS (emulated ASE ase1)\r\n"} {
		var c net.Conn
		var r *bufio.Reader
		var line string
		if port == FTPSPort {
			tc, err := tls.Dial("tcp", l.fe.Addr("tcp", port), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("TLS to %d: %v", port, err)
			}
			c, r = tc, bufio.NewReader(tc)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, _ = r.ReadString('\n')
		} else {
			c, r, line = dialLine(t, l.fe.Addr("tcp", port))
		}
		if line != want {
			t.Errorf("banner on %d = %q, want %q", port, line, want)
		}
		io.WriteString(c, "QUIT\r\n")
		if bye, _ := r.ReadString('\n'); !strings.HasPrefix(bye, "221 ") {
			t.Errorf("QUIT on %d answered %q, want 221", port, bye)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Errorf("port %d stays open after QUIT (%v)", port, err)
		}
		c.Close()
	}
}

func TestRemoteDebuggingBanners(t *testing.T) { // F2: 4016 VS2012, 4018 VS2013, 4020 VS2015
	l := newLab(t)
	for port, vs := range map[int]string{4016: "VS2012", 4018: "VS2013", 4020: "VS2015"} {
		c, r, line := dialLine(t, l.fe.Addr("tcp", port))
		if !strings.Contains(line, vs) || !strings.Contains(line, "ase1-fe1") || !strings.Contains(line, "Visual Studio "+vs[2:]) {
			t.Errorf("banner on %d = %q, want one naming ase1-fe1 and %s", port, line, vs)
		}
		if _, err := r.ReadByte(); err != io.EOF {
			t.Errorf("port %d stays open after its banner (%v)", port, err)
		}
		c.Close()
	}
}

func TestFTPDataPortsAccept(t *testing.T) { // F2: FTP data 10001-10020
	l := newLab(t)
	for port := FTPDataFirst; port <= FTPDataLast; port++ {
		addr := l.fe.Addr("tcp", port)
		if addr == "" {
			t.Fatalf("nothing listens on FTP data port %d", port)
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("FTP data port %d: %v", port, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("FTP data port %d: read %v, want the front-end to close", port, err)
		}
		c.Close()
	}
}

func TestCloseReleasesEveryPort(t *testing.T) {
	topo := topology.Default()
	n := netx.NewLoopback("ase1-fe1")
	s, err := Start(n, Config{FrontEnd: topo.NodeByName("ase1-fe1")})
	if err != nil {
		t.Fatal(err)
	}
	ports := []int{HTTPPort, HTTPSPort, FTPPort, FTPSPort, 4016, 4018, 4020, FTPDataFirst, FTPDataLast}
	ports = append(ports, ManagementPorts...)
	// An idle FTP session must not hold Close up.
	c, _, _ := dialLine(t, n.Addr("tcp", FTPPort))
	defer c.Close()
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Close took %v with an idle FTP session open", time.Since(start))
	}
	for _, p := range ports {
		if a := n.Addr("tcp", p); a != "" {
			t.Errorf("port %d still open after Close", p)
		}
	}
	// And it can start again on the same node, as after a reload.
	s, err = Start(n, Config{FrontEnd: topo.NodeByName("ase1-fe1")})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	s.Close()
}

func TestStartFailsOnTakenPortAndOpensNothing(t *testing.T) {
	topo := topology.Default()
	n := netx.NewLoopback("ase1-fe1")
	taken, err := n.Listen("tcp", fmt.Sprintf(":%d", 4018))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := Start(n, Config{FrontEnd: topo.NodeByName("ase1-fe1")}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start with 4018 taken: err = %v, want address in use", err)
	}
	if n.Addr("tcp", 80) != "" {
		t.Error("a failed Start left port 80 open")
	}
	if s, err := Start(netx.NewLoopback("ase1-w1"), Config{FrontEnd: topo.NodeByName("ase1-w1")}); err == nil {
		s.Close()
		t.Error("Start took a worker node for a front-end")
	}
}
