package topology

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// F9: the flat shape and ARM's "properties:" shape give the same rule, and
// enums and service tags match in any case (F11).
func TestRuleShapes(t *testing.T) {
	top := mustParse(t, y(
		"networkSecurityGroups:",
		"  - name: n",
		"    securityRules:",
		"      - name: flat",
		"        description: from the ASE v1 inbound article",
		"        priority: 100",
		"        direction: inbound",
		"        access: ALLOW",
		"        protocol: tcp",
		"        sourceAddressPrefix: internet",
		"        destinationAddressPrefixes: [10.0.1.0/26, 192.23.1.2]",
		"        sourcePortRange: '*'",
		"        destinationPortRanges: [80, '443', 10001-10020]",
		"      - name: wrapped",
		"        properties:",
		"          description: from the ASE v1 inbound article",
		"          priority: 100",
		"          direction: Outbound",
		"          access: Allow",
		"          protocol: Tcp",
		"          sourceAddressPrefix: INTERNET",
		"          destinationAddressPrefixes: [10.0.1.0/26, 192.23.1.2/32]",
		"          sourcePortRange: '*'",
		"          sourcePortRanges: []", // ARM exports write both; empty counts as absent
		"          destinationPortRanges: ['80', 443, '10001-10020']",
		"      - name: defaults",
		"        priority: 4096",
		"        direction: Inbound",
		"        access: deny",
		"        protocol: '*'",
		"      - name: tags",
		"        properties: {priority: 200, direction: Inbound, access: Allow, protocol: Icmp,",
		"          sourceAddressPrefixes: [VIRTUAL_NETWORK, azureloadbalancer, 10.1.2.3], destinationAddressPrefix: VirtualNetwork,",
		"          destinationPortRange: 0-65535}",
	))
	rules := top.NSGByName("N").Rules
	if len(rules) != 4 {
		t.Fatalf("got %d rules, want 4", len(rules))
	}
	flat, wrapped, defaults, tags := rules[0], rules[1], rules[2], rules[3]
	want := &Rule{
		Name: "flat", Description: "from the ASE v1 inbound article", Priority: 100,
		Direction: Inbound, Access: Allow, Protocol: ProtocolTCP,
		SourcePrefixes:      []string{TagInternet},
		DestinationPrefixes: []string{"10.0.1.0/26", "192.23.1.2/32"},
		SourcePorts:         []PortRange{AllPorts},
		DestinationPorts:    []PortRange{{80, 80}, {443, 443}, {10001, 10020}},
		Line:                4,
	}
	if !reflect.DeepEqual(flat, want) {
		t.Errorf("flat rule\n got %+v\nwant %+v", flat, want)
	}
	want.Name, want.Direction, want.Line = "wrapped", Outbound, 14
	if !reflect.DeepEqual(wrapped, want) {
		t.Errorf("properties rule\n got %+v\nwant %+v", wrapped, want)
	}
	if defaults.Access != Deny || defaults.Protocol != ProtocolAny ||
		!reflect.DeepEqual(defaults.SourcePrefixes, []string{Any}) || !reflect.DeepEqual(defaults.DestinationPrefixes, []string{Any}) ||
		!reflect.DeepEqual(defaults.SourcePorts, []PortRange{AllPorts}) || !reflect.DeepEqual(defaults.DestinationPorts, []PortRange{AllPorts}) {
		t.Errorf("a rule without prefixes or ports should mean * for each: %+v", defaults)
	}
	if !reflect.DeepEqual(tags.SourcePrefixes, []string{TagVirtualNetwork, TagAzureLoadBalancer, "10.1.2.3/32"}) ||
		!reflect.DeepEqual(tags.DestinationPrefixes, []string{TagVirtualNetwork}) || tags.Protocol != ProtocolICMP ||
		tags.DestinationPorts[0].String() != "*" {
		t.Errorf("tags rule = %+v", tags)
	}
}

func TestEffectiveRules(t *testing.T) {
	top := mustParse(t, y(ruleR,
		"      - {name: last, priority: 4000, direction: Inbound, access: Deny, protocol: Udp}",
		"      - {name: second, priority: 101, direction: Inbound, access: Deny, protocol: Udp}",
		"      - {name: out, priority: 100, direction: Outbound, access: Deny, protocol: Udp}",
	))
	var in []string
	for _, r := range top.NSGs[0].Effective(Inbound) {
		in = append(in, r.Name)
	}
	// F9: lower priority first; F10: the defaults sit under every NSG.
	if got := strings.Join(in, " "); got != "r second last AllowVnetInBound AllowAzureLoadBalancerInBound DenyAllInBound" {
		t.Errorf("inbound order: %s", got)
	}
	out := top.NSGs[0].Effective(Outbound)
	if len(out) != 4 || out[0].Name != "out" || out[2].Name != "AllowInternetOutBound" ||
		out[2].DestinationPrefixes[0] != TagInternet || out[3].Priority != 65500 || out[3].Access != Deny {
		t.Errorf("outbound rules: %v", out)
	}
}

