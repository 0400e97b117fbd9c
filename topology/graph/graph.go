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

type edge struct {
	from, to, label string
}

// model is the drawing before it is written in a language.
type model struct {
	top   []*cluster
	loose []leaf
	edges []edge
}

func id(parts ...string) string {
	s := strings.Join(parts, "_")
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func nodeLeaf(n *topology.Node, extra ...string) leaf {
	label := []string{n.Name, n.Addr.String()}
	return leaf{id: id("n", n.Name), label: strings.Join(append(label, extra...), "\n"), shape: "box"}
}

func build(t *topology.Topology) *model {
	m := &model{}
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
					m.edges = append(m.edges, edge{front, id("n", fe.Name), ""})
				}
				for _, w := range a.Workers {
					ac.nodes = append(ac.nodes, nodeLeaf(w, "worker"))
				}
				if a.ILB.IsValid() {
					for _, fe := range a.FrontEnds {
						m.edges = append(m.edges, edge{vip.id, id("n", fe.Name), "management"})
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
	inet := &cluster{id: "internet", label: "Internet", style: "internet"}
	var onprem *cluster
	if o := t.OnPremises; o != nil {
		var space []string
		for _, p := range o.AddressSpace {
			space = append(space, p.String())
		}
		onprem = &cluster{id: "onprem", label: "on-premises " + strings.Join(space, ", "), style: "onprem"}
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
			m.edges = append(m.edges, edge{"internet_anchor", id("vip", a.Name), label})
		}
	}
	if onprem != nil {
		m.top = append(m.top, onprem)
		if gw := t.OnPremises.Gateway; gw != nil {
			for _, v := range t.VNets {
				m.edges = append(m.edges, edge{id("n", gw.Name), id("vnet", v.Name, "anchor"), "VPN / ExpressRoute"})
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
		attrs := ""
		if strings.HasSuffix(e.to, "_anchor") {
			attrs = fmt.Sprintf(", lhead=cluster_%s", strings.TrimSuffix(e.to, "_anchor"))
		}
		if strings.HasSuffix(e.from, "_anchor") {
			attrs += fmt.Sprintf(", ltail=cluster_%s", strings.TrimSuffix(e.from, "_anchor"))
		}
		fmt.Fprintf(&b, "  %s -> %s [label=%q%s];\n", e.from, e.to, e.label, attrs)
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
		from, to := strings.TrimSuffix(e.from, "_anchor"), strings.TrimSuffix(e.to, "_anchor")
		if e.label != "" {
			fmt.Fprintf(&b, "  %s -->|%s| %s\n", from, esc(e.label), to)
		} else {
			fmt.Fprintf(&b, "  %s --> %s\n", from, to)
		}
	}
	return b.String()
}
