// Package topology owns the lab's model: it loads a topology file, validates
// it, assigns node addresses (F1) and embeds the default lab of SPEC §3.
//
// A *Topology is only ever returned whole and valid, and nothing in it changes
// afterwards, so it may be shared between goroutines without locking.
package topology

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Limits of the emulator. They are part of the file format: exceeding one is a
// validation error that names the limit.
const (
	MaxFileSize = 4 << 20 // bytes of YAML
	MaxNodes    = 4096    // each node is a network namespace with its own TUN and forwarding goroutine
	MaxASESize  = 100     // front-ends, and separately workers, per ASE
	MaxFlows    = 1 << 24 // connection tracking entries: 16M flows at <= 256 bytes is 4 GiB
	// Rules per NSG. Azure allows 1000; the emulator allows more, so that a
	// lab can test NSG scale (the benchmark of issue 6 applies 4,000 rules
	// to one NSG). The dataplane compiles each NSG per VNet and direction
	// into per-field bit vectors of one bit per rule, so memory and compile
	// time grow with the square of an NSG's rules.
	MaxRulesPerNSG = 4096
	MaxRules       = 16384 // over all NSGs: bounds the compiled tables and `apply`'s recompilation
	// Public addresses the dataplane translates: ASE VIPs and VM public IPs.
	// Each ASE's VIP also brings its load-balancer probes and health checks.
	MaxVIPs = 256
)

// PlatformAddr is Azure's platform address: the VNet DNS resolver and the
// source of load-balancer health probes (F11, F15).
var PlatformAddr = netip.MustParseAddr("168.63.129.16")

// PlatformNode is the name of the node that holds PlatformAddr; no node of
// the file may take it.
const PlatformNode = "platform"

// Canonical enum values. The file may spell them in any case, as ARM does;
// the model always holds these.
const (
	KindExternal = "External"
	KindILB      = "ILB"

	// internalLoadBalancingMode is ARM's flags enum (the quickstart
	// template web-app-ase-ilb-create: 0 = public VIP only, 1 = only ports
	// 80/443 on the ILB, 2 = only the FTP ports, 3 = both).
	ILBModeNone          = "None"
	ILBModeWeb           = "Web"
	ILBModeWebPublishing = "Web, Publishing"
	ILBModePublishing    = "Publishing"

	Inbound  = "Inbound"
	Outbound = "Outbound"

	Allow = "Allow"
	Deny  = "Deny"

	ProtocolTCP  = "Tcp"
	ProtocolUDP  = "Udp"
	ProtocolICMP = "Icmp"
	ProtocolAny  = "*"

	Any                  = "*"
	TagVirtualNetwork    = "VirtualNetwork"
	TagInternet          = "Internet"
	TagAzureLoadBalancer = "AzureLoadBalancer"
)

// NodeKind says what an emulated machine is.
type NodeKind string

const (
	NodeFrontEnd NodeKind = "frontend"
	NodeWorker   NodeKind = "worker"
	NodeVM       NodeKind = "vm"
	NodeInternet NodeKind = "internet"
	NodePlatform NodeKind = "platform" // 168.63.129.16: Azure DNS and the load balancer's probes
)

// Topology is a validated lab with every node's address assigned.
type Topology struct {
	File     string
	VNets    []*VNet
	ASEs     []*ASE
	VMs      []*VM
	Internet []*InternetHost
	NSGs     []*NSG
	// Nodes is every node: each ASE's front-ends then workers (file order),
	// then VMs, then Internet hosts. Address assignment follows this order.
	Nodes []*Node
	// Conntrack tunes the dataplane's connection tracking (F17).
	Conntrack Conntrack
	// DefaultOutbound is the address a VM without a public IP leaves the
	// VNet with (Azure's "default outbound access").
	DefaultOutbound netip.Addr
	RouteTables     []*RouteTable
	OnPremises      *OnPremises // nil if the file has none
	// FlowLogs turns on NSG flow logs (Azure's version 2 format) from
	// the start; `emulator flowlog` turns them on and off at run time.
	FlowLogs bool

	nodeByName map[string]*Node
	nodeByAddr map[netip.Addr]*Node
	aseByName  map[string]*ASE
	aseByAddr  map[netip.Addr]*ASE
	vnetByName map[string]*VNet
	subnets    map[string]*Subnet
	nsgs       map[string]*NSG
	spaces     prefixSet[*VNet]
	subnetSet  prefixSet[*Subnet]
}