func TestCaseInsensitiveNamesAndEnums(t *testing.T) {
	top := mustParse(t, y(
		"virtualNetworks:",
		"  - name: VNet1",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: ASE-Subnet, addressPrefix: 10.0.1.0/24, networkSecurityGroup: ase-nsg}",
		"networkSecurityGroups:",
		"  - name: ASE-NSG",
		"appServiceEnvironments:",
		"  - {name: x, subnet: ase-subnet, kind: ilb, virtualIp: 192.23.1.2, ilbAddress: 10.0.1.10,",
		"     internalLoadBalancingMode: 'publishing', dnsSuffix: Corp.Example.COM.}",
	))
	a := top.ASEs[0]
	if a.Kind != KindILB || a.ILBMode != ILBModePublishing || a.DNSSuffix != "corp.example.com" || a.Subnet.Name != "ASE-Subnet" {
		t.Errorf("ASE = kind %q mode %q suffix %q subnet %q", a.Kind, a.ILBMode, a.DNSSuffix, a.Subnet.Name)
	}
	if a.Subnet.NSG != "ASE-NSG" || top.NSGByName("ase-nsg") == nil || top.VNetByName("vnet1") == nil {
		t.Errorf("references do not resolve case-insensitively to the declared names")
	}
	top = mustParse(t, y(vnet, "appServiceEnvironments:",
		"  - {name: x, subnet: s1, kind: ILB, virtualIp: 192.23.1.2, ilbAddress: 10.0.1.10, internalLoadBalancingMode: 'publishing ,  WEB'}"))
	if top.ASEs[0].ILBMode != ILBModeWebPublishing {
		t.Errorf("mode = %q, want %q", top.ASEs[0].ILBMode, ILBModeWebPublishing)
	}
}

func TestAppWorkers(t *testing.T) {
	top := mustParse(t, y(vnet, aseX, "    workers: 3", "    apps:", "      - {name: aa, workers: [x-w3, x-w1]}", "      - name: bb"))
	a := top.ASEs[0]
	if got := a.Apps[0].Workers; len(got) != 2 || got[0].Name != "x-w3" || got[1].Name != "x-w1" {
		t.Errorf("app aa workers = %v, want x-w3, x-w1", got)
	}
	if got := a.Apps[1].Workers; len(got) != 3 {
		t.Errorf("app bb workers = %v, want all three", got)
	}
	if a.Apps[1].FQDN() != "bb.x.p.azurewebsites.net" {
		t.Errorf("FQDN = %s", a.Apps[1].FQDN())
	}
}

// YAML anchors and merge keys are how a file shares a rule set; they must
// work, and explicit keys must win over merged ones.
func TestAnchorsAndMergeKeys(t *testing.T) {
	top := mustParse(t, y(
		"networkSecurityGroups:",
		"  - name: a",
		"    securityRules:",
		"      - &web {name: web, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, destinationPortRange: 80}",
		"      - <<: *web",
		"        name: web2",
		"        priority: 200",
		"  - name: b",
		"    securityRules: [*web]",
	))
	r := top.NSGs[0].Rules[1]
	if r.Name != "web2" || r.Priority != 200 || r.Protocol != ProtocolTCP || r.DestinationPorts[0] != (PortRange{80, 80}) {
		t.Errorf("merged rule = %+v", r)
	}
	if top.NSGs[1].Rules[0].Name != "web" {
		t.Errorf("aliased rule = %+v", top.NSGs[1].Rules[0])
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	top, err := Load(good)
	if err != nil || top.File != good || len(top.Nodes) != len(Default().Nodes) {
		t.Fatalf("Load(default): file %q, %d nodes, err %v", top.File, len(top.Nodes), err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(y("virtualMachines:", "  - {name: m, subnet: nope}")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":2: virtualMachines[0].subnet: ") {
		t.Fatalf("Load(bad) = %v, want an error naming %s:2", err, bad)
	}

	// A file over MaxFileSize: TestHugeFile.
	var errs Errors
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) || errors.As(err, &errs) {
		t.Fatalf("Load(missing) = %v, want a not-exist error that is not a topology error", err)
	}
}

func TestParseNeverPanics(t *testing.T) {
	// Truncating a valid file at every byte gives every kind of broken YAML.
	data := DefaultYAML()
	for i := range data {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("Parse panicked on the first %d bytes: %v", i, r)
				}
			}()
			if _, err := Parse("lab.yaml", data[:i]); err != nil {
				for _, e := range err.(Errors) {
					if e.Line < 1 {
						t.Fatalf("error without a line on the first %d bytes: %v", i, e)
					}
				}
			}
		}()
	}
}

