package header

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestBuildTCPReset(t *testing.T) {
	mk := func(syn, ack bool, payload int) IPv4 {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
			SrcIP: net.IP{10, 0, 1, 6}, DstIP: net.IP{203, 0, 113, 10}}
		tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: syn, ACK: ack, Seq: 1000, Ack: 5000, Window: 100}
		tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			ip, tcp, gopacket.Payload(make([]byte, payload)))
		p, _ := ParseIPv4(buf.Bytes())
		return p
	}
	for _, c := range []struct {
		name           string
		seg            IPv4
		wantSeq        uint32
		wantAck        uint32
		wantACKFlagSet bool
	}{
		{"SYN", mk(true, false, 0), 0, 1001, true},
		{"data with ACK", mk(false, true, 10), 5000, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst := make([]byte, 64)
			n := BuildTCPReset(dst, c.seg)
			if n != 40 {
				t.Fatalf("length %d, want 40", n)
			}
			p := gopacket.NewPacket(dst[:n], layers.LayerTypeIPv4, gopacket.Default)
			ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
			if ip.SrcIP.String() != "203.0.113.10" || ip.DstIP.String() != "10.0.1.6" || tcp.SrcPort != 80 || tcp.DstPort != 40000 {
				t.Fatalf("reset goes %v:%d -> %v:%d", ip.SrcIP, tcp.SrcPort, ip.DstIP, tcp.DstPort)
			}
			if !tcp.RST || tcp.ACK != c.wantACKFlagSet || tcp.Seq != c.wantSeq || tcp.Ack != c.wantAck {
				t.Fatalf("RST %v ACK %v seq %d ack %d; want ACK %v seq %d ack %d", tcp.RST, tcp.ACK, tcp.Seq, tcp.Ack, c.wantACKFlagSet, c.wantSeq, c.wantAck)
			}
			if !IPv4(dst[:n]).ChecksumValid() {
				t.Fatal("IP checksum wrong")
			}
			if Checksum(dst[20:n], PseudoHeaderSum(ProtoTCP, IPv4(dst).Src(), IPv4(dst).Dst(), 20)) != 0xffff {
				t.Fatal("TCP checksum wrong")
			}
		})
	}
	// Never a reset about a reset.
	rst := mk(false, true, 0)
	rst[IPv4MinLen+13] |= TCPFlagRST
	if BuildTCPReset(make([]byte, 64), rst) != 0 {
		t.Fatal("built a reset in answer to a reset")
	}
}
