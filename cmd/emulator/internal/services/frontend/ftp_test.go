package frontend

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/wwwroot"
	"github.com/aseemu/emulator/topology"
)

// ftpClient is the client side of an FTP control connection.
type ftpClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
	// tls, after PROT P, puts the data connections in TLS.
	tls *tls.Config
	// dataCerts are the certificates the last data connection's TLS showed.
	dataCerts []*x509.Certificate
}

// ftpsConfig trusts the lab's self-signed certificate, as curl -k does.
func ftpsConfig() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "app1." + suffix}
}

// loginFTPS connects to addr in TLS from the first byte (implicit FTPS),
// logs in, and protects the data connections as curl does for ftps://.
func loginFTPS(t *testing.T, addr string) (*ftpClient, *tls.Conn) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, ftpsConfig())
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	f := &ftpClient{t: t, c: c, r: bufio.NewReader(c)}
	if banner := f.read("the banner"); !strings.HasPrefix(banner, "220 ") {
		t.Fatalf("banner %q, want 220", banner)
	}
	f.want("331", "USER someone")
	f.want("230", "PASS anything")
	f.want("200", "PBSZ 0")
	f.want("200", "PROT P")
	f.tls = ftpsConfig()
	return f, c
}

// loginFTP connects to addr and logs in as a user the front-end never
// heard of.
func loginFTP(t *testing.T, addr string) *ftpClient {
	t.Helper()
	c, r, banner := dialLine(t, addr)
	t.Cleanup(func() { c.Close() })
	if !strings.HasPrefix(banner, "220 ") {
		t.Fatalf("banner %q, want 220", banner)
	}
	f := &ftpClient{t: t, c: c, r: r}
	f.want("331", "USER someone")
	f.want("230", "PASS anything")
	return f
}

// cmd sends a command and returns its whole reply.
func (f *ftpClient) cmd(line string) string {
	f.t.Helper()
	f.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(f.c, line+"\r\n"); err != nil {
		f.t.Fatalf("%s: %v", line, err)
	}
	return f.read(line)
}

// read reads the reply to line.
func (f *ftpClient) read(line string) string {
	f.t.Helper()
	f.c.SetDeadline(time.Now().Add(5 * time.Second))
	var reply string
	for {
		l, err := f.r.ReadString('\n')
		reply += l
		if err != nil {
			f.t.Fatalf("%s: reply %q: %v", line, reply, err)
		}
		// A multi-line reply ("211-") ends with its code and a space.
		if len(l) >= 4 && l[3] == ' ' && strings.HasPrefix(reply, l[:3]) {
			return reply
		}
	}
}

// want sends a command and fails the test unless the reply has code.
func (f *ftpClient) want(code, line string) string {
	f.t.Helper()
	return f.check(code, line, f.cmd(line))
}

func (f *ftpClient) check(code, line, reply string) string {
	f.t.Helper()
	if !strings.HasPrefix(reply, code+" ") && !strings.HasPrefix(reply, code+"-") {
		f.t.Fatalf("%s: reply %q, want %s", line, reply, code)
	}
	return reply
}

var epsvPort = regexp.MustCompile(`\(\|\|\|(\d+)\|\)`)

