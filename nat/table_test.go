package nat

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/aseemu/emulator/dataplane/header"
)

func tcpKey(src, dst header.Addr, sp, dp uint16) Key {
	return Key{Src: src, Dst: dst, SrcPort: sp, DstPort: dp, Proto: header.ProtoTCP}
}

func snat(k Key, to header.Addr) Key { k.Src = to; return k }

// send runs a TCP segment with flags along key k through the table, as the
// dataplane does, and reports whether a flow took it.
func send(t *testing.T, tbl *Table, k Key, flags uint8) (Flow, bool) {
	t.Helper()
	pkt := tcpPkt(t, k, flags, "")
	f, ok := tbl.Lookup(keyOf(t, pkt), tbl.Now())
	if ok {
		f.Translate(parse(t, pkt), nil)
	}
	return f, ok
}

// TestTimeouts runs F17's timeouts on a fake clock: a flow lives exactly
// its timeout after its last packet, counted by state.
func TestTimeouts(t *testing.T) {
	const (
		syn    = header.TCPFlagSYN
		synack = header.TCPFlagSYN | header.TCPFlagACK
		ack    = header.TCPFlagACK
		fin    = header.TCPFlagFIN | header.TCPFlagACK
		rst    = header.TCPFlagRST
	)
	cases := []struct {
		name  string
		proto uint8
		last  []uint8 // flags of the packets, alternating original and reply
		state State
		life  time.Duration
	}{
		{"idle established TCP", header.ProtoTCP, []uint8{syn, synack, ack}, StateEstablished, 4 * time.Minute},
		{"idle SYN-sent TCP", header.ProtoTCP, []uint8{syn}, StateSynSent, 4 * time.Minute},
		{"after FIN", header.ProtoTCP, []uint8{syn, synack, ack, fin}, StateClosing, 240 * time.Second},
		{"after FIN both ways", header.ProtoTCP, []uint8{syn, synack, fin, fin}, StateClosing, 240 * time.Second},
		{"after RST", header.ProtoTCP, []uint8{syn, synack, ack, rst}, StateClosed, 15 * time.Second},
		{"RST answering SYN", header.ProtoTCP, []uint8{syn, rst}, StateClosed, 15 * time.Second},
		{"idle UDP", header.ProtoUDP, []uint8{0, 0}, StateEstablished, 4 * time.Minute},
		{"unanswered UDP", header.ProtoUDP, []uint8{0}, StateNew, 4 * time.Minute},
		{"idle ICMP echo", header.ProtoICMP, []uint8{0, 0}, StateEstablished, 4 * time.Minute},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tbl, clk := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
			orig := Key{Src: w1, Dst: echo, SrcPort: 40000, DstPort: 80, Proto: c.proto}
			if c.proto == header.ProtoICMP {
				orig.DstPort = orig.SrcPort
			}
			f, err := tbl.Insert(orig, snat(orig, vip1), tbl.Now())
			if err != nil {
				t.Fatal(err)
			}
			reply := f.Translated().Reverse()
			for i, fl := range c.last {
				clk.Advance(time.Second) // every packet refreshes the flow
				k, isReply := orig, i%2 == 1
				if isReply {
					k = reply
				}
				var pkt []byte
				switch c.proto {
				case header.ProtoTCP:
					pkt = tcpPkt(t, k, fl, "")
				case header.ProtoUDP:
					pkt = udpPkt(t, k, "")
				default:
					pkt = packetFor(t, k, isReply, "full")
				}
				f, ok := tbl.Lookup(k, tbl.Now())
				if !ok {
					t.Fatalf("packet %d (%v) found no flow", i, k)
				}
				f.Translate(parse(t, pkt), nil)
			}
			if fi := tbl.Flows(); len(fi) != 1 || fi[0].State != c.state {
				t.Fatalf("flows after the packets: %+v, want one in state %v", fi, c.state)
			}
			clk.Advance(c.life - time.Nanosecond)
			if _, ok := tbl.Lookup(orig, tbl.Now()); !ok {
				t.Fatalf("flow gone %v after its last packet, before its timeout of %v", c.life-time.Nanosecond, c.life)
			}
			if n := tbl.Expire(); n != 0 {
				t.Fatalf("Expire removed %d flows before the timeout", n)
			}
			clk.Advance(time.Nanosecond)
			if _, ok := tbl.Lookup(orig, tbl.Now()); ok {
				t.Fatalf("flow still found %v after its last packet (F17: timeout %v)", c.life, c.life)
			}
			if _, ok := tbl.Lookup(reply, tbl.Now()); ok {
				t.Fatal("expired flow still found in the reply direction")
			}
			if n := tbl.Expire(); n != 1 {
				t.Fatalf("Expire removed %d flows, want 1", n)
			}
			if s := tbl.Stats(); s.Flows != 0 || s.Expired != 1 {
				t.Errorf("after Expire: %+v, want 0 flows and 1 expired", s)
			}
			for _, p := range tbl.Pools() {
				if p.InUse != 0 {
					t.Errorf("pool %v/%s still has %d ports in use after expiry", p.Addr, ProtoName(p.Proto), p.InUse)
				}
			}
		})
	}
}

