package main

// Scale: labs of 10, 100 and 1,000 nodes (VMs in one big subnet, an
// Internet host as sink, the platform node): time for `up -d` and `down`,
// the dataplane's RSS per node, and the aggregate forwarding rate when every
// VM sends 64-byte datagrams to the sink at once.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scale metrics, per size and round.
const (
	scUp         = "up_s"
	scDown       = "down_s"
	scRSS        = "rss_mib"
	scRSSNode    = "rss_node_mib"
	scRSSAfter   = "rss_after_node_mib"
	scAggPPS     = "agg_kpps"
	scAggOffered = "agg_offered_kpps"
	scAggLoss    = "agg_loss"
	scSources    = "agg_sources"
	scQueueLoss  = "agg_queue_loss"
	scDPDrops    = "agg_dataplane_drops"
	scSinkLoss   = "agg_sink_loss"
	scDPCPU      = "agg_dataplane_cpu"
	scDPCost     = "agg_dataplane_us"
)

func runScale(cfg *config, res *results, self, tmp string) {
	files := map[int]string{}
	for _, n := range cfg.scaleSizes {
		f := filepath.Join(tmp, fmt.Sprintf("scale-%d.yaml", n))
		if err := os.WriteFile(f, []byte(scaleLab(n)), 0o600); err != nil {
			res.scaleFail(n, err)
			continue
		}
		files[n] = f
	}
	for round := range cfg.scaleRounds {
		for _, n := range cfg.scaleSizes {
			if reg.interrupted() {
				return
			}
			if files[n] == "" {
				continue
			}
			logf("bench: scale round %d/%d: %d nodes", round+1, cfg.scaleRounds, n)
			scaleOnce(cfg, res, self, tmp, n, files[n], round)
		}
	}
}

