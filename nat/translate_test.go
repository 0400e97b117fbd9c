package nat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/gopacket/gopacket/layers"
)

// natCase is one kind of translation: the flow as its initiator opens it,
// what the policy translates it to, and what it must become.
type natCase struct {
	name   string
	orig   Key // ports of ICMP are ignored and replaced by the echo ident
	xlated Key // as passed to Insert
	want   Key // the original direction after translation
}

func natCases(proto uint8) []natCase {
	k := func(src, dst header.Addr, sp, dp uint16) Key {
		if proto == header.ProtoICMP {
			dp = sp
		}
		return Key{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Proto: proto}
	}
	return []natCase{
		{ // F3: the port is free and in the pool, so it is kept
			name: "snat keeps port", orig: k(w1, echo, 50001, 80),
			xlated: k(vip1, echo, 50001, 80), want: k(vip1, echo, 50001, 80),
		},
		{ // F3: the port is outside the pool 50000-50001, so it changes
			name: "snat new port", orig: k(w1, echo, 40000, 80),
			xlated: k(vip1, echo, 40000, 80), want: k(vip1, echo, 50000, 80),
		},
		{ // F2: inbound on the VIP to a front-end, client address kept
			name: "dnat", orig: k(client, vip1, 33000, 443),
			xlated: k(client, fe1, 33000, 443), want: k(client, fe1, 33000, 443),
		},
		{ // F2: management on the VIP to another port of the front-end
			name: "dnat new port", orig: k(client, vip1, 33001, 454),
			xlated: k(client, fe1, 33001, 8454), want: k(client, fe1, 33001, 8454),
		},
		{ // F5: ase1 calls ase2's VIP; SNAT to vip1 and DNAT to ase2's front-end at once
			name: "hairpin", orig: k(w1, vip2, 40001, 80),
			xlated: k(vip1, fe2, 40001, 80), want: k(vip1, fe2, 50000, 80),
		},
		{ // a flow tracked for the NSG's sake only (F4: no NAT inside the VNet)
			name: "no nat", orig: k(w1, fe2, 40002, 1433),
			xlated: k(w1, fe2, 40002, 1433), want: k(w1, fe2, 40002, 1433),
		},
	}
}

// packetFor builds a packet with tuple k; reply says it is the answer
// (TCP SYN-ACK, ICMP echo reply).
func packetFor(t testing.TB, k Key, reply bool, kind string) []byte {
	t.Helper()
	payload := "hello, app1" // odd length on purpose
	if kind == "gso" {
		payload = strings.Repeat("0123456789abcdef", 250) + "!" // a 4 KB super-packet
	}
	switch k.Proto {
	case header.ProtoTCP:
		flags := header.TCPFlagSYN
		if reply {
			flags |= header.TCPFlagACK
		}
		return tcpPkt(t, k, flags, payload)
	case header.ProtoUDP:
		if kind == "udp0" {
			return udpPktNoCsum(t, k, payload)
		}
		return udpPkt(t, k, payload)
	default:
		typ := uint8(header.ICMPEchoRequest)
		if reply {
			typ = header.ICMPEchoReply
		}
		return echoPkt(t, k, typ, payload)
	}
}

