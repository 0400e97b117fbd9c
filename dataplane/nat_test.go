package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/topology"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func tcpPkt(t testing.TB, src string, sport uint16, dst string, dport uint16, syn, ack bool) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, Seq: 100, Ack: 200, Window: 65535}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, gopacket.Payload([]byte("hello")))
}

// tcpOf asserts that p is a TCP packet with valid IP and TCP checksums and
// returns its addresses and ports.
func tcpOf(t *testing.T, p gopacket.Packet) (src string, sport uint16, dst string, dport uint16, tcp *layers.TCP) {
	t.Helper()
	ip := checkIPv4(t, p)
	l := p.Layer(layers.LayerTypeTCP)
	if l == nil {
		t.Fatalf("not TCP: %v", p)
	}
	tcp = l.(*layers.TCP)
	sum := header.PseudoHeaderSum(header.ProtoTCP, header.AddrFromSlice(ip.SrcIP), header.AddrFromSlice(ip.DstIP), uint16(len(ip.Payload)))
	if header.Checksum(ip.Payload, sum) != 0xffff {
		t.Fatalf("TCP checksum of %v:%d -> %v:%d is wrong", ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort)
	}
	return ip.SrcIP.String(), uint16(tcp.SrcPort), ip.DstIP.String(), uint16(tcp.DstPort), tcp
}

// F3: a worker calling the Internet leaves with the ASE's VIP, and the
// reply comes back to the worker.
func TestSNATToVIP(t *testing.T) {
	l := newLab(t, nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40000, "203.0.113.10", 80, true, false))
	src, sport, dst, dport, _ := tcpOf(t, l.devs["echo"].recv(t))
	if src != "192.23.1.2" || dst != "203.0.113.10" || dport != 80 {
		t.Fatalf("echo saw %s:%d -> %s:%d, want the VIP 192.23.1.2 as source (F3)", src, sport, dst, dport)
	}
	// F17: ase1-w1, the third of ase1's four machines, has ports 3072-4095
	// of the VIP's own.
	if sport < 3072 || sport > 4095 {
		t.Errorf("SNAT port %d is not one of ase1-w1's, 3072-4095", sport)
	}
	l.devs["echo"].inject(nil, tcpPkt(t, "203.0.113.10", 80, "192.23.1.2", sport, true, true))
	src, sport, dst, dport, _ = tcpOf(t, l.devs["ase1-w1"].recv(t))
	if src != "203.0.113.10" || sport != 80 || dst != "10.0.1.6" || dport != 40000 {
		t.Fatalf("reply reached ase1-w1 as %s:%d -> %s:%d, want 203.0.113.10:80 -> 10.0.1.6:40000", src, sport, dst, dport)
	}
}

// F4: inside the VNet the worker keeps its own address.
func TestNoNATInsideVNet(t *testing.T) {
	l := newLab(t, nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40001, "10.0.2.4", 1433, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["db1"].recv(t)); src != "10.0.1.6" {
		t.Fatalf("db1 saw %s, want 10.0.1.6 (F4: no NAT inside the VNet)", src)
	}
}

