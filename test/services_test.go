package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond every 250 ms until it holds or d passes, and reports
// whether it held.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(250 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// aseJSON is one ASE of `status --json`.
type aseJSON struct {
	Name      string   `json:"name"`
	Health    string   `json:"health"`
	Problems  []string `json:"problems"`
	FrontEnds []struct {
		Name       string `json:"name"`
		InRotation bool   `json:"inRotation"`
		LastError  string `json:"lastError"`
	} `json:"frontEnds"`
}

// aseHealthIs returns a condition for waitFor: ASE name's health is
// health and, when problem is not empty, one of its problems names it.
func (l *lab) aseHealthIs(name, health, problem string) func() bool {
	return func() bool {
		a := l.ase(name)
		return a.Health == health && strings.Contains(strings.Join(a.Problems, "\n"), problem)
	}
}

func (l *lab) ase(name string) aseJSON {
	l.t.Helper()
	var s struct {
		ASEs []aseJSON `json:"ases"`
	}
	l.emuJSON(&s, "status")
	for _, a := range s.ASEs {
		if a.Name == name {
			return a
		}
	}
	l.t.Fatalf("status lists no ASE %s", name)
	return aseJSON{}
}

// F6 + F3, the article's nslookup check: the app's name resolves to the
// VIP, and the app's own outbound call leaves with that same address.
func TestAppNameAndOutboundAddress(t *testing.T) {
	l := upLab(t)
	r := l.exec("client", 20*time.Second, "nslookup", "app1.ase1.p.azurewebsites.net")
	if !regexp.MustCompile(`Address: 192\.23\.1\.2\b`).MatchString(r.stdout) {
		t.Errorf("F6: nslookup app1.ase1.p.azurewebsites.net from client: want 192.23.1.2, got %v", r)
	}
	r = l.exec("client", 20*time.Second, "curl", "-s", "-m", "10", "http://app1.ase1.p.azurewebsites.net/outbound?url=http://echo.example.net/")
	var out struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Status != 200 || strings.TrimSpace(out.Body) != "192.23.1.2" {
		t.Errorf("F3: app1's outbound call should reach echo from 192.23.1.2, got %v", r)
	}
}

