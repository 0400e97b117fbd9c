package main

// Results, their statistics (median and min-max over rounds, ratios to the
// kernel path of the same round) and the report: a Markdown document that is
// both printed and written to BENCHMARKS.md.

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

type results struct {
	cfg      *config
	machine  machine
	duration time.Duration

	path    map[string]map[string][]float64 // path -> metric -> per round (NaN: failed)
	pathErr map[string]string               // path -> why it could not be set up
	errs    map[string]string               // "path/metric" -> first error

	lab           string
	reader        string         // how the emulator's workers read (status)
	verify        map[int]string // NSG user rules -> emulator verify's answer after the first apply of that size
	nsgErr        string
	kernelSNAT    int64
	labStatusTail string

	scale     map[int]map[string][]float64
	scaleErr  map[int][]string
	scaleDown map[int][]string

	micro      map[string]map[string][]float64 // "pkg.Benchmark" -> unit -> per count
	microOrder []string
	microErr   string
	microCmd   string

	notes []string
}

func newResults(cfg *config) *results {
	return &results{
		cfg: cfg, path: map[string]map[string][]float64{}, pathErr: map[string]string{}, errs: map[string]string{},
		scale: map[int]map[string][]float64{}, scaleErr: map[int][]string{}, scaleDown: map[int][]string{},
		micro: map[string]map[string][]float64{}, verify: map[int]string{},
	}
}

func nanSlice(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

func (r *results) set(path, metric string, round int, v float64) {
	if r.path[path] == nil {
		r.path[path] = map[string][]float64{}
	}
	if r.path[path][metric] == nil {
		r.path[path][metric] = nanSlice(r.cfg.rounds)
	}
	r.path[path][metric][round] = v
}

func (r *results) fail(path, metric string, err error) {
	k := path + "/" + metric
	if _, ok := r.errs[k]; !ok {
		r.errs[k] = err.Error()
	}
}

func (r *results) note(s string) { r.notes = append(r.notes, s) }

func (r *results) setScale(n int, metric string, round int, v float64) {
	if r.scale[n] == nil {
		r.scale[n] = map[string][]float64{}
	}
	if r.scale[n][metric] == nil {
		r.scale[n][metric] = nanSlice(r.cfg.scaleRounds)
	}
	r.scale[n][metric][round] = v
}

func (r *results) scaleFail(n int, err error) { r.scaleErr[n] = append(r.scaleErr[n], err.Error()) }

func (r *results) scaleDownMsg(n, round int, msg string) {
	r.scaleDown[n] = append(r.scaleDown[n], fmt.Sprintf("round %d: %q", round+1, msg))
}

// stat is the median and range of the rounds that produced a number.
type stat struct {
	med, lo, hi float64
	n, of       int
}

func summarize(xs []float64) stat {
	var ok []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			ok = append(ok, x)
		}
	}
	s := stat{n: len(ok), of: len(xs), med: math.NaN(), lo: math.NaN(), hi: math.NaN()}
	if len(ok) == 0 {
		return s
	}
	slices.Sort(ok)
	s.lo, s.hi = ok[0], ok[len(ok)-1]
	if len(ok)%2 == 1 {
		s.med = ok[len(ok)/2]
	} else {
		s.med = (ok[len(ok)/2-1] + ok[len(ok)/2]) / 2
	}
	return s
}

// ratios divides a by b round by round.
func ratios(a, b []float64) []float64 {
	out := nanSlice(max(len(a), len(b)))
	for i := range min(len(a), len(b)) {
		if b[i] != 0 {
			out[i] = a[i] / b[i]
		}
	}
	return out
}

func num(v float64, dec int) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	s := fmt.Sprintf("%.*f", dec, v)
	// Thousands separators for big numbers, for reading.
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	s = b.String()
	if neg {
		s = "-" + s
	}
	if frac != "" {
		s += "." + frac
	}
	return s
}

func (s stat) format(dec int) string {
	if s.n == 0 {
		return "n/a"
	}
	out := num(s.med, dec)
	if s.n > 1 {
		out += fmt.Sprintf(" (%s–%s)", num(s.lo, dec), num(s.hi, dec))
	}
	if s.n < s.of {
		out += fmt.Sprintf(" [%d of %d rounds]", s.n, s.of)
	}
	return out
}

