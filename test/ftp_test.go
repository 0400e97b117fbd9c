package test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// F2: FTP through the VIP with a real client. The data connection goes to
// VIP:10001-10020 and the load balancer picks its front-end on its own
// 5-tuple, so some of these transfers have their data on the front-end
// that did not answer the control connection.
func TestFTPThroughVIP(t *testing.T) {
	l := upLab(t)
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-m", "20", "ftp://192.23.1.2/"); r.code != 0 || !strings.Contains(r.stdout, "app1") {
		t.Errorf("curl ftp://192.23.1.2/ from client: want a listing with app1's directory, got %v", r)
	}
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-m", "20", "ftp://192.23.1.2/app1/hostingstart.html"); r.code != 0 || !strings.Contains(r.stdout, "app1") {
		t.Errorf("download of app1/hostingstart.html: want app1's start page, got %v", r)
	}
	body := filepath.Join(t.TempDir(), "upload.txt")
	want := strings.Repeat("uploaded through the VIP\n", 4000)
	if err := os.WriteFile(body, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-m", "20", "-T", body, "ftp://192.23.1.2/app1/"); r.code != 0 {
		t.Fatalf("curl -T upload.txt ftp://192.23.1.2/app1/: %v", r)
	}
	for range 4 {
		if r := l.exec("client", 30*time.Second, "curl", "-sS", "-m", "20", "ftp://192.23.1.2/app1/upload.txt"); r.code != 0 || r.stdout != want {
			t.Errorf("download of the upload: want the %d bytes sent, got exit %d with %d bytes (stderr %q)", len(want), r.code, len(r.stdout), r.stderr)
		}
	}
	// F7: ase3's mode "Web, Publishing" puts FTP on its ILB address, and
	// PASV says so; curl is told to trust the address PASV gives.
	r := l.exec("db1", 30*time.Second, "curl", "-sS", "-v", "-m", "20", "--disable-epsv", "--no-ftp-skip-pasv-ip", "ftp://10.0.4.8/")
	if r.code != 0 || !strings.Contains(r.stdout, "app3") || !strings.Contains(r.stderr, "227 Entering Passive Mode (10,0,4,8,") {
		t.Errorf("F7: db1 -> ftp://10.0.4.8/ with PASV: want app3 listed and PASV advertising 10.0.4.8, got %v", r)
	}
}

// F2, F9: an NSG that lets FTP's control port in but not its data ports.
// The login and a control-only command work (curl -I asks SIZE and MDTM),
// while a listing, which needs a data connection, times out (exit 28).
func TestFTPDataPortsDeniedByNSG(t *testing.T) {
	file := writeTopology(t, "ftp-nsg.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: AllowFTP, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: Internet, destinationPortRange: "21"}`,
		`{name: DenyFTPData, priority: 200, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: Internet, destinationPortRange: 10001-10020}`)...)
	l := upLab(t, "-f", file)
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-I", "-m", "20", "ftp://192.23.1.2/app1/hostingstart.html"); r.code != 0 || !strings.Contains(r.stdout, "Content-Length:") {
		t.Errorf("curl -I (login and SIZE, no data port) through an NSG allowing 21: want exit 0 with the file's size, got %v", r)
	}
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "--connect-timeout", "3", "-m", "20", "ftp://192.23.1.2/"); r.code != 28 || r.stdout != "" {
		t.Errorf("listing with 10001-10020 denied: want curl to time out on the data connection (exit 28) with nothing listed, got %v", r)
	}
}

