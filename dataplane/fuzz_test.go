package dataplane

import (
	"encoding/binary"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

// fuzzMaxFlows is the flow table of the fuzzed lab: small, so that the
// fuzzer can fill it.
const fuzzMaxFlows = 16

var fuzzTopo = sync.OnceValue(func() *topology.Topology {
	t := topology.Default() // a fresh parse: ours to change
	t.Conntrack.MaxFlows = fuzzMaxFlows
	// No impaired links (the default lab's azure-storage is remote): a
	// line writes from its own goroutine, later, and the target counts
	// what each packet writes as forward returns. dataplane/impair and
	// link_test.go test the lines.
	for _, n := range t.Nodes {
		n.Latency = topology.Latency{}
	}
	return t
})

// recDev records what the dataplane writes; the fuzz target calls forward
// itself, so nothing reads.
type recDev struct {
	port int
	sent *[]sentPacket
}

type sentPacket struct {
	port int
	b    []byte
}

func (d recDev) Read([][]byte, []int) (int, error) { return 0, os.ErrClosed }
func (d recDev) Write(bufs [][]byte) (int, error) {
	for _, b := range bufs {
		*d.sent = append(*d.sent, sentPacket{d.port, append([]byte(nil), b...)})
	}
	return len(bufs), nil
}
func (recDev) BatchSize() int { return 1 }
func (recDev) Name() string   { return "rec" }
func (recDev) Close() error   { return nil }

// manualClock is moved by the fuzz input.
type manualClock struct{ ns int64 }

func (c *manualClock) Now() int64 { return c.ns }

// Record flags of FuzzForward's input.
const (
	fuzzRawIPChecksum = 1 << 0 // leave the IP header checksum as the fuzzer wrote it
	fuzzRawL4Checksum = 1 << 1 // leave the L4 checksum as written (outputs' L4 checksums are then not checked)
	fuzzPartial       = 1 << 2 // NEEDS_CSUM: the L4 field holds the pseudo-header sum, as a local stack sends
)

// FuzzForward runs sequences of packets through the whole pipeline of a
// fresh engine over the default lab, with in-memory ports. The input is a
// list of records: ingress port, flags (fuzzRaw..., fuzzPartial; the top
// four bits move the clock on by that many 5-second steps first), a
// big-endian length, and the packet. Unless told otherwise the target
// fixes each packet's checksums first, so the invariants below hold for
// every packet a sender's stack could emit:
//   - nothing panics, and each packet in makes at most one packet out;
//   - every packet out parses and has a valid IP header checksum, and,
//     unless fragmented, a valid TCP, UDP or ICMP checksum (a NEEDS_CSUM
//     one once completed as the receiving kernel completes it);
//   - every packet out is for the address of the node it is written to,
//     unless that node forwards (an appliance): nothing leaves for an
//     address outside the lab;
//   - the flow table never holds more than its bound.
func FuzzForward(f *testing.F) {
	for _, seed := range forwardSeeds(f) {
		f.Add(seed)
	}
	// One engine, compiled once. Each input starts from an empty flow
	// table (a day later, everything expired, the SNAT pools' cursors
	// reset) and empty fragment tables, so that a crasher reproduces on
	// its own; a fresh table per input cost half the speed.
	topo := fuzzTopo()
	var sent []sentPacket
	clk := &manualClock{}
	specs := make([]PortSpec, len(topo.Nodes))
	for i, n := range topo.Nodes {
		specs[i] = PortSpec{Node: n, Dev: recDev{port: i, sent: &sent}}
	}
	e, err := New(topo, specs, Config{Clock: clk})
	if err != nil {
		f.Fatal(err)
	}
	s := e.cur.Load()
	w := newWorker(0)
	f.Fuzz(func(t *testing.T, data []byte) {
		if clk.ns += int64(24 * time.Hour); clk.ns > 1<<60 {
			// Before the clock wraps (inputs move it by up to
			// 16,383 x 75 s), start over with a new table.
			clk.ns = int64(time.Hour)
			if e.ct, err = nat.New(nat.Config{MaxFlows: fuzzMaxFlows, Clock: clk, Pools: s.pol.pools}); err != nil {
				t.Fatal(err)
			}
		}
		e.ct.Expire()
		for _, pc := range s.pol.pools {
			if err := e.ct.SetPool(pc); err != nil {
				t.Fatal(err)
			}
		}
		if n := e.ct.Stats().Flows; n != 0 {
			t.Fatalf("%d flows left after expiry", n)
		}
		for _, p := range s.ports {
			p.frags = nil
		}
		for len(data) >= 4 {
			port, flags, n := int(data[0])%len(s.ports), data[1], int(binary.BigEndian.Uint16(data[2:4]))
			data = data[4:]
			n = min(n, len(data))
			pkt, vnet := fuzzPacket(data[:n], flags)
			data = data[n:]
			clk.ns += int64(flags>>4) * int64(5*time.Second)

			sent = sent[:0]
			e.forward(s, s.ports[port], append(vnet, pkt...), clk.ns, w)
			// Each record is a burst of its own, as if the worker found
			// its queue empty after it: held UDP leaves now, so a packet
			// in is still at most one packet out. The unit tests in
			// coalesce_test.go cover datagrams written together.
			e.flush(w)
			if len(sent) > 1 {
				t.Fatalf("one packet in, %d out", len(sent))
			}
			for _, p := range sent {
				checkSent(t, topo, s.ports[p.port], p.b, flags&fuzzRawL4Checksum == 0)
			}
			if st := e.ct.Stats(); st.Flows > fuzzMaxFlows {
				t.Fatalf("flow table holds %d flows, bound %d", st.Flows, fuzzMaxFlows)
			}
		}
	})
}

// fuzzPacket makes the packet a record describes and its virtio-net
// header: checksums fixed unless flags say otherwise.
func fuzzPacket(b []byte, flags uint8) (pkt, vnet []byte) {
	pkt = append([]byte(nil), b...)
	vnet = make([]byte, header.VirtioNetHdrLen, header.VirtioNetHdrLen+len(pkt))
	ip, r := header.ParseIPv4(pkt)
	if r != header.OK {
		return pkt, vnet
	}
	if flags&fuzzRawL4Checksum == 0 && !ip.IsFragment() {
		if off := l4CsumOffset(ip); off >= 0 {
			l4 := ip.Payload()
			if ip.Protocol() == header.ProtoUDP {
				binary.BigEndian.PutUint16(l4[4:6], uint16(len(l4)))
			}
			binary.BigEndian.PutUint16(l4[off:], 0)
			c := ^header.Checksum(l4, l4PseudoSum(ip))
			if flags&fuzzPartial != 0 && ip.Protocol() != header.ProtoICMP {
				c = header.Checksum(nil, l4PseudoSum(ip)) // the folded pseudo-header sum a stack leaves for the device to complete
				v := header.VirtioNetHdr(vnet)
				v.SetFlags(header.VirtioNetHdrFNeedsCsum)
				v.SetCsumStart(uint16(ip.HeaderLen()))
				v.SetCsumOffset(uint16(off))
			} else if c == 0 && ip.Protocol() == header.ProtoUDP {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(l4[off:], c)
		}
	}
	if flags&fuzzRawIPChecksum == 0 {
		ip.SetChecksum(ip.ComputeChecksum())
	}
	return pkt, vnet
}

// l4CsumOffset is where ip's L4 checksum sits in its payload, or -1 if the
// payload is too short to hold one or the protocol has none we check.
func l4CsumOffset(ip header.IPv4) int {
	n := len(ip.Payload())
	switch ip.Protocol() {
	case header.ProtoTCP:
		if n >= header.TCPMinLen {
			return 16
		}
	case header.ProtoUDP:
		if n >= header.UDPLen {
			return 6
		}
	case header.ProtoICMP:
		if n >= header.ICMPv4MinLen {
			return 2
		}
	}
	return -1
}

// l4PseudoSum is the pseudo-header sum ip's L4 checksum starts from (none
// for ICMP).
func l4PseudoSum(ip header.IPv4) uint32 {
	if ip.Protocol() == header.ProtoICMP {
		return 0
	}
	return header.PseudoHeaderSum(ip.Protocol(), ip.Src(), ip.Dst(), uint16(len(ip.Payload())))
}

// checkSent checks one packet the dataplane wrote to port out.
func checkSent(t *testing.T, topo *topology.Topology, out *Port, b []byte, checkL4 bool) {
	t.Helper()
	if len(b) < header.VirtioNetHdrLen {
		t.Fatalf("wrote %d bytes, shorter than a virtio-net header", len(b))
	}
	vnet := header.VirtioNetHdr(b[:header.VirtioNetHdrLen])
	ip, r := header.ParseIPv4(b[header.VirtioNetHdrLen:])
	if r != header.OK {
		t.Fatalf("wrote a packet that does not parse: %v", r)
	}
	if !ip.ChecksumValid() {
		t.Fatalf("wrote a packet with a bad IP header checksum: %x", ip.Header())
	}
	if dst := ip.Dst(); dst != header.AddrFromNetip(out.node().Addr) && !out.node().IPForwarding &&
		(topo.OnPremises == nil || out.node() != topo.OnPremises.Gateway) {
		t.Fatalf("wrote a packet for %v to node %s (%v)", dst, out.node().Name, out.node().Addr)
	}
	if !checkL4 || ip.IsFragment() {
		return
	}
	off := l4CsumOffset(ip)
	if off < 0 {
		return
	}
	l4 := ip.Payload()
	if vnet.NeedsCsum() {
		start, at := int(vnet.CsumStart())-ip.HeaderLen(), int(vnet.CsumStart()+vnet.CsumOffset())-ip.HeaderLen()
		if start != 0 || at != off {
			t.Fatalf("NEEDS_CSUM at %d+%d, want the L4 checksum at %d+%d", vnet.CsumStart(), vnet.CsumOffset(), ip.HeaderLen(), off)
		}
		binary.BigEndian.PutUint16(l4[off:], ^header.Checksum(l4, 0))
	}
	if header.Checksum(l4, l4PseudoSum(ip)) != 0xffff {
		t.Fatalf("wrote %v -> %v proto %d with a bad L4 checksum", ip.Src(), ip.Dst(), ip.Protocol())
	}
}

// record encodes one FuzzForward record.
func record(port int, flags uint8, pkt []byte) []byte {
	return append([]byte{byte(port), flags, byte(len(pkt) >> 8), byte(len(pkt))}, pkt...)
}

// forwardSeeds are conversations of the default lab: each record's port
// index is looked up by node name.
func forwardSeeds(tb testing.TB) [][]byte {
	port := map[string]int{}
	for i, n := range fuzzTopo().Nodes {
		port[n.Name] = i
	}
	rec := func(node string, flags uint8, pkt []byte) []byte { return record(port[node], flags, pkt) }
	cat := func(rs ...[]byte) []byte {
		var out []byte
		for _, r := range rs {
			out = append(out, r...)
		}
		return out
	}
	syn := tcpPkt(tb, "10.0.1.6", 40000, "203.0.113.10", 80, true, false)
	synAck := tcpPkt(tb, "203.0.113.10", 80, "192.23.1.2", 40000, true, true)
	dnat := tcpPkt(tb, "198.51.100.10", 50080, "192.23.1.2", 80, true, false)
	udp := udpDatagram(tb, "10.0.1.6", 40001, "203.0.113.10", 53, 9, 3000)
	frags := fragments(tb, udp, 1480)
	return [][]byte{
		cat(rec("ase1-w1", 0, syn), rec("echo", 0, synAck)),
		cat(rec("ase1-w1", fuzzPartial, syn), rec("echo", fuzzPartial, synAck)),
		cat(rec("client", 0, dnat), rec("client", 0x30, dnat)),
		cat(rec("db1", 0, tcpSYN(tb, "10.0.2.4", "10.0.1.50", 64, 0)), rec("db1", 0, tcpSYN(tb, "10.0.2.4", "10.0.1.6", 1, 0))),
		cat(rec("db1", 0, icmpEcho(tb, "10.0.2.4", "10.0.2.1")), rec("db1", 0, icmpEcho(tb, "10.0.2.4", "203.0.113.10"))),
		cat(rec("ase1-w1", 0, frags[0]), rec("ase1-w1", 0, frags[1]), rec("ase1-w1", 0, frags[2])),
		cat(rec("ase1-w1", 0, frags[2]), rec("ase1-w1", 0, frags[0])),
		cat(rec("ase1-w1", 0, syn), rec("echo", 0, icmpErrorQuoting(tb, "203.0.113.10", "192.23.1.2", tcpPkt(tb, "192.23.1.2", 40000, "203.0.113.10", 80, true, false)))),
		cat(rec("db1", fuzzRawIPChecksum, syn), rec("db1", 0, []byte{0x60, 0, 0, 0})),
	}
}

// icmpErrorQuoting is a port-unreachable from src to dst quoting orig.
func icmpErrorQuoting(tb testing.TB, src, dst string, orig []byte) []byte {
	b := icmpEcho(tb, src, dst)
	ip := header.IPv4(b)
	hl := ip.HeaderLen()
	out := append(append(append([]byte(nil), b[:hl]...), header.ICMPDestUnreachable, header.ICMPPortUnreachable, 0, 0, 0, 0, 0, 0), orig...)
	binary.BigEndian.PutUint16(out[2:4], uint16(len(out)))
	binary.BigEndian.PutUint16(out[hl+2:], ^header.Checksum(out[hl:], 0))
	header.IPv4(out).SetChecksum(header.IPv4(out).ComputeChecksum())
	return out
}