// formatBeside is format with as many more decimals, up to three, as it
// takes for a median that is not the target not to print as the target:
// a ratio of 0.9997 beside a FAIL reads 0.9997, not 1.00.
func (s stat) formatBeside(target float64, dec int) string {
	d := dec
	for d < dec+3 && s.n > 0 && s.med != target && num(s.med, d) == num(target, d) {
		d++
	}
	return s.format(d)
}

func mark(ok bool) string {
	if ok {
		return "✅ pass"
	}
	return "❌ FAIL"
}

// check reports a median against a target; n/a if there is no median.
func check(s stat, pass func(float64) bool) string {
	if s.n == 0 {
		return "n/a (not measured)"
	}
	return mark(pass(s.med))
}

type pathMetric struct {
	key, label, unit string
	dec              int
	ratioDec         int
	target           float64 // minimum emulator/kernel ratio; 0: none
	noRatio          bool
	dataplane        bool // measured on the emulator path only: its dataplane process
}

// metrics is pathMetrics with a row per UDP sender count after the best.
func (r *results) metrics() []pathMetric {
	var out []pathMetric
	for _, m := range pathMetrics {
		out = append(out, m)
		if m.key == "udp_senders" {
			for _, n := range r.cfg.udpSenders {
				out = append(out, pathMetric{key: fmt.Sprintf("udp_pps_%d", n), label: fmt.Sprintf("UDP 64 B delivered with %d sender(s)", n), unit: "kpps", dec: 0, ratioDec: 2})
			}
		}
	}
	return out
}

var pathMetrics = slices.Concat(tcpMetrics("tcp1", "1 stream", 1.0), tcpMetrics("tcp4", "4 streams", 0.8), []pathMetric{
	{key: "udp_pps", label: "UDP 64 B datagrams delivered, best sender count", unit: "kpps", dec: 0, ratioDec: 2, target: 1.0},
	{key: "udp_offered", label: "UDP sent at that sender count (offered load)", unit: "kpps", dec: 0, ratioDec: 2},
	{key: "udp_loss", label: "UDP loss at that sender count", unit: "%", dec: 1, noRatio: true},
	{key: "udp_client_drop", label: "UDP dropped at the client's own interface, at that count (part of the loss)", unit: "%", dec: 1, noRatio: true},
	{key: "udp_server_drop", label: "UDP dropped at the server's full socket buffer, at that count (part of the loss)", unit: "%", dec: 1, noRatio: true},
	{key: "udp_dp", label: "UDP: the dataplane's CPU time per datagram it carried to the server, at that count", unit: "µs", dec: 2, dataplane: true},
	{key: "udp_senders", label: "UDP sender count that delivered most", unit: "senders", dec: 0, noRatio: true},
	{key: "rr", label: "TCP request/response (1 B each way)", unit: "round trips/s", dec: 0, ratioDec: 2, target: 0.9},
	{key: "rr_p50", label: "Request/response latency p50", unit: "µs", dec: 1, ratioDec: 2},
	{key: "rr_p99", label: "Request/response latency p99", unit: "µs", dec: 1, ratioDec: 2},
	{key: "rr_dp", label: "the dataplane's CPU time per round trip", unit: "µs", dec: 1, dataplane: true},
	{key: "rr_ipi", label: "cross-CPU interrupts per round trip, the whole machine", unit: "interrupts", dec: 2, ratioDec: 2},
	{key: "rr_dp_preempted", label: "the dataplane's threads preempted per round trip", unit: "preemptions", dec: 2, dataplane: true},
	{key: "crr", label: "New TCP connections", unit: "conn/s", dec: 0, ratioDec: 2, target: 1.0},
	{key: "crr_dp", label: "the dataplane's CPU time per new connection", unit: "µs", dec: 1, dataplane: true},
})

// tcpMetrics is the rows of one TCP measurement (measureTCP): the
// throughput, with its target, and what it cost the CPUs.
func tcpMetrics(key, streams string, target float64) []pathMetric {
	perGB := "CPU time per GB, " + streams + ": "
	return []pathMetric{
		{key: key, label: "TCP throughput, " + streams, unit: "Gbit/s", dec: 2, ratioDec: 2, target: target},
		{key: key + "_cpu", label: "CPUs busy during " + streams + ", the whole machine", unit: "CPUs", dec: 2, ratioDec: 2},
		{key: key + "_cost", label: "CPU time per GB delivered, " + streams, unit: "CPU-ms", dec: 0, ratioDec: 2},
		{key: key + "_dp", label: perGB + "the dataplane process alone", unit: "CPU-ms", dec: 0, dataplane: true},
		{key: key + "_dp_sys", label: perGB + "the dataplane's share in the kernel", unit: "%", dec: 0, dataplane: true},
		{key: key + "_rest", label: perGB + "all but the dataplane", unit: "CPU-ms", dec: 0, ratioDec: 2},
	}
}