// epsv opens a passive port and connects to it on fe, which need not be
// the front-end of the control connection.
func (f *ftpClient) epsv(fe *netx.Loopback) net.Conn {
	f.t.Helper()
	reply := f.want("229", "EPSV")
	m := epsvPort.FindStringSubmatch(reply)
	if m == nil {
		f.t.Fatalf("EPSV reply %q names no port", reply)
	}
	port, _ := strconv.Atoi(m[1])
	if port < FTPDataFirst || port > FTPDataLast {
		f.t.Fatalf("EPSV gave port %d, want one of %d-%d, the ports the load balancer opens", port, FTPDataFirst, FTPDataLast)
	}
	d, err := net.DialTimeout("tcp", fe.Addr("tcp", port), 5*time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	d.SetDeadline(time.Now().Add(5 * time.Second))
	if f.tls != nil {
		// The client's handshake starts with its first read or write,
		// after 150, when the server's begins.
		return tls.Client(d, f.tls)
	}
	return d
}

// sawCerts keeps the certificates d's TLS showed, if d is in TLS.
func (f *ftpClient) sawCerts(d net.Conn) {
	if tc, ok := d.(*tls.Conn); ok {
		f.dataCerts = tc.ConnectionState().PeerCertificates
	}
}

// get runs a command that sends data (LIST, NLST, RETR) through fe and
// returns the data.
func (f *ftpClient) get(fe *netx.Loopback, line string) string {
	f.t.Helper()
	d := f.epsv(fe)
	defer d.Close()
	f.want("150", line)
	b, err := io.ReadAll(d)
	if err != nil {
		f.t.Fatalf("%s: reading the data: %v", line, err)
	}
	f.sawCerts(d)
	f.check("226", line, f.read(line))
	return string(b)
}

// put stores data with STOR and returns the final reply.
func (f *ftpClient) put(fe *netx.Loopback, name string, data []byte) string {
	f.t.Helper()
	d := f.epsv(fe)
	defer d.Close()
	f.want("150", "STOR "+name)
	d.SetDeadline(time.Now().Add(30 * time.Second))
	d.Write(data)
	f.sawCerts(d)
	d.Close()
	return f.read("STOR " + name)
}

func TestFTPListDownloadUpload(t *testing.T) { // F2: FTP 21 and data 10001-10020
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	if r := f.want("257", "PWD"); !strings.Contains(r, `"/"`) {
		t.Errorf("PWD = %q, want /", r)
	}
	if got := f.get(l.fe, "LIST"); !strings.Contains(got, "app1\r\n") || !strings.HasPrefix(got, "d") {
		t.Errorf("LIST of / = %q, want the directory app1", got)
	}
	f.want("550", "CWD nosuchapp")
	f.want("250", "CWD app1")
	if r := f.want("257", "PWD"); !strings.Contains(r, `"/app1"`) {
		t.Errorf("PWD after CWD app1 = %q, want /app1", r)
	}
	f.want("200", "TYPE I")
	page := f.get(l.fe, "RETR hostingstart.html")
	if !strings.Contains(page, "app1") {
		t.Errorf("RETR hostingstart.html = %q, want app1's start page", page)
	}
	if r := f.want("213", "SIZE /app1/hostingstart.html"); strings.TrimSpace(r) != fmt.Sprintf("213 %d", len(page)) {
		t.Errorf("SIZE = %q, want 213 %d", r, len(page))
	}
	f.want("213", "MDTM hostingstart.html")

	upload := bytes.Repeat([]byte("uploaded by ftp\n"), 10000)
	if r := f.put(l.fe, "up.txt", upload); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR up.txt: %q, want 226", r)
	}
	if got := f.get(l.fe, "NLST"); got != "hostingstart.html\r\nup.txt\r\n" {
		t.Errorf("NLST of /app1 after STOR = %q, want hostingstart.html and up.txt", got)
	}
	if got := f.get(l.fe, "RETR /app1/up.txt"); got != string(upload) {
		t.Errorf("RETR of the upload gave %d bytes, want the %d stored", len(got), len(upload))
	}
	f.want("250", "DELE up.txt")
	f.want("550", "SIZE up.txt")
	f.want("250", "CDUP")
	f.want("553", "STOR at-the-root.txt")
	f.want("221", "QUIT")
}

func TestFTPRefusesWhatItCannotServe(t *testing.T) {
	l := newLab(t)
	c, r, _ := dialLine(t, l.fe.Addr("tcp", FTPPort))
	defer c.Close()
	f := &ftpClient{t: t, c: c, r: r}
	f.want("530", "LIST")
	f.want("331", "USER anonymous")
	f.want("230", "PASS x")
	if feat := f.want("211", "FEAT"); !strings.Contains(feat, " EPSV\r\n") || !strings.Contains(feat, " PASV\r\n") {
		t.Errorf("FEAT = %q, want EPSV and PASV", feat)
	}
	f.want("215", "SYST")
	f.want("200", "NOOP")
	// The front-end cannot connect out to the client through the load
	// balancer: active mode gets a refusal that points at passive mode.
	for _, active := range []string{"PORT 198,51,100,10,200,10", "EPRT |1|198.51.100.10|51210|"} {
		if r := f.want("502", active); !strings.Contains(r, "passive") {
			t.Errorf("%s: %q, want a refusal pointing at passive mode", active, r)
		}
	}
	f.want("425", "RETR /app1/hostingstart.html")
	f.want("502", "SITE CHMOD 777 x")
	f.want("504", "TYPE E")
}

// F2, F7: PASV names the address the client reached FTP on, never the
// front-end's own, which the client cannot reach through the load
// balancer.
func TestFTPPASVAdvertisesWhereFTPArrives(t *testing.T) {
	for _, c := range []struct{ fe, mode, want string }{
		{"ase1-fe1", "", "192,23,1,2"},
		{"ase3-fe1", topology.ILBModeWebPublishing, "10,0,4,8"},
		{"ase3-fe1", topology.ILBModePublishing, "10,0,4,8"},
		{"ase3-fe1", topology.ILBModeWeb, "192,23,3,2"},
	} {
		topo := topology.Default()
		fe := topo.NodeByName(c.fe)
		if c.mode != "" {
			fe.ASE.ILBMode = c.mode
		}
		n := netx.NewLoopback(c.fe)
		s, err := Start(n, Config{FrontEnd: fe})
		if err != nil {
			t.Fatal(err)
		}
		f := loginFTP(t, n.Addr("tcp", FTPPort))
		reply := f.want("227", "PASV")
		m := regexp.MustCompile(`\((\d+,\d+,\d+,\d+),(\d+),(\d+)\)`).FindStringSubmatch(reply)
		if m == nil {
			t.Fatalf("PASV reply %q has no address", reply)
		}
		hi, _ := strconv.Atoi(m[2])
		lo, _ := strconv.Atoi(m[3])
		if port := hi<<8 | lo; m[1] != c.want || port < FTPDataFirst || port > FTPDataLast {
			t.Errorf("%s %q: PASV gave %s port %d, want %s and a port in %d-%d", c.fe, c.mode, m[1], port, c.want, FTPDataFirst, FTPDataLast)
		}
		s.Close()
	}
}