// F2: the client reaches a front-end through the VIP with its own address
// kept; the reply leaves from the VIP; closed ports get nothing.
func TestDNATFromVIP(t *testing.T) {
	l := newLab(t, nil)
	for _, port := range []uint16{80, 454} {
		l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 50000+port, "192.23.1.2", port, true, false))
		fe, p := l.recvAny(t, "ase1-fe1", "ase1-fe2")
		src, _, dst, dport, _ := tcpOf(t, p)
		feAddr := map[string]string{"ase1-fe1": "10.0.1.4", "ase1-fe2": "10.0.1.5"}[fe]
		if src != "198.51.100.10" || dst != feAddr || dport != port {
			t.Fatalf("%s saw %s -> %s:%d, want 198.51.100.10 -> %s:%d (F2 keeps the client address)", fe, src, dst, dport, feAddr, port)
		}
		l.devs[fe].inject(nil, tcpPkt(t, feAddr, port, "198.51.100.10", 50000+port, true, true))
		src, sport, _, _, _ := tcpOf(t, l.devs["client"].recv(t))
		if src != "192.23.1.2" || sport != port {
			t.Fatalf("the client got the reply from %s:%d, want the VIP 192.23.1.2:%d", src, sport, port)
		}
	}
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 50022, "192.23.1.2", 22, true, false))
	l.devs["client"].expectNothing(t) // dropped silently: no RST, no ICMP
	l.expectDrops(t, DropPortClosed, 1)
	// The VIP's services are TCP's: UDP to an open TCP port is closed too.
	l.devs["client"].inject(nil, udpDatagram(t, "198.51.100.10", 50443, "192.23.1.2", 443, 1, 32))
	l.devs["client"].expectNothing(t)
	l.devs["ase1-fe1"].expectNothing(t)
	l.devs["ase1-fe2"].expectNothing(t)
	l.expectDrops(t, DropPortClosed, 2)
}

// F5: ase1 calling ase2's VIP arrives at ase2 from ase1's VIP.
func TestASEToASEHairpin(t *testing.T) {
	l := newLab(t, nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40002, "192.23.2.2", 80, true, false))
	_, p := l.recvAny(t, "ase2-fe1", "ase2-fe2")
	src, sport, dst, _, _ := tcpOf(t, p)
	if src != "192.23.1.2" || !strings.HasPrefix(dst, "10.0.3.") {
		t.Fatalf("ase2 saw %s -> %s, want 192.23.1.2 -> an ase2 front-end (F5)", src, dst)
	}
	l.devs[map[string]string{"10.0.3.4": "ase2-fe1", "10.0.3.5": "ase2-fe2"}[dst]].inject(nil,
		tcpPkt(t, dst, 80, "192.23.1.2", sport, true, true))
	src, sport, dst, dport, _ := tcpOf(t, l.devs["ase1-w1"].recv(t))
	if src != "192.23.2.2" || sport != 80 || dst != "10.0.1.6" || dport != 40002 {
		t.Fatalf("reply reached ase1-w1 as %s:%d -> %s:%d, want 192.23.2.2:80 -> 10.0.1.6:40002", src, sport, dst, dport)
	}
}

// F7: the ILB address serves the VNet, not the Internet; ase3 leaves with
// its public VIP, which answers only management.
func TestILB(t *testing.T) {
	l := newLab(t, nil)
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 40003, "10.0.4.8", 80, true, false))
	l.recvAny(t, "ase3-fe1", "ase3-fe2")
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 40004, "10.0.4.8", 80, true, false))
	l.devs["client"].expectNothing(t)
	l.expectDrops(t, DropInternetToPrivate, 1)
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 40005, "192.23.3.2", 80, true, false))
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 40006, "192.23.3.2", 454, true, false))
	l.recvAny(t, "ase3-fe1", "ase3-fe2") // management on ase3's public VIP
	l.expectDrops(t, DropPortClosed, 1)  // ase3's VIP: port 80 is closed in mode Web, Publishing
	l.devs["ase3-w1"].inject(nil, tcpPkt(t, "10.0.4.6", 40007, "203.0.113.10", 80, true, false))
	if src, _, _, _, _ := tcpOf(t, l.devs["echo"].recv(t)); src != "192.23.3.2" {
		t.Fatalf("ase3 left with %s, want its public VIP 192.23.3.2", src)
	}
}