// F2: the client reaches app1 through the VIP on HTTP and HTTPS, answered
// by a worker, with its address in X-Forwarded-For.
func TestAppThroughVIP(t *testing.T) {
	l := upLab(t)
	for _, url := range []string{"http://app1.ase1.p.azurewebsites.net/", "https://app1.ase1.p.azurewebsites.net/"} {
		a := l.app("client", url, "")
		if a.App != "app1" || (a.Worker != "ase1-w1" && a.Worker != "ase1-w2") || a.ForwardedFor != "198.51.100.10" {
			t.Errorf("%s from client: want app1 on ase1-w1 or -w2 with X-Forwarded-For 198.51.100.10, got %+v", url, a)
		}
	}
	// Bulk transfers through the VIP, a front-end and a worker, both ways,
	// as curl measures them: an upload's body is read (answered unread,
	// curl's Expect: 100-continue sent nothing), and /download sends N
	// bytes.
	body := filepath.Join(t.TempDir(), "upload.bin")
	if err := os.WriteFile(body, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{"http://app1.ase1.p.azurewebsites.net/", "https://app1.ase1.p.azurewebsites.net/"} {
		r := l.exec("client", 30*time.Second, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code} %{size_upload}", "--data-binary", "@"+body, url)
		if r.stdout != "200 8388608" {
			t.Errorf("upload of 8 MiB to %s from client: want 200 and all of it sent, got %q (%v)", url, r.stdout, r)
		}
		r = l.exec("client", 30*time.Second, "curl", "-sk", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url+"download?bytes=20000000")
		if r.stdout != "200 20000000" {
			t.Errorf("download of 20 MB from %sdownload: want 200 and 20000000 bytes, got %q (%v)", url, r.stdout, r)
		}
	}
	// Each F2 port lands somewhere a learner can see with nc.
	for port, banner := range map[string]string{"21": "FTP", "4018": "2013"} {
		r := l.exec("client", 20*time.Second, "nc", "-w", "3", "192.23.1.2", port)
		if !strings.Contains(r.stdout, banner) || !strings.Contains(r.stdout, "ase1-fe") {
			t.Errorf("nc to the VIP's port %s: want a front-end's banner mentioning %s, got %v", port, banner, r)
		}
	}
}

// F7: app3 on the ILB ASE is reached from the VNet by name, and its name,
// like a VNet machine's, does not exist outside the VNet: Azure DNS answers
// it inside the VNet alone.
func TestILBAppByName(t *testing.T) {
	l := upLab(t)
	if a := l.app("db1", "http://app3.ase3.internal/", ""); a.App != "app3" || !strings.HasPrefix(a.Worker, "ase3-w") {
		t.Errorf("F7: db1 -> app3.ase3.internal: got %+v", a)
	}
	if r := l.exec("db1", 20*time.Second, "nslookup", "app3.ase3.internal"); !strings.Contains(r.stdout, "10.0.4.8") {
		t.Errorf("from db1, app3.ase3.internal should resolve to the ILB address 10.0.4.8, got %v", r)
	}
	for _, name := range []string{"app3.ase3.internal", "db1.internal.cloudapp.net"} {
		if r := l.exec("client", 20*time.Second, "nslookup", name); r.code == 0 || !strings.Contains(r.stdout, "NXDOMAIN") {
			t.Errorf("from client, on the Internet, %s should not exist (NXDOMAIN), got %v", name, r)
		}
	}
	if r := l.exec("client", 20*time.Second, "nslookup", "app1.ase1.p.azurewebsites.net"); !strings.Contains(r.stdout, "192.23.1.2") {
		t.Errorf("from client, an External ASE's app should still resolve to its VIP, got %v", r)
	}
	l.curlFails("client", "http://app3.ase3.internal/")
}

// F5 by name: app2 sees ase1's call arrive from ase1's VIP.
func TestASEToASEByName(t *testing.T) {
	l := upLab(t)
	if a := l.app("ase1-w1", "http://app2.ase2.p.azurewebsites.net/", ""); a.App != "app2" || a.ForwardedFor != "192.23.1.2" {
		t.Errorf("F5: ase1 -> app2 by name: want X-Forwarded-For 192.23.1.2, got %+v", a)
	}
}

// F15: an NSG denying the load balancer's probes takes both front-ends out
// of rotation and the VIP stops answering; removing it restores service.
func TestProbesAndRotation(t *testing.T) {
	l := upLab(t)
	deny := writeTopology(t, "deny-lb.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyLoadBalancer, priority: 100, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: AzureLoadBalancer}`,
		`{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`)...)
	if r := emu(t, "apply", "--name", l.name, "-f", deny); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	out := func() bool {
		a := l.ase("ase1")
		return len(a.FrontEnds) == 2 && !a.FrontEnds[0].InRotation && !a.FrontEnds[1].InRotation
	}
	if !waitFor(15*time.Second, out) {
		t.Fatalf("F15: with the probes denied, both front-ends should leave rotation: %+v", l.ase("ase1"))
	}
	l.curlFails("client", "http://app1.ase1.p.azurewebsites.net/")
	allow := writeTopology(t, "allow-lb.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`)...)
	if r := emu(t, "apply", "--name", l.name, "-f", allow); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if !waitFor(15*time.Second, func() bool { a := l.ase("ase1"); return a.FrontEnds[0].InRotation && a.FrontEnds[1].InRotation }) {
		t.Fatalf("F15: with the probes allowed again, the front-ends should come back: %+v", l.ase("ase1"))
	}
	l.app("client", "http://app1.ase1.p.azurewebsites.net/", "")
}

// F15, F4: a front-end that left rotation and was then scaled away comes
// back in rotation when the ASE scales out again and its probes answer.
// Before, the dataplane kept the old front-end's "out of rotation" under
// its name: the new ase1-fe2 showed in rotation in status and never got a
// connection.
func TestScaledBackFrontEndTakesTraffic(t *testing.T) {
	l := upLab(t)
	allowInternet := `{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`
	deny := writeTopology(t, "deny-lb.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyLoadBalancer, priority: 100, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: AzureLoadBalancer}`, allowInternet)...)
	if r := emu(t, "apply", "--name", l.name, "-f", deny); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if !waitFor(15*time.Second, func() bool { a := l.ase("ase1"); return !a.FrontEnds[0].InRotation && !a.FrontEnds[1].InRotation }) {
		t.Fatalf("F15: with the probes denied, both front-ends should leave rotation: %+v", l.ase("ase1"))
	}
	one := writeTopology(t, "one.yaml", append(withNSG("10.0.1.0/26", "ase1-nsg", allowInternet), "    frontEnds: 2\n", "    frontEnds: 1\n")...)
	if r := emu(t, "apply", "--name", l.name, "-f", one); r.code != 0 || !strings.Contains(r.stdout, "removed ase1-fe2") {
		t.Fatalf("apply with 1 front-end: %v", r)
	}
	if !waitFor(15*time.Second, func() bool { return l.ase("ase1").FrontEnds[0].InRotation }) {
		t.Fatalf("F15: with the probes allowed, ase1-fe1 should come back: %+v", l.ase("ase1"))
	}
	two := writeTopology(t, "two.yaml", withNSG("10.0.1.0/26", "ase1-nsg", allowInternet)...)
	if r := emu(t, "apply", "--name", l.name, "-f", two); r.code != 0 || !strings.Contains(r.stdout, "added ase1-fe2") {
		t.Fatalf("apply with 2 front-ends: %v", r)
	}
	if !waitFor(15*time.Second, func() bool { a := l.ase("ase1"); return len(a.FrontEnds) == 2 && a.FrontEnds[1].InRotation }) {
		t.Fatalf("F15: the new ase1-fe2 answers its probes and should be in rotation: %+v", l.ase("ase1"))
	}
	// The VIP spreads connections by a hash of the 5-tuple, so among 30
	// connections from fresh source ports both front-ends take some.
	seen := map[string]int{}
	for range 30 {
		r := l.exec("client", 20*time.Second, "curl", "-s", "-m", "5", "http://192.23.1.2:454/")
		seen[strings.Fields(r.stdout + " none")[0]]++
	}
	if seen["ase1-fe2"] == 0 {
		t.Errorf("F15: ase1-fe2 is in rotation but took none of 30 connections to the VIP's 454: %v", seen)
	}
}

// F16: blocking outbound 1433 makes ase1 Unhealthy, naming Azure SQL;
// removing the block makes it Healthy again.
func TestASEHealth(t *testing.T) {
	l := upLab(t)
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Healthy", "")) {
		t.Fatalf("ase1 should be Healthy in the default lab: %+v", l.ase("ase1"))
	}
	block := writeTopology(t, "block-sql.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenySQL, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPortRange: "1433"}`,
		`{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`)...)
	if r := emu(t, "apply", "--name", l.name, "-f", block); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Unhealthy", "Azure SQL")) {
		t.Fatalf("F16: with 1433 blocked, ase1 should turn Unhealthy naming Azure SQL: %+v", l.ase("ase1"))
	}
	if a := l.ase("ase2"); a.Health != "Healthy" {
		t.Errorf("ase2 is not behind the NSG and should stay Healthy: %+v", a)
	}
	if r := emu(t, "apply", "--name", l.name, "-f", writeTopology(t, "default.yaml")); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Healthy", "")) {
		t.Fatalf("F16: with 1433 open again, ase1 should be Healthy: %+v", l.ase("ase1"))
	}
}

