package dns

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/internal/leakcheck"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/topology"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// The default lab's names and the addresses they must resolve to.
var defaultLabNames = []struct{ name, addr, why string }{
	{"app1.ase1.p.azurewebsites.net", "192.23.1.2", "F6: an External ASE's app resolves to its VIP"},
	{"app1.scm.ase1.p.azurewebsites.net", "192.23.1.2", "F6: Kudu of an External ASE's app"},
	{"app2.ase2.p.azurewebsites.net", "192.23.2.2", "F6"},
	{"app3.ase3.internal", "10.0.4.8", "F7: an ILB ASE's app resolves to its ILB address"},
	{"app3.scm.ase3.internal", "10.0.4.8", "F7: Kudu of an ILB ASE's app"},
	{"echo.example.net", "203.0.113.10", "Internet host"},
	{"client.example.net", "198.51.100.10", "Internet host"},
	{"azure-sql.example.net", "203.0.113.20", "Internet host"},
	{"sql.database.windows.net", "203.0.113.20", "F16: Azure SQL"},
	{"storage.blob.core.windows.net", "203.0.113.30", "F16: Azure Storage"},
	{"management.azure.com", "203.0.113.40", "Azure management"},
	{"db1.internal.cloudapp.net", "10.0.2.4", "VM in the VNet"},
	{"ase1-fe1.internal.cloudapp.net", "10.0.1.4", "front-end in the VNet"},
	{"ase1-w2.internal.cloudapp.net", "10.0.1.7", "worker in the VNet"},
	{"ase3-fe2.internal.cloudapp.net", "10.0.4.5", "ILB ASE front-end in the VNet"},
}

func TestZoneOfTheDefaultLab(t *testing.T) {
	z := NewZone(topology.Default())
	for _, c := range defaultLabNames {
		if a, ok := z.Lookup(c.name); !ok || a.String() != c.addr {
			t.Errorf("%s = %v (found %v), want %s (%s)", c.name, a, ok, c.addr, c.why)
		}
	}
	for _, name := range []string{"echo", "client.internal.cloudapp.net", "db1.example.net", "app2.ase1.p.azurewebsites.net"} {
		if a, ok := z.Lookup(name); ok {
			t.Errorf("%s resolves to %s, want no record", name, a)
		}
	}
	// 3 apps and their Kudu names, 5 Internet hosts, 3 Azure names, 13 VNet machines.
	if got, want := len(z.Names()), 3*2+5+3+13; got != want {
		t.Errorf("zone has %d names, want %d: %v", got, want, z.Names())
	}
	if got := AzureNames("azure-sql"); len(got) != 1 || got[0] != "sql.database.windows.net" {
		t.Errorf("AzureNames(azure-sql) = %v", got)
	}
}

type lab struct {
	n   *netx.Loopback
	srv *Server
}

