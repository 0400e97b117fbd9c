package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTopology writes the default lab with each replacement applied and
// returns the file's path. A replacement that matches nothing fails the
// test, so an edit cannot silently do nothing.
func writeTopology(t *testing.T, name string, replace ...string) string {
	t.Helper()
	yaml := emu(t, "init").stdout
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(yaml, replace[i]) {
			t.Fatalf("topology edit: %q not found", replace[i])
		}
		yaml = strings.Replace(yaml, replace[i], replace[i+1], 1)
	}
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// threeWorkers writes the default lab with ase1 scaled from two workers to
// three: an apply of it adds ase1-w3 at 10.0.1.8.
func threeWorkers(t *testing.T) string {
	t.Helper()
	return writeTopology(t, "three.yaml", "    workers: 2\n    apps:\n      - name: app1", "    workers: 3\n    apps:\n      - name: app1")
}

// F4: scaling a running ASE adds a worker at the next free address of its
// subnet; it is reachable and leaves with the VIP. Scaling back removes it.
func TestApplyScalesASE(t *testing.T) {
	l := upLab(t)
	three := threeWorkers(t)
	r := emu(t, "apply", "--name", l.name, "-f", three)
	if r.code != 0 || !strings.Contains(r.stdout, "added ase1-w3 at 10.0.1.8") {
		t.Fatalf("apply with 3 workers: want ase1-w3 added at 10.0.1.8 (the next free address), got %v", r)
	}
	if out := l.mustExec("ase1-w3", "ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(out, " 10.0.1.8/26") {
		t.Errorf("ase1-w3 has %q, want 10.0.1.8/26", out)
	}
	if peer := l.peerSeen("ase1-w3", "10.0.2.4", 1433); peer != "10.0.1.8" {
		t.Errorf("F4: db1 saw the new worker as %s, want 10.0.1.8", peer)
	}
	if _, peer := l.connect("ase1-w3", "203.0.113.10", 8080, "echo"); peer != "192.23.1.2" {
		t.Errorf("F3: the new worker left with %s, want the VIP 192.23.1.2", peer)
	}
	// F17: the fifth machine of ase1 has the fifth share of the VIP's ports.
	var shares []string
	for _, p := range l.status().NAT.Pools {
		if p.Address == "192.23.1.2" && p.Proto == "tcp" {
			for _, sh := range p.Shares {
				shares = append(shares, sh.Address+" "+sh.Range)
			}
		}
	}
	if !slices.Contains(shares, "10.0.1.8 5120-6143") {
		t.Errorf("F17: the VIP's TCP shares after the scale are %q, want ase1-w3 (10.0.1.8) with 5120-6143", shares)
	}
	two := writeTopology(t, "two.yaml")
	if r := emu(t, "apply", "--name", l.name, "-f", two); r.code != 0 || !strings.Contains(r.stdout, "removed ase1-w3") {
		t.Fatalf("apply back to 2 workers: %v", r)
	}
	if _, err := os.Stat("/run/netns/" + l.name + ".ase1-w3"); err == nil {
		t.Errorf("scaling down left the namespace of ase1-w3")
	}
	if r := l.exec("db1", 10*time.Second, "ping", "-c", "1", "-W", "1", "10.0.1.8"); r.code == 0 {
		t.Errorf("10.0.1.8 still answers after ase1-w3 was removed")
	}
}

// F1, F4: a front-end added to a running ASE takes a free address of the
// subnet, and the machines already there keep theirs, as Azure never
// renumbers a running machine. Before, the file's addresses were assigned
// afresh, the workers shifted up by one, and apply refused the scale.
// Scaling back in frees the address for the next machine.
func TestApplyScalesFrontEnds(t *testing.T) {
	l := upLab(t)
	three := writeTopology(t, "three.yaml", "    frontEnds: 2\n", "    frontEnds: 3\n")
	r := emu(t, "apply", "--name", l.name, "-f", three)
	if r.code != 0 || !strings.Contains(r.stdout, "added ase1-fe3 at 10.0.1.8") {
		t.Fatalf("apply with 3 front-ends: want ase1-fe3 added at 10.0.1.8 (the next free address), got %v", r)
	}
	for _, n := range []struct{ name, addr string }{{"ase1-fe1", "10.0.1.4"}, {"ase1-w1", "10.0.1.6"}, {"ase1-w2", "10.0.1.7"}, {"ase1-fe3", "10.0.1.8"}} {
		if got := l.node(n.name).Address; got != n.addr {
			t.Errorf("after adding a front-end %s has %s, want %s", n.name, got, n.addr)
		}
	}
	if peer := l.peerSeen("ase1-fe3", "10.0.2.4", 1433); peer != "10.0.1.8" {
		t.Errorf("F4: db1 saw the new front-end as %s, want 10.0.1.8", peer)
	}
	one := writeTopology(t, "one.yaml", "    frontEnds: 2\n", "    frontEnds: 1\n")
	if r := emu(t, "apply", "--name", l.name, "-f", one); r.code != 0 || !strings.Contains(r.stdout, "removed ase1-fe2 (10.0.1.5)") || !strings.Contains(r.stdout, "removed ase1-fe3 (10.0.1.8)") {
		t.Fatalf("apply with 1 front-end: want ase1-fe2 and ase1-fe3 removed, got %v", r)
	}
	w3 := writeTopology(t, "w3.yaml", "    frontEnds: 2\n", "    frontEnds: 1\n", "    workers: 2\n", "    workers: 3\n")
	if r := emu(t, "apply", "--name", l.name, "-f", w3); r.code != 0 || !strings.Contains(r.stdout, "added ase1-w3 at 10.0.1.5") {
		t.Fatalf("apply with a third worker: want ase1-w3 at 10.0.1.5, the lowest free address, got %v", r)
	}
	if got := l.node("ase1-w1").Address; got != "10.0.1.6" {
		t.Errorf("ase1-w1 has %s after the scales, want 10.0.1.6 still", got)
	}
}