// F16: in a lab without azure-sql (as lab 9), DNS still answers, if only
// that sql.database.windows.net has no address, so ase1 is Healthy;
// blocking 53 makes it Unhealthy, naming DNS.
func TestASEHealthDNS(t *testing.T) {
	noSQL := []string{"  - name: azure-sql\n    address: 203.0.113.20\n", ""}
	l := upLab(t, "-f", writeTopology(t, "no-sql.yaml", noSQL...))
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Healthy", "")) {
		t.Fatalf("F16: without azure-sql, DNS still answers and ase1 should be Healthy: %+v", l.ase("ase1"))
	}
	block := writeTopology(t, "block-dns.yaml", append(noSQL, withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyDNS, priority: 100, direction: Outbound, access: Deny, protocol: "*", destinationPortRange: "53"}`,
		`{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`)...)...)
	if r := emu(t, "apply", "--name", l.name, "-f", block); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if !waitFor(15*time.Second, l.aseHealthIs("ase1", "Unhealthy", "DNS (168.63.129.16:53) does not answer")) {
		t.Fatalf("F16: with 53 blocked, ase1 should turn Unhealthy naming DNS: %+v", l.ase("ase1"))
	}
}

// F16, SPEC §3: Azure Storage is checked on 80 and 443 and management on
// the VIP's 454 and 455; closing one port of each makes ase1 Unhealthy,
// naming those two ports and nothing else.
func TestASEHealthPorts(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "ports.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyStorageHTTP, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationAddressPrefix: 203.0.113.30, destinationPortRange: "80"}`,
		`{name: DenyMgmt455, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPortRange: "455"}`,
		`{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`)...))
	only := func() bool {
		a := l.ase("ase1")
		p := strings.Join(a.Problems, "\n")
		return a.Health == "Unhealthy" && len(a.Problems) == 2 &&
			strings.Contains(p, "Azure Storage (azure-storage 203.0.113.30:80) unreachable") &&
			strings.Contains(p, "Azure management (azure-mgmt) cannot reach the VIP on 455")
	}
	if !waitFor(15*time.Second, only) {
		t.Fatalf("F16: with storage's 80 and the VIP's 455 closed, ase1 should be Unhealthy naming both ports and nothing else: %+v", l.ase("ase1"))
	}
}