// through translates pkt as the dataplane would, in the given checksum
// mode, and returns the translated tuple after checking every checksum.
func through(t *testing.T, tbl *Table, pkt []byte, kind string, wantDir Dir, what string) Key {
	t.Helper()
	ip := parse(t, pkt)
	k, ok := KeyOf(ip)
	if !ok {
		t.Fatalf("%s: KeyOf refused the packet", what)
	}
	f, ok := tbl.Lookup(k, tbl.Now())
	if !ok {
		t.Fatalf("%s: no flow for %v", what, k)
	}
	if f.Dir() != wantDir {
		t.Fatalf("%s: lookup of %v says direction %v, want %v", what, k, f.Dir(), wantDir)
	}
	var vnet header.VirtioNetHdr
	if kind == "partial" || kind == "gso" {
		vnet = makePartial(pkt)
		if kind == "gso" {
			typ := uint8(header.GSOTCPv4)
			if ip.Protocol() == header.ProtoUDP {
				typ = header.GSOUDPL4
			}
			vnet.SetGSOType(typ)
			vnet.SetGSOSize(1448)
		}
	}
	if !f.Translate(ip, vnet) {
		t.Fatalf("%s: Translate refused the packet", what)
	}
	if vnet != nil {
		if ip.Protocol() != header.ProtoICMP {
			// Before the kernel completes it, the field must be the
			// pseudo-header sum of the new addresses.
			l4 := ip.Payload()
			want := refSum(nil, header.PseudoHeaderSum(ip.Protocol(), ip.Src(), ip.Dst(), uint16(len(l4))))
			if got := binary.BigEndian.Uint16(l4[l4CsumOff(ip.Protocol()):]); got != want {
				t.Errorf("%s: partial checksum %#04x after translation, want the new pseudo-header sum %#04x", what, got, want)
			}
		}
		complete(pkt, vnet)
	}
	if kind == "udp0" {
		if c := binary.BigEndian.Uint16(pkt[20+6:]); c != 0 {
			t.Errorf("%s: UDP checksum 0 became %#04x; it must stay 0 (no checksum)", what, c)
		}
	}
	return verify(t, what, pkt)
}

// TestTranslateRoundTrips sends a packet through every kind of flow in
// both directions, for every protocol and checksum mode, and checks the
// tuples and every checksum with gopacket. F2, F3, F4, F5.
func TestTranslateRoundTrips(t *testing.T) {
	type mode struct {
		proto uint8
		kind  string // full, partial (NEEDS_CSUM), gso (NEEDS_CSUM super-packet), udp0 (no UDP checksum)
	}
	var modes []mode
	for _, p := range []uint8{header.ProtoTCP, header.ProtoUDP, header.ProtoICMP} {
		modes = append(modes, mode{p, "full"}, mode{p, "partial"})
	}
	modes = append(modes, mode{header.ProtoUDP, "udp0"}, mode{header.ProtoTCP, "gso"}, mode{header.ProtoUDP, "gso"})
	for _, m := range modes {
		for _, c := range natCases(m.proto) {
			t.Run(fmt.Sprintf("%s/%s/%s", ProtoName(m.proto), m.kind, c.name), func(t *testing.T) {
				tbl, _ := newTable(t, Config{MaxFlows: 64, Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50001}}})
				f, err := tbl.Insert(c.orig, c.xlated, tbl.Now())
				if err != nil {
					t.Fatalf("Insert(%v, %v): %v", c.orig, c.xlated, err)
				}
				if f.Translated() != c.want {
					t.Fatalf("Insert(%v, %v) translates to %v, want %v", c.orig, c.xlated, f.Translated(), c.want)
				}
				out := packetFor(t, c.orig, false, m.kind)
				if got := through(t, tbl, out, m.kind, Original, "original direction"); got != c.want {
					t.Errorf("packet %v left as %v, want %v", c.orig, got, c.want)
				}
				back := packetFor(t, c.want.Reverse(), true, m.kind)
				if got, want := through(t, tbl, back, m.kind, Reply, "reply direction"), c.orig.Reverse(); got != want {
					t.Errorf("reply %v arrived as %v, want %v", c.want.Reverse(), got, want)
				}
			})
		}
	}
}

