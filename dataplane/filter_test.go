package dataplane

import (
	"net"
	"strings"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/topology"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// parseLab returns the default lab edited by replacement pairs; an edit
// that matches nothing fails the test.
func parseLab(t *testing.T, replace ...string) *topology.Topology {
	t.Helper()
	yaml := string(topology.DefaultYAML())
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(yaml, replace[i]) {
			t.Fatalf("edit: %q not found", replace[i])
		}
		yaml = strings.Replace(yaml, replace[i], replace[i+1], 1)
	}
	topo, err := topology.Parse("lab.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// ase2NSG is the article's example (F5): ase2's subnet admits HTTP only
// from ase1's VIP.
var ase2NSG = []string{
	"        addressPrefix: 10.0.3.0/26\n", "        addressPrefix: 10.0.3.0/26\n        networkSecurityGroup: ase2-nsg\n",
	"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: ase2-nsg
    securityRules:
      - {name: AllowASE1VIP, priority: 100, direction: Inbound, access: Allow, protocol: Tcp,
         sourceAddressPrefix: 192.23.1.2, destinationPortRange: "80"}
      - {name: DenyInternet, priority: 200, direction: Inbound, access: Deny, protocol: "*",
         sourceAddressPrefix: Internet}
`,
}

func TestNSGAdmitsOnlyASE1VIP(t *testing.T) {
	l := newLabFrom(t, parseLab(t, ase2NSG...), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 43000, "192.23.2.2", 80, true, false))
	l.recvAny(t, "ase2-fe1", "ase2-fe2") // F5: admitted by AllowASE1VIP
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 43001, "192.23.2.2", 80, true, false))
	l.devs["ase2-fe1"].expectNothing(t)
	l.devs["ase2-fe2"].expectNothing(t)
	l.devs["client"].expectNothing(t) // dropped silently
	l.expectDrops(t, DropNSGInbound, 1)
	if n, _ := l.e.cur.Load().nsgs.Hits("ase2-nsg", 0, "DenyInternet"); n != 1 {
		t.Errorf("DenyInternet hits = %d, want 1", n)
	}
}

// F12: with inbound DenyAll on vm-subnet, db1 still calls out and gets its
// replies; nobody calls in.
func TestNSGIsStateful(t *testing.T) {
	l := newLabFrom(t, parseLab(t,
		"        addressPrefix: 10.0.2.0/24\n", "        addressPrefix: 10.0.2.0/24\n        networkSecurityGroup: vm-nsg\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: vm-nsg
    securityRules:
      - {name: DenyAll, priority: 100, direction: Inbound, access: Deny, protocol: "*"}
`), nil)
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 43100, "10.0.1.6", 80, true, false))
	tcpOf(t, l.devs["ase1-w1"].recv(t))
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 80, "10.0.2.4", 43100, true, true))
	if _, _, dst, _, _ := tcpOf(t, l.devs["db1"].recv(t)); dst != "10.0.2.4" {
		t.Fatal("the reply to db1's own call did not pass")
	}
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 43101, "10.0.2.4", 1433, true, false))
	l.devs["db1"].expectNothing(t)
	l.expectDrops(t, DropNSGInbound, 1)
}

// F12: a rule change affects new flows; an established flow keeps its
// verdict.
func TestNSGChangeKeepsEstablishedFlows(t *testing.T) {
	l := newLab(t, nil)
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 43200, "10.0.1.6", 5000, true, false))
	tcpOf(t, l.devs["ase1-w1"].recv(t))
	denied := parseLab(t,
		"        addressPrefix: 10.0.1.0/26\n", "        addressPrefix: 10.0.1.0/26\n        networkSecurityGroup: n\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: n
    securityRules:
      - {name: Deny5000, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPortRange: "5000"}
`)
	if err := l.e.Reconfigure(denied, nil, nil); err != nil {
		t.Fatal(err)
	}
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 43200, "10.0.1.6", 5000, false, true))
	tcpOf(t, l.devs["ase1-w1"].recv(t)) // the established flow goes on
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 43201, "10.0.1.6", 5000, true, false))
	l.devs["ase1-w1"].expectNothing(t)
	l.expectDrops(t, DropNSGInbound, 1)
}

// F13: outbound rules see the source before SNAT, and deny there.
func TestNSGOutboundBeforeSNAT(t *testing.T) {
	l := newLabFrom(t, parseLab(t,
		"        addressPrefix: 10.0.1.0/26\n", "        addressPrefix: 10.0.1.0/26\n        networkSecurityGroup: n\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: n
    securityRules:
      - {name: DenyW1ToSQL, priority: 100, direction: Outbound, access: Deny, protocol: Tcp,
         sourceAddressPrefix: 10.0.1.6, destinationPortRange: "1433"}
`), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 43300, "203.0.113.20", 1433, true, false))
	l.devs["azure-sql"].expectNothing(t)
	l.expectDrops(t, DropNSGOutbound, 1)
	l.devs["ase1-w2"].inject(nil, tcpPkt(t, "10.0.1.7", 43301, "203.0.113.20", 1433, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["azure-sql"].recv(t)); src != "192.23.1.2" {
		t.Fatalf("ase1-w2 left with %s", src)
	}
}

// F8: a VM in the ASE's own subnet cannot be reached from the ASE; the ASE
// still reaches its own machines.
func TestASESubnetVMIsolated(t *testing.T) {
	l := newLabFrom(t, parseLab(t,
		"    subnet: vm-subnet\n    privateIPAddress: 10.0.2.4\n", "    subnet: ase1-subnet\n    privateIPAddress: 10.0.1.20\n"), nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 43400, "10.0.1.20", 1433, true, false))
	l.devs["db1"].expectNothing(t)
	l.expectDrops(t, DropASESubnetVM, 1)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 43401, "10.0.1.7", 80, true, false))
	tcpOf(t, l.devs["ase1-w2"].recv(t))
}

// A protocol conntrack does not follow (253, for experiments: RFC 3692)
// meets the NSGs too:
// within the VNet the default rules admit it, and an inbound Deny of
// protocol Any on vm-subnet stops it, packet by packet.
func TestNSGJudgesUntrackedProtocols(t *testing.T) {
	exp := func(src, dst string) []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: 253,
			SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
		return serialize(t, ip, gopacket.Payload([]byte{1, 2, 3, 4, 5, 6, 7, 8}))
	}
	l := newLabFrom(t, parseLab(t,
		"        addressPrefix: 10.0.2.0/24\n", "        addressPrefix: 10.0.2.0/24\n        networkSecurityGroup: vm-nsg\n",
		"networkSecurityGroups: []\n", `networkSecurityGroups:
  - name: vm-nsg
    securityRules:
      - {name: DenyAll, priority: 100, direction: Inbound, access: Deny, protocol: "*"}
`), nil)
	l.devs["db1"].inject(nil, exp("10.0.2.4", "10.0.1.6"))
	// gopacket cannot decode protocol 253's payload, so only the IP layer
	// is checked.
	p := l.devs["ase1-w1"].recv(t).Layer(layers.LayerTypeIPv4)
	if ip, ok := p.(*layers.IPv4); !ok || ip.Protocol != 253 || !header.IPv4(ip.Contents).ChecksumValid() {
		t.Fatalf("ase1-w1 got %v, want protocol 253 with a valid checksum", p)
	}
	l.devs["ase1-w1"].inject(nil, exp("10.0.1.6", "10.0.2.4"))
	l.devs["db1"].expectNothing(t)
	l.expectDrops(t, DropNSGInbound, 1)
}
