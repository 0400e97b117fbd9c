package dataplane

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func nextRecord(t *testing.T, tp *Tap) Record {
	t.Helper()
	select {
	case r := <-tp.Records():
		return r
	case <-timeout():
		t.Fatal("the tap saw nothing")
	}
	return Record{}
}

// natString names what a translation changed. An ICMP echo's identifier
// is both ports of its key: a new one is the source's translation, not a
// DNAT of an address that stays (trace printed "DNAT 203.0.113.10 id
// 52759 -> 203.0.113.10 id 3073" for a ping through SNAT).
func TestNATString(t *testing.T) {
	a := func(s string) header.Addr { return header.AddrFromNetip(netip.MustParseAddr(s)) }
	icmp := func(src, dst string, id uint16) nat.Key {
		return nat.Key{Src: a(src), Dst: a(dst), SrcPort: id, DstPort: id, Proto: header.ProtoICMP}
	}
	tcp := func(src string, sport uint16, dst string, dport uint16) nat.Key {
		return nat.Key{Src: a(src), Dst: a(dst), SrcPort: sport, DstPort: dport, Proto: header.ProtoTCP}
	}
	for _, c := range []struct {
		o, x nat.Key
		want string
	}{
		{icmp("10.0.1.6", "203.0.113.10", 52759), icmp("192.23.1.2", "203.0.113.10", 3073), "SNAT 10.0.1.6 id 52759 -> 192.23.1.2 id 3073"},
		{icmp("198.51.100.10", "192.23.9.9", 7), icmp("198.51.100.10", "10.0.2.4", 7), "DNAT 192.23.9.9 -> 10.0.2.4"},
		{icmp("10.0.2.4", "10.0.1.6", 7), icmp("10.0.2.4", "10.0.1.6", 7), ""},
		{tcp("198.51.100.10", 5000, "192.23.1.2", 80), tcp("198.51.100.10", 5000, "10.0.1.4", 80), "DNAT 192.23.1.2:80 -> 10.0.1.4:80"},
	} {
		if got := natString(c.o, c.x); got != c.want {
			t.Errorf("natString(%v, %v) = %q, want %q", c.o, c.x, got, c.want)
		}
	}
}

func srcOf(t *testing.T, pkt []byte) string {
	t.Helper()
	p := gopacket.NewPacket(pkt, layers.LayerTypeIPv4, gopacket.Default)
	ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ok {
		t.Fatalf("not IPv4: %v", p)
	}
	return ip.SrcIP.String()
}

// A node capture sees a translated packet before and after SNAT, with the
// translation named, and the filter keeps other traffic out.
func TestTapSNAT(t *testing.T) {
	l := newLab(t, nil)
	tp, err := l.e.AddTap(Match{Node: "ase1-w1", Filter: mustFilter(t, "tcp and port 80")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.e.RemoveTap(tp)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40000, "10.0.2.4", 1433, true, false)) // filtered out
	l.devs["db1"].recv(t)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 40000, "203.0.113.10", 80, true, false))
	l.devs["echo"].recv(t)
	r := nextRecord(t, tp)
	if r.In != "ase1-w1" || r.Out != "echo" || r.Drop != "" {
		t.Fatalf("record %s -> %s drop %q, want ase1-w1 -> echo forwarded", r.In, r.Out, r.Drop)
	}
	if got := srcOf(t, r.Pre); got != "10.0.1.6" {
		t.Errorf("before translation the source is %s, want 10.0.1.6", got)
	}
	if r.Post == nil || srcOf(t, r.Post) != "192.23.1.2" {
		t.Fatalf("after translation: %v, want source 192.23.1.2", r.Post)
	}
	_, vport, _, _, _ := tcpOf(t, gopacket.NewPacket(r.Post, layers.LayerTypeIPv4, gopacket.Default))
	want := fmt.Sprintf("SNAT 10.0.1.6:40000 -> 192.23.1.2:%d", vport)
	if r.NAT() != want {
		t.Errorf("NAT() = %q, want %q", r.NAT(), want)
	}
	if !strings.Contains(r.Rules(), "no NSG") {
		t.Errorf("Rules() = %q, want no NSG on the way in the default lab", r.Rules())
	}
	// The reply is the flow's reply direction, still named by the flow.
	l.devs["echo"].inject(nil, tcpPkt(t, "203.0.113.10", 80, "192.23.1.2", vport, true, true))
	l.devs["ase1-w1"].recv(t)
	r = nextRecord(t, tp)
	if !r.Reply || r.NAT() != want || srcOf(t, r.Pre) != "203.0.113.10" {
		t.Errorf("reply record: reply=%v nat=%q", r.Reply, r.NAT())
	}
	select {
	case r := <-tp.Records():
		t.Errorf("filtered capture also took %s -> %s", r.Orig, r.Out)
	case <-time.After(50 * time.Millisecond):
	}
}

