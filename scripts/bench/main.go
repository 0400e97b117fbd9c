// Command bench is the benchmark harness of issue 6 (`make bench`): it
// measures, in one run and on the same machine, three paths between a
// worker-like client at 10.0.1.6 and a server at 203.0.113.10 (a veth pair;
// a kernel router namespace with nftables SNAT and a stateful filter; the
// emulator's dataplane with SNAT and an NSG), the emulator's new-flow rate
// with 10 and 4,000 NSG rules, the Go micro-benchmarks of the
// established-flow path, conntrack memory per flow, and labs of 10, 100 and
// 1,000 nodes. It prints a table and writes BENCHMARKS.md.
//
// Run as root from the repository root, after `make build`:
//
//	go build -o /tmp/bench ./scripts/bench && /tmp/bench -out BENCHMARKS.md
//
// `bench helper MODE` runs one of the load generators (see helpers.go); the
// harness starts those inside namespaces with `ip netns exec`.
//
// It touches nothing in the root namespace: every address, route, sysctl
// and nftables rule it sets lives in a namespace it created, and every
// namespace, lab and process it creates is removed at the end, on error and
// on SIGINT/SIGTERM.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type config struct {
	emulator    string
	goCmd       string
	out         string
	rounds      int
	tcpTime     time.Duration
	udpTime     time.Duration
	rrTime      time.Duration
	crrTime     time.Duration
	udpSenders  []int
	crrConc     int
	scaleSizes  []int
	scaleRounds int
	scaleTime   time.Duration
	skipPaths   bool
	skipScale   bool
	skipMicro   bool
	benchtime   string
	microCount  int
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "helper" {
		if err := runHelper(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench helper:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(realMain())
}

func realMain() int {
	cfg := &config{}
	var sizes string
	flag.StringVar(&cfg.emulator, "emulator", "bin/emulator", "the emulator binary")
	flag.StringVar(&cfg.goCmd, "go", "go", "the go command, for the micro-benchmarks")
	flag.StringVar(&cfg.out, "out", "BENCHMARKS.md", "where to write the report (empty: print only)")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of the path measurements")
	flag.DurationVar(&cfg.tcpTime, "tcp-time", 4*time.Second, "iperf3 time per test, after a 1 s omitted warm-up")
	flag.DurationVar(&cfg.udpTime, "udp-time", 3*time.Second, "UDP send time")
	flag.DurationVar(&cfg.rrTime, "rr-time", 3*time.Second, "request/response time")
	flag.DurationVar(&cfg.crrTime, "crr-time", 3*time.Second, "new-connection time")
	var senders string
	flag.StringVar(&senders, "udp-senders", "2,4,8,16", "UDP sending sockets (one thread each) to try; the best delivered rate counts")
	flag.IntVar(&cfg.crrConc, "crr-conc", 4, "concurrent connection openers")
	flag.StringVar(&sizes, "scale-sizes", "10,100,1000", "node counts of the scale labs")
	flag.IntVar(&cfg.scaleRounds, "scale-rounds", 3, "rounds of the scale measurements")
	flag.DurationVar(&cfg.scaleTime, "scale-time", 3*time.Second, "how long every node sends at once")
	flag.BoolVar(&cfg.skipPaths, "skip-paths", false, "skip the path measurements")
	flag.BoolVar(&cfg.skipScale, "skip-scale", false, "skip the scale measurements")
	flag.BoolVar(&cfg.skipMicro, "skip-micro", false, "skip the Go micro-benchmarks")
	flag.StringVar(&cfg.benchtime, "benchtime", "1s", "go test -benchtime of the micro-benchmarks")
	flag.IntVar(&cfg.microCount, "micro-count", 3, "go test -count of the micro-benchmarks")
	flag.Parse()
	var err error
	if cfg.scaleSizes, err = intList(sizes, 3); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -scale-sizes: %v\n", err)
		return 2
	}
	if cfg.udpSenders, err = intList(senders, 1); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -udp-senders: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: run as root (sudo make bench)")
		return 2
	}
	emu, err := filepath.Abs(cfg.emulator)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if _, err := os.Stat(emu); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v (run make build first)\n", err)
		return 2
	}
	reg.emulator = emu
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}

	handleSignals()
	defer reg.cleanup()
	sweepStale()
	tmp, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	reg.addFile(tmp)

	res := newResults(cfg)
	res.machine = machineInfo(cfg)
	start := time.Now()
	logf("bench: %s; lab and namespace prefix %s", res.machine.summary(), prefix)

	phases := []struct {
		skip bool
		run  func()
	}{
		{cfg.skipPaths, func() { runPaths(cfg, res, self, tmp) }},
		{cfg.skipScale, func() { runScale(cfg, res, self, tmp) }},
		{cfg.skipMicro, func() { runMicro(cfg, res) }},
	}
	for _, ph := range phases {
		if !ph.skip {
			ph.run()
		}
		if reg.interrupted() {
			// The signal handler tears down and exits; wait for it.
			reg.cleanup()
			return 130
		}
	}
	res.duration = time.Since(start)
	res.machine.loadEnd = loadavg()

	reg.cleanup()
	if left := leftovers(); len(left) > 0 {
		res.notes = append(res.notes, "NOT CLEAN after teardown: "+strings.Join(left, ", "))
	}
	report := res.markdown()
	fmt.Println()
	fmt.Println(report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		logf("bench: wrote %s", cfg.out)
	}
	return 0
}