// TestPortReuse is F17's port reuse through a one-port pool: the VIP port
// of a closed connection is not given to another before 240 s after its
// FIN or 15 s after its RST, or 4 minutes of idleness, and is after,
// whether or not Expire has run.
func TestPortReuse(t *testing.T) {
	cases := []struct {
		name  string
		flags uint8
		wait  time.Duration
		sweep bool
	}{
		{"FIN", header.TCPFlagFIN | header.TCPFlagACK, 240 * time.Second, false},
		{"RST", header.TCPFlagRST, 15 * time.Second, false},
		{"idle", header.TCPFlagACK, 4 * time.Minute, false},
		{"RST, swept", header.TCPFlagRST, 15 * time.Second, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tbl, clk := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50000}}})
			a := tcpKey(w1, echo, 40000, 80)
			b := tcpKey(w2, echo, 40000, 80)
			f, err := tbl.Insert(a, snat(a, vip1), tbl.Now())
			if err != nil {
				t.Fatal(err)
			}
			if p := f.Translated().SrcPort; p != 50000 {
				t.Fatalf("first flow got port %d, want 50000", p)
			}
			send(t, tbl, a, header.TCPFlagSYN)
			send(t, tbl, f.Translated().Reverse(), header.TCPFlagSYN|header.TCPFlagACK)
			send(t, tbl, a, c.flags)

			clk.Advance(c.wait - time.Nanosecond)
			if c.sweep {
				tbl.Expire()
			}
			if _, err := tbl.Insert(b, snat(b, vip1), tbl.Now()); !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("%v after the %s, a second flow got: %v; want ErrPoolExhausted, the port is not free yet", c.wait-time.Nanosecond, c.name, err)
			}
			clk.Advance(time.Nanosecond)
			if c.sweep {
				tbl.Expire()
			}
			g, err := tbl.Insert(b, snat(b, vip1), tbl.Now())
			if err != nil {
				t.Fatalf("%v after the %s, a second flow was refused: %v; the port should be free (F17)", c.wait, c.name, err)
			}
			if p := g.Translated().SrcPort; p != 50000 {
				t.Fatalf("second flow got port %d, want the reused 50000", p)
			}
			// The old flow is gone both ways: its reply key now belongs to
			// the new flow.
			if f, ok := tbl.Lookup(g.Translated().Reverse(), tbl.Now()); !ok || f.Translated().Dst != w2 {
				t.Errorf("reply to the reused port goes to %v (found=%v), want %v", f.Translated().Dst, ok, w2)
			}
			if s := tbl.Stats(); s.Flows != 1 {
				t.Errorf("%d flows live, want 1", s.Flows)
			}
		})
	}
}

// TestReopenAfterFIN: the same client port connecting again after a FIN
// reuses its flow (SYN in the closing state), as Linux does for TIME_WAIT.
func TestReopenAfterFIN(t *testing.T) {
	tbl, clk := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	a := tcpKey(w1, echo, 40000, 80)
	f, _ := tbl.Insert(a, snat(a, vip1), tbl.Now())
	send(t, tbl, a, header.TCPFlagSYN)
	send(t, tbl, f.Translated().Reverse(), header.TCPFlagSYN|header.TCPFlagACK)
	send(t, tbl, a, header.TCPFlagFIN|header.TCPFlagACK)
	clk.Advance(10 * time.Second)
	if f, ok := send(t, tbl, a, header.TCPFlagSYN); !ok || f.Translated().Src != vip1 {
		t.Fatal("new SYN on the closing flow found nothing")
	}
	clk.Advance(239 * time.Second)
	if _, ok := tbl.Lookup(a, tbl.Now()); !ok {
		t.Fatal("reopened flow expired at the FIN timeout; it should be SYN-sent with the idle timeout")
	}
	if fi := tbl.Flows(); fi[0].State != StateSynSent {
		t.Errorf("state %v, want syn-sent", fi[0].State)
	}
}

// TestPoolExhaustion is F17 with a pool of 2 ports: the third connection
// is refused and counted, and the first two keep translating both ways.
func TestPoolExhaustion(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50001}}})
	var flows []Flow
	for i := range 3 {
		k := tcpKey(w1, echo, uint16(40000+i), 80)
		f, err := tbl.Insert(k, snat(k, vip1), tbl.Now())
		if i < 2 {
			if err != nil {
				t.Fatalf("connection %d refused: %v", i+1, err)
			}
			flows = append(flows, f)
			continue
		}
		if !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("third connection through a 2-port pool: err %v, want ErrPoolExhausted (F17)", err)
		}
	}
	if s := tbl.Stats(); s.PoolExhausted != 1 || s.Flows != 2 {
		t.Errorf("stats %+v, want 1 exhaustion and 2 flows", s)
	}
	for _, p := range tbl.Pools() {
		if p.Proto == header.ProtoTCP && (p.InUse != 2 || p.Size != 2 || p.Exhausted != 1) {
			t.Errorf("TCP pool of %v: %+v, want 2 of 2 in use and 1 exhaustion", p.Addr, p)
		}
	}
	for i, f := range flows {
		out := tcpPkt(t, f.Key(), header.TCPFlagACK, "more")
		if got := through(t, tbl, out, "full", Original, "existing flow"); got.Src != vip1 || got.SrcPort != uint16(50000+i) {
			t.Errorf("flow %d left as %v, want %v:%d", i+1, got, vip1, 50000+i)
		}
		back := tcpPkt(t, f.Translated().Reverse(), header.TCPFlagACK, "reply")
		if got := through(t, tbl, back, "full", Reply, "existing flow"); got.Dst != w1 || got.DstPort != f.Key().SrcPort {
			t.Errorf("reply to flow %d arrived as %v", i+1, got)
		}
	}
	// Other protocols have pools of their own.
	u := Key{Src: w1, Dst: echo, SrcPort: 5000, DstPort: 53, Proto: header.ProtoUDP}
	if _, err := tbl.Insert(u, snat(u, vip1), tbl.Now()); err != nil {
		t.Errorf("UDP refused while only the TCP pool is exhausted: %v", err)
	}
}