// A denied flow is recorded with its drop reason and the deciding rule; a
// VIP capture matches the address before DNAT.
func TestTapDeniedAtVIP(t *testing.T) {
	l := newLabFrom(t, parseLab(t, ase2NSG...), nil)
	tp, err := l.e.AddTap(Match{Addr: netip.MustParseAddr("192.23.2.2")})
	if err != nil {
		t.Fatal(err)
	}
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 43001, "192.23.2.2", 80, true, false))
	r := nextRecord(t, tp)
	if r.Drop != DropNSGInbound.String() || r.Post != nil {
		t.Fatalf("record drop %q post %v, want %s and no second copy", r.Drop, r.Post != nil, DropNSGInbound)
	}
	if !strings.Contains(r.Rules(), "ase2-nsg/DenyInternet (priority 200): Deny") {
		t.Errorf("Rules() = %q, want ase2-nsg/DenyInternet", r.Rules())
	}
	l.e.RemoveTap(tp)
	if l.e.obs.Load() != nil {
		t.Error("removing the last tap left the detour on")
	}
}

// A drop names what dropped it, and only an NSG's drop comes with NSG
// rules: a closed VIP port is the load balancer's, before any NSG.
func TestTapDropNamesWhatDropped(t *testing.T) {
	for r := DropReason(0); r < numDropReasons; r++ {
		if drops[r].name == "" || drops[r].by == "" {
			t.Errorf("drop reason %d has no name or names nothing that drops it: %+v", r, drops[r])
		}
	}
	l := newLabFrom(t, parseLab(t, ase2NSG...), nil)
	tp, err := l.e.AddTap(Match{Node: "client"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.e.RemoveTap(tp)
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 43002, "192.23.1.2", 81, true, false))
	r := nextRecord(t, tp)
	if r.Drop != DropPortClosed.String() || r.Dropped() != "dropped by the load balancer: port-closed" || strings.Contains(r.Rules(), "NSG:") {
		t.Errorf("a SYN to a closed VIP port: drop %q, %q, rules %q; want port-closed by the load balancer, and no NSG's decision", r.Drop, r.Dropped(), r.Rules())
	}
	l.devs["client"].inject(nil, tcpPkt(t, "198.51.100.10", 43003, "192.23.2.2", 80, true, false))
	r = nextRecord(t, tp)
	if r.Drop != DropNSGInbound.String() || r.Dropped() != "dropped by an NSG: nsg-inbound" || !strings.HasPrefix(r.Rules(), "NSG: ") {
		t.Errorf("a SYN ase2-nsg denies: drop %q, %q, rules %q; want nsg-inbound by an NSG, with its rules", r.Drop, r.Dropped(), r.Rules())
	}
}

// A trace tap takes exactly its tuple.
func TestTapKey(t *testing.T) {
	l := newLab(t, nil)
	k := nat.Key{Src: header.AddrFromNetip(netip.MustParseAddr("10.0.1.6")), Dst: header.AddrFromNetip(netip.MustParseAddr("10.0.2.4")), SrcPort: 41000, DstPort: 1433, Proto: header.ProtoTCP}
	tp, _ := l.e.AddTap(Match{Key: &k})
	defer l.e.RemoveTap(tp)
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 41001, "10.0.2.4", 1433, true, false))
	l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", 41000, "10.0.2.4", 1433, true, false))
	if r := nextRecord(t, tp); r.Orig != k || r.Out != "db1" {
		t.Fatalf("trace tap took %v to %s, want %v to db1", r.Orig, r.Out, k)
	}
}