func scaleOnce(cfg *config, res *results, self, tmp string, n int, file string, round int) {
	lab := fmt.Sprintf("%s-s%d-%d", prefix, n, round+1)
	set := func(metric string, v float64) { res.setScale(n, metric, round, v) }
	for _, m := range []string{scUp, scDown, scRSS, scRSSNode, scRSSAfter, scAggPPS, scAggOffered, scAggLoss, scSources, scQueueLoss, scDPDrops, scSinkLoss, scDPCPU, scDPCost} {
		set(m, math.NaN())
	}
	fail := func(err error) {
		res.scaleFail(n, err)
		logf("bench:   %d nodes: %v", n, err)
	}
	up, err := emuUp(lab, file)
	if err != nil {
		fail(err)
		labDown(lab)
		return
	}
	set(scUp, up.Seconds())
	logf("bench:   up -d %.2f s", up.Seconds())
	defer func() {
		t0 := time.Now()
		out, err := runT(2*time.Minute, reg.emulator, "down", "--name", lab)
		d := time.Since(t0)
		if err != nil {
			fail(fmt.Errorf("down: %w", err))
			return
		}
		set(scDown, d.Seconds())
		if !strings.Contains(out, "is down.") {
			res.scaleDownMsg(n, round, strings.TrimSpace(out))
		}
		logf("bench:   down %.2f s: %s", d.Seconds(), strings.TrimSpace(out))
	}()

	st, err := emuStatus(lab)
	if err != nil {
		fail(err)
		return
	}
	if len(st.Nodes) != n {
		res.note(fmt.Sprintf("the %d-node scale lab has %d nodes", n, len(st.Nodes)))
	}
	nodes := float64(len(st.Nodes))
	rss, err := vmRSS(st.PID)
	if err != nil {
		fail(err)
		return
	}
	set(scRSS, rss)
	set(scRSSNode, rss/nodes)
	logf("bench:   RSS %.1f MiB, %.3f MiB/node", rss, rss/nodes)

	// Every VM sends at once.
	var sinkNS string
	var senders []string
	for _, nd := range st.Nodes {
		switch {
		case nd.Address == serverAddr:
			sinkNS = nd.Namespace
		case strings.HasPrefix(nd.Name, "vm"):
			senders = append(senders, nd.Namespace)
		}
	}
	if sinkNS == "" || len(senders) == 0 {
		fail(fmt.Errorf("lab %s: no sink or no VMs", lab))
		return
	}
	nsFile := filepath.Join(tmp, lab+".netns")
	if err := os.WriteFile(nsFile, []byte(strings.Join(senders, "\n")+"\n"), 0o600); err != nil {
		fail(err)
		return
	}
	sink, err := startServer("ready", 10*time.Second, "ip", nsArgs(sinkNS, self, "helper", "udp-sink",
		"-port", fmt.Sprint(udpPort), "-conc", "2", "-sources")...)
	if err != nil {
		fail(err)
		return
	}
	defer sink.kill()
	// Where the datagrams that do not arrive are lost, and what the
	// dataplane spends on those that do, tell a dataplane that collapses
	// (its CPU per datagram grows with the nodes, or it drops) from senders
	// that offer less, or take the CPUs it needs: on 2 CPUs the two
	// sending threads, the sink and the dataplane share them.
	lost0, err := readLosses(lab, sinkNS)
	if err != nil {
		fail(err)
		return
	}
	cpu0, err := cpuSeconds(st.PID)
	if err != nil {
		fail(err)
		return
	}
	// The sender runs in the root namespace but only opens sockets inside
	// the lab's namespaces (setns), so its traffic never leaves the lab.
	out, err := runT(cfg.scaleTime+2*time.Minute, self, "helper", "scale-blast",
		"-addr", fmt.Sprintf("%s:%d", serverAddr, udpPort), "-netns-file", nsFile, "-conc", "2",
		"-size", "64", "-batch", "8", "-duration", cfg.scaleTime.String())
	if err != nil {
		fail(err)
		return
	}
	var b blastResult
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		fail(err)
		return
	}
	time.Sleep(300 * time.Millisecond)
	// The CPU is read next to the blast on both sides: status makes the
	// dataplane work too.
	cpu1, err := cpuSeconds(st.PID)
	if err != nil {
		fail(err)
		return
	}
	lost1, err := readLosses(lab, sinkNS)
	if err != nil {
		fail(err)
		return
	}
	sout, err := sink.finish(10 * time.Second)
	if err != nil {
		fail(fmt.Errorf("sink: %w", err))
		return
	}
	var s sinkResult
	if err := json.Unmarshal([]byte(sout), &s); err != nil {
		fail(fmt.Errorf("sink: %w", err))
		return
	}
	lost := lost1.since(lost0)
	if b.Sent > 0 {
		set(scAggPPS, float64(s.Packets)/b.Seconds/1e3)
		set(scAggOffered, float64(b.Sent)/b.Seconds/1e3)
		set(scAggLoss, 100*(1-float64(s.Packets)/float64(b.Sent)))
		set(scQueueLoss, 100*float64(lost.queues)/float64(b.Sent))
		set(scSinkLoss, 100*float64(lost.sink)/float64(b.Sent))
	}
	set(scDPDrops, float64(lost.dataplane))
	set(scDPCPU, (cpu1-cpu0)/b.Seconds)
	if s.Packets > 0 {
		set(scDPCost, (cpu1-cpu0)/float64(s.Packets)*1e6)
	}
	set(scSources, float64(s.Sources)/float64(len(senders))*100)
	logf("bench:   every node at once: %.0f kpps delivered of %.0f offered, %d of %d senders heard; %d lost at the senders' queues, %d dropped by the dataplane, %d at the sink; the dataplane used %.2f s of CPU",
		float64(s.Packets)/b.Seconds/1e3, float64(b.Sent)/b.Seconds/1e3, s.Sources, len(senders), lost.queues, lost.dataplane, lost.sink, cpu1-cpu0)
	if rss, err := vmRSS(st.PID); err == nil {
		set(scRSSAfter, rss/nodes)
	}
}

// losses counts packets a scale lab lost: in its dataplane, at its nodes'
// full queues (labStatus.drops), and at the sink's UDP sockets.
type losses struct{ dataplane, queues, sink uint64 }

func readLosses(lab, sinkNS string) (losses, error) {
	st, err := emuStatus(lab)
	if err != nil {
		return losses{}, err
	}
	var l losses
	l.dataplane, l.queues = st.drops()
	l.sink, err = udpInErrors(sinkNS)
	return l, err
}

// since is what was lost between then and l.
func (l losses) since(then losses) losses {
	return losses{l.dataplane - then.dataplane, l.queues - then.queues, l.sink - then.sink}
}

// udpInErrors is the UDP datagrams namespace ns received and dropped
// (InErrors of /proc/net/snmp: a full receive buffer, a bad checksum).
func udpInErrors(ns string) (uint64, error) {
	out, err := runT(10*time.Second, "ip", nsArgs(ns, "cat", "/proc/net/snmp")...)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "InErrors" && i < len(f) {
				return strconv.ParseUint(f[i], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no Udp InErrors in /proc/net/snmp", ns)
}

// vmRSS is a process's resident set in MiB.
func vmRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	kb, err := statusField(string(b), "VmRSS")
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return kb / 1024, nil
}
