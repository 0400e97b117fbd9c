package header

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func TestTCPAccessorsMatchGopacket(t *testing.T) {
	pkt := tcpPacket(t, clientAddr, vipAddr, 40000, 8443, []byte("hello"))
	v, _ := ParseIPv4(pkt)
	tcp, r := ParseTCP(v.Payload())
	if r != OK {
		t.Fatalf("ParseTCP: %v", r)
	}
	d := decode(t, pkt).Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp.SrcPort() != uint16(d.SrcPort) || tcp.DstPort() != uint16(d.DstPort) || tcp.Seq() != d.Seq ||
		tcp.Ack() != d.Ack || tcp.DataOffset() != int(d.DataOffset)*4 || tcp.Window() != d.Window ||
		tcp.Checksum() != d.Checksum || string(tcp.Payload()) != "hello" {
		t.Errorf("view reads %d>%d seq %#x ack %#x off %d win %d csum %#x %q; gopacket %d>%d %#x %#x %d %d %#x %q",
			tcp.SrcPort(), tcp.DstPort(), tcp.Seq(), tcp.Ack(), tcp.DataOffset(), tcp.Window(), tcp.Checksum(), tcp.Payload(),
			d.SrcPort, d.DstPort, d.Seq, d.Ack, d.DataOffset*4, d.Window, d.Checksum, d.Payload)
	}
	if want := TCPFlagACK | TCPFlagPSH; tcp.Flags() != want {
		t.Errorf("flags %#02x, want ACK|PSH %#02x", tcp.Flags(), want)
	}
	// Each flag bit where gopacket puts it.
	for _, f := range []struct {
		bit uint8
		set func(*layers.TCP)
	}{
		{TCPFlagFIN, func(l *layers.TCP) { l.FIN = true }},
		{TCPFlagSYN, func(l *layers.TCP) { l.SYN = true }},
		{TCPFlagRST, func(l *layers.TCP) { l.RST = true }},
		{TCPFlagPSH, func(l *layers.TCP) { l.PSH = true }},
		{TCPFlagACK, func(l *layers.TCP) { l.ACK = true }},
		{TCPFlagURG, func(l *layers.TCP) { l.URG = true }},
		{TCPFlagECE, func(l *layers.TCP) { l.ECE = true }},
		{TCPFlagCWR, func(l *layers.TCP) { l.CWR = true }},
	} {
		ipl := ipv4Layer(layers.IPProtocolTCP, clientAddr, vipAddr)
		l := &layers.TCP{SrcPort: 1, DstPort: 2}
		f.set(l)
		_ = l.SetNetworkLayerForChecksum(ipl)
		if got := TCP(IPv4(serialize(t, ipl, l)).Payload()).Flags(); got != f.bit {
			t.Errorf("flag %#02x: view reads %#02x", f.bit, got)
		}
	}
}

func TestUDPAndICMPAccessorsMatchGopacket(t *testing.T) {
	pkt := udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("query"))
	u, r := ParseUDP(IPv4(pkt).Payload())
	d := decode(t, pkt).Layer(layers.LayerTypeUDP).(*layers.UDP)
	if r != OK || u.SrcPort() != uint16(d.SrcPort) || u.DstPort() != uint16(d.DstPort) ||
		u.Length() != d.Length || u.Checksum() != d.Checksum || string(u.Payload()) != "query" {
		t.Errorf("UDP view %v: %d>%d len %d csum %#x %q; gopacket %d>%d %d %#x",
			r, u.SrcPort(), u.DstPort(), u.Length(), u.Checksum(), u.Payload(), d.SrcPort, d.DstPort, d.Length, d.Checksum)
	}

	pkt = echoRequest(t, clientAddr, vipAddr, 0x4242, 7, []byte("ping"))
	m, r := ParseICMPv4(IPv4(pkt).Payload())
	di := decode(t, pkt).Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if r != OK || m.Type() != di.TypeCode.Type() || m.Code() != di.TypeCode.Code() || m.Checksum() != di.Checksum ||
		m.Ident() != di.Id || m.Seq() != di.Seq || m.RestOfHeader() != 0x42420007 || string(m.Payload()) != "ping" {
		t.Errorf("ICMP view %v: type %d code %d csum %#x id %#x seq %d rest %#x %q; gopacket %v %#x %#x %d",
			r, m.Type(), m.Code(), m.Checksum(), m.Ident(), m.Seq(), m.RestOfHeader(), m.Payload(), di.TypeCode, di.Checksum, di.Id, di.Seq)
	}
}