// apply refuses what a running lab cannot change, and a bad file, with
// exit 2; the lab runs on unchanged.
func TestApplyRefuses(t *testing.T) {
	l := upLab(t)
	renumber := writeTopology(t, "renumber.yaml", "addressPrefix: 10.0.2.0/24", "addressPrefix: 10.0.2.0/25")
	if r := emu(t, "apply", "--name", l.name, "-f", renumber); r.code != 2 || !strings.Contains(r.stderr, "cannot change") {
		t.Errorf("apply changing a subnet: want exit 2 saying it cannot change, got %v", r)
	}
	bad := writeTopology(t, "bad.yaml", "    workers: 2\n", "    workers: many\n")
	r := emu(t, "apply", "--name", l.name, "-f", bad)
	if r.code != 2 || !regexp.MustCompile(`bad\.yaml:\d+: appServiceEnvironments\[0\]\.workers: `).MatchString(r.stderr) {
		t.Errorf("apply with a bad file: want exit 2 and bad.yaml:LINE: appServiceEnvironments[0].workers, got %v", r)
	}
	if got := len(l.status().Nodes); got != len(defaultNodes) {
		t.Errorf("after refused applies the lab has %d nodes, want %d", got, len(defaultNodes))
	}
	l.mustExec("db1", "ping", "-c", "1", "-W", "2", "10.0.1.6")
}

// flowLogs.enabled in a file given to apply turns the flow logs on and off,
// as it does at up, rather than being dropped while apply says nothing
// changed.
func TestApplyFlowLogs(t *testing.T) {
	l := upLab(t)
	on := writeTopology(t, "on.yaml", "networkSecurityGroups: []\n", "networkSecurityGroups: []\nflowLogs: {enabled: true}\n")
	for _, c := range []struct {
		file, says string
		want       bool
	}{
		{on, "NSG flow logs: on", true},
		{writeTopology(t, "off.yaml"), "NSG flow logs: off", false},
	} {
		if r := emu(t, "apply", "--name", l.name, "-f", c.file); r.code != 0 || !strings.Contains(r.stdout, c.says) {
			t.Errorf("apply of flowLogs.enabled %v: want exit 0 and %q, got %v", c.want, c.says, r)
		}
		var got flowLogJSON
		l.emuJSON(&got, "flowlog")
		if got.Enabled != c.want {
			t.Errorf("after apply of flowLogs.enabled %v, flowlog --json says enabled %v", c.want, got.Enabled)
		}
	}
}