func start(t *testing.T, topo *topology.Topology) *lab {
	t.Helper()
	n := netx.NewLoopback("platform", "168.63.129.16")
	s, err := Start(n, Config{Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &lab{n, s}
}

func (l *lab) query(t *testing.T, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, l.n.Addr(network, 53))
	if err != nil {
		t.Fatalf("%s query %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestAnswersEveryKindOfName(t *testing.T) { // F6, F7, F15
	l := start(t, topology.Default())
	for _, network := range []string{"udp", "tcp"} { // tcp: nslookup -vc
		for _, c := range defaultLabNames {
			r := l.query(t, network, c.name, dns.TypeA)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Errorf("%s %s: rcode %s, %d answers; want one A record %s (%s)", network, c.name, dns.RcodeToString[r.Rcode], len(r.Answer), c.addr, c.why)
				continue
			}
			a, ok := r.Answer[0].(*dns.A)
			if !ok || a.A.String() != c.addr || a.Hdr.Ttl != TTL {
				t.Errorf("%s %s answered %v, want A %s with TTL %d (%s)", network, c.name, r.Answer[0], c.addr, TTL, c.why)
			}
			if !r.Authoritative || !r.RecursionAvailable {
				t.Errorf("%s %s: aa=%v ra=%v, want both set", network, c.name, r.Authoritative, r.RecursionAvailable)
			}
		}
	}
}

func TestNamesAreCaseInsensitive(t *testing.T) {
	l := start(t, topology.Default())
	r := l.query(t, "udp", "App1.ASE1.p.AzureWebsites.NET", dns.TypeA)
	if len(r.Answer) != 1 || r.Answer[0].Header().Name != "App1.ASE1.p.AzureWebsites.NET." {
		t.Errorf("mixed-case query answered %v, want one record under the name as asked", r.Answer)
	}
}

func TestAAAAOfAKnownNameIsNoData(t *testing.T) {
	l := start(t, topology.Default())
	for _, name := range []string{"app1.ase1.p.azurewebsites.net", "echo.example.net", "db1.internal.cloudapp.net"} {
		r := l.query(t, "udp", name, dns.TypeAAAA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || !r.Authoritative {
			t.Errorf("AAAA %s: rcode %s, %d answers, aa=%v; want NOERROR, no answer, authoritative", name, dns.RcodeToString[r.Rcode], len(r.Answer), r.Authoritative)
		}
		if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("AAAA %s: authority %v, want the zone's SOA", name, r.Ns)
		}
	}
}

func TestUnknownNamesAreNXDOMAIN(t *testing.T) {
	l := start(t, topology.Default())
	for _, c := range []struct {
		name          string
		authoritative bool
	}{
		{"app9.ase1.p.azurewebsites.net", true},
		{"app2.ase1.p.azurewebsites.net", true}, // app2 is ase2's
		{"nosuch.example.net", true},
		{"nosuch.internal.cloudapp.net", true},
		{"www.microsoft.com", false},
		{"echo", false},
	} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			r := l.query(t, "udp", c.name, qtype)
			if r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
				t.Errorf("%s %s: rcode %s, want NXDOMAIN", dns.TypeToString[qtype], c.name, dns.RcodeToString[r.Rcode])
			}
			if r.Authoritative != c.authoritative {
				t.Errorf("%s %s: aa=%v, want %v", dns.TypeToString[qtype], c.name, r.Authoritative, c.authoritative)
			}
		}
	}
}

func TestNamesBetweenApexAndRecordExist(t *testing.T) { // RFC 8020
	l := start(t, topology.Default())
	for _, name := range []string{"scm.ase1.p.azurewebsites.net", "ase1.p.azurewebsites.net", "example.net"} {
		r := l.query(t, "udp", name, dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("A %s: rcode %s, %d answers; want NOERROR with no answer", name, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
	r := l.query(t, "tcp", "ase3.internal", dns.TypeSOA)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.SOA).Minttl != TTL {
		t.Errorf("SOA ase3.internal: %v", r.Answer)
	}
}

func TestOtherClassesAndOpcodes(t *testing.T) {
	l := start(t, topology.Default())
	c := &dns.Client{Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	r, _, err := c.Exchange(m, l.n.Addr("udp", 53))
	if err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("CH TXT version.bind: %v %v, want REFUSED", r, err)
	}
	m = new(dns.Msg)
	m.SetNotify("ase1.p.azurewebsites.net.")
	r, _, err = c.Exchange(m, l.n.Addr("udp", 53))
	if err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("NOTIFY: %v %v, want NOTIMP", r, err)
	}
	m = new(dns.Msg)
	m.SetQuestion("echo.example.net.", dns.TypeA)
	m.SetEdns0(4096, false)
	r, _, err = c.Exchange(m, l.n.Addr("udp", 53))
	if err != nil || r.IsEdns0() == nil || len(r.Answer) != 1 {
		t.Errorf("EDNS query: %v %v, want an answer with OPT", r, err)
	}
	// dig +edns=1: a version the server does not speak (RFC 6891 6.1.3).
	m.IsEdns0().SetVersion(1)
	r, _, err = c.Exchange(m, l.n.Addr("udp", 53))
	if err != nil || r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil || r.IsEdns0().Version() != 0 || len(r.Answer) != 0 {
		t.Errorf("EDNS version 1 query: %v %v, want BADVERS with an OPT of version 0 and no answer", r, err)
	}
}

func TestReloadFollowsTheTopology(t *testing.T) { // F4: the ASE scales and changes
	l := start(t, topology.Default())
	// ase1 moved to another VIP, and given a second app.
	y := bytes.Replace(topology.DefaultYAML(), []byte("192.23.1.2"), []byte("192.23.1.9"), 1)
	y = bytes.Replace(y, []byte("      - name: app1\n"), []byte("      - name: app1\n      - name: app7\n"), 1)
	topo, err := topology.Parse("changed.yaml", y)
	if err != nil {
		t.Fatal(err)
	}
	l.srv.Reload(topo)
	for name, want := range map[string]string{"app1.ase1.p.azurewebsites.net": "192.23.1.9", "app7.ase1.p.azurewebsites.net": "192.23.1.9"} {
		r := l.query(t, "udp", name, dns.TypeA)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want {
			t.Errorf("after reload %s = %v, want %s", name, r.Answer, want)
		}
	}
	l.srv.Reload(topology.Default())
	if r := l.query(t, "tcp", "app7.ase1.p.azurewebsites.net", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("app7 removed by a reload still answers %v", r.Answer)
	}
}

func TestReloadUnderQueries(t *testing.T) {
	l := start(t, topology.Default())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				l.srv.Reload(topology.Default())
			}
		}
	}()
	for i := 0; i < 50; i++ {
		if r := l.query(t, "udp", "app1.ase1.p.azurewebsites.net", dns.TypeA); len(r.Answer) != 1 {
			t.Errorf("query during reload: %v", r)
		}
	}
	close(stop)
	wg.Wait()
}