func TestParseL4Reasons(t *testing.T) {
	tcp := IPv4(tcpPacket(t, clientAddr, vipAddr, 1, 2, []byte("data"))).Payload() // data offset 32
	udp := IPv4(udpPacket(t, clientAddr, vipAddr, 1, 2, []byte("data"))).Payload() // length 12
	with := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }
	for _, tc := range []struct {
		name string
		r    Reason
		want Reason
	}{
		{"TCP ok", second(ParseTCP(tcp)), OK},
		{"TCP 19 bytes", second(ParseTCP(tcp[:19])), BadL4},
		{"TCP options cut off", second(ParseTCP(tcp[:31])), BadL4},
		{"TCP data offset 4", second(ParseTCP(with(tcp, func(b []byte) { b[12] = 4 << 4 }))), BadL4},
		{"TCP data offset 5, no options", second(ParseTCP(with(tcp[:20], func(b []byte) { b[12] = 5 << 4 }))), OK},
		{"UDP ok", second(ParseUDP(udp)), OK},
		{"UDP 7 bytes", second(ParseUDP(udp[:7])), BadL4},
		{"UDP length 7", second(ParseUDP(with(udp, func(b []byte) { b[5] = 7 }))), BadL4},
		{"UDP length past end", second(ParseUDP(udp[:11])), BadL4},
		{"UDP length 8 in 12 bytes", second(ParseUDP(with(udp, func(b []byte) { b[5] = 8 }))), OK},
		{"ICMP 8 bytes", second(ParseICMPv4(make([]byte, 8))), OK},
		{"ICMP 7 bytes", second(ParseICMPv4(make([]byte, 7))), BadL4},
	} {
		if tc.r != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.r, tc.want)
		}
	}
	if u, _ := ParseUDP(with(udp, func(b []byte) { b[5] = 9 })); len(u) != 9 || len(u.Payload()) != 1 {
		t.Errorf("ParseUDP did not trim to the length field: view %d bytes, payload %d", len(u), len(u.Payload()))
	}
}

func second[V any](_ V, r Reason) Reason { return r }

// rewrite applies a full NAT translation the way the dataplane does: DNAT
// to the app server, then SNAT to the outbound address, ports included.
func rewrite(t *testing.T, pkt []byte, dst, src Addr, dport, sport uint16, partial bool) {
	t.Helper()
	v, r := ParseIPv4(pkt)
	if r != OK {
		t.Fatalf("ParseIPv4: %v", r)
	}
	oldSrc, oldDst := v.Src(), v.Dst()
	v.SetDst(dst)
	v.SetSrc(src)
	switch v.Protocol() {
	case ProtoTCP:
		tcp, _ := ParseTCP(v.Payload())
		tcp.UpdateForAddr(oldDst, dst, partial)
		tcp.UpdateForAddr(oldSrc, src, partial)
		if partial {
			tcp.SetDstPortPartial(dport)
			tcp.SetSrcPortPartial(sport)
		} else {
			tcp.SetDstPort(dport)
			tcp.SetSrcPort(sport)
		}
	case ProtoUDP:
		u, _ := ParseUDP(v.Payload())
		u.UpdateForAddr(oldDst, dst, partial)
		u.UpdateForAddr(oldSrc, src, partial)
		if partial {
			u.SetDstPortPartial(dport)
			u.SetSrcPortPartial(sport)
		} else {
			u.SetDstPort(dport)
			u.SetSrcPort(sport)
		}
	case ProtoICMP:
		m, _ := ParseICMPv4(v.Payload())
		m.SetIdent(sport)
	}
}

