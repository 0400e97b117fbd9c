package nat

import (
	"encoding/binary"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
)

// fuzzTable is a table with SNAT pools on the addresses fuzzKeys picks
// from, so that the fuzzer reaches pooled and unpooled translations.
func fuzzTable(t testing.TB) (*Table, *fakeClock) {
	return newTable(t, Config{MaxFlows: 8, Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 1100}, {Addr: vip2, Lo: 40000, Hi: 40000}}})
}

// fixChecksums makes pkt's checksums right, as a sender's stack would:
// the IP header's and, for an unfragmented TCP, UDP or ICMP packet long
// enough to hold one, the L4 checksum (UDP's length field set to the
// payload). With partial, the L4 field is left holding the pseudo-header
// sum and the returned virtio header says NEEDS_CSUM. It returns nil if
// pkt does not parse.
func fixChecksums(pkt []byte, partial bool) (header.IPv4, header.VirtioNetHdr) {
	ip, r := header.ParseIPv4(pkt)
	if r != header.OK {
		return nil, nil
	}
	var vnet header.VirtioNetHdr
	l4 := ip.Payload()
	switch off := l4CsumOff(ip.Protocol()); ip.Protocol() {
	case header.ProtoTCP, header.ProtoUDP, header.ProtoICMP:
		if ip.IsFragment() || len(l4) < off+2 {
			break
		}
		if ip.Protocol() == header.ProtoUDP {
			binary.BigEndian.PutUint16(l4[4:6], uint16(len(l4)))
		}
		if partial {
			vnet = makePartial(ip)
			break
		}
		binary.BigEndian.PutUint16(l4[off:], 0)
		c := ^refSum(l4, pseudo(ip))
		if c == 0 && ip.Protocol() == header.ProtoUDP {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[off:], c)
	}
	ip.SetChecksum(ip.ComputeChecksum())
	return ip, vnet
}

func pseudo(ip header.IPv4) uint32 {
	if ip.Protocol() == header.ProtoICMP {
		return 0
	}
	return header.PseudoHeaderSum(ip.Protocol(), ip.Src(), ip.Dst(), uint16(len(ip.Payload())))
}

// checkChecksums fails unless ip's IP checksum and, unless ip is a
// fragment, its L4 checksum verify; a NEEDS_CSUM one is completed first,
// as the receiving kernel does.
func checkChecksums(t *testing.T, what string, ip header.IPv4, vnet header.VirtioNetHdr) {
	t.Helper()
	if !ip.ChecksumValid() {
		t.Fatalf("%s: bad IP header checksum", what)
	}
	if ip.IsFragment() {
		return
	}
	if vnet != nil {
		complete(ip, vnet)
	}
	if s := refSum(ip.Payload(), pseudo(ip)); s != 0xffff {
		t.Fatalf("%s: L4 sums to %#04x", what, s)
	}
}

// fuzzAddr picks addresses of the lab's roles from a byte, so that the
// fuzzer meets SNAT pools, hairpins and plain forwarding, not only random
// addresses that never collide.
func fuzzAddr(b byte) header.Addr {
	addrs := [...]header.Addr{w1, w2, vip1, vip2, fe1, fe2, echo, client}
	if int(b) < len(addrs) {
		return addrs[b]
	}
	return header.Addr(uint32(b) * 0x01010101)
}

// FuzzTranslate inserts a flow for an arbitrary packet's tuple with an
// arbitrary translation, translates the packet, then makes the peer's reply
// from what arrived and translates it back. Nothing may panic; both
// packets must come out with the flow's tuples and valid checksums (full
// or NEEDS_CSUM); the reply must be found in the Reply direction.
func FuzzTranslate(f *testing.F) {
	f.Add(tcpPkt(f, Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 80, Proto: header.ProtoTCP}, header.TCPFlagSYN, "hi"), byte(2), byte(6), uint16(0), false)
	f.Add(udpPkt(f, Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 53, Proto: header.ProtoUDP}, "q"), byte(2), byte(6), uint16(1050), true)
	f.Add(udpPktNoCsum(f, Key{Src: client, Dst: vip1, SrcPort: 5000, DstPort: 80, Proto: header.ProtoUDP}, "q"), byte(7), byte(4), uint16(5000), false)
	f.Add(echoPkt(f, Key{Src: w1, Dst: echo, SrcPort: 7, DstPort: 7, Proto: header.ProtoICMP}, header.ICMPEchoRequest, "ping"), byte(3), byte(6), uint16(0), false)
	f.Add(tcpPkt(f, Key{Src: w1, Dst: vip2, SrcPort: 40000, DstPort: 80, Proto: header.ProtoTCP}, header.TCPFlagSYN, ""), byte(2), byte(5), uint16(40000), true)
	f.Fuzz(func(t *testing.T, pkt []byte, xsrc, xdst byte, xport uint16, partial bool) {
		pkt = append([]byte(nil), pkt...) // the fuzzer's copy must stay as it was: it is what a crasher file records
		tbl, _ := fuzzTable(t)
		ip, vnet := fixChecksums(pkt, partial)
		if ip == nil {
			return
		}
		k, ok := KeyOf(ip)
		if !ok {
			return
		}
		xl := Key{Src: fuzzAddr(xsrc), Dst: fuzzAddr(xdst), SrcPort: xport, DstPort: k.DstPort, Proto: k.Proto}
		if k.Proto == header.ProtoICMP {
			xl.DstPort = xport
		}
		now := tbl.Now()
		fl, err := tbl.Insert(k, xl, now)
		if err != nil {
			return
		}
		want := fl.Translated()
		if !fl.Translate(ip, vnet) {
			t.Fatal("Translate refused the packet its flow was made from")
		}
		checkChecksums(t, "original", ip, vnet)
		if got, _ := KeyOf(ip); got != want && !ip.IsFragment() {
			t.Fatalf("translated to %v, the flow says %v", got, want)
		}

		// The peer answers what it received.
		reply := append([]byte(nil), ip...)
		rip := header.IPv4(reply)
		rip.SetSrc(want.Dst)
		rip.SetDst(want.Src)
		l4 := rip.Payload()
		switch k.Proto {
		case header.ProtoTCP, header.ProtoUDP:
			binary.BigEndian.PutUint16(l4[0:2], want.DstPort)
			binary.BigEndian.PutUint16(l4[2:4], want.SrcPort)
		case header.ProtoICMP:
			l4[0] = header.ICMPEchoReply + header.ICMPEchoRequest - l4[0]
		}
		rip, rvnet := fixChecksums(reply, partial)
		rk, _ := KeyOf(rip)
		rf, ok := tbl.Lookup(rk, now)
		if !ok || rf.Dir() != Reply {
			t.Fatalf("reply %v not found in the Reply direction (found %v)", rk, ok)
		}
		rf.Translate(rip, rvnet)
		checkChecksums(t, "reply", rip, rvnet)
		if got, _ := KeyOf(rip); got != k.Reverse() {
			t.Fatalf("reply translated to %v, want %v", got, k.Reverse())
		}
	})
}