// The load balancer picks a front-end per connection, so the data
// connection may reach a front-end other than the control connection's.
func TestFTPDataOnAnotherFrontEnd(t *testing.T) {
	topo := topology.Default()
	reg := netx.NewRegistry()
	site := NewFTPSite(nil)
	var fes []*netx.Loopback
	for _, name := range []string{"ase1-fe1", "ase1-fe2"} {
		n := reg.Node(name)
		s, err := Start(n, Config{FrontEnd: topo.NodeByName(name), FTP: site})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fes = append(fes, n)
	}
	f := loginFTP(t, fes[0].Addr("tcp", FTPPort))
	if r := f.put(fes[1], "/app1/via-fe2.txt", []byte("hello")); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR with the data on the other front-end: %q, want 226", r)
	}
	// Another session, on the other front-end, sees the same files.
	g := loginFTP(t, fes[1].Addr("tcp", FTPPort))
	if got := g.get(fes[0], "RETR /app1/via-fe2.txt"); got != "hello" {
		t.Errorf("RETR from ase1-fe2 with data on ase1-fe1: %q, want hello", got)
	}
}

func TestFTPStoreLimit(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	if r := f.put(l.fe, "/app1/big", make([]byte, wwwroot.Limit+1)); !strings.HasPrefix(r, "552 ") {
		t.Errorf("STOR of more than wwwroot.Limit: %q, want 552", r)
	}
	// The refused upload gave back what it had taken.
	if r := f.put(l.fe, "/app1/small", make([]byte, 1000)); !strings.HasPrefix(r, "226 ") {
		t.Errorf("STOR after a refused one: %q, want 226", r)
	}
}

// A transfer waiting for its data connection must not hold Close up.
func TestCloseWithFTPWaitingForData(t *testing.T) {
	topo := topology.Default()
	n := netx.NewLoopback("ase1-fe1")
	s, err := Start(n, Config{FrontEnd: topo.NodeByName("ase1-fe1")})
	if err != nil {
		t.Fatal(err)
	}
	f := loginFTP(t, n.Addr("tcp", FTPPort))
	f.want("229", "EPSV")
	io.WriteString(f.c, "LIST\r\n")
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Close took %v with LIST waiting for its data connection", time.Since(start))
	}
}

// F2: implicit FTPS on 990, with PROT P as curl sends for ftps://: the
// control connection and every data connection are in TLS with the ASE's
// certificate, also when the load balancer sends the data connection to
// another front-end, which shares the session's files.
func TestFTPSListDownloadUpload(t *testing.T) {
	topo := topology.Default()
	cert, err := Certificate(topo.ASEByName("ase1"))
	if err != nil {
		t.Fatal(err)
	}
	reg := netx.NewRegistry()
	site := NewFTPSite(nil)
	var fes []*netx.Loopback
	for _, name := range []string{"ase1-fe1", "ase1-fe2"} {
		n := reg.Node(name)
		s, err := Start(n, Config{FrontEnd: topo.NodeByName(name), Certificate: &cert, FTP: site})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fes = append(fes, n)
	}
	f, c := loginFTPS(t, fes[0].Addr("tcp", FTPSPort))
	if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(cert.Leaf) {
		t.Errorf("990 shows the certificate of %q, want the ASE's, as on 443", got.Subject)
	}
	for _, fe := range fes {
		f.dataCerts = nil
		if got := f.get(fe, "LIST"); !strings.Contains(got, "app1\r\n") {
			t.Errorf("LIST of / in TLS with the data on %s = %q, want the directory app1", fe.Name(), got)
		}
		if len(f.dataCerts) == 0 || !f.dataCerts[0].Equal(cert.Leaf) {
			t.Errorf("the data connection on %s is not in TLS with the ASE's certificate", fe.Name())
		}
	}
	f.want("200", "TYPE I")
	if page := f.get(fes[1], "RETR /app1/hostingstart.html"); !strings.Contains(page, "app1") {
		t.Errorf("RETR in TLS = %q, want app1's start page", page)
	}
	upload := bytes.Repeat([]byte("uploaded by ftps\n"), 10000)
	if r := f.put(fes[1], "/app1/up.txt", upload); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR in TLS: %q, want 226", r)
	}
	// FTP on 21 sees what FTPS stored: one site per ASE.
	g := loginFTP(t, fes[1].Addr("tcp", FTPPort))
	if got := g.get(fes[0], "RETR /app1/up.txt"); got != string(upload) {
		t.Errorf("RETR on 21 of the FTPS upload gave %d bytes, want the %d stored", len(got), len(upload))
	}
	// PROT C: the data connections in clear again.
	f.want("200", "PROT C")
	f.tls = nil
	if got := f.get(fes[0], "NLST /app1"); got != "hostingstart.html\r\nup.txt\r\n" {
		t.Errorf("NLST with PROT C = %q, want hostingstart.html and up.txt", got)
	}
	f.want("221", "QUIT")
}

