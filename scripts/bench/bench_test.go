package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aseemu/emulator/topology"
)

// The generated labs are valid topologies with the nodes and rules the
// harness relies on: ase1-w1 at 10.0.1.6, echo at 203.0.113.10, and an NSG
// of exactly 10 and 4,000 user rules whose last outbound rules allow the
// benchmark's traffic.
func TestPathLabs(t *testing.T) {
	for _, n := range []int{10, 4000} {
		top, err := topology.Parse("bench.yaml", []byte(pathLab(n)))
		if err != nil {
			t.Fatalf("pathLab(%d): %v", n, err)
		}
		if w := top.NodeByName("ase1-w1"); w == nil || w.Addr.String() != clientAddr {
			t.Errorf("pathLab(%d): ase1-w1 is %v, want %s", n, w, clientAddr)
		}
		if e := top.NodeByName("echo"); e == nil || e.Addr.String() != serverAddr {
			t.Errorf("pathLab(%d): echo is %v, want %s", n, e, serverAddr)
		}
		g := top.NSGByName("bench-nsg")
		if g == nil || len(g.Rules) != n {
			t.Fatalf("pathLab(%d): bench-nsg has %v rules", n, g)
		}
		if s := top.SubnetByName("ase1-subnet"); s.NSG != "bench-nsg" {
			t.Errorf("pathLab(%d): ase1-subnet's NSG is %q", n, s.NSG)
		}
		out := g.Effective(topology.Outbound)
		user := out[:len(out)-3]
		last := user[len(user)-2:]
		if last[0].Name != "AllowBenchTcpOut" || last[1].Name != "AllowBenchUdpOut" {
			t.Errorf("pathLab(%d): the last outbound rules are %s, %s", n, last[0].Name, last[1].Name)
		}
	}
}

func TestScaleLab(t *testing.T) {
	for _, n := range []int{10, 1000} {
		top, err := topology.Parse("scale.yaml", []byte(scaleLab(n)))
		if err != nil {
			t.Fatalf("scaleLab(%d): %v", n, err)
		}
		if len(top.Nodes) != n {
			t.Errorf("scaleLab(%d) has %d nodes", n, len(top.Nodes))
		}
	}
}

