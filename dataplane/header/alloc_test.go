package header

import (
	"testing"
)

// TestZeroAllocs is the hot-path contract: parsing, reading, rewriting,
// checksum arithmetic and the builders allocate nothing.
func TestZeroAllocs(t *testing.T) {
	tcpPkt := tcpPacket(t, clientAddr, vipAddr, 40000, 8443, make([]byte, 1400))
	udpPkt := udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("query"))
	echo := echoRequest(t, clientAddr, vipAddr, 1, 2, make([]byte, 56))
	vnet := make([]byte, VirtioNetHdrLen)
	out := make([]byte, 1500)
	var sinkAddr Addr
	var sinkBool bool
	var sinkInt int

	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"ParseIPv4 and field reads", func() {
			v, _ := ParseIPv4(tcpPkt)
			sinkAddr = v.Src() ^ v.Dst()
			sinkBool = v.IsFragment() || v.DF() || v.ChecksumValid()
			sinkInt = v.HeaderLen() + v.TotalLen() + len(v.Payload()) + int(v.TTL()+v.Protocol())
		}},
		{"TCP NAT rewrite", func() {
			v, _ := ParseIPv4(tcpPkt)
			tcp, _ := ParseTCP(v.Payload())
			old := v.Dst()
			v.SetDst(appAddr)
			tcp.UpdateForAddr(old, appAddr, false)
			tcp.SetDstPort(8080)
			v.DecTTL()
			sinkInt = int(tcp.Flags()) + len(tcp.Payload())
		}},
		{"UDP NAT rewrite, partial", func() {
			v, _ := ParseIPv4(udpPkt)
			u, _ := ParseUDP(v.Payload())
			old := v.Src()
			v.SetSrc(snatAddr)
			u.UpdateForAddr(old, snatAddr, true)
			u.SetSrcPortPartial(61000)
		}},
		{"ICMP SetIdent", func() {
			m, _ := ParseICMPv4(IPv4(echo).Payload())
			m.SetIdent(m.Ident() + 1)
		}},
		{"checksum arithmetic", func() {
			c := Checksum(tcpPkt, PseudoHeaderSum(ProtoTCP, clientAddr, vipAddr, 1420))
			c = UpdateChecksum16(c, 1, 2)
			c = UpdateChecksum32(c, 1, 2)
			c = UpdateL4ForAddr(c, clientAddr, snatAddr, true)
			sink = UpdateL4ForPort(c, 1, 2, false)
		}},
		{"virtio header", func() {
			h := VirtioNetHdr(vnet)
			h.SetFlags(VirtioNetHdrFNeedsCsum)
			h.SetCsumStart(20)
			sinkBool = h.NeedsCsum() && h.GSOType() == GSONone && h.CsumOffset() == 0
			h.Reset()
		}},
		{"BuildICMPError", func() {
			v, _ := ParseIPv4(tcpPkt)
			sinkBool = ShouldSendICMPError(v)
			sinkInt = BuildICMPError(out, routerAddr, ICMPDestUnreachable, ICMPFragNeeded, 1400, v)
		}},
		{"BuildEchoReply", func() {
			v, _ := ParseIPv4(echo)
			sinkInt = BuildEchoReply(out, v)
		}},
		{"Addr conversions", func() {
			sinkAddr = AddrFromNetip(vipAddr.Netip()) ^ AddrFromSlice(tcpPkt[12:]) ^ AddrFrom4(vipAddr.As4())
			vipAddr.Put(out)
			sinkInt = len(vipAddr.AppendTo(out[:0]))
		}},
	} {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
	_, _, _ = sinkAddr, sinkBool, sinkInt
}

func BenchmarkTCPNATRewrite(b *testing.B) {
	pkt := tcpPacket(b, clientAddr, vipAddr, 40000, 8443, make([]byte, 1400))
	dsts := [2]Addr{appAddr, vipAddr}
	for i := 0; b.Loop(); i++ {
		v, _ := ParseIPv4(pkt)
		tcp, _ := ParseTCP(v.Payload())
		old, nw := v.Dst(), dsts[i&1]
		v.SetDst(nw)
		tcp.UpdateForAddr(old, nw, false)
		tcp.SetDstPort(uint16(i))
		v.DecTTL()
	}
}

func BenchmarkSetSrc(b *testing.B) {
	v := IPv4(tcpPacket(b, clientAddr, vipAddr, 40000, 8443, nil))
	for i := Addr(0); b.Loop(); i++ {
		v.SetSrc(i)
	}
}

func BenchmarkDecTTL(b *testing.B) {
	v := IPv4(tcpPacket(b, clientAddr, vipAddr, 40000, 8443, nil))
	for b.Loop() {
		v[8] = 64
		v.DecTTL()
	}
}

func BenchmarkBuildICMPError(b *testing.B) {
	orig := IPv4(tcpPacket(b, clientAddr, vipAddr, 40000, 8443, make([]byte, 1400)))
	out := make([]byte, ICMPErrorMaxLen)
	for b.Loop() {
		BuildICMPError(out, routerAddr, ICMPDestUnreachable, ICMPFragNeeded, 1400, orig)
	}
}

func BenchmarkBuildEchoReply(b *testing.B) {
	req := IPv4(echoRequest(b, clientAddr, vipAddr, 1, 2, make([]byte, 56)))
	out := make([]byte, 1500)
	for b.Loop() {
		BuildEchoReply(out, req)
	}
}