func TestRewriteChecksumsMatchFromScratch(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		name string
		pkt  func() []byte
	}{
		{"TCP", func() []byte { return tcpPacket(t, clientAddr, vipAddr, 40000, 8443, []byte("GET / HTTP/1.1\r\n")) }},
		{"TCP odd length", func() []byte { return tcpPacket(t, clientAddr, vipAddr, 40000, 8443, []byte("odd")) }},
		{"UDP", func() []byte { return udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("query")) }},
		{"UDP empty", func() []byte { return udpPacket(t, clientAddr, vipAddr, 40000, 5353, nil) }},
		{"ICMP echo", func() []byte { return echoRequest(t, clientAddr, vipAddr, 0x4242, 1, []byte("abcdefg")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := tc.pkt()
			checkChecksums(t, "as built", pkt)
			rewrite(t, pkt, appAddr, snatAddr, 8080, 61000, false)
			checkChecksums(t, "after DNAT+SNAT to the app", pkt)
			// Random rewrites, chained: errors would accumulate.
			for i := range 300 {
				rewrite(t, pkt, Addr(r.Uint32()), Addr(r.Uint32()), uint16(r.Uint32()), uint16(r.Uint32()), false)
				if i%10 == 0 || t.Failed() {
					checkChecksums(t, "after random rewrite", pkt)
				}
				if t.Failed() {
					return
				}
			}
			checkChecksums(t, "after random rewrites", pkt)
		})
	}
}

// udpScratch computes the UDP checksum of v from scratch, RFC 768 style.
func udpScratch(v IPv4) uint16 {
	u := UDP(v.Payload())
	saved := u.Checksum()
	u.SetChecksum(0)
	c := ^Checksum(u, PseudoHeaderSum(ProtoUDP, v.Src(), v.Dst(), uint16(len(u))))
	u.SetChecksum(saved)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// TestUDPChecksumNeverZero walks the source port through every value; on
// the way the from-scratch checksum is 0 for exactly one of them, which RFC
// 768 sends as 0xffff, and an incremental update must not write 0 ("no
// checksum") there.
func TestUDPChecksumNeverZero(t *testing.T) {
	v := IPv4(udpPacket(t, clientAddr, vipAddr, 0, 5353, []byte("query")))
	u := UDP(v.Payload())
	hitFFFF := false
	for p := range 0x10000 {
		u.SetSrcPort(uint16(p))
		if want := udpScratch(v); u.Checksum() != want {
			t.Fatalf("source port %d: checksum %#04x, from scratch %#04x", p, u.Checksum(), want)
		}
		if u.Checksum() == 0xffff {
			hitFFFF = true
			checkChecksums(t, "checksum 0xffff", v)
		}
	}
	if !hitFFFF {
		t.Fatal("no port gave a computed checksum of 0; the test does not cover RFC 768's 0 -> 0xffff")
	}
	// Same through an address change.
	hitFFFF = false
	for range 0x10000 {
		old := v.Src()
		v.SetSrc(old + 1)
		u.UpdateForAddr(old, old+1, false)
		if want := udpScratch(v); u.Checksum() != want {
			t.Fatalf("source %v: checksum %#04x, from scratch %#04x", v.Src(), u.Checksum(), want)
		}
		hitFFFF = hitFFFF || u.Checksum() == 0xffff
	}
	if !hitFFFF {
		t.Fatal("no address gave a computed checksum of 0")
	}
}

func TestUDPZeroChecksumStaysZero(t *testing.T) {
	pkt := udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("no checksum"))
	v := IPv4(pkt)
	UDP(v.Payload()).SetChecksum(0)
	rewrite(t, pkt, appAddr, snatAddr, 8080, 61000, false)
	u := UDP(v.Payload())
	if u.Checksum() != 0 {
		t.Fatalf("UDP checksum 0 (none) became %#04x after NAT; RFC 768 says 0 means none, keep it", u.Checksum())
	}
	if !v.ChecksumValid() {
		t.Error("IP header checksum invalid after NAT of a UDP packet without checksum")
	}
	if u.SrcPort() != 61000 || u.DstPort() != 8080 || v.Src() != snatAddr || v.Dst() != appAddr {
		t.Errorf("rewritten to %v:%d > %v:%d, want %v:61000 > %v:8080", v.Src(), u.SrcPort(), v.Dst(), u.DstPort(), snatAddr, appAddr)
	}
	d := decode(t, pkt).Layer(layers.LayerTypeUDP).(*layers.UDP)
	if d.Checksum != 0 {
		t.Errorf("gopacket reads checksum %#04x, want 0", d.Checksum)
	}
}

