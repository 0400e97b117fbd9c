package dataplane

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/tun"
	"github.com/aseemu/emulator/topology"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// memDev is an in-memory tun.Device: the test plays the node's kernel,
// sending with inject and receiving with recv.
type memDev struct {
	name   string
	in     chan []byte   // node -> dataplane
	burst  chan [][]byte // node -> dataplane, read at once (injectBurst)
	out    chan []byte   // dataplane -> node
	closed chan struct{}
	batch  int // the most packets a Read returns; 0 means 1
}

func newMemDev(name string) *memDev {
	return &memDev{name: name, in: make(chan []byte, 64), burst: make(chan [][]byte, 4),
		out: make(chan []byte, 64), closed: make(chan struct{})}
}

func (d *memDev) Read(bufs [][]byte, sizes []int) (int, error) {
	select {
	case p := <-d.in:
		sizes[0] = copy(bufs[0], p)
		return 1, nil
	case ps := <-d.burst:
		if len(ps) > len(bufs) {
			panic("memDev: a burst larger than the device's batch")
		}
		for i, p := range ps {
			sizes[i] = copy(bufs[i], p)
		}
		return len(ps), nil
	case <-d.closed:
		return 0, os.ErrClosed
	}
}

func (d *memDev) Write(bufs [][]byte) (int, error) {
	for _, b := range bufs {
		d.out <- append([]byte(nil), b...)
	}
	return len(bufs), nil
}

func (d *memDev) BatchSize() int { return max(d.batch, 1) }
func (d *memDev) Name() string   { return d.name }
func (d *memDev) Close() error {
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
	return nil
}

// inject sends an IPv4 packet from the node, with a virtio-net header.
func (d *memDev) inject(vnet []byte, ip []byte) {
	if vnet == nil {
		vnet = make([]byte, header.VirtioNetHdrLen)
	}
	d.in <- append(append([]byte(nil), vnet...), ip...)
}

// injectBurst sends packets (each with its virtio-net header) that the
// dataplane reads in one Read, as it reads a queue's backlog. The device
// needs a batch of at least len(pkts).
func (d *memDev) injectBurst(pkts ...[]byte) { d.burst <- pkts }

// recv returns the next IPv4 packet the dataplane delivered to the node,
// decoded, or fails the test after a timeout.
func (d *memDev) recv(t *testing.T) gopacket.Packet {
	t.Helper()
	select {
	case b := <-d.out:
		return gopacket.NewPacket(b[header.VirtioNetHdrLen:], layers.LayerTypeIPv4, gopacket.Default)
	case <-timeout():
		t.Fatalf("%s: no packet delivered", d.name)
		return nil
	}
}

// timeout is how long a test waits for a packet that should come.
func timeout() <-chan time.Time { return time.After(2 * time.Second) }

func (d *memDev) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case b := <-d.out:
		t.Fatalf("%s: unexpected packet delivered: %x", d.name, b)
	case <-time.After(100 * time.Millisecond):
	}
}

type lab struct {
	e    *Engine
	devs map[string]*memDev
}

// newLab runs an engine over the default lab with in-memory devices. mtu
// overrides the MTU of single nodes.
func newLab(t *testing.T, mtu map[string]int) *lab {
	t.Helper()
	return newLabFrom(t, topology.Default(), mtu)
}

func newLabFrom(t *testing.T, topo *topology.Topology, mtu map[string]int, opts ...func(*memDev)) *lab {
	t.Helper()
	l := &lab{devs: map[string]*memDev{}}
	var specs []PortSpec
	for _, n := range topo.Nodes {
		d := newMemDev(n.Name)
		for _, o := range opts {
			o(d)
		}
		l.devs[n.Name] = d
		specs = append(specs, PortSpec{Node: n, Dev: d, MTU: mtu[n.Name]})
	}
	e, err := New(topo, specs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	l.e = e
	e.Start()
	t.Cleanup(func() { e.Close() })
	return l
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func tcpSYN(t testing.TB, src, dst string, ttl uint8, payload int) []byte {
	ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: layers.IPProtocolTCP, Flags: layers.IPv4DontFragment,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 65535}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp, gopacket.Payload(make([]byte, payload)))
}

