package main

// The three paths between a client at 10.0.1.6 and a server at 203.0.113.10,
// and the measurements run over each.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aseemu/emulator/dataplane"
)

// path is one way from the client namespace to the server namespace.
type path struct {
	name     string
	client   string // namespace names
	server   string
	servers  []*server // iperf3 servers and the TCP request/response server
	note     string    // how it was verified
	snatRule string    // kernel: the router namespace, to read the SNAT counter
	// dataplane is the emulator path's dataplane process, whose CPU the
	// measurements split out of the machine's; 0 on the other paths.
	dataplane int
}

// dataplaneSpent runs f and returns the CPU time, in seconds, that the
// path's dataplane process spent meanwhile: NaN on a path without one.
func (p *path) dataplaneSpent(f func() error) (float64, error) {
	if p.dataplane == 0 {
		return math.NaN(), f()
	}
	a, err := readProcCPU(p.dataplane)
	if err != nil {
		return math.NaN(), err
	}
	if err := f(); err != nil {
		return math.NaN(), err
	}
	b, err := readProcCPU(p.dataplane)
	if err != nil {
		return math.NaN(), err
	}
	return b.sub(a).total(), nil
}

// ns runs a command inside a namespace.
func nsArgs(ns string, args ...string) []string {
	return append([]string{"netns", "exec", ns}, args...)
}

func ipCmd(args ...string) error {
	_, err := runT(20*time.Second, "ip", args...)
	return err
}