// F2: implicit FTPS on 990 with a real client. curl's ftps:// sends PBSZ 0
// and PROT P, so its data connections, which the load balancer spreads
// over the front-ends, are in TLS too; the certificate is the ASE's, the
// one 443 shows.
func TestFTPSThroughVIP(t *testing.T) {
	l := upLab(t)
	r := l.exec("client", 30*time.Second, "curl", "-sS", "-k", "-v", "-m", "20", "ftps://192.23.1.2/")
	if r.code != 0 || !strings.Contains(r.stdout, "app1") || !strings.Contains(r.stderr, "PROT P") {
		t.Errorf("curl -k ftps://192.23.1.2/ from client: want a listing with app1's directory over PROT P, got %v", r)
	}
	https := l.exec("client", 30*time.Second, "curl", "-sS", "-k", "-v", "-m", "20", "-o", "/dev/null", "https://192.23.1.2/")
	if cert, want := serverCert(r.stderr), serverCert(https.stderr); cert == "" || cert != want || !strings.Contains(cert, "CN=*.ase1.p.azurewebsites.net") {
		t.Errorf("certificate on 990: %q, want the ASE's, as on 443: %q", cert, want)
	}
	for range 4 {
		if r := l.exec("client", 30*time.Second, "curl", "-sS", "-k", "-m", "20", "ftps://192.23.1.2/app1/hostingstart.html"); r.code != 0 || !strings.Contains(r.stdout, "app1") {
			t.Errorf("curl -k ftps://192.23.1.2/app1/hostingstart.html: want app1's start page, got %v", r)
		}
	}
	body := filepath.Join(t.TempDir(), "upload.txt")
	want := strings.Repeat("uploaded through FTPS\n", 4000)
	if err := os.WriteFile(body, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-k", "-m", "20", "-T", body, "ftps://192.23.1.2/app1/"); r.code != 0 {
		t.Errorf("curl -k -T upload.txt ftps://192.23.1.2/app1/: %v", r)
	}
	// Explicit FTPS (AUTH TLS on 21) reaches the same files.
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-k", "--ssl-reqd", "-m", "20", "ftp://192.23.1.2/app1/upload.txt"); r.code != 0 || r.stdout != want {
		t.Errorf("curl --ssl-reqd ftp://192.23.1.2/app1/upload.txt: want the %d bytes sent over FTPS, got exit %d with %d bytes (stderr %q)", len(want), r.code, len(r.stdout), r.stderr)
	}
	// F7: ase3's mode "Web, Publishing" puts FTPS, like FTP, on its ILB
	// address.
	if r := l.exec("db1", 30*time.Second, "curl", "-sS", "-k", "-m", "20", "ftps://10.0.4.8/"); r.code != 0 || !strings.Contains(r.stdout, "app3") {
		t.Errorf("F7: db1 -> ftps://10.0.4.8/: want app3 listed, got %v", r)
	}
}