// Ping through SNAT: the echo identifier is translated and back.
func TestPingThroughSNAT(t *testing.T) {
	l := newLab(t, nil)
	l.devs["ase1-w1"].inject(nil, icmpEcho(t, "10.0.1.6", "203.0.113.10"))
	p := l.devs["echo"].recv(t)
	ip := checkIPv4(t, p)
	icmp := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.SrcIP.String() != "192.23.1.2" || header.Checksum(ip.Payload, 0) != 0xffff {
		t.Fatalf("echo request arrived from %v (ICMP checksum ok: %v)", ip.SrcIP, header.Checksum(ip.Payload, 0) == 0xffff)
	}
	reply := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: ip.DstIP, DstIP: ip.SrcIP}
	r := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: icmp.Id, Seq: icmp.Seq}
	l.devs["echo"].inject(nil, serialize(t, reply, r, gopacket.Payload(icmp.Payload)))
	p = l.devs["ase1-w1"].recv(t)
	ip = checkIPv4(t, p)
	got := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.DstIP.String() != "10.0.1.6" || got.Id != 7 || header.Checksum(ip.Payload, 0) != 0xffff {
		t.Fatalf("echo reply reached %v with id %d, want 10.0.1.6 with id 7 and a valid checksum", ip.DstIP, got.Id)
	}
}

// An ICMP error from the Internet about a SNATed flow is translated back to
// the worker, embedded header included (traceroute, path MTU discovery).
func TestICMPErrorThroughSNAT(t *testing.T) {
	l := newLab(t, nil)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40008, "203.0.113.10", 81, true, false))
	seen := l.devs["echo"].recv(t)
	orig := checkIPv4(t, seen)
	buf := make([]byte, 600)
	n := header.BuildICMPError(buf, header.AddrFromSlice(orig.DstIP), header.ICMPDestUnreachable, header.ICMPPortUnreachable, 0, header.IPv4(orig.Contents[:len(orig.Contents)+len(orig.Payload)]))
	l.devs["echo"].inject(nil, buf[:n])
	p := l.devs["ase1-w1"].recv(t)
	ip := checkIPv4(t, p)
	if ip.DstIP.String() != "10.0.1.6" || header.Checksum(ip.Payload, 0) != 0xffff {
		t.Fatalf("ICMP error reached %v (checksum ok %v), want 10.0.1.6", ip.DstIP, header.Checksum(ip.Payload, 0) == 0xffff)
	}
	inner := header.IPv4(p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).Payload)
	if inner.Src().String() != "10.0.1.6" || !inner.ChecksumValid() {
		t.Fatalf("embedded header says source %v (checksum ok %v), want 10.0.1.6", inner.Src(), inner.ChecksumValid())
	}
}

// F17: with two SNAT ports for each machine, a worker's third connection
// is refused with a RST while its first two keep working, and the other
// worker still gets ports of its own.
func TestSNATPoolExhaustion(t *testing.T) {
	yaml := strings.Replace(string(topology.DefaultYAML()), "    virtualIp: 192.23.1.2\n",
		"    virtualIp: 192.23.1.2\n    snatPortRange: 50000-50007\n    allocatedOutboundPorts: 2\n", 1)
	topo, err := topology.Parse("pool.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	l := newLabFrom(t, topo, nil)
	w1, echo := l.devs["ase1-w1"], l.devs["echo"]
	var ports []uint16
	for i := uint16(0); i < 2; i++ {
		w1.inject(nil, tcpPkt(t, "10.0.1.6", 40100+i, "203.0.113.10", 80, true, false))
		_, sport, _, _, _ := tcpOf(t, echo.recv(t))
		if sport != 50004 && sport != 50005 {
			t.Fatalf("SNAT port %d is not one of ase1-w1's, 50004-50005", sport)
		}
		ports = append(ports, sport)
	}
	w1.inject(nil, tcpPkt(t, "10.0.1.6", 40102, "203.0.113.10", 80, true, false))
	src, _, dst, dport, tcp := tcpOf(t, w1.recv(t))
	if !tcp.RST || src != "203.0.113.10" || dst != "10.0.1.6" || dport != 40102 {
		t.Fatalf("third connection: want a RST from 203.0.113.10 to 10.0.1.6:40102, got %s -> %s:%d %+v", src, dst, dport, tcp)
	}
	echo.expectNothing(t)
	l.expectDrops(t, DropSNATExhausted, 1)
	for i, p := range ports {
		echo.inject(nil, tcpPkt(t, "203.0.113.10", 80, "192.23.1.2", p, false, true))
		if _, _, _, dport, _ := tcpOf(t, w1.recv(t)); dport != 40100+uint16(i) {
			t.Fatalf("existing flow %d broke: reply went to port %d", i, dport)
		}
	}
	l.devs["ase1-w2"].inject(nil, tcpPkt(t, "10.0.1.7", 40100, "203.0.113.10", 80, true, false))
	if _, sport, _, _, _ := tcpOf(t, echo.recv(t)); sport != 50006 && sport != 50007 {
		t.Fatalf("ase1-w2 left with port %d, want one of its own, 50006-50007", sport)
	}
}

// The Internet cannot reach private addresses.
func TestInternetCannotReachPrivate(t *testing.T) {
	l := newLab(t, nil)
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 40009, "10.0.1.6", 80, true, false))
	l.devs["ase1-w1"].expectNothing(t)
	l.expectDrops(t, DropInternetToPrivate, 1)
}