// TestSNATRoundTripTCP is F3 as a learner checks it: 10.0.1.6:40000 leaves
// as 192.23.1.2:40000 and the reply comes back to 10.0.1.6:40000.
func TestSNATRoundTripTCP(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	orig := Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 80, Proto: header.ProtoTCP}
	syn := tcpPkt(t, orig, header.TCPFlagSYN, "")
	ip := parse(t, syn)
	k := keyOf(t, syn)
	if _, ok := tbl.Lookup(k, tbl.Now()); ok {
		t.Fatal("empty table found a flow")
	}
	x := k
	x.Src = vip1
	f, err := tbl.Insert(k, x, tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.Translate(ip, nil)
	if got := verify(t, "SYN", syn); got.Src != vip1 || got.SrcPort != 40000 {
		t.Errorf("echo saw the SYN from %v:%d, want VIP %v:40000 (F3)", got.Src, got.SrcPort, vip1)
	}
	synack := tcpPkt(t, Key{Src: echo, Dst: vip1, SrcPort: 80, DstPort: 40000, Proto: header.ProtoTCP}, header.TCPFlagSYN|header.TCPFlagACK, "")
	f, ok := tbl.Lookup(keyOf(t, synack), tbl.Now())
	if !ok || f.Dir() != Reply {
		t.Fatalf("SYN-ACK to the VIP: found=%v dir=%v, want the flow in the reply direction", ok, f.Dir())
	}
	f.Translate(parse(t, synack), nil)
	if got := verify(t, "SYN-ACK", synack); got.Dst != w1 || got.DstPort != 40000 {
		t.Errorf("SYN-ACK delivered to %v:%d, want %v:40000", got.Dst, got.DstPort, w1)
	}
	fl := tbl.Flows()
	if len(fl) != 1 {
		t.Fatalf("Flows() has %d flows, want 1", len(fl))
	}
	if got := fl[0].Translated().String(); got != "tcp 192.23.1.2:40000 -> 203.0.113.10:80" {
		t.Errorf("emulator flows would show the translated tuple as %q", got)
	}
	if fl[0].State != StateEstablished {
		t.Errorf("state after SYN, SYN-ACK is %v, want established", fl[0].State)
	}
}

// TestUDPZeroChecksumTranslated checks the field of a checksum-less
// datagram stays 0 through SNAT and back, while the addresses and ports
// change.
func TestUDPZeroChecksumTranslated(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50000}}})
	orig := Key{Src: w1, Dst: echo, SrcPort: 5353, DstPort: 7, Proto: header.ProtoUDP}
	f, err := tbl.Insert(orig, Key{Src: vip1, Dst: echo, SrcPort: 5353, DstPort: 7, Proto: header.ProtoUDP}, tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	pkt := udpPktNoCsum(t, orig, "x")
	f.Translate(parse(t, pkt), nil)
	got := verify(t, "udp0", pkt)
	if c := binary.BigEndian.Uint16(pkt[26:]); c != 0 {
		t.Errorf("UDP checksum 0 became %#04x", c)
	}
	if want := (Key{Src: vip1, Dst: echo, SrcPort: 50000, DstPort: 7, Proto: header.ProtoUDP}); got != want {
		t.Errorf("datagram left as %v, want %v", got, want)
	}
}