// Scaling ase1 to three workers adds ase1-w3, and app1 is served from it.
func TestScaledWorkerServesApp(t *testing.T) {
	l := upLab(t)
	three := threeWorkers(t)
	if r := emu(t, "apply", "--name", l.name, "-f", three); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	served := map[string]bool{}
	for i := 0; i < 9 && !served["ase1-w3"]; i++ {
		served[l.app("client", "http://app1.ase1.p.azurewebsites.net/", "").Worker] = true
	}
	if !served["ase1-w3"] {
		t.Errorf("after scaling to 3 workers app1 was served only by %v, never by ase1-w3", served)
	}
}

// The Internet hosts' servers: echo answers HTTP with the caller's address
// and echoes on TCP and UDP 7; azure-sql answers with the peer it sees.
func TestInternetHostServices(t *testing.T) {
	l := upLab(t)
	if r := l.exec("ase1-w1", 20*time.Second, "curl", "-s", "-m", "5", "http://echo.example.net/"); strings.TrimSpace(r.stdout) != "192.23.1.2" {
		t.Errorf("echo over HTTP from ase1-w1: want 192.23.1.2, got %v", r)
	}
	if r := l.exec("client", 20*time.Second, "sh", "-c", "echo hello-tcp | nc -N -w 3 echo 7"); !strings.Contains(r.stdout, "hello-tcp") {
		t.Errorf("TCP echo on 7: %v", r)
	}
	if r := l.exec("client", 20*time.Second, "sh", "-c", "echo hello-udp | nc -u -w 2 echo 7"); !strings.Contains(r.stdout, "hello-udp") {
		t.Errorf("UDP echo on 7: %v", r)
	}
	if peer := l.peerSeen("ase1-w2", "sql.database.windows.net", 1433); peer != "192.23.1.2" {
		t.Errorf("azure-sql saw ase1 as %s, want the VIP 192.23.1.2", peer)
	}
}

// F4: an app moved to another worker answers from there; the address a
// VNet peer sees follows the worker and stays in the ASE's subnet.
func TestMoveApp(t *testing.T) {
	l := upLab(t)
	moved := writeTopology(t, "moved.yaml", "      - name: app1\n", "      - name: app1\n        workers: [ase1-w2]\n")
	if r := emu(t, "apply", "--name", l.name, "-f", moved); r.code != 0 || !strings.Contains(r.stdout, "app1 on ase1-w2") {
		t.Fatalf("apply moving app1 to ase1-w2: %v", r)
	}
	for i := 0; i < 4; i++ {
		if a := l.app("db1", "http://app1.ase1.p.azurewebsites.net/", ""); a.Worker != "ase1-w2" {
			t.Fatalf("after the move app1 answered from %q, want only ase1-w2", a.Worker)
		}
	}
	r := l.exec("db1", 20*time.Second, "curl", "-s", "-m", "5", "http://10.0.1.7/", "-H", "Host: app1.ase1.p.azurewebsites.net")
	if !strings.Contains(r.stdout, `"workerAddress":"10.0.1.7"`) {
		t.Errorf("app1 on ase1-w2 should answer from 10.0.1.7, got %v", r)
	}
}
