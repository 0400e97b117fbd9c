package dataplane

import (
	"net"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

// fragments splits whole, an IPv4 packet gopacket built with its
// checksums, the way a sender's kernel does: payload chunks of size bytes
// (a multiple of 8) under copies of its header with the offset and MF set.
func fragments(t testing.TB, whole []byte, size int) [][]byte {
	t.Helper()
	p := gopacket.NewPacket(whole, layers.LayerTypeIPv4, gopacket.DecodeOptions{NoCopy: true, Lazy: true})
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	var out [][]byte
	for off := 0; off < len(ip.Payload); off += size {
		end := min(off+size, len(ip.Payload))
		f := &layers.IPv4{Version: 4, TTL: ip.TTL, Protocol: ip.Protocol, Id: ip.Id, SrcIP: ip.SrcIP, DstIP: ip.DstIP,
			Options: ip.Options, FragOffset: uint16(off / 8)}
		if end < len(ip.Payload) {
			f.Flags = layers.IPv4MoreFragments
		}
		out = append(out, serialize(t, f, gopacket.Payload(ip.Payload[off:end])))
	}
	return out
}

func udpDatagram(t testing.TB, src string, sport uint16, dst string, dport uint16, id uint16, payload int) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Id: id,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return serialize(t, ip, udp, gopacket.Payload(data))
}

// reassemble receives n fragments at node, checks each one's IP checksum,
// and returns the datagram the node's stack would rebuild from them.
func (l *lab) reassemble(t *testing.T, node string, n int) *layers.IPv4 {
	t.Helper()
	d := ip4defrag.NewIPv4Defragmenter()
	var whole *layers.IPv4
	for i := 0; i < n; i++ {
		ip := checkIPv4(t, l.devs[node].recv(t))
		if ip.Flags&layers.IPv4MoreFragments == 0 && ip.FragOffset == 0 {
			t.Fatalf("%s got an unfragmented packet, want fragment %d of %d", node, i+1, n)
		}
		got, err := d.DefragIPv4(ip)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			whole = got
		}
	}
	if whole == nil {
		t.Fatalf("%s: %d fragments do not make a datagram", node, n)
	}
	return whole
}

// udpOfDatagram checks the UDP checksum of a reassembled datagram, which
// the dataplane fixed in the first fragment only, and returns the header.
func udpOfDatagram(t *testing.T, ip *layers.IPv4) (src string, sport uint16, dst string, dport uint16) {
	t.Helper()
	sum := header.PseudoHeaderSum(header.ProtoUDP, header.AddrFromSlice(ip.SrcIP.To4()), header.AddrFromSlice(ip.DstIP.To4()), uint16(len(ip.Payload)))
	if header.Checksum(ip.Payload, sum) != 0xffff {
		t.Fatalf("UDP checksum of the reassembled datagram %v -> %v is wrong", ip.SrcIP, ip.DstIP)
	}
	u, r := header.ParseUDP(ip.Payload)
	if r != header.OK {
		t.Fatalf("reassembled datagram: %v", r)
	}
	return ip.SrcIP.String(), u.SrcPort(), ip.DstIP.String(), u.DstPort()
}

// F3 for a fragmented datagram: every fragment leaves with the VIP, the
// first with its UDP checksum fixed for the whole datagram; the fragmented
// reply finds its way back to the worker.
func TestFragmentsFollowSNAT(t *testing.T) {
	l := newLab(t, nil)
	for _, f := range fragments(t, udpDatagram(t, "10.0.1.6", 40000, "203.0.113.10", 53, 0x1111, 4000), 1480) {
		l.devs["ase1-w1"].inject(nil, f)
	}
	src, sport, dst, dport := udpOfDatagram(t, l.reassemble(t, "echo", 3))
	if src != "192.23.1.2" || dst != "203.0.113.10" || dport != 53 {
		t.Fatalf("echo got %s:%d -> %s:%d, want the VIP as source (F3)", src, sport, dst, dport)
	}
	for _, f := range fragments(t, udpDatagram(t, "203.0.113.10", 53, "192.23.1.2", sport, 0x2222, 3000), 1024) {
		l.devs["echo"].inject(nil, f)
	}
	src, sport, dst, dport = udpOfDatagram(t, l.reassemble(t, "ase1-w1", 3))
	if src != "203.0.113.10" || sport != 53 || dst != "10.0.1.6" || dport != 40000 {
		t.Fatalf("reply reached ase1-w1 as %s:%d -> %s:%d, want 203.0.113.10:53 -> 10.0.1.6:40000", src, sport, dst, dport)
	}
}