func TestStartAndClose(t *testing.T) {
	n := netx.NewLoopback("platform")
	if _, err := Start(n, Config{}); err == nil {
		t.Error("Start without a topology succeeded")
	}
	taken, err := n.Listen("tcp", ":53")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(n, Config{Topology: topology.Default()}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Start with tcp 53 taken: %v, want address in use", err)
	}
	if n.Addr("udp", 53) != "" {
		t.Error("a failed Start left udp 53 open")
	}
	taken.Close()

	s, err := Start(n, Config{Topology: topology.Default()})
	if err != nil {
		t.Fatal(err)
	}
	// An idle TCP client must not hold Close up.
	c, err := net.Dial("tcp", n.Addr("tcp", 53))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("Close took %v with an idle TCP client", time.Since(start))
	}
	if n.Addr("udp", 53) != "" || n.Addr("tcp", 53) != "" {
		t.Error("Close left port 53 open")
	}
}

// F7, F15: an ILB ASE's names and the VNet machines' names exist only for
// the VNet (and the on-premises network its gateway joins); anyone else
// gets NXDOMAIN for them, and for the ILB ASE's zone itself, while public
// names answer everyone.
func TestPrivateNamesOnlyInTheirVNet(t *testing.T) {
	s := &Server{}
	s.zone.Store(NewZone(topology.Default()))
	query := func(name string, qtype uint16, from string) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		return s.answer(m, netip.MustParseAddr(from))
	}
	private := map[string]bool{"app3.ase3.internal": true, "app3.scm.ase3.internal": true}
	for _, c := range defaultLabNames {
		if strings.HasSuffix(c.name, "."+InternalZone) {
			private[c.name] = true
		}
	}
	for _, c := range defaultLabNames {
		for _, from := range []string{"10.0.2.4", "198.51.100.10", "127.0.0.1"} {
			r := query(c.name, dns.TypeA, from)
			hidden := private[c.name] && from == "198.51.100.10"
			if hidden != (r.Rcode == dns.RcodeNameError) || hidden == (len(r.Answer) == 1) {
				t.Errorf("%s from %s: rcode %s, %d answers; want hidden=%v", c.name, from, dns.RcodeToString[r.Rcode], len(r.Answer), hidden)
			}
		}
	}
	if r := query("ase3.internal", dns.TypeSOA, "198.51.100.10"); r.Rcode != dns.RcodeNameError || len(r.Answer)+len(r.Ns) != 0 || r.Authoritative {
		t.Errorf("the ILB ASE's zone from the Internet: %v; want NXDOMAIN with no SOA", r)
	}
	if r := query("scm.ase3.internal", dns.TypeA, "198.51.100.10"); r.Rcode != dns.RcodeNameError {
		t.Errorf("a name between the ILB zone's apex and its records, from the Internet: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if r := query("ase3.internal", dns.TypeSOA, "10.0.1.6"); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("the ILB ASE's zone from the VNet: %v; want its SOA", r)
	}
}

