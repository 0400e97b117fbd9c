// Package graph draws a lab's topology, as Graphviz dot or Mermaid: the
// VNets with their subnets, each subnet's NSG and route table, the ASEs
// with their VIP and ILB address, front-ends and workers, VMs (with a NIC
// NSG or public IP), the Internet hosts, the Azure platform address, and
// an on-premises network behind its gateway. It reads only the topology,
// so it works without a running lab.
package graph

import (
	"fmt"
	"strings"

	"github.com/aseemu/emulator/topology"
)

// cluster is a box of the drawing; leaves are nodes, edges join them.
type cluster struct {
	id, label string
	style     string // "vnet", "subnet", "ase", "internet", "onprem", "platform"
	nodes     []leaf
	subs      []*cluster
}

type leaf struct {
	id, label, shape string
}

// edge joins two leaves, or a cluster (fromCluster, toCluster: from or
// to is then the cluster's id), which dot draws to an invisible anchor
// inside it and Mermaid to the subgraph itself.
type edge struct {
	from, to, label        string
	fromCluster, toCluster bool
}

// model is the drawing before it is written in a language.
type model struct {
	top   []*cluster
	loose []leaf
	edges []edge
}

// ids gives each thing drawn an identifier dot and Mermaid take: its kind
// and name with every character but a letter or digit made '_'. Names may
// hold '-', '_' and '.', so two VNets "a-b" and "a_b" would both be
// vnet_a_b, and dot and Mermaid would draw them as one box holding both
// VNets' subnets: the second of them takes a number. The same thing asked
// for again gets the same identifier.
type ids struct {
	of    map[string]string // the parts, joined by NUL, to their identifier
	taken map[string]bool
}

func (d *ids) id(parts ...string) string {
	key := strings.Join(parts, "\x00")
	if s, ok := d.of[key]; ok {
		return s
	}
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, strings.Join(parts, "_"))
	s := base
	for i := 2; d.taken[s]; i++ {
		s = fmt.Sprintf("%s_%d", base, i)
	}
	d.of[key], d.taken[s] = s, true
	return s
}

func build(t *topology.Topology) *model {
	m := &model{}
	d := &ids{of: map[string]string{}, taken: map[string]bool{}}
	id := d.id
	nodeLeaf := func(n *topology.Node, extra ...string) leaf {
		label := []string{n.Name, n.Addr.String()}
		return leaf{id: id("n", n.Name), label: strings.Join(append(label, extra...), "\n"), shape: "box"}
	}
	for _, v := range t.VNets {
		var space []string
		for _, p := range v.AddressSpace {
			space = append(space, p.String())
		}
		vc := &cluster{id: id("vnet", v.Name), label: "VNet " + v.Name + "\n" + strings.Join(space, ", "), style: "vnet"}
		for _, s := range v.Subnets {
			label := []string{"subnet " + s.Name + " " + s.Prefix.String()}
			if s.NSG != "" {
				label = append(label, "NSG "+s.NSG)
			}
			if s.RouteTable != nil {
				label = append(label, "route table "+s.RouteTable.Name)
			}
			sc := &cluster{id: id("subnet", v.Name, s.Name), label: strings.Join(label, "\n"), style: "subnet"}
			if a := s.ASE; a != nil {
				ac := &cluster{id: id("ase", a.Name), label: fmt.Sprintf("ASE %s (%s)", a.Name, a.Kind), style: "ase"}
				vip := leaf{id: id("vip", a.Name), label: "VIP " + a.VIP.String(), shape: "ellipse"}
				ac.nodes = append(ac.nodes, vip)
				front := vip.id
				if a.ILB.IsValid() {
					ilb := leaf{id: id("ilb", a.Name), label: "ILB " + a.ILB.String(), shape: "ellipse"}
					ac.nodes = append(ac.nodes, ilb)
					front = ilb.id
				}
				for _, fe := range a.FrontEnds {
					ac.nodes = append(ac.nodes, nodeLeaf(fe, "front-end"))
					m.edges = append(m.edges, edge{from: front, to: id("n", fe.Name)})
				}
				for _, w := range a.Workers {
					ac.nodes = append(ac.nodes, nodeLeaf(w, "worker"))
				}
				if a.ILB.IsValid() {
					for _, fe := range a.FrontEnds {
						m.edges = append(m.edges, edge{from: vip.id, to: id("n", fe.Name), label: "management"})
					}
				}
				sc.subs = append(sc.subs, ac)
			}
			for _, n := range s.Nodes {
				if n.ASE != nil {
					continue
				}
				var extra []string
				if n.NSG != "" {
					extra = append(extra, "NIC NSG "+n.NSG)
				}
				if n.PublicIP.IsValid() {
					extra = append(extra, "public IP "+n.PublicIP.String())
				}
				if n.IPForwarding {
					extra = append(extra, "IP forwarding")
				}
				sc.nodes = append(sc.nodes, nodeLeaf(n, extra...))
			}
			vc.subs = append(vc.subs, sc)
		}
		m.top = append(m.top, vc)
	}
	inet := &cluster{id: id("internet"), label: "Internet", style: "internet"}
	var onprem *cluster
	if o := t.OnPremises; o != nil {
		var space []string
		for _, p := range o.AddressSpace {
			space = append(space, p.String())
		}
		onprem = &cluster{id: id("onprem"), label: "on-premises " + strings.Join(space, ", "), style: "onprem"}
	}
	for _, n := range t.Nodes {
		if n.Subnet != nil {
			continue
		}
		switch {
		case n.Kind == topology.NodePlatform:
			m.loose = append(m.loose, leaf{id: id("n", n.Name), label: "Azure platform\n" + n.Addr.String() + "\nDNS, load balancer probes", shape: "component"})
		case onprem != nil && t.OnPremises.Contains(n.Addr):
			onprem.nodes = append(onprem.nodes, nodeLeaf(n))
		default:
			inet.nodes = append(inet.nodes, nodeLeaf(n))
		}
	}
	if len(inet.nodes) > 0 {
		m.top = append(m.top, inet)
		for _, a := range t.ASEs {
			label := "apps, FTP, management"
			if a.ILB.IsValid() {
				label = "management"
			}
			m.edges = append(m.edges, edge{from: inet.id, fromCluster: true, to: id("vip", a.Name), label: label})
		}
	}
	if onprem != nil {
		m.top = append(m.top, onprem)
		if gw := t.OnPremises.Gateway; gw != nil {
			for _, v := range t.VNets {
				m.edges = append(m.edges, edge{from: id("n", gw.Name), to: id("vnet", v.Name), toCluster: true, label: "VPN / ExpressRoute"})
			}
		}
	}
	return m
}