type machine struct {
	date, cpu, kernel, mem, goVersion, iperf string
	nproc                                    int
	syscall                                  time.Duration
	autogroup                                string // "on", "off" or "not in this kernel"
	loadStart, loadEnd                       string
	otherNetns                               int
}

func (m machine) summary() string {
	return fmt.Sprintf("%d CPUs (%s), kernel %s, %s, a system call %v", m.nproc, m.cpu, m.kernel, m.mem, m.syscall)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machineInfo(cfg *config) machine {
	m := machine{date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), nproc: runtime.NumCPU(), loadStart: loadavg(), syscall: syscallCost()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	m.autogroup = "not in this kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err == nil {
		m.autogroup = map[bool]string{true: "on", false: "off"}[strings.TrimSpace(string(b)) == "1"]
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			var kb float64
			if _, err := fmt.Sscanf(l, "MemTotal: %f kB", &kb); err == nil {
				m.mem = fmt.Sprintf("%.1f GiB RAM", kb/(1<<20))
			}
		}
	}
	if out, err := exec.Command(cfg.goCmd, "version").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("iperf3", "--version").Output(); err == nil {
		m.iperf, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	if ents, err := os.ReadDir("/run/netns"); err == nil {
		m.otherNetns = len(ents)
	}
	return m
}

// markdown renders the whole report.
func (r *results) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cfg := r.cfg
	w("# Benchmarks\n\n")
	w("Written by `sudo make bench` (`scripts/bench/`) for issue 6: the emulator's dataplane against the kernel's own forwarding with nftables SNAT, in one run on one machine. Absolute numbers vary between machines; the ratios to the kernel path of the same round are the claim.\n\n")
	w("- Date: %s; the harness ran for %s (after `make build`).\n", r.machine.date, r.duration.Round(time.Second))
	w("- Machine: %d CPUs, %s; kernel %s; %s. A bare system call (`getppid`) takes %d ns: the emulator's path makes system calls per packet that the kernel's does not, so its ratios fall where this is dear. The scheduler's autogroups (`kernel.sched_autogroup_enabled`) are %s: where on, the emulator, which `up -d` starts in a session of its own, gets as much CPU under load as the harness's senders and receivers together.\n", r.machine.nproc, r.machine.cpu, r.machine.kernel, r.machine.mem, r.machine.syscall.Nanoseconds(), r.machine.autogroup)
	w("- Software: %s; %s.\n", r.machine.goVersion, r.machine.iperf)
	w("- Load average (1/5/15 min) at the start: %s; at the end: %s. Network namespaces present when it started (other labs or tests on the machine): %d.\n", r.machine.loadStart, r.machine.loadEnd, r.machine.otherNetns)
	w("- Command: `sudo make bench` (equivalently `scripts/bench/bench.sh`). Rounds: %d of the paths, %d of the scale labs, `-count %d` of the micro-benchmarks. Each cell is the median, with the min–max of the rounds in parentheses.\n\n", cfg.rounds, cfg.scaleRounds, cfg.microCount)

	if !cfg.skipPaths {
		r.pathSection(w)
	}
	if !cfg.skipScale {
		r.scaleSection(w)
	}
	if !cfg.skipMicro {
		r.microSection(w)
	}
	r.targetSummary(w)
	r.methodSection(w)
	if len(r.notes) > 0 {
		w("## Notes from this run\n\n")
		for _, n := range r.notes {
			w("- %s\n", n)
		}
		w("\n")
	}
	if !cfg.skipPaths || !cfg.skipScale {
		r.rawSection(w)
	}
	return b.String()
}

// nsgRatio is, round by round, the new-connection rate with 4,000 rules
// over the rate with 10 (each the mean of its runs in the round, nsgRuns).
func (r *results) nsgRatio() stat {
	return summarize(ratios(r.path["emulator"]["crr_nsg4000"], r.path["emulator"]["crr_nsg10"]))
}

func (r *results) pathStat(path, metric string) stat { return summarize(r.path[path][metric]) }

func (r *results) ratioStat(path, metric string) stat {
	return summarize(ratios(r.path[path][metric], r.path["kernel"][metric]))
}

