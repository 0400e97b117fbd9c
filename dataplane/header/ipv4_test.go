package header

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestIPv4AccessorsMatchGopacket(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flags  layers.IPv4Flag
		offset uint16
		frag   bool
	}{
		{"DF", layers.IPv4DontFragment, 0, false},
		{"first fragment", layers.IPv4MoreFragments, 0, true},
		{"middle fragment", layers.IPv4MoreFragments, 185, true},
		{"last fragment", 0, 370, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipl := &layers.IPv4{
				Version: 4, IHL: 5, TOS: 0xb8, Id: 0xbeef, Flags: tc.flags, FragOffset: tc.offset,
				TTL: 17, Protocol: layers.IPProtocolUDP, SrcIP: ip(clientAddr), DstIP: ip(vipAddr),
			}
			pkt := serialize(t, ipl, gopacket.Payload([]byte("0123456789abcdef")))
			v, r := ParseIPv4(pkt)
			if r != OK {
				t.Fatalf("ParseIPv4 of a gopacket-built packet: %v", r)
			}
			d := decode(t, pkt).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if v.Version() != d.Version || v.HeaderLen() != int(d.IHL)*4 || v.TOS() != d.TOS ||
				v.TotalLen() != int(d.Length) || v.ID() != d.Id || v.TTL() != d.TTL ||
				v.Protocol() != uint8(d.Protocol) || v.Checksum() != d.Checksum {
				t.Errorf("view reads ver %d hl %d tos %#x len %d id %#x ttl %d proto %d csum %#x; gopacket reads %d %d %#x %d %#x %d %d %#x",
					v.Version(), v.HeaderLen(), v.TOS(), v.TotalLen(), v.ID(), v.TTL(), v.Protocol(), v.Checksum(),
					d.Version, d.IHL*4, d.TOS, d.Length, d.Id, d.TTL, d.Protocol, d.Checksum)
			}
			if v.DF() != (d.Flags&layers.IPv4DontFragment != 0) || v.MF() != (d.Flags&layers.IPv4MoreFragments != 0) ||
				v.FragOffset() != d.FragOffset || v.IsFragment() != tc.frag {
				t.Errorf("DF %v MF %v offset %d fragment %v; gopacket flags %v offset %d, want fragment %v",
					v.DF(), v.MF(), v.FragOffset(), v.IsFragment(), d.Flags, d.FragOffset, tc.frag)
			}
			if v.Src() != clientAddr || v.Dst() != vipAddr {
				t.Errorf("src %v dst %v, want %v %v", v.Src(), v.Dst(), clientAddr, vipAddr)
			}
			if !bytes.Equal(v.Payload(), d.Payload) {
				t.Errorf("payload %q, gopacket %q", v.Payload(), d.Payload)
			}
			if !v.ChecksumValid() || v.ComputeChecksum() != d.Checksum {
				t.Errorf("checksum %#04x valid %v, ComputeChecksum %#04x", d.Checksum, v.ChecksumValid(), v.ComputeChecksum())
			}
		})
	}
}

// withOptions returns a UDP packet whose IPv4 header carries 4 bytes of
// options (IHL 6): router alert.
func withOptions(t testing.TB) []byte {
	t.Helper()
	ipl := ipv4Layer(layers.IPProtocolUDP, clientAddr, vipAddr)
	ipl.Options = []layers.IPv4Option{{OptionType: 148, OptionLength: 4, OptionData: []byte{0, 0}}}
	udp := &layers.UDP{SrcPort: 40000, DstPort: 5353}
	_ = udp.SetNetworkLayerForChecksum(ipl)
	pkt := serialize(t, ipl, udp, gopacket.Payload([]byte("query")))
	if pkt[0] != 0x46 {
		t.Fatalf("gopacket built IHL %d, want 6", pkt[0]&0xf)
	}
	return pkt
}

func TestIPv4Options(t *testing.T) {
	pkt := withOptions(t)
	v, r := ParseIPv4(pkt)
	if r != OK {
		t.Fatalf("ParseIPv4: %v", r)
	}
	if v.HeaderLen() != 24 || len(v.Header()) != 24 || len(v.Payload()) != UDPLen+5 {
		t.Errorf("header %d bytes (Header() %d), payload %d; want 24, 24, 13", v.HeaderLen(), len(v.Header()), len(v.Payload()))
	}
	v.SetSrc(snatAddr)
	v.DecTTL()
	if want := IPv4(fromScratch(t, pkt)).Checksum(); v.Checksum() != want || !v.ChecksumValid() {
		t.Errorf("after SetSrc+DecTTL with options: checksum %#04x, from scratch %#04x", v.Checksum(), want)
	}
}

func TestParseIPv4Reasons(t *testing.T) {
	good := udpPacket(t, clientAddr, vipAddr, 40000, 5353, []byte("query"))
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	setTot := func(n int) func(b []byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], uint16(n)); return b }
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		want Reason
	}{
		{"good", good, OK},
		{"empty", nil, TooShort},
		{"19 bytes", good[:19], TooShort},
		{"version 6", mod(func(b []byte) []byte { b[0] = 0x65; return b }), BadVersion},
		{"version 0", mod(func(b []byte) []byte { b[0] = 0x05; return b }), BadVersion},
		{"IHL 4", mod(func(b []byte) []byte { b[0] = 0x44; return b }), BadIHL},
		{"IHL 0", mod(func(b []byte) []byte { b[0] = 0x40; return b }), BadIHL},
		{"IHL 15 past the end", mod(func(b []byte) []byte { b[0] = 0x4f; return b[:40] }), BadIHL},
		{"total length 0", mod(setTot(0)), BadTotalLen},
		{"total length < header", mod(setTot(19)), BadTotalLen},
		{"total length > bytes", mod(setTot(len(good) + 1)), BadTotalLen},
		{"truncated", good[:len(good)-1], BadTotalLen},
		{"total length = header", mod(setTot(20)), OK},
	} {
		v, r := ParseIPv4(tc.pkt)
		if r != tc.want {
			t.Errorf("%s: ParseIPv4 = %v, want %v", tc.name, r, tc.want)
		}
		if (r == OK) != (v != nil) {
			t.Errorf("%s: reason %v with view of %d bytes", tc.name, r, len(v))
		}
	}
}