func icmpEcho(t testing.TB, src, dst string) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1}
	return serialize(t, ip, icmp, gopacket.Payload([]byte("ping payload")))
}

// checkIPv4 asserts that p decoded cleanly and its IP header checksum is
// right.
func checkIPv4(t *testing.T, p gopacket.Packet) *layers.IPv4 {
	t.Helper()
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("delivered packet does not decode: %v", el.Error())
	}
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !header.IPv4(ip.Contents).ChecksumValid() {
		t.Fatalf("IP checksum %#04x is wrong", ip.Checksum)
	}
	return ip
}

// icmpError asserts that p is an ICMP error of the given type and code from
// src, quoting a packet whose destination is quotedDst.
func icmpError(t *testing.T, p gopacket.Packet, typ, code uint8, src, quotedDst string) *layers.ICMPv4 {
	t.Helper()
	ip := checkIPv4(t, p)
	icmpL := p.Layer(layers.LayerTypeICMPv4)
	if icmpL == nil {
		t.Fatalf("want ICMP %d/%d, got %v", typ, code, p)
	}
	icmp := icmpL.(*layers.ICMPv4)
	if got := icmp.TypeCode; got.Type() != typ || got.Code() != code {
		t.Fatalf("got ICMP %v, want type %d code %d", got, typ, code)
	}
	if ip.SrcIP.String() != src {
		t.Fatalf("ICMP error comes from %v, want the gateway %s", ip.SrcIP, src)
	}
	if header.Checksum(ip.Payload, 0) != 0xffff {
		t.Fatalf("ICMP checksum is wrong")
	}
	quoted := header.IPv4(icmp.Payload)
	if len(quoted) < header.IPv4MinLen || quoted.Dst().String() != quotedDst {
		t.Fatalf("ICMP error does not quote the packet for %s: %x", quotedDst, icmp.Payload)
	}
	return icmp
}

// F4's "inside the VNet" half, at the engine level: db1 reaches ase1-w1
// with its own address, one hop further.
func TestForwardDecrementsTTLAndKeepsAddresses(t *testing.T) {
	l := newLab(t, nil)
	l.devs["db1"].inject(nil, tcpSYN(t, "10.0.2.4", "10.0.1.6", 64, 100))
	p := l.devs["ase1-w1"].recv(t)
	ip := checkIPv4(t, p)
	if ip.SrcIP.String() != "10.0.2.4" || ip.DstIP.String() != "10.0.1.6" {
		t.Fatalf("ase1-w1 saw %v -> %v, want 10.0.2.4 -> 10.0.1.6 (no NAT inside the VNet)", ip.SrcIP, ip.DstIP)
	}
	if ip.TTL != 63 {
		t.Fatalf("TTL %d, want 63", ip.TTL)
	}
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !tcp.SYN || tcp.DstPort != 80 || len(tcp.Payload) != 100 {
		t.Fatalf("TCP header or payload changed: %+v", tcp)
	}
}

// All traffic passes through the dataplane, including within one subnet.
func TestForwardWithinSubnet(t *testing.T) {
	l := newLab(t, nil)
	l.devs["ase1-w1"].inject(nil, tcpSYN(t, "10.0.1.6", "10.0.1.7", 64, 0))
	checkIPv4(t, l.devs["ase1-w2"].recv(t))
	tx := func() uint64 { return l.e.Stats()[l.portIndex("ase1-w2")].TxPackets }
	for deadline := time.Now().Add(2 * time.Second); tx() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // counted just after the write that delivered it
	}
	if got := tx(); got != 1 {
		t.Fatalf("ase1-w2 tx packets = %d, want 1", got)
	}
}

