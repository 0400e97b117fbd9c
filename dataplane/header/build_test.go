package header

import (
	"bytes"
	"testing"

	"github.com/gopacket/gopacket/layers"
)

func TestBuildICMPError(t *testing.T) {
	for _, tc := range []struct {
		name       string
		orig       []byte
		typ, code  uint8
		rest       uint32
		wantQuoted int
	}{
		{"port unreachable for a small UDP datagram", udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("query")),
			ICMPDestUnreachable, ICMPPortUnreachable, 0, 33},
		{"frag needed for a full-size TCP segment", tcpPacket(t, clientAddr, appAddr, 40000, 8443, make([]byte, 1448)),
			ICMPDestUnreachable, ICMPFragNeeded, 1400, 548},
		{"TTL exceeded for an echo request", echoRequest(t, clientAddr, vipAddr, 1, 2, make([]byte, 56)),
			ICMPTimeExceeded, ICMPTTLExceeded, 0, 84},
		{"IP options are quoted", withOptions(t), ICMPParamProblem, 0, 20 << 24, 37},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, r := ParseIPv4(tc.orig)
			if r != OK {
				t.Fatalf("ParseIPv4(orig): %v", r)
			}
			origCopy := bytes.Clone(orig)
			buf := make([]byte, 2000)
			n := BuildICMPError(buf, routerAddr, tc.typ, tc.code, tc.rest, orig)
			if want := 28 + tc.wantQuoted; n != want || n != ICMPErrorLen(orig) {
				t.Fatalf("BuildICMPError wrote %d bytes, want %d (ICMPErrorLen says %d)", n, want, ICMPErrorLen(orig))
			}
			if n > ICMPErrorMaxLen {
				t.Errorf("ICMP error is %d bytes, more than the %d RFC 1812 allows", n, ICMPErrorMaxLen)
			}
			if !bytes.Equal(orig, origCopy) {
				t.Error("BuildICMPError modified orig")
			}
			pkt := buf[:n]
			p := decode(t, pkt)
			ipl := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if !ipl.SrcIP.Equal(ip(routerAddr)) || !ipl.DstIP.Equal(ip(clientAddr)) || ipl.TTL != 64 ||
				ipl.Protocol != layers.IPProtocolICMPv4 || ipl.Id != 0 || ipl.Flags != 0 || ipl.IHL != 5 || int(ipl.Length) != n {
				t.Errorf("IP header %v > %v ttl %d proto %v id %d flags %v ihl %d len %d; want %v > %v ttl 64 ICMP id 0 no flags ihl 5 len %d",
					ipl.SrcIP, ipl.DstIP, ipl.TTL, ipl.Protocol, ipl.Id, ipl.Flags, ipl.IHL, ipl.Length, routerAddr, clientAddr, n)
			}
			if ipl.TOS&0xe0 != 0xc0 {
				t.Errorf("TOS %#02x: precedence is not internetwork control", ipl.TOS)
			}
			icmp := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if icmp.TypeCode != layers.CreateICMPv4TypeCode(tc.typ, tc.code) {
				t.Errorf("ICMP %v, want type %d code %d", icmp.TypeCode, tc.typ, tc.code)
			}
			if rest := uint32(icmp.Id)<<16 | uint32(icmp.Seq); rest != tc.rest {
				t.Errorf("rest of header %#08x, want %#08x", rest, tc.rest)
			}
			if !bytes.Equal(icmp.Payload, orig[:tc.wantQuoted]) {
				t.Errorf("quoted %d bytes that are not the original's first %d:\n got %x\nwant %x", len(icmp.Payload), tc.wantQuoted, icmp.Payload, orig[:tc.wantQuoted])
			}
			checkChecksums(t, "ICMP error", pkt)

			// Too small a buffer is refused, not overrun.
			if n := BuildICMPError(buf[:ICMPErrorLen(orig)-1], routerAddr, tc.typ, tc.code, tc.rest, orig); n != 0 {
				t.Errorf("BuildICMPError into a buffer one byte short wrote %d bytes, want 0", n)
			}

			// In place: the buffer that held orig becomes the error about it.
			inplace := make([]byte, ICMPErrorMaxLen+len(orig))
			copy(inplace, orig)
			if n := BuildICMPError(inplace, routerAddr, tc.typ, tc.code, tc.rest, IPv4(inplace[:len(orig)])); !bytes.Equal(inplace[:n], pkt) {
				t.Errorf("in-place build differs:\n got %x\nwant %x", inplace[:n], pkt)
			}
		})
	}
}