// RFC 4217: PROT needs PBSZ, both need TLS, and a PROT P client that
// sends no TLS on the data connection gets 425, not a clear transfer.
func TestFTPSRefusals(t *testing.T) {
	l := newLab(t)
	c, err := tls.Dial("tcp", l.fe.Addr("tcp", FTPSPort), ftpsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := &ftpClient{t: t, c: c, r: bufio.NewReader(c)}
	f.read("the banner")
	f.want("503", "PROT P")
	f.want("200", "PBSZ 0")
	f.want("536", "PROT S")
	f.want("504", "PROT X")
	f.want("200", "PROT P")
	f.want("503", "AUTH TLS")
	f.want("331", "USER someone")
	f.want("230", "PASS anything")
	d := f.epsv(l.fe) // in clear: f.tls is not set
	defer d.Close()
	f.want("150", "LIST")
	io.WriteString(d, "not a TLS client hello\r\n")
	f.check("425", "LIST", f.read("LIST"))

	// Plain FTP has no TLS to protect anything with.
	g := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	g.want("503", "PBSZ 0")
	g.want("503", "PROT P")
}

// FTPS on 990 shares 443's certificate, not its ALPN: http.Server adds h2
// and http/1.1 to the TLS configuration it serves with as it starts, and
// FTPS on that same configuration agreed to speak HTTP/2 to a client that
// offered it, while the two raced (go test -race caught it in CI).
func TestFTPSOffersNoHTTPProtocol(t *testing.T) {
	l := newLab(t)
	// An HTTPS request first: 443's server has started, and set up its
	// TLS configuration.
	if resp, _ := l.get(t, "https", HTTPSPort, "app1."+suffix); resp.StatusCode != 200 {
		t.Fatalf("HTTPS to app1: %s", resp.Status)
	}
	cfg := ftpsConfig()
	cfg.NextProtos = []string{"h2", "http/1.1", "ftp"}
	c, err := tls.Dial("tcp", l.fe.Addr("tcp", FTPSPort), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("FTPS agreed to ALPN %q, want none", p)
	}
	f := &ftpClient{t: t, c: c, r: bufio.NewReader(c)}
	f.read("the banner")
}

// Explicit FTPS: AUTH TLS on 21 turns the control connection into TLS,
// after which the session is FTPS's.
func TestFTPAuthTLS(t *testing.T) {
	l := newLab(t)
	c, r, _ := dialLine(t, l.fe.Addr("tcp", FTPPort))
	defer c.Close()
	f := &ftpClient{t: t, c: c, r: r}
	f.want("504", "AUTH KERBEROS")
	f.want("234", "AUTH TLS")
	tc := tls.Client(c, ftpsConfig())
	f.c, f.r = tc, bufio.NewReader(tc)
	f.want("331", "USER someone")
	f.want("230", "PASS anything")
	f.want("200", "PBSZ 0")
	f.want("200", "PROT P")
	f.tls = ftpsConfig()
	if got := f.get(l.fe, "RETR /app1/hostingstart.html"); !strings.Contains(got, "app1") {
		t.Errorf("RETR after AUTH TLS = %q, want app1's start page", got)
	}
	if len(f.dataCerts) == 0 {
		t.Error("after AUTH TLS and PROT P the data connection was not in TLS")
	}
}

// The certificate on 990 is the state's, so that apply renaming the ASE's
// suffix renames it on FTPS as on 443.
func TestFTPSCertificateFollowsUpdate(t *testing.T) {
	l := newLab(t)
	topo := topology.Default()
	fe := topo.NodeByName("ase1-fe1")
	fe.ASE.DNSSuffix = "renamed.p.azurewebsites.net"
	if err := l.srv.Update(fe); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", l.fe.Addr("tcp", FTPSPort), ftpsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.ConnectionState().PeerCertificates[0].VerifyHostname("app1.renamed.p.azurewebsites.net"); err != nil {
		t.Errorf("after the suffix changed, 990's certificate: %v", err)
	}
}

