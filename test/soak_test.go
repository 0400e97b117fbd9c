package test

import (
	"debug/buildinfo"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// soakFor is how long TestSoak keeps the lab under load: a minute in
// `make test`, ten in `make soak` (go test ./test/ -run TestSoak -soak 10m).
var soakFor = flag.Duration("soak", time.Minute, "how long TestSoak runs its load")

// Short connection-tracking timeouts, so the table drains within seconds of
// the load stopping. Every flow of the load sends at least every few
// seconds (iperf3 runs last soakIperf), so none expires while in use. A
// small table too: the default one (262144 flows) is a 64 MiB slab that is
// allocated at once but touched only as flows reach into it, which sets the
// Go heap's first collection so high that RSS climbs for a minute or two
// before it levels off, longer than the short soak.
const (
	soakConntrack = "connectionTracking: {maxFlows: 16384, idleTimeout: 12s, finTimeout: 3s, rstTimeout: 2s}\n"
	soakIdle      = 12 * time.Second
	soakIperf     = "5" // seconds per iperf3 run, under the idle timeout
	soakSample    = 10 * time.Second
)

// soakRow is one row of the soak's table.
type soakRow struct {
	at         time.Duration
	rss        uint64
	buffers    uint64 // of rss, the packet buffers' pages (status reader.bufferBytes)
	goroutines int
	flows      int
	created    uint64
	drops      int
}

type soakStatus struct {
	statusJSON
	NAT struct {
		Flows   int    `json:"flows"`
		Created uint64 `json:"created"`
	} `json:"nat"`
	Process struct {
		RSSBytes   uint64 `json:"rssBytes"`
		Goroutines int    `json:"goroutines"`
	} `json:"process"`
}

func (l *lab) soakRow(start time.Time) soakRow {
	l.t.Helper()
	var s soakStatus
	l.emuJSON(&s, "status")
	r := soakRow{at: time.Since(start).Round(time.Second), rss: s.Process.RSSBytes, buffers: s.Reader.BufferBytes, goroutines: s.Process.Goroutines,
		flows: s.NAT.Flows, created: s.NAT.Created}
	for _, c := range s.Drops {
		r.drops += c
	}
	return r
}

// The soak: bulk TCP, UDP, a churn of short connections through SNAT,
// ping, and an NSG change applied every 3 s, all at once. Every 10 s it
// records the dataplane's RSS and goroutines, the flow table and the drops.
// It checks that RSS, less the packet buffers, and goroutines stay within
// 10% of their level after warm-up, that a long-lived TCP connection
// carries data across every apply, that no load run fails, and that the
// flow table drains back to its idle level once the load stops.
func TestSoak(t *testing.T) {
	dur := *soakFor
	warm := max(dur/6, 20*time.Second)
	nsgA := withNSG("10.0.2.0/24", "soak-nsg",
		"{name: DenyOther, priority: 200, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: '*', sourcePortRange: '*', destinationAddressPrefix: '*', destinationPortRange: 5555}")
	nsgB := withNSG("10.0.2.0/24", "soak-nsg",
		"{name: DenyOther, priority: 210, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: '*', sourcePortRange: '*', destinationAddressPrefix: '*', destinationPortRange: 5556}",
		"{name: AllowSql, priority: 300, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: VirtualNetwork, sourcePortRange: '*', destinationAddressPrefix: '*', destinationPortRange: 1433}")
	conntrack := []string{"# No NSG is attached", soakConntrack + "# No NSG is attached"}
	fileA := writeTopology(t, "soak-a.yaml", append(nsgA, conntrack...)...)
	fileB := writeTopology(t, "soak-b.yaml", append(nsgB, conntrack...)...)
	l := upLab(t, "-f", fileA)
	start := time.Now()

	// Idle level of the flow table: the lab's own probes and health checks.
	time.Sleep(soakIdle)
	idle := l.soakRow(start)

	l.background("ase1-w1", "iperf3", "-s", "-p", "5201")
	l.background("client", "iperf3", "-s", "-p", "5202")
	long := l.background("ase1-w1", "nc", "-l", "7001")
	l.waitListening("ase1-w1", 5201)
	l.waitListening("client", 5202)
	l.waitListening("ase1-w1", 7001)
	// One line every 200 ms on one TCP connection for the whole soak.
	talker := l.background("db1", "sh", "-c", "i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done | nc 10.0.1.6 7001")
	type loadRun struct {
		what string
		b    *bg
	}
	// Each loop prints ok or FAIL and the failure's output per run, and
	// pauses between runs: an iperf3 server takes a moment to accept the
	// next test, and the churn need not take a core of a shared machine.
	loop := func(what, node, cmd, pause string) loadRun {
		return loadRun{what, l.background(node, "sh", "-c",
			"while :; do if out=$("+cmd+" 2>&1); then echo ok; else echo FAIL; echo \"$out\" | tail -3; fi; sleep "+pause+"; done")}
	}
	load := []loadRun{
		loop("bulk TCP db1 -> ase1-w1", "db1", "iperf3 -c 10.0.1.6 -p 5201 -b 100M -t "+soakIperf, "0.5"),
		loop("UDP ase2-w1 -> client, SNAT", "ase2-w1", "iperf3 -c 198.51.100.10 -p 5202 -u -b 10M -t "+soakIperf, "0.5"),
		loop("curl ase1-w2 -> echo, SNAT", "ase1-w2", "curl -s -m 5 -o /dev/null http://203.0.113.10/", "0.02"),
		loop("nc ase2-w2 -> db1:1433", "ase2-w2", "nc -w 2 -z 10.0.2.4 1433", "0.02"),
	}
	pinger := l.background("ase3-w1", "ping", "-i", "0.2", "-W", "2", "203.0.113.10") // ICMP echo through SNAT

	// The warm-up runs from here: samples before warmEnd are not checked.
	warmEnd := time.Since(start).Round(time.Second) + warm
	var rows []soakRow
	applies, applyFails := 0, 0
	next := time.Now().Add(soakSample)
	for end := time.Now().Add(dur); time.Now().Before(end); {
		time.Sleep(3 * time.Second)
		file := fileA
		if applies%2 == 0 {
			file = fileB
		}
		applies++
		if r := emu(t, "apply", "--name", l.name, "-f", file); r.code != 0 {
			applyFails++
			t.Errorf("apply %d: %v", applies, r)
		}
		if time.Now().After(next) {
			rows = append(rows, l.soakRow(start))
			next = next.Add(soakSample)
		}
	}
	if talker.exited(0) {
		t.Errorf("the long-lived connection broke during the soak: %s", talker.stderr.String())
	}
	for _, lr := range load {
		lr.b.kill()
		<-lr.b.done
	}
	talker.kill()
	<-talker.done
	pinger.kill()
	<-pinger.done
	replies := strings.Count(pinger.stdout.String(), " bytes from ")
	received := strings.Fields(long.wait().stdout)
	for i, s := range received {
		if s != strconv.Itoa(i) {
			t.Errorf("the long-lived connection lost data: line %d is %q", i, s)
			break
		}
	}

	// Drain: every flow of the load expires within the idle timeout and
	// the sweep; the table returns to its idle level. So do the
	// goroutines, once the last connections of the load have closed and a
	// round of health checks (F16: a goroutine a check, and their HTTP
	// connections') has ended: one sample taken at once read 282 against
	// 219 idle in a CI run, where a leak would stay.
	deadline := time.Now().Add(soakIdle + 10*time.Second)
	drained := l.soakRow(start)
	for (drained.flows > idle.flows+idle.flows/10+5 || drained.goroutines > idle.goroutines+idle.goroutines/10) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
		drained = l.soakRow(start)
	}

	// A run may fail for want of CPU on a shared machine (curl -m 5 and nc
	// -w 2 time out); more than 1% of a loop's runs failing is a fault.
	var runs strings.Builder
	for _, lr := range load {
		out := lr.b.stdout.String()
		f := strings.Count(out, "FAIL\n")
		n := strings.Count(out, "ok\n") + f
		if f > n/100 {
			t.Errorf("%s: %d of %d runs failed", lr.what, f, n)
		}
		fmt.Fprintf(&runs, "%s: %d runs, %d failed\n", lr.what, n, f)
		if i := strings.LastIndex(out, "FAIL\n"); i >= 0 {
			fmt.Fprintf(&runs, "  last failure: %q\n", strings.SplitN(out[i+5:], "ok\n", 2)[0])
		}
	}
	report := soakTable(idle, rows, drained, warmEnd)
	report += runs.String() + fmt.Sprintf("ping ase3-w1 -> echo, SNAT: %d replies\napplies: %d (%d failed)\nlong-lived TCP db1 -> ase1-w1: %d lines, in order, across every apply\n",
		replies, applies, applyFails, len(received))
	t.Logf("soak of %v:\n%s", dur, report)
	if path := os.Getenv("SOAK_REPORT"); path != "" {
		os.WriteFile(path, []byte(report), 0o644)
	}

	if drained.flows > idle.flows+idle.flows/10+5 {
		t.Errorf("the flow table did not drain: %d flows %v after the load stopped, %d when idle", drained.flows, soakIdle+10*time.Second, idle.flows)
	}
	if len(received) < int(dur/time.Second) {
		t.Errorf("the long-lived connection carried %d lines in %v, want one per 200 ms", len(received), dur)
	}
	if want := int(dur / (200 * time.Millisecond) / 2); replies < want {
		t.Errorf("ping through SNAT: %d replies, want at least %d (half of one per 200 ms)", replies, want)
	}
	if drained.goroutines > idle.goroutines+idle.goroutines/10 {
		t.Errorf("goroutines: %d after the load, %d before it", drained.goroutines, idle.goroutines)
	}
	// Under the race detector (make integration-race) RSS climbs with the
	// goroutines and flows the load creates, whatever the dataplane does:
	// 130 to 145 MiB over 40 s of load, where the same soak without -race
	// stayed at 36.7-37.2 MiB. So only the plain build's RSS is checked.
	race := raceBuild(t, emulator)
	if race {
		t.Logf("%s is built with -race: its RSS is not checked", emulator)
	}
	var ref *soakRow
	for i := range rows {
		if rows[i].at < warmEnd {
			continue
		}
		if ref == nil {
			ref = &rows[i]
			continue
		}
		r := rows[i]
		// The packet buffers are left out: the pages packets reach stay
		// resident until a sweep after the last long packet gives them
		// back, and bulk TCP every few seconds keeps them from it, so they
		// move by MiBs in steps (2.0 to 3.8 MiB between two samples, with
		// RSS 35.4 to 39.6 MiB, failing a check of RSS alone), bounded by
		// the buffers.
		if rest, refRest := float64(r.rss-r.buffers), float64(ref.rss-ref.buffers); !race && (rest > 1.1*refRest || rest < 0.9*refRest) {
			t.Errorf("RSS less the packet buffers at %v is %d, more than 10%% from %d at %v", r.at, r.rss-r.buffers, ref.rss-ref.buffers, ref.at)
		}
		// Slack for the connections in flight when the sample is taken: the
		// lab's services run in the dataplane process, a goroutine or two
		// per connection. A burst of them can pass the slack for one
		// sample (a 10-minute soak saw 282 once, 236 before and after), so
		// a sample fails only if the next one is out of bounds too: a leak
		// stays, a burst does not.
		out := func(g int) bool {
			d := g - ref.goroutines
			return d > ref.goroutines/10+16 || -d > ref.goroutines/10+16
		}
		if out(r.goroutines) && (i+1 == len(rows) || out(rows[i+1].goroutines)) {
			t.Errorf("goroutines at %v are %d, more than 10%% (+16) from %d at %v, and stay there", r.at, r.goroutines, ref.goroutines, ref.at)
		}
	}
	if ref == nil {
		t.Errorf("no sample after the warm-up of %v", warm)
	}
}

// soakTable prints the samples as a Markdown table.
func soakTable(idle soakRow, rows []soakRow, drained soakRow, warmEnd time.Duration) string {
	var b strings.Builder
	b.WriteString("| time | phase | RSS MiB | of it packet buffers | goroutines | flows | flows created | drops |\n|---|---|---|---|---|---|---|---|\n")
	line := func(r soakRow, phase string) {
		fmt.Fprintf(&b, "| %v | %s | %.1f | %.1f | %d | %d | %d | %d |\n", r.at, phase, float64(r.rss)/(1<<20), float64(r.buffers)/(1<<20), r.goroutines, r.flows, r.created, r.drops)
	}
	line(idle, "idle")
	for _, r := range rows {
		phase := "load"
		if r.at < warmEnd {
			phase = "load (warm-up)"
		}
		line(r, phase)
	}
	line(drained, "drained")
	return b.String()
}

// raceBuild says whether the binary at path was built with -race.
func raceBuild(t *testing.T, path string) bool {
	t.Helper()
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s's build settings: %v", path, err)
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