// Dot returns the lab as a Graphviz digraph.
func Dot(t *topology.Topology) string {
	m := build(t)
	var b strings.Builder
	b.WriteString("digraph lab {\n  rankdir=LR;\n  compound=true;\n  fontname=\"Helvetica\";\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n")
	colors := map[string]string{"vnet": "#e8f1fb", "subnet": "#ffffff", "ase": "#eef7e8", "internet": "#f6f6f6", "onprem": "#fbf1e6"}
	var walk func(c *cluster, indent string)
	walk = func(c *cluster, indent string) {
		fmt.Fprintf(&b, "%ssubgraph cluster_%s {\n%s  label=%q;\n%s  style=\"filled,rounded\";\n%s  fillcolor=%q;\n", indent, c.id, indent, c.label, indent, indent, colors[c.style])
		if c.style == "vnet" || c.style == "internet" {
			fmt.Fprintf(&b, "%s  %s_anchor [shape=point, style=invis];\n", indent, c.id)
		}
		for _, n := range c.nodes {
			fmt.Fprintf(&b, "%s  %s [label=%q, shape=%s];\n", indent, n.id, n.label, n.shape)
		}
		for _, s := range c.subs {
			walk(s, indent+"  ")
		}
		fmt.Fprintf(&b, "%s}\n", indent)
	}
	for _, c := range m.top {
		walk(c, "  ")
	}
	for _, n := range m.loose {
		fmt.Fprintf(&b, "  %s [label=%q, shape=%s];\n", n.id, n.label, n.shape)
	}
	for _, e := range m.edges {
		// An edge to a cluster is drawn to its anchor and clipped at its
		// border. The edge says so itself: a name ending in "-anchor"
		// (ASE my-anchor's VIP is vip_my_anchor) is no cluster.
		from, to, attrs := e.from, e.to, ""
		if e.toCluster {
			to, attrs = e.to+"_anchor", fmt.Sprintf(", lhead=cluster_%s", e.to)
		}
		if e.fromCluster {
			from, attrs = e.from+"_anchor", attrs+fmt.Sprintf(", ltail=cluster_%s", e.from)
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%q%s];\n", from, to, e.label, attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

// Mermaid returns the lab as a Mermaid flowchart.
func Mermaid(t *topology.Topology) string {
	m := build(t)
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	esc := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, "\"", "'"), "\n", "<br/>")
	}
	shape := func(n leaf) string {
		if n.shape == "ellipse" {
			return fmt.Sprintf("%s([\"%s\"])", n.id, esc(n.label))
		}
		return fmt.Sprintf("%s[\"%s\"]", n.id, esc(n.label))
	}
	var walk func(c *cluster, indent string)
	walk = func(c *cluster, indent string) {
		fmt.Fprintf(&b, "%ssubgraph %s[\"%s\"]\n", indent, c.id, esc(c.label))
		for _, n := range c.nodes {
			fmt.Fprintf(&b, "%s  %s\n", indent, shape(n))
		}
		for _, s := range c.subs {
			walk(s, indent+"  ")
		}
		fmt.Fprintf(&b, "%send\n", indent)
	}
	for _, c := range m.top {
		walk(c, "  ")
	}
	for _, n := range m.loose {
		fmt.Fprintf(&b, "  %s\n", shape(n))
	}
	for _, e := range m.edges {
		from, to := e.from, e.to
		if e.label != "" {
			fmt.Fprintf(&b, "  %s -->|%s| %s\n", from, esc(e.label), to)
		} else {
			fmt.Fprintf(&b, "  %s --> %s\n", from, to)
		}
	}
	return b.String()
}