// A burst's packets reach the ports' counters when the burst ends, each
// on its own port's, whichever order the destinations come in.
func TestCountersAddedOnceABurst(t *testing.T) {
	e := nullEngine(t)
	in := e.PortByNode("db1")
	w := newWorker(0)
	type counts struct{ RxPackets, RxBytes, TxPackets, TxBytes uint64 }
	want := map[string]counts{}
	for i, to := range []string{"ase1-w1", "ase1-w1", "ase1-w2", "ase1-w1", "ase1-w2"} {
		dst := e.PortByNode(to).node().Addr.String()
		pkt := append(make([]byte, header.VirtioNetHdrLen), tcpSYN(t, "10.0.2.4", dst, 64, 10*i)...)
		e.forward(e.cur.Load(), in, pkt, e.ct.Now(), w)
		rx, tx := want["db1"], want[to]
		rx.RxPackets, rx.RxBytes = rx.RxPackets+1, rx.RxBytes+uint64(len(pkt))
		want["db1"] = rx
		tx.TxPackets, tx.TxBytes = tx.TxPackets+1, tx.TxBytes+uint64(len(pkt))
		want[to] = tx
	}
	e.flush(w)
	for _, st := range e.Stats() {
		got := counts{st.RxPackets, st.RxBytes, st.TxPackets, st.TxBytes}
		if got != want[st.Node] {
			t.Errorf("%s: counted %+v, want %+v", st.Node, got, want[st.Node])
		}
	}
}

// expectDrops waits for the drop counter of reason r to reach n: the
// engine counts a drop after it has sent whatever answers the packet, so
// the answer can reach the test first.
func (l *lab) expectDrops(t *testing.T, r DropReason, n uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for l.e.Drops(r) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := l.e.Drops(r); got != n {
		t.Fatalf("%s drops = %d, want %d", r, got, n)
	}
}

func (l *lab) portIndex(node string) int {
	for i, p := range l.e.cur.Load().ports {
		if p.node().Name == node {
			return i
		}
	}
	return -1
}

func TestTTLExceededFromIngressGateway(t *testing.T) {
	l := newLab(t, nil)
	l.devs["db1"].inject(nil, tcpSYN(t, "10.0.2.4", "10.0.1.6", 1, 0))
	icmpError(t, l.devs["db1"].recv(t), header.ICMPTimeExceeded, 0, "10.0.2.1", "10.0.1.6")
	l.devs["ase1-w1"].expectNothing(t)
	l.expectDrops(t, DropTTLExceeded, 1)
}

func TestUnreachable(t *testing.T) {
	l := newLab(t, nil)
	// In ase1-subnet, but no node holds .50: host unreachable.
	l.devs["db1"].inject(nil, tcpSYN(t, "10.0.2.4", "10.0.1.50", 64, 0))
	icmpError(t, l.devs["db1"].recv(t), header.ICMPDestUnreachable, header.ICMPHostUnreachable, "10.0.2.1", "10.0.1.50")
	// Outside every network the lab knows: net unreachable.
	l.devs["client"].inject(nil, tcpSYN(t, "198.51.100.10", "8.8.8.8", 64, 0))
	icmpError(t, l.devs["client"].recv(t), header.ICMPDestUnreachable, header.ICMPNetUnreachable, "198.51.100.1", "8.8.8.8")
	l.expectDrops(t, DropHostUnreachable, 1)
	l.expectDrops(t, DropNoRoute, 1)
}