// TestPortPreserved: the original source port is kept when it is in the
// pool and free, else the next free one is picked.
func TestPortPreserved(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	a := tcpKey(w1, echo, 40000, 80)
	b := tcpKey(w2, echo, 40000, 80) // same port from another worker
	c := tcpKey(w1, echo, 80, 80)    // a port below the pool
	fa, _ := tbl.Insert(a, snat(a, vip1), tbl.Now())
	fb, _ := tbl.Insert(b, snat(b, vip1), tbl.Now())
	fc, _ := tbl.Insert(c, snat(c, vip1), tbl.Now())
	if p := fa.Translated().SrcPort; p != 40000 {
		t.Errorf("free port 40000 became %d, want kept", p)
	}
	if p := fb.Translated().SrcPort; p == 40000 || p < 1024 {
		t.Errorf("taken port 40000 became %d, want another port of the pool", p)
	}
	if p := fc.Translated().SrcPort; p < 1024 {
		t.Errorf("port 80 outside the pool stayed %d", p)
	}
}

// TestTableFull: with MaxFlows flows, the next is refused and counted,
// and every existing flow still translates.
func TestTableFull(t *testing.T) {
	tbl, _ := newTable(t, Config{MaxFlows: 4, Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	var keys []Key
	for i := range 4 {
		k := tcpKey(w1, echo, uint16(40000+i), 80)
		if _, err := tbl.Insert(k, snat(k, vip1), tbl.Now()); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	k := tcpKey(w2, echo, 40000, 80)
	if _, err := tbl.Insert(k, snat(k, vip1), tbl.Now()); !errors.Is(err, ErrTableFull) {
		t.Fatalf("fifth flow in a table of 4: err %v, want ErrTableFull", err)
	}
	if s := tbl.Stats(); s.TableFull != 1 || s.Flows != 4 {
		t.Errorf("stats %+v, want 1 refusal and 4 flows", s)
	}
	for _, p := range tbl.Pools() {
		if p.Proto == header.ProtoTCP && p.InUse != 4 {
			t.Errorf("refused flow leaked a port: %d in use, want 4", p.InUse)
		}
	}
	for _, k := range keys {
		if got := through(t, tbl, tcpPkt(t, k, header.TCPFlagACK, "x"), "full", Original, "existing"); got.Src != vip1 {
			t.Errorf("existing flow %v left as %v", k, got)
		}
	}
}

// TestTableFullReclaimsExpired: a full table makes room from flows that
// have timed out but not been swept.
func TestTableFullReclaimsExpired(t *testing.T) {
	tbl, clk := newTable(t, Config{MaxFlows: 2})
	for i := range 2 {
		k := tcpKey(w1, echo, uint16(40000+i), 80)
		tbl.Insert(k, k, tbl.Now())
	}
	clk.Advance(4 * time.Minute)
	k := tcpKey(w2, echo, 1, 80)
	if _, err := tbl.Insert(k, k, tbl.Now()); err != nil {
		t.Fatalf("insert into a table of expired flows: %v", err)
	}
}

func TestInsertExisting(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	a := tcpKey(w1, echo, 40000, 80)
	f, err := tbl.Insert(a, snat(a, vip1), tbl.Now())
	if err != nil {
		t.Fatal(err)
	}
	g, err := tbl.Insert(a, snat(a, vip2), tbl.Now())
	if !errors.Is(err, ErrExists) || g.Translated() != f.Translated() || g.Dir() != Original {
		t.Errorf("second insert of %v: %v, %v; want ErrExists and the first flow", a, g.Translated(), err)
	}
	r := f.Translated().Reverse()
	g, err = tbl.Insert(r, r, tbl.Now())
	if !errors.Is(err, ErrExists) || g.Dir() != Reply || g.Translated() != a.Reverse() {
		t.Errorf("insert of the reply key: dir %v to %v, %v; want ErrExists, reply direction, to %v", g.Dir(), g.Translated(), err, a.Reverse())
	}
	if s := tbl.Stats(); s.Flows != 1 || s.Created != 1 {
		t.Errorf("stats %+v, want one flow", s)
	}
}

// TestConflictPicksAnotherPort: when a SNAT reply tuple would equal an
// inbound DNAT flow's original tuple, the pool moves on to another port.
func TestConflictPicksAnotherPort(t *testing.T) {
	tbl, _ := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 80, Hi: 81}}})
	in := tcpKey(echo, vip1, 40000, 80) // echo calls the VIP's port 80
	if _, err := tbl.Insert(in, Key{Src: echo, Dst: fe1, SrcPort: 40000, DstPort: 80, Proto: header.ProtoTCP}, tbl.Now()); err != nil {
		t.Fatal(err)
	}
	out := tcpKey(w1, echo, 80, 40000) // its reply with port 80 kept would be echo:40000 -> vip1:80
	f, err := tbl.Insert(out, snat(out, vip1), tbl.Now())
	if err != nil {
		t.Fatalf("insert: %v", err)
	}
	if p := f.Translated().SrcPort; p != 81 {
		t.Errorf("SNAT port %d, want 81 (80 would clash with the inbound flow)", p)
	}
	// Without a pool there is no other port to take.
	tbl2, _ := newTable(t, Config{})
	tbl2.Insert(in, in, tbl2.Now())
	if _, err := tbl2.Insert(out, snat(out, vip1), tbl2.Now()); !errors.Is(err, ErrConflict) {
		t.Errorf("clash without a pool: %v, want ErrConflict", err)
	}
	if s := tbl2.Stats(); s.Conflicts != 1 {
		t.Errorf("conflicts counted %d, want 1", s.Conflicts)
	}
}

