package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/build"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// statusReport is what `status --json` prints and the control socket serves.
type statusReport struct {
	Lab      string                 `json:"lab"`
	PID      int                    `json:"pid"`
	Topology string                 `json:"topology"`
	Started  time.Time              `json:"started"`
	Nodes    []nodeStatus           `json:"nodes"`
	ASEs     []aseStatus            `json:"ases"`
	Drops    map[string]int         `json:"drops"` // totals per reason since up, nodes apply removed included
	NAT      dataplane.NATStatus    `json:"nat"`
	NSGs     []nsg.NSGStats         `json:"nsgs"`
	FlowLogs flowLogStatus          `json:"flowLogs"`
	Metrics  string                 `json:"metrics,omitempty"` // the Prometheus endpoint, with up --metrics
	Process  processStatus          `json:"process"`
	Reader   dataplane.ReaderStatus `json:"reader"`
}

type nodeStatus struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Address   string `json:"address"`
	Subnet    string `json:"subnet"`
	Namespace string `json:"namespace"`
	dataplane.PortStats
	// QueueDrops are packets the node sent that its own interface dropped
	// because the queue the dataplane reads was full. The kernel counts
	// them (build.TxDropped); the dataplane never saw them, so they are
	// not among Drops.
	QueueDrops uint64 `json:"queueDrops"`
}

type aseStatus struct {
	Name      string           `json:"name"`
	Kind      string           `json:"kind"`
	Subnet    string           `json:"subnet"`
	VIP       string           `json:"vip"`
	ILB       string           `json:"ilb,omitempty"`
	DNSSuffix string           `json:"dnsSuffix"`
	Health    string           `json:"health,omitempty"` // Healthy, Unhealthy, or checking
	Problems  []string         `json:"problems,omitempty"`
	FrontEnds []frontEndStatus `json:"frontEnds,omitempty"`
}

// frontEndStatus is a front-end as the load balancer's probes see it (F15).
type frontEndStatus struct {
	Name string `json:"name"`
	probeState
}

func (l *runningLab) handleStatus(w http.ResponseWriter, _ *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rep := statusReport{
		Lab: l.name, PID: l.state.PID, Topology: l.state.Topology, Started: l.state.Started,
		Drops: map[string]int{},
	}
	stats := map[string]dataplane.PortStats{}
	for _, s := range l.engine.Stats() {
		stats[s.Node] = s
	}
	queueDrops := l.queueDrops()
	for _, n := range l.topo.Nodes {
		ns := nodeStatus{
			Name: n.Name, Kind: string(n.Kind), Address: n.Addr.String(), Subnet: nodeSubnet(n),
			Namespace: build.NamespaceName(l.name, n.Name), PortStats: stats[n.Name],
			QueueDrops: queueDrops[n.Name],
		}
		rep.Nodes = append(rep.Nodes, ns)
	}
	// Over the lab's life, not over the nodes it has now: a node apply
	// removed keeps its part, so the totals never go back.
	for r, c := range l.engine.DropTotals() {
		rep.Drops[r] = int(c)
	}
	rep.ASEs = aseRows(l.topo)
	probes, health := l.mon.snapshot()
	for i, a := range l.topo.ASEs {
		as := &rep.ASEs[i]
		as.Health = "checking"
		if h, ok := health[a.Name]; ok {
			as.Health, as.Problems = "Unhealthy", h.Problems
			if h.Healthy {
				as.Health = "Healthy"
			}
		}
		for _, fe := range a.FrontEnds {
			as.FrontEnds = append(as.FrontEnds, frontEndStatus{Name: fe.Name, probeState: l.mon.frontEnd(probes, fe.Name)})
		}
	}
	rep.NAT = l.engine.NAT()
	rep.NSGs = l.engine.NSGStats()
	rep.FlowLogs = l.flowLogs.status(l.engine)
	if l.metricsAddr != "" {
		rep.Metrics = "http://" + l.metricsAddr + "/metrics"
	}
	rep.Process = readProcessStatus()
	rep.Reader = l.engine.Reader()
	writeJSON(w, rep)
}

func (l *runningLab) handleFlows(w http.ResponseWriter, r *http.Request) {
	filter, err := dataplane.ParseFilter(r.URL.Query().Get("filter"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, l.engine.Flows(filter))
}

// readJSON decodes a control request's body, at most limit bytes, into v;
// on failure it answers 400 and returns false.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, limit)).Decode(v); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func cmdStatus(args []string, stdout io.Writer) error {
	fs, name := newFlags("status")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := needRoot("status"); err != nil {
		return err
	}
	var rep statusReport
	if err := controlGet(*name, "/status", &rep); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	printStatus(stdout, &rep)
	return nil
}

