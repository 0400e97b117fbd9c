package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/wwwroot"
	"github.com/aseemu/emulator/topology"
)

const suffix = "ase1.p.azurewebsites.net"

func startWorker(t *testing.T, reg *netx.Registry) (*Server, *netx.Loopback) {
	t.Helper()
	n := reg.Node("ase1-w1", "10.0.1.6")
	s, err := Start(n, Config{Worker: "ase1-w1", Address: netip.MustParseAddr("10.0.1.6"), ASE: "ase1", DNSSuffix: suffix, Apps: []string{"app1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, n
}

// get calls the worker's port 80 directly, as a front-end would, with the
// given Host header and extra headers.
func get(t *testing.T, n *netx.Loopback, host, path string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+n.Addr("tcp", 80)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAppAnswersByHostAsJSON(t *testing.T) { // F4
	_, n := startWorker(t, netx.NewRegistry())
	for _, host := range []string{"app1." + suffix, "APP1.ASE1.P.AzureWebsites.NET:80", "app1." + suffix + "."} {
		code, body := get(t, n, host, "/", "X-Forwarded-For", "198.51.100.10", "X-Forwarded-Proto", "https")
		if code != 200 {
			t.Fatalf("Host %s: status %d, body %s", host, code, body)
		}
		if !strings.Contains(body, `"worker":"ase1-w1"`) {
			t.Errorf("Host %s: JSON is not one grep-able line: %s", host, body)
		}
		var a Answer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("Host %s: answer is not JSON: %v: %s", host, err, body)
		}
		if a.App != "app1" || a.ASE != "ase1" || a.Worker != "ase1-w1" || a.WorkerAddress != "10.0.1.6" {
			t.Errorf("Host %s: answered as %s/%s on %s (%s), want app1/ase1 on ase1-w1 (10.0.1.6)", host, a.App, a.ASE, a.Worker, a.WorkerAddress)
		}
		if !strings.HasPrefix(a.Client, "127.0.0.1:") {
			t.Errorf("Host %s: client = %q, want the TCP peer 127.0.0.1:PORT", host, a.Client)
		}
		if a.ForwardedFor != "198.51.100.10" || a.ForwardedProto != "https" {
			t.Errorf("Host %s: forwardedFor %q proto %q, want 198.51.100.10 and https", host, a.ForwardedFor, a.ForwardedProto)
		}
	}
}

func TestAppAnswersKuduName(t *testing.T) {
	_, n := startWorker(t, netx.NewRegistry())
	code, body := get(t, n, "app1.scm."+suffix, "/")
	var a Answer
	json.Unmarshal([]byte(body), &a)
	if code != 200 || a.App != "app1" || !a.Kudu {
		t.Errorf("app1.scm.%s: status %d, %s; want app1 with kudu set", suffix, code, body)
	}
}

func TestAppAnswersOneLineOfText(t *testing.T) {
	_, n := startWorker(t, netx.NewRegistry())
	host := "app1." + suffix
	for _, c := range []struct {
		path string
		hdr  []string
		want string
	}{
		{"/", []string{"Accept", "text/plain", "X-Forwarded-For", "198.51.100.10"}, "app1 on ase1-w1 (10.0.1.6): you are 127.0.0.1, forwarded for 198.51.100.10\n"},
		{"/?format=text", nil, "app1 on ase1-w1 (10.0.1.6): you are 127.0.0.1\n"},
	} {
		code, body := get(t, n, host, c.path, c.hdr...)
		if code != 200 || body != c.want {
			t.Errorf("GET %s %v: %d %q, want %q", c.path, c.hdr, code, body, c.want)
		}
	}
	// curl sends Accept: */*, which gets JSON.
	if _, body := get(t, n, host, "/", "Accept", "*/*"); !strings.HasPrefix(body, "{") {
		t.Errorf("Accept */* got %q, want JSON", body)
	}
}

func TestUnknownHostNamesWorkerAndItsApps(t *testing.T) {
	_, n := startWorker(t, netx.NewRegistry())
	for _, host := range []string{"app2." + suffix, "app1.ase2.p.azurewebsites.net", "10.0.1.6", "a.b." + suffix} {
		code, body := get(t, n, host, "/")
		if code != 404 || !strings.Contains(body, "ase1-w1") || !strings.Contains(body, "app1") {
			t.Errorf("Host %s: %d %q, want 404 naming ase1-w1 and its app app1", host, code, body)
		}
	}
}

func TestOutboundCallsThroughNet(t *testing.T) { // F3: the call leaves from the worker's own Net
	reg := netx.NewRegistry()
	_, n := startWorker(t, reg)

	// "echo" exists only on the pretend network: reaching it proves the
	// worker dialled through its Net.
	echo := reg.Node("echo.example.net", "203.0.113.10")
	l, err := echo.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	var g netx.Group
	g.ServeHTTP(l, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		io.WriteString(w, host+"\n")
	})}, false)
	defer g.Close()

	host := "app1." + suffix
	code, body := get(t, n, host, "/outbound?url=http://echo.example.net/")
	var a OutboundAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("outbound answer is not JSON: %v: %s", err, body)
	}
	if code != 200 || a.Status != 200 || a.Body != "127.0.0.1\n" || a.Worker != "ase1-w1" || a.App != "app1" {
		t.Errorf("outbound to echo: %d %+v, want 200 with echo's body 127.0.0.1", code, a)
	}

	code, body = get(t, n, host, "/outbound?url=http://echo.example.net/&format=text")
	if want := "app1 on ase1-w1 (10.0.1.6): GET http://echo.example.net/: 200 OK\n127.0.0.1\n"; code != 200 || body != want {
		t.Errorf("outbound as text: %d %q, want %q", code, body, want)
	}

	// The remote's own answer comes back, not the page it redirects to.
	_, body = get(t, n, host, "/outbound?url=http://echo.example.net/moved")
	json.Unmarshal([]byte(body), &a)
	if a.Status != http.StatusFound {
		t.Errorf("outbound to a redirect: status %d, want 302", a.Status)
	}

	code, body = get(t, n, host, "/outbound?url=http://azure-sql.example.net/")
	if code != http.StatusBadGateway || !strings.Contains(body, "azure-sql.example.net") {
		t.Errorf("outbound to an unreachable host: %d %s, want 502 with the error", code, body)
	}
	for _, bad := range []string{"/outbound", "/outbound?url=ftp://echo.example.net/", "/outbound?url=echo.example.net"} {
		if code, body := get(t, n, host, bad); code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", bad, code, body)
		}
	}
}