func TestInsertInvalid(t *testing.T) {
	tbl, _ := newTable(t, Config{})
	k := tcpKey(w1, echo, 1, 2)
	u := k
	u.Proto = header.ProtoUDP
	g := k
	g.Proto = 47
	self := tcpKey(w1, w1, 5, 5)
	for name, c := range map[string][2]Key{
		"protocols differ":    {k, u},
		"GRE":                 {g, g},
		"its own reply":       {self, self},
		"ICMP ports not same": {{Src: w1, Dst: echo, SrcPort: 1, DstPort: 2, Proto: header.ProtoICMP}, {Src: w1, Dst: echo, SrcPort: 1, DstPort: 2, Proto: header.ProtoICMP}},
	} {
		if _, err := tbl.Insert(c[0], c[1], tbl.Now()); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if s := tbl.Stats(); s.Flows != 0 {
		t.Errorf("%d flows after invalid inserts", s.Flows)
	}
	// A refused insert must not leak its slab entry.
	for i := range tbl.max + 10 {
		if _, err := tbl.Insert(self, self, tbl.Now()); !errors.Is(err, ErrInvalid) {
			t.Fatalf("insert %d: %v", i, err)
		}
	}
	if tbl.hiwater > 1 {
		t.Errorf("refused inserts used %d slab entries", tbl.hiwater)
	}
}

func TestSetPool(t *testing.T) {
	tbl, _ := newTable(t, Config{})
	if err := tbl.SetPool(PoolConfig{Addr: vip1, Lo: 0, Hi: 10}); err == nil {
		t.Error("port range 0-10 accepted")
	}
	if err := tbl.SetPool(PoolConfig{Addr: vip1, Lo: 10, Hi: 9}); err == nil {
		t.Error("port range 10-9 accepted")
	}
	if _, err := New(Config{Pools: []PoolConfig{{Addr: vip1, Lo: 5, Hi: 1}}}); err == nil {
		t.Error("New accepted a bad pool")
	}
	if _, err := New(Config{MaxFlows: -1}); err == nil {
		t.Error("New accepted MaxFlows -1")
	}
	tbl.SetPool(PoolConfig{Addr: vip1, Lo: 50000, Hi: 50001})
	k := tcpKey(w1, echo, 1, 80)
	f, _ := tbl.Insert(k, snat(k, vip1), tbl.Now())
	// Shrinking the pool away from a port in use keeps the flow.
	if err := tbl.SetPool(PoolConfig{Addr: vip1, Lo: 60000, Hi: 60000}); err != nil {
		t.Fatal(err)
	}
	if g, ok := tbl.Lookup(f.Translated().Reverse(), tbl.Now()); !ok || g.Translated().Dst != w1 {
		t.Error("resizing the pool broke a live flow")
	}
	k2 := tcpKey(w2, echo, 1, 80)
	if g, err := tbl.Insert(k2, snat(k2, vip1), tbl.Now()); err != nil || g.Translated().SrcPort != 60000 {
		t.Errorf("after resize: port %d, %v; want 60000", g.Translated().SrcPort, err)
	}
	var got []PoolStats
	for _, p := range tbl.Pools() {
		if p.Proto == header.ProtoTCP {
			got = append(got, p)
		}
	}
	if len(got) != 1 || got[0].Size != 1 || got[0].InUse != 2 {
		t.Errorf("TCP pools %+v, want one of size 1 with 2 ports in use (one outside the new range)", got)
	}
}

// F17: each machine behind a VIP has its own share of the pool. One that
// runs dry is refused while the others still get ports, each from its own
// share, whatever source port it used.
func TestPoolShares(t *testing.T) {
	tbl, clk := newTable(t, Config{})
	bad := []PoolConfig{
		{Addr: vip1, Lo: 50000, Hi: 50009, Shares: []header.Addr{w1, w2}, PerShare: 6},
		{Addr: vip1, Lo: 50000, Hi: 50009, Shares: []header.Addr{w1, w2}},
		{Addr: vip1, Lo: 50000, Hi: 50009, Shares: []header.Addr{w1, w1}, PerShare: 2},
	}
	for _, c := range bad {
		if err := tbl.SetPool(c); err == nil {
			t.Errorf("SetPool(%+v) accepted", c)
		}
	}
	if err := tbl.SetPool(PoolConfig{Addr: vip1, Lo: 50000, Hi: 50009, Shares: []header.Addr{w1, w2}, PerShare: 3}); err != nil {
		t.Fatal(err)
	}
	ports := map[header.Addr][]uint16{}
	for _, src := range []header.Addr{w1, w2} {
		for i := range 4 {
			k := tcpKey(src, echo, uint16(50000+i), 80)
			f, err := tbl.Insert(k, snat(k, vip1), clk.Now())
			if i == 3 {
				if !errors.Is(err, ErrPoolExhausted) {
					t.Errorf("%v's fourth flow: %v, want ErrPoolExhausted", src, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%v's flow %d: %v", src, i, err)
			}
			ports[src] = append(ports[src], f.Translated().SrcPort)
		}
	}
	// The other source draws from the whole range: the last 4 ports.
	k := tcpKey(fe1, echo, 1, 80)
	if f, err := tbl.Insert(k, snat(k, vip1), clk.Now()); err != nil || f.Translated().SrcPort != 50006 {
		t.Errorf("an unshared source got %v, %v; want port 50006", f.Translated().SrcPort, err)
	}
	if w := []uint16{50000, 50001, 50002}; !slices.Equal(ports[w1], w) {
		t.Errorf("w1 got ports %v, want %v", ports[w1], w)
	}
	if w := []uint16{50003, 50004, 50005}; !slices.Equal(ports[w2], w) {
		t.Errorf("w2 got ports %v, want %v", ports[w2], w)
	}
	var tcp PoolStats
	for _, p := range tbl.Pools() {
		if p.Proto == header.ProtoTCP {
			tcp = p
		}
	}
	want := []ShareStats{{Src: w1, Lo: 50000, Hi: 50002, InUse: 3, Exhausted: 1}, {Src: w2, Lo: 50003, Hi: 50005, InUse: 3, Exhausted: 1}}
	if tcp.InUse != 7 || tcp.Exhausted != 2 || !slices.Equal(tcp.Shares, want) {
		t.Errorf("TCP pool %+v, want 7 in use, 2 refused, shares %+v", tcp, want)
	}
	// A share that keeps its place keeps its counters when the pool is
	// shared out again; fe1 now owns the port it took from the whole
	// range. Once w1's flows time out, its ports come back.
	if err := tbl.SetPool(PoolConfig{Addr: vip1, Lo: 50000, Hi: 50009, Shares: []header.Addr{w1, w2, fe1}, PerShare: 3}); err != nil {
		t.Fatal(err)
	}
	for _, p := range tbl.Pools() {
		if p.Proto == header.ProtoTCP && (len(p.Shares) != 3 || p.Shares[0].Exhausted != 1 || p.Shares[2].InUse != 1) {
			t.Errorf("after adding a share: %+v", p.Shares)
		}
	}
	clk.Advance(5 * time.Minute)
	k = tcpKey(w1, echo, 9, 80)
	if f, err := tbl.Insert(k, snat(k, vip1), clk.Now()); err != nil || f.Translated().SrcPort < 50000 || f.Translated().SrcPort > 50002 {
		t.Errorf("after w1's flows expired: port %v, %v; want one of 50000-50002", f.Translated().SrcPort, err)
	}
}

// F17: a TCP SNAT port serves one flow per destination address and port,
// as Azure's load balancer reuses it (its outbound-connections article,
// "Port reuse"). With both ports of w1's share held by flows to echo:80, a
// third flow there is refused, while flows to echo:443 and to another
// address share the held ports; each translates back to its own flow, and
// a shared port is free only when its last flow has gone. UDP keeps a port
// a flow.
func TestPortReuseAcrossDestinations(t *testing.T) {
	tbl, clk := newTable(t, Config{})
	if err := tbl.SetPool(PoolConfig{Addr: vip1, Lo: 50000, Hi: 50003, Shares: []header.Addr{w1, w2}, PerShare: 2}); err != nil {
		t.Fatal(err)
	}
	insert := func(k Key) (Flow, error) { return tbl.Insert(k, snat(k, vip1), clk.Now()) }
	var web []Flow
	for i := range 3 {
		f, err := insert(tcpKey(w1, echo, uint16(40000+i), 80))
		if i == 2 {
			if !errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("third flow to echo:80 from a share of 2: %v, want ErrPoolExhausted", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		web = append(web, f)
	}
	var shared []Flow
	for i, k := range []Key{tcpKey(w1, echo, 40010, 443), tcpKey(w1, echo, 40011, 443), tcpKey(w1, client, 40012, 80)} {
		f, err := insert(k)
		if err != nil {
			t.Fatalf("flow %d to %v:%d with w1's share taken by flows to echo:80: %v; want a shared port", i, k.Dst, k.DstPort, err)
		}
		if p := f.Translated().SrcPort; p < 50000 || p > 50001 {
			t.Errorf("flow to %v:%d got port %d, want one of w1's 50000-50001", k.Dst, k.DstPort, p)
		}
		shared = append(shared, f)
	}
	if _, err := insert(tcpKey(w1, echo, 40013, 443)); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("third flow to echo:443: %v, want ErrPoolExhausted", err)
	}
	for _, f := range append(web, shared...) {
		if g, ok := tbl.Lookup(f.Translated().Reverse(), clk.Now()); !ok || g.Translated() != f.Key().Reverse() {
			t.Errorf("the reply to %v reaches %v (found %v), want %v", f.Translated(), g.Translated(), ok, f.Key().Reverse())
		}
	}
	tcpShares := func() ShareStats {
		for _, p := range tbl.Pools() {
			if p.Proto == header.ProtoTCP {
				return p.Shares[0]
			}
		}
		return ShareStats{}
	}
	if s := tcpShares(); s.InUse != 2 || s.Exhausted != 2 {
		t.Errorf("w1's share %+v, want 2 ports in use and 2 refusals", s)
	}
	// The flows to echo:80 end (RST): their ports stay with the flows that
	// share them, so echo:80 gets a port again, and nothing is free yet.
	for _, f := range web {
		send(t, tbl, f.Key(), header.TCPFlagRST)
	}
	clk.Advance(15 * time.Second)
	tbl.Expire()
	if s := tcpShares(); s.InUse != 2 {
		t.Errorf("with the shared ports' first flows gone: %d in use, want 2", s.InUse)
	}
	if _, err := insert(tcpKey(w1, echo, 40020, 80)); err != nil {
		t.Errorf("echo:80 once its flows ended: %v", err)
	}
	clk.Advance(5 * time.Minute)
	tbl.Expire()
	if s := tcpShares(); s.InUse != 0 {
		t.Errorf("after every flow timed out: %d ports in use, want 0", s.InUse)
	}

	// UDP: a port a destination address, whatever the destination port.
	udp := func(dst header.Addr, sp, dp uint16) Key {
		return Key{Src: w2, Dst: dst, SrcPort: sp, DstPort: dp, Proto: header.ProtoUDP}
	}
	for i := range 3 {
		if _, err := insert(udp(echo, uint16(41000+i), uint16(7+i))); (i == 2) != errors.Is(err, ErrPoolExhausted) {
			t.Errorf("UDP flow %d to echo from a share of 2, each to its own port: %v", i+1, err)
		}
	}
	var other []Flow
	for i := range 2 {
		f, err := insert(udp(client, uint16(41010+i), 53))
		if err != nil {
			t.Fatalf("UDP flow %d to another address with w2's share taken by flows to echo: %v; want a shared port", i+1, err)
		}
		other = append(other, f)
	}
	if other[0].Translated().SrcPort == other[1].Translated().SrcPort {
		t.Errorf("two UDP flows to %v share port %d; Azure gives each its own", client, other[0].Translated().SrcPort)
	}
	if _, err := insert(udp(client, 41012, 123)); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("third UDP flow to %v, from 2 ports that each reach it: %v, want ErrPoolExhausted", client, err)
	}
	for _, f := range other {
		if g, ok := tbl.Lookup(f.Translated().Reverse(), clk.Now()); !ok || g.Translated() != f.Key().Reverse() {
			t.Errorf("the reply to %v reaches %v (found %v), want %v", f.Translated(), g.Translated(), ok, f.Key().Reverse())
		}
	}
}

// A shared port's holders, counted from the live flows, are what the pool
// says (its bit and its extra count, and for UDP its count by destination
// address), through random flows from two sources to three destinations of
// two hosts, resets, time-outs and sweeps on a pool of 4 ports; no two UDP
// flows reach one address through one port; once every flow has timed
// out, nothing is held.
func TestPortReuseAccounting(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		t.Run(ProtoName(proto), func(t *testing.T) { testPortReuseAccounting(t, proto) })
	}
}

func testPortReuseAccounting(t *testing.T, proto uint8) {
	tbl, clk := newTable(t, Config{})
	if err := tbl.SetPool(PoolConfig{Addr: vip1, Lo: 50000, Hi: 50003}); err != nil {
		t.Fatal(err)
	}
	shared := 0 // the most ports shared at once: the test must reach sharing
	check := func(step int) {
		t.Helper()
		tbl.mu.Lock()
		defer tbl.mu.Unlock()
		p := tbl.poolByKey[poolKey{vip1, proto}]
		holders := map[uint16]uint32{}
		byDst := map[uint64]uint32{}
		for i := range tbl.hiwater {
			if fl := &tbl.flows[i]; liveGen(fl.gs.Load()) && fl.pool == p.id+1 {
				holders[fl.port]++
				byDst[dstKey(fl.port, tbl.dstLocked(i))]++
			}
		}
		for port := uint16(50000); port <= 50003; port++ {
			var got uint32
			if p.isUsed(port) {
				got = 1 + p.extra[port]
			}
			if got != holders[port] {
				t.Fatalf("step %d: port %d: the pool counts %d holders, the flows %d", step, port, got, holders[port])
			}
			if got > 1 {
				shared++
			}
		}
		if p.inUse != len(holders) {
			t.Fatalf("step %d: %d ports in use, %d held", step, p.inUse, len(holders))
		}
		if proto != header.ProtoUDP {
			return
		}
		for k, n := range byDst {
			if n > 1 {
				t.Fatalf("step %d: %d UDP flows reach %v through port %d", step, n, header.Addr(k), k>>32)
			}
			if _, marked := p.extra[uint16(k>>32)]; marked && p.dsts[k] != n {
				t.Fatalf("step %d: port %d: the pool counts %d holders to %v, the flows %d", step, k>>32, p.dsts[k], header.Addr(k), n)
			}
		}
		for k, n := range p.dsts {
			if byDst[k] != n {
				t.Fatalf("step %d: port %d: the pool counts %d holders to %v, the flows %d", step, k>>32, n, header.Addr(k), byDst[k])
			}
		}
	}
	tick := time.Second
	if proto == header.ProtoUDP {
		tick = 8 * time.Second // UDP flows end only by their 4 minutes of idling
	}
	rng := rand.New(rand.NewPCG(17, 6))
	var live []Key
	for step := range 5000 {
		switch rng.IntN(4) {
		case 0, 1:
			k := Key{
				Src: []header.Addr{w1, w2}[rng.IntN(2)], Dst: []header.Addr{echo, client}[rng.IntN(2)],
				SrcPort: uint16(1000 + rng.IntN(100)), DstPort: uint16(80 + rng.IntN(3)), Proto: proto,
			}
			_, err := tbl.Insert(k, snat(k, vip1), clk.Now())
			switch {
			case err == nil:
				live = append(live, k)
			case !errors.Is(err, ErrPoolExhausted) && !errors.Is(err, ErrExists):
				t.Fatalf("step %d: %v", step, err)
			}
		case 2:
			if len(live) > 0 && proto == header.ProtoTCP {
				send(t, tbl, live[rng.IntN(len(live))], header.TCPFlagRST)
			}
		case 3:
			clk.Advance(time.Duration(rng.IntN(8)) * tick)
			if rng.IntN(4) == 0 {
				tbl.Expire()
			}
		}
		check(step)
	}
	clk.Advance(5 * time.Minute)
	tbl.Expire()
	check(-1)
	if p := tbl.poolByKey[poolKey{vip1, proto}]; p.inUse != 0 || len(p.extra) != 0 || len(p.dsts) != 0 {
		t.Errorf("after every flow timed out: %d ports in use, %d shared, %d counted by address", p.inUse, len(p.extra), len(p.dsts))
	}
	t.Logf("ports shared in %d checks", shared)
	if shared < 100 {
		t.Errorf("ports were shared in only %d checks: the test did not exercise sharing", shared)
	}
}

// TestFlowsSnapshot is what `emulator flows` shows: original and
// translated tuples, state, age, packets and bytes each way.
func TestFlowsSnapshot(t *testing.T) {
	tbl, clk := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	a := tcpKey(w1, echo, 40000, 80)
	f, _ := tbl.Insert(a, snat(a, vip1), tbl.Now())
	syn := tcpPkt(t, a, header.TCPFlagSYN, "")
	synack := tcpPkt(t, f.Translated().Reverse(), header.TCPFlagSYN|header.TCPFlagACK, "hello")
	send(t, tbl, a, header.TCPFlagSYN)
	clk.Advance(3 * time.Second)
	send(t, tbl, f.Translated().Reverse(), header.TCPFlagSYN|header.TCPFlagACK)
	// The first segment had no payload; the helper's packets are the same
	// length for both.
	fi := tbl.Flows()
	if len(fi) != 1 {
		t.Fatalf("%d flows, want 1", len(fi))
	}
	got := fi[0]
	if got.Orig != a || got.Translated() != snat(a, vip1) || got.Reply != snat(a, vip1).Reverse() {
		t.Errorf("tuples %v / %v / %v", got.Orig, got.Translated(), got.Reply)
	}
	if got.State != StateEstablished {
		t.Errorf("state %v", got.State)
	}
	if got.Age != int64(3*time.Second) {
		t.Errorf("age %v, want 3s", time.Duration(got.Age))
	}
	if got.Packets != [2]uint64{1, 1} {
		t.Errorf("packets %v, want 1 each way", got.Packets)
	}
	if want := [2]uint64{uint64(len(syn)), uint64(len(synack) - len("hello"))}; got.Bytes != want {
		t.Errorf("bytes %v, want %v", got.Bytes, want)
	}
	if got.LastSeen != tbl.Now() {
		t.Errorf("last seen %d, want now %d", got.LastSeen, tbl.Now())
	}
}

func TestNextState(t *testing.T) {
	const (
		S = header.TCPFlagSYN
		A = header.TCPFlagACK
		F = header.TCPFlagFIN
		R = header.TCPFlagRST
	)
	tcp := uint8(header.ProtoTCP)
	cases := []struct {
		s     State
		d     Dir
		flags uint8
		want  State
	}{
		{StateNew, Original, S, StateSynSent},
		{StateNew, Original, A, StateEstablished}, // picked up mid-stream
		{StateSynSent, Original, S, StateSynSent}, // retransmitted SYN
		{StateSynSent, Reply, S | A, StateEstablished},
		{StateSynSent, Reply, R, StateClosed},
		{StateEstablished, Original, A, StateEstablished},
		{StateEstablished, Reply, F | A, StateClosing},
		{StateClosing, Original, A, StateClosing},
		{StateClosing, Original, R, StateClosed},
		{StateClosed, Original, F, StateClosed},
		{StateClosed, Original, S, StateSynSent},
		{StateClosing, Original, S, StateSynSent},
		{StateEstablished, Original, S, StateEstablished},
	}
	for _, c := range cases {
		if got := nextState(c.s, tcp, c.d, c.flags); got != c.want {
			t.Errorf("%v + %v flags %#x -> %v, want %v", c.s, c.d, c.flags, got, c.want)
		}
	}
	if got := nextState(StateNew, header.ProtoUDP, Original, 0); got != StateNew {
		t.Errorf("UDP original -> %v", got)
	}
	if got := nextState(StateNew, header.ProtoUDP, Reply, 0); got != StateEstablished {
		t.Errorf("UDP reply -> %v", got)
	}
	if StateClosing.String() != "closing" || State(9).String() != "state(9)" || Reply.String() != "reply" {
		t.Error("String")
	}
}

// TestIndexChurn checks the hash index against a map through random
// inserts and removals, at full load, so that backward-shift deletion
// meets every cluster shape: every live key must be found in the right
// direction and every removed one not.
func TestIndexChurn(t *testing.T) {
	for _, max := range []int{2, 8, 64, 512} {
		t.Run(fmt.Sprint(max), func(t *testing.T) { testIndexChurn(t, max) })
	}
}

func testIndexChurn(t *testing.T, max int) {
	tbl, _ := newTable(t, Config{MaxFlows: max})
	r := rand.New(rand.NewPCG(7, 8))
	live := map[Key]Key{} // orig -> reply
	randKey := func() Key {
		// Few addresses and ports, so keys collide and clusters form.
		return tcpKey(addr(10, 0, 1, byte(r.IntN(16))), echo, uint16(r.IntN(64)), 80)
	}
	for step := range 50000 {
		k := randKey()
		if _, ok := live[k]; ok || len(live) == max || r.IntN(3) == 0 {
			// Remove a random live flow.
			for victim := range live {
				tbl.mu.Lock()
				idx, _, _ := tbl.findLocked(victim.pack())
				tbl.removeLocked(idx)
				tbl.mu.Unlock()
				delete(live, victim)
				break
			}
			continue
		}
		x := k
		x.Src, x.SrcPort = vip1, uint16(step)
		f, err := tbl.Insert(k, x, tbl.Now())
		if err != nil {
			t.Fatalf("step %d: insert %v: %v", step, k, err)
		}
		live[k] = f.Translated().Reverse()
		if step%97 == 0 {
			for o, rk := range live {
				if f, ok := tbl.Lookup(o, tbl.Now()); !ok || f.Dir() != Original {
					t.Fatalf("step %d: %v not found as original", step, o)
				}
				if f, ok := tbl.Lookup(rk, tbl.Now()); !ok || f.Dir() != Reply || f.Translated() != o.Reverse() {
					t.Fatalf("step %d: reply %v not found", step, rk)
				}
			}
		}
	}
	if s := tbl.Stats(); s.Flows != len(live) {
		t.Errorf("%d flows in the table, %d in the model", s.Flows, len(live))
	}
	// Every slot is accounted for: two per live flow.
	used := 0
	for i := range tbl.slots {
		if tbl.slots[i].Load() != 0 {
			used++
		}
	}
	if used != 2*len(live) {
		t.Errorf("%d index slots used for %d flows", used, len(live))
	}
}

// TestFlowLayout pins the sizes the memory budget rests on, and that the
// slab and index hold no pointers for the GC to scan.
func TestFlowLayout(t *testing.T) {
	for _, v := range []any{flow{}, atomic.Uint64{}, portMap{}} {
		if p := pointerIn(reflect.TypeOf(v)); p != "" {
			t.Errorf("%T holds a pointer (%s): the GC would scan every flow", v, p)
		}
	}
	if s := unsafe.Sizeof(flow{}); s != 192 {
		t.Errorf("flow is %d bytes, want 192 (three cache lines)", s)
	}
	if o := unsafe.Offsetof(flow{}.ctr); o != 64 {
		t.Errorf("counters start at byte %d, want 64 (the second cache line)", o)
	}
	if s := unsafe.Sizeof(Key{}); s != 16 {
		t.Errorf("Key is %d bytes, want 16", s)
	}
}

// pointerIn names a field of t the GC would have to scan, or is "".
func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Slice, reflect.Map, reflect.Chan,
		reflect.Func, reflect.Interface, reflect.String:
		return t.String()
	case reflect.Array:
		return pointerIn(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if p := pointerIn(t.Field(i).Type); p != "" {
				return t.Field(i).Name + " " + p
			}
		}
	}
	return ""
}