// FuzzParse holds Parse to SPEC §6: bad input gets errors, never a panic,
// and every error has a line within the file; good input gets a topology
// whose nodes have distinct names and addresses, found again by name.
func FuzzParse(f *testing.F) {
	f.Add([]byte("a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"))
	f.Add([]byte("internetHosts:\n  - {name: \"$(reboot)/../x\", address: 198.51.100.10}\n"))
	f.Add(DefaultYAML())
	f.Add([]byte(y(vnet, aseX, "    apps: [{name: ab, workers: [x-w1]}]", "virtualMachines:", "  - {name: m, subnet: s1, publicIpAddress: 192.23.9.9}")))
	f.Add([]byte(y(ruleR, "        properties: {sourceAddressPrefixes: [a, '*'], destinationPortRanges: [1-2]}", "      - <<: *x")))
	f.Add([]byte("a: &a [*a]\nb: {<<: [*a, *a]}\n"))
	if arm, err := os.ReadFile(filepath.Join("testdata", "arm-resources.json")); err == nil {
		f.Add(arm)
	}
	f.Add([]byte(y(vnet[:4], "      - {name: s1, properties: {addressPrefix: 10.0.1.0/24, routeTable: {id: \"[resourceId('Microsoft.Network/routeTables', 'r')]\"}}}")))
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := Parse("lab.yaml", data)
		if err == nil {
			if top == nil {
				t.Fatal("no topology and no error")
			}
			names, addrs := map[string]bool{}, map[netip.Addr]bool{}
			for _, n := range top.Nodes {
				if names[n.Name] || addrs[n.Addr] || top.NodeByName(n.Name) != n {
					t.Fatalf("node %s (%v) repeats a name or an address, or is not found by name", n.Name, n.Addr)
				}
				names[n.Name], addrs[n.Addr] = true, true
			}
			return
		}
		lines := yamlLines(data)
		for _, e := range err.(Errors) {
			if e.Line < 1 || e.Line > lines || e.File != "lab.yaml" || e.Msg == "" {
				t.Fatalf("malformed error %+v", e)
			}
		}
	})
}

// yamlLines is how many lines YAML sees in data, as the errors' line
// numbers count them: a line ends at \n, \r\n, a lone \r, and at NEL,
// LS and PS (U+0085, U+2028, U+2029). Fuzzing found "\r0" and "\u00850"
// reported on line 2, and "\xfe\xff )5T", which is UTF-16 for "\u2029㕔".
func yamlLines(data []byte) int {
	// Broken UTF-16 keeps its bytes: each '\n' in it holds a '\n' byte,
	// so they count at least the lines up to the break.
	if text, _, ok := fromUTF16(data); ok {
		data = text
	}
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	return 1 + strings.Count(s, "\n") + strings.Count(s, "\r") +
		strings.Count(s, "\u0085") + strings.Count(s, "\u2028") + strings.Count(s, "\u2029")
}