// controlGet asks the running lab's dataplane for path and decodes the
// JSON answer into v.
func controlGet(lab, path string, v any) error {
	return control(lab, http.MethodGet, path, nil, v)
}

// control sends a request to the running lab's control socket and decodes
// the JSON answer into out. An answer with status 422 is the lab refusing
// the request (bad usage: exit 2); its text is the reason.
func control(lab, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := controlDo(lab, method, path, body, controlTimeout(path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}

// controlTimeout is how long a command waits for the lab to answer path:
// an apply that scales builds namespaces, for up to minutes in a big lab;
// every other answer takes milliseconds (trace waits traceWait for its
// probe), so a lab that has not answered in queryTimeout is stopped or
// wedged, and the user should hear so rather than wait minutes.
func controlTimeout(path string) time.Duration {
	if path == "/apply" {
		return 2 * time.Minute
	}
	return queryTimeout
}

const queryTimeout = 15 * time.Second

// controlDo sends a request to the running lab's control socket and
// returns the answer, once its status is 200; timeout 0 lets a streamed
// answer (capture) run as long as the caller reads it.
func controlDo(lab, method, path string, body io.Reader, timeout time.Duration) (*http.Response, error) {
	if !labRunning(lab) {
		return nil, notRunning(lab)
	}
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath(lab))
		}},
	}
	req, err := http.NewRequest(method, "http://lab"+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return nil, fmt.Errorf("lab %s did not answer within %v: its emulator is stopped or overloaded ("+self+" down --name %s still tears it down)", lab, timeout, lab)
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED):
		// The lock is held, but nothing answers on the socket yet (or any
		// more): an up is building the lab, or the lab is being torn down.
		return nil, fmt.Errorf("lab %s is coming up or going down: its emulator does not answer yet (or any more); try again once up has returned", lab)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("lab %s closed the connection before it answered: it went down, or its emulator ended", lab)
	case err != nil:
		return nil, fmt.Errorf("lab %s: %w", lab, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		switch resp.StatusCode {
		case http.StatusUnprocessableEntity:
			return nil, usagef("%s", strings.TrimSpace(string(b)))
		case http.StatusNotFound, http.StatusMethodNotAllowed:
			// Every request this binary makes has a handler: the lab's
			// emulator is an older build, from before the binary was
			// rebuilt (make) while the lab ran.
			return nil, fmt.Errorf("lab %s runs an older emulator, which cannot answer %s %s; bring it down and up again with this one ("+self+" down --name %s)", lab, method, path, lab)
		}
		return nil, fmt.Errorf("lab %s: %s", lab, strings.TrimSpace(string(b)))
	}
	return resp, nil
}

// printJSON prints v indented, for --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdFlows(args []string, stdout io.Writer) error {
	fs, name := newFlags("flows")
	asJSON := fs.Bool("json", false, "print JSON")
	filter := fs.String("filter", "", "only flows that match before or after translation: host ADDR, port N, tcp|udp|icmp, each perhaps after not, joined by and (a not term hides a flow it holds for on either side)")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if _, err := dataplane.ParseFilter(*filter); err != nil {
		return usagef("flows: %v", err)
	}
	if err := needRoot("flows"); err != nil {
		return err
	}
	var flows []dataplane.FlowView
	if err := controlGet(*name, "/flows?"+url.Values{"filter": {*filter}}.Encode(), &flows); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, flows)
	}
	if len(flows) == 0 {
		if *filter != "" {
			fmt.Fprintf(stdout, "No flows match %q.\n", *filter)
			return nil
		}
		fmt.Fprintln(stdout, "No flows.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTO\tORIGINAL\tTRANSLATED\tNAT\tSTATE\tAGE\tIDLE\tPKTS OUT/BACK\tBYTES OUT/BACK")
	for _, f := range flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d\n", f.Proto, f.Original, f.Translated, f.NAT, f.State,
			secs(f.AgeSeconds), secs(f.IdleSeconds), f.Packets[0], f.Packets[1], f.Bytes[0], f.Bytes[1])
	}
	return tw.Flush()
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Truncate(time.Second).String()
}

