package topology

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The file format. Each object is read field by field into a spec that keeps
// where every value was, so that checks across objects (validate.go) can
// point at the exact line and field. Checks on a single value (types,
// addresses, enums, ports) happen here, while reading.

type doc struct {
	vnets           []*vnetSpec
	ases            []*aseSpec
	vms             []*vmSpec
	hosts           []*hostSpec
	nsgs            []*nsgSpec
	conntrack       *conntrackSpec
	defaultOutbound field[netip.Addr]
	routeTables     []*routeTableSpec
	onPrem          *onPremSpec
	flowLogs        field[bool]
}

// conntrackSpec tunes connection tracking (F17).
type conntrackSpec struct {
	maxFlows       field[int]
	idle, fin, rst field[time.Duration]
}

type vnetSpec struct {
	at      loc
	name    field[string]
	space   []field[netip.Prefix]
	subnets []*subnetSpec
}

type subnetSpec struct {
	at         loc
	name       field[string]
	prefix     field[netip.Prefix]
	nsg        field[string]
	routeTable field[string]
}

type aseSpec struct {
	at                       loc
	name, subnet, kind, mode field[string]
	dnsSuffix                field[string]
	vip, ilb                 field[netip.Addr]
	frontEnds, workers       field[int]
	snatPorts                field[PortRange]
	portsPerInstance         field[int]
	apps                     []*appSpec
}

type appSpec struct {
	at         loc
	name       field[string]
	workers    []field[string]
	workersSet bool
	workersAt  loc
}

type vmSpec struct {
	at                loc
	name, subnet, nsg field[string]
	private, public   field[netip.Addr]
	forwarding        field[bool]
}

type hostSpec struct {
	at      loc
	name    field[string]
	addr    field[netip.Addr]
	latency field[Latency]
}

type nsgSpec struct {
	at    loc
	name  field[string]
	rules []*ruleSpec
}

type ruleSpec struct {
	at                       loc
	name, description        field[string]
	direction, access, proto field[string]
	priority                 field[int]
	src, dst                 []field[string]
	srcPorts, dstPorts       []field[PortRange]
}

func (p *parser) document(root *yaml.Node) *doc {
	m := p.mapping(root, loc{line: root.Line})
	if m == nil {
		return nil
	}
	m.allow("", "virtualNetworks", "appServiceEnvironments", "virtualMachines", "internetHosts", "networkSecurityGroups",
		"connectionTracking", "defaultOutboundAddress", "routeTables", "onPremises", "flowLogs")
	d := &doc{defaultOutbound: convert(p, m.str("defaultOutboundAddress"), parseAddr)}
	if fm := m.sub("flowLogs"); fm != nil {
		fm.allow("", "enabled")
		d.flowLogs = fm.boolean("enabled")
	}
	if cm := m.sub("connectionTracking"); cm != nil {
		cm.allow("", "maxFlows", "idleTimeout", "finTimeout", "rstTimeout")
		d.conntrack = &conntrackSpec{
			maxFlows: cm.integer("maxFlows"),
			idle:     cm.duration("idleTimeout"),
			fin:      cm.duration("finTimeout"),
			rst:      cm.duration("rstTimeout"),
		}
	}
	each(m, "virtualNetworks", p.vnet, &d.vnets)
	each(m, "appServiceEnvironments", p.ase, &d.ases)
	each(m, "virtualMachines", p.vm, &d.vms)
	each(m, "internetHosts", p.host, &d.hosts)
	each(m, "networkSecurityGroups", p.nsg, &d.nsgs)
	each(m, "routeTables", p.routeTable, &d.routeTables)
	if om := m.sub("onPremises"); om != nil {
		d.onPrem = p.onPremises(om)
	}
	return d
}

// each reads every element of the list field key with read, keeping the ones
// that were mappings at all.
func each[T any](m *mapping, key string, read func(item) *T, out *[]*T) {
	items, _ := m.list(key)
	for _, it := range items {
		if v := read(it); v != nil {
			*out = append(*out, v)
		}
	}
}