// Conntrack is connection tracking's size and timeouts.
type Conntrack struct {
	MaxFlows    int           // new flows beyond this are refused
	IdleTimeout time.Duration // an idle flow is removed after this (F17: 4 minutes)
	FinTimeout  time.Duration // a TCP flow that saw FIN, and its SNAT port, are freed after this (F17: 240 s)
	RstTimeout  time.Duration // a TCP flow that saw RST is freed after this (F17: 15 s)
}

// Defaults of the settings the file may leave out.
var (
	// DefaultConntrack follows F17. Each flow costs at most 256 bytes, so a
	// full table of the default size stays under 64 MiB.
	DefaultConntrack = Conntrack{MaxFlows: 1 << 18, IdleTimeout: 4 * time.Minute, FinTimeout: 240 * time.Second, RstTimeout: 15 * time.Second}
	// DefaultOutboundAddr is the default outbound access address: it lies in
	// TEST-NET-1 (RFC 5737), so it can be no real host's.
	DefaultOutboundAddr = netip.MustParseAddr("192.0.2.1")
	// DefaultSNATPorts is an ASE VIP's SNAT port pool: 64,512 ports, about
	// the 64,000 per frontend address of F17.
	DefaultSNATPorts = PortRange{Lo: 1024, Hi: 65535}
)

// VNet is a virtual network. Its address spaces overlap no other VNet's.
type VNet struct {
	Name         string
	AddressSpace []netip.Prefix
	Subnets      []*Subnet
	Line         int
}

