package topology

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// y joins lines (strings or []string) into a YAML file, so that a case's
// line numbers can be counted in the source.
func y(parts ...any) string {
	var b strings.Builder
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b.WriteString(p + "\n")
		case []string:
			for _, l := range p {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// Building blocks, valid on their own.
var (
	vnet = []string{ // lines 1-5
		"virtualNetworks:",
		"  - name: vn",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: s1, addressPrefix: 10.0.1.0/24}",
	}
	vnet2 = []string{ // lines 1-6: two subnets
		"virtualNetworks:",
		"  - name: vn",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: s1, addressPrefix: 10.0.1.0/24}",
		"      - {name: s2, addressPrefix: 10.0.2.0/24}",
	}
	aseX = []string{ // lines 6-10 after vnet
		"appServiceEnvironments:",
		"  - name: x",
		"    subnet: s1",
		"    kind: External",
		"    virtualIp: 192.23.1.2",
	}
	ruleR = []string{ // lines 1-8
		"networkSecurityGroups:",
		"  - name: n",
		"    securityRules:",
		"      - name: r",
		"        priority: 100",
		"        direction: Inbound",
		"        access: Allow",
		"        protocol: Tcp",
	}
)

type errCase struct {
	name  string
	yaml  string
	line  int
	field string // "" for errors about the file as a whole
	msg   string // a key part of the message
	more  bool   // other errors are expected too (a cascade the case can't avoid)
}