// A command line that never ends must not grow the emulator's memory
// (SPEC §6): past maxLine the server answers 500 and hangs up, and the
// front-end goes on serving.
func TestFTPRefusesEndlessLine(t *testing.T) {
	l := newLab(t)
	c, r, _ := dialLine(t, l.fe.Addr("tcp", FTPPort))
	defer c.Close()
	go func() {
		// Far past maxLine, with no end of line; the write fails once the
		// server hangs up.
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		for range 64 {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	reply, err := r.ReadString('\n')
	if !strings.HasPrefix(reply, "500 ") {
		t.Fatalf("after %d bytes with no end of line: reply %q (%v), want 500", 64*64<<10, reply, err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Errorf("the connection stayed open after the 500")
	}
	loginFTP(t, l.fe.Addr("tcp", FTPPort)).want("221", "QUIT")
}

// A file name is a line of LIST and NLST and of the replies: a control
// character in it (a lone CR, an escape sequence, NUL) would break the
// listing a client parses or the terminal that shows it, so STOR refuses
// it, as IIS's FTP refuses such names.
func TestFTPRefusesControlCharactersInNames(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	for _, name := range []string{"a\rb.txt", "fake\r226 ok", "\x1b[2Jclear.txt", "nul\x00.txt", "del\x7f.txt", "tab\t.txt"} {
		f.want("553", "STOR /app1/"+name)
	}
	if got := f.get(l.fe, "NLST /app1"); got != "hostingstart.html\r\n" {
		t.Errorf("NLST after the refused uploads = %q, want hostingstart.html alone", got)
	}
	if r := f.put(l.fe, "/app1/späße 1.txt", []byte("ok")); !strings.HasPrefix(r, "226 ") {
		t.Errorf("STOR of a name with spaces and letters beyond ASCII: %q, want 226", r)
	}
}

// putCmd uploads data with cmd (STOR or APPE) and returns the final reply.
func (f *ftpClient) putCmd(fe *netx.Loopback, cmd, name string, data []byte) string {
	f.t.Helper()
	d := f.epsv(fe)
	defer d.Close()
	f.want("150", cmd+" "+name)
	d.Write(data)
	d.Close()
	return f.read(cmd + " " + name)
}

var mlsdLine = regexp.MustCompile(`^type=(file|dir);(size=\d+;)?modify=\d{14}; `)

// lftp and FileZilla list with MLSD when FEAT offers MLST (RFC 3659),
// and read its facts, not an ls -l line, for sizes and times.
func TestFTPMLSDAndMLST(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	if feat := f.want("211", "FEAT"); !strings.Contains(feat, " MLST type*;size*;modify*;\r\n") || !strings.Contains(feat, " REST STREAM\r\n") {
		t.Errorf("FEAT = %q, want MLST with type, size and modify, and REST STREAM", feat)
	}
	if r := f.want("200", "OPTS MLST type;size;"); !strings.Contains(r, "MLST OPTS type;size;modify;") {
		t.Errorf("OPTS MLST = %q, want the facts sent named", r)
	}
	if got := f.get(l.fe, "MLSD"); !strings.HasPrefix(got, "type=dir;modify=") || !strings.HasSuffix(got, "; app1\r\n") {
		t.Errorf("MLSD of / = %q, want app1 as a directory", got)
	}
	f.want("250", "CWD app1")
	f.put(l.fe, "up.txt", []byte("12345"))
	got := f.get(l.fe, "MLSD")
	for _, line := range strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n") {
		if !mlsdLine.MatchString(line) {
			t.Errorf("MLSD line %q: want type=...;[size=...;]modify=YYYYMMDDHHMMSS; NAME", line)
		}
	}
	if !strings.Contains(got, "type=file;size=5;") || !strings.HasSuffix(got, "; up.txt\r\n") {
		t.Errorf("MLSD of /app1 = %q, want up.txt as a file of 5 bytes", got)
	}
	f.want("550", "MLSD up.txt")
	f.want("550", "MLSD /nosuchapp")
	r := f.want("250", "MLST up.txt")
	if lines := strings.Split(r, "\r\n"); len(lines) != 4 || !strings.HasPrefix(lines[1], " type=file;size=5;modify=") || !strings.HasSuffix(lines[1], "; /app1/up.txt") {
		t.Errorf("MLST up.txt = %q, want 250- then one line \" type=file;size=5;...; /app1/up.txt\" then 250", r)
	}
	if r := f.want("250", "MLST /app1"); !strings.Contains(r, " type=dir;") {
		t.Errorf("MLST /app1 = %q, want a directory", r)
	}
	f.want("550", "MLST nosuchfile")
}

// REST STREAM resumes a download or an upload from a byte offset; APPE
// adds to a file's end.
func TestFTPRestartAndAppend(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	f.want("250", "CWD app1")
	f.want("200", "TYPE I")
	f.put(l.fe, "f.txt", []byte("hello world"))
	f.want("350", "REST 6")
	if got := f.get(l.fe, "RETR f.txt"); got != "world" {
		t.Errorf("RETR after REST 6 = %q, want world", got)
	}
	if got := f.get(l.fe, "RETR f.txt"); got != "hello world" {
		t.Errorf("RETR after a resumed one = %q, want the whole file: REST is for one transfer", got)
	}
	f.want("350", "REST 5")
	if r := f.putCmd(l.fe, "STOR", "f.txt", []byte(" there")); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR after REST 5: %q, want 226", r)
	}
	if r := f.putCmd(l.fe, "APPE", "f.txt", []byte("!")); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("APPE: %q, want 226", r)
	}
	if r := f.putCmd(l.fe, "APPE", "new.txt", []byte("new")); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("APPE of a file not there: %q, want 226", r)
	}
	if got := f.get(l.fe, "RETR f.txt") + f.get(l.fe, "RETR new.txt"); got != "hello there!new" {
		t.Errorf("after REST 5, STOR \" there\", APPE \"!\" and APPE of new.txt: %q, want \"hello there!\" and \"new\"", got)
	}
	f.want("350", "REST 100")
	f.want("554", "RETR f.txt")
	f.want("350", "REST 100")
	f.want("554", "STOR f.txt")
	f.want("501", "REST -1")
	f.want("501", "REST x")
	f.want("350", "REST 1")
	f.want("553", "APPE /at-the-root.txt")
	f.want("553", "APPE bad\x1bname")
}