func (p *parser) vnet(it item) *vnetSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	body := armBody(m, armVNet, []string{"addressSpace", "subnets"})
	if body == nil {
		return &vnetSpec{at: it.at, name: m.str("name")}
	}
	m.require("name")
	body.require("addressSpace")
	v := &vnetSpec{at: it.at, name: m.str("name")}
	if sm := body.sub("addressSpace"); sm != nil {
		sm.allow("", "addressPrefixes")
		sm.require("addressPrefixes")
		prefixes, given := sm.list("addressPrefixes")
		if given && len(prefixes) == 0 && sm.get("addressPrefixes").Kind == yaml.SequenceNode {
			p.errAt(sm.loc("addressPrefixes"), "a VNet needs at least one address prefix")
		}
		for _, pi := range prefixes {
			v.space = append(v.space, convert(p, p.scalar(pi.n, pi.at), parsePrefix))
		}
	}
	each(body, "subnets", p.subnet, &v.subnets)
	return v
}

func (p *parser) subnet(it item) *subnetSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	body := armBody(m, armSubnet, []string{"addressPrefix", "networkSecurityGroup", "routeTable"})
	if body == nil {
		return &subnetSpec{at: it.at, name: m.str("name")}
	}
	m.require("name")
	body.require("addressPrefix")
	return &subnetSpec{
		at:         it.at,
		name:       m.str("name"),
		prefix:     convert(p, body.str("addressPrefix"), parsePrefix),
		nsg:        body.reference("networkSecurityGroup", armNSG),
		routeTable: body.reference("routeTable", armRouteTable),
	}
}

func (p *parser) ase(it item) *aseSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	m.allow("", "name", "subnet", "kind", "virtualIp", "ilbAddress", "internalLoadBalancingMode",
		"dnsSuffix", "frontEnds", "workers", "snatPortRange", "allocatedOutboundPorts", "apps")
	m.require("name", "subnet", "kind", "virtualIp")
	a := &aseSpec{
		at:               it.at,
		name:             m.str("name"),
		subnet:           m.str("subnet"),
		kind:             enum(p, m.str("kind"), "kind", KindExternal, KindILB),
		vip:              convert(p, m.str("virtualIp"), parseAddr),
		ilb:              convert(p, m.str("ilbAddress"), parseAddr),
		mode:             convert(p, m.str("internalLoadBalancingMode"), parseILBMode),
		dnsSuffix:        convert(p, m.str("dnsSuffix"), parseDNSSuffix),
		frontEnds:        m.integer("frontEnds"),
		workers:          m.integer("workers"),
		snatPorts:        m.portRange("snatPortRange"),
		portsPerInstance: m.integer("allocatedOutboundPorts"),
	}
	each(m, "apps", p.app, &a.apps)
	return a
}

// parseILBMode accepts ARM's four values of internalLoadBalancingMode, with
// the parts of "Web, Publishing" in any order and case ("publishing, web"),
// and the template's integers 0 to 3 for them.
func parseILBMode(s string) (string, error) {
	parts := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		parts[strings.ToLower(strings.TrimSpace(f))] = true
	}
	switch {
	case len(parts) == 2 && parts["web"] && parts["publishing"], len(parts) == 1 && parts["3"]:
		return ILBModeWebPublishing, nil
	case len(parts) == 1 && (parts["web"] || parts["1"]):
		return ILBModeWeb, nil
	case len(parts) == 1 && (parts["publishing"] || parts["2"]):
		return ILBModePublishing, nil
	case len(parts) == 1 && (parts["none"] || parts["0"]):
		return ILBModeNone, nil
	}
	return "", fmt.Errorf("%q is not a valid internalLoadBalancingMode; use %q, %q, %q or %q", s, ILBModeWebPublishing, ILBModeWeb, ILBModePublishing, ILBModeNone)
}

// parseDNSSuffix accepts a DNS name and returns it in lower case, without a
// trailing dot. It leaves room for a 60-character app label in front.
func parseDNSSuffix(s string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if n == "" || len(n) > 253-61 {
		return "", fmt.Errorf("%q is not a valid DNS suffix: it must be 1 to %d characters", s, 253-61)
	}
	for _, l := range strings.Split(n, ".") {
		if !dnsLabel.MatchString(l) {
			return "", fmt.Errorf("%q is not a valid DNS suffix: each dot-separated label must be 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen", s)
		}
	}
	return n, nil
}

func (p *parser) app(it item) *appSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	m.allow("", "name", "workers")
	m.require("name")
	a := &appSpec{at: it.at, name: m.str("name"), workersAt: m.loc("workers")}
	var items []item
	items, a.workersSet = m.list("workers")
	for _, w := range items {
		a.workers = append(a.workers, p.scalar(w.n, w.at))
	}
	return a
}