func (r *results) pathSection(w func(string, ...any)) {
	w("## The three paths\n\n")
	w("Client 10.0.1.6, server 203.0.113.10. **direct**: one veth pair. **kernel**: veth → router namespace (ip_forward, nftables SNAT of 10.0.1.0/26 to 192.23.1.2, stateful forward filter of 10 rules) → veth. **emulator**: ase1-w1 → the dataplane (SNAT to the VIP 192.23.1.2, from ase1-w1's own 16,000 ports, NSG bench-nsg of 10 user rules on ase1-subnet) → echo.\n\n")
	if r.reader != "" {
		w("The emulator's dataplane read the node interfaces with %s (its status).\n\n", r.reader)
	}
	for p, e := range r.pathErr {
		w("- The **%s** path could not be set up, so its column says n/a: %s\n", p, e)
	}
	if len(r.pathErr) > 0 {
		w("\n")
	}
	w("| metric | direct | kernel | emulator | direct / kernel | emulator / kernel | target (emulator / kernel) |\n")
	w("|---|---:|---:|---:|---:|---:|---|\n")
	for _, m := range r.metrics() {
		row := []string{fmt.Sprintf("%s (%s)", m.label, m.unit)}
		if m.dataplane {
			row = append(row, "—", "—", r.pathStat("emulator", m.key).format(m.dec), "—", "—", "—")
			w("| %s |\n", strings.Join(row, " | "))
			continue
		}
		for _, p := range []string{"direct", "kernel", "emulator"} {
			row = append(row, r.pathStat(p, m.key).format(m.dec))
		}
		if m.noRatio {
			row = append(row, "—", "—")
		} else {
			emu := r.ratioStat("emulator", m.key)
			cell := emu.format(m.ratioDec)
			if m.target > 0 {
				cell = emu.formatBeside(m.target, m.ratioDec)
			}
			row = append(row, r.ratioStat("direct", m.key).format(m.ratioDec)+"×", cell+"×")
		}
		switch {
		case m.target > 0:
			s := r.ratioStat("emulator", m.key)
			row = append(row, fmt.Sprintf("≥ %.1f×: %s", m.target, check(s, func(v float64) bool { return v >= m.target })))
		case m.key == "rr_p50" || m.key == "rr_p99":
			row = append(row, "— (lower is better)")
		default:
			row = append(row, "—")
		}
		w("| %s |\n", strings.Join(row, " | "))
	}
	w("\n")
	top := slices.Max(r.cfg.udpSenders)
	noted := false
	for _, p := range []string{"direct", "kernel", "emulator"} {
		if s := r.pathStat(p, "udp_senders"); s.n > 0 && s.med == float64(top) && len(r.cfg.udpSenders) > 1 {
			w("- UDP, %s path: the best rate came from the largest sender count tried (%d), so more senders might deliver more.\n", p, top)
			noted = true
		}
	}
	if noted {
		w("\n")
	}
	if r.pathStat("emulator", "rr_dp_preempted").n > 0 {
		w("- Round trips' hand-offs: the cross-CPU interrupts are /proc/interrupts' rescheduling and function-call rows over the run, the whole machine's; the dataplane's preemptions are its threads' nonvoluntary context switches, each another program taking the dataplane's CPU. PERFORMANCE.md (Round trips) says what they showed of the emulator's fast and slow rounds on a 2-CPU machine.\n\n")
	}
	var errKeys []string
	for k := range r.errs {
		errKeys = append(errKeys, k)
	}
	sort.Strings(errKeys)
	for _, k := range errKeys {
		w("- Not measured, %s: %s\n", k, r.errs[k])
	}
	if len(errKeys) > 0 {
		w("\n")
	}

	w("### NSG size: the emulator's new-flow rate with 10 and with 4,000 rules\n\n")
	w("In every round the lab's NSG is swapped with `emulator apply` between bench-nsg's 10 user rules and one of 4,000 (3 inbound; 3,995 outbound deny rules, each matching part of the benchmark's flows, then the allow rules at priorities 4095-4096, so every new flow is decided by the last user rule), and new TCP connections are measured after each apply, in the order %s rules: each run follows its own apply, the 10-rule ones too, and the two sizes alternate, so that neither applying nor drift over the round falls on one side only. A round's figure for each size is the mean of its runs.\n\n", intsString(nsgRuns))
	c10, c4k := r.path["emulator"]["crr_nsg10"], r.path["emulator"]["crr_nsg4000"]
	rs := r.nsgRatio()
	w("| new TCP connections/s, 10 rules | with 4,000 rules | 4,000 / 10 | target |\n|---:|---:|---:|---|\n")
	w("| %s | %s | %s× | ≥ 0.90× (4,000 rules cost at most 10%%): %s |\n\n", summarize(c10).format(0), summarize(c4k).format(0), rs.format(3),
		check(rs, func(v float64) bool { return v >= 0.9 }))
	if r.nsgErr != "" {
		w("- Not measured: %s\n", r.nsgErr)
	}
	if e, ok := r.errs["emulator/crr_nsg4000"]; ok {
		w("- Not measured in every round: %s\n", e)
	}
	if v := r.verify[10]; v != "" {
		w("- `emulator verify` of a benchmark flow with the 10-rule NSG: `%s`\n", v)
	}
	if v := r.verify[4000]; v != "" {
		w("- with the 4,000-rule NSG: `%s`\n", v)
	}
	if r.kernelSNAT > 0 {
		w("- The kernel router's SNAT rule (it sees each connection's first packet) counted %s packets over the run: the kernel path did translate.\n", num(float64(r.kernelSNAT), 0))
	}
	if r.labStatusTail != "" {
		w("- `emulator status` of the emulator path's lab at the end (SNAT of the VIP): `%s`\n", strings.ReplaceAll(r.labStatusTail, "\n", "` / `"))
	}
	w("\n")
}