// A ping of a subnet's broadcast or network address (ping -b) gets no
// answer and no error: RFC 1812 sends no ICMP error about a broadcast, and
// Azure carries none. It got "Destination Host Unreachable" from the
// gateway.
func TestBroadcastDroppedSilently(t *testing.T) {
	l := newLab(t, nil)
	for _, dst := range []string{"10.0.1.63", "10.0.1.0", "10.0.2.255"} {
		l.devs["ase1-w1"].inject(nil, icmpEcho(t, "10.0.1.6", dst))
	}
	l.devs["client"].inject(nil, udpDatagram(t, "198.51.100.10", 40000, "198.51.100.255", 9, 1, 8))
	l.devs["ase1-w1"].expectNothing(t)
	l.devs["client"].expectNothing(t)
	l.expectDrops(t, DropBroadcast, 4)
	r, err := l.e.Verify(VerifyQuery{From: "ase1-w1", To: netip.MustParseAddr("10.0.1.63"), Proto: header.ProtoICMP})
	if err != nil || r.Allow || r.Reason != "broadcast" {
		t.Errorf("verify ase1-w1 -> 10.0.1.63: %+v, %v; want denied, reason broadcast", r, err)
	}
}

func TestGatewayAnswersPing(t *testing.T) {
	l := newLab(t, nil)
	l.devs["db1"].inject(nil, icmpEcho(t, "10.0.2.4", "10.0.2.1"))
	p := l.devs["db1"].recv(t)
	ip := checkIPv4(t, p)
	icmp := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.SrcIP.String() != "10.0.2.1" || icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Id != 7 || string(icmp.Payload) != "ping payload" {
		t.Fatalf("bad echo reply: %v", p)
	}
}

// A UDP probe of another subnet's gateway is answered from that gateway,
// as a router answers from the address the packet was for: traceroute -n
// 10.0.1.1 from db1 ends at 10.0.1.1, not at db1's own gateway 10.0.2.1.
// TCP gets nothing, as from Azure's gateway.
func TestGatewayAnswersFromAddressProbed(t *testing.T) {
	l := newLab(t, nil)
	l.devs["db1"].inject(nil, udpDatagram(t, "10.0.2.4", 40000, "10.0.1.1", 33434, 1, 32))
	icmpError(t, l.devs["db1"].recv(t), header.ICMPDestUnreachable, header.ICMPPortUnreachable, "10.0.1.1", "10.0.1.1")
	l.devs["db1"].inject(nil, tcpSYN(t, "10.0.2.4", "10.0.1.1", 64, 0))
	l.devs["db1"].expectNothing(t)
	l.expectDrops(t, DropToGateway, 2)
}

// A VNet's gateway is a private address: an Internet host's ping of it is
// dropped like one to any private address, not answered.
func TestInternetCannotReachVNetGateway(t *testing.T) {
	l := newLab(t, nil)
	l.devs["client"].inject(nil, icmpEcho(t, "198.51.100.10", "10.0.1.1"))
	l.devs["client"].expectNothing(t)
	l.expectDrops(t, DropInternetToPrivate, 1)
	// traceroute's first probe expires at client's own router, as one to
	// any private address does, rather than vanishing.
	l.devs["client"].inject(nil, tcpSYN(t, "198.51.100.10", "10.0.1.1", 1, 0))
	icmpError(t, l.devs["client"].recv(t), header.ICMPTimeExceeded, 0, "198.51.100.1", "10.0.1.1")
	l.devs["client"].inject(nil, icmpEcho(t, "198.51.100.10", "198.51.100.1"))
	if ip := checkIPv4(t, l.devs["client"].recv(t)); ip.SrcIP.String() != "198.51.100.1" {
		t.Fatalf("client's ping of its own gateway answered from %v", ip.SrcIP)
	}
}

func TestFragNeededWhenDFExceedsEgressMTU(t *testing.T) {
	l := newLab(t, map[string]int{"ase1-w1": 1400})
	l.devs["db1"].inject(nil, tcpSYN(t, "10.0.2.4", "10.0.1.6", 64, 1400)) // 1440 bytes, DF
	icmp := icmpError(t, l.devs["db1"].recv(t), header.ICMPDestUnreachable, header.ICMPFragNeeded, "10.0.2.1", "10.0.1.6")
	if mtu := icmp.Seq; mtu != 1400 { // the next-hop MTU sits where an echo's sequence would
		t.Fatalf("frag-needed carries MTU %d, want 1400", mtu)
	}
	l.devs["ase1-w1"].expectNothing(t)
}