// FuzzTranslateICMPError feeds TranslateICMPError two kinds of error: one
// quoting a packet of a live flow as it left the table (cut to quote
// bytes), and raw, arbitrary bytes. Nothing may panic; an error it
// translates must keep valid outer checksums (the ICMP one completed first
// if NEEDS_CSUM), go to the flow's initiator, and quote the packet as the
// initiator sent it, with a valid IP header checksum and, when quoted
// whole, a valid L4 checksum.
func FuzzTranslateICMPError(f *testing.F) {
	k := Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 80, Proto: header.ProtoTCP}
	f.Add(tcpPkt(f, k, header.TCPFlagSYN, "x"), byte(2), uint16(28), byte(header.ICMPDestUnreachable), byte(6), false, []byte{})
	f.Add(udpPkt(f, Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 53, Proto: header.ProtoUDP}, "q"), byte(2), uint16(576), byte(header.ICMPTimeExceeded), byte(8), true, []byte{})
	f.Add(echoPkt(f, Key{Src: w1, Dst: echo, SrcPort: 9, DstPort: 9, Proto: header.ProtoICMP}, header.ICMPEchoRequest, "p"), byte(2), uint16(100), byte(header.ICMPDestUnreachable), byte(6), false,
		icmpErrorPkt(f, echo, vip1, header.ICMPDestUnreachable, 1, []byte{0x45, 0, 0, 28}))
	f.Fuzz(func(t *testing.T, pkt []byte, xsrc byte, quote uint16, typ, from byte, partial bool, raw []byte) {
		pkt, raw = append([]byte(nil), pkt...), append([]byte(nil), raw...) // see FuzzTranslate
		icmpErrorCase(t, pkt, xsrc, quote, typ, from, partial, raw)
	})
}

// icmpErrorCase is FuzzTranslateICMPError's body.
func icmpErrorCase(t *testing.T, pkt []byte, xsrc byte, quote uint16, typ, from byte, partial bool, raw []byte) {
	tbl, _ := fuzzTable(t)
	now := tbl.Now()
	ip, _ := fixChecksums(pkt, false)
	if ip == nil || ip.IsFragment() {
		return
	}
	k, ok := KeyOf(ip)
	if !ok {
		return
	}
	xl := k
	xl.Src = fuzzAddr(xsrc)
	fl, err := tbl.Insert(k, xl, now)
	if err != nil {
		return
	}
	fl.Translate(ip, nil)
	sent := fl.Translated()
	if rip, rvnet := fixChecksums(raw, partial); rip != nil && tbl.TranslateICMPError(rip, rvnet, now) {
		checkChecksums(t, "raw ICMP error", rip, rvnet)
	}
	// The error comes from the flow's peer or a router on the way,
	// about the packet as it left, to its translated source.
	errSrc := sent.Dst
	if from&1 != 0 {
		errSrc = router
	}
	q := ip[:min(int(quote), len(ip))]
	msg := append([]byte{typ, from, 0, 0, 0, 0, 0, 0}, q...)
	e := append(append([]byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, header.ProtoICMP, 0, 0}, make([]byte, 8)...), msg...)
	if len(e) > 0xffff {
		return
	}
	eip := header.IPv4(e)
	binary.BigEndian.PutUint16(e[2:4], uint16(len(e)))
	errSrc.Put(e[12:16])
	sent.Src.Put(e[16:20])
	eip, evnet := fixChecksums(eip, partial)
	wholeQuote := len(q) == len(ip)
	if !tbl.TranslateICMPError(eip, evnet, now) {
		return
	}
	checkChecksums(t, "ICMP error", eip, evnet)
	if eip.Dst() != k.Src {
		t.Fatalf("error goes to %v, want the initiator %v", eip.Dst(), k.Src)
	}
	inner := header.IPv4(eip.Payload()[header.ICMPv4MinLen:])
	ihl := inner.HeaderLen()
	if !header.IPv4(inner[:ihl]).ChecksumValid() {
		t.Fatal("quoted IP header checksum is wrong")
	}
	if inner.Src() != k.Src || inner.Dst() != k.Dst {
		t.Fatalf("quote is %v -> %v, want %v -> %v", inner.Src(), inner.Dst(), k.Src, k.Dst)
	}
	if wholeQuote {
		if s := refSum(inner[ihl:], pseudo(inner)); s != 0xffff {
			t.Fatalf("quoted L4 sums to %#04x", s)
		}
	}
}
