package header

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Addresses from the ASE model: a client behind the ILB, the ILB VIP, and
// the outbound SNAT address.
var (
	clientAddr = AddrFrom4([4]byte{10, 0, 1, 6})
	vipAddr    = AddrFrom4([4]byte{192, 23, 1, 2})
	snatAddr   = AddrFrom4([4]byte{52, 160, 7, 254})
	appAddr    = AddrFrom4([4]byte{10, 0, 2, 4})
	routerAddr = AddrFrom4([4]byte{10, 0, 1, 1})
)

func ip(a Addr) net.IP { b := a.As4(); return net.IP(b[:]) }

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, serializeOpts, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func ipv4Layer(proto layers.IPProtocol, src, dst Addr) *layers.IPv4 {
	return &layers.IPv4{
		Version: 4, IHL: 5, TOS: 0x10, Id: 0x1234, Flags: layers.IPv4DontFragment,
		TTL: 64, Protocol: proto, SrcIP: ip(src), DstIP: ip(dst),
	}
}

// tcpPacket is a client's SYN-ACK-ish segment to the VIP with options and data.
func tcpPacket(t testing.TB, src, dst Addr, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	ipl := ipv4Layer(layers.IPProtocolTCP, src, dst)
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport),
		Seq: 0x01020304, Ack: 0xa0b0c0d0, ACK: true, PSH: true, Window: 502,
		Options: []layers.TCPOption{
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

func udpPacket(t testing.TB, src, dst Addr, sport, dport uint16, payload []byte) []byte {
	t.Helper()
	ipl := ipv4Layer(layers.IPProtocolUDP, src, dst)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	if err := udp.SetNetworkLayerForChecksum(ipl); err != nil {
		t.Fatal(err)
	}
	return serialize(t, ipl, udp, gopacket.Payload(payload))
}

func echoRequest(t testing.TB, src, dst Addr, id, seq uint16, payload []byte) []byte {
	t.Helper()
	return serialize(t,
		ipv4Layer(layers.IPProtocolICMPv4, src, dst),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq},
		gopacket.Payload(payload))
}

// decode parses pkt with gopacket and fails the test on any decoding error.
func decode(t testing.TB, pkt []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("gopacket cannot decode packet: %v\n%x", el.Error(), pkt)
	}
	return p
}

// fromScratch decodes pkt with gopacket and serializes it again with every
// checksum computed anew, lengths as they are: the packet as it would be if
// nothing had been updated incrementally.
func fromScratch(t testing.TB, pkt []byte) []byte {
	t.Helper()
	p := decode(t, pkt)
	var ls []gopacket.SerializableLayer
	var nl *layers.IPv4
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.IPv4:
			nl = l
		case *layers.TCP:
			_ = l.SetNetworkLayerForChecksum(nl)
		case *layers.UDP:
			_ = l.SetNetworkLayerForChecksum(nl)
		}
		sl, ok := l.(gopacket.SerializableLayer)
		if !ok {
			t.Fatalf("layer %v is not serializable", l.LayerType())
		}
		ls = append(ls, sl)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, ls...); err != nil {
		t.Fatalf("gopacket serialize: %v", err)
	}
	return buf.Bytes()
}

// checkChecksums fails unless every checksum in pkt equals the one gopacket
// computes from scratch, naming the field that differs.
func checkChecksums(t testing.TB, what string, pkt []byte) {
	t.Helper()
	want := fromScratch(t, pkt)
	if bytes.Equal(pkt, want) {
		return
	}
	if len(pkt) != len(want) {
		t.Fatalf("%s: recomputed packet is %d bytes, want %d", what, len(want), len(pkt))
	}
	v := IPv4(pkt)
	if got, want := v.Checksum(), IPv4(want).Checksum(); got != want {
		t.Errorf("%s: IP header checksum %#04x, computed from scratch %#04x", what, got, want)
	}
	off := v.HeaderLen() + l4ChecksumOffset(v.Protocol())
	if got, want := binary.BigEndian.Uint16(pkt[off:]), binary.BigEndian.Uint16(want[off:]); got != want {
		t.Errorf("%s: L4 (proto %d) checksum %#04x, computed from scratch %#04x", what, v.Protocol(), got, want)
	}
	if !t.Failed() {
		t.Errorf("%s: packet differs from its recomputation outside checksums:\n got %x\nwant %x", what, pkt, want)
	}
}

func l4ChecksumOffset(proto uint8) int {
	switch proto {
	case ProtoTCP:
		return 16
	case ProtoUDP:
		return 6
	case ProtoICMP:
		return 2
	}
	panic(fmt.Sprintf("no checksum offset for proto %d", proto))
}

// refChecksum is RFC 1071's reference loop, one 16-bit word at a time, the
// oracle for Checksum.
func refChecksum(b []byte, initial uint32) uint16 {
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

// partialL4 replaces the L4 checksum of pkt with what a NEEDS_CSUM packet
// carries there: the folded, non-inverted pseudo-header sum.
func partialL4(pkt []byte) {
	v := IPv4(pkt)
	sum := Checksum(nil, PseudoHeaderSum(v.Protocol(), v.Src(), v.Dst(), uint16(len(v.Payload()))))
	binary.BigEndian.PutUint16(v.Payload()[l4ChecksumOffset(v.Protocol()):], sum)
}

// completeL4 does what the kernel does on output for a NEEDS_CSUM packet:
// sum from csum_start (the L4 header) to the end, the field's pseudo-header
// sum included, and store the complement.
func completeL4(pkt []byte) {
	v := IPv4(pkt)
	l4 := v.Payload()
	off := l4ChecksumOffset(v.Protocol())
	c := ^Checksum(l4, 0)
	if c == 0 && v.Protocol() == ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], c)
}
