package dns

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/aseemu/emulator/topology"
)

// FuzzAnswer answers arbitrary messages, as any node may send Azure DNS,
// from one of four places of the default lab. The server runs in the
// emulator's process, beside the dataplane: a panic would take the whole
// lab down (SPEC §6). The answer must pack, within 512 bytes once
// truncated as a UDP answer is, and go to the query's ID. And an Internet
// host must learn nothing of the VNet: no private address, and no name of
// a VNet machine or of the ILB ASE (F7).
func FuzzAnswer(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"app1.ase1.p.azurewebsites.net.", dns.TypeA},
		{"App3.ASE3.internal.", dns.TypeANY},
		{"db1.internal.cloudapp.net.", dns.TypeA},
		{"4.2.0.10.in-addr.arpa.", dns.TypePTR},
		{"ase3.internal.", dns.TypeSOA},
		{"2.1.23.192.in-addr.arpa.", dns.TypeANY},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		for from := range byte(4) {
			f.Add(from, b)
		}
	}
	s := &Server{}
	s.zone.Store(NewZone(topology.Default()))
	froms := []netip.Addr{
		netip.MustParseAddr("198.51.100.10"), // client, on the Internet
		netip.MustParseAddr("10.0.2.4"),      // db1, in the VNet
		netip.MustParseAddr("10.0.4.6"),      // ase3-w1, the ILB ASE's worker
		netip.MustParseAddr("168.63.129.16"), // the platform
	}
	f.Fuzz(func(t *testing.T, fromByte byte, b []byte) {
		r := new(dns.Msg)
		if err := r.Unpack(b); err != nil {
			return // miekg/dns refuses it before ServeDNS
		}
		from := froms[int(fromByte)%len(froms)]
		m := s.answer(r, from)
		logged(r, m, "udp", netip.AddrPortFrom(from, 5353), "")
		if m.Id != r.Id {
			t.Fatalf("answer ID %d to query ID %d", m.Id, r.Id)
		}
		if _, err := m.Pack(); err != nil {
			t.Fatalf("the answer does not pack: %v\n%v", err, m)
		}
		m.Truncate(dns.MinMsgSize)
		if p, err := m.Pack(); err != nil || len(p) > dns.MinMsgSize {
			t.Fatalf("truncated to %d: %d bytes, %v", dns.MinMsgSize, len(p), err)
		}
		if from != froms[0] {
			return
		}
		for _, rr := range append(append([]dns.RR{}, m.Answer...), m.Ns...) {
			switch rr := rr.(type) {
			case *dns.A:
				if a, _ := netip.AddrFromSlice(rr.A); a.Unmap().IsPrivate() {
					t.Fatalf("an Internet host learned the private address of %s: %v", rr.Hdr.Name, rr)
				}
			case *dns.PTR:
				t.Fatalf("an Internet host got a reverse name: %v", rr)
			}
			if n := strings.ToLower(rr.Header().Name); strings.HasSuffix(n, "."+InternalZone+".") || strings.HasSuffix(n, ".ase3.internal.") || n == "ase3.internal." {
				t.Fatalf("an Internet host learned of %s: %v", n, rr)
			}
		}
	})
}