// TestUDPChecksumNeverBecomesZero picks a payload whose translated
// checksum computes to 0 and checks it goes out as 0xffff (RFC 768: 0
// would mean "no checksum").
func TestUDPChecksumNeverBecomesZero(t *testing.T) {
	tbl, _ := newTable(t, Config{})
	orig := Key{Src: w1, Dst: echo, SrcPort: 5353, DstPort: 7, Proto: header.ProtoUDP}
	x := orig
	x.Src = client // no pool for this address: ports kept
	// The payload word that makes the translated datagram sum to 0xffff
	// without its checksum field.
	probe := udpPkt(t, x, "\x00\x00")
	binary.BigEndian.PutUint16(probe[26:], 0)
	w := ^refSum(probe[20:], header.PseudoHeaderSum(header.ProtoUDP, client, echo, 10))
	f, err := tbl.Insert(orig, x, tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	pkt := udpPkt(t, orig, string([]byte{byte(w >> 8), byte(w)}))
	f.Translate(parse(t, pkt), nil)
	if c := binary.BigEndian.Uint16(pkt[26:]); c != 0xffff {
		t.Fatalf("translated UDP checksum is %#04x, want 0xffff (a computed 0 is sent as all ones)", c)
	}
	verify(t, "udp", pkt)
}

// snatOut sets up the SNAT flow w1:40000 -> echo:80 (TCP) or the ping
// w1 -> echo (ICMP) through vip1's two-port pool, so the port changes,
// and returns the packet as it left the dataplane.
func snatOut(t *testing.T, tbl *Table, proto uint8, partial bool) (Key, []byte) {
	t.Helper()
	orig := Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 80, Proto: proto}
	var out []byte
	switch proto {
	case header.ProtoICMP:
		orig.DstPort = orig.SrcPort
		out = echoPkt(t, orig, header.ICMPEchoRequest, "ping")
	case header.ProtoUDP:
		out = udpPkt(t, orig, "dns?")
	default:
		out = tcpPkt(t, orig, header.TCPFlagSYN, "")
	}
	x := orig
	x.Src = vip1
	f, err := tbl.Insert(orig, x, tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	var vnet header.VirtioNetHdr
	if partial {
		vnet = makePartial(out)
	}
	f.Translate(parse(t, out), vnet)
	return orig, out
}

// decodeQuote decodes the packet quoted by the ICMP error pkt.
func decodeQuote(t *testing.T, pkt []byte) []byte {
	t.Helper()
	p := decode(t, pkt)
	ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if !ok {
		t.Fatal("no ICMPv4 layer")
	}
	return ic.Payload
}

// TestTranslateICMPErrorTCP: time exceeded from an Internet router to the
// VIP, about a SYN that left through SNAT, reaches the worker quoting the
// SYN as the worker sent it, every checksum right (traceroute).
func TestTranslateICMPErrorTCP(t *testing.T) {
	for _, partial := range []bool{false, true} {
		t.Run(fmt.Sprintf("quote partial=%v", partial), func(t *testing.T) {
			tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50001}}})
			orig, out := snatOut(t, tbl, header.ProtoTCP, partial)
			errPkt := icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, out)
			if !tbl.TranslateICMPError(parse(t, errPkt), nil, tbl.Now()) {
				t.Fatal("TranslateICMPError did not find the flow")
			}
			outer := verify(t, "outer", errPkt)
			if outer.Src != router || outer.Dst != w1 {
				t.Errorf("error goes %v -> %v, want %v -> %v", outer.Src, outer.Dst, router, w1)
			}
			q := decodeQuote(t, errPkt)
			if partial {
				// The quote's TCP checksum was the partial sum the worker's
				// kernel left; it must now be that sum for w1's addresses.
				want := refSum(nil, header.PseudoHeaderSum(header.ProtoTCP, w1, echo, uint16(len(q)-20)))
				if got := binary.BigEndian.Uint16(q[20+16:]); got != want {
					t.Errorf("quoted partial TCP checksum %#04x, want pseudo-header sum %#04x", got, want)
				}
				if s := refSum(q[:20], 0); s != 0xffff {
					t.Errorf("quoted IP header sums to %#04x", s)
				}
				return
			}
			if got := verify(t, "quoted SYN", q); got != orig {
				t.Errorf("quoted SYN is %v, want %v as the worker sent it", got, orig)
			}
		})
	}
}

// TestTranslateICMPErrorTruncatedQuote: an error quoting only the IP
// header and 8 bytes (RFC 792's minimum) is translated too.
func TestTranslateICMPErrorTruncatedQuote(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50001}}})
	orig, out := snatOut(t, tbl, header.ProtoTCP, false)
	errPkt := icmpErrorPkt(t, router, vip1, header.ICMPDestUnreachable, header.ICMPFragNeeded, out[:28])
	binary.BigEndian.PutUint16(errPkt[20+6:], 1400) // next-hop MTU; the checksum is fixed below
	ic := errPkt[20:]
	binary.BigEndian.PutUint16(ic[2:], 0)
	binary.BigEndian.PutUint16(ic[2:], ^refSum(ic, 0))
	if !tbl.TranslateICMPError(parse(t, errPkt), nil, tbl.Now()) {
		t.Fatal("TranslateICMPError refused a minimal quote")
	}
	verify(t, "outer", errPkt)
	q := errPkt[28:]
	if s := refSum(q[:20], 0); s != 0xffff {
		t.Errorf("quoted IP header sums to %#04x", s)
	}
	got := Key{Src: header.AddrFromSlice(q[12:]), Dst: header.AddrFromSlice(q[16:]),
		SrcPort: binary.BigEndian.Uint16(q[20:]), DstPort: binary.BigEndian.Uint16(q[22:]), Proto: q[9]}
	if got != orig {
		t.Errorf("quote is %v, want %v", got, orig)
	}
}