func TestValidationErrors(t *testing.T) {
	cases := []errCase{
		// Unknown fields, at every level.
		{"unknown top-level field", y(vnet, "virtualNetworkGateways: []"), 6, "virtualNetworkGateways", "unknown field", false},
		{"unknown subnet field", y(vnet[:4], "      - name: s1", "        adressPrefix: 10.0.1.0/24"),
			6, "virtualNetworks[0].subnets[0].adressPrefix", "unknown field (did you mean addressPrefix?)", true},
		{"unknown addressSpace field", y(vnet[:2], "    addressSpace: {addressPrefixes: [10.0.0.0/16], dnsServers: []}"),
			3, "virtualNetworks[0].addressSpace.dnsServers", "unknown field", false},
		{"unknown ASE field", y(vnet, aseX, "    instanceSize: Large"), 11, "appServiceEnvironments[0].instanceSize", "unknown field", false},
		{"unknown app field", y(vnet, aseX, "    apps:", "      - {name: ab, replicas: 2}"),
			12, "appServiceEnvironments[0].apps[0].replicas", "unknown field", false},
		{"unknown VM field", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "    size: Standard_D2"),
			9, "virtualMachines[0].size", "unknown field", false},
		{"unknown host field", y("internetHosts:", "  - name: h", "    address: 203.0.113.10", "    port: 80"),
			4, "internetHosts[0].port", "unknown field", false},
		{"unknown NSG field", y("networkSecurityGroups:", "  - name: n", "    flowLog: true"),
			3, "networkSecurityGroups[0].flowLog", "unknown field", false},
		{"unknown rule field", y(ruleR, "        sourceAddressPrefixs: '*'"),
			9, "networkSecurityGroups[0].securityRules[0].sourceAddressPrefixs", "unknown field (did you mean sourceAddressPrefix?)", false},
		{"unknown field in rule properties", y(ruleR[:4], "        properties:", "          priority: 100", "          direction: Inbound",
			"          access: Allow", "          protocol: Tcp", "          provisioningState: Succeeded"),
			10, "networkSecurityGroups[0].securityRules[0].properties.provisioningState", "unknown field", false},
		{"flat field beside properties", y(ruleR[:4], "        priority: 100", "        properties:", "          direction: Inbound",
			"          access: Allow", "          protocol: Tcp"),
			5, "networkSecurityGroups[0].securityRules[0].priority", "every field but name goes inside properties", true},
		{"field given twice", y("virtualNetworks:", "  - name: vn", "    name: wn", "    addressSpace: {addressPrefixes: [10.0.0.0/16]}"),
			3, "virtualNetworks[0].name", "field given twice (first at line 2)", false},

		// Wrong types.
		{"string for integer", y(vnet, aseX, "    frontEnds: two"), 11, "appServiceEnvironments[0].frontEnds", `expected an integer, got "two"`, false},
		{"mapping for list", y(vnet[:3], "    subnets: {name: s1}"), 4, "virtualNetworks[0].subnets", "expected a list, got a mapping", false},
		{"list for string", y("internetHosts:", "  - name: [a]", "    address: 203.0.113.10"), 2, "internetHosts[0].name", "expected a string, got a list", false},
		{"boolean for string", y(vnet, aseX[:3], "    kind: true", aseX[4]), 9, "appServiceEnvironments[0].kind", "expected a string, got the boolean true", false},
		{"top level is a list", y("- a"), 1, "", "expected a mapping, got a list", false},
		{"rule is not a mapping", y("networkSecurityGroups:", "  - name: n", "    securityRules: [allow-all]"),
			3, "networkSecurityGroups[0].securityRules[0]", `expected a mapping, got "allow-all"`, false},
		{"priority as words", y(ruleR[:4], "        priority: high", ruleR[5:]), 5, "networkSecurityGroups[0].securityRules[0].priority", "expected an integer", false},

		// Malformed addresses, CIDRs and ports.
		{"bad address", y(vnet, aseX[:4], "    virtualIp: 192.23.1.300"), 10, "appServiceEnvironments[0].virtualIp", `"192.23.1.300" is not an IPv4 address`, false},
		{"IPv6 address", y(vnet, aseX[:4], "    virtualIp: '2001:db8::1'"), 10, "appServiceEnvironments[0].virtualIp", "IPv4 only", false},
		{"bad CIDR", y(vnet[:2], "    addressSpace: {addressPrefixes: [10.0.0.0/33]}"),
			3, "virtualNetworks[0].addressSpace.addressPrefixes[0]", `"10.0.0.0/33" is not a valid CIDR prefix`, false},
		{"CIDR not a network address", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.5/26}"),
			5, "virtualNetworks[0].subnets[0].addressPrefix", "10.0.1.5/26 is not a network address; did you mean 10.0.1.0/26?", false},
		{"CIDR without length", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0}"),
			5, "virtualNetworks[0].subnets[0].addressPrefix", "expected a CIDR prefix", false},
		{"port as a word", y(ruleR, "        destinationPortRange: http"),
			9, "networkSecurityGroups[0].securityRules[0].destinationPortRange", `"http" is not a port`, false},
		{"port above 65535", y(ruleR, "        destinationPortRange: 70000"),
			9, "networkSecurityGroups[0].securityRules[0].destinationPortRange", "port 70000 is out of range 0-65535", false},
		{"negative port", y(ruleR, "        destinationPortRange: -1"),
			9, "networkSecurityGroups[0].securityRules[0].destinationPortRange", "port -1 is out of range", false},
		{"port range backwards", y(ruleR, "        destinationPortRange: 200-100"),
			9, "networkSecurityGroups[0].securityRules[0].destinationPortRange", "port range 200-100 starts above its end", false},
		{"port range above 65535", y(ruleR, "        sourcePortRange: '1000-70000'"),
			9, "networkSecurityGroups[0].securityRules[0].sourcePortRange", "port 70000 is out of range", false},
		{"bad port in a list", y(ruleR, "        destinationPortRanges: [80, 443, 99999]"),
			9, "networkSecurityGroups[0].securityRules[0].destinationPortRanges[2]", "port 99999 is out of range", false},
		{"bad rule address", y(ruleR, "        sourceAddressPrefix: 10.0.0.300"),
			9, "networkSecurityGroups[0].securityRules[0].sourceAddressPrefix", `"10.0.0.300" is not an address, a CIDR prefix, * or a service tag`, false},
		{"unknown service tag", y(ruleR, "        sourceAddressPrefix: Storage"),
			9, "networkSecurityGroups[0].securityRules[0].sourceAddressPrefix", `service tag "Storage" is not one the emulator knows`, false},
		{"rule CIDR not a network address", y(ruleR, "        destinationAddressPrefixes: [10.0.0.0/8, 10.0.1.5/24]"),
			9, "networkSecurityGroups[0].securityRules[0].destinationAddressPrefixes[1]", "did you mean 10.0.1.0/24?", false},

		// Missing required fields.
		{"missing virtualIp", y(vnet, aseX[:4]), 7, "appServiceEnvironments[0].virtualIp", "required field is missing", false},
		{"null virtualIp", y(vnet, aseX[:4], "    virtualIp:"), 10, "appServiceEnvironments[0].virtualIp", "required field has no value", false},
		{"missing kind", y(vnet, aseX[:3], aseX[4]), 7, "appServiceEnvironments[0].kind", "required field is missing", false},
		{"missing host address", y("internetHosts:", "  - name: h"), 2, "internetHosts[0].address", "required field is missing", false},
		{"missing protocol", y(ruleR[:7]), 4, "networkSecurityGroups[0].securityRules[0].protocol", "required field is missing", false},
		{"ILB ASE's subnet full for its dynamic ILB address", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/29}", aseX[:3], "    kind: ILB", aseX[4], "    frontEnds: 1", "    workers: 2"),
			7, "appServiceEnvironments[0]", "subnet s1 (10.0.1.0/29) is full: no address left for the ILB address of ASE x", false},
		{"missing address space", y("virtualNetworks:", "  - name: vn"), 2, "virtualNetworks[0].addressSpace", "required field is missing", false},
		{"missing VM subnet", y("virtualMachines:", "  - name: m"), 2, "virtualMachines[0].subnet", "required field is missing", false},
		{"missing name", y("networkSecurityGroups:", "  - securityRules: []"), 2, "networkSecurityGroups[0].name", "required field is missing", false},
		{"empty address space", y(vnet[:2], "    addressSpace: {addressPrefixes: []}"),
			3, "virtualNetworks[0].addressSpace.addressPrefixes", "at least one address prefix", false},

		// Overlapping address spaces and subnets, subnet sizes.
		{"address spaces overlap within a VNet", y(vnet[:2], "    addressSpace:", "      addressPrefixes:", "        - 10.0.0.0/16", "        - 10.0.128.0/17"),
			6, "virtualNetworks[0].addressSpace.addressPrefixes[1]", "10.0.128.0/17 overlaps address space 10.0.0.0/16 of VNet vn (line 5)", false},
		{"address spaces overlap across VNets", y(vnet, "  - name: wn", "    addressSpace: {addressPrefixes: [10.0.0.0/8]}"),
			7, "virtualNetworks[1].addressSpace.addressPrefixes[0]", "10.0.0.0/8 overlaps address space 10.0.0.0/16 of VNet vn (line 3); Azure allows VNets that are not peered to overlap, but the emulator", false},
		{"address space on loopback", y(vnet[:2], "    addressSpace: {addressPrefixes: [127.0.0.0/16]}"),
			3, "virtualNetworks[0].addressSpace.addressPrefixes[0]", "overlaps 127.0.0.0/8 (loopback)", false},
		{"address space holds the platform address", y(vnet[:2], "    addressSpace: {addressPrefixes: [168.63.0.0/16]}"),
			3, "virtualNetworks[0].addressSpace.addressPrefixes[0]", "contains 168.63.129.16", false},
		{"subnets overlap", y(vnet, "      - {name: s2, addressPrefix: 10.0.1.128/25}"),
			6, "virtualNetworks[0].subnets[1].addressPrefix", "10.0.1.128/25 overlaps subnet s1 (10.0.1.0/24, line 5)", false},
		{"subnet outside the address space", y(vnet[:4], "      - {name: s1, addressPrefix: 10.1.0.0/24}"),
			5, "virtualNetworks[0].subnets[0].addressPrefix", "10.1.0.0/24 lies outside the address space of VNet vn (10.0.0.0/16)", false},
		{"subnet smaller than /29", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/30}"),
			5, "virtualNetworks[0].subnets[0].addressPrefix", "10.0.1.0/30 is too small: Azure's smallest subnet is a /29", false},

		// Addresses outside their subnet or on a reserved address (F1).
		{"VM address outside its subnet", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "    privateIpAddress: 10.0.2.4"),
			9, "virtualMachines[0].privateIpAddress", "10.0.2.4 lies outside subnet s1 (10.0.1.0/24)", false},
		{"VM on the network address", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "    privateIpAddress: 10.0.1.0"),
			9, "virtualMachines[0].privateIpAddress", "10.0.1.0 is reserved in subnet s1 (10.0.1.0/24): it is the network address", false},
		{"VM on the gateway", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "    privateIpAddress: 10.0.1.1"),
			9, "virtualMachines[0].privateIpAddress", "it is the gateway", false},
		{"VM on Azure DNS", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "    privateIpAddress: 10.0.1.3"),
			9, "virtualMachines[0].privateIpAddress", "it is kept for Azure DNS", false},
		{"VM on the broadcast address", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "    privateIpAddress: 10.0.1.255"),
			9, "virtualMachines[0].privateIpAddress", "it is the broadcast address", false},
		{"ILB address reserved", y(vnet, aseX[:3], "    kind: ILB", aseX[4], "    ilbAddress: 10.0.1.2"),
			11, "appServiceEnvironments[0].ilbAddress", "10.0.1.2 is reserved in subnet s1", false},
		{"ILB address outside the ASE's subnet", y(vnet2, "appServiceEnvironments:", "  - name: x", "    subnet: s1", "    kind: ilb",
			"    virtualIp: 192.23.1.2", "    ilbAddress: 10.0.2.8"),
			12, "appServiceEnvironments[0].ilbAddress", "10.0.2.8 lies outside subnet s1 (10.0.1.0/24)", false},

		// Duplicate names.
		{"two VMs with one name", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "  - name: m", "    subnet: s1"),
			9, "virtualMachines[1].name", "name m is already used by VM m (line 7)", false},
		{"VM and host with one name", y(vnet, "virtualMachines:", "  - {name: m, subnet: s1}", "internetHosts:", "  - {name: m, address: 203.0.113.10}"),
			9, "internetHosts[0].name", "name m is already used by VM m (line 7)", false},
		{"VM named like an ASE worker", y(vnet, aseX, "virtualMachines:", "  - name: x-w1", "    subnet: s1"),
			12, "virtualMachines[0].name", "name x-w1 is already used by worker x-w1 of ASE x (line 7)", false},
		{"ASE worker named like an earlier VM", y(vnet, "virtualMachines:", "  - {name: x-fe2, subnet: s1}", aseX[0], "  - name: x", aseX[2:]),
			9, "appServiceEnvironments[0].name", "node name x-fe2 (front-end 2 of this ASE) is already used by VM x-fe2 (line 7)", false},
		{"ASE and VM with one name", y(vnet, aseX, "virtualMachines:", "  - {name: x, subnet: s1}"),
			12, "virtualMachines[0].name", "name x is already used by ASE x (line 7)", false},
		{"two VNets with one name", y(vnet, "  - name: VN", "    addressSpace: {addressPrefixes: [10.1.0.0/16]}"),
			6, "virtualNetworks[1].name", "name VN is already used by VNet vn (line 2)", false},
		{"two subnets with one name in different VNets", y(vnet, "  - name: wn", "    addressSpace: {addressPrefixes: [10.1.0.0/16]}", "    subnets:",
			"      - {name: s1, addressPrefix: 10.1.1.0/24}"),
			9, "virtualNetworks[1].subnets[0].name", "subnet name s1 is already used by subnet s1 of VNet vn (line 5)", false},
		{"two NSGs with one name", y("networkSecurityGroups:", "  - name: n", "  - name: N"),
			3, "networkSecurityGroups[1].name", "name N is already used by NSG n (line 2)", false},
		{"two rules with one name", y(ruleR, "      - name: r", "        priority: 200", "        direction: Inbound", "        access: Deny", "        protocol: Udp"),
			9, "networkSecurityGroups[0].securityRules[1].name", "rule name r is already used by rule r (line 4)", false},
		{"two apps with one name", y(vnet, aseX, "    apps:", "      - name: ab", "      - name: ab"),
			13, "appServiceEnvironments[0].apps[1].name", "app name ab is already used by app ab (line 12)", false},
		// A host name: ab and AB would be one name in DNS.
		{"two apps whose names differ in case", y(vnet, aseX, "    apps:", "      - name: ab", "      - name: AB"),
			13, "appServiceEnvironments[0].apps[1].name", "app name AB is already used by app ab (line 12)", false},

		// Duplicate addresses.
		{"two VMs on one address", y(vnet, "virtualMachines:", "  - {name: m, subnet: s1, privateIpAddress: 10.0.1.10}",
			"  - {name: m2, subnet: s1, privateIpAddress: 10.0.1.10}"),
			8, "virtualMachines[1].privateIpAddress", "address 10.0.1.10 is already used by the privateIpAddress of VM m (line 7)", false},
		{"host on a VIP", y(vnet, aseX, "internetHosts:", "  - name: h", "    address: 192.23.1.2"),
			13, "internetHosts[0].address", "address 192.23.1.2 is already used by the virtualIp of ASE x (line 10)", false},
		{"VM on an ILB address", y(vnet, aseX[:3], "    kind: ILB", aseX[4], "    ilbAddress: 10.0.1.10", "virtualMachines:",
			"  - {name: m, subnet: s1, privateIpAddress: 10.0.1.10}"),
			13, "virtualMachines[0].privateIpAddress", "address 10.0.1.10 is already used by the ilbAddress of ASE x (line 11)", false},
		{"VM public IP on a VIP", y(vnet, aseX, "virtualMachines:", "  - {name: m, subnet: s1, publicIpAddress: 192.23.1.2}"),
			12, "virtualMachines[0].publicIpAddress", "address 192.23.1.2 is already used by the virtualIp of ASE x (line 10)", false},
		{"two ASEs on one VIP", y(vnet2, "appServiceEnvironments:", "  - {name: x, subnet: s1, kind: External, virtualIp: 192.23.1.2}",
			"  - {name: y, subnet: s2, kind: External, virtualIp: 192.23.1.2}"),
			9, "appServiceEnvironments[1].virtualIp", "address 192.23.1.2 is already used by the virtualIp of ASE x (line 8)", false},

		// Public addresses.
		{"VIP inside the VNet", y(vnet, aseX[:4], "    virtualIp: 10.0.200.1"),
			10, "appServiceEnvironments[0].virtualIp", "10.0.200.1 lies inside the address space of VNet vn (10.0.0.0/16); a virtualIp must lie outside every VNet", false},
		{"VIP on the platform address", y(vnet, aseX[:4], "    virtualIp: 168.63.129.16"),
			10, "appServiceEnvironments[0].virtualIp", "168.63.129.16 is Azure's platform address", false},
		{"VIP in 0.0.0.0/8", y(vnet, aseX[:4], "    virtualIp: 0.1.2.3"), 10, "appServiceEnvironments[0].virtualIp", "lies in 0.0.0.0/8", false},
		{"VIP on loopback", y(vnet, aseX[:4], "    virtualIp: 127.0.0.1"), 10, "appServiceEnvironments[0].virtualIp", "lies in 127.0.0.0/8 (loopback)", false},
		{"VIP link-local", y(vnet, aseX[:4], "    virtualIp: 169.254.1.1"), 10, "appServiceEnvironments[0].virtualIp", "lies in 169.254.0.0/16 (link-local)", false},
		{"VIP multicast", y(vnet, aseX[:4], "    virtualIp: 224.0.0.5"), 10, "appServiceEnvironments[0].virtualIp", "lies in 224.0.0.0/4 (multicast)", false},
		{"VIP broadcast", y(vnet, aseX[:4], "    virtualIp: 255.255.255.255"), 10, "appServiceEnvironments[0].virtualIp", "lies in 240.0.0.0/4", false},
		{"VM public IP inside the VNet", y(vnet, "virtualMachines:", "  - name: m", "    subnet: s1", "    publicIpAddress: 10.0.9.9"),
			9, "virtualMachines[0].publicIpAddress", "lies inside the address space of VNet vn", false},
		{"Internet host inside the VNet", y(vnet, "internetHosts:", "  - name: h", "    address: 10.0.50.10"),
			8, "internetHosts[0].address", "lies inside the address space of VNet vn", false},
		{"Internet host on its gateway", y("internetHosts:", "  - {name: h, address: 203.0.113.1}"),
			2, "internetHosts[0].address", "203.0.113.1 is the gateway of its network 203.0.113.0/24", false},
		{"Internet host on its network address", y("internetHosts:", "  - {name: h, address: 203.0.113.0}"),
			2, "internetHosts[0].address", "is the network address of its network", false},
		{"Internet host on its broadcast address", y("internetHosts:", "  - {name: h, address: 203.0.113.255}"),
			2, "internetHosts[0].address", "is the broadcast address of its network", false},
		{"Internet host's /24 overlaps a VNet", y("virtualNetworks:", "  - {name: vn, addressSpace: {addressPrefixes: [10.1.0.0/25]}}",
			"internetHosts:", "  - {name: h, address: 10.1.0.200}"),
			4, "internetHosts[0].address", "is on network 10.1.0.0/24, which overlaps the address space of VNet vn (10.1.0.0/25)", false},
		{"VIP on an Internet host's gateway", y(vnet, aseX[:4], "    virtualIp: 203.0.113.1", "internetHosts:", "  - {name: h, address: 203.0.113.10}"),
			10, "appServiceEnvironments[0].virtualIp", "203.0.113.1 is the gateway of Internet host h's network 203.0.113.0/24", false},

		// ASEs.
		{"two ASEs in one subnet", y(vnet, aseX, "  - {name: y, subnet: s1, kind: External, virtualIp: 192.23.1.3}"),
			11, "appServiceEnvironments[1].subnet", "subnet s1 already holds ASE x (line 7)", false},
		{"ILB address on an External ASE", y(vnet, aseX, "    ilbAddress: 10.0.1.10"),
			11, "appServiceEnvironments[0].ilbAddress", "only an ASE of kind ILB has an ilbAddress", false},
		{"ILB mode on an External ASE", y(vnet, aseX, "    internalLoadBalancingMode: Publishing"),
			11, "appServiceEnvironments[0].internalLoadBalancingMode", "only an ASE of kind ILB", false},
		{"bad ILB mode", y(vnet, aseX[:3], "    kind: ILB", aseX[4], "    ilbAddress: 10.0.1.10", "    internalLoadBalancingMode: Internal"),
			12, "appServiceEnvironments[0].internalLoadBalancingMode", `"Internal" is not a valid internalLoadBalancingMode; use "Web, Publishing", "Web", "Publishing" or "None"`, false},
		{"one-character VNet name", y("virtualNetworks:", "  - name: v", "    addressSpace: {addressPrefixes: [10.0.0.0/16]}"),
			2, "virtualNetworks[0].name", `"v" is not a valid VNet name: use 2 to 64 letters`, false},
		{"65-character VNet name", y("virtualNetworks:", "  - name: "+strings.Repeat("v", 65), "    addressSpace: {addressPrefixes: [10.0.0.0/16]}"),
			2, "virtualNetworks[0].name", "is not a valid VNet name: use 2 to 64 letters", false},
		{"ILB mode None on an ILB ASE", y(vnet, aseX[:3], "    kind: ILB", aseX[4], "    ilbAddress: 10.0.1.10", "    internalLoadBalancingMode: None"),
			12, "appServiceEnvironments[0].internalLoadBalancingMode", "None serves nothing on the ILB address: it is ARM's External ASE; use kind External", false},
		{"bad kind", y(vnet, aseX[:3], "    kind: Internal", aseX[4]),
			9, "appServiceEnvironments[0].kind", `"Internal" is not a valid kind; use External or ILB`, false},
		{"no front-ends", y(vnet, aseX, "    frontEnds: 0"), 11, "appServiceEnvironments[0].frontEnds", "0 is out of range: an ASE has 1 to 100 front-ends", false},
		{"too many workers", y(vnet, aseX, "    workers: 101"), 11, "appServiceEnvironments[0].workers", "101 is out of range: an ASE has 1 to 100 workers", false},
		{"bad DNS suffix", y(vnet, aseX, "    dnsSuffix: my_ase.local"), 11, "appServiceEnvironments[0].dnsSuffix", `"my_ase.local" is not a valid DNS suffix`, false},
		{"two ASEs with one DNS suffix", y(vnet2, aseX, "  - {name: y, subnet: s2, kind: External, virtualIp: 192.23.1.3, dnsSuffix: X.p.azurewebsites.net}"),
			12, "appServiceEnvironments[1].dnsSuffix", "dnsSuffix x.p.azurewebsites.net is already used by ASE x (line 8)", false},
		{"app on an unknown worker", y(vnet, aseX, "    apps:", "      - name: ab", "        workers: [x-w3]"),
			13, "appServiceEnvironments[0].apps[0].workers[0]", `"x-w3" is not a worker of ASE x, whose workers are x-w1 to x-w2`, false},
		{"app on a worker twice", y(vnet, aseX, "    apps:", "      - name: ab", "        workers: [x-w1, x-w1]"),
			13, "appServiceEnvironments[0].apps[0].workers[1]", "worker x-w1 is listed twice", false},
		{"app on no worker", y(vnet, aseX, "    apps:", "      - name: ab", "        workers: []"),
			13, "appServiceEnvironments[0].apps[0].workers", "an app needs at least one worker", false},

		// References.
		{"ASE in a missing subnet", y(vnet, aseX[:2], "    subnet: s9", aseX[3:]),
			8, "appServiceEnvironments[0].subnet", `no subnet is named "s9"`, false},
		{"VM in a missing subnet", y(vnet, "virtualMachines:", "  - {name: m, subnet: S-1}"),
			7, "virtualMachines[0].subnet", `no subnet is named "S-1" (did you mean s1?)`, false},
		{"subnet with a missing NSG", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/24, networkSecurityGroup: nsg1}"),
			5, "virtualNetworks[0].subnets[0].networkSecurityGroup", `no networkSecurityGroups entry is named "nsg1"`, false},
		{"VM with a missing NSG", y(vnet, "virtualMachines:", "  - {name: m, subnet: s1, networkSecurityGroup: nsg1}", ruleR),
			7, "virtualMachines[0].networkSecurityGroup", `no networkSecurityGroups entry is named "nsg1"`, false},

		// NSG rules.
		{"priority below 100", y(ruleR[:4], "        priority: 99", ruleR[5:]),
			5, "networkSecurityGroups[0].securityRules[0].priority", "priority 99 is out of range: a rule's priority is 100 to 4096", false},
		{"priority above 4096", y(ruleR[:4], "        priority: 4097", ruleR[5:]),
			5, "networkSecurityGroups[0].securityRules[0].priority", "priority 4097 is out of range", false},
		{"priority twice in one direction", y(ruleR, "      - name: r2", "        priority: 100", "        direction: inbound", "        access: Deny", "        protocol: '*'"),
			10, "networkSecurityGroups[0].securityRules[1].priority", "Inbound priority 100 is already used by rule r (line 5)", false},
		{"bad direction", y(ruleR[:5], "        direction: Sideways", ruleR[6:]),
			6, "networkSecurityGroups[0].securityRules[0].direction", `"Sideways" is not a valid direction; use Inbound or Outbound`, false},
		{"bad access", y(ruleR[:6], "        access: Permit", ruleR[7:]),
			7, "networkSecurityGroups[0].securityRules[0].access", `"Permit" is not a valid access; use Allow or Deny`, false},
		{"bad protocol", y(ruleR[:7], "        protocol: Esp"),
			8, "networkSecurityGroups[0].securityRules[0].protocol", `"Esp" is not a valid protocol; use Tcp, Udp, Icmp or *`, false},
		{"singular and plural prefix", y(ruleR, "        sourceAddressPrefix: '*'", "        sourceAddressPrefixes: [10.0.0.0/8]"),
			10, "networkSecurityGroups[0].securityRules[0].sourceAddressPrefixes", "give sourceAddressPrefix or sourceAddressPrefixes, not both", false},
		{"singular and plural port", y(ruleR, "        destinationPortRanges: [80]", "        destinationPortRange: 443"),
			9, "networkSecurityGroups[0].securityRules[0].destinationPortRanges", "give destinationPortRange or destinationPortRanges, not both", false},

		// Names.
		{"upper-case node name", y(vnet, "virtualMachines:", "  - {name: DB1, subnet: s1}"),
			7, "virtualMachines[0].name", `"DB1" is not a valid VM name`, false},
		{"shell metacharacter in a name", y("internetHosts:", "  - {name: 'a;rm', address: 203.0.113.10}"),
			2, "internetHosts[0].name", `"a;rm" is not a valid Internet host name`, false},
		{"slash in an ASE name", y(vnet, aseX[0], "  - name: a/b", aseX[2:]),
			7, "appServiceEnvironments[0].name", `"a/b" is not a valid ASE name`, false},
		{"node name too long", y("internetHosts:", "  - {name: "+strings.Repeat("h", 33)+", address: 203.0.113.10}"),
			2, "internetHosts[0].name", "is not a valid Internet host name: use 1 to 32", false},
		{"generated node name too long", y(vnet, aseX[0], "  - name: "+strings.Repeat("a", 29), aseX[2:]),
			7, "appServiceEnvironments[0].name", "its node " + strings.Repeat("a", 29) + "-fe2 would have 33 characters, over the limit of 32", false},
		{"bad VNet name", y("virtualNetworks:", "  - name: my vnet", "    addressSpace: {addressPrefixes: [10.0.0.0/16]}"),
			2, "virtualNetworks[0].name", `"my vnet" is not a valid VNet name`, false},
		{"bad subnet name", y(vnet[:4], "      - {name: -s1, addressPrefix: 10.0.1.0/24}"),
			5, "virtualNetworks[0].subnets[0].name", `"-s1" is not a valid subnet name`, false},
		{"bad NSG name", y("networkSecurityGroups:", "  - name: n$1"), 2, "networkSecurityGroups[0].name", `"n$1" is not a valid NSG name`, false},
		// Azure: a Microsoft.Network name ends with a letter, digit or '_'.
		{"NSG name ending in a period", y("networkSecurityGroups:", "  - name: n1."), 2, "networkSecurityGroups[0].name", `"n1." is not a valid NSG name: use 1 to 80 letters, digits, '_', '.' and '-', starting with a letter or digit and ending with a letter, digit or '_'`, false},
		{"rule name ending in a hyphen", y(ruleR[:3], "      - name: allow-", ruleR[4:]),
			4, "networkSecurityGroups[0].securityRules[0].name", `"allow-" is not a valid rule name`, false},
		{"VNet name ending in a period", y("virtualNetworks:", "  - name: v.", "    addressSpace: {addressPrefixes: [10.0.0.0/16]}"),
			2, "virtualNetworks[0].name", `"v." is not a valid VNet name`, false},
		{"subnet name ending in a hyphen", y(vnet[:4], "      - {name: s1-, addressPrefix: 10.0.1.0/24}"),
			5, "virtualNetworks[0].subnets[0].name", `"s1-" is not a valid subnet name`, false},
		{"route table name ending in a period", y("routeTables: [{name: rt., routes: []}]"), 1, "routeTables[0].name", `"rt." is not a valid route table name`, false},
		{"route name ending in a hyphen", y("routeTables: [{name: rt, routes: [{name: r-, addressPrefix: 0.0.0.0/0, nextHopType: Internet}]}]"),
			1, "routeTables[0].routes[0].name", `"r-" is not a valid route name`, false},
		{"resource name 81 characters", y("networkSecurityGroups:", "  - name: "+strings.Repeat("n", 81)), 2, "networkSecurityGroups[0].name", "is not a valid NSG name", false},
		{"bad rule name", y(ruleR[:3], "      - name: allow web", ruleR[4:]),
			4, "networkSecurityGroups[0].securityRules[0].name", `"allow web" is not a valid rule name`, false},
		{"bad app name", y(vnet, aseX, "    apps: [{name: App_1}]"),
			11, "appServiceEnvironments[0].apps[0].name", `"App_1" is not a valid app name`, false},
		// Azure's sites take 2 to 60 characters.
		{"one-letter app name", y(vnet, aseX, "    apps: [{name: a}]"),
			11, "appServiceEnvironments[0].apps[0].name", `"a" is not a valid app name: use 2 to 60`, false},
		{"app name 61 characters", y(vnet, aseX, "    apps: [{name: "+strings.Repeat("a", 61)+"}]"),
			11, "appServiceEnvironments[0].apps[0].name", "is not a valid app name", false},

		// Subnets too small for their nodes.
		{"ASE does not fit its subnet", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/29}", aseX),
			7, "appServiceEnvironments[0].workers", "subnet s1 (10.0.1.0/29) is full: no address left for worker x-w2 of ASE x (a /29 has 3 addresses for machines)", false},
		{"VM does not fit its subnet", y(vnet[:4], "      - {name: s1, addressPrefix: 10.0.1.0/29}", "virtualMachines:",
			"  - {name: m1, subnet: s1}", "  - {name: m2, subnet: s1, privateIpAddress: 10.0.1.6}", "  - {name: m3, subnet: s1}", "  - {name: m4, subnet: s1}"),
			10, "virtualMachines[3].subnet", "subnet s1 (10.0.1.0/29) is full: no address left for VM m4", false},

		// YAML itself.
		{"syntax error", y(vnet[:2], "  x: 1"), 3, "", "did not find expected '-' indicator", false},
		{"tab indentation", y("virtualNetworks:", "\t- name: vn"), 2, "", "found character that cannot start any token (the line is indented with a tab; YAML indents with spaces only)", false},
		{"unquoted star", y(ruleR[:7], "        protocol: *"), 8, "", "write '*' in quotes", false},
		{"unknown anchor", y("virtualNetworks:", "  - *v"), 2, "", "unknown anchor 'v' referenced", false},
		{"anchor containing itself", y("virtualNetworks: &a [*a]"), 1, "", "anchor 'a' value contains itself", false},
		{"billion laughs", y(
			"a: &a [x, x, x, x, x, x, x, x, x]",
			"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
			"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
			"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
			"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
			"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
			"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]",
			"h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]",
			"i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]"),
			2, "", "document contains excessive aliasing", false},
		{"two documents", y(vnet, "---", vnet), 6, "", "a topology file holds one YAML document", false},
		{"empty file", "", 1, "", "the file is empty", false},
		{"only comments", "# nothing yet\n", 1, "", "the file is empty", false},
		{"null document", "---\n", 1, "", "the file is empty", false},
		{"non-text key", y("? [a, b]", ": c"), 1, "", "a field name must be plain text", false},
	}
	runErrCases(t, cases)
}