// DNAT for a fragmented datagram, through a VM's public IP (an ASE's VIP
// carries only TCP, F2): a duplicate and an overlapping fragment follow
// the verdict too.
func TestFragmentsFollowDNATWithOverlaps(t *testing.T) {
	l := newLabFrom(t, parseLab(t, "    privateIPAddress: 10.0.2.4\n", "    privateIPAddress: 10.0.2.4\n    publicIPAddress: 20.1.2.3\n"), nil)
	frags := fragments(t, udpDatagram(t, "198.51.100.10", 50000, "20.1.2.3", 443, 0x3333, 2000), 1024)
	overlap := fragments(t, udpDatagram(t, "198.51.100.10", 50000, "20.1.2.3", 443, 0x3333, 2000), 512)[1] // bytes 512-1023 again
	for _, f := range [][]byte{frags[0], overlap, frags[1], frags[1]} {
		l.devs["client"].inject(nil, f)
	}
	for i := range 4 {
		ip := checkIPv4(t, l.devs["db1"].recv(t))
		if ip.SrcIP.String() != "198.51.100.10" || ip.DstIP.String() != "10.0.2.4" || ip.Id != 0x3333 {
			t.Fatalf("fragment %d reached db1 as %v -> %v id %#x, want 198.51.100.10 -> 10.0.2.4", i, ip.SrcIP, ip.DstIP, ip.Id)
		}
	}
}

// Fragments of a datagram the policy refuses all stay out: the first under
// the policy's reason, the rest because their first fragment did not pass.
// Later fragments with no first fragment at all are dropped alike.
func TestFragmentsFollowRefusal(t *testing.T) {
	l := newLab(t, nil)
	frags := fragments(t, udpDatagram(t, "198.51.100.10", 50000, "192.23.1.2", 9999, 0x4444, 3000), 1024)
	for _, f := range frags {
		l.devs["client"].inject(nil, f)
	}
	orphan := fragments(t, udpDatagram(t, "10.0.2.4", 40000, "10.0.1.6", 53, 0x5555, 3000), 1024)
	for _, f := range orphan[1:] {
		l.devs["db1"].inject(nil, f)
	}
	l.expectDrops(t, DropPortClosed, 1)
	l.expectDrops(t, DropFragNoFirst, 4)
	for _, n := range []string{"ase1-fe1", "ase1-fe2", "ase1-w1"} {
		l.devs[n].expectNothing(t)
	}
}

// RFC 1858: a first fragment too short for the ports and TCP header, and a
// TCP fragment at offset 8 that could rewrite the flags, are dropped; so is
// the rest of a datagram whose first fragment was.
func TestTinyFragments(t *testing.T) {
	l := newLab(t, nil)
	syn := tcpSYN(t, "10.0.2.4", "10.0.1.6", 64, 100)
	header.IPv4(syn)[6] = 0 // clear DF
	tiny := fragments(t, syn, 8)
	l.devs["db1"].inject(nil, tiny[0]) // 8 bytes: ports, but not the TCP header
	l.devs["db1"].inject(nil, tiny[1]) // offset 8, over the TCP flags
	l.devs["db1"].inject(nil, tiny[2]) // offset 16: its first fragment was dropped
	l.expectDrops(t, DropFragTiny, 2)
	l.expectDrops(t, DropFragNoFirst, 1)

	whole := fragments(t, syn, 24) // a full TCP header first, then an offset-8 overlap
	l.devs["db1"].inject(nil, whole[0])
	checkIPv4(t, l.devs["ase1-w1"].recv(t))
	l.devs["db1"].inject(nil, tiny[1])
	l.expectDrops(t, DropFragTiny, 3)
	l.devs["ase1-w1"].expectNothing(t)
}

