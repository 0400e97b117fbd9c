package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/dataplane"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// checkMetricsAddr accepts only a loopback address: the counters describe
// the lab and nobody off this machine should read them.
func checkMetricsAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("--metrics %q: want 127.0.0.1:PORT", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--metrics %q: the port must be a number from 0 to 65535", addr)
	}
	if host == "localhost" {
		return nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.IsLoopback() {
		return fmt.Errorf("--metrics %q: only a loopback address (127.0.0.1, ::1) is allowed", addr)
	}
	return nil
}

// listenMetrics takes addr for the metrics before the lab is built, so a
// port that another lab (or anything else) holds is refused at once, not
// after every namespace was made and torn down again.
func listenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		// Labs on one machine share its loopback: name the lab that holds
		// the port, so a learner knows whom to ask rather than guess.
		by := "another program"
		if lab := metricsHolder(addr); lab != "" {
			by = "lab " + lab + "'s metrics"
		}
		return nil, fmt.Errorf("--metrics %s: the address is in use by %s: choose another port, or port 0 for a free one (status shows it)", addr, by)
	}
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	return ln, nil
}

// metricsHolder names the running lab that serves metrics on addr's port
// of the same loopback address, or "".
func metricsHolder(addr string) string {
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return ""
	}
	for _, lab := range runningLabs() {
		st, err := readState(lab)
		if err != nil || st.Metrics == "" {
			continue
		}
		have, err := net.ResolveTCPAddr("tcp", st.Metrics)
		if err == nil && have.Port == want.Port && (have.IP.Equal(want.IP) || have.IP.IsUnspecified() || want.IP.IsUnspecified()) {
			return lab
		}
	}
	return ""
}

// serveMetrics exports the lab's counters in the Prometheus text format on
// ln at /metrics. Until ready, while the lab is being built, a scrape gets
// 503: the counters do not exist yet, and a page of zeros would read as a
// lab that carries no traffic.
func (l *runningLab) serveMetrics(ln net.Listener) {
	reg := prometheus.NewRegistry()
	// The Go and process collectors are status's process figures under
	// the names every Go exporter uses: go_goroutines,
	// go_memstats_heap_alloc_bytes, process_resident_memory_bytes.
	reg.MustRegister(engineCollector{l}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	page := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if !l.metricsReady.Load() {
			http.Error(w, "lab "+l.name+" is starting", http.StatusServiceUnavailable)
			return
		}
		page.ServeHTTP(w, r)
	})
	l.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	l.metricsAddr = ln.Addr().String()
	go l.metrics.Serve(ln)
}

// stopMetrics closes the metrics endpoint, first letting a scrape under
// way finish (for at most metricsDrain): Close would cut its page short,
// and a scraper may read a cut page as a lab whose series vanished.
func (l *runningLab) stopMetrics() {
	if l.metrics == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsDrain)
	defer cancel()
	if l.metrics.Shutdown(ctx) != nil {
		l.metrics.Close()
	}
}

// metricsDrain bounds how long down waits for a scrape under way.
const metricsDrain = 5 * time.Second

// engineCollector reads the dataplane's counters at scrape time: atomics
// the forwarding path updates anyway, so exporting costs it nothing. It
// collects only once the lab is built (metricsReady).
type engineCollector struct{ l *runningLab }