// A rename stays in its app's directory, the only one a file can be in,
// and keeps a file it would replace, as Windows does.
func TestFTPRename(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	f.want("250", "CWD app1")
	f.put(l.fe, "a.txt", []byte("aaa"))
	f.put(l.fe, "b.txt", []byte("bbb"))
	f.want("503", "RNTO c.txt")
	f.want("550", "RNFR none.txt")
	f.want("503", "RNTO c.txt")
	f.want("350", "RNFR a.txt")
	f.want("250", "RNTO c.txt")
	if got := f.get(l.fe, "NLST"); got != "b.txt\r\nc.txt\r\nhostingstart.html\r\n" {
		t.Errorf("NLST after RNFR a.txt, RNTO c.txt = %q, want b.txt, c.txt and hostingstart.html", got)
	}
	if got := f.get(l.fe, "RETR c.txt"); got != "aaa" {
		t.Errorf("RETR c.txt = %q, want a.txt's aaa", got)
	}
	f.want("350", "RNFR c.txt")
	f.want("550", "RNTO B.TXT")
	f.want("350", "RNFR c.txt")
	f.want("553", "RNTO /nosuchapp/c.txt")
	f.want("350", "RNFR c.txt")
	f.want("553", "RNTO c\rd.txt")
	f.want("350", "RNFR /app1/c.txt")
	f.want("250", "RNTO /app1/C.TXT")
	if got := f.get(l.fe, "NLST"); !strings.Contains(got, "C.TXT\r\n") {
		t.Errorf("NLST after a rename to C.TXT = %q, want the new case", got)
	}
}

// The new ways of writing (APPE, REST and STOR) keep the store's limit.
func TestFTPAppendAndRestartKeepTheLimit(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	f.want("250", "CWD app1")
	if r := f.put(l.fe, "big", make([]byte, wwwroot.Limit/2)); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR of half the limit: %q", r)
	}
	if r := f.putCmd(l.fe, "APPE", "big", make([]byte, wwwroot.Limit/2)); !strings.HasPrefix(r, "552 ") {
		t.Errorf("APPE past the limit: %q, want 552", r)
	}
	f.want("350", fmt.Sprintf("REST %d", wwwroot.Limit/2))
	if r := f.putCmd(l.fe, "STOR", "big", make([]byte, wwwroot.Limit/2)); !strings.HasPrefix(r, "552 ") {
		t.Errorf("REST and STOR past the limit: %q, want 552", r)
	}
	if r := f.want("213", "SIZE big"); strings.TrimSpace(r) != fmt.Sprintf("213 %d", wwwroot.Limit/2) {
		t.Errorf("SIZE after the refused uploads = %q, want the half there before", r)
	}
}

// What clients send besides transfers: HELP, STAT, ALLO and ABOR.
func TestFTPHelpStatAlloAbor(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	if r := f.want("214", "HELP"); !strings.Contains(r, "MLSD") || !strings.Contains(r, "RNFR") {
		t.Errorf("HELP = %q, want the commands served", r)
	}
	if r := f.want("211", "STAT"); !strings.Contains(r, "passive") {
		t.Errorf("STAT = %q, want the session's status", r)
	}
	if r := f.want("213", "STAT /app1"); !strings.Contains(r, " hostingstart.html\r\n") || !strings.HasPrefix(strings.Split(r, "\r\n")[1], " -rw-r--r--") {
		t.Errorf("STAT /app1 = %q, want app1's listing on the control connection", r)
	}
	f.want("550", "STAT /nosuchapp")
	f.want("202", "ALLO 1000")
	// ABOR with Telnet's IP and Synch before it, as clients send it.
	f.want("225", "\xff\xf4\xff\xf2ABOR")
	// ABOR gives up an open PASV: the next transfer needs another.
	f.want("229", "EPSV")
	f.want("225", "ABOR")
	f.want("425", "RETR /app1/hostingstart.html")
}