// F15: a front-end added by apply gets no connection from the VIP before
// its health probe has succeeded, as Azure's load balancer sends a new
// backend nothing until its probe passes. Here ase1-fe3's probes are
// denied, so it must never take one. Before, a new front-end started in
// rotation and took about a third of the VIP's connections for the 2 s
// its first two probes took to fail.
func TestApplyNewFrontEndWaitsForProbe(t *testing.T) {
	nsg := withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyProbesToFe3, priority: 100, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: AzureLoadBalancer, destinationAddressPrefix: 10.0.1.8}`,
		`{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`)
	l := upLab(t, "-f", writeTopology(t, "two.yaml", nsg...))
	three := writeTopology(t, "three.yaml", append(nsg, "    frontEnds: 2\n", "    frontEnds: 3\n")...)
	if r := emu(t, "apply", "--name", l.name, "-f", three); r.code != 0 || !strings.Contains(r.stdout, "added ase1-fe3 at 10.0.1.8") {
		t.Fatalf("apply with 3 front-ends: %v", r)
	}
	// One shell loop, so the connections start at once after apply and
	// keep coming for 3 s: longer than two failed probes take.
	r := l.exec("client", 30*time.Second, "sh", "-c",
		`end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; do curl -s -m 1 http://192.23.1.2:454/ | cut -d' ' -f1; done`)
	seen := map[string]int{}
	for _, f := range strings.Fields(r.stdout) {
		seen[f]++
	}
	if seen["ase1-fe3"] > 0 || seen["ase1-fe1"]+seen["ase1-fe2"] < 5 {
		t.Errorf("F15: in the 3 s after apply added ase1-fe3, whose probes are denied, the VIP's 454 answered from %v; want only ase1-fe1 and ase1-fe2 (at least 5 answers), never ase1-fe3", seen)
	}
	for _, fe := range l.ase("ase1").FrontEnds {
		if fe.Name == "ase1-fe3" && fe.InRotation {
			t.Errorf("F15: status shows ase1-fe3 in rotation though none of its probes succeeded: %+v", fe)
		}
	}
}

// F15 at up: a front-end whose probes an NSG denies never enters its VIP's
// rotation, as Azure's load balancer marks an instance up only once a probe
// succeeds. It used to start in rotation and take connections until two
// probes had failed, about 2 s after up -d returned.
func TestUpFrontEndWaitsForProbe(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "deny.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyProbesToFe1, priority: 100, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: AzureLoadBalancer, destinationAddressPrefix: 10.0.1.4}`,
		`{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`)...))
	r := l.exec("client", 30*time.Second, "sh", "-c",
		`end=$(($(date +%s)+3)); while [ $(date +%s) -lt $end ]; do curl -s -m 1 http://192.23.1.2:454/ | cut -d' ' -f1; done`)
	seen := map[string]int{}
	for _, f := range strings.Fields(r.stdout) {
		seen[f]++
	}
	if seen["ase1-fe1"] > 0 || seen["ase1-fe2"] < 5 {
		t.Errorf("F15: in the 3 s after up -d of a lab whose NSG denies ase1-fe1's probes, the VIP's 454 answered from %v; want only ase1-fe2 (at least 5 answers), never ase1-fe1", seen)
	}
	for _, fe := range l.ase("ase1").FrontEnds {
		if fe.InRotation != (fe.Name == "ase1-fe2") {
			t.Errorf("F15: status shows %s in rotation %v; want only ase1-fe2, whose probes succeed: %+v", fe.Name, fe.InRotation, fe)
		}
	}
}

// status --json's drops are the lab's totals since up: a worker apply
// scales away takes its drops out of the per-node rows, not out of the
// totals, which a CI script compares before and after and must never see
// fall.
func TestDropTotalsNeverGoBackAcrossApply(t *testing.T) {
	l := upLab(t, "--metrics", "127.0.0.1:0")
	var st struct{ Metrics string }
	l.emuJSON(&st, "status")
	// ase1-subnet is 10.0.1.0/26: its broadcast address is dropped (README).
	l.exec("ase1-w2", 20*time.Second, "ping", "-b", "-c", "3", "-i", "0.2", "-W", "1", "10.0.1.63")
	before := l.status()
	if before.Drops["broadcast"] < 3 {
		t.Fatalf("3 pings of 10.0.1.63 from ase1-w2 left %d broadcast drops, want at least 3: %v", before.Drops["broadcast"], before.Drops)
	}
	smaller := writeTopology(t, "smaller.yaml", "    frontEnds: 2\n    workers: 2\n    apps:\n      - name: app1", "    frontEnds: 2\n    workers: 1\n    apps:\n      - name: app1")
	if r := emu(t, "apply", "--name", l.name, "-f", smaller); r.code != 0 {
		t.Fatalf("apply scaling ase1 to 1 worker: %v", r)
	}
	after := l.status()
	for _, n := range after.Nodes {
		if n.Name == "ase1-w2" {
			t.Fatalf("ase1-w2 is still in status after apply scaled it away")
		}
	}
	m := scrape(t, st.Metrics)
	for reason, n := range before.Drops {
		if after.Drops[reason] < n {
			t.Errorf("%s drops went back from %d to %d when apply removed ase1-w2, which had dropped them", reason, n, after.Drops[reason])
		}
		if series := fmt.Sprintf(`emulator_drops_total{reason=%q}`, reason); m[series] < float64(n) {
			t.Errorf("%s = %v after apply removed ase1-w2, less than the %d status showed before", series, m[series], n)
		}
	}
}