type scaleCol struct {
	key, label string
	dec        int
}

// The scale table comes in two: the lab's costs, and what happened when
// every node sent at once.
var (
	scaleLabCols = []scaleCol{
		{scUp, "`up -d` (s)", 2},
		{scDown, "`down` (s)", 2},
		{scRSS, "dataplane RSS after up (MiB)", 1},
		{scRSSNode, "RSS per node (MiB)", 3},
		{scRSSAfter, "RSS per node after traffic (MiB)", 3},
	}
	scaleBlastCols = []scaleCol{
		{scAggPPS, "delivered (kpps)", 0},
		{scAggOffered, "sent (kpps)", 0},
		{scAggLoss, "loss (%)", 1},
		{scQueueLoss, "of it at the senders' own queues (% of sent)", 1},
		{scDPDrops, "dropped by the dataplane", 0},
		{scSinkLoss, "dropped at the sink (% of sent)", 1},
		{scSources, "senders heard (%)", 1},
		{scDPCPU, "dataplane CPU (CPUs)", 2},
		{scDPCost, "dataplane CPU per datagram delivered (µs)", 2},
	}
)

func (r *results) scaleSection(w func(string, ...any)) {
	w("## Scale\n\n")
	w("Generated labs of N nodes in all: N-2 VMs in one /20 subnet, the Internet host `sink` at 203.0.113.10 and the platform node. `up -d` and `down` are timed from the outside; RSS is VmRSS of the dataplane process (`status --json` pid) divided by N. The RSS target is read at the largest lab: in small ones the process's fixed cost (runtime, services, control socket) dominates the per-node figure.\n\n")
	r.scaleTable(w, scaleLabCols)
	w("\nThen every VM sends 64-byte UDP datagrams to the sink at once for %s (one socket per VM, opened inside its namespace; two sending threads go round the sockets, 8 datagrams per socket per turn); the sink counts what arrives and from how many distinct senders (after default-outbound SNAT). Where the rest was lost comes from the lab's `status --json` before and after: the queue drops of the VMs' own interfaces (datagrams the dataplane had not read when the queue filled) and the dataplane's own drops; and from the sink namespace's UDP InErrors (/proc/net/snmp: datagrams that found the sink's receive buffers full). The dataplane's CPU is its process's user and system time over the send time (/proc/PID/stat). Its CPU per datagram delivered tells a dataplane whose work grows with the nodes from one that was given less CPU: the two sending threads, the sink and the dataplane share the machine's %d CPUs.\n\n", r.cfg.scaleTime, r.machine.nproc)
	r.scaleTable(w, scaleBlastCols)
	w("\n")
	for _, n := range r.cfg.scaleSizes {
		for _, e := range r.scaleErr[n] {
			w("- %d nodes, not (fully) measured: %s\n", n, e)
		}
		if d := r.scaleDown[n]; len(d) > 0 {
			w("- %d nodes: `down` did not report a clean stop (\"is down.\"): %s. `down` waits 15 s for the dataplane to exit after SIGTERM, then kills it and removes what is left itself.\n", n, strings.Join(d, "; "))
		}
	}
	w("\n")
}