func TestOutboundTimesOut(t *testing.T) {
	reg := netx.NewRegistry()
	w := reg.Node("ase1-w1")
	s, err := Start(w, Config{Worker: "ase1-w1", ASE: "ase1", DNSSuffix: suffix, Apps: []string{"app1"}, OutboundTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A server that accepts and never answers.
	slow := reg.Node("slow")
	l, err := slow.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	var g netx.Group
	g.Serve(l, func(c net.Conn) { io.Copy(io.Discard, c) })
	defer g.Close()

	start := time.Now()
	code, body := get(t, w, "app1."+suffix, "/outbound?url=http://slow/")
	if code != http.StatusBadGateway || time.Since(start) > 5*time.Second {
		t.Errorf("outbound to a silent server: %d %s after %v, want 502 after the timeout", code, body, time.Since(start))
	}
}

func TestUpdateMovesApps(t *testing.T) { // F4: apps move between workers
	s, n := startWorker(t, netx.NewRegistry())
	s.Update(Config{Worker: "ase1-w1", Address: netip.MustParseAddr("10.0.1.6"), ASE: "ase1", DNSSuffix: suffix, Apps: []string{"app9"}})
	if code, _ := get(t, n, "app1."+suffix, "/"); code != 404 {
		t.Errorf("app1 moved away but still answers (%d)", code)
	}
	if code, _ := get(t, n, "app9."+suffix, "/"); code != 200 {
		t.Errorf("app9 moved here but does not answer (%d)", code)
	}
}

func TestConfigForDefaultLab(t *testing.T) {
	topo := topology.Default()
	cfg := ConfigFor(topo.NodeByName("ase1-w2"))
	if cfg.Worker != "ase1-w2" || cfg.Address.String() != "10.0.1.7" || cfg.ASE != "ase1" || cfg.DNSSuffix != suffix || len(cfg.Apps) != 1 || cfg.Apps[0] != "app1" {
		t.Errorf("ase1-w2: %+v", cfg)
	}
	cfg = ConfigFor(topo.NodeByName("ase3-w1"))
	if cfg.DNSSuffix != "ase3.internal" || len(cfg.Apps) != 1 || cfg.Apps[0] != "app3" {
		t.Errorf("ase3-w1: %+v", cfg)
	}
}

func TestStartFailsOnTakenPort(t *testing.T) {
	n := netx.NewLoopback("ase1-w1")
	l, err := n.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Start(n, Config{Worker: "ase1-w1"}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Start on a taken port: err = %v, want address in use", err)
	}
}

func TestParseHost(t *testing.T) {
	for _, c := range []struct {
		host, app string
		kudu, ok  bool
	}{
		{"app1.ase1.p.azurewebsites.net", "app1", false, true},
		{"App1.ASE1.p.azurewebsites.net:443", "app1", false, true},
		{"app1.scm.ase1.p.azurewebsites.net", "app1", true, true},
		{"app1.ase1.p.azurewebsites.net.", "app1", false, true},
		{"ase1.p.azurewebsites.net", "", false, false},
		{"scm.ase1.p.azurewebsites.net", "", false, false},
		{"x.app1.ase1.p.azurewebsites.net", "", false, false},
		{"app1xase1.p.azurewebsites.net", "", false, false},
		{"192.23.1.2", "", false, false},
		{"", "", false, false},
	} {
		app, kudu, ok := ParseHost(c.host, suffix)
		if app != c.app || kudu != c.kudu || ok != c.ok {
			t.Errorf("ParseHost(%q) = %q, %v, %v; want %q, %v, %v", c.host, app, kudu, ok, c.app, c.kudu, c.ok)
		}
	}
}

// Bulk transfers: an upload is read to its end and counted, and /download
// sends the bytes asked for (and refuses a count it cannot send).
func TestUploadAndDownload(t *testing.T) {
	_, n := startWorker(t, netx.NewRegistry())
	c := &http.Client{Timeout: 10 * time.Second}
	req, err := http.NewRequest("POST", "http://"+n.Addr("tcp", 80)+"/", strings.NewReader(strings.Repeat("x", 3<<20)))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "app1." + suffix
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a Answer
	err = json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if err != nil || a.Received != 3<<20 {
		t.Errorf("POST of 3 MiB: answer %+v (%v), want received %d", a, err, 3<<20)
	}
	code, body := get(t, n, "app1."+suffix, "/download?bytes=100000")
	if code != http.StatusOK || len(body) != 100000 {
		t.Errorf("/download?bytes=100000: %d with %d bytes, want 200 with 100000", code, len(body))
	}
	for _, q := range []string{"", "?bytes=-1", "?bytes=x", "?bytes=1073741825"} {
		if code, _ := get(t, n, "app1."+suffix, "/download"+q); code != http.StatusBadRequest {
			t.Errorf("/download%s: %d, want 400", q, code)
		}
	}
}

// call sends method to the worker's port 80 with the given Host header,
// and returns the answer with its body read.
func call(t *testing.T, n *netx.Loopback, method, host, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.Addr("tcp", 80)+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	// A redirect is the answer to check, not one to follow.
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// What FTP stores in the ASE's content, every worker of the app serves:
// the instances of an App Service app share their wwwroot.
func TestAppServesItsContent(t *testing.T) {
	reg := netx.NewRegistry()
	content := wwwroot.New()
	var workers []*netx.Loopback
	for i, addr := range []string{"10.0.1.6", "10.0.1.7"} {
		name := fmt.Sprintf("ase1-w%d", i+1)
		n := reg.Node(name, addr)
		s, err := Start(n, Config{Worker: name, Address: netip.MustParseAddr(addr), ASE: "ase1", DNSSuffix: suffix, Apps: []string{"app1"}, Content: content})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		workers = append(workers, n)
	}
	const page = "<h1>hello</h1>\n"
	if _, err := content.Put("app1", "hello.html", strings.NewReader(page)); err != nil {
		t.Fatal(err)
	}
	host := "app1." + suffix
	for _, n := range workers {
		resp, body := call(t, n, "GET", host, "/hello.html")
		if resp.StatusCode != 200 || body != page {
			t.Errorf("GET /hello.html on %s: %d %q, want 200 with the uploaded file", resp.Header.Get("X-ASE-Worker"), resp.StatusCode, body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("GET /hello.html: Content-Type %q, want text/html; charset=utf-8 from the extension", ct)
		}
		if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(page)) {
			t.Errorf("GET /hello.html: Content-Length %q, want %d", cl, len(page))
		}
		if _, err := http.ParseTime(resp.Header.Get("Last-Modified")); err != nil {
			t.Errorf("GET /hello.html: Last-Modified %q: %v", resp.Header.Get("Last-Modified"), err)
		}
		resp, body = call(t, n, "HEAD", "APP1.ase1.p.azurewebsites.net", "/hello.html")
		if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len(page)) {
			t.Errorf("HEAD /hello.html: %d, %d bytes, Content-Length %d; want 200, no body, %d", resp.StatusCode, len(body), resp.ContentLength, len(page))
		}
		if resp, body := call(t, n, "GET", host, "/hostingstart.html"); resp.StatusCode != 200 || !strings.Contains(body, "app1 is up and running") {
			t.Errorf("GET /hostingstart.html: %d %q, want app1's start page", resp.StatusCode, body)
		}
	}

	n := workers[0]
	// The JSON answer stays where no file is: "/", unknown names, paths
	// in directories, other methods, and Kudu's name.
	for _, c := range []struct{ method, host, path string }{
		{"GET", host, "/"},
		{"GET", host, "/nothing.html"},
		{"GET", host, "/sub/hello.html"},
		{"POST", host, "/hello.html"},
		{"GET", "app1.scm." + suffix, "/hello.html"},
	} {
		resp, body := call(t, n, c.method, c.host, c.path)
		var a Answer
		if err := json.Unmarshal([]byte(body), &a); err != nil || resp.StatusCode != 200 || a.App != "app1" {
			t.Errorf("%s %s%s: %d %q, want the app's JSON answer", c.method, c.host, c.path, resp.StatusCode, body)
		}
	}
	// The worker's instruments win over files of their names.
	for _, name := range []string{"outbound", "download"} {
		if _, err := content.Put("app1", name, strings.NewReader("a file called "+name)); err != nil {
			t.Fatal(err)
		}
		if resp, body := call(t, n, "GET", host, "/"+name); resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "a file called") {
			t.Errorf("GET /%s with a file of that name: %d %q, want the built-in's 400, not the file", name, resp.StatusCode, body)
		}
	}
	// Deleted, the file is gone from every worker, and the path answers
	// JSON again.
	content.Delete("app1", "hello.html")
	for _, n := range workers {
		if _, body := call(t, n, "GET", host, "/hello.html"); !strings.HasPrefix(body, `{"app":"app1"`) {
			t.Errorf("GET /hello.html after its delete: %q, want the JSON answer", body)
		}
	}
}

// A site's folders are served as IIS serves them: a file by its path,
// decoded and in any case; a folder's URL redirected to end in a slash,
// then its default document, or 403 without one, as directory browsing
// is off. Nothing past the app's content is reached by any URL.
func TestAppServesFolders(t *testing.T) {
	reg := netx.NewRegistry()
	content := wwwroot.New()
	n := reg.Node("ase1-w1", "10.0.1.6")
	s, err := Start(n, Config{Worker: "ase1-w1", Address: netip.MustParseAddr("10.0.1.6"), ASE: "ase1", DNSSuffix: suffix, Apps: []string{"app1", "app2"}, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, d := range []string{"css", "my dir", "about", "empty"} {
		if _, err := content.Mkdir("app1", d); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"css/site.css":            "body { color: navy }\n",
		"my dir/my file.css":      "p {}\n",
		"about/index.html":        "<h1>about</h1>\n",
		"about/hostingstart.html": "not the default while index.html is there\n",
	}
	for p, data := range files {
		if _, err := content.Put("app1", p, strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := content.Put("app2", "secret.txt", strings.NewReader("app2's")); err != nil {
		t.Fatal(err)
	}
	host := "app1." + suffix
	for _, c := range []struct{ method, path, file, ctype string }{
		{"GET", "/css/site.css", "css/site.css", "text/css; charset=utf-8"},
		{"GET", "/CSS/Site.CSS", "css/site.css", "text/css; charset=utf-8"},
		{"GET", "/my%20dir/my%20file.css", "my dir/my file.css", "text/css; charset=utf-8"},
		{"GET", "/about/", "about/index.html", "text/html; charset=utf-8"},
		{"HEAD", "/css/site.css", "css/site.css", "text/css; charset=utf-8"},
	} {
		resp, body := call(t, n, c.method, host, c.path)
		want := files[c.file]
		if c.method == "HEAD" {
			want = ""
		}
		if resp.StatusCode != 200 || body != want || resp.Header.Get("Content-Type") != c.ctype {
			t.Errorf("%s %s: %d %q (%s), want 200 with %s (%s)", c.method, c.path, resp.StatusCode, body, resp.Header.Get("Content-Type"), c.file, c.ctype)
		}
	}
	if resp, _ := call(t, n, "GET", host, "/about?x=1"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/about/?x=1" {
		t.Errorf("GET /about: %d to %q, want 301 to /about/?x=1, as IIS redirects a folder's URL", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := call(t, n, "GET", host, "/my%20dir"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/my%20dir/" {
		t.Errorf("GET /my%%20dir: %d to %q, want 301 to /my%%20dir/", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/css/", "/empty/"} {
		if resp, body := call(t, n, "GET", host, p); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "default document") {
			t.Errorf("GET %s: %d %q, want 403: a folder without a default document, and no directory browsing", p, resp.StatusCode, body)
		}
	}
	// No file there, or no path to one: the app's JSON answer.
	for _, p := range []string{
		"/css/site.css/", "/css/none.css", "/none/site.css", "//css/site.css", "/css//site.css",
		"/css/../hostingstart.html", "/css/%2e%2e/hostingstart.html", "/../app2/secret.txt",
		"/%2e%2e/app2/secret.txt", "/..%2fapp2%2fsecret.txt", "/css%5c..%5c..%5capp2%5csecret.txt",
	} {
		resp, body := call(t, n, "GET", host, p)
		var a Answer
		if err := json.Unmarshal([]byte(body), &a); err != nil || resp.StatusCode != 200 || a.App != "app1" {
			t.Errorf("GET %s: %d %q, want the app's JSON answer", p, resp.StatusCode, body)
		}
	}
}

// The content is the ASE's: a worker keeps it when apps move (Update).
func TestUpdateKeepsContent(t *testing.T) {
	reg := netx.NewRegistry()
	content := wwwroot.New()
	n := reg.Node("ase1-w1", "10.0.1.6")
	cfg := Config{Worker: "ase1-w1", Address: netip.MustParseAddr("10.0.1.6"), ASE: "ase1", DNSSuffix: suffix, Apps: []string{"app1"}, Content: content}
	s, err := Start(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	content.Put("app9", "moved.txt", strings.NewReader("still here"))
	cfg.Apps, cfg.Content = []string{"app1", "app9"}, nil // as ConfigFor makes it
	s.Update(cfg)
	if _, body := get(t, n, "app9."+suffix, "/moved.txt"); body != "still here" {
		t.Errorf("GET app9/moved.txt after Update: %q, want the ASE's file", body)
	}
}