// TestPartialChecksum builds packets as a TUN with IFF_VNET_HDR delivers
// them with NEEDS_CSUM: the L4 checksum field holds the pseudo-header sum
// only. After NAT the field must be the pseudo-header sum of the new
// addresses, and completing it as the kernel does must give a valid packet.
func TestPartialChecksum(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"TCP", tcpPacket(t, clientAddr, vipAddr, 40000, 8443, []byte("GET / HTTP/1.1\r\n"))},
		{"UDP", udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("query!"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := IPv4(tc.pkt)
			partialL4(v)
			off := v.HeaderLen() + l4ChecksumOffset(v.Protocol())
			rewrite(t, v, appAddr, snatAddr, 8080, 61000, true)
			want := Checksum(nil, PseudoHeaderSum(v.Protocol(), snatAddr, appAddr, uint16(len(v.Payload()))))
			if got := binary.BigEndian.Uint16(v[off:]); got != want {
				t.Fatalf("partial field after NAT %#04x, pseudo-header sum of the new addresses %#04x", got, want)
			}
			completeL4(v)
			checkChecksums(t, "after NAT and kernel completion of a partial checksum", v)

			// And the same with the generic helpers on the raw field.
			v = IPv4(bytes.Clone(v))
			partialL4(v)
			c := binary.BigEndian.Uint16(v[off:])
			c = UpdateL4ForAddr(c, v.Src(), clientAddr, true)
			c = UpdateL4ForPort(c, 61000, 40000, true)
			v.SetSrc(clientAddr)
			binary.BigEndian.PutUint16(v[off:], c)
			binary.BigEndian.PutUint16(v[v.HeaderLen():], 40000)
			completeL4(v)
			checkChecksums(t, "after UpdateL4ForAddr/Port(partial) and completion", v)
		})
	}
}

func TestUpdateL4Full(t *testing.T) {
	pkt := tcpPacket(t, clientAddr, vipAddr, 40000, 8443, []byte("x"))
	v := IPv4(pkt)
	tcp := TCP(v.Payload())
	c := UpdateL4ForAddr(tcp.Checksum(), v.Dst(), appAddr, false)
	c = UpdateL4ForPort(c, tcp.DstPort(), 8080, false)
	v.SetDst(appAddr)
	tcp.SetDstPortPartial(8080) // writes the port only; c carries the update
	tcp.SetChecksum(c)
	checkChecksums(t, "after UpdateL4ForAddr/Port(full)", pkt)
}

// TestICMPSetIdentEveryValue walks the ident of an all-zero echo reply
// (seq 0, no data) through every value. At ident 0 the whole message is
// zeros and the right checksum is 0xffff, which RFC 1624 eqn. 3 alone gets
// wrong.
func TestICMPSetIdentEveryValue(t *testing.T) {
	pkt := echoRequest(t, clientAddr, vipAddr, 1, 0, nil)
	m := ICMPv4(IPv4(pkt).Payload())
	m[0] = ICMPEchoReply
	m.SetChecksum(0)
	m.SetChecksum(^Checksum(m, 0))
	for _, start := range []int{0, 0x8000} {
		for i := range 0x10001 {
			id := uint16(start + i)
			m.SetIdent(id)
			saved := m.Checksum()
			m.SetChecksum(0)
			want := ^Checksum(m, 0)
			m.SetChecksum(saved)
			if saved != want {
				t.Fatalf("ident %#04x: checksum %#04x, from scratch %#04x", id, saved, want)
			}
		}
	}
	m.SetIdent(0)
	checkChecksums(t, "all-zero echo reply", pkt)
	if m.Checksum() != 0xffff {
		t.Errorf("all-zero echo reply has checksum %#04x, want 0xffff", m.Checksum())
	}
}
