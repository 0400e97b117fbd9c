package nat

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Addresses of the default lab (SPEC §3).
var (
	w1     = addr(10, 0, 1, 6)     // ase1-w1
	w2     = addr(10, 0, 1, 7)     // ase1-w2
	vip1   = addr(192, 23, 1, 2)   // ase1's VIP
	vip2   = addr(192, 23, 2, 2)   // ase2's VIP
	fe2    = addr(10, 0, 3, 4)     // ase2-fe1
	fe1    = addr(10, 0, 1, 4)     // ase1-fe1
	echo   = addr(203, 0, 113, 10) // the "what is my IP" host
	client = addr(198, 51, 100, 10)
	router = addr(198, 18, 0, 1) // a router on the emulated Internet
)

func addr(a, b, c, d byte) header.Addr { return header.AddrFrom4([4]byte{a, b, c, d}) }

func netIP(a header.Addr) net.IP { b := a.As4(); return net.IP(b[:]) }

// fakeClock is a Clock tests move by hand; atomic so that the race test
// can move it under the readers' feet.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() int64              { return c.ns.Load() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func newTable(t testing.TB, cfg Config) (*Table, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(int64(time.Hour)) // not 0, so a zero time stands out
	cfg.Clock = clk
	tbl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tbl, clk
}

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serializeOpts, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ipLayer(proto layers.IPProtocol, src, dst header.Addr) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, IHL: 5, TOS: 0, Id: 0x4d2, Flags: layers.IPv4DontFragment,
		TTL: 63, Protocol: proto, SrcIP: netIP(src), DstIP: netIP(dst),
	}
}

// tcpPkt is a segment with options and data, flags as given.
func tcpPkt(t testing.TB, k Key, flags uint8, payload string) []byte {
	t.Helper()
	ipl := ipLayer(layers.IPProtocolTCP, k.Src, k.Dst)
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(k.SrcPort), DstPort: layers.TCPPort(k.DstPort),
		Seq: 0x01020304, Ack: 0xa0b0c0d0, Window: 64240,
		FIN: flags&header.TCPFlagFIN != 0, SYN: flags&header.TCPFlagSYN != 0,
		RST: flags&header.TCPFlagRST != 0, PSH: flags&header.TCPFlagPSH != 0,
		ACK: flags&header.TCPFlagACK != 0,
		Options: []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 0, 0, 0, 2, 0}},
		},
	}
	if err := tcp.SetNetworkLayerForChecksum(ipl); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ipl, tcp, gopacket.Payload(payload))
}

func udpPkt(t testing.TB, k Key, payload string) []byte {
	t.Helper()
	ipl := ipLayer(layers.IPProtocolUDP, k.Src, k.Dst)
	udp := &layers.UDP{SrcPort: layers.UDPPort(k.SrcPort), DstPort: layers.UDPPort(k.DstPort)}
	if err := udp.SetNetworkLayerForChecksum(ipl); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ipl, udp, gopacket.Payload(payload))
}

// udpPktNoCsum is a datagram whose sender computed no checksum (field 0).
func udpPktNoCsum(t testing.TB, k Key, payload string) []byte {
	t.Helper()
	b := udpPkt(t, k, payload)
	binary.BigEndian.PutUint16(b[20+6:], 0)
	return b
}

func echoPkt(t testing.TB, k Key, typ uint8, payload string) []byte {
	t.Helper()
	return serialize(t, ipLayer(layers.IPProtocolICMPv4, k.Src, k.Dst),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: k.SrcPort, Seq: 3},
		gopacket.Payload(payload))
}

// icmpErrorPkt is an ICMP error from src to dst quoting orig, the way
// Linux builds one.
func icmpErrorPkt(t testing.TB, src, dst header.Addr, typ, code uint8, orig []byte) []byte {
	t.Helper()
	ipl := ipLayer(layers.IPProtocolICMPv4, src, dst)
	ipl.Flags = 0
	return serialize(t, ipl, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code)}, gopacket.Payload(orig))
}

func parse(t testing.TB, b []byte) header.IPv4 {
	t.Helper()
	ip, why := header.ParseIPv4(b)
	if why != header.OK {
		t.Fatalf("ParseIPv4: %v", why)
	}
	return ip
}

func keyOf(t testing.TB, b []byte) Key {
	t.Helper()
	k, ok := KeyOf(parse(t, b))
	if !ok {
		t.Fatalf("KeyOf refused %x", b)
	}
	return k
}