// TestTranslateICMPErrorEcho: a time-exceeded about a ping through SNAT
// gets the echo identifier back (traceroute -I, ping's own errors).
func TestTranslateICMPErrorEcho(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50001}}})
	orig, out := snatOut(t, tbl, header.ProtoICMP, false)
	if k := keyOf(t, out); k.SrcPort != 50000 {
		t.Fatalf("ping left with ident %d, want 50000 from the pool", k.SrcPort)
	}
	errPkt := icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, out)
	if !tbl.TranslateICMPError(parse(t, errPkt), nil, tbl.Now()) {
		t.Fatal("TranslateICMPError did not find the ping's flow")
	}
	if got := verify(t, "outer", errPkt); got.Dst != w1 {
		t.Errorf("error delivered to %v, want %v", got.Dst, w1)
	}
	if got := verify(t, "quoted echo", decodeQuote(t, errPkt)); got != orig {
		t.Errorf("quoted echo is %v, want %v", got, orig)
	}
}

// TestTranslateICMPErrorFromDNATPeer: a front-end behind the VIP answers a
// client's UDP with port unreachable. The client must see it come from
// the VIP, quoting its datagram to the VIP (F2: the client only knows the
// VIP).
func TestTranslateICMPErrorFromDNATPeer(t *testing.T) {
	tbl, _ := newTable(t, Config{})
	orig := Key{Src: client, Dst: vip1, SrcPort: 33000, DstPort: 9999, Proto: header.ProtoUDP}
	x := orig
	x.Dst = fe1
	f, err := tbl.Insert(orig, x, tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	in := udpPkt(t, orig, "query")
	f.Translate(parse(t, in), nil)
	errPkt := icmpErrorPkt(t, fe1, client, header.ICMPDestUnreachable, header.ICMPPortUnreachable, in)
	if !tbl.TranslateICMPError(parse(t, errPkt), nil, tbl.Now()) {
		t.Fatal("TranslateICMPError did not find the flow")
	}
	if got := verify(t, "outer", errPkt); got.Src != vip1 || got.Dst != client {
		t.Errorf("error goes %v -> %v, want %v -> %v", got.Src, got.Dst, vip1, client)
	}
	if got := verify(t, "quoted datagram", decodeQuote(t, errPkt)); got != orig {
		t.Errorf("quote is %v, want %v", got, orig)
	}
}

// TestTranslateICMPErrorPartialOuter: an error handed over with
// NEEDS_CSUM (the field holds 0, ICMP having no pseudo-header) is
// completed correctly after translation.
func TestTranslateICMPErrorPartialOuter(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50001}}})
	orig, out := snatOut(t, tbl, header.ProtoUDP, false)
	errPkt := icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, out)
	vnet := makePartial(errPkt)
	if !tbl.TranslateICMPError(parse(t, errPkt), vnet, tbl.Now()) {
		t.Fatal("TranslateICMPError did not find the flow")
	}
	if c := binary.BigEndian.Uint16(errPkt[22:]); c != 0 {
		t.Errorf("partial ICMP checksum field became %#04x; the kernel sums the message itself", c)
	}
	complete(errPkt, vnet)
	verify(t, "outer", errPkt)
	if got := verify(t, "quote", decodeQuote(t, errPkt)); got != orig {
		t.Errorf("quote is %v, want %v", got, orig)
	}
}

func TestTranslateICMPErrorRefuses(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50001}}})
	_, out := snatOut(t, tbl, header.ProtoTCP, false)
	stranger := tcpPkt(t, Key{Src: vip1, Dst: echo, SrcPort: 50001, DstPort: 80, Proto: header.ProtoTCP}, header.TCPFlagSYN, "")
	echoReq := echoPkt(t, Key{Src: router, Dst: vip1, SrcPort: 9, DstPort: 9, Proto: header.ProtoICMP}, header.ICMPEchoRequest, "")
	cases := map[string][]byte{
		"no such flow":       icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, stranger),
		"wrong destination":  icmpErrorPkt(t, router, vip2, header.ICMPTimeExceeded, 0, out),
		"not an error":       echoReq,
		"quote too short":    icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, out[:27]),
		"quote not IPv4":     icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, append([]byte{0x65}, out[1:]...)),
		"not ICMP":           out,
		"quote's IHL broken": icmpErrorPkt(t, router, vip1, header.ICMPTimeExceeded, 0, append([]byte{0x4f}, out[1:30]...)),
	}
	for name, pkt := range cases {
		before := bytes.Clone(pkt)
		if tbl.TranslateICMPError(parse(t, pkt), nil, tbl.Now()) {
			t.Errorf("%s: translated", name)
		}
		if !bytes.Equal(before, pkt) {
			t.Errorf("%s: refused but changed the packet", name)
		}
	}
}

