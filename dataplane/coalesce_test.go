package dataplane

import (
	"bytes"
	"net"
	"testing"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/topology"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// sentUDP is a UDP datagram from 10.0.1.6 (ase1-w1) to echo, with its
// virtio-net header, as a Linux sender hands it to our TUN: a partial
// checksum (NEEDS_CSUM) unless full is set.
func sentUDP(t *testing.T, sport uint16, id uint16, payload []byte, full bool) []byte {
	t.Helper()
	return udpWithVnet(t, "10.0.1.6", sport, "203.0.113.10", 7000, id, payload, full)
}

func udpWithVnet(t *testing.T, src string, sport uint16, dst string, dport uint16, id uint16, payload []byte, full bool) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: id, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4DontFragment,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	pkt := serialize(t, ip, udp, gopacket.Payload(payload))
	vnet := make([]byte, header.VirtioNetHdrLen)
	if !full {
		u := header.UDP(pkt[header.IPv4MinLen:])
		u.SetChecksum(fold(header.PseudoHeaderSum(header.ProtoUDP, header.IPv4(pkt).Src(), header.IPv4(pkt).Dst(), uint16(len(u)))))
		v := header.VirtioNetHdr(vnet)
		v.SetFlags(header.VirtioNetHdrFNeedsCsum)
		v.SetCsumStart(header.IPv4MinLen)
		v.SetCsumOffset(6)
	}
	return append(vnet, pkt...)
}

func payloadOf(i, n int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, n) }

// segment splits a USO super-packet into its datagrams as the receiving
// kernel does (__udp_gso_segment): each gets the first's headers, its own
// lengths and the next IP ID, and its checksum is finished from the
// super-packet's partial sum, adjusted for the length.
func segment(t *testing.T, b []byte) [][]byte {
	t.Helper()
	vnet := header.VirtioNetHdr(b[:header.VirtioNetHdrLen])
	ip := header.IPv4(b[header.VirtioNetHdrLen:])
	if !ip.ChecksumValid() {
		t.Fatal("super-packet's IP checksum is wrong")
	}
	hl := int(vnet.HdrLen())
	seg := int(vnet.GSOSize())
	check := header.UDP(ip[header.IPv4MinLen:]).Checksum()
	var out [][]byte
	for i, off := 0, hl; off < len(ip); i, off = i+1, off+seg {
		pay := ip[off:min(off+seg, len(ip))]
		d := append(append([]byte(nil), ip[:hl]...), pay...)
		dip := header.IPv4(d)
		dip.SetTotalLen(uint16(len(d)))
		dip.SetID(ip.ID() + uint16(i))
		u := header.UDP(d[header.IPv4MinLen:])
		ulen := uint16(len(u))
		u.SetLength(ulen)
		// csum16_add(csum16_sub(check, old len), new len), then summed.
		partial := header.UpdateChecksum16(^check, header.UDP(ip[header.IPv4MinLen:]).Length(), ulen)
		u.SetChecksum(0)
		u.SetChecksum(^header.Checksum(u, uint32(^partial)))
		out = append(out, d)
	}
	return out
}

// Consecutive datagrams of one flow that the dataplane reads in one go
// leave SNATed as one USO super-packet, and the receiving kernel's split
// of it gives back each datagram whole: its payload, its IP ID, a valid
// checksum (issue 6).
func TestUDPCoalescedThroughSNAT(t *testing.T) {
	l := newLabFrom(t, topology.Default(), nil, func(d *memDev) { d.batch = 16 })
	sizes := []int{64, 64, 64, 64, 64, 64, 64, 64, 64, 20}
	var burst [][]byte
	for i, n := range sizes {
		burst = append(burst, sentUDP(t, 5000, uint16(100+i), payloadOf(i, n), false))
	}
	l.devs["ase1-w1"].injectBurst(burst...)

	var b []byte
	select {
	case b = <-l.devs["echo"].out:
	case <-timeout():
		t.Fatal("nothing reached echo")
	}
	l.devs["echo"].expectNothing(t)
	vnet := header.VirtioNetHdr(b[:header.VirtioNetHdrLen])
	if vnet.GSOType() != header.GSOUDPL4 || vnet.GSOSize() != 64 || vnet.HdrLen() != 28 ||
		!vnet.NeedsCsum() || vnet.CsumStart() != 20 || vnet.CsumOffset() != 6 {
		t.Fatalf("virtio-net header %x, want USO with gso_size 64, hdr_len 28, NEEDS_CSUM at 20+6", b[:header.VirtioNetHdrLen])
	}
	segs := segment(t, b)
	if len(segs) != len(sizes) {
		t.Fatalf("the super-packet splits into %d datagrams, want %d", len(segs), len(sizes))
	}
	var sport layers.UDPPort
	for i, d := range segs {
		p := gopacket.NewPacket(d, layers.LayerTypeIPv4, gopacket.Default)
		ip := checkIPv4(t, p)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil {
			t.Fatalf("datagram %d: not UDP: %v", i, p)
		}
		udp.SetNetworkLayerForChecksum(ip)
		if err, res := udp.VerifyChecksum(); err != nil || !res.Valid {
			t.Errorf("datagram %d: UDP checksum not valid (%v, %+v)", i, err, res)
		}
		if i == 0 {
			sport = udp.SrcPort
		}
		if ip.SrcIP.String() != "192.23.1.2" || ip.TTL != 63 || ip.Id != uint16(100+i) || udp.SrcPort != sport || udp.DstPort != 7000 {
			t.Errorf("datagram %d: %v:%d -> %v:%d TTL %d ID %d, want from the VIP 192.23.1.2:%d, TTL 63, ID %d",
				i, ip.SrcIP, udp.SrcPort, ip.DstIP, udp.DstPort, ip.TTL, ip.Id, sport, 100+i)
		}
		if !bytes.Equal(udp.Payload, payloadOf(i, sizes[i])) {
			t.Errorf("datagram %d: payload %q, want %q", i, udp.Payload, payloadOf(i, sizes[i]))
		}
	}
	// Counted as if written one by one, each with its own headers.
	var want uint64
	for _, d := range burst {
		want += uint64(len(d))
	}
	if st := l.e.Stats()[l.portIndex("echo")]; st.TxPackets != uint64(len(sizes)) || st.TxBytes != want {
		t.Errorf("echo's port counted %d packets, %d bytes sent, want %d datagrams, %d bytes", st.TxPackets, st.TxBytes, len(sizes), want)
	}
}