// intList parses a comma-separated list of integers of at least least.
func intList(s string, least int) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < least {
			return nil, fmt.Errorf("bad list %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// runPaths sets the three paths up, measures them cfg.rounds times (each
// round in a different order, so no path always runs first), and tears them
// down.
func runPaths(cfg *config, res *results, self, tmp string) {
	var paths []*path
	setups := []struct {
		name string
		f    func() (*path, error)
	}{
		{"direct", setupDirect},
		{"kernel", func() (*path, error) { return setupKernel(tmp) }},
		{"emulator", func() (*path, error) {
			p, lab, reader, err := setupEmulator(tmp)
			res.lab, res.reader = lab, reader
			return p, err
		}},
	}
	for _, s := range setups {
		logf("bench: setting up the %s path", s.name)
		p, err := s.f()
		if err == nil {
			err = p.startServers(self)
		}
		if err != nil {
			res.pathErr[s.name] = err.Error()
			logf("bench: %s path: %v", s.name, err)
			if p != nil {
				p.stopServers()
			}
			continue
		}
		paths = append(paths, p)
	}
	var lab10, lab4000 string
	if res.lab != "" {
		lab10, lab4000 = filepath.Join(tmp, "lab-nsg10.yaml"), filepath.Join(tmp, "lab-nsg4000.yaml")
		if err := os.WriteFile(lab4000, []byte(pathLab(4000)), 0o600); err != nil {
			res.nsgErr = err.Error()
		}
	}
	// Metric by metric, each path in turn (in an order rotated every
	// round), so that the measurements a ratio is made of are seconds
	// apart, not the minute a path's whole set takes: this machine's speed
	// drifts over minutes (four runs of one day, path by path, disagreed
	// by up to 0.2 in a ratio).
	for round := range cfg.rounds {
		for _, m := range steps {
			for i := range paths {
				if reg.interrupted() {
					return
				}
				p := paths[(i+round)%len(paths)]
				logf("bench: round %d/%d: %s, %s path", round+1, cfg.rounds, m.name, p.name)
				m.measure(cfg, res, p, round, self)
				settle()
				if m.nsgAfter && p.name == "emulator" && res.nsgErr == "" {
					measureNSG4000(cfg, res, p, round, self, lab10, lab4000)
				}
			}
		}
	}
	for _, p := range paths {
		if p.name == "kernel" {
			if n, err := p.snatCount(); err == nil {
				res.kernelSNAT = n
			}
		}
		p.stopServers()
	}
	if res.lab != "" {
		if out, err := runT(30*time.Second, reg.emulator, "status", "--name", res.lab); err == nil {
			res.labStatusTail = natLines(out)
		}
		labDown(res.lab)
	}
	for _, p := range paths {
		if p.name != "emulator" {
			netnsDel(p.client)
			netnsDel(p.server)
			if p.snatRule != "" {
				netnsDel(p.snatRule)
			}
		}
	}
}

// natLines keeps the lines of `emulator status` that show SNAT use, as
// evidence that the emulator path translated.
func natLines(status string) string {
	var keep []string
	for _, l := range strings.Split(status, "\n") {
		if strings.Contains(l, vipAddr) && (strings.Contains(strings.ToLower(l), "snat") || strings.Contains(strings.ToLower(l), "port")) {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return strings.Join(keep, "\n")
}

// steps are what each path is measured for, in the order of a round.
var steps = []struct {
	name    string
	measure func(cfg *config, res *results, p *path, round int, self string)
	// nsgAfter: on the emulator path, the NSG comparison
	// (measureNSG4000) runs right after this one.
	nsgAfter bool
}{
	{name: "TCP 1 stream", measure: func(cfg *config, res *results, p *path, round int, self string) {
		measureTCP(cfg, res, p, round, "tcp1", 1)
	}},
	{name: "TCP 4 streams", measure: func(cfg *config, res *results, p *path, round int, self string) {
		measureTCP(cfg, res, p, round, "tcp4", 4)
	}},
	{name: "UDP", measure: measureUDP},
	{name: "round trips", measure: func(cfg *config, res *results, p *path, round int, self string) {
		var r *rrResult
		var h handoffs
		dp, err := p.dataplaneSpent(func() (err error) {
			h, err = p.handoffsDuring(func() (err error) { r, err = p.rr(cfg, self); return err })
			return err
		})
		if err != nil {
			r = &rrResult{P50us: math.NaN(), P99us: math.NaN()}
		}
		record(res, p, round, "rr", float64(r.Count)/r.Seconds, err)
		record(res, p, round, "rr_p50", r.P50us, err)
		record(res, p, round, "rr_p99", r.P99us, err)
		recordDataplane(res, p, round, "rr_dp", dp, float64(r.Count), err)
		record(res, p, round, "rr_ipi", h.ipis/float64(r.Count), err)
		if p.dataplane != 0 {
			record(res, p, round, "rr_dp_preempted", h.preempted/float64(r.Count), err)
		}
		logf("bench:   TCP RR         %.0f/s p50 %.1f µs p99 %.1f µs", float64(r.Count)/r.Seconds, r.P50us, r.P99us)
	}},
	{name: "new connections", measure: func(cfg *config, res *results, p *path, round int, self string) {
		var c *crrResult
		dp, err := p.dataplaneSpent(func() (err error) { c, err = p.crr(cfg, self); return err })
		if err == nil && c.Errors > 0 {
			res.note(fmt.Sprintf("%s path, round %d: %d of the new connections failed (first: %s)", p.name, round+1, c.Errors, c.FirstError))
		}
		if err != nil {
			c = &crrResult{Seconds: 1}
		}
		record(res, p, round, "crr", float64(c.Count)/c.Seconds, err)
		recordDataplane(res, p, round, "crr_dp", dp, float64(c.Count), err)
		logf("bench:   new TCP conns  %.0f/s", float64(c.Count)/c.Seconds)
	}, nsgAfter: true},
}

// record sets p's metric for the round, or marks it failed.
func record(res *results, p *path, round int, metric string, v float64, err error) {
	if err != nil {
		v = math.NaN()
		res.fail(p.name, metric, err)
		logf("bench:   %s %s: %v", p.name, metric, err)
	}
	res.set(p.name, metric, round, v)
}

// recordDataplane records, on a path with a dataplane, the dataplane's CPU
// time per unit of work in µs: secs of CPU over n units.
func recordDataplane(res *results, p *path, round int, metric string, secs, n float64, err error) {
	if p.dataplane != 0 {
		record(res, p, round, metric, secs*1e6/n, err)
	}
}

// measureTCP records a path's throughput with streams streams under key,
// the CPUs busy meanwhile under key_cpu, and their cost per byte under
// key_cost: CPU milliseconds per gigabyte delivered. The cost is split in
// two: key_dp, the emulator's dataplane process (with key_dp_sys, the
// share of it in the kernel), and key_rest, everything else: the
// endpoints, and the kernel's work for them and, on the kernel path, its
// forwarding.
func measureTCP(cfg *config, res *results, p *path, round int, key string, streams int) {
	gbps, cpu, err := p.tcpThroughput(cfg, streams)
	recordTCP(res, p, round, key, streams, gbps, cpu, err)
}

func recordTCP(res *results, p *path, round int, key string, streams int, gbps float64, cpu cpuSample, err error) {
	perGB := func(cpus float64) float64 { return cpus * 1e3 / (gbps / 8) }
	dp := cpu.dp.total()
	record(res, p, round, key, gbps, err)
	record(res, p, round, key+"_cpu", cpu.busy, err)
	record(res, p, round, key+"_cost", perGB(cpu.busy), err)
	record(res, p, round, key+"_rest", perGB(cpu.busy-dp), err)
	if p.dataplane != 0 {
		record(res, p, round, key+"_dp", perGB(dp), err)
		record(res, p, round, key+"_dp_sys", 100*cpu.dp.sys/dp, err)
		logf("bench:   TCP %d stream(s) %.2f Gbit/s, %.2f CPUs busy, %.2f of them the dataplane (%.0f%% in the kernel)", streams, gbps, cpu.busy, dp, 100*cpu.dp.sys/dp)
		return
	}
	logf("bench:   TCP %d stream(s) %.2f Gbit/s, %.2f CPUs busy", streams, gbps, cpu.busy)
}

// settle lets the last measurement's sockets and queues drain.
func settle() { time.Sleep(300 * time.Millisecond) }

// measureUDP tries each sender count; the best delivered rate is the path's.
func measureUDP(cfg *config, res *results, p *path, round int, self string) {
	nan := math.NaN()
	best := udpResult{offeredPPS: nan, deliveredPPS: nan, loss: nan, clientDrop: nan, serverDrop: nan}
	var uerr error
	for i, n := range cfg.udpSenders {
		if i > 0 {
			settle() // after the last, the round's loop settles
		}
		u, err := p.udp(cfg, self, n)
		if err != nil {
			uerr = err
			continue
		}
		logf("bench:   UDP 64 B, %d senders: %.0f kpps delivered of %.0f sent (loss %.1f%%: %.1f%% at the client's interface, %.1f%% at the server's socket)", n, u.deliveredPPS/1e3, u.offeredPPS/1e3, u.loss*100, u.clientDrop*100, u.serverDrop*100)
		res.set(p.name, fmt.Sprintf("udp_pps_%d", n), round, u.deliveredPPS/1e3)
		if math.IsNaN(best.deliveredPPS) || u.deliveredPPS > best.deliveredPPS {
			best = u
		}
	}
	if !math.IsNaN(best.deliveredPPS) {
		uerr = nil
	}
	record(res, p, round, "udp_pps", best.deliveredPPS/1e3, uerr)
	record(res, p, round, "udp_offered", best.offeredPPS/1e3, uerr)
	record(res, p, round, "udp_loss", best.loss*100, uerr)
	record(res, p, round, "udp_client_drop", best.clientDrop*100, uerr)
	record(res, p, round, "udp_server_drop", best.serverDrop*100, uerr)
	record(res, p, round, "udp_senders", float64(best.senders), uerr)
	recordDataplane(res, p, round, "udp_dp", best.dpSecs, best.reached, uerr)
}

// nsgRuns is the order of the NSG comparison's new-connection runs in a
// round, by the NSG's user rule count. Each run comes right after its own
// `emulator apply`, the 10-rule ones too (re-applying the NSG the lab
// has), and the two sizes alternate, so that neither applying nor the
// machine's drift over the round falls on one side only. A round of 3 s
// runs spreads by up to a quarter on this kind of VM: with one 4,000-rule
// run between two 10-rule ones, the first of them not after an apply, the
// verdict flipped between runs of make bench (rounds of 0.86-1.11× at
// 9f10482, where the NSG check itself costs 31-34 ns against 27-29 ns and
// a new connection about 100 µs of dataplane CPU).
var nsgRuns = []int{10, 4000, 10, 4000, 10}

// measureNSG4000 compares the lab's new-connection rate with the 10-rule
// NSG and with one of 4,000 rules (nsgRuns), and leaves the lab with the
// 10-rule NSG.
func measureNSG4000(cfg *config, res *results, p *path, round int, self, lab10, lab4000 string) {
	labs := map[int]string{10: lab10, 4000: lab4000}
	sum := map[int]float64{}
	n := map[int]int{}
	var err error
	for _, rules := range nsgRuns {
		var v float64
		if v, err = nsgRun(cfg, res, p, round, self, rules, labs[rules]); err != nil {
			break
		}
		sum[rules] += v
		n[rules]++
	}
	if err != nil {
		logf("bench:   NSG 10/4000: %v", err)
		if _, aerr := runT(2*time.Minute, reg.emulator, "apply", "--name", res.lab, "-f", lab10); aerr != nil {
			logf("bench:   applying the 10-rule NSG back: %v", aerr)
		}
	}
	for _, rules := range []int{10, 4000} {
		record(res, p, round, fmt.Sprintf("crr_nsg%d", rules), sum[rules]/float64(n[rules]), err)
	}
	time.Sleep(300 * time.Millisecond)
}

// nsgRun applies the NSG of lab (rules user rules) and measures new
// connections per second.
func nsgRun(cfg *config, res *results, p *path, round int, self string, rules int, lab string) (float64, error) {
	if _, err := runT(2*time.Minute, reg.emulator, "apply", "--name", res.lab, "-f", lab); err != nil {
		return 0, err
	}
	// The first apply of each size is asked which rule decides.
	if res.verify[rules] == "" {
		res.verify[rules] = verifyDecision(res.lab)
	}
	time.Sleep(300 * time.Millisecond)
	c, err := p.crr(cfg, self)
	if err != nil {
		return 0, err
	}
	if c.Errors > 0 {
		res.note(fmt.Sprintf("emulator path with %d NSG rules, round %d: %d of the new connections failed (first: %s)", rules, round+1, c.Errors, c.FirstError))
	}
	v := float64(c.Count) / c.Seconds
	logf("bench:   new TCP conns with %d NSG rules  %.0f/s", rules, v)
	return v, nil
}

// verifyDecision asks the lab which rule decides the benchmark's new TCP flows.
func verifyDecision(lab string) string {
	out, err := runT(30*time.Second, reg.emulator, "verify", "--name", lab, "--from", "ase1-w1",
		"--to", fmt.Sprintf("%s:%d", serverAddr, crrPort), "--proto", "tcp")
	if err != nil {
		return "emulator verify failed: " + err.Error()
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 2 {
		lines = lines[:2]
	}
	return strings.Join(lines, " / ")
}