// runErrCases parses each case and checks that its error, with its exact
// file:line: field: prefix, is reported.
func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			top, err := Parse("lab.yaml", []byte(c.yaml))
			if err == nil {
				t.Fatalf("no error; want line %d %s: %s", c.line, c.field, c.msg)
			}
			if top != nil {
				t.Errorf("got a topology along with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not topology.Errors: %v", err, err)
			}
			prefix := fmt.Sprintf("lab.yaml:%d: ", c.line)
			if c.field != "" {
				prefix += c.field + ": "
			}
			found := false
			for _, e := range errs {
				s := e.Error()
				found = found || strings.HasPrefix(s, prefix) && strings.Contains(s[len(prefix):], c.msg)
			}
			if testing.Verbose() {
				t.Logf("\n%v", err)
			}
			if !found {
				t.Errorf("no error %q...%q in:\n%v", prefix, c.msg, err)
			} else if len(errs) > 1 && !c.more {
				t.Errorf("want one error, got %d:\n%v", len(errs), err)
			}
		})
	}
}

func TestTooManyNodes(t *testing.T) {
	// 21 ASEs of 100 front-ends and 100 workers: the 21st passes 4096.
	lines := []string{"virtualNetworks:", "  - name: vn", "    addressSpace: {addressPrefixes: [10.0.0.0/16]}", "    subnets:"}
	for i := range 21 {
		lines = append(lines, fmt.Sprintf("      - {name: s%d, addressPrefix: 10.0.%d.0/24}", i, i))
	}
	lines = append(lines, "appServiceEnvironments:")
	for i := range 21 {
		lines = append(lines, fmt.Sprintf("  - {name: a%d, subnet: s%d, kind: External, virtualIp: 192.23.%d.2, frontEnds: 100, workers: 100}", i, i, i))
	}
	_, err := Parse("lab.yaml", []byte(y(lines)))
	want := "lab.yaml:47: appServiceEnvironments[20]: the lab has 4201 nodes counting Azure's platform node, over the emulator's limit of 4096"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// MaxNodes bounds the namespaces up creates, and the platform node is one:
// 4,095 VMs make 4,096 namespaces and pass; 4,096 VMs would make 4,097 and
// are refused at the line of the last VM.
func TestNodeLimitCountsThePlatform(t *testing.T) {
	vms := func(n int) string {
		lines := []string{"virtualNetworks:", "  - name: vn", "    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
			"    subnets: [{name: s, addressPrefix: 10.0.0.0/16}]", "virtualMachines:"}
		for i := range n {
			lines = append(lines, fmt.Sprintf("  - {name: vm%d, subnet: s}", i))
		}
		return y(lines)
	}
	top, err := Parse("lab.yaml", []byte(vms(MaxNodes-1)))
	if err != nil {
		t.Fatalf("%d VMs: %v", MaxNodes-1, err)
	}
	if len(top.Nodes) != MaxNodes {
		t.Errorf("%d VMs make %d nodes, want %d with the platform node", MaxNodes-1, len(top.Nodes), MaxNodes)
	}
	_, err = Parse("lab.yaml", []byte(vms(MaxNodes)))
	want := fmt.Sprintf("lab.yaml:%d: virtualMachines[%d]: the lab has %d nodes counting Azure's platform node, over the emulator's limit of %d", 5+MaxNodes, MaxNodes-1, MaxNodes+1, MaxNodes)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("%d VMs: got %v\nwant %s", MaxNodes, err, want)
	}
}