// Contains reports whether a lies in the VNet's address space, which is what
// the VirtualNetwork tag (less the platform address) and the F3/F4 NAT
// decision test.
func (v *VNet) Contains(a netip.Addr) bool {
	for _, p := range v.AddressSpace {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Subnet is a subnet of a VNet. At most one ASE lives in it (F1).
type Subnet struct {
	Name   string
	Prefix netip.Prefix
	NSG    string // subnet NSG name, "" if none
	// RouteTable is the subnet's user-defined routes (F18), nil if none.
	RouteTable *RouteTable
	VNet       *VNet
	ASE        *ASE    // the ASE deployed here, nil if none (F8 needs to know)
	Nodes      []*Node // nodes on this subnet, in Nodes order
	Line       int
}

// Gateway is the subnet's .1, the address the dataplane answers from.
func (s *Subnet) Gateway() netip.Addr { return s.Prefix.Addr().Next() }

// ASE is an App Service Environment v1.
type ASE struct {
	Name      string
	Subnet    *Subnet
	Kind      string     // KindExternal or KindILB
	VIP       netip.Addr // public VIP; an ILB ASE keeps one for management and outbound NAT (F7)
	ILB       netip.Addr // ILB address inside Subnet; zero for an External ASE
	ILBMode   string     // ILBModeWebPublishing, ILBModeWeb or ILBModePublishing; "" for External
	DNSSuffix string     // apps resolve as APP.DNSSuffix
	FrontEnds []*Node
	Workers   []*Node
	SNATPorts PortRange // the VIP's SNAT port pool (F17)
	// PortsPerInstance is each machine's own share of SNATPorts (F17):
	// allocatedOutboundPorts from the file, or Azure's default for the
	// machine count (DefaultPortsPerInstance).
	PortsPerInstance int
	Apps             []*App
	Line             int
}

// DefaultPortsPerInstance is the SNAT ports Azure's load balancer gives
// each machine of a backend pool of n by default (F17: 1,024 each in a
// pool of up to 50, half as many each time the pool doubles), but no more
// than an even share of a range of size ports.
func DefaultPortsPerInstance(n, size int) int {
	per := 1024
	for limit := 50; n > limit && per > 32; limit *= 2 {
		per /= 2
	}
	return min(per, size/max(n, 1))
}

// AppAddr is the address the ASE's app names resolve to: the VIP of an
// External ASE (F6), the ILB address of an ILB ASE (F7).
func (a *ASE) AppAddr() netip.Addr {
	if a.Kind == KindILB {
		return a.ILB
	}
	return a.VIP
}

// OnILB says what an ILB ASE's mode puts on its ILB address (F7): the web
// ports (HTTP, HTTPS and remote debugging) unless the mode is Publishing,
// and the publishing ports (FTP, FTPS, FTP data) unless it is Web. The
// rest, and management always, stay on the public VIP; an External ASE
// has everything there (F2).
func (a *ASE) OnILB() (web, publishing bool) {
	if a.Kind != KindILB {
		return false, false
	}
	return a.ILBMode != ILBModePublishing, a.ILBMode != ILBModeWeb
}

// FTPAddr is the address FTP, FTPS and FTP data arrive on (F2, F7).
func (a *ASE) FTPAddr() netip.Addr {
	if _, publishing := a.OnILB(); publishing {
		return a.ILB
	}
	return a.VIP
}

// App is a web app. It has no address of its own (F4): it runs on Workers,
// behind the ASE's front-ends.
type App struct {
	Name    string
	ASE     *ASE
	Workers []*Node
	Line    int
}

// FQDN is the name clients resolve for the app.
func (a *App) FQDN() string { return a.Name + "." + a.ASE.DNSSuffix }

// VM is a virtual machine in a subnet.
type VM struct {
	Name      string
	Subnet    *Subnet
	PrivateIP netip.Addr // given in the file or assigned
	PublicIP  netip.Addr // zero if none
	NSG       string     // NIC NSG name, "" if none
	// IPForwarding lets the VM forward traffic not addressed to it: it can
	// be a route's VirtualAppliance next hop.
	IPForwarding bool
	Node         *Node
	Line         int
}

// InternetHost is a machine on the emulated Internet.
type InternetHost struct {
	Name    string
	Addr    netip.Addr
	Latency Latency // of its link, each way (a region's distance)
	Node    *Node
	Line    int
}

// Node is one emulated machine, one network namespace.
type Node struct {
	Name     string
	Kind     NodeKind
	Addr     netip.Addr   // the node's address on eth0
	Prefix   netip.Prefix // on-link prefix: the subnet, or the /24 of an Internet host
	Gateway  netip.Addr   // first host address of Prefix; the dataplane answers from it
	Subnet   *Subnet      // nil for Internet hosts
	VNet     *VNet        // nil for Internet hosts
	ASE      *ASE         // set for front-ends and workers
	NSG      string       // NIC NSG name, "" if none
	PublicIP netip.Addr   // VMs only; zero if none
	// IPForwarding: the node forwards traffic not addressed to it (a VM
	// acting as a VirtualAppliance).
	IPForwarding bool
	Latency      Latency // impairment of its link, each way
	Line         int     // line of the declaration the node came from
}

// NSG is a network security group. Rules are in file order; Effective gives
// them in evaluation order.
type NSG struct {
	Name  string
	Rules []*Rule
	Line  int
}

// Rule is one NSG security rule (F9).
type Rule struct {
	Name        string
	Description string
	Priority    int
	Direction   string // Inbound or Outbound
	Access      string // Allow or Deny
	Protocol    string // Tcp, Udp, Icmp or *
	// Prefixes are "*", a service tag (TagVirtualNetwork, TagInternet,
	// TagAzureLoadBalancer) or a canonical CIDR; a single address is a /32.
	SourcePrefixes      []string
	DestinationPrefixes []string
	SourcePorts         []PortRange
	DestinationPorts    []PortRange
	Line                int // 0 for the default rules
}

// PortRange is an inclusive range of ports; "*" is 0-65535.
type PortRange struct{ Lo, Hi uint16 }

// AllPorts is the range "*" stands for.
var AllPorts = PortRange{0, 65535}

// Size is the number of ports in the range.
func (r PortRange) Size() int { return int(r.Hi) - int(r.Lo) + 1 }

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

func (r PortRange) String() string {
	switch {
	case r == AllPorts:
		return "*"
	case r.Lo == r.Hi:
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// DefaultRules returns the rules Azure puts under every NSG for one direction
// (F10). They are fresh copies: callers may keep or change them.
func DefaultRules(direction string) []*Rule {
	r := func(name string, prio int, access, src, dst string) *Rule {
		return &Rule{
			Name: name, Priority: prio, Direction: direction, Access: access, Protocol: ProtocolAny,
			SourcePrefixes: []string{src}, DestinationPrefixes: []string{dst},
			SourcePorts: []PortRange{AllPorts}, DestinationPorts: []PortRange{AllPorts},
		}
	}
	switch direction {
	case Inbound:
		return []*Rule{
			r("AllowVnetInBound", 65000, Allow, TagVirtualNetwork, TagVirtualNetwork),
			r("AllowAzureLoadBalancerInBound", 65001, Allow, TagAzureLoadBalancer, Any),
			r("DenyAllInBound", 65500, Deny, Any, Any),
		}
	case Outbound:
		return []*Rule{
			r("AllowVnetOutBound", 65000, Allow, TagVirtualNetwork, TagVirtualNetwork),
			r("AllowInternetOutBound", 65001, Allow, Any, TagInternet),
			r("DenyAllOutBound", 65500, Deny, Any, Any),
		}
	}
	return nil
}

// Effective returns the NSG's rules for one direction in evaluation order:
// its own by priority, then the default rules (F9, F10).
func (g *NSG) Effective(direction string) []*Rule {
	var out []*Rule
	for _, r := range g.Rules {
		if r.Direction == direction {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	return append(out, DefaultRules(direction)...)
}

// Reserved reports whether a is one of the addresses Azure keeps in subnet p
// (F1): the network address, .1 (gateway), .2 and .3 (Azure DNS) and the last
// address (broadcast). Addresses outside p are not reserved in p.
func Reserved(p netip.Prefix, a netip.Addr) bool {
	p = p.Masked()
	if !p.Addr().Is4() || !a.Is4() || !p.Contains(a) {
		return false
	}
	return u32(a)-u32(p.Addr()) <= 3 || a == LastAddr(p)
}

// NodeByName returns the node with that name, or nil.
func (t *Topology) NodeByName(name string) *Node { return t.nodeByName[name] }

// NodeByAddr returns the node whose eth0 address is a, or nil.
func (t *Topology) NodeByAddr(a netip.Addr) *Node { return t.nodeByAddr[a] }

// ASEByName returns the ASE with that name, or nil.
func (t *Topology) ASEByName(name string) *ASE { return t.aseByName[name] }

// ASEByAddr returns the ASE whose VIP or ILB address is a, or nil.
func (t *Topology) ASEByAddr(a netip.Addr) *ASE { return t.aseByAddr[a] }

// VNetByName returns the VNet with that name (case-insensitive, as Azure
// resource names are), or nil.
func (t *Topology) VNetByName(name string) *VNet { return t.vnetByName[strings.ToLower(name)] }

// SubnetByName returns the subnet with that name (case-insensitive), or nil.
func (t *Topology) SubnetByName(name string) *Subnet { return t.subnets[strings.ToLower(name)] }

// NSGByName returns the NSG with that name (case-insensitive), or nil.
func (t *Topology) NSGByName(name string) *NSG { return t.nsgs[strings.ToLower(name)] }

// VNetContaining returns the VNet whose address space holds a, or nil.
func (t *Topology) VNetContaining(a netip.Addr) *VNet {
	v, _, _ := t.spaces.containing(a, 32)
	return v
}

// SubnetContaining returns the subnet that holds a, or nil.
func (t *Topology) SubnetContaining(a netip.Addr) *Subnet {
	s, _, _ := t.subnetSet.containing(a, 32)
	return s
}

func (t *Topology) index() {
	t.nodeByName = make(map[string]*Node, len(t.Nodes))
	t.nodeByAddr = make(map[netip.Addr]*Node, len(t.Nodes))
	for _, n := range t.Nodes {
		t.nodeByName[n.Name] = n
		t.nodeByAddr[n.Addr] = n
	}
	t.aseByName = make(map[string]*ASE, len(t.ASEs))
	t.aseByAddr = make(map[netip.Addr]*ASE, 2*len(t.ASEs))
	for _, a := range t.ASEs {
		t.aseByName[a.Name] = a
		t.aseByAddr[a.VIP] = a
		if a.ILB.IsValid() {
			t.aseByAddr[a.ILB] = a
		}
	}
	t.vnetByName = make(map[string]*VNet, len(t.VNets))
	t.subnets = make(map[string]*Subnet)
	for _, v := range t.VNets {
		t.vnetByName[strings.ToLower(v.Name)] = v
		for _, p := range v.AddressSpace {
			t.spaces.add(p, v)
		}
		for _, s := range v.Subnets {
			t.subnets[strings.ToLower(s.Name)] = s
			t.subnetSet.add(s.Prefix, s)
		}
	}
	t.nsgs = make(map[string]*NSG, len(t.NSGs))
	for _, g := range t.NSGs {
		t.nsgs[strings.ToLower(g.Name)] = g
	}
}

// prefixSet finds which of a set of IPv4 prefixes contains or overlaps a
// given one in O(33 + log n), so that a file with many prefixes cannot make
// validation quadratic.
type prefixSet[T any] struct {
	exact  map[netip.Prefix]int
	items  []prefixItem[T]
	sorted bool
}

type prefixItem[T any] struct {
	p     netip.Prefix
	owner T
}

func (s *prefixSet[T]) add(p netip.Prefix, owner T) {
	if s.exact == nil {
		s.exact = make(map[netip.Prefix]int)
	}
	if _, dup := s.exact[p]; !dup {
		s.exact[p] = len(s.items)
	}
	s.items = append(s.items, prefixItem[T]{p, owner})
	s.sorted = false
}

// containing returns a member that contains the prefix a/bits.
func (s *prefixSet[T]) containing(a netip.Addr, bits int) (T, netip.Prefix, bool) {
	if a.Is4() {
		for b := bits; b >= 0; b-- {
			q, _ := a.Prefix(b)
			if i, ok := s.exact[q]; ok {
				return s.items[i].owner, q, true
			}
		}
	}
	var zero T
	return zero, netip.Prefix{}, false
}

// overlapping returns a member that shares an address with q.
func (s *prefixSet[T]) overlapping(q netip.Prefix) (T, netip.Prefix, bool) {
	if o, p, ok := s.containing(q.Addr(), q.Bits()); ok {
		return o, p, true
	}
	if !s.sorted {
		sort.SliceStable(s.items, func(i, j int) bool { return s.items[i].p.Addr().Less(s.items[j].p.Addr()) })
		for i := len(s.items) - 1; i >= 0; i-- {
			s.exact[s.items[i].p] = i
		}
		s.sorted = true
	}
	// No member contains q, so an overlapping member lies inside q.
	i := sort.Search(len(s.items), func(i int) bool { return !s.items[i].p.Addr().Less(q.Addr()) })
	if i < len(s.items) && q.Contains(s.items[i].p.Addr()) {
		return s.items[i].owner, s.items[i].p, true
	}
	var zero T
	return zero, netip.Prefix{}, false
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr4(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// LastAddr is the highest address of IPv4 prefix p: the broadcast address
// of a subnet.
func LastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	return addr4(u32(p.Addr()) | (1<<(32-p.Bits()) - 1))
}