// A site has folders (css/, img/): MKD, CWD into them and back, PWD, the
// listings, every transfer with absolute and relative paths, renames
// between folders and of a folder, and RMD of an emptied one.
func TestFTPFolders(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	f.want("200", "TYPE I")
	if r := f.want("257", "MKD /app1/css"); !strings.HasPrefix(r, `257 "/app1/css" `) {
		t.Errorf("MKD /app1/css = %q, want 257 and the new folder's path, quoted", r)
	}
	f.want("250", "CWD app1")
	f.want("257", "XMKD img")
	f.want("257", "MKD img/a")
	f.want("550", "MKD IMG")
	f.want("550", "MKD none/b")
	if r := f.put(l.fe, "css/site.css", []byte("body{}")); !strings.HasPrefix(r, "226 ") || !strings.Contains(r, "/app1/css/site.css") {
		t.Fatalf("STOR css/site.css: %q, want 226 naming /app1/css/site.css", r)
	}
	if r := f.put(l.fe, "/app1/img/a/b.txt", []byte("bee")); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR /app1/img/a/b.txt: %q, want 226", r)
	}
	f.want("550", "STOR none/x.txt")
	f.want("550", "STOR img")
	f.want("553", `STOR img\x.txt`)
	f.want("553", "STOR img/"+strings.Repeat("n", wwwroot.MaxPath)+".txt")
	if got := f.get(l.fe, "LIST"); !regexp.MustCompile(`(?m)^drwxr-xr-x .* css\r$`).MatchString(got) || !regexp.MustCompile(`(?m)^-rw-r--r-- .* hostingstart.html\r$`).MatchString(got) {
		t.Errorf("LIST of /app1 = %q, want css as a directory and hostingstart.html as a file", got)
	}
	if got := f.get(l.fe, "MLSD"); !strings.Contains(got, "type=dir;modify=") || !strings.Contains(got, "; css\r\n") {
		t.Errorf("MLSD of /app1 = %q, want css as type=dir", got)
	}
	f.want("250", "CWD css")
	if r := f.want("257", "PWD"); !strings.Contains(r, `"/app1/css"`) {
		t.Errorf("PWD after CWD css = %q, want /app1/css", r)
	}
	if got := f.get(l.fe, "NLST"); got != "site.css\r\n" {
		t.Errorf("NLST in /app1/css = %q, want site.css", got)
	}
	if got := f.get(l.fe, "RETR SITE.CSS"); got != "body{}" {
		t.Errorf("RETR SITE.CSS in /app1/css = %q, want site.css's body{}", got)
	}
	f.want("213", "SIZE ../img/a/b.txt")
	f.want("213", "MDTM /app1/IMG/a/b.txt")
	f.want("550", "SIZE /app1/img")
	f.want("550", "RETR /app1/img")
	if r := f.want("250", "MLST /app1/img"); !strings.Contains(r, " type=dir;") || !strings.Contains(r, "; /app1/img\r\n") {
		t.Errorf("MLST /app1/img = %q, want a directory", r)
	}
	if r := f.want("250", "MLST ../img/a/b.txt"); !strings.Contains(r, " type=file;size=3;") || !strings.Contains(r, "; /app1/img/a/b.txt\r\n") {
		t.Errorf("MLST ../img/a/b.txt = %q, want the file of 3 bytes at /app1/img/a/b.txt", r)
	}
	f.want("250", "CDUP")
	f.want("250", "CWD ../..")
	if r := f.want("257", "PWD"); !strings.Contains(r, `"/"`) {
		t.Errorf("PWD after CDUP and CWD ../.. from /app1/css = %q, want /, never above it", r)
	}
	f.want("550", "MKD /newapp")
	f.want("550", "CWD /app1/css/site.css")
	f.want("550", "CWD /app1/none")
	f.want("250", "CWD /app1")

	// A file moves between folders; a folder moves with what it holds.
	f.want("350", "RNFR css/site.css")
	f.want("250", "RNTO img/site.css")
	f.want("350", "RNFR img/a")
	f.want("250", "RNTO css/a")
	if got := f.get(l.fe, "RETR /app1/css/a/b.txt") + f.get(l.fe, "RETR img/site.css"); got != "beebody{}" {
		t.Errorf("after moving site.css to img and img/a to css: %q, want b.txt's bee and site.css's body{}", got)
	}
	f.want("350", "RNFR css")
	f.want("553", "RNTO css/a/css")
	f.want("350", "RNFR css")
	f.want("550", "RNTO img")
	f.want("350", "RNFR css")
	f.want("553", "RNTO /nosuchapp/css")

	// A folder goes only empty, and DELE is for files.
	f.want("550", "DELE css")
	f.want("550", "RMD css")
	f.want("550", "RMD css/a/b.txt")
	f.want("550", "RMD /app1")
	f.want("550", "RMD /")
	f.want("250", "DELE css/a/b.txt")
	f.want("250", "RMD css/a")
	f.want("250", "XRMD css")
	f.want("550", "CWD css")
	if got := f.get(l.fe, "NLST"); got != "hostingstart.html\r\nimg\r\n" {
		t.Errorf("NLST of /app1 after the RMDs = %q, want hostingstart.html and img", got)
	}
}