func TestBuildICMPErrorQuotesPartialChecksumAsIs(t *testing.T) {
	orig := tcpPacket(t, clientAddr, vipAddr, 40000, 8443, []byte("data"))
	partialL4(orig)
	buf := make([]byte, ICMPErrorMaxLen)
	n := BuildICMPError(buf, routerAddr, ICMPDestUnreachable, ICMPAdminProhibited, 0, orig)
	if !bytes.Equal(buf[28:n], orig) {
		t.Errorf("quote of a NEEDS_CSUM packet differs from the packet:\n got %x\nwant %x", buf[28:n], orig)
	}
	checkChecksums(t, "ICMP error quoting a partial checksum", buf[:n])
}

func TestBuildICMPErrorRefusesGarbage(t *testing.T) {
	buf := make([]byte, ICMPErrorMaxLen)
	if n := BuildICMPError(buf, routerAddr, 3, 3, 0, IPv4(make([]byte, 19))); n != 0 {
		t.Errorf("BuildICMPError about a 19-byte packet wrote %d bytes, want 0", n)
	}
}

func TestBuildEchoReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"56 bytes of data", echoRequest(t, clientAddr, vipAddr, 0x1f2e, 3, bytes.Repeat([]byte("ping"), 14))},
		{"odd length", echoRequest(t, clientAddr, vipAddr, 0x1f2e, 4, []byte("odd"))},
		{"no data", echoRequest(t, clientAddr, vipAddr, 0, 0, nil)},
		{"request with IP options", func() []byte {
			// Splice 4 bytes of options (NOP x4) into an echo request.
			p := echoRequest(t, clientAddr, vipAddr, 9, 9, []byte("opts"))
			q := append(append(append([]byte(nil), p[:20]...), 1, 1, 1, 1), p[20:]...)
			v := IPv4(q)
			v[0] = 0x46
			v[2], v[3] = 0, byte(len(q))
			v.SetChecksum(v.ComputeChecksum())
			return q
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, r := ParseIPv4(tc.req)
			if r != OK {
				t.Fatalf("ParseIPv4(req): %v", r)
			}
			reqICMP := ICMPv4(req.Payload())
			buf := make([]byte, 1500)
			n := BuildEchoReply(buf, req)
			if want := 20 + len(reqICMP); n != want {
				t.Fatalf("BuildEchoReply wrote %d bytes, want %d", n, want)
			}
			pkt := buf[:n]
			p := decode(t, pkt)
			ipl := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if !ipl.SrcIP.Equal(ip(vipAddr)) || !ipl.DstIP.Equal(ip(clientAddr)) || ipl.TTL != 64 || ipl.IHL != 5 {
				t.Errorf("reply %v > %v ttl %d ihl %d, want %v > %v ttl 64 ihl 5", ipl.SrcIP, ipl.DstIP, ipl.TTL, ipl.IHL, vipAddr, clientAddr)
			}
			icmp := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
			if icmp.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0) ||
				icmp.Id != reqICMP.Ident() || icmp.Seq != reqICMP.Seq() || !bytes.Equal(icmp.Payload, reqICMP.Payload()) {
				t.Errorf("reply %v id %#x seq %d data %q; want echo reply id %#x seq %d data %q",
					icmp.TypeCode, icmp.Id, icmp.Seq, icmp.Payload, reqICMP.Ident(), reqICMP.Seq(), reqICMP.Payload())
			}
			checkChecksums(t, "echo reply", pkt)

			inplace := make([]byte, len(req))
			copy(inplace, req)
			if n := BuildEchoReply(inplace, IPv4(inplace)); !bytes.Equal(inplace[:n], pkt) {
				t.Errorf("in-place reply differs:\n got %x\nwant %x", inplace[:n], pkt)
			}
			if n := BuildEchoReply(buf[:n-1], req); n != 0 {
				t.Errorf("BuildEchoReply into a buffer one byte short wrote %d, want 0", n)
			}
		})
	}
}