func (p *parser) vm(it item) *vmSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	// ARM's NIC ipConfigurations spell the addresses privateIPAddress and
	// publicIPAddress; the file's first spelling (Ip) stays valid.
	m.allow("", "name", "subnet", "privateIpAddress", "privateIPAddress", "publicIpAddress", "publicIPAddress",
		"networkSecurityGroup", "enableIPForwarding")
	m.require("name", "subnet")
	return &vmSpec{
		at:         it.at,
		name:       m.str("name"),
		subnet:     m.str("subnet"),
		nsg:        m.str("networkSecurityGroup"),
		private:    convert(p, m.str(m.spelling("privateIpAddress", "privateIPAddress")), parseAddr),
		public:     convert(p, m.str(m.spelling("publicIpAddress", "publicIPAddress")), parseAddr),
		forwarding: m.boolean("enableIPForwarding"),
	}
}

func (p *parser) host(it item) *hostSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	m.allow("", "name", "address", "region", "latency")
	m.require("name", "address")
	return &hostSpec{at: it.at, name: m.str("name"), addr: convert(p, m.str("address"), parseAddr), latency: p.latency(m)}
}

func (p *parser) nsg(it item) *nsgSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	body := armBody(m, armNSG, []string{"securityRules"})
	g := &nsgSpec{at: it.at, name: m.str("name")}
	if body == nil {
		return g
	}
	m.require("name")
	each(body, "securityRules", p.rule, &g.rules)
	return g
}

// ruleFields are the fields of a security rule other than its name: in ARM
// they sit under "properties", and the file accepts them there or flat.
var ruleFields = []string{
	"description", "priority", "direction", "access", "protocol",
	"sourceAddressPrefix", "sourceAddressPrefixes", "destinationAddressPrefix", "destinationAddressPrefixes",
	"sourcePortRange", "sourcePortRanges", "destinationPortRange", "destinationPortRanges",
}

func (p *parser) rule(it item) *ruleSpec {
	m := p.mapping(it.n, it.at)
	if m == nil {
		return nil
	}
	body := armBody(m, armRule, ruleFields)
	if body == nil {
		return &ruleSpec{at: it.at, name: m.str("name")}
	}
	m.require("name")
	body.require("priority", "direction", "access", "protocol")
	r := &ruleSpec{
		at:          it.at,
		name:        m.str("name"),
		description: body.str("description"),
		priority:    body.integer("priority"),
		direction:   enum(p, body.str("direction"), "direction", Inbound, Outbound),
		access:      enum(p, body.str("access"), "access", Allow, Deny),
		proto:       enum(p, body.str("protocol"), "protocol", ProtocolTCP, ProtocolUDP, ProtocolICMP, ProtocolAny),
	}
	r.src = prefixes(body, "sourceAddressPrefix")
	r.dst = prefixes(body, "destinationAddressPrefix")
	r.srcPorts = ports(body, "sourcePortRange")
	r.dstPorts = ports(body, "destinationPortRange")
	return r
}

// ARM resource types of the things the file has. A pasted resource may give
// its type; it must then be the type of the list it is in.
const (
	armVNet       = "Microsoft.Network/virtualNetworks"
	armSubnet     = "Microsoft.Network/virtualNetworks/subnets"
	armNSG        = "Microsoft.Network/networkSecurityGroups"
	armRule       = "Microsoft.Network/networkSecurityGroups/securityRules"
	armRouteTable = "Microsoft.Network/routeTables"
	armRoute      = "Microsoft.Network/routeTables/routes"
)

// armEnvelope are the fields ARM writes around a resource's properties that
// mean nothing to a lab: which API and region deploy it, its tags, the
// order of deployment, and the identifiers Azure assigns. They are
// accepted and ignored so that a resource from an ARM template or an export
// pastes as it is; any other unknown field is still an error. type is
// checked against the list the resource is in.
var armEnvelope = []string{"type", "apiVersion", "location", "tags", "dependsOn", "comments", "id", "etag"}