func TestParseFilter(t *testing.T) {
	for _, bad := range []string{"host", "host x", "port 99999", "proto gre", "net 10.0.0.0/8", "not", "tcp and not", "not and port 80"} {
		if _, err := ParseFilter(bad); err == nil {
			t.Errorf("ParseFilter(%q) accepted", bad)
		}
	}
	f := mustFilter(t, "host 10.0.1.6 and proto udp and port 53")
	k := nat.Key{Src: header.AddrFromNetip(netip.MustParseAddr("10.0.1.6")), Dst: header.AddrFromNetip(netip.MustParseAddr("168.63.129.16")), SrcPort: 5000, DstPort: 53, Proto: header.ProtoUDP}
	if !f.Match(k) {
		t.Error("filter misses its own flow")
	}
	k.Proto = header.ProtoTCP
	if f.Match(k) {
		t.Error("filter takes TCP for proto udp")
	}
}

// A term after not leaves out what it holds for before or after
// translation; the plain terms must hold together on one side.
func TestFilterNot(t *testing.T) {
	addr := func(s string) header.Addr { return header.AddrFromNetip(netip.MustParseAddr(s)) }
	// client to ase1's VIP, and the same packet after DNAT to a front-end.
	pre := nat.Key{Src: addr("198.51.100.10"), Dst: addr("192.23.1.2"), SrcPort: 40000, DstPort: 80, Proto: header.ProtoTCP}
	post := pre
	post.Dst = addr("10.0.1.4")
	probe := nat.Key{Src: addr("168.63.129.16"), Dst: addr("10.0.1.4"), SrcPort: 40001, DstPort: 454, Proto: header.ProtoTCP}
	ping := nat.Key{Src: addr("10.0.1.6"), Dst: addr("10.0.2.4"), SrcPort: 7, DstPort: 7, Proto: header.ProtoICMP}
	for _, c := range []struct {
		expr             string
		vip, probe, ping bool
	}{
		{"", true, true, true},
		{"not host 168.63.129.16", true, false, true},
		{"! port 454", true, false, true},
		{"not host 192.23.1.2", false, true, true}, // before DNAT
		{"not host 10.0.1.4", false, false, true},  // after DNAT
		{"not port 7", true, true, true},           // an ICMP id is no port
		{"tcp and not port 454", true, false, false},
		{"host 10.0.1.4 and not host 168.63.129.16", true, false, false},
		{"host 192.23.1.2 and host 10.0.1.4", false, false, false}, // no one side has both
		{"not not port 454", false, true, false},
		{"tcp and udp", false, false, false},
		{"not tcp and not icmp", false, false, false},
	} {
		f := mustFilter(t, c.expr)
		if got := f.MatchEither(pre, post); got != c.vip {
			t.Errorf("%q takes the VIP's packet: %v, want %v", c.expr, got, c.vip)
		}
		if got := f.MatchEither(probe, probe); got != c.probe {
			t.Errorf("%q takes the probe: %v, want %v", c.expr, got, c.probe)
		}
		if got := f.Match(ping); got != c.ping {
			t.Errorf("%q takes the ping: %v, want %v", c.expr, got, c.ping)
		}
	}
}

func mustFilter(t *testing.T, s string) Filter {
	t.Helper()
	f, err := ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A capture names the drop reason of the packet it follows, not one that
// another worker counted on the same port meanwhile (as one reading
// another queue of the node would).
func TestTapDropIsThePacketsOwn(t *testing.T) {
	l := newLab(t, nil)
	tp, err := l.e.AddTap(Match{Node: "ase1-w1"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.e.RemoveTap(tp)
	port := l.e.PortByNode("ase1-w1")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				port.stats.drop(DropTTLExceeded)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 200 {
		l.devs["ase1-w1"].inject(nil, tcpPkt(t, "10.0.1.6", uint16(40000+i), "203.0.113.10", 80, true, false))
		l.devs["echo"].recv(t)
		if r := nextRecord(t, tp); r.Drop != "" {
			t.Fatalf("packet %d was forwarded, but its record names drop %q", i, r.Drop)
		}
	}
}