func TestBuildEchoReplyRefuses(t *testing.T) {
	buf := make([]byte, 1500)
	reply := echoRequest(t, vipAddr, clientAddr, 1, 1, nil)
	reply[20] = ICMPEchoReply
	frag := echoRequest(t, clientAddr, vipAddr, 1, 1, nil)
	frag[6] |= 0x20 // MF
	short := echoRequest(t, clientAddr, vipAddr, 1, 1, nil)[:27]
	short[3] = 27
	for name, req := range map[string][]byte{
		"an echo reply":     reply,
		"a UDP datagram":    udpPacket(t, clientAddr, vipAddr, 1, 2, nil),
		"a fragment":        frag,
		"7 bytes of ICMP":   short,
		"19 bytes":          make([]byte, 19),
		"IHL past the data": {0x4f, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8},
	} {
		if n := BuildEchoReply(buf, IPv4(req)); n != 0 {
			t.Errorf("BuildEchoReply answered %s with %d bytes, want 0", name, n)
		}
	}
}

func TestShouldSendICMPError(t *testing.T) {
	bcast := AddrFrom4([4]byte{255, 255, 255, 255})
	mcast := AddrFrom4([4]byte{224, 0, 0, 251})
	errPkt := make([]byte, ICMPErrorMaxLen)
	errPkt = errPkt[:BuildICMPError(errPkt, routerAddr, ICMPDestUnreachable, ICMPHostUnreachable, 0, udpPacket(t, clientAddr, vipAddr, 1, 2, nil))]
	frag := func(off uint16, mf bool) []byte {
		p := udpPacket(t, clientAddr, vipAddr, 1, 2, []byte("data"))
		w := off
		if mf {
			w |= 0x2000
		}
		p[6], p[7] = byte(w>>8), byte(w)
		return p
	}
	emptyICMP := echoRequest(t, clientAddr, vipAddr, 1, 1, nil)[:20]
	emptyICMP[3] = 20
	for _, tc := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"UDP from a host", udpPacket(t, clientAddr, vipAddr, 1, 2, nil), true},
		{"TCP from a host", tcpPacket(t, clientAddr, vipAddr, 1, 2, nil), true},
		{"echo request", echoRequest(t, clientAddr, vipAddr, 1, 1, nil), true},
		{"first fragment", frag(0, true), true},
		{"non-first fragment", frag(185, true), false},
		{"last fragment", frag(185, false), false},
		{"an ICMP error", errPkt, false},
		{"ICMP without a header", emptyICMP, false},
		{"to broadcast", udpPacket(t, clientAddr, bcast, 1, 2, nil), false},
		{"to multicast", udpPacket(t, clientAddr, mcast, 1, 2, nil), false},
		{"from 0.0.0.0", udpPacket(t, 0, vipAddr, 68, 67, nil), false},
		{"from loopback", udpPacket(t, AddrFrom4([4]byte{127, 0, 0, 1}), vipAddr, 1, 2, nil), false},
		{"from multicast", udpPacket(t, mcast, vipAddr, 1, 2, nil), false},
		{"from broadcast", udpPacket(t, bcast, vipAddr, 1, 2, nil), false},
		{"19 bytes", make([]byte, 19), false},
	} {
		if got := ShouldSendICMPError(IPv4(tc.pkt)); got != tc.want {
			t.Errorf("ShouldSendICMPError(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestIsICMPError(t *testing.T) {
	for typ := range 256 {
		want := typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
		if got := IsICMPError(uint8(typ)); got != want {
			t.Errorf("IsICMPError(%d) = %v, want %v", typ, got, want)
		}
	}
}