// armBody returns where an ARM resource (a VNet, subnet, NSG, security rule,
// route table, route) keeps its fields: under "properties" when it has
// ARM's wrapper, or in m itself. It checks the keys at both levels, and
// returns nil if the wrapper is not a mapping.
func armBody(m *mapping, armType string, fields []string) *mapping {
	if t := m.str("type"); t.ok && !strings.EqualFold(t.v, armType) {
		m.p.errAt(t.loc, "a resource of type %s does not belong here: this list holds %s", t.v, armType)
	}
	outer := append([]string{"name"}, armEnvelope...)
	if _, wrapped := m.key["properties"]; !wrapped {
		m.allow("", append(outer, fields...)...)
		return m
	}
	m.allow("with properties:, every field but name goes inside properties", append(outer, "properties")...)
	body := m.sub("properties")
	if body == nil {
		if !m.has("properties") {
			m.require("properties")
		}
		m.require("name")
		return nil
	}
	body.allow("", fields...)
	return body
}

// spelling returns the key m gives a field by, of its two accepted
// spellings (the file's own and ARM's), reporting a mapping that gives both.
func (m *mapping) spelling(own, arm string) string {
	if _, given := m.key[arm]; !given {
		return own
	}
	if _, given := m.key[own]; given {
		m.p.errAt(m.loc(arm), "give %s or %s, not both", own, arm)
	}
	return arm
}

// armResourceID is the last segment of a resource ID, or the name in
// [resourceId('TYPE', 'NAME')], as ARM templates refer to another resource.
var armResourceID = regexp.MustCompile(`(?i)^\[\s*resourceId\s*\((?:\s*'[^']*'\s*,)*\s*'([^']*)'\s*\)\s*\]$|/([^/\[\]]+)$`)

// reference reads a field that names another resource of type armType: the
// file writes the name, ARM a mapping {id: ...} holding its resource ID or a
// resourceId() expression, and both are accepted.
func (m *mapping) reference(key, armType string) field[string] {
	n := m.get(key)
	if n == nil || n.Kind != yaml.MappingNode {
		return m.str(key)
	}
	rm := m.p.mapping(n, m.loc(key))
	rm.allow("", "id")
	rm.require("id")
	id := rm.str("id")
	if !id.ok {
		return field[string]{set: true, loc: id.loc}
	}
	sm := armResourceID.FindStringSubmatch(strings.TrimSpace(id.v))
	typ := armType[strings.LastIndex(armType, "/")+1:]
	if sm == nil || (sm[2] != "" && !strings.Contains(strings.ToLower(id.v), "/"+strings.ToLower(typ)+"/")) ||
		(sm[1] != "" && !strings.Contains(strings.ToLower(id.v), "'"+strings.ToLower(armType)+"'")) {
		m.p.errAt(id.loc, "cannot tell which %s %q refers to: give the name, or a resource ID or [resourceId('%s', 'NAME')] with the name written out", typ, id.v, armType)
		return field[string]{set: true, loc: id.loc}
	}
	name := sm[1] + sm[2]
	return field[string]{v: name, set: true, ok: true, loc: id.loc}
}

// oneOf returns the values of the singular field (one) or the plural one
// (one+"es" or one+"s"), reporting a rule that gives both. An empty plural
// list counts as absent: ARM exports write "sourceAddressPrefixes": [] beside
// a singular "sourceAddressPrefix".
func oneOf(m *mapping, one, many string) []item {
	plural, given := m.list(many)
	if given && len(plural) == 0 && m.get(many).Kind == yaml.SequenceNode {
		given = false
	}
	if m.has(one) {
		if given {
			m.p.errAt(m.loc(many), "give %s or %s, not both", one, many)
			return nil
		}
		return []item{{m.get(one), m.loc(one)}}
	}
	return plural
}

func prefixes(m *mapping, one string) []field[string] {
	items := oneOf(m, one, one+"es")
	if len(items) == 0 {
		return []field[string]{{v: Any, set: true, ok: true, loc: m.loc(one)}}
	}
	var out []field[string]
	for _, it := range items {
		out = append(out, convert(m.p, m.p.scalar(it.n, it.at), parseRulePrefix))
	}
	return out
}

func ports(m *mapping, one string) []field[PortRange] {
	items := oneOf(m, one, one+"s")
	if len(items) == 0 {
		return []field[PortRange]{{v: AllPorts, set: true, ok: true, loc: m.loc(one)}}
	}
	var out []field[PortRange]
	for _, it := range items {
		f := field[PortRange]{set: true, loc: it.at}
		v, err := parsePortRange(it.n)
		if err != nil {
			m.p.errAt(it.at, "%v", err)
		} else {
			f.v, f.ok = v, true
		}
		out = append(out, f)
	}
	return out
}
