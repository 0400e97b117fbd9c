package header

import (
	"testing"
)

// FuzzParseIPv4 feeds arbitrary bytes through the whole documented path, as
// the dataplane does: parse, read every field, parse the L4 header, rewrite,
// and build ICMP replies. Nothing may panic, and every view ParseIPv4
// accepts must satisfy its invariants.
func FuzzParseIPv4(f *testing.F) {
	f.Add(tcpPacket(f, clientAddr, vipAddr, 40000, 8443, []byte("GET / HTTP/1.1\r\n")))
	f.Add(udpPacket(f, clientAddr, vipAddr, 40000, 5353, []byte("query")))
	f.Add(echoRequest(f, clientAddr, vipAddr, 1, 2, []byte("ping")))
	f.Add(withOptions(f))
	f.Add([]byte{0x45, 0, 0, 20, 0, 0, 0x20, 0, 64, 1, 0, 0, 10, 0, 1, 6, 10, 0, 1, 1})
	f.Add([]byte{0x4f, 0, 0, 60})
	f.Fuzz(func(t *testing.T, b []byte) {
		b = append([]byte(nil), b...) // the rewrites below must not change the input a crasher file records
		v, r := ParseIPv4(b)
		if r >= NumReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != OK {
			if v != nil {
				t.Fatalf("reason %v with a %d-byte view", r, len(v))
			}
			return
		}
		hl := v.HeaderLen()
		switch {
		case v.Version() != 4:
			t.Fatalf("accepted version %d", v.Version())
		case hl < IPv4MinLen || hl > len(v):
			t.Fatalf("accepted header length %d in %d bytes", hl, len(v))
		case v.TotalLen() != len(v) || len(v) > len(b):
			t.Fatalf("view is %d bytes, total length %d, input %d", len(v), v.TotalLen(), len(b))
		case len(v.Payload()) != v.TotalLen()-hl || len(v.Header()) != hl:
			t.Fatalf("payload %d + header %d != total %d", len(v.Payload()), len(v.Header()), v.TotalLen())
		case &v[0] != &b[0]:
			t.Fatal("view does not alias the input")
		}
		_ = v.ChecksumValid()
		_, _, _, _, _, _ = v.TOS(), v.ID(), v.DF(), v.MF(), v.FragOffset(), v.IsFragment()
		_ = ShouldSendICMPError(v)

		var out [ICMPErrorMaxLen]byte
		if n := BuildICMPError(out[:], routerAddr, ICMPDestUnreachable, ICMPPortUnreachable, 0, v); n != ICMPErrorLen(v) {
			t.Fatalf("BuildICMPError wrote %d, ICMPErrorLen says %d", n, ICMPErrorLen(v))
		} else if e, r := ParseIPv4(out[:n]); r != OK || !e.ChecksumValid() || Checksum(e.Payload(), 0) != 0xffff {
			t.Fatalf("ICMP error does not parse (%v) or has a bad checksum", r)
		}
		reply := make([]byte, len(v))
		if n := BuildEchoReply(reply, v); n != 0 {
			if e, r := ParseIPv4(reply[:n]); r != OK || !e.ChecksumValid() || e.Protocol() != ProtoICMP {
				t.Fatalf("echo reply does not parse (%v) or has a bad header checksum", r)
			}
		}

		v.DecTTL()
		v.SetSrc(snatAddr)
		v.SetDst(appAddr)
		if !v.ChecksumValid() && v.Checksum() == v.ComputeChecksum() {
			t.Fatal("ChecksumValid disagrees with ComputeChecksum")
		}
		if v.IsFragment() && v.FragOffset() != 0 {
			return
		}
		switch v.Protocol() {
		case ProtoTCP:
			if tcp, r := ParseTCP(v.Payload()); r == OK {
				if tcp.DataOffset() < TCPMinLen || tcp.DataOffset() > len(tcp) {
					t.Fatalf("accepted TCP data offset %d in %d bytes", tcp.DataOffset(), len(tcp))
				}
				_, _, _, _ = tcp.Seq(), tcp.Ack(), tcp.Flags(), tcp.Window()
				_ = tcp.Payload()
				tcp.SetSrcPort(61000)
				tcp.SetDstPortPartial(8080)
				tcp.UpdateForAddr(clientAddr, snatAddr, false)
			}
		case ProtoUDP:
			if u, r := ParseUDP(v.Payload()); r == OK {
				if int(u.Length()) != len(u) || len(u) < UDPLen {
					t.Fatalf("UDP view %d bytes, length field %d", len(u), u.Length())
				}
				_ = u.Payload()
				zero := u.Checksum() == 0
				u.SetSrcPort(61000)
				u.SetDstPort(8080)
				u.UpdateForAddr(clientAddr, snatAddr, false)
				if zero != (u.Checksum() == 0) {
					t.Fatalf("UDP checksum zero %v before NAT, %#04x after", zero, u.Checksum())
				}
			}
		case ProtoICMP:
			if m, r := ParseICMPv4(v.Payload()); r == OK {
				_, _, _, _ = m.Type(), m.Code(), m.Seq(), m.RestOfHeader()
				_ = m.Payload()
				m.SetIdent(4242)
			}
		}
	})
}
