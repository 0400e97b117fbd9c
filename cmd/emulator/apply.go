package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/build"
	"golang.org/x/sys/unix"
)

// applyRequest carries a topology file to the running lab.
type applyRequest struct {
	File    string `json:"file"`
	Content []byte `json:"content"`
}

// applyResult says what an apply changed.
type applyResult struct {
	Changes []string `json:"changes"`
}

func cmdApply(args []string, stdout io.Writer) error {
	fs, name := newFlags("apply")
	file := fs.String("f", "", "topology file")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if err := fileArgs(fs, *file); err != nil {
		return err
	}
	if err := noStdinFile(fs, *file); err != nil {
		return err
	}
	if *file == "" {
		return usagef("apply: usage: %s apply [--name LAB] -f FILE", prog)
	}
	// Read before the root check, as up does, so that a file that cannot
	// be read is named whoever runs apply.
	content, err := os.ReadFile(*file)
	if err != nil {
		return unreadable(*file, err)
	}
	if err := needRoot("apply"); err != nil {
		return err
	}
	abs, _ := filepath.Abs(*file)
	return applyContent(*name, abs, content, stdout)
}

// applyContent applies a topology file's content to the running lab and
// prints what changed.
func applyContent(name, file string, content []byte, stdout io.Writer) error {
	// Checked here first, so a bad file is refused with its file:line
	// (exit 2) and the running lab never sees it.
	if _, err := topology.Parse(file, content); err != nil {
		return err
	}
	var res applyResult
	if err := controlPost(name, "/apply", applyRequest{File: file, Content: content}, &res); err != nil {
		return err
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(stdout, "Lab %s already runs this topology: nothing changed.\n", name)
		return nil
	}
	fmt.Fprintf(stdout, "Applied to lab %s:\n", name)
	for _, c := range res.Changes {
		fmt.Fprintf(stdout, "  %s\n", c)
	}
	return nil
}

// controlPost sends v as JSON to path on the running lab's control socket
// and decodes the answer into out.
func controlPost(lab, path string, v, out any) error {
	return control(lab, http.MethodPost, path, v, out)
}

func (l *runningLab) handleApply(w http.ResponseWriter, r *http.Request) {
	var req applyRequest
	if !readJSON(w, r, topology.MaxFileSize*2, &req) {
		return
	}
	changes, err := l.apply(req.File, req.Content)
	var refused refusal
	var bad topology.Errors
	switch {
	case errors.As(err, &refused), errors.As(err, &bad):
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		writeJSON(w, applyResult{Changes: changes})
	}
}

// refusal is an apply the running lab cannot carry out live: what would
// change, and (once the lab fills them in) the lab and file, so that the
// way out it names acts on this lab, not on the default one.
type refusal struct {
	problems  []string
	lab, file string
}

func (r refusal) Error() string {
	file := r.file
	if file == "" {
		file = "FILE"
	}
	return fmt.Sprintf("apply cannot change these in a running lab (bring the file up instead: "+self+" down%s, then "+self+" up -d -f %s%s):\n  %s",
		labFlag(r.lab), file, labFlag(r.lab), strings.Join(r.problems, "\n  "))
}