// serverCert is the first certificate curl -v describes (FTPS describes
// one per connection): its subject, issuer and dates.
func serverCert(verbose string) string {
	seen := map[string]string{}
	var lines []string
	for _, l := range strings.Split(verbose, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(l, "*"))
		for _, field := range []string{"subject:", "issuer:", "start date:", "expire date:"} {
			if strings.HasPrefix(l, field) && seen[field] == "" {
				seen[field] = l
				lines = append(lines, l)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// F2: what FTP publishes the app serves, as App Service serves a site's
// wwwroot: hello.html uploaded through the VIP is app1's page on both of
// its workers, whichever front-end and worker a request lands on. Deleted,
// its path is the app's JSON answer again, as any path without a file.
func TestFTPPublishesWhatTheAppServes(t *testing.T) {
	l := upLab(t)
	const url = "http://app1.ase1.p.azurewebsites.net/hello.html"
	page := "<html><body>hello from FTP</body></html>\n"
	hello := filepath.Join(t.TempDir(), "hello.html")
	if err := os.WriteFile(hello, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-m", "20", "-T", hello, "ftp://192.23.1.2/app1/"); r.code != 0 {
		t.Fatalf("curl -T hello.html ftp://192.23.1.2/app1/: %v", r)
	}
	served := map[string]bool{}
	for i := 0; i < 12 && len(served) < 2; i++ {
		r := l.exec("client", 20*time.Second, "curl", "-sS", "-i", "-m", "10", url)
		head, body, _ := strings.Cut(r.stdout, "\r\n\r\n")
		worker := headerOf(head, "X-ASE-Worker")
		if r.code != 0 || !strings.HasPrefix(head, "HTTP/1.1 200") || body != page {
			t.Fatalf("curl %s from client (answered by %q): want 200 with the file uploaded over FTP, got %v", url, worker, r)
		}
		if ct := headerOf(head, "Content-Type"); ct != "text/html; charset=utf-8" || headerOf(head, "Content-Length") != strconv.Itoa(len(page)) || headerOf(head, "Last-Modified") == "" {
			t.Errorf("curl %s: want Content-Type text/html; charset=utf-8, Content-Length %d and Last-Modified, got headers %q", url, len(page), head)
		}
		served[worker] = true
	}
	if !served["ase1-w1"] || !served["ase1-w2"] {
		t.Errorf("the file was served by %v: want both of app1's workers, which share the ASE's content", served)
	}
	if r := l.exec("client", 20*time.Second, "curl", "-sS", "-k", "-m", "10", "https://app1.ase1.p.azurewebsites.net/hello.html"); r.code != 0 || r.stdout != page {
		t.Errorf("curl -k https://app1.ase1.p.azurewebsites.net/hello.html: want the file over HTTPS too, got %v", r)
	}
	start := "http://app1.ase1.p.azurewebsites.net/hostingstart.html"
	if r := l.exec("client", 20*time.Second, "curl", "-sS", "-m", "10", start); r.code != 0 || !strings.Contains(r.stdout, "app1 is up and running") {
		t.Errorf("curl %s: want app1's start page, got %v", start, r)
	}
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-m", "20", "-Q", "DELE /app1/hello.html", "ftp://192.23.1.2/"); r.code != 0 {
		t.Fatalf("curl -Q 'DELE /app1/hello.html': %v", r)
	}
	for range 2 {
		if a := l.app("client", url, ""); a.App != "app1" || a.ForwardedFor != "198.51.100.10" {
			t.Errorf("curl %s after DELE: want app1's JSON answer again, got %+v", url, a)
		}
	}
}

// headerOf is the value of the header called name in an HTTP head as
// curl -i prints it.
func headerOf(head, name string) string {
	for _, line := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// F2: lftp, as FileZilla, asks FEAT, lists with MLSD, resumes with REST,
// renames with RNFR and RNTO and deploys a folder with mirror -R: a
// session that does all that through the VIP, then the same over
// explicit FTPS, and on ase3's ILB address from the VNet (F7). With
// cmd:fail-exit, any command that fails ends lftp with an error.
func TestFTPWithLFTP(t *testing.T) {
	l := upLab(t)
	dir := t.TempDir()
	site := filepath.Join(dir, "site")
	big := make([]byte, 300000)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	files := map[string]string{
		"site/index.html": "<html><body>deployed by lftp mirror</body></html>\n",
		"site/site.css":   "body { color: navy }\n",
		"big.bin":         string(big),
		// A resume keeps the bytes already there and adds the rest:
		// these differ from big.bin's, so the result shows that REST
		// was honoured, not the whole file sent again.
		"head.bin":  strings.Repeat("R", 100000),
		"local.bin": strings.Repeat("L", 100000),
		"hello.txt": "hello over lftp\n",
	}
	os.Mkdir(site, 0o755)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	lftp := func(node, addr, settings, script string) result {
		t.Helper()
		return l.exec(node, 90*time.Second, "lftp", "-u", "user,pass", "-e",
			"set cmd:fail-exit true; set net:max-retries 2; set net:timeout 10; "+settings+"; "+script+"; bye", addr)
	}
	plain := "set ftp:ssl-allow no"
	r := lftp("client", "192.23.1.2", plain, strings.Join([]string{
		"mirror -R " + p("site") + " app1",
		"cd app1",
		"put " + p("big.bin"),
		"mv big.bin moved.bin",
		"get -c moved.bin -o " + p("local.bin"),
		"put " + p("head.bin") + " -o resumed.bin",
		"put -c " + p("big.bin") + " -o resumed.bin",
		"get resumed.bin -o " + p("resumed.bin"),
		"rm moved.bin",
		"cls -1",
		"cat index.html",
	}, "; "))
	if r.code != 0 {
		t.Fatalf("lftp through the VIP: %v", r)
	}
	if !strings.Contains(r.stdout, "index.html\nresumed.bin\nsite.css\n") || strings.Contains(r.stdout, "moved.bin") || !strings.Contains(r.stdout, files["site/index.html"]) {
		t.Errorf("lftp cls -1 and cat in app1 after mirror -R, mv and rm: want index.html, resumed.bin and site.css listed (moved.bin gone) and index.html's page, got %v", r)
	}
	if got, _ := os.ReadFile(p("local.bin")); string(got) != files["local.bin"]+string(big[100000:]) {
		t.Errorf("get -c of moved.bin onto 100000 bytes: want them kept and the rest of the file added (REST 100000), got %d bytes", len(got))
	}
	if got, _ := os.ReadFile(p("resumed.bin")); string(got) != files["head.bin"]+string(big[100000:]) {
		t.Errorf("put -c of big.bin onto 100000 bytes already uploaded: want them kept and the rest added (REST 100000 then STOR), got %d bytes", len(got))
	}
	// What mirror -R deployed, the app serves.
	if r := l.exec("client", 20*time.Second, "curl", "-sS", "-m", "10", "http://app1.ase1.p.azurewebsites.net/index.html"); r.stdout != files["site/index.html"] {
		t.Errorf("curl app1's index.html after lftp mirror -R: want the page deployed, got %v", r)
	}

	// Explicit FTPS, the data in TLS too; the lab's certificate is its
	// own, so lftp is told not to verify it.
	tlsOn := "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no"
	r = lftp("client", "192.23.1.2", tlsOn, "cd app1; put "+p("hello.txt")+"; mv hello.txt hello2.txt; cls -1; cat hello2.txt; rm hello2.txt")
	if r.code != 0 || !strings.Contains(r.stdout, "hello2.txt\n") || !strings.Contains(r.stdout, files["hello.txt"]) {
		t.Errorf("lftp over FTPS through the VIP: want hello2.txt listed and read back, got %v", r)
	}
	r = lftp("db1", "10.0.4.8", tlsOn, "cd app3; put "+p("hello.txt")+"; mv hello.txt hello3.txt; cls -l; get -c hello3.txt -o "+p("hello3.txt"))
	if got, _ := os.ReadFile(p("hello3.txt")); r.code != 0 || !strings.Contains(r.stdout, "hello3.txt") || string(got) != files["hello.txt"] {
		t.Errorf("F7: lftp over FTPS from db1 to ase3's ILB address 10.0.4.8: want hello3.txt listed and downloaded, got %v", r)
	}
}

// F2: a site has folders, as App Service's wwwroot has css/ and js/:
// lftp's mirror -R deploys a tree through the VIP (MKD, CWD, STOR in each
// folder), the app serves its files by path from its workers, mirror
// brings the same tree back, and rm -r and rmdir clean it up, rmdir only
// once the folder is empty, as IIS's FTP removes folders.
func TestFTPMirrorsFolders(t *testing.T) {
	l := upLab(t)
	dir := t.TempDir()
	files := map[string]string{
		"index.html":         "<html><body>a site with folders</body></html>\n",
		"css/site.css":       "body { color: navy }\n",
		"img/a/b.txt":        "two folders down\n",
		"my dir/my file.css": "p { margin: 0 }\n",
	}
	site := filepath.Join(dir, "site")
	for name, data := range files {
		p := filepath.Join(site, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(site, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	lftp := func(script string) result {
		t.Helper()
		return l.exec("client", 90*time.Second, "lftp", "-u", "user,pass", "-e",
			"set cmd:fail-exit true; set net:max-retries 2; set net:timeout 10; set ftp:ssl-allow no; "+script+"; bye", "192.23.1.2")
	}
	// --delete takes away hostingstart.html, which the site does not
	// have, so that the tree mirrored back is the site's alone.
	if r := lftp("mirror -R --delete " + site + " app1"); r.code != 0 {
		t.Fatalf("lftp mirror -R --delete of a site with folders through the VIP: %v", r)
	}
	for name, data := range files {
		url := "http://app1.ase1.p.azurewebsites.net/" + strings.ReplaceAll(name, " ", "%20")
		if r := l.exec("client", 20*time.Second, "curl", "-sS", "-m", "10", url); r.code != 0 || r.stdout != data {
			t.Errorf("curl %s after mirror -R: want the %q deployed, got %v", url, data, r)
		}
	}
	if r := l.exec("client", 20*time.Second, "curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "http://app1.ase1.p.azurewebsites.net/css/"); r.stdout != "403" {
		t.Errorf("curl http://app1.ase1.p.azurewebsites.net/css/: want 403, a folder with no default document, got %v", r)
	}
	down := filepath.Join(dir, "down")
	if r := lftp("mirror app1 " + down); r.code != 0 {
		t.Fatalf("lftp mirror of app1 back down: %v", r)
	}
	if r := l.exec("client", 20*time.Second, "diff", "-r", site, down); r.code != 0 {
		t.Errorf("diff -r of the site and app1 mirrored back: want the same tree, got %v", r)
	}
	if r := lftp("rmdir app1/img"); r.code == 0 || !strings.Contains(r.stderr, "550") {
		t.Errorf("lftp rmdir app1/img, which holds a folder: want it refused with 550, got %v", r)
	}
	r := lftp("rm -r app1/img; rmdir app1/empty; cd app1; mv css/site.css site.css; rmdir css; cls -1")
	if want := "index.html\nmy dir/\nsite.css\n"; r.code != 0 || r.stdout != want {
		t.Errorf("lftp rm -r img, rmdir empty, mv css/site.css out and rmdir css; cls -1: want %q, got %v", want, r)
	}
	if a := l.app("client", "http://app1.ase1.p.azurewebsites.net/img/a/b.txt", ""); a.App != "app1" {
		t.Errorf("curl /img/a/b.txt after rm -r img: want app1's JSON answer, got %+v", a)
	}
	// curl makes the folders an upload goes into when told to (MKD).
	css := filepath.Join(site, "css", "site.css")
	if r := l.exec("client", 30*time.Second, "curl", "-sS", "-m", "20", "--ftp-create-dirs", "-T", css, "ftp://192.23.1.2/app1/js/lib/"); r.code != 0 {
		t.Errorf("curl --ftp-create-dirs -T site.css ftp://192.23.1.2/app1/js/lib/: %v", r)
	}
	if r := l.exec("client", 20*time.Second, "curl", "-sS", "-m", "10", "http://app1.ase1.p.azurewebsites.net/js/lib/site.css"); r.stdout != files["css/site.css"] {
		t.Errorf("curl /js/lib/site.css after curl --ftp-create-dirs made its folders: want the file, got %v", r)
	}
}