// A GSO super-packet with a partial checksum (virtio NEEDS_CSUM: the TCP
// field holds the pseudo-header sum and the receiving kernel finishes it)
// leaves SNATed whole, its partial sum updated for the new source, so the
// checksum the receiver completes is valid (issues 3 and 6).
func TestGSOPartialChecksumThroughSNAT(t *testing.T) {
	l := newLab(t, nil)
	pkt := tcpPkt(t, "10.0.1.6", 40010, "203.0.113.10", 80, false, true)
	pkt = append(pkt[:len(pkt)-5], make([]byte, 30000)...) // a 30 kB segment
	ip := header.IPv4(pkt)
	ip.SetTotalLen(uint16(len(pkt)))
	tcp := header.TCP(ip.Payload())
	tcp.SetChecksum(fold(header.PseudoHeaderSum(header.ProtoTCP, ip.Src(), ip.Dst(), uint16(len(tcp)))))
	vnet := gsoTCPHeader()
	l.devs["ase1-w1"].inject(vnet, pkt)

	var b []byte
	select {
	case b = <-l.devs["echo"].out:
	case <-timeout():
		t.Fatal("the super-packet did not reach echo")
	}
	if got := header.VirtioNetHdr(b[:header.VirtioNetHdrLen]); got.GSOType() != header.GSOTCPv4 || got.GSOSize() != 1448 || !got.NeedsCsum() {
		t.Fatalf("virtio-net header changed: %x", b[:header.VirtioNetHdrLen])
	}
	out := header.IPv4(b[header.VirtioNetHdrLen:])
	if out.Src().String() != "192.23.1.2" || len(out) != len(pkt) || !out.ChecksumValid() {
		t.Fatalf("super-packet left from %v, %d bytes (want 192.23.1.2, %d), IP checksum ok %v", out.Src(), len(out), len(pkt), out.ChecksumValid())
	}
	// Finish the checksum as the receiving kernel does, then verify it with
	// gopacket against the packet's new addresses.
	seg := header.TCP(out.Payload())
	seg.SetChecksum(^header.Checksum(seg, 0))
	p := gopacket.NewPacket(out, layers.LayerTypeIPv4, gopacket.Default)
	tl := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	tl.SetNetworkLayerForChecksum(p.NetworkLayer())
	err, res := tl.VerifyChecksum()
	if err != nil {
		t.Fatalf("completed TCP checksum: %v", err)
	}
	if !res.Valid {
		t.Fatalf("after SNAT the partial checksum no longer completes to a valid one (got %#04x, want %#04x)", res.Actual, res.Correct)
	}
}