// What the segmentation could not give back exactly is written as it came,
// one datagram per write, in the order read.
func TestUDPNotCoalesced(t *testing.T) {
	p64, p20 := payloadOf(0, 64), payloadOf(1, 20)
	for _, tc := range []struct {
		name  string
		burst func(t *testing.T) [][]byte
		want  []int // datagrams in each write, in order
	}{
		{"alone", func(t *testing.T) [][]byte {
			return [][]byte{sentUDP(t, 5000, 1, p64, false)}
		}, []int{1}},
		{"another flow between", func(t *testing.T) [][]byte {
			return [][]byte{sentUDP(t, 5000, 1, p64, false), sentUDP(t, 5001, 1, p64, false), sentUDP(t, 5000, 2, p64, false)}
		}, []int{1, 1, 1}},
		{"IP IDs not consecutive", func(t *testing.T) [][]byte {
			return [][]byte{sentUDP(t, 5000, 1, p64, false), sentUDP(t, 5000, 3, p64, false)}
		}, []int{1, 1}},
		{"full checksums", func(t *testing.T) [][]byte {
			return [][]byte{sentUDP(t, 5000, 1, p64, true), sentUDP(t, 5000, 2, p64, true)}
		}, []int{1, 1}},
		{"longer after shorter", func(t *testing.T) [][]byte {
			return [][]byte{sentUDP(t, 5000, 1, p20, false), sentUDP(t, 5000, 2, p64, false)}
		}, []int{1, 1}},
		{"nothing after a shorter one", func(t *testing.T) [][]byte {
			return [][]byte{sentUDP(t, 5000, 1, p64, false), sentUDP(t, 5000, 2, p64, false),
				sentUDP(t, 5000, 3, p20, false), sentUDP(t, 5000, 4, p20, false)}
		}, []int{3, 1}},
		{"a TCP segment between", func(t *testing.T) [][]byte {
			return [][]byte{sentUDP(t, 5000, 1, p64, false), sentUDP(t, 5000, 2, p64, false),
				append(make([]byte, header.VirtioNetHdrLen), tcpPkt(t, "10.0.1.6", 40000, "203.0.113.10", 80, true, false)...),
				sentUDP(t, 5000, 3, p64, false)}
		}, []int{2, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLabFrom(t, topology.Default(), nil, func(d *memDev) { d.batch = 16 })
			burst := tc.burst(t)
			l.devs["ase1-w1"].injectBurst(burst...)
			next := 0
			for i, n := range tc.want {
				var b []byte
				select {
				case b = <-l.devs["echo"].out:
				case <-timeout():
					t.Fatalf("write %d did not come", i)
				}
				got := 1
				if header.VirtioNetHdr(b).GSOType() == header.GSOUDPL4 {
					got = len(segment(t, b))
				}
				// The write starts with the datagram read next, as it came
				// but for SNAT and the TTL.
				ip := header.IPv4(b[header.VirtioNetHdrLen:])
				want := header.IPv4(burst[next][header.VirtioNetHdrLen:])
				if got != n || ip.ID() != want.ID() || ip.Protocol() != want.Protocol() || ip.TTL() != want.TTL()-1 {
					t.Fatalf("write %d: %d datagrams from IP ID %d (proto %d, TTL %d), want %d from ID %d (proto %d)",
						i, got, ip.ID(), ip.Protocol(), ip.TTL(), n, want.ID(), want.Protocol())
				}
				if n == 1 && string(b[:header.VirtioNetHdrLen]) != string(burst[next][:header.VirtioNetHdrLen]) {
					t.Fatalf("write %d: virtio-net header %x, want it as it came: %x", i, b[:header.VirtioNetHdrLen], burst[next][:header.VirtioNetHdrLen])
				}
				next += n
			}
			l.devs["echo"].expectNothing(t)
		})
	}
}

// Holding datagrams and writing them as one allocates nothing once the
// worker's buffer exists.
func TestCoalesceAllocatesNothing(t *testing.T) {
	e := nullEngine(t)
	orig := sentUDP(t, 5000, 0, payloadOf(0, 64), false)
	pkt := append([]byte(nil), orig...)
	in := e.PortByNode("ase1-w1")
	w := newWorker(0)
	id := uint16(0)
	send := func() {
		copy(pkt, orig)
		header.IPv4(pkt[header.VirtioNetHdrLen:]).SetID(id)
		id++
		e.forward(e.cur.Load(), in, pkt, e.ct.Now(), w)
	}
	send()
	send()
	if w.co.n != 2 {
		t.Fatalf("the worker holds %d datagrams after two of a flow, want 2", w.co.n)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if send(); id%pollBudget == 0 {
			e.flush(w)
		}
	})
	if allocs != 0 {
		t.Fatalf("forwarding a datagram allocates %.1f times, want 0", allocs)
	}
}