// apply moves the running lab to the topology file source, whose content
// is given: NSGs, ASE scale and app placement, connection-tracking
// timeouts. Anything that would renumber the lab is refused before
// anything changes.
func (l *runningLab) apply(source string, content []byte) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Parsed under the lock, over what runs now, so that the machines
	// already running keep their addresses.
	t, err := topology.ParseOver(source, content, l.topo)
	if err != nil {
		return nil, err
	}
	added, removed, changes, err := diffTopology(l.topo, t)
	if r, ok := err.(refusal); ok {
		r.lab, r.file = l.name, source
		return nil, r
	} else if err != nil {
		return nil, err
	}
	// A VM's kernel forwards for it (README: VirtualAppliance), so its
	// namespace follows enableIPForwarding; the dataplane alone would take
	// what the VM forwards while the VM's kernel forwarded nothing.
	if err := l.setForwarding(l.topo, t); err != nil {
		return nil, err
	}
	// Build the new nodes before touching the dataplane, so a failure
	// leaves the running lab as it was.
	var specs []dataplane.PortSpec
	for _, n := range added {
		dev, h, err := l.buildNode(n)
		if err != nil {
			for j, spec := range specs {
				spec.Dev.Close()
				l.forgetNode(added[j].Name)
			}
			l.setForwarding(t, l.topo)
			return nil, err
		}
		l.nsh[n.Name], l.nets[n.Name] = h, nsNet{h, n.Addr}
		specs = append(specs, dataplane.PortSpec{Node: n, Dev: dev})
	}
	var gone []string
	for _, n := range removed {
		gone = append(gone, n.Name)
	}
	if err := l.engine.Reconfigure(t, specs, gone); err != nil {
		l.setForwarding(t, l.topo)
		return nil, err
	}
	if l.topo.FlowLogs != t.FlowLogs {
		l.flowLogs.set(l, t.FlowLogs)
	}
	if err := l.svc.update(t, added, removed, l.nets); err != nil {
		return nil, err
	}
	for _, n := range removed {
		l.forgetNode(n.Name)
	}
	l.topo = t
	l.setReserve()
	l.state.Topology = source
	l.state.record(t)
	return changes, writeState(l.state)
}

