package test

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"
)

// capturedPacket is one packet of a pcapng file with its comments.
type capturedPacket struct {
	src, dst string
	syn, ack bool
	comments []string
}

func readCapture(t *testing.T, file string) []capturedPacket {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%s is not pcapng: %v", file, err)
	}
	var out []capturedPacket
	for {
		data, _, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil {
			t.Fatalf("captured packet is not IPv4: %v", p)
		}
		cp := capturedPacket{src: ip.SrcIP.String(), dst: ip.DstIP.String(), comments: opts.Comments}
		if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			cp.syn, cp.ack = tcp.SYN, tcp.ACK
		}
		out = append(out, cp)
	}
	return out
}

// waitFile waits until file has at least n bytes: the capture's header is
// written once its tap is running.
func waitFile(t *testing.T, file string, n int64) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if st, err := os.Stat(file); err == nil && st.Size() >= n {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never got %d bytes", file, n)
}

// Issue 8: a capture on ase1-w1 during a curl to echo shows the SYN
// leaving as 10.0.1.6 and arriving as 192.23.1.2, both copies commented
// with the translation and the NSG verdict; tcpdump reads the file, also
// streamed live on stdout. -c counts packets, as tcpdump's does: -c 2
// ends after the SYN and the SYN-ACK, each written before and after
// translation.
func TestCapture(t *testing.T) {
	l := upLab(t)
	file := filepath.Join(t.TempDir(), "w1.pcapng")
	// The host too: ase1's health checks call azure-storage on 80 from
	// this worker every 2 s, and a check's answer, 80 ms behind its SYN
	// (a remote region), can fall into the capture before the curl's.
	_, stderr, done := startCapture(t, file, "ase1-w1", "--name", l.name, "--filter", "tcp and port 80 and host 203.0.113.10", "-c", "2")
	l.mustExec("ase1-w1", "curl", "-s", "-m", "5", "http://echo/")
	captureEnded(t, done, stderr, "capture ase1-w1 -c 2, after the curl")

	pkts := readCapture(t, file)
	if len(pkts) != 4 {
		t.Fatalf("capture -c 2 wrote %d records, want 4: the SYN and the SYN-ACK, each before and after translation: %+v", len(pkts), pkts)
	}
	syn := pkts[:2]
	if !syn[0].syn || syn[0].ack || syn[0].src != "10.0.1.6" || syn[1].src != "192.23.1.2" || syn[1].dst != "203.0.113.10" {
		t.Fatalf("first two packets %+v, want the SYN leaving as 10.0.1.6 and arriving at echo as 192.23.1.2", syn)
	}
	for i, want := range []string{"before translation", "after translation"} {
		c := strings.Join(syn[i].comments, " ")
		if !strings.Contains(c, want) || !strings.Contains(c, "SNAT 10.0.1.6:") || !strings.Contains(c, "-> 192.23.1.2:") || !strings.Contains(c, "NSG") {
			t.Errorf("SYN %s has comment %q, want %q naming the SNAT and the NSG verdict", want, c, want)
		}
	}
	if r := run(t, 10*time.Second, "tcpdump", "-n", "-r", file); r.code != 0 || !strings.Contains(r.stdout, "10.0.1.6") || !strings.Contains(r.stdout, "192.23.1.2") {
		t.Errorf("tcpdump -r %s: %v", file, r)
	}

	// What the dataplane itself answers is at the node's interface too, as
	// tcpdump inside the node shows it: traceroute's time exceeded.
	file = filepath.Join(t.TempDir(), "db1.pcapng")
	_, stderr, done = startCapture(t, file, "db1", "--name", l.name, "--filter", "icmp", "-c", "2")
	l.exec("db1", 10*time.Second, "ping", "-c", "1", "-t", "1", "-W", "2", "10.0.1.6")
	captureEnded(t, done, stderr, "capture db1 -c 2, after ping -t 1 (it waits for the dataplane's time exceeded)")
	pkts = readCapture(t, file)
	if len(pkts) != 2 || pkts[1].src != "10.0.2.1" || pkts[1].dst != "10.0.2.4" || !strings.Contains(strings.Join(pkts[1].comments, " "), "sent by the dataplane to db1") {
		t.Errorf("capture db1 of ping -t 1: %+v; want the echo request, then the time exceeded from 10.0.2.1 commented as sent by the dataplane", pkts)
	}

	// Live: -w - into tcpdump -r -.
	liveDone := make(chan result, 1)
	go func() {
		liveDone <- run(t, 30*time.Second, "sh", "-c", emulator+" capture echo --name "+l.name+" -w - -c 2 --filter 'port 80' | tcpdump -n -r -")
	}()
	for i := 0; i < 20; i++ {
		l.exec("ase1-w1", 10*time.Second, "curl", "-s", "-m", "2", "http://echo/")
		select {
		case r := <-liveDone:
			if r.code != 0 || !strings.Contains(r.stdout, "192.23.1.2") {
				t.Errorf("capture -w - | tcpdump -r -: %v", r)
			}
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	t.Error("capture -w - -c 2 never ended")
}

// A capture running when its lab goes down ends saying so (exit 1), with
// the file readable up to there, rather than with "unexpected EOF".
func TestCaptureWhenLabGoesDown(t *testing.T) {
	l := upLab(t)
	file := filepath.Join(t.TempDir(), "db1.pcapng")
	capture, stderr, done := startCapture(t, file, "db1", "--name", l.name)
	l.down()
	select {
	case err := <-done:
		done <- err
		if code := capture.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "lab "+l.name+" went down") {
			t.Errorf("capture when its lab went down: exit %d, stderr %q; want exit 1 saying the lab went down", code, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("capture did not end when its lab went down")
	}
	if r := run(t, 10*time.Second, "tcpdump", "-n", "-r", file); r.code != 0 {
		t.Errorf("tcpdump -r of the capture cut short by down: %v", r)
	}
}

// A dropped packet's comment says what dropped it. "NSG:" introduces only
// what the NSGs decided: a closed VIP port is the load balancer's drop,
// where the comment used to read "NSG: dropped by the dataplane:
// port-closed", and an NSG's deny still names its rule.
func TestCaptureDropComments(t *testing.T) {
	l := observeLab(t)
	for _, c := range []struct {
		node, filter, from string
		probe              []string
		want, notWant      []string
	}{
		{"client", "tcp and port 81", "client", []string{"nc", "-z", "-w", "2", "192.23.1.2", "81"},
			[]string{"client, dropped by the load balancer: port-closed"}, []string{"NSG:"}},
		// ase1's health checks call azure-sql on 1433 from this worker.
		{"ase1-w1", "tcp and port 1433 and host 10.0.2.4", "ase1-w1", []string{"nc", "-z", "-w", "2", "10.0.2.4", "1433"},
			[]string{"ase1-w1, dropped by an NSG: nsg-inbound", "NSG: Inbound db1 subnet vm-nsg/DenyASE1SQL (priority 100): Deny"}, nil},
	} {
		file := filepath.Join(t.TempDir(), c.node+".pcapng")
		_, stderr, done := startCapture(t, file, c.node, "--name", l.name, "--filter", c.filter, "-c", "1")
		l.exec(c.from, 10*time.Second, c.probe...)
		captureEnded(t, done, stderr, fmt.Sprintf("capture %s -c 1, after %s", c.node, strings.Join(c.probe, " ")))
		pkts := readCapture(t, file)
		if len(pkts) != 1 {
			t.Fatalf("capture %s -c 1 of a dropped SYN wrote %d records, want 1: %+v", c.node, len(pkts), pkts)
		}
		comment := strings.Join(pkts[0].comments, " ")
		for _, w := range c.want {
			if !strings.Contains(comment, w) {
				t.Errorf("capture %s: the dropped SYN's comment is %q, want it to say %q", c.node, comment, w)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(comment, w) {
				t.Errorf("capture %s: the dropped SYN's comment is %q: no NSG decided this drop, so it must not say %q", c.node, comment, w)
			}
		}
	}
}

// startCapture starts emulator capture ARGS... -w file and returns once
// the file has its header. done gets capture's Wait; the test's cleanup
// kills it if still running.
func startCapture(t *testing.T, file string, args ...string) (*exec.Cmd, *strings.Builder, chan error) {
	t.Helper()
	capture := exec.Command(emulator, append(append([]string{"capture"}, args...), "-w", file)...)
	stderr := &strings.Builder{}
	capture.Stderr = stderr
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- capture.Wait() }()
	t.Cleanup(func() { capture.Process.Kill(); <-done })
	waitFile(t, file, 64)
	return capture, stderr, done
}

// captureEnded waits for a capture started with -c (startCapture) to end
// by itself, and fails the test if it failed or has not ended within 10 s.
// what names the capture and what it waits for.
func captureEnded(t *testing.T, done chan error, stderr *strings.Builder, what string) {
	t.Helper()
	select {
	case err := <-done:
		done <- err // for startCapture's cleanup
		if err != nil {
			t.Fatalf("%s: %v: %s", what, err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not end within 10 s", what)
	}
}

// observeLab is the default lab with an NSG on vm-subnet that denies ase1
// SQL to db1, flow logs on, short conntrack timeouts so flows end within
// the test, and metrics on a loopback port.
func observeLab(t *testing.T) *lab {
	t.Helper()
	edits := withNSG("10.0.2.0/24", "vm-nsg",
		`{name: DenyASE1SQL, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: 10.0.1.0/26, destinationPortRange: "1433"}`)
	edits[3] = "flowLogs: {enabled: true}\nconnectionTracking: {finTimeout: 3s, idleTimeout: 20s}\n" + edits[3]
	return upLab(t, "-f", writeTopology(t, "observe.yaml", edits...), "--metrics", "127.0.0.1:0")
}

type traceJSON struct {
	Flow        string `json:"flow"`
	Delivered   bool   `json:"delivered"`
	ToNode      string `json:"toNode"`
	Drop        string `json:"drop"`
	Translation string `json:"translation"`
	NAT         string `json:"nat"`
	Decision    string `json:"decision"`
	Hops        []struct {
		Route struct {
			Type string `json:"nextHopType"`
		} `json:"route"`
		NSGs []struct {
			NSG, Rule, Access string
		} `json:"nsgs"`
	} `json:"hops"`
}

// Issue 8: trace names the deciding rule of a denied flow and the
// translation of an allowed one, as verify and flows do; flow logs hold
// both in Azure's version 2 layout with the right rule names and
// decisions; the metrics endpoint's counters move with traffic.
func TestObserveNSG(t *testing.T) {
	l := observeLab(t)
	metricsURL := ""
	var st struct {
		Metrics  string `json:"metrics"`
		FlowLogs struct {
			Enabled   bool   `json:"enabled"`
			Directory string `json:"directory"`
		} `json:"flowLogs"`
	}
	l.emuJSON(&st, "status")
	if metricsURL = st.Metrics; !strings.HasPrefix(metricsURL, "http://127.0.0.1:") || !st.FlowLogs.Enabled || st.FlowLogs.Directory == "" {
		t.Fatalf("status: metrics %q, flow logs %+v; want a loopback endpoint and flow logs on with their directory", st.Metrics, st.FlowLogs)
	}
	before := scrape(t, metricsURL)

	// Denied: the deciding rule, as verify names it.
	var denied traceJSON
	l.emuJSON(&denied, "trace", "--from", "ase1-w1", "--to", "10.0.2.4:1433")
	v := l.verify("ase1-w1", "10.0.2.4:1433")
	if denied.Delivered || denied.Drop != "nsg-inbound" || !strings.Contains(denied.Decision, "vm-nsg/DenyASE1SQL") || denied.Decision != v.Decision || v.Allow {
		t.Errorf("trace of a denied flow = %+v; verify says %+v; want dropped nsg-inbound by vm-nsg/DenyASE1SQL in both", denied, v)
	}

	// Allowed: db1's default outbound SNAT, as flows shows it.
	var allowed traceJSON
	l.emuJSON(&allowed, "trace", "--from", "db1", "--to", "203.0.113.10:80")
	var flows []flowJSON
	l.emuJSON(&flows, "flows")
	orig := strings.TrimPrefix(allowed.Flow, "tcp ")
	found := false
	for _, f := range flows {
		if f.Original == orig {
			found = true
			if f.Translated != allowed.Translation || f.NAT != "snat" {
				t.Errorf("flows shows %s leaving as %s (%s); trace said %s", orig, f.Translated, f.NAT, allowed.Translation)
			}
		}
	}
	if !found {
		t.Errorf("flows has no %s that trace sent: %+v", orig, flows)
	}

	if !allowed.Delivered || allowed.ToNode != "echo" || !strings.HasPrefix(allowed.Translation, "192.0.2.1:") ||
		!strings.Contains(allowed.NAT, "SNAT 10.0.2.4:") || allowed.Decision != l.verify("db1", "203.0.113.10:80").Decision {
		t.Errorf("trace of an allowed flow = %+v, want delivered to echo as 192.0.2.1 with verify's decision", allowed)
	}

	// Traffic for the counters and the flow logs: a curl that completes
	// (B and, once its FIN timeout passes, E).
	l.mustExec("db1", "curl", "-s", "-m", "5", "http://echo/")
	after := scrape(t, metricsURL)
	for _, m := range []string{`emulator_node_flows_total{node="db1"}`, `emulator_node_rx_packets_total{node="db1"}`, `emulator_nsg_rule_hits_total{access="Deny",direction="Inbound",nsg="vm-nsg",rule="DenyASE1SQL"}`} {
		if after[m] <= before[m] {
			t.Errorf("metric %s did not move: %v -> %v", m, before[m], after[m])
		}
	}
	if _, ok := after[`emulator_snat_pool_ports{address="192.23.1.2",proto="tcp"}`]; !ok {
		t.Error("metrics lack the SNAT pool of ase1's VIP")
	}

	// Flow logs: wait for the curl's end tuple.
	var tuples map[string][]string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		tuples = readFlowLogs(t, st.FlowLogs.Directory)
		if hasTuple(tuples["DefaultRule_AllowInternetOutBound"], "10.0.2.4", "203.0.113.10", "80", "T", "O", "A", "E") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	checks := []struct {
		rule                                string
		src, dst, dport, proto, dir, access string
		state                               string
	}{
		{"UserRule_DenyASE1SQL", "10.0.1.6", "10.0.2.4", "1433", "T", "I", "D", "B"},
		{"DefaultRule_AllowInternetOutBound", "10.0.2.4", "203.0.113.10", "80", "T", "O", "A", "B"},
		{"DefaultRule_AllowInternetOutBound", "10.0.2.4", "203.0.113.10", "80", "T", "O", "A", "E"},
	}
	for _, c := range checks {
		if !hasTuple(tuples[c.rule], c.src, c.dst, c.dport, c.proto, c.dir, c.access, c.state) {
			t.Errorf("flow logs lack %+v; have %v", c, tuples)
		}
	}

	// emulator flowlog turns them off and on at run time.
	for _, want := range []string{"off", "on"} {
		if r := emu(t, "flowlog", "--name", l.name, want); r.code != 0 || !strings.HasPrefix(r.stdout, "NSG flow logs: "+want) {
			t.Errorf("emulator flowlog %s: %v", want, r)
		}
	}
}

// scrape reads the metrics page as Prometheus would and returns every
// series by name and labels (sorted, as the page writes them:
// `emulator_node_flows_total{node="db1"}`). The page must be valid text
// format 0.0.4 that promtool's linter (promlint) passes: HELP and TYPE for
// each family, counters named _total, no series twice, no NaN.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	r := run(t, 10*time.Second, "curl", "-s", "-f", url)
	if r.code != 0 {
		t.Fatalf("scraping %s: %v", url, r)
	}
	problems, err := promlint.New(strings.NewReader(r.stdout)).Lint()
	if err != nil {
		t.Fatalf("%s is not the Prometheus text format: %v", url, err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	out := map[string]float64{}
	for name, f := range families {
		if f.GetHelp() == "" {
			t.Errorf("metric %s has no HELP", name)
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			slices.Sort(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			default:
				v = m.GetUntyped().GetValue() // the Go collector's summaries are not read
			}
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("series %s is %v", key, v)
			}
			if _, dup := out[key]; dup {
				t.Errorf("series %s is on the page twice", key)
			}
			out[key] = v
		}
	}
	return out
}

// readFlowLogs parses every flow log file under dir against the version 2
// layout and returns the tuples by rule name.
func readFlowLogs(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(path) != "PT1M.json" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Records []struct {
				Time, SystemID, MACAddress, Category, ResourceID, OperationName string
				Properties                                                      struct {
					Version int
					Flows   []struct {
						Rule  string
						Flows []struct {
							MAC        string
							FlowTuples []string
						}
					}
				}
			} `json:"records"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, r := range f.Records {
			if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil || r.SystemID == "" || len(r.MACAddress) != 12 ||
				r.Category != "NetworkSecurityGroupFlowEvent" || r.OperationName != "NetworkSecurityGroupFlowEvents" ||
				!strings.Contains(r.ResourceID, "/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/") || r.Properties.Version != 2 {
				t.Fatalf("%s: record does not follow version 2: %+v", path, r)
			}
			for _, rf := range r.Properties.Flows {
				if !strings.HasPrefix(rf.Rule, "DefaultRule_") && !strings.HasPrefix(rf.Rule, "UserRule_") {
					t.Errorf("rule %q has neither prefix", rf.Rule)
				}
				for _, mf := range rf.Flows {
					for _, tp := range mf.FlowTuples {
						checkTuple(t, tp)
						out[rf.Rule] = append(out[rf.Rule], tp)
					}
				}
			}
		}
		return nil
	})
	return out
}

var tupleRE = regexp.MustCompile(`^\d+,\d+\.\d+\.\d+\.\d+,\d+\.\d+\.\d+\.\d+,\d+,\d+,[TU],[IO],[AD],([BCE]),(\d*),(\d*),(\d*),(\d*)$`)

func checkTuple(t *testing.T, tp string) {
	t.Helper()
	m := tupleRE.FindStringSubmatch(tp)
	if m == nil {
		t.Errorf("flow tuple %q does not follow ts,src,dst,sport,dport,T|U,I|O,A|D,B|C|E,pkts,bytes,pkts,bytes", tp)
		return
	}
	if (m[1] != "B") != (m[2] != "" && m[3] != "") {
		t.Errorf("flow tuple %q: a continuation or an end carries counters, a begin none", tp)
	}
}

// hasTuple reports whether tuples has one with these fields.
func hasTuple(tuples []string, src, dst, dport, proto, dir, access, state string) bool {
	for _, tp := range tuples {
		f := strings.Split(tp, ",")
		if len(f) == 13 && f[1] == src && f[2] == dst && f[4] == dport && f[5] == proto && f[6] == dir && f[7] == access && f[8] == state {
			if state == "E" && (f[9] == "0" || f[10] == "0") {
				continue
			}
			return true
		}
	}
	return false
}

// flows --filter keeps the flows it matches before or after translation:
// a curl's, by db1's own address and by the address it left as. The lab's
// probes and health checks are in the lab too, and left out. The default
// lab keeps the curl's flow for the FIN timeout, 240 s, so the check does
// not race its expiry, even under the race detector.
func TestFlowsFilter(t *testing.T) {
	l := upLab(t)
	l.mustExec("db1", "curl", "-s", "-m", "5", "http://echo/")
	var all []flowJSON
	l.emuJSON(&all, "flows")
	isCurl := func(f flowJSON) bool {
		return strings.HasPrefix(f.Original, "10.0.2.4:") && strings.HasSuffix(f.Original, " -> 203.0.113.10:80")
	}
	for _, expr := range []string{"host 10.0.2.4 and port 80", "tcp and host 192.0.2.1"} {
		var some []flowJSON
		l.emuJSON(&some, "flows", "--filter", expr)
		curl := false
		for _, f := range some {
			curl = curl || isCurl(f) && strings.HasPrefix(f.Translated, "192.0.2.1:")
			if !strings.Contains(f.Original+f.Translated, "10.0.2.4") && !strings.Contains(f.Original+f.Translated, "192.0.2.1") {
				t.Errorf("flows --filter %q lists %+v", expr, f)
			}
		}
		if !curl || len(some) >= len(all) {
			t.Errorf("flows --filter %q: %d of %d flows, want db1's curl to echo among fewer than all: %+v", expr, len(some), len(all), some)
		}
	}
	// A not term leaves out what it holds for before or after
	// translation: the platform's probes by their source, and the curl
	// by the address SNAT gave it.
	probes := 0
	for _, f := range all {
		if strings.HasPrefix(f.Original, "168.63.129.16:") {
			probes++
		}
	}
	var some []flowJSON
	l.emuJSON(&some, "flows", "--filter", "not host 168.63.129.16")
	if probes == 0 || !slices.ContainsFunc(some, isCurl) {
		t.Errorf("flows --filter 'not host 168.63.129.16' lists %+v, want the curl among them; the lab had %d probes' flows", some, probes)
	}
	for _, f := range some {
		if strings.Contains(f.Original+f.Translated, "168.63.129.16") {
			t.Errorf("flows --filter 'not host 168.63.129.16' lists %+v", f)
		}
	}
	l.emuJSON(&some, "flows", "--filter", "tcp and not host 192.0.2.1")
	if slices.ContainsFunc(some, isCurl) || len(some) == 0 {
		t.Errorf("flows --filter 'tcp and not host 192.0.2.1' lists %+v, want the other TCP flows but not the curl, SNATted to 192.0.2.1", some)
	}
	if r := emu(t, "flows", "--name", l.name, "--filter", "host 203.0.113.99"); r.code != 0 || strings.TrimSpace(r.stdout) != `No flows match "host 203.0.113.99".` {
		t.Errorf("flows with a filter no flow matches: %v", r)
	}
	if r := emu(t, "flows", "--name", l.name, "--filter", "host db1"); r.code != 2 || !strings.Contains(r.stderr, "not an IPv4 address") {
		t.Errorf("flows with a bad filter: %v, want exit 2 naming the fault", r)
	}
}

// Issue 8: graph draws a lab without running it, from the default lab or
// -f FILE, and refuses an unknown format.
func TestGraph(t *testing.T) {
	file := writeTopology(t, "nsg.yaml", withNSG("10.0.2.0/24", "vm-nsg")...)
	for _, args := range [][]string{{"graph"}, {"graph", "--format", "mermaid", "-f", file}} {
		r := emu(t, args...)
		if r.code != 0 {
			t.Fatalf("emulator %v: %v", args, r)
		}
		for _, want := range []string{"ase1-w1", "10.0.1.6", "VIP 192.23.1.2", "ILB 10.0.4.8", "subnet vm-subnet 10.0.2.0/24", "db1", "client", "168.63.129.16"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("emulator %v lacks %q", args, want)
			}
		}
	}
	if r := emu(t, "graph", "--format", "mermaid", "-f", file); !strings.Contains(r.stdout, "NSG vm-nsg") {
		t.Errorf("graph -f %s does not show vm-subnet's NSG: %v", file, r)
	}
	if r := emu(t, "graph", "--format", "png"); r.code != 2 {
		t.Errorf("graph --format png: %v, want exit 2", r)
	}
}

// graph --name draws what the lab runs, not its file as it is now: after
// the file was edited without apply, vm-subnet's NSG is still drawn; once
// the edit is applied it is gone.
func TestGraphOfRunningLab(t *testing.T) {
	file := writeTopology(t, "nsg.yaml", withNSG("10.0.2.0/24", "vm-nsg")...)
	l := upLab(t, "-f", file)
	if err := os.WriteFile(file, []byte(emu(t, "init").stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := emu(t, "graph", "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "NSG vm-nsg") {
		t.Errorf("graph --name %s after its file lost vm-nsg, not applied: want the running lab's vm-nsg drawn, got %v", l.name, r)
	}
	if r := emu(t, "apply", "--name", l.name, "-f", file); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if r := emu(t, "graph", "--name", l.name, "--format", "mermaid"); r.code != 0 || strings.Contains(r.stdout, "NSG vm-nsg") || !strings.Contains(r.stdout, "ase1-w1") {
		t.Errorf("graph --name %s after apply removed vm-nsg: want the lab without it, got %v", l.name, r)
	}
}

// A node that sends faster than the dataplane reads loses packets at its
// own interface: the kernel drops them at the full TUN queue and the
// sender is not told. status and the metrics must show them, since the
// dataplane's own counters never see them. The dataplane is stopped
// (SIGSTOP, by the PID status gives) while db1 sends, so that its queue
// fills for certain.
func TestQueueFullDropsShown(t *testing.T) {
	l := observeLab(t)
	var st struct {
		PID     int    `json:"pid"`
		Metrics string `json:"metrics"`
	}
	l.emuJSON(&st, "status")
	before := l.node("db1").QueueDrops

	const sent, queue = 2000, 500 // queue: a TUN's default txqueuelen
	if err := syscall.Kill(st.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Registered after upLab's teardown, so it runs before it.
	t.Cleanup(func() { syscall.Kill(st.PID, syscall.SIGCONT) })
	l.mustExec("db1", "bash", "-c", fmt.Sprintf("for i in $(seq %d); do echo x > /dev/udp/203.0.113.10/9; done", sent))
	if err := syscall.Kill(st.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	got := l.node("db1").QueueDrops - before
	if got < sent-queue || got > sent {
		t.Errorf("status: db1's queueDrops rose by %d after %d datagrams into a stopped dataplane's queue of %d; want %d to %d", got, sent, queue, sent-queue, sent)
	}
	if r := emu(t, "status", "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "Queue full: the nodes' own interfaces dropped") {
		t.Errorf("status does not report the queue-full drops: %v", r)
	}
	series := `emulator_node_queue_full_drops_total{node="db1"}`
	if m := scrape(t, st.Metrics)[series]; m < float64(before+got) {
		t.Errorf("emulator_node_queue_full_drops_total for db1 = %v, want at least %d", m, before+got)
	}

	// A count that cannot be read (db1's eth0 renamed, so /proc/net/dev
	// has no eth0 in its namespace) is no sample, not a 0: rate() would
	// read 0 and then the count again as two resets and a burst.
	l.mustExec("db1", "sh", "-c", "ip link set eth0 down && ip link set eth0 name eth9")
	if m, ok := scrape(t, st.Metrics)[series]; ok && m < float64(before+got) {
		t.Errorf("with db1's eth0 unreadable, %s = %v: it went back from at least %d", series, m, before+got)
	}
}

// Flow logs record what NSGs decide, so a lab without any NSG attached
// (the default lab) logs nothing: `flowlog on` says so rather than
// leaving the user waiting for files that never come.
func TestFlowLogWithoutNSGSaysSo(t *testing.T) {
	l := upLab(t)
	r := emu(t, "flowlog", "--name", l.name, "on")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "NSG flow logs: on") || !strings.Contains(r.stdout, "no NSG is attached") {
		t.Errorf("emulator flowlog on in a lab without NSGs: %v; want it on, saying no NSG is attached", r)
	}
	var st struct {
		FlowLogs struct {
			NoNSG bool `json:"noNSG"`
		} `json:"flowLogs"`
	}
	l.emuJSON(&st, "status")
	if !st.FlowLogs.NoNSG {
		t.Error("status --json: flowLogs.noNSG is false in a lab without NSGs")
	}
}

// A flow that db1's NSG lets out and that is dropped further on, by
// ase1's NSG or at a closed port of ase1's VIP, never enters conntrack.
// db1's NSG logged it begin (A, B) and never end, or, at the VIP, not at
// all; Azure's source NSG sees it go out as any flow it allowed. Now it
// ends (E, with the SYNs it sent) once nothing of it came for the idle
// timeout, as conntrack ends an unanswered flow.
func TestFlowLogEndsFlowDroppedFurtherOn(t *testing.T) {
	file := writeTopology(t, "half-open.yaml",
		"        addressPrefix: 10.0.1.0/26\n", "        addressPrefix: 10.0.1.0/26\n        networkSecurityGroup: ase1-nsg\n",
		"        addressPrefix: 10.0.2.0/24\n", "        addressPrefix: 10.0.2.0/24\n        networkSecurityGroup: vm-nsg\n",
		"networkSecurityGroups: []\n", `flowLogs: {enabled: true}
connectionTracking: {idleTimeout: 5s}
networkSecurityGroups:
  - name: ase1-nsg
    securityRules:
      - {name: DenyDB1To8080, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: 10.0.2.0/24, destinationPortRange: "8080"}
  - name: vm-nsg
    securityRules:
      - {name: DenyTelnet, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPortRange: "23"}
`)
	l := upLab(t, "-f", file)
	var st struct {
		FlowLogs struct {
			Directory string `json:"directory"`
		} `json:"flowLogs"`
	}
	l.emuJSON(&st, "status")
	l.refused("db1", "10.0.1.6", 8080)
	l.refused("db1", "192.23.1.2", 8080)
	checks := []struct{ rule, src, dst, dport, dir, access, state string }{
		{"UserRule_DenyDB1To8080", "10.0.2.4", "10.0.1.6", "8080", "I", "D", "B"},
		{"DefaultRule_AllowVnetOutBound", "10.0.2.4", "10.0.1.6", "8080", "O", "A", "B"},
		{"DefaultRule_AllowVnetOutBound", "10.0.2.4", "10.0.1.6", "8080", "O", "A", "E"},
		{"DefaultRule_AllowInternetOutBound", "10.0.2.4", "192.23.1.2", "8080", "O", "A", "B"},
		{"DefaultRule_AllowInternetOutBound", "10.0.2.4", "192.23.1.2", "8080", "O", "A", "E"},
	}
	all := func(tuples map[string][]string) bool {
		for _, c := range checks {
			if !hasTuple(tuples[c.rule], c.src, c.dst, c.dport, "T", c.dir, c.access, c.state) {
				return false
			}
		}
		return true
	}
	var tuples map[string][]string
	if !waitFor(30*time.Second, func() bool { tuples = readFlowLogs(t, st.FlowLogs.Directory); return all(tuples) }) {
		for _, c := range checks {
			if !hasTuple(tuples[c.rule], c.src, c.dst, c.dport, "T", c.dir, c.access, c.state) {
				t.Errorf("flow logs lack %+v", c)
			}
		}
		for _, r := range []string{"UserRule_DenyDB1To8080", "DefaultRule_AllowVnetOutBound", "DefaultRule_AllowInternetOutBound"} {
			for _, tp := range tuples[r] {
				if strings.Contains(tp, ",8080,") {
					t.Logf("%s: %s", r, tp)
				}
			}
		}
	}
}

// A second lab asking for a metrics port that is taken is refused before
// it builds anything: no namespace of it is ever created (watched with
// inotify on /run/netns, where every lab's namespaces are named), and the
// error says what to do. Before, up built the whole lab, failed to
// listen, and tore it down again.
func TestMetricsPortTaken(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := os.MkdirAll("/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, "/run/netns", unix.IN_CREATE); err != nil {
		t.Fatal(err)
	}

	l := &lab{t: t, name: uniqueName()}
	t.Cleanup(func() { l.down() })
	r := emu(t, "up", "-d", "--name", l.name, "--metrics", held.Addr().String())
	if r.code != 1 || !strings.Contains(r.stderr, held.Addr().String()+": the address is in use") {
		t.Errorf("up --metrics on a taken port: %v; want exit 1 saying the address is in use", r)
	}
	var created []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			break
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
			if strings.HasPrefix(name, l.name+".") {
				created = append(created, name)
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
	if len(created) > 0 {
		t.Errorf("up --metrics on a taken port built %d namespaces (%s, ...) before it gave up; want none", len(created), created[0])
	}
	if left := l.leftovers(); len(left) > 0 {
		t.Errorf("a refused up left %s", strings.Join(left, "; "))
	}
}

// Every figure `status --json` shows has a series on the metrics page, or
// a reason below why not: an SRE watching a lab in Grafana sees what a
// user sees with status. Counters read after status are at least what
// status showed (they only grow). A status figure added later without a
// series fails here until it gets one or a reason.
func TestMetricsMatchStatus(t *testing.T) {
	l := observeLab(t)
	l.mustExec("db1", "curl", "-s", "-m", "5", "http://echo/")
	l.exec("ase1-w1", 10*time.Second, "nc", "-z", "-w", "2", "10.0.2.4", "1433") // denied by vm-nsg

	var raw map[string]any
	l.emuJSON(&raw, "status")
	var st struct {
		Metrics string
		Nodes   []struct {
			Name, Address                          string
			RxPackets, RxBytes, TxPackets, TxBytes float64
			Flows, QueueDrops                      float64
			Drops                                  map[string]float64
		}
		ASEs []struct {
			Name, Health string
			FrontEnds    []struct{ Name string }
		}
		NAT struct {
			Created, Expired, TableFull, Conflicts, MaxFlows float64
			Pools                                            []struct {
				Address, Proto  string
				Size, Exhausted float64
				Shares          []struct {
					Address         string
					Size, Exhausted float64
				}
			}
		}
		NSGs []struct {
			Name  string
			Rules []struct {
				Name, Direction, Access string
				Hits                    float64
			}
		}
		FlowLogs struct{ Lost float64 }
	}
	b, _ := json.Marshal(raw)
	json.Unmarshal(b, &st)
	m := scrape(t, st.Metrics)

	// What status shows as a number, and the series that carries it ("":
	// none, with why).
	covered := map[string]string{
		"pid":                            "", // the process collector's series are this process's (process_start_time_seconds...)
		"nodes[].rxPackets":              "emulator_node_rx_packets_total",
		"nodes[].rxBytes":                "emulator_node_rx_bytes_total",
		"nodes[].txPackets":              "emulator_node_tx_packets_total",
		"nodes[].txBytes":                "emulator_node_tx_bytes_total",
		"nodes[].flows":                  "emulator_node_flows_total",
		"nodes[].drops.*":                "emulator_node_drops_total",
		"nodes[].queueDrops":             "emulator_node_queue_full_drops_total",
		"drops.*":                        "emulator_drops_total",
		"ases[].frontEnds[].failures":    "emulator_frontend_probe_failures",
		"nat.flows":                      "emulator_conntrack_flows",
		"nat.maxFlows":                   "emulator_conntrack_max_flows",
		"nat.created":                    "emulator_conntrack_created_total",
		"nat.expired":                    "emulator_conntrack_expired_total",
		"nat.tableFull":                  "emulator_conntrack_table_full_total",
		"nat.conflicts":                  "emulator_conntrack_conflicts_total",
		"nat.poolExhausted":              "", // the sum of emulator_snat_pool_refused_total
		"nat.pools[].size":               "emulator_snat_pool_ports",
		"nat.pools[].inUse":              "emulator_snat_pool_ports_in_use",
		"nat.pools[].exhausted":          "emulator_snat_pool_refused_total",
		"nat.pools[].shares[].size":      "emulator_snat_share_ports",
		"nat.pools[].shares[].inUse":     "emulator_snat_share_ports_in_use",
		"nat.pools[].shares[].exhausted": "emulator_snat_share_refused_total",
		"nsgs[].rules[].priority":        "", // a property of the rule, not a measure
		"nsgs[].rules[].hits":            "emulator_nsg_rule_hits_total",
		"flowLogs.lost":                  "emulator_flowlog_lost_events_total",
		"process.rssBytes":               "process_resident_memory_bytes",
		"process.heapBytes":              "go_memstats_heap_alloc_bytes",
		"process.goroutines":             "go_goroutines",
		"process.connBudget":             "emulator_service_conn_budget",
		"process.conns":                  "emulator_service_conns",
		"process.refusedConns":           "emulator_service_conns_refused_total",
		"reader.bufferBytes":             "emulator_reader_buffer_bytes",
	}
	families := map[string]bool{}
	for k := range m {
		name, _, _ := strings.Cut(k, "{")
		families[name] = true
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if strings.HasSuffix(path, "drops") {
					k = "*" // by reason
				}
				walk(strings.TrimPrefix(path+"."+k, "."), c)
			}
		case []any:
			for _, c := range v {
				walk(path+"[]", c)
			}
		case float64:
			metric, ok := covered[path]
			if !ok {
				t.Errorf("status --json shows %s, and the metrics have no series for it (nor a reason here why not)", path)
			} else if metric != "" && !families[metric] {
				t.Errorf("status --json shows %s, but the metrics page has no %s", path, metric)
			}
		}
	}
	walk("", raw)

	// The README's table of series names every emulator_ family served,
	// and nothing that is not.
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section, _, _ := strings.Cut(string(readme[strings.Index(string(readme), "- **metrics**"):]), "\n- **")
	checking := false
	for _, a := range st.ASEs {
		checking = checking || a.Health == "checking"
	}
	documented := map[string]bool{}
	for _, name := range regexp.MustCompile("`(emulator_[a-z_]+)`").FindAllStringSubmatch(section, -1) {
		documented[name[1]] = true
		if name[1] == "emulator_ase_healthy" && checking {
			continue // absent until the first check
		}
		if !families[name[1]] {
			t.Errorf("the README's metrics section names %s, which the page does not have", name[1])
		}
	}
	for name := range families {
		if strings.HasPrefix(name, "emulator_") && !documented[name] {
			t.Errorf("the page has %s, which the README's metrics section does not name", name)
		}
	}

	// The counters themselves, series by series.
	atLeast := func(series string, want float64) {
		t.Helper()
		if got, ok := m[series]; !ok {
			t.Errorf("no series %s (status shows %v)", series, want)
		} else if got < want {
			t.Errorf("%s = %v, less than the %v status showed before", series, got, want)
		}
	}
	for _, n := range st.Nodes {
		atLeast(fmt.Sprintf(`emulator_node_rx_packets_total{node=%q}`, n.Name), n.RxPackets)
		atLeast(fmt.Sprintf(`emulator_node_rx_bytes_total{node=%q}`, n.Name), n.RxBytes)
		atLeast(fmt.Sprintf(`emulator_node_tx_packets_total{node=%q}`, n.Name), n.TxPackets)
		atLeast(fmt.Sprintf(`emulator_node_tx_bytes_total{node=%q}`, n.Name), n.TxBytes)
		atLeast(fmt.Sprintf(`emulator_node_flows_total{node=%q}`, n.Name), n.Flows)
		atLeast(fmt.Sprintf(`emulator_node_queue_full_drops_total{node=%q}`, n.Name), n.QueueDrops)
		for r, c := range n.Drops {
			atLeast(fmt.Sprintf(`emulator_node_drops_total{node=%q,reason=%q}`, n.Name, r), c)
		}
	}
	atLeast("emulator_conntrack_created_total", st.NAT.Created)
	atLeast("emulator_conntrack_expired_total", st.NAT.Expired)
	atLeast("emulator_conntrack_table_full_total", st.NAT.TableFull)
	atLeast("emulator_conntrack_conflicts_total", st.NAT.Conflicts)
	atLeast("emulator_conntrack_max_flows", st.NAT.MaxFlows)
	nodeAt := map[string]string{}
	for _, n := range st.Nodes {
		nodeAt[n.Address] = n.Name
	}
	shares := 0
	for _, p := range st.NAT.Pools {
		atLeast(fmt.Sprintf(`emulator_snat_pool_ports{address=%q,proto=%q}`, p.Address, p.Proto), p.Size)
		atLeast(fmt.Sprintf(`emulator_snat_pool_refused_total{address=%q,proto=%q}`, p.Address, p.Proto), p.Exhausted)
		for _, sh := range p.Shares {
			node := nodeAt[sh.Address]
			atLeast(fmt.Sprintf(`emulator_snat_share_ports{address=%q,node=%q,proto=%q}`, p.Address, node, p.Proto), sh.Size)
			atLeast(fmt.Sprintf(`emulator_snat_share_refused_total{address=%q,node=%q,proto=%q}`, p.Address, node, p.Proto), sh.Exhausted)
			shares++
		}
	}
	if shares == 0 {
		t.Error("status shows no SNAT pool shares; the default lab's ASEs have them (F17)")
	}
	denies := 0.0
	for _, g := range st.NSGs {
		for _, r := range g.Rules {
			atLeast(fmt.Sprintf(`emulator_nsg_rule_hits_total{access=%q,direction=%q,nsg=%q,rule=%q}`, r.Access, r.Direction, g.Name, r.Name), r.Hits)
			if r.Name == "DenyASE1SQL" {
				denies = r.Hits
			}
		}
	}
	if denies < 1 {
		t.Errorf("status shows %v hits of vm-nsg/DenyASE1SQL after ase1-w1 called db1:1433", denies)
	}
	atLeast("emulator_flowlog_lost_events_total", st.FlowLogs.Lost)
	for _, a := range st.ASEs {
		want := map[string]float64{"Healthy": 1, "Unhealthy": 0}
		if v, ok := want[a.Health]; ok {
			if got, ok := m[fmt.Sprintf(`emulator_ase_healthy{ase=%q}`, a.Name)]; !ok || got != v {
				t.Errorf("status: ASE %s %s; emulator_ase_healthy = %v (present %v), want %v", a.Name, a.Health, got, ok, v)
			}
		}
		for _, fe := range a.FrontEnds {
			if _, ok := m[fmt.Sprintf(`emulator_frontend_in_rotation{ase=%q,node=%q}`, a.Name, fe.Name)]; !ok {
				t.Errorf("no emulator_frontend_in_rotation for front-end %s of %s", fe.Name, a.Name)
			}
		}
	}
}

// Counters never go back across emulator apply, which would read as a
// reset to rate(): scaling an ASE down and up, and changing an NSG's
// rules. A node scaled away takes its series with it; one added back
// starts its own. A rule whose access apply turned from Allow to Deny
// counts no Deny it did not make: it starts from zero.
func TestMetricsAcrossApply(t *testing.T) {
	allow := `{name: ClientHTTP, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: 198.51.100.10, destinationPortRange: "80"}`
	nsg := withNSG("10.0.1.0/26", "ase1-nsg", allow)
	start := writeTopology(t, "start.yaml", nsg...)
	l := upLab(t, "-f", start, "--metrics", "127.0.0.1:0")
	var st struct{ Metrics string }
	l.emuJSON(&st, "status")
	for range 3 {
		l.mustExec("client", "curl", "-s", "-m", "5", "http://192.23.1.2/")
	}
	hits := func(m map[string]float64, access string) (float64, bool) {
		v, ok := m[fmt.Sprintf(`emulator_nsg_rule_hits_total{access=%q,direction="Inbound",nsg="ase1-nsg",rule="ClientHTTP"}`, access)]
		return v, ok
	}
	before := scrape(t, st.Metrics)
	if h, _ := hits(before, "Allow"); h < 3 {
		t.Fatalf("ClientHTTP allowed %v flows after 3 curls from client, want 3", h)
	}
	monotonic := func(step string, a, b map[string]float64) {
		t.Helper()
		for k, va := range a {
			if vb, ok := b[k]; ok && vb < va && strings.Contains(k, "_total") {
				t.Errorf("after %s, %s went back from %v to %v", step, k, va, vb)
			}
		}
	}

	deny := strings.Replace(allow, "access: Allow", "access: Deny", 1)
	smaller := writeTopology(t, "smaller.yaml", append(withNSG("10.0.1.0/26", "ase1-nsg", deny,
		`{name: AllowMgmt, priority: 200, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: "*", destinationPortRange: "454-455"}`),
		"    frontEnds: 2\n    workers: 2\n    apps:\n      - name: app1", "    frontEnds: 2\n    workers: 1\n    apps:\n      - name: app1")...)
	if r := emu(t, "apply", "--name", l.name, "-f", smaller); r.code != 0 {
		t.Fatalf("apply scaling ase1 to 1 worker and ClientHTTP to Deny: %v", r)
	}
	after := scrape(t, st.Metrics)
	monotonic("scaling ase1 down and changing its NSG", before, after)
	// emulator_lab_info names the file apply read: a new series, and the
	// old one gone from the page (not left at 1 beside it, which would
	// read as two labs behind one endpoint).
	var info []string
	for k := range after {
		if strings.HasPrefix(k, "emulator_lab_info{") {
			info = append(info, k)
		}
	}
	if want := fmt.Sprintf(`emulator_lab_info{lab=%q,topology=%q}`, l.name, smaller); len(info) != 1 || info[0] != want {
		t.Errorf("after apply -f %s, the page has %v; want only %s", smaller, info, want)
	}
	if _, ok := after[`emulator_node_rx_packets_total{node="ase1-w2"}`]; ok {
		t.Error("ase1-w2 was scaled away, and its series are still on the page")
	}
	if h, ok := hits(after, "Deny"); !ok || h != 0 {
		t.Errorf("ClientHTTP, turned to Deny, has %v denies (present %v) before client called again; want 0: its %v hits were Allows", h, ok, before[`emulator_nsg_rule_hits_total{access="Allow",direction="Inbound",nsg="ase1-nsg",rule="ClientHTTP"}`])
	}
	l.exec("client", 10*time.Second, "curl", "-s", "-m", "3", "http://192.23.1.2/")
	if h, _ := hits(scrape(t, st.Metrics), "Deny"); h < 1 {
		t.Errorf("ClientHTTP denied %v flows after client called again, want at least 1", h)
	}

	if r := emu(t, "apply", "--name", l.name, "-f", start); r.code != 0 {
		t.Fatalf("apply back to the start: %v", r)
	}
	again := scrape(t, st.Metrics)
	monotonic("scaling ase1 back up", after, again)
	if _, ok := again[`emulator_node_rx_packets_total{node="ase1-w2"}`]; !ok {
		t.Error("ase1-w2 was added back, and has no series")
	}
}

// The lab-wide drop counters are on the page at 0 from the first scrape,
// for every reason: a series that first appeared at 1 would hide its
// first drops from increase() and rate(), which need two samples.
func TestMetricsDropsStartAtZero(t *testing.T) {
	l := upLab(t, "--metrics", "127.0.0.1:0")
	var st struct{ Metrics string }
	l.emuJSON(&st, "status")
	before := scrape(t, st.Metrics)
	// A few reasons from each part of the dataplane (README): routing, the
	// gateway, NSGs, the load balancer, NAT, routes, impaired links.
	for _, reason := range []string{"broadcast", "ttl-exceeded", "nsg-inbound", "nsg-outbound", "port-closed", "snat-exhausted", "route-none", "asymmetric-route", "link-loss"} {
		if _, ok := before[fmt.Sprintf(`emulator_drops_total{reason=%q}`, reason)]; !ok {
			t.Errorf("first scrape has no emulator_drops_total{reason=%q}; want it at 0 until the first such drop", reason)
		}
	}
	series := `emulator_drops_total{reason="broadcast"}`
	if v := before[series]; v != 0 {
		t.Fatalf("%s = %v before anything sent to a broadcast address", series, v)
	}
	// ase1-subnet is 10.0.1.0/26: its broadcast address is dropped (README).
	l.exec("ase1-w1", 20*time.Second, "ping", "-b", "-c", "2", "-i", "0.2", "-W", "1", "10.0.1.63")
	if v := scrape(t, st.Metrics)[series]; v < 2 {
		t.Errorf("%s = %v after 2 pings of 10.0.1.63, want at least 2", series, v)
	}
}

// dnsQueryJSON is one of `dns --json`.
type dnsQueryJSON struct {
	Time    time.Time `json:"time"`
	Count   int       `json:"count"`
	Proto   string    `json:"proto"`
	Client  string    `json:"client"`
	Node    string    `json:"node"`
	Name    string    `json:"name"`
	Type    string    `json:"type"`
	Rcode   string    `json:"rcode"`
	Answers []string  `json:"answers"`
}

// `emulator dns` shows what the nodes asked Azure DNS and what it
// answered, as Azure's DNS query logs do: nslookup's A record of an app,
// dig's PTR and an NXDOMAIN, each with the node that asked; --filter reads
// as flows'.
func TestDNSQueryLog(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig is not installed (dnsutils)")
	}
	l := upLab(t)
	start := time.Now()
	l.mustExec("client", "nslookup", "app1.ase1.p.azurewebsites.net")
	l.mustExec("ase1-w1", "dig", "+tcp", "-x", "10.0.2.4")
	l.exec("db1", 20*time.Second, "dig", "nothere.example.net")
	var log []dnsQueryJSON
	l.emuJSON(&log, "dns")
	find := func(node, name, typ string) (dnsQueryJSON, int) {
		for i, q := range log {
			if q.Node == node && q.Name == name && q.Type == typ {
				return q, i
			}
		}
		t.Errorf("dns --json has no %s query of %s from %s: %+v", typ, name, node, log)
		return dnsQueryJSON{}, -1
	}
	a, ai := find("client", "app1.ase1.p.azurewebsites.net.", "A")
	ptr, pi := find("ase1-w1", "4.2.0.10.in-addr.arpa.", "PTR")
	nx, ni := find("db1", "nothere.example.net.", "A")
	for _, c := range []struct {
		q              dnsQueryJSON
		proto, client  string
		rcode, answers string
	}{
		{a, "udp", "198.51.100.10:", "NOERROR", "192.23.1.2"},
		{ptr, "tcp", "10.0.1.6:", "NOERROR", "db1.internal.cloudapp.net."},
		{nx, "udp", "10.0.2.4:", "NXDOMAIN", ""},
	} {
		if c.q.Proto != c.proto || !strings.HasPrefix(c.q.Client, c.client) || c.q.Rcode != c.rcode || strings.Join(c.q.Answers, ",") != c.answers ||
			c.q.Count != 1 || c.q.Time.Before(start.Add(-time.Second)) || c.q.Answers == nil {
			t.Errorf("dns --json logged %+v; want %s from %s..., %s, answers %q, once, since the test began", c.q, c.proto, c.client, c.rcode, c.answers)
		}
	}
	if !(ai < pi && pi < ni) {
		t.Errorf("dns --json lists the queries at %d, %d, %d; want them in the order they were asked", ai, pi, ni)
	}
	var some []dnsQueryJSON
	l.emuJSON(&some, "dns", "--filter", "tcp and host 10.0.1.6")
	if len(some) != 1 || some[0].Name != "4.2.0.10.in-addr.arpa." {
		t.Errorf("dns --filter 'tcp and host 10.0.1.6': %+v, want dig's PTR query alone", some)
	}
	r := emu(t, "dns", "--name", l.name)
	if r.code != 0 || !regexp.MustCompile(`(?m)^TIME\s+CLIENT\s+NAME\s+TYPE\s+RCODE\s+ANSWER\s+COUNT$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\s+client\s+app1\.ase1\.p\.azurewebsites\.net\.\s+A\s+NOERROR\s+192\.23\.1\.2\s+1$`).MatchString(r.stdout) {
		t.Errorf("dns: %v; want a table with client's query of app1", r)
	}
	if r := emu(t, "dns", "--name", l.name, "--filter", "host 203.0.113.99"); r.code != 0 || strings.TrimSpace(r.stdout) != `No queries match "host 203.0.113.99".` {
		t.Errorf("dns with a filter no query matches: %v", r)
	}
	if r := emu(t, "dns", "--name", l.name, "--filter", "host db1"); r.code != 2 || !strings.Contains(r.stderr, "not an IPv4 address") {
		t.Errorf("dns with a bad filter: %v, want exit 2 naming the fault", r)
	}
	if r := emu(t, "dns", "--name", uniqueName()); r.code != 1 || !strings.Contains(r.stderr, "is not running") {
		t.Errorf("dns of a lab that is not running: %v, want exit 1 saying so", r)
	}
}