// aseRows lists every ASE with its addresses.
func aseRows(t *topology.Topology) []aseStatus {
	rows := []aseStatus{} // [], not null, in status --json of a lab without ASEs
	for _, a := range t.ASEs {
		as := aseStatus{Name: a.Name, Kind: a.Kind, Subnet: a.Subnet.Name, VIP: a.VIP.String(), DNSSuffix: a.DNSSuffix}
		if a.ILB.IsValid() {
			as.ILB = a.ILB.String()
		}
		rows = append(rows, as)
	}
	return rows
}

// printASEs prints the ASE table `up` and `status` show.
func printASEs(w io.Writer, rows []aseStatus) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ASE\tKIND\tSUBNET\tVIP\tILB ADDRESS\tDNS SUFFIX")
	for _, a := range rows {
		ilb := a.ILB
		if ilb == "" {
			ilb = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Kind, a.Subnet, a.VIP, ilb, a.DNSSuffix)
	}
	tw.Flush()
}

// printHealth prints each ASE's health (F16) and its front-ends' rotation
// (F15).
func printHealth(w io.Writer, rows []aseStatus) {
	for _, a := range rows {
		fmt.Fprintf(w, "\n%s: %s\n", a.Name, a.Health)
		for _, p := range a.Problems {
			fmt.Fprintf(w, "  ! %s\n", p)
		}
		for _, fe := range a.FrontEnds {
			state := "in rotation"
			if !fe.InRotation {
				state = "OUT of rotation"
			}
			switch {
			case fe.LastError != "":
				state += fmt.Sprintf(" (%d failed probes: %s)", fe.Failures, fe.LastError)
			case !fe.InRotation:
				state += " (added, no probe has succeeded yet)"
			}
			fmt.Fprintf(w, "  %s: %s\n", fe.Name, state)
		}
	}
}

// printNSGs prints each NSG's rules, the defaults included, with hit
// counters: how many new flows each rule decided.
func printNSGs(w io.Writer, nsgs []nsg.NSGStats) {
	for _, g := range nsgs {
		var on []string
		for _, s := range g.Subnets {
			on = append(on, "subnet "+s)
		}
		for _, n := range g.NICs {
			on = append(on, n+" NIC")
		}
		fmt.Fprintf(w, "\nNSG %s (on %s)\n", g.Name, strings.Join(on, ", "))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PRIORITY\tNAME\tDIRECTION\tACCESS\tPROTOCOL\tSOURCE\tSPORTS\tDESTINATION\tDPORTS\tHITS")
		for _, r := range g.Rules {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Priority, r.Name, r.Direction, r.Access, r.Protocol,
				strings.Join(r.SourcePrefixes, ","), strings.Join(r.SourcePortRanges, ","), strings.Join(r.DestinationPrefixes, ","), strings.Join(r.DestinationPortRanges, ","), r.Hits)
		}
		tw.Flush()
	}
}