// diffTopology compares the running topology with a new one. It returns
// the nodes to add and remove and a line per change, or a refusal if the
// new topology changes what a running lab cannot: addresses, subnets, VIPs.
func diffTopology(old, new *topology.Topology) (added, removed []*topology.Node, changes []string, err error) {
	var problems []string
	refuse := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	if fmt.Sprint(networks(old)) != fmt.Sprint(networks(new)) {
		refuse("the VNets, their address spaces or subnets changed")
	}
	for _, na := range new.ASEs {
		oa := old.ASEByName(na.Name)
		switch {
		case oa == nil:
			refuse("ASE %s is new", na.Name)
		case oa.Kind != na.Kind || oa.VIP != na.VIP || oa.ILB != na.ILB || oa.ILBMode != na.ILBMode || oa.DNSSuffix != na.DNSSuffix || oa.Subnet.Name != na.Subnet.Name:
			refuse("ASE %s changed its kind, subnet, VIP, ILB address, mode or DNS suffix", na.Name)
		case oa.SNATPorts != na.SNATPorts:
			refuse("ASE %s changed its snatPortRange", na.Name)
		default:
			if len(oa.FrontEnds) != len(na.FrontEnds) || len(oa.Workers) != len(na.Workers) {
				changes = append(changes, fmt.Sprintf("ASE %s scaled from %d front-ends and %d workers to %d and %d",
					na.Name, len(oa.FrontEnds), len(oa.Workers), len(na.FrontEnds), len(na.Workers)))
			}
			if oa.PortsPerInstance != na.PortsPerInstance {
				changes = append(changes, fmt.Sprintf("ASE %s gives each machine %d SNAT ports, was %d",
					na.Name, na.PortsPerInstance, oa.PortsPerInstance))
			}
			if appPlacement(oa) != appPlacement(na) {
				changes = append(changes, fmt.Sprintf("ASE %s apps: %s", na.Name, appPlacement(na)))
			}
		}
	}
	for _, oa := range old.ASEs {
		if new.ASEByName(oa.Name) == nil {
			refuse("ASE %s is gone", oa.Name)
		}
	}
	for _, nn := range new.Nodes {
		on := old.NodeByName(nn.Name)
		switch {
		case on == nil && nn.ASE == nil:
			refuse("%s %s is new: only ASE front-ends and workers can be added to a running lab", nn.Kind, nn.Name)
		case on == nil:
			added = append(added, nn)
			changes = append(changes, fmt.Sprintf("added %s at %s", nn.Name, nn.Addr))
		case on.Kind != nn.Kind:
			refuse("node %s would change from %s to %s", nn.Name, on.Kind, nn.Kind)
		case on.Addr != nn.Addr:
			refuse("node %s would change its address from %s to %s", nn.Name, on.Addr, nn.Addr)
		case on.PublicIP != nn.PublicIP:
			refuse("VM %s would change its publicIpAddress from %s to %s", nn.Name, addrOrNone(on.PublicIP), addrOrNone(nn.PublicIP))
		}
	}
	for _, on := range old.Nodes {
		if nn := new.NodeByName(on.Name); nn == nil {
			if on.ASE == nil {
				refuse("%s %s is gone: only ASE front-ends and workers can be removed from a running lab", on.Kind, on.Name)
			} else {
				removed = append(removed, on)
				changes = append(changes, fmt.Sprintf("removed %s (%s)", on.Name, on.Addr))
			}
		}
	}
	if old.DefaultOutbound != new.DefaultOutbound || old.Conntrack.MaxFlows != new.Conntrack.MaxFlows {
		refuse("defaultOutboundAddress or connectionTracking.maxFlows changed")
	} else if old.Conntrack != new.Conntrack {
		changes = append(changes, fmt.Sprintf("connection tracking timeouts: idle %v, after FIN %v, after RST %v",
			new.Conntrack.IdleTimeout, new.Conntrack.FinTimeout, new.Conntrack.RstTimeout))
	}
	changes = append(changes, diffNSGs(old, new)...)
	changes = append(changes, diffRoutes(old, new)...)
	if (old.OnPremises == nil) != (new.OnPremises == nil) {
		refuse("the onPremises network was added or removed")
	} else if o, n := old.OnPremises, new.OnPremises; o != nil {
		if o.AdvertiseDefaultRoute != n.AdvertiseDefaultRoute {
			changes = append(changes, fmt.Sprintf("on-premises advertiseDefaultRoute: %v (forced tunneling %s)", n.AdvertiseDefaultRoute, onOff(n.AdvertiseDefaultRoute)))
		}
		if o.NATAddress != n.NATAddress {
			changes = append(changes, fmt.Sprintf("on-premises natAddress: %s, was %s", n.NATAddress, o.NATAddress))
		}
		if !slices.Equal(o.AddressSpace, n.AddressSpace) {
			changes = append(changes, fmt.Sprintf("on-premises address space: %v, was %v", n.AddressSpace, o.AddressSpace))
		}
	}
	for _, nn := range new.Nodes {
		on := old.NodeByName(nn.Name)
		if on == nil {
			continue
		}
		if on.Latency != nn.Latency {
			changes = append(changes, fmt.Sprintf("%s latency: %s, was %s", nn.Name, nn.Latency, on.Latency))
		}
		if on.IPForwarding != nn.IPForwarding {
			changes = append(changes, fmt.Sprintf("%s IP forwarding: %s", nn.Name, onOff(nn.IPForwarding)))
		}
	}
	if old.FlowLogs != new.FlowLogs {
		changes = append(changes, fmt.Sprintf("NSG flow logs: %s", onOff(new.FlowLogs)))
	}
	if len(problems) > 0 {
		return nil, nil, nil, refusal{problems: problems}
	}
	return added, removed, changes, nil
}

func addrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// networks describes the VNets for comparison.
func networks(t *topology.Topology) []string {
	var out []string
	for _, v := range t.VNets {
		out = append(out, fmt.Sprint(v.Name, v.AddressSpace))
		for _, s := range v.Subnets {
			out = append(out, fmt.Sprint(s.Name, s.Prefix))
		}
	}
	return out
}

// appPlacement describes which workers run which app, e.g.
// "app1 on ase1-w1, ase1-w2".
func appPlacement(a *topology.ASE) string {
	var parts []string
	for _, app := range a.Apps {
		var ws []string
		for _, w := range app.Workers {
			ws = append(ws, w.Name)
		}
		parts = append(parts, app.Name+" on "+strings.Join(ws, ", "))
	}
	return strings.Join(parts, "; ")
}