// A large ping (ping -s 3000) through the default outbound SNAT: ICMP echo
// fragments follow the echo flow both ways.
func TestFragmentedPing(t *testing.T) {
	l := newLab(t, nil)
	echo := func(src, dst string, typ uint8, id uint16) []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, Id: id,
			SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: 7, Seq: 1}
		return serialize(t, ip, icmp, gopacket.Payload(make([]byte, 3000)))
	}
	for _, f := range fragments(t, echo("10.0.2.4", "203.0.113.10", layers.ICMPv4TypeEchoRequest, 0x6666), 1480) {
		l.devs["db1"].inject(nil, f)
	}
	req := l.reassemble(t, "echo", 3)
	if req.SrcIP.String() != "192.0.2.1" || header.Checksum(req.Payload, 0) != 0xffff {
		t.Fatalf("echo request reached echo from %v (want the default outbound 192.0.2.1) or with a bad ICMP checksum", req.SrcIP)
	}
	id := header.ICMPv4(req.Payload).Ident()
	reply := echo("203.0.113.10", "192.0.2.1", layers.ICMPv4TypeEchoReply, 0x7777)
	header.ICMPv4(header.IPv4(reply).Payload()).SetIdent(id)
	for _, f := range fragments(t, reply, 1480) {
		l.devs["echo"].inject(nil, f)
	}
	rep := l.reassemble(t, "db1", 3)
	if rep.DstIP.String() != "10.0.2.4" || header.ICMPv4(rep.Payload).Ident() != 7 || header.Checksum(rep.Payload, 0) != 0xffff {
		t.Fatalf("echo reply reached db1 as %v id %d, or with a bad ICMP checksum", rep.DstIP, header.ICMPv4(rep.Payload).Ident())
	}
}

// The fragment table is a fixed array: a flood of first fragments evicts
// the oldest, and nothing grows.
func TestFragmentTableBounded(t *testing.T) {
	var ft fragTable
	now := int64(1)
	for i := range 1000 {
		k := fragKey{src: header.Addr(i), dst: 2, id: uint16(i), proto: header.ProtoUDP}
		ft.put(k, nat.Key{SrcPort: uint16(i)}, now)
		if _, ok := ft.get(k, now); !ok {
			t.Fatalf("entry %d not found right after put", i)
		}
	}
	if n := ft.live(now); n > fragSlots {
		t.Fatalf("%d live entries, more than the %d slots", n, fragSlots)
	}
	if n := ft.live(now + fragTimeout); n != 0 {
		t.Fatalf("%d entries live after the timeout", n)
	}
}

// What the malformed-packet integration test sends, at the engine level:
// source-routed and broken IP options, a TCP data offset past the segment,
// and an ICMP error quoting nonsense are each dropped under their reason,
// while harmless options pass.
func TestMalformedOptionsL4AndICMP(t *testing.T) {
	l := newLab(t, nil)
	db1 := l.devs["db1"]
	withOpts := func(opts ...byte) []byte {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.ParseIP("10.0.2.4").To4(), DstIP: net.ParseIP("10.0.1.6").To4(),
			Options: []layers.IPv4Option{{OptionType: opts[0], OptionLength: opts[1], OptionData: opts[2:]}}}
		udp := &layers.UDP{SrcPort: 40000, DstPort: 7000}
		udp.SetNetworkLayerForChecksum(ip)
		return serialize(t, ip, udp, gopacket.Payload("options"))
	}
	db1.inject(nil, withOpts(0x83, 7, 4, 10, 0, 1, 1)) // loose source route
	broken := withOpts(7, 7, 4, 0, 0, 0, 0)            // record route ...
	broken[21] = 40                                    // ... whose length runs past the header
	header.IPv4(broken).SetChecksum(header.IPv4(broken).ComputeChecksum())
	db1.inject(nil, broken)
	badOff := tcpSYN(t, "10.0.2.4", "10.0.1.6", 64, 0)
	badOff[20+12] = 0xf0 // 60 bytes of header in a 20-byte segment
	db1.inject(nil, badOff)
	nonsense := serialize(t, &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.ParseIP("10.0.2.4").To4(), DstIP: net.ParseIP("10.0.1.6").To4()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, 3)},
		gopacket.Payload("this is no IPv4 header at all"))
	db1.inject(nil, nonsense)
	l.expectDrops(t, DropBadIPOptions, 2)
	l.expectDrops(t, DropBadL4, 1)
	l.expectDrops(t, DropICMPBadQuote, 1)
	l.devs["ase1-w1"].expectNothing(t)

	db1.inject(nil, withOpts(7, 7, 4, 0, 0, 0, 0)) // record route: passes untouched
	if ip := checkIPv4(t, l.devs["ase1-w1"].recv(t)); len(ip.Options) == 0 || ip.Options[0].OptionType != 7 {
		t.Fatalf("record-route option lost in transit: %+v", ip.Options)
	}
}