var (
	descRxPackets = prometheus.NewDesc("emulator_node_rx_packets_total", "Packets the node sent into the dataplane.", []string{"node"}, nil)
	descRxBytes   = prometheus.NewDesc("emulator_node_rx_bytes_total", "Bytes the node sent into the dataplane.", []string{"node"}, nil)
	descTxPackets = prometheus.NewDesc("emulator_node_tx_packets_total", "Packets the dataplane delivered to the node.", []string{"node"}, nil)
	descTxBytes   = prometheus.NewDesc("emulator_node_tx_bytes_total", "Bytes the dataplane delivered to the node.", []string{"node"}, nil)
	descFlows     = prometheus.NewDesc("emulator_node_flows_total", "Flows the node started.", []string{"node"}, nil)
	descDrops     = prometheus.NewDesc("emulator_node_drops_total", "Packets from the node the dataplane dropped, by reason; a reason appears once the node has dropped a packet for it (emulator_drops_total has every reason from 0).", []string{"node", "reason"}, nil)
	descLabDrops  = prometheus.NewDesc("emulator_drops_total", "Packets the dataplane dropped since up, by reason, counting nodes apply removed since; every reason, from 0.", []string{"reason"}, nil)
	descQueueFull = prometheus.NewDesc("emulator_node_queue_full_drops_total", "Packets the node sent that its interface dropped because the dataplane's queue was full (counted by the kernel).", []string{"node"}, nil)
	descRuleHits  = prometheus.NewDesc("emulator_nsg_rule_hits_total", "New flows an NSG rule decided.", []string{"nsg", "rule", "direction", "access"}, nil)
	descPoolSize  = prometheus.NewDesc("emulator_snat_pool_ports", "Ports in a SNAT pool.", []string{"address", "proto"}, nil)
	descPoolUsed  = prometheus.NewDesc("emulator_snat_pool_ports_in_use", "SNAT ports in use.", []string{"address", "proto"}, nil)
	descPoolRef   = prometheus.NewDesc("emulator_snat_pool_refused_total", "New flows refused because the pool was exhausted (F17).", []string{"address", "proto"}, nil)
	descShareSize = prometheus.NewDesc("emulator_snat_share_ports", "Ports of a SNAT pool set aside for one ASE instance (F17).", []string{"address", "proto", "node"}, nil)
	descShareUsed = prometheus.NewDesc("emulator_snat_share_ports_in_use", "Ports of an ASE instance's share of a SNAT pool in use.", []string{"address", "proto", "node"}, nil)
	descShareRef  = prometheus.NewDesc("emulator_snat_share_refused_total", "New flows of an ASE instance refused because its share of the pool was exhausted (F17).", []string{"address", "proto", "node"}, nil)
	descCTFlows   = prometheus.NewDesc("emulator_conntrack_flows", "Flows in the connection table.", nil, nil)
	descCTMax     = prometheus.NewDesc("emulator_conntrack_max_flows", "Size of the connection table.", nil, nil)
	descCTCreated = prometheus.NewDesc("emulator_conntrack_created_total", "Flows created.", nil, nil)
	descCTExpired = prometheus.NewDesc("emulator_conntrack_expired_total", "Flows removed after their timeout.", nil, nil)
	descCTFull    = prometheus.NewDesc("emulator_conntrack_table_full_total", "New flows refused because the connection table was full.", nil, nil)
	descCTClash   = prometheus.NewDesc("emulator_conntrack_conflicts_total", "New flows refused because their translated tuple was a live flow's.", nil, nil)
	descHealthy   = prometheus.NewDesc("emulator_ase_healthy", "1 if the ASE's checks of its dependencies passed, 0 if not (F16); absent until the first check.", []string{"ase"}, nil)
	descRotation  = prometheus.NewDesc("emulator_frontend_in_rotation", "1 if the load balancer sends the front-end new flows, 0 if its probes took it out (F15).", []string{"ase", "node"}, nil)
	descProbeFail = prometheus.NewDesc("emulator_frontend_probe_failures", "Health probes of the front-end that failed in a row (F15).", []string{"ase", "node"}, nil)
	descFlowLost  = prometheus.NewDesc("emulator_flowlog_lost_events_total", "Flow events the flow log writer lagged behind and lost, since flow logging was last turned on.", nil, nil)
	descReaderBuf = prometheus.NewDesc("emulator_reader_buffer_bytes", "Resident bytes of the io_uring workers' packet buffers.", nil, nil)
	descConnBudg  = prometheus.NewDesc("emulator_service_conn_budget", "Connections the lab's services may hold at once: what the descriptor limit leaves after the dataplane's and control's reserve.", nil, nil)
	descConns     = prometheus.NewDesc("emulator_service_conns", "Connections the lab's services hold.", nil, nil)
	descConnsRef  = prometheus.NewDesc("emulator_service_conns_refused_total", "Connections the lab's services closed at once because they were past the budget.", nil, nil)
	descLabInfo   = prometheus.NewDesc("emulator_lab_info", "The lab this endpoint serves, and its topology file; apply with another file replaces the series with one that names it.", []string{"lab", "topology"}, nil)
)