func printStatus(w io.Writer, r *statusReport) {
	fmt.Fprintf(w, "Lab %s: running (pid %d) for %s, from %s\n", r.Lab, r.PID,
		time.Since(r.Started).Truncate(time.Second), r.Topology)
	fmt.Fprintf(w, "Dataplane process: %.1f MiB resident (%.1f MiB of it packet buffers), %d goroutines; %s\n\n",
		float64(r.Process.RSSBytes)/(1<<20), float64(r.Reader.BufferBytes)/(1<<20), r.Process.Goroutines, r.Reader)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// The node's view, as `ip -s link` in it shows: what the dataplane
	// received from a node (rxPackets) is what the node sent.
	fmt.Fprintln(tw, "NODE\tKIND\tADDRESS\tSUBNET\tPKTS SENT\tPKTS RECEIVED\tFLOWS\tDROPS\tQUEUE FULL")
	var queueDrops uint64
	for _, n := range r.Nodes {
		var drops uint64
		for _, c := range n.Drops {
			drops += c
		}
		queueDrops += n.QueueDrops
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", n.Name, n.Kind, n.Address, n.Subnet, n.RxPackets, n.TxPackets, n.Flows, drops, n.QueueDrops)
	}
	tw.Flush()
	printASEs(w, r.ASEs)
	printHealth(w, r.ASEs)
	printNSGs(w, r.NSGs)
	n := r.NAT
	fmt.Fprintf(w, "\nConnection tracking: %d flows (max %d), %d created, %d expired, %d refused (table full), %d refused (SNAT ports exhausted)",
		n.Flows, n.MaxFlows, n.Created, n.Expired, n.TableFull, n.PoolExhausted)
	if n.Conflicts > 0 { // rare, and then worth naming: a bigger table would not help
		fmt.Fprintf(w, ", %d refused (translated tuple in use)", n.Conflicts)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAT POOL\tPROTO\tPORTS\tIN USE\tREFUSED")
	names := map[string]string{}
	for _, n := range r.Nodes {
		names[n.Address] = n.Name
	}
	for _, p := range n.Pools {
		// TCP pools always; the others once they are used.
		if p.Proto == "tcp" || p.InUse > 0 || p.Exhausted > 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\n", p.Address, p.Proto, p.Range, p.InUse, p.Size, p.Exhausted)
		}
		// Below it, each machine's own share (F17) that is used.
		for _, s := range p.Shares {
			if s.InUse > 0 || s.Exhausted > 0 {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%d/%d\t%d\n", cmp.Or(names[s.Address], s.Address), p.Proto, s.Range, s.InUse, s.Size, s.Exhausted)
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	printFlowLogs(w, r.FlowLogs, r.Lab)
	if r.Metrics != "" {
		fmt.Fprintf(w, "Prometheus metrics: %s\n", r.Metrics)
	}
	if len(r.Drops) > 0 {
		reasons := make([]string, 0, len(r.Drops))
		for k := range r.Drops {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		fmt.Fprintf(w, "\nDrops by reason:")
		for _, k := range reasons {
			fmt.Fprintf(w, " %s=%d", k, r.Drops[k])
		}
		fmt.Fprintln(w)
	}
	if queueDrops > 0 {
		fmt.Fprintf(w, "\nQueue full: the nodes' own interfaces dropped %d packets that the dataplane had not read in time (the kernel drops at a full TUN queue; the sender is not told).\n", queueDrops)
	}
	if p := r.Process; p.RefusedConns > 0 {
		// The lab's services closed them at once: a client sees a reset
		// or EOF, which no NSG or NAT of the lab explains.
		fmt.Fprintf(w, "\nServices: %d connections refused since up, past their budget of %d (%d held now): the share of the emulator's descriptors (RLIMIT_NOFILE) that the lab leaves them is spent. For more, raise the limit: prlimit --pid %d --nofile=65536, or ulimit -n before up.\n",
			p.RefusedConns, p.ConnBudget, p.Conns, r.PID)
	}
}

// queueDrops reads each node's QueueDrops from its interface. A node whose
// counter cannot be read (its eth0 renamed, say) is left out: status shows
// it as 0, and the metrics have no sample for it that scrape, where a 0
// between two readings of the real count would read to rate() as two
// resets and a burst of drops that never happened. Call it with l.mu
// held: apply changes l.nsh.
func (l *runningLab) queueDrops() map[string]uint64 {
	nodes := make([]string, 0, len(l.nsh))
	nss := make([]netns.NsHandle, 0, len(l.nsh))
	for node, ns := range l.nsh {
		nodes, nss = append(nodes, node), append(nss, ns)
	}
	drops, err := build.TxDropped(nss, "eth0")
	out := make(map[string]uint64, len(nodes))
	for i, node := range nodes {
		if err != nil {
			// TxDropped says that some namespace failed, not which:
			// ask each again, which only this rare case pays for.
			d, err := build.TxDropped(nss[i:i+1], "eth0")
			if err != nil {
				continue
			}
			drops[i] = d[0]
		}
		out[node] = drops[i]
	}
	return out
}

// processStatus is the dataplane process's own footprint, which the soak
// test watches for leaks.
type processStatus struct {
	RSSBytes   uint64 `json:"rssBytes"`
	HeapBytes  uint64 `json:"heapBytes"` // live and not yet collected Go objects
	Goroutines int    `json:"goroutines"`
	// The services' connections against their share of the descriptors
	// (netx.ConnBudget), and those closed at once past it.
	ConnBudget   int64  `json:"connBudget"`
	Conns        int64  `json:"conns"`
	RefusedConns uint64 `json:"refusedConns"`
}

func readProcessStatus() processStatus {
	b := netx.Budget()
	ps := processStatus{Goroutines: runtime.NumGoroutine(), ConnBudget: b.Budget, Conns: b.Held, RefusedConns: b.Refused}
	heap := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(heap)
	ps.HeapBytes = heap[0].Value.Uint64()
	// statm's second field is the resident set, in pages.
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			ps.RSSBytes = pages * uint64(os.Getpagesize())
		}
	}
	return ps
}