// SPEC §4: VNet, NSG and route table resources written as an ARM template
// writes them (testdata/arm-resources.json: properties:, type, apiVersion,
// location, dependsOn, tags, {id: ...} references, and the NIC's
// privateIPAddress/publicIPAddress spelling) give the same lab as the
// file's flat shape.
func TestARMResourcesPasteAsTheyAre(t *testing.T) {
	arm, err := Load(filepath.Join("testdata", "arm-resources.json"))
	if err != nil {
		t.Fatalf("an ARM template's resources were refused:\n%v", err)
	}
	flat := mustParse(t, y(
		"virtualNetworks:",
		"  - name: vnet1",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: ase1-subnet, addressPrefix: 10.0.1.0/26, networkSecurityGroup: ase1-nsg, routeTable: ase1-routes}",
		"      - {name: vm-subnet, addressPrefix: 10.0.2.0/24}",
		"networkSecurityGroups:",
		"  - name: ase1-nsg",
		"    securityRules:",
		"      - {name: Inbound-HTTP, description: Apps over HTTP, protocol: Tcp, destinationPortRange: 80, sourceAddressPrefix: Internet, access: Allow, priority: 100, direction: Inbound}",
		"      - {name: Inbound-management, protocol: '*', destinationPortRange: 454-455, access: Allow, priority: 110, direction: Inbound}",
		"      - {name: Outbound-DNS, protocol: '*', destinationPortRanges: [53], access: Allow, priority: 100, direction: Outbound}",
		"routeTables:",
		"  - {name: ase1-routes, routes: [{name: internet, addressPrefix: 0.0.0.0/0, nextHopType: Internet}]}",
		"virtualMachines:",
		"  - {name: db1, subnet: vm-subnet, privateIpAddress: 10.0.2.10, publicIpAddress: 192.23.9.9}",
	))
	s := arm.SubnetByName("ase1-subnet")
	if s == nil || s.NSG != "ase1-nsg" || s.RouteTable == nil || s.RouteTable.Name != "ase1-routes" || s.Prefix.String() != "10.0.1.0/26" {
		t.Fatalf("ase1-subnet from ARM = %+v; want 10.0.1.0/26 with NSG ase1-nsg and route table ase1-routes", s)
	}
	lines := func(rules []*Rule) []*Rule {
		out := make([]*Rule, len(rules))
		for i, r := range rules {
			c := *r
			c.Line = 0
			out[i] = &c
		}
		return out
	}
	if got, want := lines(arm.NSGByName("ase1-nsg").Rules), lines(flat.NSGByName("ase1-nsg").Rules); !reflect.DeepEqual(got, want) {
		t.Errorf("ARM NSG rules\n got %+v\nwant %+v", got, want)
	}
	ar, fr := arm.RouteTableByName("ase1-routes").Routes[0], flat.RouteTableByName("ase1-routes").Routes[0]
	if ar.Prefix != fr.Prefix || ar.NextHop != fr.NextHop {
		t.Errorf("ARM route %+v, want %+v", ar, fr)
	}
	am, fm := arm.VMs[0], flat.VMs[0]
	if am.PrivateIP != fm.PrivateIP || am.PublicIP != fm.PublicIP {
		t.Errorf("privateIPAddress/publicIPAddress gave %v/%v, want %v/%v", am.PrivateIP, am.PublicIP, fm.PrivateIP, fm.PublicIP)
	}
}

func TestARMShapeErrors(t *testing.T) {
	runErrCases(t, []errCase{
		{"resource in the wrong list", y("networkSecurityGroups:", "  - type: Microsoft.Network/routeTables", "    name: n"),
			2, "networkSecurityGroups[0].type", "a resource of type Microsoft.Network/routeTables does not belong here: this list holds Microsoft.Network/networkSecurityGroups", false},
		{"field beside properties on a VNet", y("virtualNetworks:", "  - name: vn", "    subnets: []", "    properties: {addressSpace: {addressPrefixes: [10.0.0.0/16]}}"),
			3, "virtualNetworks[0].subnets", "every field but name goes inside properties", false},
		{"unknown field inside NSG properties", y("networkSecurityGroups:", "  - name: n", "    properties: {securityRules: [], flowLogs: []}"),
			3, "networkSecurityGroups[0].properties.flowLogs", "unknown field", false},
		{"reference by a parameter", y(vnet[:4], "      - {name: s1, properties: {addressPrefix: 10.0.1.0/24, networkSecurityGroup: {id: \"[resourceId('Microsoft.Network/networkSecurityGroups', parameters('nsg'))]\"}}}"),
			5, "virtualNetworks[0].subnets[0].properties.networkSecurityGroup.id", "cannot tell which networkSecurityGroups", false},
		{"reference to another type", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/24, routeTable: {id: /subscriptions/x/resourceGroups/g/providers/Microsoft.Network/networkSecurityGroups/n}}"),
			5, "virtualNetworks[0].subnets[0].routeTable.id", "cannot tell which routeTables", false},
		{"both spellings of an address", y(vnet, "virtualMachines: [{name: m, subnet: s1, privateIpAddress: 10.0.1.4, privateIPAddress: 10.0.1.5}]"),
			6, "virtualMachines[0].privateIPAddress", "give privateIpAddress or privateIPAddress, not both", false},
		{"BGP propagation off", y("routeTables: [{name: rt, properties: {disableBgpRoutePropagation: true, routes: []}}]"),
			1, "routeTables[0].properties.disableBgpRoutePropagation", "is not emulated", false},
	})
}

// Azure's app names may hold upper case: the name is kept as written, and
// its host name is the same name in any case, as DNS compares it.
func TestAppNameInUpperCase(t *testing.T) {
	top := mustParse(t, y(vnet, aseX, "    apps: [{name: MyApp}]"))
	if got := top.ASEs[0].Apps[0].Name; got != "MyApp" {
		t.Errorf("app name = %q, want MyApp as written", got)
	}
}