// diffNSGs lists the NSGs whose rules changed and the attachments that
// changed. New flows get the new verdicts; established flows keep theirs
// (F12).
func diffNSGs(old, new *topology.Topology) []string {
	var changes []string
	// A rule's content, without its line: lines move whenever the file is
	// edited above the rule, and that changes nothing in the lab. Sorted,
	// because priorities are unique per direction, so the order of the
	// rules in the file does not matter either.
	rules := func(g *topology.NSG) string {
		var rs []string
		for _, r := range g.Rules {
			c := *r
			c.Line = 0
			rs = append(rs, fmt.Sprintf("%+v", c))
		}
		slices.Sort(rs)
		return strings.Join(rs, ";")
	}
	for _, ng := range new.NSGs {
		if og := old.NSGByName(ng.Name); og == nil {
			changes = append(changes, fmt.Sprintf("NSG %s added (%d rules)", ng.Name, len(ng.Rules)))
		} else if rules(og) != rules(ng) {
			changes = append(changes, fmt.Sprintf("NSG %s: rules changed (%d rules)", ng.Name, len(ng.Rules)))
		}
	}
	for _, og := range old.NSGs {
		if new.NSGByName(og.Name) == nil {
			changes = append(changes, fmt.Sprintf("NSG %s removed", og.Name))
		}
	}
	attached := func(name string) string {
		if name == "" {
			return "none"
		}
		return name
	}
	for _, v := range new.VNets {
		for _, s := range v.Subnets {
			if was := old.SubnetByName(s.Name); was != nil && was.NSG != s.NSG {
				changes = append(changes, fmt.Sprintf("subnet %s: NSG %s -> %s", s.Name, attached(was.NSG), attached(s.NSG)))
			}
		}
	}
	for _, n := range new.Nodes {
		if on := old.NodeByName(n.Name); on != nil && on.NSG != n.NSG {
			changes = append(changes, fmt.Sprintf("%s NIC: NSG %s -> %s", n.Name, attached(on.NSG), attached(n.NSG)))
		}
	}
	return changes
}

// setForwarding turns IP forwarding on or off in the namespace of every
// node of both topologies whose enableIPForwarding differs, to what to
// says. On failure it puts back those it changed.
func (l *runningLab) setForwarding(from, to *topology.Topology) error {
	var done []*topology.Node
	set := func(n *topology.Node, on bool) error {
		return build.Do(l.nsh[n.Name], func() error {
			if on {
				return build.EnableForwarding()
			}
			return build.DisableForwarding()
		})
	}
	for _, n := range to.Nodes {
		if was := from.NodeByName(n.Name); was == nil || was.IPForwarding == n.IPForwarding {
			continue
		}
		if err := set(n, n.IPForwarding); err != nil {
			for _, d := range done {
				set(d, !d.IPForwarding)
			}
			return fmt.Errorf("node %s: IP forwarding: %w", n.Name, err)
		}
		done = append(done, n)
	}
	return nil
}

// forgetNode stops what runs in node's namespace and deletes it.
func (l *runningLab) forgetNode(node string) {
	ns := build.NamespaceName(l.name, node)
	if entry, err := lockEntry(l.name, unix.LOCK_EX); err == nil {
		defer entry.Close()
	}
	stopProcesses(build.PidsIn([]string{ns}))
	if h, ok := l.nsh[node]; ok {
		h.Close()
		delete(l.nsh, node)
		delete(l.nets, node)
	}
	build.DeleteNamespace(ns)
	build.RemoveEtc(ns)
}

// diffRoutes lists the route tables and attachments that changed (F18).
func diffRoutes(old, new *topology.Topology) []string {
	var changes []string
	describe := func(rt *topology.RouteTable) string {
		if rt == nil {
			return "none"
		}
		var b strings.Builder
		b.WriteString(rt.Name)
		for _, r := range rt.Routes {
			fmt.Fprintf(&b, " %s:%s->%s%v", r.Name, r.Prefix, r.NextHop, r.NextHopIP)
		}
		return b.String()
	}
	for _, v := range new.VNets {
		for _, s := range v.Subnets {
			if was := old.SubnetByName(s.Name); was != nil && describe(was.RouteTable) != describe(s.RouteTable) {
				name := "none"
				if s.RouteTable != nil {
					name = fmt.Sprintf("%s (%d routes)", s.RouteTable.Name, len(s.RouteTable.Routes))
				}
				changes = append(changes, fmt.Sprintf("subnet %s: routes now %s", s.Name, name))
			}
		}
	}
	return changes
}
