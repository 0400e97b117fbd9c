package dns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/aseemu/emulator/topology"
)

// The log keeps the last queries, oldest first, and no more than its size
// however many come.
func TestQueryLogKeepsTheLast(t *testing.T) {
	l := NewQueryLog(3)
	if q := l.Queries(); len(q) != 0 {
		t.Fatalf("a new log has %v", q)
	}
	for i := range 8 {
		l.add(Query{Name: fmt.Sprint(i)})
		var want []string
		for j := max(0, i-2); j <= i; j++ {
			want = append(want, fmt.Sprint(j))
		}
		var got []string
		for _, q := range l.Queries() {
			got = append(got, q.Name)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after %d queries: %v, want %v", i+1, got, want)
		}
	}
	if l.order.Len() != 3 || len(l.byKey) != 3 {
		t.Errorf("the log holds %d queries (%d keys), want 3", l.order.Len(), len(l.byKey))
	}
}

// A query asked again, by the same client with the same answer, is counted
// and moves to the end; asked by another client, or answered otherwise, it
// is a query of its own.
func TestQueryLogRepeats(t *testing.T) {
	l := NewQueryLog(3)
	w1 := netip.MustParseAddrPort("10.0.1.6:1000")
	q := func(name string, client netip.AddrPort, answer string) Query {
		return Query{Proto: "udp", Client: client, Name: name, Type: "A", Rcode: "NOERROR", Answers: []string{answer}}
	}
	l.add(q("app1", w1, "192.23.1.2"))
	l.add(q("sql", w1, "203.0.113.20"))
	for port := range uint16(100) {
		l.add(q("sql", netip.AddrPortFrom(w1.Addr(), 2000+port), "203.0.113.20"))
	}
	l.add(q("app1", netip.MustParseAddrPort("10.0.1.7:1000"), "192.23.1.2"))
	got := l.Queries()
	want := []string{"app1 10.0.1.6:1000 192.23.1.2 1", "sql 10.0.1.6:2099 203.0.113.20 101", "app1 10.0.1.7:1000 192.23.1.2 1"}
	check := func() {
		t.Helper()
		var s []string
		for _, x := range got {
			s = append(s, fmt.Sprint(x.Name, " ", x.Client, " ", x.Answers[0], " ", x.Count))
		}
		if !slices.Equal(s, want) {
			t.Errorf("log %q, want %q", s, want)
		}
	}
	check()
	// app1 moved (apply): its new answer is another query, and pushes
	// the oldest out.
	l.add(q("app1", w1, "192.23.1.9"))
	got = l.Queries()
	want = []string{"sql 10.0.1.6:2099 203.0.113.20 101", "app1 10.0.1.7:1000 192.23.1.2 1", "app1 10.0.1.6:1000 192.23.1.9 1"}
	check()
}

// Queries come from every server goroutine while the control socket reads
// the log (run with -race).
func TestQueryLogConcurrent(t *testing.T) {
	l := NewQueryLog(50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				l.add(Query{Name: fmt.Sprintf("%d-%d", g, i)})
				if i%100 == 0 {
					l.Queries()
				}
			}
		})
	}
	wg.Wait()
	q := l.Queries()
	if len(q) != 50 {
		t.Fatalf("%d queries kept, want 50", len(q))
	}
	// Each goroutine's queries stay in the order it made them.
	last := map[string]int{}
	for _, x := range q {
		var g, i int
		fmt.Sscanf(x.Name, "%d-%d", &g, &i)
		if p, ok := last[fmt.Sprint(g)]; ok && i <= p {
			t.Errorf("query %s after %d-%d", x.Name, g, p)
		}
		last[fmt.Sprint(g)] = i
	}
}

// writer is the client end of one query, for ServeDNS.
type writer struct {
	dns.ResponseWriter
	remote net.Addr
	msg    *dns.Msg
}

func (w *writer) RemoteAddr() net.Addr        { return w.remote }
func (w *writer) WriteMsg(m *dns.Msg) error   { w.msg = m; return nil }
func (w *writer) LocalAddr() net.Addr         { return &net.UDPAddr{IP: net.IPv4(168, 63, 129, 16), Port: 53} }
func (w *writer) Write(b []byte) (int, error) { return len(b), nil }
func (w *writer) Close() error                { return nil }
func (w *writer) TsigStatus() error           { return nil }
func (w *writer) TsigTimersOnly(bool)         {}
func (w *writer) Hijack()                     {}

// The server logs each query it answers: who asked (the node at that
// address), what, and what it answered.
func TestServerLogsQueries(t *testing.T) {
	s := &Server{log: NewQueryLog(LogSize)}
	s.zone.Store(NewZone(topology.Default()))
	ask := func(remote net.Addr, name string, qtype uint16) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		s.ServeDNS(&writer{remote: remote}, m)
	}
	rev, _ := dns.ReverseAddr("10.0.2.4")
	ask(&net.UDPAddr{IP: net.ParseIP("198.51.100.10"), Port: 40000}, "app1.ase1.p.azurewebsites.net.", dns.TypeA)
	ask(&net.TCPAddr{IP: net.ParseIP("10.0.1.6"), Port: 40001}, rev, dns.TypePTR)
	ask(&net.UDPAddr{IP: net.ParseIP("203.0.113.99"), Port: 40002}, "nowhere.example.net.", dns.TypeA)
	want := []Query{
		{Count: 1, Proto: "udp", Client: netip.MustParseAddrPort("198.51.100.10:40000"), Node: "client",
			Name: "app1.ase1.p.azurewebsites.net.", Type: "A", Rcode: "NOERROR", Answers: []string{"192.23.1.2"}},
		{Count: 1, Proto: "tcp", Client: netip.MustParseAddrPort("10.0.1.6:40001"), Node: "ase1-w1",
			Name: rev, Type: "PTR", Rcode: "NOERROR", Answers: []string{"db1.internal.cloudapp.net."}},
		{Count: 1, Proto: "udp", Client: netip.MustParseAddrPort("203.0.113.99:40002"),
			Name: "nowhere.example.net.", Type: "A", Rcode: "NXDOMAIN", Answers: []string{}},
	}
	got := s.Queries()
	if len(got) != len(want) {
		t.Fatalf("logged %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Time.IsZero() {
			t.Errorf("query %d has no time", i)
		}
		got[i].Time = want[i].Time
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("query %d logged as %+v, want %+v", i, got[i], want[i])
		}
	}
}