// fold folds a 32-bit one's complement sum to 16 bits, not inverted: the
// form of a partial checksum.
func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// A VM's public IP is a 1:1 NAT both ways: the Internet reaches the VM
// through it, and the VM leaves with it, its ports kept.
func TestVMPublicIP(t *testing.T) {
	l := newLabFrom(t, parseLab(t, "    privateIPAddress: 10.0.2.4\n", "    privateIPAddress: 10.0.2.4\n    publicIPAddress: 20.1.2.3\n"), nil)
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 44000, "20.1.2.3", 1433, true, false))
	src, _, dst, dport, _ := tcpOf(t, l.devs["db1"].recv(t))
	if src != "198.51.100.10" || dst != "10.0.2.4" || dport != 1433 {
		t.Fatalf("inbound to the public IP reached db1 as %s -> %s:%d, want 198.51.100.10 -> 10.0.2.4:1433", src, dst, dport)
	}
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 44001, "203.0.113.10", 80, true, false))
	if src, sport, _, _, _ := tcpOf(t, l.devs["echo"].recv(t)); src != "20.1.2.3" || sport != 44001 {
		t.Fatalf("db1 left as %s:%d, want its public IP 20.1.2.3:44001", src, sport)
	}
}

// F7, mode "Publishing": only FTP is on the ILB address; HTTP stays on the
// public VIP.
func TestILBPublishingMode(t *testing.T) {
	l := newLabFrom(t, parseLab(t, "    internalLoadBalancingMode: Web, Publishing\n", "    internalLoadBalancingMode: Publishing\n"), nil)
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 44100, "10.0.4.8", 21, true, false))
	l.recvAny(t, "ase3-fe1", "ase3-fe2") // FTP on the ILB address
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 44101, "192.23.3.2", 80, true, false))
	l.recvAny(t, "ase3-fe1", "ase3-fe2") // HTTP on the public VIP
	l.devs["db1"].inject(nil, tcpPkt(t, "10.0.2.4", 44102, "10.0.4.8", 80, true, false))
	l.devs["ase3-fe1"].expectNothing(t)
	l.devs["ase3-fe2"].expectNothing(t)
	l.expectDrops(t, DropPortClosed, 1)
}

// F17: IP flow verify names a port of the machine's own share as the one
// its flow leaves from, since the flow can have no other; a flow that is
// not translated keeps its port.
func TestVerifyNamesThePortShare(t *testing.T) {
	l := newLab(t, nil)
	for _, c := range []struct {
		from, to string
		want     string
	}{
		{"ase1-w1", "203.0.113.10", "192.23.1.2:3072 -> 203.0.113.10:80"}, // the third of ase1's machines
		{"ase1-fe1", "203.0.113.10", "192.23.1.2:1024 -> 203.0.113.10:80"},
		{"ase1-w1", "10.0.2.4", "10.0.1.6:49152 -> 10.0.2.4:80"},
	} {
		r, err := l.e.Verify(VerifyQuery{From: c.from, To: netip.MustParseAddr(c.to), Port: 80, Proto: header.ProtoTCP})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Translation, c.want) {
			t.Errorf("verify %s -> %s:80 leaves as %q, want %s", c.from, c.to, r.Translation, c.want)
		}
	}
}

// IP flow verify names what drops a flow that no NSG decides: a closed VIP
// port is the load balancer's doing, not some anonymous "dataplane".
func TestVerifyNamesWhatDrops(t *testing.T) {
	l := newLab(t, nil)
	r, err := l.e.Verify(VerifyQuery{From: "client", To: netip.MustParseAddr("192.23.1.2"), Port: 81, Proto: header.ProtoTCP})
	if err != nil {
		t.Fatal(err)
	}
	if want := "dropped by the load balancer: port-closed"; r.Allow || r.Reason != "port-closed" || r.Decision != want {
		t.Errorf("verify client -> VIP:81: allow %v, reason %q, decision %q; want %q", r.Allow, r.Reason, r.Decision, want)
	}
}