func TestAllErrorsInLineOrder(t *testing.T) {
	_, err := Parse("lab.yaml", []byte(y(
		"internetHosts:",
		"  - {name: h, address: 203.0.113.1}", // 2: on its gateway
		"virtualNetworks:",
		"  - name: vn",
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets:",
		"      - {name: s1, addressPrefix: 10.0.1.0/24}",
		"      - {name: s2, addressPrefix: 10.0.1.0/25}", // 8: overlap
		"virtualMachines:",
		"  - {name: m, subnet: nope}", // 10: no such subnet
		"  - {name: Bad, subnet: s1}", // 11: bad name
	)))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	var lines []int
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	if fmt.Sprint(lines) != "[2 8 10 11]" {
		t.Fatalf("errors on lines %v, want [2 8 10 11]:\n%v", lines, err)
	}
	if n := strings.Count(err.Error(), "\n"); n != 3 {
		t.Fatalf("Error() has %d newlines, want one error per line:\n%v", n, err)
	}
	var one *Error
	if !errors.As(err, &one) || one.Line != 2 || one.Field != "internetHosts[0].address" {
		t.Fatalf("errors.As(*Error) = %+v, want the first error", one)
	}
}

// Names Azure accepts stay accepted: ending in '_', a single character, 80
// characters, periods and hyphens inside.
func TestAzureResourceNamesAccepted(t *testing.T) {
	long := strings.Repeat("n", 80)
	src := y("virtualNetworks:",
		"  - name: v_",
		"    addressSpace: {addressPrefixes: [10.1.0.0/16]}",
		"  - name: "+strings.Repeat("v", 64),
		"    addressSpace: {addressPrefixes: [10.0.0.0/16]}",
		"    subnets: [{name: s.1-a_, addressPrefix: 10.0.1.0/24, networkSecurityGroup: "+long+", routeTable: r.t_}]",
		"networkSecurityGroups: [{name: "+long+", securityRules: [{name: a-b.c_, priority: 100, direction: Inbound, access: Allow, protocol: Tcp}]}]",
		"routeTables: [{name: r.t_, routes: [{name: x, addressPrefix: 0.0.0.0/0, nextHopType: Internet}]}]")
	if _, err := Parse("t.yaml", []byte(src)); err != nil {
		t.Fatalf("names Azure accepts were refused:\n%v", err)
	}
}