// TestPortHintReclaimed: a new flow whose own source port is the VIP port
// of a flow that timed out (not yet swept) gets that port, F17's port
// preservation and reuse together.
func TestPortHintReclaimed(t *testing.T) {
	tbl, clk := newTable(t, Config{Pools: []PoolConfig{{Addr: vip1, Lo: 50000, Hi: 50009}}})
	a := tcpKey(w1, echo, 50003, 80)
	b := tcpKey(w2, echo, 50003, 80)
	f, _ := tbl.Insert(a, snat(a, vip1), tbl.Now())
	send(t, tbl, a, header.TCPFlagRST)
	g, _ := tbl.Insert(b, snat(b, vip1), tbl.Now())
	if p := g.Translated().SrcPort; p == 50003 {
		t.Fatal("port 50003 given to a second flow while the first still holds it")
	}
	clk.Advance(15 * time.Second)
	c := tcpKey(w2, echo, 50003, 443)
	h, err := tbl.Insert(c, snat(c, vip1), tbl.Now())
	if err != nil || h.Translated().SrcPort != 50003 {
		t.Errorf("after the RST timeout: port %d, %v; want 50003 kept", h.Translated().SrcPort, err)
	}
	if _, ok := tbl.Lookup(f.Translated().Reverse(), tbl.Now()); ok {
		t.Error("the expired flow's reply key still finds a flow")
	}
}