func newNetns(name string) error {
	if err := reg.addNetns(name); err != nil {
		return err
	}
	if err := ipCmd("netns", "add", name); err != nil {
		return err
	}
	// No IPv6 chatter (router solicitations, DAD) in the measurements.
	if _, err := runT(10*time.Second, "ip", nsArgs(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")...); err != nil {
		return err
	}
	return ipCmd("-n", name, "link", "set", "lo", "up")
}

// ipSeq runs ip commands, each a space-separated line, stopping at the first error.
func ipSeq(lines ...string) error {
	for _, l := range lines {
		if err := ipCmd(strings.Fields(l)...); err != nil {
			return err
		}
	}
	return nil
}

// setupDirect joins a client and a server namespace with one veth pair.
func setupDirect() (*path, error) {
	c, s := prefix+"-dc", prefix+"-ds"
	for _, n := range []string{c, s} {
		if err := newNetns(n); err != nil {
			return nil, err
		}
	}
	// Created inside the namespaces: the root namespace never sees the pair.
	err := ipSeq(
		"-n "+c+" link add eth0 type veth peer name eth0 netns "+s,
		"-n "+c+" addr add "+clientAddr+"/26 dev eth0",
		"-n "+c+" link set eth0 up",
		"-n "+c+" route add "+serverAddr+"/32 dev eth0",
		"-n "+s+" addr add "+serverAddr+"/24 dev eth0",
		"-n "+s+" link set eth0 up",
		"-n "+s+" route add 10.0.1.0/26 dev eth0",
	)
	if err != nil {
		return nil, err
	}
	return &path{name: "direct", client: c, server: s}, nil
}

// kernelRuleset is the router's nftables configuration: SNAT of the client
// subnet to the VIP, and a stateful forward filter of ten rules that the
// benchmark's flows cross to the last two (the emulator's NSG has the same
// shape). The SNAT rule counts, as evidence that it ran.
func kernelRuleset() string {
	return fmt.Sprintf(`table ip bench_nat {
	chain snat_out {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" ip saddr 10.0.1.0/26 counter snat to %[1]s
	}
}
table ip bench_filter {
	chain forward_filter {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "lan" ip saddr != 10.0.1.0/26 drop
		tcp dport { 23, 25, 445, 3389 } drop
		ip daddr 203.0.113.0/24 tcp dport 6000-6999 drop
		ip daddr 100.64.0.0/10 drop
		ip daddr 198.18.0.0/15 drop
		ip daddr 10.0.0.0/8 drop
		iifname "lan" oifname "wan" ip daddr %[2]s tcp dport { %[3]d-%[4]d, %[5]d-%[6]d } accept
		iifname "lan" oifname "wan" ip daddr %[2]s udp dport %[7]d accept
	}
}
`, vipAddr, serverAddr, iperfPort, iperfPort+3, rrPort, crrPort, udpPort)
}

// setupKernel puts a router namespace between client and server: kernel
// forwarding, nftables SNAT and a stateful filter, all inside the router's
// own namespace.
func setupKernel(tmp string) (*path, error) {
	c, r, s := prefix+"-kc", prefix+"-kr", prefix+"-ks"
	for _, n := range []string{c, r, s} {
		if err := newNetns(n); err != nil {
			return nil, err
		}
	}
	err := ipSeq(
		"-n "+c+" link add eth0 type veth peer name lan netns "+r,
		"-n "+s+" link add eth0 type veth peer name wan netns "+r,
		"-n "+c+" addr add "+clientAddr+"/26 dev eth0",
		"-n "+c+" link set eth0 up",
		"-n "+c+" route add default via 10.0.1.1",
		"-n "+r+" addr add 10.0.1.1/26 dev lan",
		"-n "+r+" addr add 203.0.113.1/24 dev wan",
		"-n "+r+" link set lan up",
		"-n "+r+" link set wan up",
		"-n "+s+" addr add "+serverAddr+"/24 dev eth0",
		"-n "+s+" link set eth0 up",
		"-n "+s+" route add default via 203.0.113.1",
	)
	if err != nil {
		return nil, err
	}
	if _, err := runT(10*time.Second, "ip", nsArgs(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")...); err != nil {
		return nil, err
	}
	f := filepath.Join(tmp, "router.nft")
	if err := os.WriteFile(f, []byte(kernelRuleset()), 0o600); err != nil {
		return nil, err
	}
	if _, err := runT(20*time.Second, "ip", nsArgs(r, "nft", "-f", f)...); err != nil {
		return nil, err
	}
	return &path{name: "kernel", client: c, server: s, snatRule: r}, nil
}

// snatCount reads how many connections the kernel router's SNAT rule saw.
func (p *path) snatCount() (int64, error) {
	out, err := runT(10*time.Second, "ip", nsArgs(p.snatRule, "nft", "-j", "list", "table", "ip", "bench_nat")...)
	if err != nil {
		return 0, err
	}
	i := strings.Index(out, `"counter"`)
	if i < 0 {
		return 0, errors.New("no counter in the ruleset")
	}
	var v struct {
		Counter struct {
			Packets int64 `json:"packets"`
		} `json:"counter"`
	}
	j := strings.Index(out[i:], "}")
	if err := json.Unmarshal([]byte("{"+out[i:i+j+1]+"}"), &v); err != nil {
		return 0, err
	}
	return v.Counter.Packets, nil
}

// labStatus is the part of `emulator status --json` the harness reads.
type labStatus struct {
	PID   int `json:"pid"`
	Nodes []struct {
		Name       string `json:"name"`
		Address    string `json:"address"`
		Namespace  string `json:"namespace"`
		QueueDrops uint64 `json:"queueDrops"`
	} `json:"nodes"`
	Drops  map[string]uint64      `json:"drops"`
	Reader dataplane.ReaderStatus `json:"reader"`
}

// drops is what the lab lost so far: packets its dataplane dropped, for
// any reason, and packets its nodes' own interfaces dropped before the
// dataplane read them.
func (st *labStatus) drops() (inDataplane, atQueues uint64) {
	for _, c := range st.Drops {
		inDataplane += c
	}
	for _, nd := range st.Nodes {
		atQueues += nd.QueueDrops
	}
	return inDataplane, atQueues
}

func emuStatus(lab string) (*labStatus, error) {
	out, err := runT(30*time.Second, reg.emulator, "status", "--name", lab, "--json")
	if err != nil {
		return nil, err
	}
	var st labStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("status --json: %w", err)
	}
	return &st, nil
}

// emuUp brings a lab up in the background and returns how long `up -d` took.
func emuUp(lab, file string) (time.Duration, error) {
	if err := reg.addLab(lab); err != nil {
		return 0, err
	}
	t0 := time.Now()
	_, err := runT(3*time.Minute, reg.emulator, "up", "-d", "--name", lab, "-f", file)
	return time.Since(t0), err
}

// setupEmulator brings up the emulator path's lab with the 10-rule NSG,
// and returns it with its name and how its dataplane reads.
func setupEmulator(tmp string) (p *path, lab, reader string, err error) {
	lab = prefix + "-p"
	f := filepath.Join(tmp, "lab-nsg10.yaml")
	if err := os.WriteFile(f, []byte(pathLab(10)), 0o600); err != nil {
		return nil, "", "", err
	}
	if _, err := emuUp(lab, f); err != nil {
		return nil, "", "", err
	}
	st, err := emuStatus(lab)
	if err != nil {
		return nil, "", "", err
	}
	p = &path{name: "emulator", dataplane: st.PID}
	for _, n := range st.Nodes {
		switch n.Address {
		case clientAddr:
			p.client = n.Namespace
		case serverAddr:
			p.server = n.Namespace
		}
	}
	if p.client == "" || p.server == "" {
		return nil, "", "", fmt.Errorf("lab %s has no node at %s or %s", lab, clientAddr, serverAddr)
	}
	return p, lab, st.Reader.String(), nil
}

// startServers starts, in the server namespace, one iperf3 server per TCP
// stream and the request/response server.
func (p *path) startServers(self string) error {
	for i := range 4 {
		s, err := startServer("Server listening", 10*time.Second, "ip",
			nsArgs(p.server, "iperf3", "-s", "--forceflush", "-p", fmt.Sprint(iperfPort+i))...)
		if err != nil {
			return fmt.Errorf("%s: iperf3 server: %w", p.name, err)
		}
		p.servers = append(p.servers, s)
	}
	s, err := startServer("ready", 10*time.Second, "ip", nsArgs(p.server, self, "helper", "tcp-server",
		"-rr-port", fmt.Sprint(rrPort), "-crr-port", fmt.Sprint(crrPort), "-size", "1", "-conc", "4")...)
	if err != nil {
		return fmt.Errorf("%s: tcp server: %w", p.name, err)
	}
	p.servers = append(p.servers, s)
	return nil
}

func (p *path) stopServers() {
	for _, s := range p.servers {
		s.kill()
	}
	p.servers = nil
}

// iperfJSON is the part of iperf3 -J's report the harness reads.
type iperfJSON struct {
	End struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Seconds       float64 `json:"seconds"`
		} `json:"sum_received"`
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
	} `json:"end"`
	Error string `json:"error"`
}