// decode parses pkt with gopacket, failing on any decoding error.
func decode(t testing.TB, pkt []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode packet: %v\n%x", el.Error(), pkt)
	}
	return p
}

// verify decodes pkt with gopacket and fails unless every checksum in it
// is correct by gopacket's computation (independent of ours) and by a
// plain RFC 1071 sum in the test. It returns the decoded tuple.
func verify(t testing.TB, what string, pkt []byte) Key {
	t.Helper()
	p := decode(t, pkt)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		_ = l.SetNetworkLayerForChecksum(ip)
	case *layers.UDP:
		_ = l.SetNetworkLayerForChecksum(ip)
	}
	err, bad := p.VerifyChecksums()
	if err != nil {
		t.Fatalf("%s: gopacket VerifyChecksums: %v", what, err)
	}
	for _, m := range bad {
		t.Errorf("%s: %v checksum %#04x, correct is %#04x", what, m.Layer.LayerType(), m.Actual, m.Correct)
	}
	if s := refSum(pkt[:ip.IHL*4], 0); s != 0xffff {
		t.Errorf("%s: IP header sums to %#04x, want 0xffff", what, s)
	}
	k := Key{Src: header.AddrFromSlice(ip.SrcIP.To4()), Dst: header.AddrFromSlice(ip.DstIP.To4()), Proto: uint8(ip.Protocol)}
	l4 := pkt[ip.IHL*4 : ip.Length]
	ph := uint32(k.Src>>16) + uint32(k.Src&0xffff) + uint32(k.Dst>>16) + uint32(k.Dst&0xffff) + uint32(k.Proto) + uint32(len(l4))
	switch l := p.TransportLayer().(type) {
	case *layers.TCP:
		k.SrcPort, k.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
		if s := refSum(l4, ph); s != 0xffff {
			t.Errorf("%s: TCP segment sums to %#04x, want 0xffff", what, s)
		}
	case *layers.UDP:
		k.SrcPort, k.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
		if l.Checksum != 0 {
			if s := refSum(l4, ph); s != 0xffff {
				t.Errorf("%s: UDP datagram sums to %#04x, want 0xffff", what, s)
			}
		}
	default:
		if ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok {
			k.SrcPort, k.DstPort = ic.Id, ic.Id
			if s := refSum(l4, 0); s != 0xffff {
				t.Errorf("%s: ICMP message sums to %#04x, want 0xffff", what, s)
			}
		}
	}
	return k
}

// refSum is RFC 1071's reference loop, a word at a time, with initial
// added: the oracle the package's incremental updates answer to.
func refSum(b []byte, initial uint32) uint16 {
	s := uint64(initial)
	for len(b) >= 2 {
		s += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func l4CsumOff(proto uint8) int {
	switch proto {
	case header.ProtoTCP:
		return 16
	case header.ProtoUDP:
		return 6
	}
	return 2
}

// makePartial turns pkt into what a stack hands a TUN with NEEDS_CSUM: the
// L4 checksum field holds the folded pseudo-header sum (ICMP, which has
// none, holds 0), and the virtio header says where to complete it.
func makePartial(pkt []byte) header.VirtioNetHdr {
	ip := header.IPv4(pkt)
	hl := ip.HeaderLen()
	l4 := pkt[hl:]
	off := l4CsumOff(ip.Protocol())
	var c uint16
	if ip.Protocol() != header.ProtoICMP {
		c = refSum(nil, header.PseudoHeaderSum(ip.Protocol(), ip.Src(), ip.Dst(), uint16(len(l4))))
	}
	binary.BigEndian.PutUint16(l4[off:], c)
	vnet := header.VirtioNetHdr(make([]byte, header.VirtioNetHdrLen))
	vnet.SetFlags(header.VirtioNetHdrFNeedsCsum)
	vnet.SetCsumStart(uint16(hl))
	vnet.SetCsumOffset(uint16(off))
	return vnet
}

// complete does what the receiving kernel does with a NEEDS_CSUM packet:
// sum from csum_start to the end, field included, and store the
// complement at csum_start+csum_offset.
func complete(pkt []byte, vnet header.VirtioNetHdr) {
	start, off := int(vnet.CsumStart()), int(vnet.CsumOffset())
	c := ^refSum(pkt[start:], 0)
	if c == 0 && header.IPv4(pkt).Protocol() == header.ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[start+off:], c)
}
