package header

import "encoding/binary"

// BuildTCPReset writes into dst the RST that refuses seg, a TCP segment
// from ParseIPv4, as if from seg's destination (RFC 793, "Reset
// Generation"), and returns its length: 40 bytes, or 0 if seg is not an
// unfragmented TCP segment with a whole header, is itself a RST, or dst is
// shorter than 40 bytes. The dataplane refuses a connection it cannot
// translate (F17: SNAT ports exhausted) this way, so the caller's connect()
// fails at once instead of timing out.
func BuildTCPReset(dst []byte, seg IPv4) int {
	const n = IPv4MinLen + TCPMinLen
	if len(dst) < n || len(seg) < IPv4MinLen || seg.Protocol() != ProtoTCP || seg.IsFragment() {
		return 0
	}
	hl := seg.HeaderLen()
	if hl > len(seg) {
		return 0
	}
	tcp, why := ParseTCP(seg[hl:])
	if why != OK || tcp.Flags()&TCPFlagRST != 0 {
		return 0
	}
	r := TCP(dst[IPv4MinLen:n])
	binary.BigEndian.PutUint16(r[0:2], tcp.DstPort())
	binary.BigEndian.PutUint16(r[2:4], tcp.SrcPort())
	if tcp.Flags()&TCPFlagACK != 0 {
		// <SEQ=SEG.ACK><CTL=RST>
		binary.BigEndian.PutUint32(r[4:8], tcp.Ack())
		binary.BigEndian.PutUint32(r[8:12], 0)
		r[13] = TCPFlagRST
	} else {
		// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; SYN and FIN count one each.
		segLen := uint32(len(tcp) - tcp.DataOffset())
		if tcp.Flags()&TCPFlagSYN != 0 {
			segLen++
		}
		if tcp.Flags()&TCPFlagFIN != 0 {
			segLen++
		}
		binary.BigEndian.PutUint32(r[4:8], 0)
		binary.BigEndian.PutUint32(r[8:12], tcp.Seq()+segLen)
		r[13] = TCPFlagRST | TCPFlagACK
	}
	r[12] = 5 << 4
	binary.BigEndian.PutUint16(r[14:16], 0) // window
	binary.BigEndian.PutUint16(r[16:18], 0) // checksum, below
	binary.BigEndian.PutUint16(r[18:20], 0) // urgent pointer
	from, to := seg.Dst(), seg.Src()
	r.SetChecksum(^Checksum(r, PseudoHeaderSum(ProtoTCP, from, to, TCPMinLen)))
	putIPv4Header(dst, 0, n, ProtoTCP, from, to)
	return n
}