// Azure DNS answers a PTR query for a VM's private address with
// VMNAME.internal.cloudapp.net, to queriers in the VM's own VNet only
// ("Reverse DNS considerations" in "Name resolution for resources in Azure
// virtual networks"). Every other address, public or unused, has no name.
func TestReverseLookupInTheVNet(t *testing.T) {
	l := start(t, topology.Default())
	for _, network := range []string{"udp", "tcp"} {
		for _, c := range defaultLabNames {
			if !strings.HasSuffix(c.name, "."+InternalZone) {
				continue
			}
			rev, _ := dns.ReverseAddr(c.addr)
			r := l.query(t, network, rev, dns.TypePTR)
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
				t.Errorf("%s PTR %s: rcode %s, %d answers; want %s (%s)", network, c.addr, dns.RcodeToString[r.Rcode], len(r.Answer), c.name, c.why)
				continue
			}
			p, ok := r.Answer[0].(*dns.PTR)
			if !ok || p.Ptr != c.name+"." || p.Hdr.Name != rev || p.Hdr.Ttl != TTL {
				t.Errorf("%s PTR %s answered %v, want %s %d IN PTR %s.", network, c.addr, r.Answer[0], rev, TTL, c.name)
			}
		}
	}
}

func TestReverseLookupOfOtherAddresses(t *testing.T) {
	vnets := []byte(`
virtualNetworks:
  - name: vnet1
    addressSpace: {addressPrefixes: [10.0.0.0/16]}
    subnets: [{name: s1, addressPrefix: 10.0.2.0/24}]
  - name: vnet2
    addressSpace: {addressPrefixes: [10.1.0.0/16]}
    subnets: [{name: s2, addressPrefix: 10.1.2.0/24}]
virtualMachines:
  - {name: db1, subnet: s1, privateIpAddress: 10.0.2.4}
  - {name: web1, subnet: s2, privateIpAddress: 10.1.2.4}
internetHosts:
  - {name: client, address: 198.51.100.10}
`)
	topo, err := topology.Parse("two-vnets.yaml", vnets)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	s.zone.Store(NewZone(topo))
	query := func(addr string, qtype uint16, from string) *dns.Msg {
		rev, err := dns.ReverseAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		m.SetQuestion(rev, qtype)
		return s.answer(m, netip.MustParseAddr(from))
	}
	for _, c := range []struct{ addr, from, why string }{
		{"10.0.2.200", "10.0.2.4", "an unused address of the VNet"},
		{"10.0.2.1", "10.0.2.4", "the subnet's gateway"},
		{"10.1.2.4", "10.0.2.4", "a VM of another VNet: reverse lookups are scoped to the VNet"},
		{"10.0.2.4", "198.51.100.10", "a VM, asked from the Internet"},
		{"198.51.100.10", "10.0.2.4", "an Internet host: outside Azure"},
		{"168.63.129.16", "10.0.2.4", "the platform address"},
	} {
		if r := query(c.addr, dns.TypePTR, c.from); r.Rcode != dns.RcodeNameError || len(r.Answer) != 0 {
			t.Errorf("PTR %s from %s (%s): rcode %s, %v; want NXDOMAIN", c.addr, c.from, c.why, dns.RcodeToString[r.Rcode], r.Answer)
		}
	}
	if r := query("10.1.2.4", dns.TypePTR, "10.1.2.4"); len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "web1.internal.cloudapp.net." {
		t.Errorf("PTR 10.1.2.4 from its own VNet: %v; want web1.internal.cloudapp.net.", r.Answer)
	}
	// The name exists, with no record of these types; nor do the names
	// above it (RFC 8020): NOERROR, not NXDOMAIN.
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"4.2.0.10.in-addr.arpa.", dns.TypeA}, {"4.2.0.10.in-addr.arpa.", dns.TypeAAAA}, {"2.0.10.in-addr.arpa.", dns.TypePTR}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		if r := s.answer(m, netip.MustParseAddr("10.0.2.4")); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("%s %s: rcode %s, %v; want NOERROR with no answer", dns.TypeToString[q.qtype], q.name, dns.RcodeToString[r.Rcode], r.Answer)
		}
	}
}