func (engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRxPackets, descRxBytes, descTxPackets, descTxBytes, descFlows, descDrops, descLabDrops, descQueueFull,
		descRuleHits, descPoolSize, descPoolUsed, descPoolRef, descShareSize, descShareUsed, descShareRef,
		descCTFlows, descCTMax, descCTCreated, descCTExpired, descCTFull, descCTClash,
		descHealthy, descRotation, descProbeFail, descFlowLost, descReaderBuf,
		descConnBudg, descConns, descConnsRef, descLabInfo} {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	l, e := c.l, c.l.engine
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, s := range e.Stats() {
		counter(descRxPackets, s.RxPackets, s.Node)
		counter(descRxBytes, s.RxBytes, s.Node)
		counter(descTxPackets, s.TxPackets, s.Node)
		counter(descTxBytes, s.TxBytes, s.Node)
		counter(descFlows, s.Flows, s.Node)
		for r, n := range s.Drops {
			counter(descDrops, n, s.Node, r)
		}
	}
	// Every reason, at 0 until its first drop: increase() and rate() need
	// a sample before it, or the first drops of a reason go unseen. The
	// per-node series stay sparse: nodes times reasons would be most of
	// the page, and almost all zeros.
	totals := e.DropTotals()
	for _, r := range dataplane.DropReasons() {
		counter(descLabDrops, totals[r.String()], r.String())
	}
	l.mu.Lock()
	queueDrops := l.queueDrops()
	topo, source := l.topo, l.state.Topology
	l.mu.Unlock()
	for node, n := range queueDrops {
		counter(descQueueFull, n, node)
	}
	for _, g := range e.NSGStats() {
		for _, r := range g.Rules {
			counter(descRuleHits, r.Hits, g.Name, r.Name, r.Direction, r.Access)
		}
	}
	n := e.NAT()
	for _, p := range n.Pools {
		gauge(descPoolSize, float64(p.Size), p.Address, p.Proto)
		gauge(descPoolUsed, float64(p.InUse), p.Address, p.Proto)
		counter(descPoolRef, p.Exhausted, p.Address, p.Proto)
		for _, sh := range p.Shares {
			// By node name, as every other per-machine series: a
			// share's address is its instance's.
			node := sh.Address
			if a, err := netip.ParseAddr(sh.Address); err == nil {
				if n := topo.NodeByAddr(a); n != nil {
					node = n.Name
				}
			}
			gauge(descShareSize, float64(sh.Size), p.Address, p.Proto, node)
			gauge(descShareUsed, float64(sh.InUse), p.Address, p.Proto, node)
			counter(descShareRef, sh.Exhausted, p.Address, p.Proto, node)
		}
	}
	gauge(descCTFlows, float64(n.Flows))
	gauge(descCTMax, float64(n.MaxFlows))
	counter(descCTCreated, n.Created)
	counter(descCTExpired, n.Expired)
	counter(descCTFull, n.TableFull)
	counter(descCTClash, n.Conflicts)

	probes, health := l.mon.snapshot()
	for _, a := range topo.ASEs {
		if h, ok := health[a.Name]; ok {
			gauge(descHealthy, flag(h.Healthy), a.Name)
		}
		for _, fe := range a.FrontEnds {
			ps := l.mon.frontEnd(probes, fe.Name)
			gauge(descRotation, flag(ps.InRotation), a.Name, fe.Name)
			gauge(descProbeFail, float64(ps.Failures), a.Name, fe.Name)
		}
	}
	if fl := l.flowLogs.status(e); fl.Enabled {
		counter(descFlowLost, fl.Lost)
	}
	gauge(descReaderBuf, float64(e.Reader().BufferBytes))
	b := netx.Budget()
	gauge(descConnBudg, float64(b.Budget))
	gauge(descConns, float64(b.Held))
	counter(descConnsRef, b.Refused)
	gauge(descLabInfo, 1, l.name, source)
}

// closeListener closes a metrics listener that startLab took but will not
// serve on, since the lab does not start.
func closeListener(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}