// scaleTable writes one row per lab size, a column per metric of cols.
func (r *results) scaleTable(w func(string, ...any), cols []scaleCol) {
	w("| nodes |")
	for _, c := range cols {
		w(" %s |", c.label)
	}
	w("\n|---:|")
	for range cols {
		w("---:|")
	}
	w("\n")
	for _, n := range r.cfg.scaleSizes {
		w("| %s |", num(float64(n), 0))
		for _, c := range cols {
			w(" %s |", summarize(r.scale[n][c.key]).format(c.dec))
		}
		w("\n")
	}
}

// established-path benchmarks the ≤ 100 ns, 0 allocs target applies to.
func establishedTarget(key string) bool {
	switch {
	case key == "dataplane.BenchmarkForward", key == "dataplane.BenchmarkForwardSNAT":
		return true
	case strings.HasPrefix(key, "nat.BenchmarkEstablished/"):
		return true
	}
	return false
}

func (r *results) microSection(w func(string, ...any)) {
	w("## Go micro-benchmarks\n\n")
	if r.microCmd != "" {
		w("`%s` (from the repository root). One op is one packet for Forward/Established, one new flow's NSG verdict for Check.\n\n", r.microCmd)
	}
	if r.microErr != "" {
		w("- The run reported an error: %s\n\n", r.microErr)
	}
	w("| benchmark | ns/op | allocs/op | B/op | other | target |\n|---|---:|---:|---:|---|---|\n")
	for _, k := range r.microOrder {
		m := r.micro[k]
		var other []string
		var units []string
		for u := range m {
			units = append(units, u)
		}
		sort.Strings(units)
		for _, u := range units {
			if u != "ns/op" && u != "allocs/op" && u != "B/op" && u != "MB/s" {
				other = append(other, summarize(m[u]).format(1)+" "+u)
			}
		}
		target := "—"
		ns, allocs := summarize(m["ns/op"]), summarize(m["allocs/op"])
		switch {
		case establishedTarget(k):
			target = "≤ 100 ns/packet and 0 allocs: " + check(ns, func(v float64) bool {
				return v <= 100 && allocs.n > 0 && allocs.hi == 0
			})
		case k == "nat.BenchmarkMemoryPerFlow":
			target = "≤ 256 bytes/flow: " + check(summarize(m["bytes/flow"]), func(v float64) bool { return v <= 256 })
		}
		w("| %s | %s | %s | %s | %s | %s |\n", k, ns.format(1), allocs.format(0), summarize(m["B/op"]).format(0), strings.Join(other, ", "), target)
	}
	w("\n")
	c10, c4k := r.micro["dataplane/nsg.BenchmarkCheck/rules=10/deep"], r.micro["dataplane/nsg.BenchmarkCheck/rules=4000/deep"]
	if c10 != nil && c4k != nil {
		w("NSG check alone, deep flows: 4,000 rules cost %s× the time of 10 rules.\n\n",
			num(summarize(c4k["ns/op"]).med/summarize(c10["ns/op"]).med, 2))
	}
}