// IP flow verify answers for a gateway address as the dataplane does: it
// answers a ping, refuses the rest, and the Internet does not reach a
// VNet's gateway. It said "no node holds 10.0.1.1" while ping answered.
func TestVerifyGateway(t *testing.T) {
	l := newLab(t, nil)
	for _, c := range []struct {
		from  string
		proto uint8
		allow bool
		why   string
	}{
		{"db1", header.ProtoICMP, true, ""},
		{"db1", header.ProtoTCP, false, "to-gateway"},
		{"client", header.ProtoICMP, false, "internet-to-private"},
	} {
		r, err := l.e.Verify(VerifyQuery{From: c.from, To: netip.MustParseAddr("10.0.1.1"), Port: 80, Proto: c.proto})
		if err != nil {
			t.Fatal(err)
		}
		if r.Allow != c.allow || r.Reason != c.why {
			t.Errorf("verify %s -> 10.0.1.1 proto %d: allow %v, reason %q (%s); want allow %v, reason %q", c.from, c.proto, r.Allow, r.Reason, r.Decision, c.allow, c.why)
		}
	}
}

// F17 with apply: a new allocatedOutboundPorts shares the pool out again,
// and a worker whose share ran dry gets ports from its new one while its
// flows keep the ports they hold.
func TestReconfigureSharesPortsAgain(t *testing.T) {
	share := func(n int) *topology.Topology {
		return parseLab(t, "    virtualIp: 192.23.1.2\n",
			fmt.Sprintf("    virtualIp: 192.23.1.2\n    snatPortRange: 50000-50015\n    allocatedOutboundPorts: %d\n", n))
	}
	l := newLabFrom(t, share(2), nil)
	w1, echo := l.devs["ase1-w1"], l.devs["echo"]
	connect := func(sport uint16) (uint16, bool) {
		w1.inject(nil, tcpPkt(t, "10.0.1.6", sport, "203.0.113.10", 80, true, false))
		select {
		case p := <-echo.out:
			_, port, _, _, _ := tcpOf(t, gopacket.NewPacket(p[header.VirtioNetHdrLen:], layers.LayerTypeIPv4, gopacket.Default))
			return port, true
		case <-w1.out: // the RST that refuses it
			return 0, false
		case <-timeout():
			t.Fatal("nothing came out")
		}
		return 0, false
	}
	for i, want := range []uint16{50004, 50005, 0} {
		if port, _ := connect(41000 + uint16(i)); port != want {
			t.Fatalf("connection %d of ase1-w1 left from port %d, want %d (0: refused)", i, port, want)
		}
	}
	if err := l.e.Reconfigure(share(4), nil, nil); err != nil {
		t.Fatal(err)
	}
	if port, ok := connect(41003); !ok || port < 50008 || port > 50011 {
		t.Fatalf("after apply, ase1-w1 left from port %d (%v), want one of its new share 50008-50011", port, ok)
	}
	echo.inject(nil, tcpPkt(t, "203.0.113.10", 80, "192.23.1.2", 50004, false, true))
	if _, _, _, dport, _ := tcpOf(t, w1.recv(t)); dport != 41000 {
		t.Fatalf("a flow from before the apply broke: its reply reached port %d", dport)
	}
}

// A new flow whose translated tuple is already a live flow's is refused as
// a NAT conflict, not as a full flow table: db1 reaches both of ase3's
// front-ends directly from port 40200, so the ILB's flow from that port
// would reach one of them looking like a connection it already has. A
// user told "conntrack-full" would raise maxFlows to no avail.
func TestNATConflictIsNotTableFull(t *testing.T) {
	l := newLab(t, nil)
	db1 := l.devs["db1"]
	for fe, addr := range map[string]string{"ase3-fe1": "10.0.4.4", "ase3-fe2": "10.0.4.5"} {
		db1.inject(nil, tcpPkt(t, "10.0.2.4", 40200, addr, 80, true, false))
		l.devs[fe].recv(t)
	}
	db1.inject(nil, tcpPkt(t, "10.0.2.4", 40200, "10.0.4.8", 80, true, false))
	l.expectDrops(t, DropNATConflict, 1)
	if n := l.e.Drops(DropConntrackFull); n != 0 {
		t.Errorf("%d conntrack-full drops with a table of %d flows; want the conflict counted as nat-conflict", n, l.e.NAT().Flows)
	}
	if st := l.e.NAT(); st.Conflicts != 1 || st.TableFull != 0 {
		t.Errorf("status counts %d conflicts and %d table-full refusals; want 1 and 0", st.Conflicts, st.TableFull)
	}
}