func TestKernelRuleset(t *testing.T) {
	rs := kernelRuleset()
	rules := 0
	inFilter := false
	for _, l := range strings.Split(rs, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "chain forward_filter"):
			inFilter = true
		case l == "}":
			inFilter = false
		case inFilter && l != "" && !strings.HasPrefix(l, "type "):
			rules++
		}
	}
	if rules != 10 {
		t.Errorf("the forward filter has %d rules, want 10:\n%s", rules, rs)
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/aseemu/emulator/nat
BenchmarkEstablished/original-2         	12345678	        61.50 ns/op	       0 B/op	       0 allocs/op
BenchmarkMemoryPerFlow-2   	1000000000	         0.25 ns/op	       237.4 bytes/flow	       0 B/op	       0 allocs/op
PASS
`
	got := parseBench(out)
	if len(got) != 2 {
		t.Fatalf("parsed %d lines", len(got))
	}
	if got[0].pkg != "github.com/aseemu/emulator/nat" || got[0].name != "BenchmarkEstablished/original" || got[0].metrics["ns/op"] != 61.5 {
		t.Errorf("first line: %+v", got[0])
	}
	if got[1].metrics["bytes/flow"] != 237.4 || got[1].metrics["allocs/op"] != 0 {
		t.Errorf("second line: %+v", got[1])
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{3, math.NaN(), 1, 2})
	if s.med != 2 || s.lo != 1 || s.hi != 3 || s.n != 3 || s.of != 4 {
		t.Errorf("summarize: %+v", s)
	}
	if got := s.format(0); got != "2 (1–3) [3 of 4 rounds]" {
		t.Errorf("format: %q", got)
	}
	if got := summarize([]float64{math.NaN()}).format(1); got != "n/a" {
		t.Errorf("format of nothing: %q", got)
	}
	r := ratios([]float64{2, 3}, []float64{1, 0})
	if r[0] != 2 || !math.IsNaN(r[1]) {
		t.Errorf("ratios: %v", r)
	}
	if got := num(1234567.891, 1); got != "1,234,567.9" {
		t.Errorf("num: %q", got)
	}
}

// The bench reads its own process's state and CPU time from /proc.
func TestStatFields(t *testing.T) {
	f, err := statFields(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if f[0] != "R" && f[0] != "S" {
		t.Errorf("state %q, want R or S", f[0])
	}
	before, err := cpuSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spinning must show as CPU time, in ticks of 10 ms.
	for deadline := time.Now().Add(10 * time.Second); ; {
		after, err := cpuSeconds(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after >= before+0.05 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time went from %.2f to %.2f s over 10 s of spinning", before, after)
		}
	}
}

// The machine's CPU time: busy, idle and steal kept apart, and the CPUs
// counted from their own lines.
func TestCPUTimes(t *testing.T) {
	const stat = `cpu  100 5 50 800 20 3 7 400 60 0
cpu0 50 2 25 400 10 1 4 200 30 0
cpu1 50 3 25 400 10 2 3 200 30 0
intr 12345
ctxt 678
`
	a, err := parseCPUTimes(stat)
	if err != nil {
		t.Fatal(err)
	}
	if a.busy != 100+5+50+3+7 || a.idle != 800+20 || a.cpus != 2 {
		t.Fatalf("parsed %+v", a)
	}
	b := a
	b.busy += 150 // 1.5 of 2 CPUs busy
	b.idle += 50
	if got := busyCPUs(a, b); got != 1.5 {
		t.Errorf("busyCPUs = %v, want 1.5", got)
	}
	if got := busyCPUs(a, a); !math.IsNaN(got) {
		t.Errorf("busyCPUs over no time = %v, want NaN", got)
	}
	for _, bad := range []string{"intr 1\n", "cpu  1 2 3\ncpu0 1 2 3\n", "cpu  1 2 x 4 5 6 7\ncpu0 1\n", "cpu  1 2 3 4 5 6 7\n"} {
		if _, err := parseCPUTimes(bad); err == nil {
			t.Errorf("parseCPUTimes(%q) took it", bad)
		}
	}

	// Spinning must show as busy time on the real machine.
	before, err := readCPUTimes()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		after, err := readCPUTimes()
		if err != nil {
			t.Fatal(err)
		}
		if after.busy >= before.busy+5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busy ticks went from %d to %d over 10 s of spinning", before.busy, after.busy)
		}
	}
}

// The cross-CPU interrupts: the RES and CAL rows summed over the CPUs and
// nothing else, the description's words left out; and a process's
// preemptions counted on the real machine.
func TestHandoffs(t *testing.T) {
	const interrupts = `           CPU0       CPU1
 36:          0    2084838 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
LOC:   63917278   62404733   Local timer interrupts
RES:    9330368    9122270   Rescheduling interrupts
CAL:   29036141   28047739   Function call interrupts
TLB:          0          0   TLB shootdowns
ERR:          0
`
	got, err := parseIPIs(interrupts)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(9330368 + 9122270 + 29036141 + 28047739); got != want {
		t.Errorf("parseIPIs = %v, want %v", got, want)
	}
	if _, err := parseIPIs("RES: 1 2 Rescheduling interrupts\n"); err == nil {
		t.Error("parseIPIs took a table without CAL")
	}
	if _, err := readIPIs(); err != nil {
		t.Errorf("this machine's /proc/interrupts: %v", err)
	}

	if n, err := statusField("Name:\tx\nvoluntary_ctxt_switches:\t7\nnonvoluntary_ctxt_switches:\t42\n", "nonvoluntary_ctxt_switches"); err != nil || n != 42 {
		t.Errorf("statusField = %v, %v; want 42", n, err)
	}
	if _, err := statusField("Name:\tx\n", "nonvoluntary_ctxt_switches"); err == nil {
		t.Error("statusField found a field that is not there")
	}
	if n, err := statusField("VmPeak:\t  40000 kB\nVmRSS:\t   32768 kB\n", "VmRSS"); err != nil || n != 32768 {
		t.Errorf("statusField(VmRSS) = %v, %v; want 32768, its kB left out", n, err)
	}
	if mib, err := vmRSS(os.Getpid()); err != nil || mib <= 0 {
		t.Errorf("vmRSS of the test itself = %v MiB, %v", mib, err)
	}
	// A path without a dataplane has no preemptions to count, and a
	// difference with a count that is not there stays NaN.
	h, err := (&path{name: "kernel"}).handoffsDuring(func() error { return nil })
	if err != nil || !math.IsNaN(h.preempted) || math.IsNaN(h.ipis) || h.ipis < 0 {
		t.Errorf("handoffsDuring on the kernel path = %+v, %v; want interrupts counted and preemptions NaN", h, err)
	}
	if _, err := (&path{}).handoffsDuring(func() error { return errors.New("run failed") }); err == nil {
		t.Error("handoffsDuring dropped the run's error")
	}
	if _, err := preemptions(os.Getpid()); err != nil {
		t.Errorf("preemptions of the test itself: %v", err)
	}
}

// A ratio next to its target prints with the decimals that tell it from
// the target, in both tables: 0.9997 fails and must not read 1.00.
func TestRatioBesideTarget(t *testing.T) {
	for _, c := range []struct {
		emu, kernel float64
		want        string
	}{
		{481.25, 481.4, "0.9997×"}, // misses by a hair: more decimals
		{481.4, 481.4, "1.00×"},    // the target itself
		{500, 481.4, "1.04×"},      // clear of it
		{390, 481.4, "0.81×"},
	} {
		res := newResults(&config{rounds: 1, udpSenders: []int{2}, skipScale: true, skipMicro: true})
		res.set("emulator", "udp_pps", 0, c.emu)
		res.set("kernel", "udp_pps", 0, c.kernel)
		var b strings.Builder
		w := func(format string, args ...any) { b.WriteString(fmt.Sprintf(format, args...)) }
		res.pathSection(w)
		res.targetSummary(w)
		seen := 0
		for line := range strings.Lines(b.String()) {
			if !strings.HasPrefix(line, "| UDP 64 B datagrams delivered, best sender count") {
				continue
			}
			seen++
			// The paths table's emulator / kernel cell, or the targets
			// table's measured cell.
			cells := strings.Split(line, " | ")
			cell := cells[1]
			if len(cells) > 4 {
				cell = cells[5]
			}
			if cell != c.want {
				t.Errorf("%v / %v: cell %q, want %q", c.emu, c.kernel, cell, c.want)
			}
		}
		if seen != 2 {
			t.Errorf("%v / %v: the UDP row in %d tables, want 2", c.emu, c.kernel, seen)
		}
	}
}

// A TCP measurement's CPU is split into the dataplane's and the rest, and
// the dataplane's rows, which only the emulator path has, show no figure
// or ratio for the other paths.
func TestDataplaneShare(t *testing.T) {
	res := newResults(&config{rounds: 1, udpSenders: []int{2}})
	emu, kern := &path{name: "emulator", dataplane: 1}, &path{name: "kernel"}
	// 8 Gbit/s is 1 GB a second, so CPUs busy are CPU-seconds per GB.
	recordTCP(res, emu, 0, "tcp1", 1, 8, cpuSample{busy: 1.5, dp: procCPU{user: 0.5, sys: 0.25}}, nil)
	recordTCP(res, kern, 0, "tcp1", 1, 8, cpuSample{busy: 1.2}, nil)
	for _, c := range []struct {
		path, key string
		want      float64
	}{
		{"emulator", "tcp1_cost", 1500},
		{"emulator", "tcp1_dp", 750},
		{"emulator", "tcp1_rest", 750},
		{"kernel", "tcp1_rest", 1200},
	} {
		if got := res.path[c.path][c.key][0]; math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s %s = %v, want %v", c.path, c.key, got, c.want)
		}
	}
	if got := res.path["emulator"]["tcp1_dp_sys"][0]; math.Abs(got-100.0/3) > 1e-9 {
		t.Errorf("dataplane's share in the kernel = %v%%, want 33.3%%", got)
	}
	if _, ok := res.path["kernel"]["tcp1_dp"]; ok {
		t.Error("the kernel path has a dataplane row")
	}

	var b strings.Builder
	res.pathSection(func(format string, args ...any) { b.WriteString(fmt.Sprintf(format, args...)) })
	rows := map[string]string{}
	for line := range strings.Lines(b.String()) {
		if f := strings.Split(line, " | "); len(f) > 1 {
			rows[strings.TrimPrefix(f[0], "| ")] = line
		}
	}
	if got, want := rows["CPU time per GB, 1 stream: the dataplane process alone (CPU-ms)"], "| — | — | 750 | — | — | — |"; !strings.Contains(got, want) {
		t.Errorf("dataplane row %q, want cells %q", got, want)
	}
	if got, want := rows["CPU time per GB, 1 stream: all but the dataplane (CPU-ms)"], "| n/a | 1,200 | 750 | n/a× | 0.62× |"; !strings.Contains(got, want) {
		t.Errorf("rest row %q, want cells %q", got, want)
	}
}

// The NSG comparison alternates the two sizes and leaves the lab with the
// 10-rule NSG that the other measurements use.
func TestNSGRuns(t *testing.T) {
	if nsgRuns[0] != 10 || nsgRuns[len(nsgRuns)-1] != 10 {
		t.Errorf("nsgRuns %v: want it to start and end with the 10-rule NSG", nsgRuns)
	}
	for i := 1; i < len(nsgRuns); i++ {
		if nsgRuns[i] == nsgRuns[i-1] {
			t.Errorf("nsgRuns %v: two runs of %d rules in a row", nsgRuns, nsgRuns[i])
		}
	}
}

// snmpCounter reads a counter from the second line of its protocol, by
// the first line's names, and not another protocol's of the same name.
func TestSNMPCounter(t *testing.T) {
	const snmp = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 100
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
Udp: 931638 0 2068836 12 2068836 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
UdpLite: 0 0 0 0 7 0
`
	cases := []struct {
		proto, name string
		want        uint64
		ok          bool
	}{
		{"Udp", "RcvbufErrors", 2068836, true},
		{"Udp", "InDatagrams", 931638, true},
		{"UdpLite", "RcvbufErrors", 7, true},
		{"Ip", "InReceives", 100, true},
		{"Udp", "NoSuchCounter", 0, false},
		{"Tcp", "RcvbufErrors", 0, false},
	}
	for _, c := range cases {
		got, ok := snmpCounter([]byte(snmp), c.proto, c.name)
		if got != c.want || ok != c.ok {
			t.Errorf("snmpCounter(%s, %s) = %d, %v; want %d, %v", c.proto, c.name, got, ok, c.want, c.ok)
		}
	}
	if _, ok := snmpCounter([]byte("Udp: InDatagrams RcvbufErrors\nUdp: 5\n"), "Udp", "RcvbufErrors"); ok {
		t.Error("snmpCounter of a values line too short: ok")
	}
}