func parseIperf(out string) (float64, error) {
	var r iperfJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, fmt.Errorf("iperf3 -J: %w", err)
	}
	if r.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("iperf3 reported no throughput")
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

// tcpThroughput runs streams iperf3 clients at once, one stream each (this
// iperf3 is single-threaded, so -P would put all streams on one core), and
// returns the sum of what the servers received, in Gbit/s, and what the
// machine's CPUs did meanwhile.
func (p *path) tcpThroughput(cfg *config, streams int) (gbps float64, cpu cpuSample, err error) {
	secs := int(math.Ceil(cfg.tcpTime.Seconds()))
	to := cfg.tcpTime + 30*time.Second
	// The CPU is read inside the measured time: after the omitted second
	// and the clients' start, and a second before the end.
	sample := make(chan cpuSample, 1)
	go func() { sample <- sampleCPU(1500*time.Millisecond, cfg.tcpTime-time.Second, p.dataplane) }()
	var wg sync.WaitGroup
	bps := make([]float64, streams)
	errs := make([]error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := runT(to, "ip", nsArgs(p.client, "iperf3", "-c", serverAddr, "-p", fmt.Sprint(iperfPort+i),
				"-t", fmt.Sprint(secs), "-O", "1", "-J")...)
			if err == nil || out != "" {
				bps[i], err = parseIperf(out)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	cpu = <-sample
	sum := 0.0
	for i := range streams {
		if errs[i] != nil {
			return math.NaN(), cpu, errs[i]
		}
		sum += bps[i]
	}
	return sum / 1e9, cpu, nil
}

// udpResult is one UDP measurement. clientDrop is the share of what was
// sent that the client's own interface dropped (its tx_dropped): on the
// emulator path, datagrams the dataplane had not read before its queue
// filled. serverDrop is the share the server's stack dropped because the
// sink's socket buffer was full (UDP's RcvbufErrors in its namespace):
// datagrams the path carried all the way, which the sink had no CPU to
// read in time. reached counts the datagrams that reached the server's
// stack (delivered to the sink or dropped there), and dpSecs is the
// dataplane's CPU time meanwhile (NaN on a path without one).
type udpResult struct {
	offeredPPS, deliveredPPS, loss, clientDrop, serverDrop float64
	reached, dpSecs                                        float64
	senders                                                int
}

// udp sends 64-byte datagrams from senders sockets (one thread each) for
// cfg.udpTime and counts what reaches the sink.
func (p *path) udp(cfg *config, self string, senders int) (udpResult, error) {
	sink, err := startServer("ready", 10*time.Second, "ip", nsArgs(p.server, self, "helper", "udp-sink",
		"-port", fmt.Sprint(udpPort), "-conc", "2")...)
	if err != nil {
		return udpResult{}, err
	}
	defer sink.kill()
	dropped0, err := txDropped(p.client)
	if err != nil {
		return udpResult{}, err
	}
	full0, err := udpRcvbufErrors(p.server)
	if err != nil {
		return udpResult{}, err
	}
	var out string
	dp, err := p.dataplaneSpent(func() (err error) {
		out, err = runT(cfg.udpTime+30*time.Second, "ip", nsArgs(p.client, self, "helper", "udp-blast",
			"-addr", fmt.Sprintf("%s:%d", serverAddr, udpPort), "-conc", fmt.Sprint(senders),
			"-size", "64", "-batch", "64", "-duration", cfg.udpTime.String())...)
		time.Sleep(300 * time.Millisecond) // the last datagrams in flight
		return err
	})
	if err != nil {
		return udpResult{}, err
	}
	var b blastResult
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		return udpResult{}, err
	}
	sout, err := sink.finish(10 * time.Second)
	if err != nil {
		return udpResult{}, fmt.Errorf("udp sink: %w", err)
	}
	var s sinkResult
	if err := json.Unmarshal([]byte(sout), &s); err != nil {
		return udpResult{}, fmt.Errorf("udp sink: %w", err)
	}
	if b.Sent == 0 {
		return udpResult{}, fmt.Errorf("udp: nothing sent (%d errors: %s)", b.Errors, b.FirstError)
	}
	dropped1, err := txDropped(p.client)
	if err != nil {
		return udpResult{}, err
	}
	full1, err := udpRcvbufErrors(p.server)
	if err != nil {
		return udpResult{}, err
	}
	full := float64(full1 - full0)
	return udpResult{
		clientDrop:   float64(dropped1-dropped0) / float64(b.Sent),
		serverDrop:   full / float64(b.Sent),
		offeredPPS:   float64(b.Sent) / b.Seconds,
		deliveredPPS: float64(s.Packets) / b.Seconds,
		loss:         1 - float64(s.Packets)/float64(b.Sent),
		reached:      float64(s.Packets) + full,
		dpSecs:       dp,
		senders:      senders,
	}, nil
}

func (p *path) rr(cfg *config, self string) (*rrResult, error) {
	out, err := runT(cfg.rrTime+30*time.Second, "ip", nsArgs(p.client, self, "helper", "rr-client",
		"-addr", fmt.Sprintf("%s:%d", serverAddr, rrPort), "-size", "1", "-duration", cfg.rrTime.String())...)
	if err != nil {
		return nil, err
	}
	var r rrResult
	return &r, json.Unmarshal([]byte(out), &r)
}

// crrPortRange is the client's ephemeral ports during the new-connection
// runs: 15,000, fewer than benchSNATPorts.
const crrPortRange = "50000 64999"

func (p *path) crr(cfg *config, self string) (*crrResult, error) {
	// The client namespace is the bench's own (or its lab's), on every path
	// alike: see benchSNATPorts.
	if err := ipCmd("netns", "exec", p.client, "sh", "-c", "echo "+crrPortRange+" > /proc/sys/net/ipv4/ip_local_port_range"); err != nil {
		return nil, err
	}
	out, err := runT(cfg.crrTime+30*time.Second, "ip", nsArgs(p.client, self, "helper", "crr-client",
		"-addr", fmt.Sprintf("%s:%d", serverAddr, crrPort), "-conc", fmt.Sprint(cfg.crrConc), "-duration", cfg.crrTime.String())...)
	if err != nil {
		return nil, err
	}
	var r crrResult
	return &r, json.Unmarshal([]byte(out), &r)
}