// A GSO super-packet is larger than the MTU but its segments are not: it
// must pass whole, with its virtio-net header intact.
func TestGSOSuperPacketPasses(t *testing.T) {
	l := newLab(t, nil)
	pkt := tcpSYN(t, "10.0.2.4", "10.0.1.6", 64, 30000)
	vnet := gsoTCPHeader()
	l.devs["db1"].inject(vnet, pkt)
	select {
	case b := <-l.devs["ase1-w1"].out:
		got := header.VirtioNetHdr(b[:header.VirtioNetHdrLen])
		if got.GSOType() != header.GSOTCPv4 || got.GSOSize() != 1448 || got.CsumStart() != 20 {
			t.Fatalf("virtio-net header changed in transit: %x", b[:header.VirtioNetHdrLen])
		}
		if len(b)-header.VirtioNetHdrLen != len(pkt) {
			t.Fatalf("super-packet length %d, want %d", len(b)-header.VirtioNetHdrLen, len(pkt))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("GSO super-packet not delivered")
	}
}

func TestMalformedIsCountedAndGoodTrafficFlows(t *testing.T) {
	l := newLab(t, nil)
	db1 := l.devs["db1"]
	good := tcpSYN(t, "10.0.2.4", "10.0.1.6", 64, 0)
	v6 := append([]byte{0x60}, make([]byte, 39)...)
	badIHL := append([]byte(nil), good...)
	badIHL[0] = 0x43
	badLen := append([]byte(nil), good...)
	badLen[2], badLen[3] = 0xff, 0xff
	for _, b := range [][]byte{good[:10], v6, badIHL, badLen} {
		db1.inject(nil, b)
	}
	db1.in <- []byte{1, 2, 3} // shorter than a virtio-net header
	db1.inject(nil, good)
	checkIPv4(t, l.devs["ase1-w1"].recv(t))
	want := map[DropReason]uint64{DropTruncated: 2, DropNotIPv4: 1, DropBadIHL: 1, DropBadTotalLength: 1}
	for r, n := range want {
		l.expectDrops(t, r, n)
	}
}

// resetTTL puts the TTL back to 64 so a packet forwarded over and over never
// runs out of it.
func resetTTL(pkt []byte) {
	ip := header.IPv4(pkt[header.VirtioNetHdrLen:])
	ip[8] = 64
	ip.SetChecksum(ip.ComputeChecksum())
}

// gsoTCPHeader is the virtio-net header a TSO-enabled stack puts on a TCP
// super-packet: NEEDS_CSUM at the TCP checksum, segments of 1448 bytes.
func gsoTCPHeader() []byte {
	vnet := make([]byte, header.VirtioNetHdrLen)
	v := header.VirtioNetHdr(vnet)
	v.SetFlags(header.VirtioNetHdrFNeedsCsum)
	v.SetGSOType(header.GSOTCPv4)
	v.SetGSOSize(1448)
	v.SetHdrLen(40)
	v.SetCsumStart(20)
	v.SetCsumOffset(16)
	return vnet
}

// nullDev swallows writes, so the benchmark measures the pipeline alone.
type nullDev struct{ memDev }

func (nullDev) Write(bufs [][]byte) (int, error) { return len(bufs), nil }

// nullEngine is an engine over the default lab whose devices swallow
// writes: the pipeline alone, for allocation tests and benchmarks.
func nullEngine(tb testing.TB) *Engine {
	topo := topology.Default()
	var specs []PortSpec
	for _, n := range topo.Nodes {
		specs = append(specs, PortSpec{Node: n, Dev: &nullDev{}})
	}
	e, err := New(topo, specs, Config{})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// recvAny waits for a packet delivered to any of nodes and returns which
// node got it and the packet.
func (l *lab) recvAny(t *testing.T, nodes ...string) (string, gopacket.Packet) {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		for _, n := range nodes {
			select {
			case b := <-l.devs[n].out:
				return n, gopacket.NewPacket(b[header.VirtioNetHdrLen:], layers.LayerTypeIPv4, gopacket.Default)
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatalf("none of %v received a packet", nodes)
		case <-time.After(time.Millisecond):
		}
	}
}

// The established-flow path allocates nothing (SPEC §6). forward is called
// directly, the way the port's goroutine calls it.
func TestForwardAllocatesNothing(t *testing.T) {
	e := nullEngine(t)
	pkt := append(make([]byte, header.VirtioNetHdrLen), tcpSYN(t, "10.0.2.4", "10.0.1.6", 255, 1000)...)
	in := e.PortByNode("db1")
	w := newWorker(0)
	allocs := testing.AllocsPerRun(1000, func() {
		resetTTL(pkt)
		e.forward(e.cur.Load(), in, pkt, e.ct.Now(), w)
		e.flush(w)
	})
	if allocs != 0 {
		t.Fatalf("forward allocates %.1f times per packet, want 0", allocs)
	}
}

// benchForward measures the established-flow path for a packet from node
// from: the first call creates the flow, every later one finds it.
func benchForward(b *testing.B, from string, pkt []byte) {
	e := nullEngine(b)
	pkt = append(make([]byte, header.VirtioNetHdrLen), pkt...)
	in := e.PortByNode(from)
	w := newWorker(0)
	// The TTL decrement and the translation touch only the headers, so
	// only they are restored between iterations: copying the whole 1.4 kB
	// packet was 14% of the profile, harness cost rather than forwarding.
	orig := append([]byte(nil), pkt[:min(len(pkt), header.VirtioNetHdrLen+2*60)]...)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	// The workers read the clock and end the burst (flush) once per batch
	// (pollLoop), and so does this loop, with a flood's batches of
	// pollBudget packets. A batch of one, a round trip's, adds a whole
	// clock read (31 ns here, tsc in a VM) and its four counter adds.
	now, n := e.ct.Now(), 0
	for b.Loop() {
		if n++; n == pollBudget {
			e.flush(w)
			now, n = e.ct.Now(), 0
		}
		copy(pkt, orig)
		e.forward(e.cur.Load(), in, pkt, now, w)
	}
}

// No NAT: db1 to ase1-w1 inside the VNet.
func BenchmarkForward(b *testing.B) {
	benchForward(b, "db1", tcpSYN(b, "10.0.2.4", "10.0.1.6", 64, 1400-40))
}

// SNAT to the VIP: ase1-w1 to echo (F3).
func BenchmarkForwardSNAT(b *testing.B) {
	benchForward(b, "ase1-w1", tcpPkt(b, "10.0.1.6", 40000, "203.0.113.10", 80, false, true))
}

// mqDev is a multi-queue memDev: queue 0 is the device itself.
type mqDev struct {
	*memDev
	queues []tun.Device
}

func (d *mqDev) Queues() []tun.Device { return d.queues }

// A packet read on a node's second queue is forwarded by that queue's
// goroutine and written on the second queue of the egress node, so a
// flow's replies come back to the same worker (tun_flow_update).
func TestMultiQueueKeepsTheQueueNumber(t *testing.T) {
	topo := topology.Default()
	devs := map[string]*mqDev{}
	var specs []PortSpec
	for _, n := range topo.Nodes {
		d := &mqDev{memDev: newMemDev(n.Name)}
		d.queues = []tun.Device{d.memDev, newMemDev(n.Name + "/1")}
		devs[n.Name] = d
		specs = append(specs, PortSpec{Node: n, Dev: d})
	}
	e, err := New(topo, specs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	t.Cleanup(func() {
		for _, d := range devs {
			d.queues[1].Close()
		}
		e.Close()
	})
	devs["db1"].queues[1].(*memDev).inject(nil, tcpSYN(t, "10.0.2.4", "10.0.1.6", 64, 100))
	checkIPv4(t, devs["ase1-w1"].queues[1].(*memDev).recv(t))
	devs["ase1-w1"].memDev.expectNothing(t)
}