// bigDownload logs in, uploads a file of size bytes and starts its RETR,
// leaving the data connection unread: a client that stalls mid-transfer.
func bigDownload(t *testing.T, l *lab, size int) (*ftpClient, net.Conn) {
	t.Helper()
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	f.want("200", "TYPE I")
	if r := f.put(l.fe, "/app1/big.bin", make([]byte, size)); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR of %d bytes: %q", size, r)
	}
	d := f.epsv(l.fe)
	t.Cleanup(func() { d.Close() })
	f.want("150", "RETR /app1/big.bin")
	return f, d
}

// ABOR is served during a transfer (RFC 959 4.1.3): the transfer ends
// with 426, and ABOR's 226 follows; the data connection is closed. The
// session's loop reads no command until a transfer ends, so ABOR waited
// for the client to read the whole file.
func TestFTPAborDuringTransfer(t *testing.T) {
	l := newLab(t)
	f, d := bigDownload(t, l, 32<<20)
	f.check("426", "ABOR", f.cmd("\xff\xf4\xff\xf2ABOR"))
	f.check("226", "ABOR", f.read("ABOR"))
	d.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, d); err != nil || n >= 32<<20 {
		t.Errorf("after ABOR the data connection gave %d of %d bytes (%v), want it closed before the end", n, 32<<20, err)
	}
	// The session goes on: another command, another transfer.
	f.want("257", "PWD")
	if got := f.get(l.fe, "RETR /app1/hostingstart.html"); !strings.Contains(got, "up and running") {
		t.Errorf("RETR after an aborted one = %q", got)
	}
	f.want("225", "ABOR") // nothing to abort now
}

// A client that closes its control connection mid-transfer ends the
// transfer: the front-end closes the data connection rather than hold it,
// its goroutine and descriptors until dataTimeout. The client reads the
// data slowly, 64 KiB each 10 ms (5 s for the file), so that the transfer
// would end by itself only if the front-end went on with it.
func TestFTPTransferEndsWithItsControlConnection(t *testing.T) {
	l := newLab(t)
	const size = 32 << 20
	f, d := bigDownload(t, l, size)
	f.c.Close()
	d.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64<<10)
	n := 0
	var err error
	for err == nil && n < size {
		var m int
		m, err = d.Read(buf)
		n += m
		time.Sleep(10 * time.Millisecond)
	}
	if n >= size || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("with the control connection closed, the data connection gave %d of %d bytes (%v), want it closed before the end", n, size, err)
	}
}

// LIST, NLST and STAT of a file list that file (RFC 959), as lftp's
// `ls -l FILE` asks; MLSD lists only a directory (RFC 3659 7.2).
func TestFTPListsAFile(t *testing.T) {
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	if got := f.get(l.fe, "LIST /app1/hostingstart.html"); !regexp.MustCompile(`^-rw-r--r-- .* hostingstart\.html\r\n$`).MatchString(got) {
		t.Errorf("LIST /app1/hostingstart.html = %q, want that file's line alone", got)
	}
	f.want("250", "CWD app1")
	if got := f.get(l.fe, "NLST HostingStart.html"); got != "hostingstart.html\r\n" {
		t.Errorf("NLST HostingStart.html = %q, want the file's name", got)
	}
	if r := f.want("213", "STAT hostingstart.html"); !strings.Contains(r, " hostingstart.html\r\n") {
		t.Errorf("STAT hostingstart.html = %q, want the file's line", r)
	}
	f.want("550", "MLSD hostingstart.html")
	f.want("550", "LIST none.html")
}

// A transfer's time is bounded by dataTimeout, not by what was left of
// the idle time the session had when its command came: a client that
// waited before RETR, then read slowly, had its download cut at the
// session's idle deadline.
func TestFTPTransferOutlastsTheIdleDeadline(t *testing.T) {
	// Put back after the lab's cleanup, whose sessions read it.
	old := idleTimeout
	t.Cleanup(func() { idleTimeout = old })
	idleTimeout = time.Second
	l := newLab(t)
	f := loginFTP(t, l.fe.Addr("tcp", FTPPort))
	f.want("200", "TYPE I")
	const size = 4 << 20
	if r := f.put(l.fe, "/app1/big.bin", make([]byte, size)); !strings.HasPrefix(r, "226 ") {
		t.Fatalf("STOR of %d bytes: %q", size, r)
	}
	d := f.epsv(l.fe)
	defer d.Close()
	time.Sleep(700 * time.Millisecond) // most of the idle second gone
	f.want("150", "RETR /app1/big.bin")
	// 64 KiB each 40 ms: 2.6 s for the file, past the idle deadline.
	d.SetDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 64<<10)
	n := 0
	var err error
	for err == nil {
		var m int
		m, err = io.ReadFull(d, buf)
		n += m
		time.Sleep(40 * time.Millisecond)
	}
	if n != size {
		t.Errorf("a slow download begun near the session's idle deadline gave %d of %d bytes (%v)", n, size, err)
	}
	f.check("226", "RETR", f.read("RETR"))
}