// TestExpireManyFlows crosses the sweep's chunk boundaries: half of 10,000
// flows are reset and expire 15 s later, the rest stay.
func TestExpireManyFlows(t *testing.T) {
	const n = 10_000
	tbl, clk := newTable(t, Config{MaxFlows: n, Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	rst := tcpPkt(t, tcpKey(w1, echo, 1, 80), header.TCPFlagRST, "")
	for i := range n {
		k := tcpKey(addr(10, 0, byte(i>>8), byte(i)), echo, 40000, 80)
		f, err := tbl.Insert(k, snat(k, vip1), tbl.Now())
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			f.Translate(parse(t, append([]byte(nil), rst...)), nil)
		}
	}
	clk.Advance(15 * time.Second)
	if got := len(tbl.Flows()); got != n/2 {
		t.Errorf("Flows() lists %d, want %d (expired flows are not shown)", got, n/2)
	}
	if got := tbl.Expire(); got != n/2 {
		t.Errorf("Expire removed %d, want %d", got, n/2)
	}
	s := tbl.Stats()
	if s.Flows != n/2 || s.Expired != n/2 || s.Created != n {
		t.Errorf("stats %+v", s)
	}
	for _, p := range tbl.Pools() {
		if p.Proto == header.ProtoTCP && p.InUse != n/2 {
			t.Errorf("%d TCP ports in use, want %d", p.InUse, n/2)
		}
	}
}

// A collected table's mappings go to the next table of the same size,
// emptied: the process maps at most what its tables needed at once, and
// the new table starts with no flow of the old one's.
func TestMappingsReusedEmpty(t *testing.T) {
	const n = 4096
	first := func() uintptr {
		tbl, _ := newTable(t, Config{MaxFlows: n, Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
		for i := range 1000 {
			k := tcpKey(addr(10, 1, byte(i>>8), byte(i)), echo, uint16(i), 443)
			if _, err := tbl.Insert(k, snat(k, vip1), tbl.Now()); err != nil {
				t.Fatal(err)
			}
		}
		return uintptr(unsafe.Pointer(&tbl.flows[0]))
	}()
	size := n * int(unsafe.Sizeof(flow{}))
	for i := 0; i < 100 && len(spareOf(size)) == 0; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if len(spareOf(size)) == 0 {
		t.Fatal("the collected table's slab never reached spare")
	}
	tbl, _ := newTable(t, Config{MaxFlows: n, Pools: []PoolConfig{{Addr: vip1, Lo: 1024, Hi: 65535}}})
	if got := uintptr(unsafe.Pointer(&tbl.flows[0])); got != first {
		t.Errorf("new table's slab at %#x, want the collected one's %#x", got, first)
	}
	for i := range tbl.flows {
		if tbl.flows[i].gs.Load() != 0 || tbl.flows[i].key[Original][0].Load() != 0 {
			t.Fatalf("entry %d of the reused slab is not empty", i)
		}
	}
	for i := range tbl.slots {
		if tbl.slots[i].Load() != 0 {
			t.Fatalf("slot %d of the reused index is not empty", i)
		}
	}
	k := tcpKey(addr(10, 1, 0, 0), echo, 0, 443)
	if _, ok := tbl.Lookup(k, tbl.Now()); ok {
		t.Error("the new table finds a flow of the collected one")
	}
}

func spareOf(size int) [][]byte {
	spare.mu.Lock()
	defer spare.mu.Unlock()
	return spare.bySize[size]
}