func (r *results) targetSummary(w func(string, ...any)) {
	w("## The issue's targets\n\n| target | measured (median, min–max) | result |\n|---|---|---|\n")
	if !r.cfg.skipPaths {
		for _, m := range pathMetrics {
			if m.target == 0 {
				continue
			}
			s := r.ratioStat("emulator", m.key)
			w("| %s ≥ %.1f× kernel | %s× | %s |\n", m.label, m.target, s.formatBeside(m.target, 2), check(s, func(v float64) bool { return v >= m.target }))
		}
		rs := r.nsgRatio()
		w("| new-flow rate with 4,000 NSG rules ≥ 0.90× the rate with 10 | %s× | %s |\n", rs.format(3), check(rs, func(v float64) bool { return v >= 0.9 }))
	}
	if !r.cfg.skipMicro {
		for _, k := range r.microOrder {
			if !establishedTarget(k) {
				continue
			}
			ns, allocs := summarize(r.micro[k]["ns/op"]), summarize(r.micro[k]["allocs/op"])
			w("| %s: ≤ 100 ns/packet, 0 allocs/packet | %s ns, %s allocs | %s |\n", k, ns.format(1), allocs.format(0),
				check(ns, func(v float64) bool { return v <= 100 && allocs.n > 0 && allocs.hi == 0 }))
		}
		if m := r.micro["nat.BenchmarkMemoryPerFlow"]; m != nil {
			s := summarize(m["bytes/flow"])
			w("| conntrack ≤ 256 bytes/flow at 1,000,000 flows | %s bytes | %s |\n", s.format(1), check(s, func(v float64) bool { return v <= 256 }))
		} else {
			w("| conntrack ≤ 256 bytes/flow at 1,000,000 flows | n/a | n/a (not measured) |\n")
		}
	}
	if !r.cfg.skipScale {
		big := slices.Max(r.cfg.scaleSizes)
		small := slices.Min(r.cfg.scaleSizes)
		if big >= 1000 {
			up, down := summarize(r.scale[big][scUp]), summarize(r.scale[big][scDown])
			w("| %s nodes up in ≤ 20 s | %s s | %s |\n", num(float64(big), 0), up.format(2), check(up, func(v float64) bool { return v <= 20 }))
			w("| %s nodes down in ≤ 10 s | %s s | %s |\n", num(float64(big), 0), down.format(2), check(down, func(v float64) bool { return v <= 10 }))
		}
		s := summarize(r.scale[big][scRSSNode])
		w("| ≤ 2 MiB RSS per node (%s nodes, after up) | %s MiB | %s |\n", num(float64(big), 0), s.format(3), check(s, func(v float64) bool { return v <= 2 }))
		s = summarize(r.scale[big][scRSSAfter])
		w("| ≤ 2 MiB RSS per node (%s nodes, after every node sent) | %s MiB | %s |\n", num(float64(big), 0), s.format(3), check(s, func(v float64) bool { return v <= 2 }))
		if big != small {
			// A big lab whose dataplane delivers nearly all that its
			// senders offer has not collapsed, even if the senders,
			// going round a thousand sockets, offer less than to ten.
			rs := summarize(ratios(r.scale[big][scAggPPS], r.scale[small][scAggPPS]))
			loss := summarize(r.scale[big][scAggLoss])
			result := "n/a (not measured)"
			if rs.n > 0 && loss.n > 0 {
				result = mark(rs.med >= 0.8 || loss.med <= 5)
			}
			w("| aggregate rate does not collapse (harness's reading: %s nodes ≥ 0.8× the rate of %s, same round; or, where the senders were the limit, %s nodes lose ≤ 5%% of what they sent) | %s×; loss %s%% | %s |\n",
				num(float64(big), 0), num(float64(small), 0), num(float64(big), 0), rs.format(2), loss.format(1), result)
		}
	}
	w("\n")
}