func TestParseIPv4TrimsPadding(t *testing.T) {
	pkt := udpPacket(t, clientAddr, vipAddr, 40000, 5353, nil) // 28 bytes: an Ethernet frame pads it to 46
	padded := append(bytes.Clone(pkt), make([]byte, 18)...)
	v, r := ParseIPv4(padded)
	if r != OK || len(v) != len(pkt) {
		t.Fatalf("ParseIPv4 of padded packet: %v, %d bytes; want ok, %d", r, len(v), len(pkt))
	}
	if u, r := ParseUDP(v.Payload()); r != OK || len(u.Payload()) != 0 {
		t.Errorf("UDP in padded packet: %v, payload %d bytes; want ok, 0", r, len(u.Payload()))
	}
}

func TestSetAddrsAndDecTTL(t *testing.T) {
	pkt := tcpPacket(t, clientAddr, vipAddr, 40000, 8443, []byte("GET / HTTP/1.1\r\n"))
	v, _ := ParseIPv4(pkt)
	steps := []struct {
		name string
		do   func()
	}{
		{"SetDst(app)", func() { v.SetDst(appAddr) }},
		{"SetSrc(snat)", func() { v.SetSrc(snatAddr) }},
		{"DecTTL", v.DecTTL},
		{"SetID", func() { v.SetID(0) }},
		{"SetSrc(0.0.0.0)", func() { v.SetSrc(0) }},
		{"SetDst(255.255.255.255)", func() { v.SetDst(0xffffffff) }},
	}
	for _, s := range steps {
		s.do()
		if want := IPv4(fromScratch(t, pkt)).Checksum(); v.Checksum() != want {
			t.Errorf("after %s: IP checksum %#04x, from scratch %#04x", s.name, v.Checksum(), want)
		}
	}
	if v.Src() != 0 || v.Dst() != 0xffffffff || v.TTL() != 63 {
		t.Errorf("after rewrites src %v dst %v ttl %d, want 0.0.0.0 255.255.255.255 63", v.Src(), v.Dst(), v.TTL())
	}
}

func TestDecTTLEveryValue(t *testing.T) {
	v := IPv4(udpPacket(t, clientAddr, vipAddr, 1, 2, nil))
	v[8] = 255
	v.SetChecksum(v.ComputeChecksum())
	for want := 254; want >= 0; want-- {
		v.DecTTL()
		if int(v.TTL()) != want || v.Checksum() != v.ComputeChecksum() {
			t.Fatalf("DecTTL to %d: TTL %d checksum %#04x, from scratch %#04x", want, v.TTL(), v.Checksum(), v.ComputeChecksum())
		}
	}
	c := v.Checksum()
	v.DecTTL()
	if v.TTL() != 0 || v.Checksum() != c {
		t.Errorf("DecTTL at TTL 0 gave TTL %d checksum %#04x; want it left alone", v.TTL(), v.Checksum())
	}
}

func TestSetTotalLen(t *testing.T) {
	pkt := tcpPacket(t, clientAddr, vipAddr, 40000, 8443, make([]byte, 1000))
	v, _ := ParseIPv4(pkt)
	v.SetTotalLen(540)
	if v.TotalLen() != 540 || v.Checksum() != v.ComputeChecksum() {
		t.Errorf("SetTotalLen(540): total %d checksum %#04x, from scratch %#04x", v.TotalLen(), v.Checksum(), v.ComputeChecksum())
	}
}

func TestReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumReasons {
		s := r.String()
		if s == "" || seen[s] {
			t.Errorf("Reason(%d).String() = %q: empty or duplicate", r, s)
		}
		seen[s] = true
	}
	if OK.String() != "ok" || NumReasons.String() != "reason(7)" {
		t.Errorf("OK = %q, NumReasons = %q", OK.String(), NumReasons.String())
	}
}

func TestOptionsOK(t *testing.T) {
	base := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 1, 6, 10, 0, 2, 4}
	for _, tc := range []struct {
		name string
		opts []byte
		ok   bool
	}{
		{"none", nil, true},
		{"NOPs and End", []byte{1, 1, 1, 0}, true},
		{"record route", []byte{7, 7, 4, 0, 0, 0, 0, 0}, true},
		{"router alert", []byte{0x94, 4, 0, 0}, true},
		{"timestamp then End", []byte{0x44, 4, 5, 0, 0, 0, 0, 0}, true},
		{"loose source route", []byte{0x83, 7, 4, 10, 0, 1, 1, 0}, false},
		{"strict source route", []byte{1, 0x89, 7, 4, 10, 0, 1, 1}, false},
		{"length past the header", []byte{7, 9, 4, 0}, false},
		{"length 0", []byte{7, 0, 0, 0}, false},
		{"length 1", []byte{0x44, 1, 0, 0}, false},
		{"length byte missing", []byte{1, 1, 1, 7}, false},
	} {
		b := append(append([]byte(nil), base...), tc.opts...)
		b[0] = 0x40 | byte(len(b)/4)
		b[3] = byte(len(b))
		v, r := ParseIPv4(b)
		if r != OK {
			t.Fatalf("%s: %v", tc.name, r)
		}
		if got := v.OptionsOK(); got != tc.ok {
			t.Errorf("%s: OptionsOK() = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