// A connection a node accepted leads back to where it was dialled from,
// before NAT (the services' budget exempts the lab's own health checks
// by it): through SNAT (F3), DNAT on a VIP (F2), and both (F5). The
// accepted socket's remote and local addresses are all it has.
func TestOriginalSource(t *testing.T) {
	l := newLab(t, nil)
	ap := netip.MustParseAddrPort
	origin := func(remote, local netip.AddrPort) string {
		t.Helper()
		from, ok := l.e.OriginalSource(header.ProtoTCP, remote, local)
		if !ok {
			return "none"
		}
		return from.String()
	}

	// F3: echo sees ase1's VIP.
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40000, "203.0.113.10", 80, true, false))
	_, sport, _, _, _ := tcpOf(t, l.devs["echo"].recv(t))
	vip := netip.AddrPortFrom(netip.MustParseAddr("192.23.1.2"), sport)
	if got := origin(vip, ap("203.0.113.10:80")); got != "10.0.1.6:40000" {
		t.Errorf("echo's connection from %s: dialled from %s, want ase1-w1's 10.0.1.6:40000", vip, got)
	}

	// F2: a front-end sees the client's own address, through the VIP.
	l.devs["azure-mgmt"].inject(nil, tcpPkt(t, "203.0.113.40", 50454, "192.23.1.2", 454, true, false))
	fe, p := l.recvAny(t, "ase1-fe1", "ase1-fe2")
	_, _, dst, _, _ := tcpOf(t, p)
	if got := origin(ap("203.0.113.40:50454"), netip.AddrPortFrom(netip.MustParseAddr(dst), 454)); got != "203.0.113.40:50454" {
		t.Errorf("%s's connection from azure-mgmt through the VIP: dialled from %s, want 203.0.113.40:50454", fe, got)
	}

	// F5: ase2 sees ase1's VIP, on its own front-end's address.
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40002, "192.23.2.2", 80, true, false))
	_, p = l.recvAny(t, "ase2-fe1", "ase2-fe2")
	_, sport, dst, _, _ = tcpOf(t, p)
	vip = netip.AddrPortFrom(netip.MustParseAddr("192.23.1.2"), sport)
	if got := origin(vip, netip.AddrPortFrom(netip.MustParseAddr(dst), 80)); got != "10.0.1.6:40002" {
		t.Errorf("ase2's connection from %s: dialled from %s, want ase1-w1's 10.0.1.6:40002", vip, got)
	}

	// Nothing but an accepting socket's view of a live flow answers: not
	// the dialler's own view of it, another protocol, nor a flow that
	// never was.
	if got := origin(ap("203.0.113.10:80"), ap("10.0.1.6:40000")); got != "none" {
		t.Errorf("the dialler's own view of its flow: dialled from %s, want none", got)
	}
	if from, ok := l.e.OriginalSource(header.ProtoUDP, vip, netip.AddrPortFrom(netip.MustParseAddr(dst), 80)); ok {
		t.Errorf("a UDP socket on a TCP flow's addresses: dialled from %s, want none", from)
	}
	if got := origin(ap("192.23.1.2:1"), ap("203.0.113.10:80")); got != "none" {
		t.Errorf("a flow that never was: dialled from %s, want none", got)
	}
}