func (r *results) methodSection(w func(string, ...any)) {
	cfg := r.cfg
	w("## How each figure is measured\n\n")
	w("- Every path uses the same endpoints and tools; the client runs in the client namespace and the server in the server namespace (`ip netns exec`). Each metric is measured on every path in turn, in an order rotated every round, so that the measurements a ratio compares are seconds apart, not minutes.\n")
	w("- **TCP throughput**: iperf3 -J, %s after a 1 s omitted warm-up (`-t %d -O 1`), `end.sum_received`. Four streams are four iperf3 client/server pairs at once (ports 5201-5204), summed: iperf3 %s is single-threaded, so `-P 4` would put all four streams on one core. Meanwhile the harness reads the machine's CPU time (/proc/stat, steal left out) over %s of the measured time, from 1.5 s after the clients start: the CPUs busy, and that CPU time over the bytes delivered. Everything on the machine counts, endpoints included, so the rows compare what each path costs the machine per byte, and show whether a path left CPU idle (then it was not the CPU that limited it).\n", cfg.tcpTime, int(math.Ceil(cfg.tcpTime.Seconds())), iperfVersion(r.machine.iperf), cfg.tcpTime-time.Second)
	w("- **UDP**: %s sending sockets in turn (one flow and one thread each, `sendmmsg` of 64 datagrams) send 64-byte payloads (92-byte IP packets) as fast as they can for %s; the sender count that delivers most is the path's figure, and the loss and offered load are those of that count. A sink with 2 SO_REUSEPORT sockets (`recvmmsg`) counts what arrives. Delivered = received / send time; loss = 1 - received / sent, where sent is what the kernel accepted from the senders (a datagram dropped at the client's own device queue counts as lost, and the next row gives that part: the client namespace's tx_dropped over the run, as a share of what was sent). On the kernel and direct paths the forwarding and the receiver's protocol work run in softirq on the sending CPU, so there the sender and the path cannot be told apart: the figure is what 2 CPUs do for sending, forwarding and receiving together; on the emulator path the dataplane process does that part. The row after the client's gives the part the server's stack dropped because the sink's socket buffer was full (UDP's RcvbufErrors in the server namespace), which the path had carried all the way. Where autogroups are on (Machine, above), the senders and the sink share one session's half of the CPUs against the dataplane's: each sender added takes CPU from the sink, which then drops at its socket, and that is why more senders can deliver less on the emulator path.\n", intsString(cfg.udpSenders), cfg.udpTime)
	w("- **Request/response**: one TCP connection, 1-byte request and 1-byte answer, one outstanding at a time, for %s after 1,000 warm-up round trips; blocking sockets on locked OS threads (Go helper `scripts/bench`), so the Go scheduler is not in the loop; p50/p99 over every round trip.\n", cfg.rrTime)
	w("- **New TCP connections**: %d threads each connect, send 1 byte, read the 1-byte answer and the server's FIN, and close, for %s; the server (4 accepting threads) closes first, so TIME_WAIT stays on the server and the client never runs out of ports. On every path the client's ephemeral ports are 50000-64999 (its namespace's ip_local_port_range), fewer than the 16,000 SNAT ports ase1's machines each have on the emulator path (`allocatedOutboundPorts`; Azure's default of 1,024 would refuse the run's connections after the first 1,024, each port held 240 s after its FIN, F17). Every connection is a new flow for conntrack, SNAT and the NSG.\n", cfg.crrConc, cfg.crrTime)
	w("- **The dataplane's share of the CPU** (emulator path; the other paths have no such process, so those cells say —): the dataplane process's user and system time (/proc/PID/stat, in 10 ms ticks, summed over its threads; the PID from `status --json`), read over the same span as the machine's during TCP, and around each whole UDP, round-trip and new-connection run. *All but the dataplane* is the machine's CPU time less the dataplane's: the endpoints and the kernel's work for them, and on the kernel path its forwarding too. The dataplane's time in the kernel is its system calls, the copies in and out of the nodes' TUN devices, and the receiving node's protocol work, which a TUN write runs in the writer's thread. The dataplane busy-polls after each packet (`--busy-poll`, 50 µs by default) before it sleeps, and that spin is CPU time too: between one round trip's packets, or one connection's, it is most of the dataplane's, so those two rows say what the path costs in CPU, not what forwarding a packet takes.\n")
	w("- **CPU**: nothing is pinned. On %d CPUs the senders, the receivers and (on the emulator path) the dataplane process share the same cores, and the kernel path's forwarding runs in softirq on the sender's CPU; this is the comparison the issue asks for, but it means the load generators compete with the path they measure.\n\n", r.machine.nproc)
}

func (r *results) rawSection(w func(string, ...any)) {
	w("## Per-round values\n\n")
	if !r.cfg.skipPaths {
		w("| path | metric | rounds |\n|---|---|---|\n")
		keys := append(r.metrics(),
			pathMetric{key: "crr_nsg10", unit: "conn/s", label: "New TCP connections, 10 NSG rules (NSG comparison)"},
			pathMetric{key: "crr_nsg4000", unit: "conn/s", label: "New TCP connections, 4,000 NSG rules"})
		for _, p := range []string{"direct", "kernel", "emulator"} {
			for _, m := range keys {
				xs, ok := r.path[p][m.key]
				if !ok {
					continue
				}
				var s []string
				for _, x := range xs {
					s = append(s, num(x, max(m.dec, 1)))
				}
				w("| %s | %s (%s) | %s |\n", p, m.label, m.unit, strings.Join(s, ", "))
			}
		}
		w("\n")
	}
	if !r.cfg.skipScale {
		w("| nodes | metric | rounds |\n|---|---|---|\n")
		for _, n := range r.cfg.scaleSizes {
			for _, c := range slices.Concat(scaleLabCols, scaleBlastCols) {
				var s []string
				for _, x := range r.scale[n][c.key] {
					s = append(s, num(x, max(c.dec, 2)))
				}
				w("| %d | %s | %s |\n", n, c.label, strings.Join(s, ", "))
			}
		}
		w("\n")
	}
}

// iperfVersion is the version number in `iperf3 --version`'s first line.
func iperfVersion(line string) string {
	if f := strings.Fields(line); len(f) > 1 {
		return f[1]
	}
	return "(unknown version)"
}

func intsString(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ", ")
}