func TestKeyOf(t *testing.T) {
	tk := Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 80, Proto: header.ProtoTCP}
	uk := Key{Src: w1, Dst: echo, SrcPort: 5353, DstPort: 53, Proto: header.ProtoUDP}
	ek := Key{Src: w1, Dst: echo, SrcPort: 77, DstPort: 77, Proto: header.ProtoICMP}
	if got := keyOf(t, tcpPkt(t, tk, header.TCPFlagSYN, "")); got != tk {
		t.Errorf("TCP key %v, want %v", got, tk)
	}
	if got := keyOf(t, udpPkt(t, uk, "")); got != uk {
		t.Errorf("UDP key %v, want %v", got, uk)
	}
	req := keyOf(t, echoPkt(t, ek, header.ICMPEchoRequest, ""))
	rep := keyOf(t, echoPkt(t, ek.Reverse(), header.ICMPEchoReply, ""))
	if req != ek || rep != ek.Reverse() || rep.Reverse() != req {
		t.Errorf("echo request key %v, reply key %v: want %v and its mirror", req, rep, ek)
	}

	frag := tcpPkt(t, tk, header.TCPFlagACK, "data")
	binary.BigEndian.PutUint16(frag[6:], 185) // offset 1480: not the first fragment
	first := tcpPkt(t, tk, header.TCPFlagACK, "data")
	binary.BigEndian.PutUint16(first[6:], 0x2000) // MF, offset 0: the first fragment has the ports
	refuse := map[string][]byte{
		"non-first fragment": frag,
		"ICMP error":         icmpErrorPkt(t, router, w1, header.ICMPTimeExceeded, 0, first),
		"short TCP":          truncate(tcpPkt(t, tk, 0, ""), 20+19),
		"short UDP":          truncate(udpPkt(t, uk, ""), 20+7),
		"short ICMP":         truncate(echoPkt(t, ek, header.ICMPEchoRequest, ""), 20+7),
		"GRE":                protoPkt(47),
	}
	for name, b := range refuse {
		if k, ok := KeyOf(parse(t, b)); ok {
			t.Errorf("%s: KeyOf gave %v, want refusal", name, k)
		}
	}
	if got := keyOf(t, first); got != tk {
		t.Errorf("first fragment key %v, want %v", got, tk)
	}
	if s := tk.String(); s != "tcp 10.0.1.6:40000 -> 203.0.113.10:80" {
		t.Errorf("String = %q", s)
	}
	if s := ek.String(); s != "icmp 10.0.1.6 -> 203.0.113.10 id 77" {
		t.Errorf("String = %q", s)
	}
}

// truncate cuts pkt to n bytes and fixes the IP total length to match.
func truncate(pkt []byte, n int) []byte {
	pkt = pkt[:n]
	binary.BigEndian.PutUint16(pkt[2:], uint16(n))
	return pkt
}

func protoPkt(proto uint8) []byte {
	b := make([]byte, 40)
	b[0], b[9] = 0x45, proto
	binary.BigEndian.PutUint16(b[2:], 40)
	return b
}

// TestTranslateRefusesShortPacket: a handle used on a packet too short for
// its protocol leaves it alone rather than panicking.
func TestTranslateRefusesShortPacket(t *testing.T) {
	tbl, _ := newTable(t, Config{})
	k := Key{Src: w1, Dst: echo, SrcPort: 1, DstPort: 2, Proto: header.ProtoTCP}
	f, err := tbl.Insert(k, Key{Src: vip1, Dst: echo, SrcPort: 1, DstPort: 2, Proto: header.ProtoTCP}, tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	short := truncate(udpPkt(t, k, ""), 28)
	before := bytes.Clone(short)
	if f.Translate(parse(t, short), nil) || !bytes.Equal(before, short) {
		t.Error("Translate changed a packet too short for TCP")
	}
}