// ARM's four internalLoadBalancingMode values, and the template's integers
// for them (web-app-ase-ilb-create): None only on an External ASE.
func TestILBModes(t *testing.T) {
	for _, c := range []struct{ kind, mode, want string }{
		{"ILB", "Web", ILBModeWeb},
		{"ILB", "1", ILBModeWeb},
		{"ILB", "publishing", ILBModePublishing},
		{"ILB", "'2'", ILBModePublishing},
		{"ILB", "'Publishing, Web'", ILBModeWebPublishing},
		{"ILB", "3", ILBModeWebPublishing},
		{"External", "None", ""},
		{"External", "0", ""},
	} {
		src := y(vnet, aseX[:3], "    kind: "+c.kind, aseX[4], "    internalLoadBalancingMode: "+c.mode)
		if c.kind == "ILB" {
			src += "    ilbAddress: 10.0.1.10\n"
		}
		top, err := Parse("t.yaml", []byte(src))
		if err != nil {
			t.Errorf("%s, mode %s: %v", c.kind, c.mode, err)
			continue
		}
		if got := top.ASEs[0].ILBMode; got != c.want {
			t.Errorf("%s, mode %s: ILBMode %q, want %q", c.kind, c.mode, got, c.want)
		}
	}
}

// An ILB ASE's address is dynamic in Azure unless given (ARM's
// hostingEnvironments has no property for it): without ilbAddress, it is
// the first free address of the ASE's subnet after the ASE's machines and
// the VMs, and a running lab keeps the one it has.
func TestDynamicILBAddress(t *testing.T) {
	src := y(vnet, aseX[:3], "    kind: ILB", aseX[4], "virtualMachines: [{name: m, subnet: s1, privateIpAddress: 10.0.1.9}, {name: n, subnet: s1}]")
	top, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := top.ASEs[0].ILB.String(); got != "10.0.1.10" {
		t.Errorf("ILB address %s, want 10.0.1.10 (after x-fe1..x-w2 .4-.7, n .8 and m's .9)", got)
	}
	if top.ASEByAddr(top.ASEs[0].ILB) != top.ASEs[0] {
		t.Errorf("the dynamic ILB address does not lead to its ASE")
	}
	more := strings.Replace(src, "    kind: ILB", "    kind: ILB\n    workers: 4", 1)
	over, err := ParseOver("t.yaml", []byte(more), top)
	if err != nil {
		t.Fatal(err)
	}
	if got := over.ASEs[0].ILB.String(); got != "10.0.1.10" {
		t.Errorf("scaled to 4 workers, the running ILB address moved to %s, want 10.0.1.10 kept", got)
	}
	for _, n := range over.Nodes {
		if n.Addr.String() == "10.0.1.10" {
			t.Errorf("node %s was given the ILB address", n.Name)
		}
	}
}
