// Package dns is Azure DNS at 168.63.129.16 (F15): the resolver every VNet
// machine uses, here also the one every Internet host of the lab uses.
//
// It answers A records for the lab's names (see NewZone) on UDP and TCP 53,
// PTR records for the VNet machines' addresses, and NXDOMAIN for every
// other name: the lab has no way out to the real Internet, so a name it
// does not know does not exist. The names private
// to a VNet (an ILB ASE's apps, NODE.internal.cloudapp.net) do not exist
// for a querier outside it (Zone.Sees), as for an Internet host asking a
// public resolver.
package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/topology"
)

// Defaults and constants of the answers.
const (
	DefaultPort = 53
	// TTL of every record: short, because the ASE scales and apps move,
	// and a learner who changes the lab should not wait long to see it.
	TTL = 60
	// nameServer is the SOA's primary name server. It is not resolvable;
	// it only names who answers, as a SOA must.
	nameServer = "azuredns." + InternalZone + "."
)

// Config is the DNS server's.
type Config struct {
	Topology *topology.Topology // the zone data (NewZone)
	Port     int                // UDP and TCP; 0: DefaultPort
}

// Server is the running DNS server.
type Server struct {
	zone   atomic.Pointer[Zone]
	serial atomic.Uint32 // SOA serial: a new one on every Reload
	log    *QueryLog
	g      netx.Group
}

// Start opens UDP and TCP port 53 through n and answers from cfg.Topology's
// zone data until Close.
func Start(n netx.Net, cfg Config) (*Server, error) {
	if cfg.Topology == nil {
		return nil, errors.New("dns: Config.Topology is nil")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	s := &Server{log: NewQueryLog(LogSize)}
	s.zone.Store(NewZone(cfg.Topology))
	s.serial.Store(uint32(time.Now().Unix()))

	ls := netx.NewListeners(n)
	pc, l := ls.UDP(cfg.Port), ls.TCP(cfg.Port)
	if err := ls.Err(); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: netx.Budgeted(l), Handler: s}
	for _, srv := range []*dns.Server{udp, tcp} {
		if err := s.serve(srv); err != nil {
			s.Close()
			pc.Close()
			l.Close()
			return nil, fmt.Errorf("dns: %w", err)
		}
	}
	return s, nil
}

// serve starts srv and returns once it serves. miekg/dns's Shutdown fails,
// and leaves the server running, if it comes before the server has
// started; waiting here makes Close right at any time after Start.
func (s *Server) serve(srv *dns.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	s.g.Go(func() {
		if err := srv.ActivateAndServe(); err != nil {
			failed <- err
		}
	})
	select {
	case <-started:
		s.g.OnClose(srv.Shutdown)
		return nil
	case err := <-failed:
		return err
	}
}

// Reload makes the server answer from t from now on: the ASE scaled, apps
// moved, hosts added. A query sees the old zone data or the new, never a
// mix.
func (s *Server) Reload(t *topology.Topology) {
	s.zone.Store(NewZone(t))
	s.serial.Add(1)
}

// Zone returns the zone data the server answers from now.
func (s *Server) Zone() *Zone { return s.zone.Load() }

// Queries returns the last queries the server answered (LogSize at most),
// oldest first.
func (s *Server) Queries() []Query { return s.log.Queries() }

// Close stops both ports and waits for queries under way.
func (s *Server) Close() error { return s.g.Close() }

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	client := netx.AddrPort(w.RemoteAddr())
	m := s.answer(r, client.Addr())
	proto := "tcp"
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		proto = "udp"
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
	s.log.add(logged(r, m, proto, client, s.zone.Load().NodeAt(client.Addr())))
}

// answer answers r, a query from address from.
func (s *Server) answer(r *dns.Msg, from netip.Addr) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	// Azure DNS is a recursive resolver; without RA, nslookup and dig
	// warn on every answer.
	m.RecursionAvailable = true
	o := r.IsEdns0()
	if o != nil {
		m.SetEdns0(1232, false) // the DNS Flag Day 2020 size: no fragments
	}
	switch {
	case o != nil && o.Version() != 0:
		// RFC 6891 6.1.3: a version this server does not speak is
		// BADVERS, with its own version (0), so the client falls back.
		m.Rcode = dns.RcodeBadVers
		return m
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(r.Question) != 1:
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := r.Question[0]
	if q.Qclass != dns.ClassINET {
		// Not a name that does not exist, but a class this server does
		// not serve at all (CHAOS version.bind and the like).
		m.Rcode = dns.RcodeRefused
		return m
	}

	z := s.zone.Load()
	name := fqdn(q.Name)
	if strings.HasSuffix(name, "."+ReverseZone) {
		return reverse(m, q, z, name, from)
	}
	// A name the querier cannot see is one that does not exist, and so is
	// a zone it cannot see (an ILB ASE's, from outside its VNet).
	apex, inZone := z.apexOf(name)
	inZone = inZone && z.Sees(apex, from)
	m.Authoritative = inZone
	seen := inZone && z.Sees(name, from)
	addr, hasA := z.a[name]
	hasA = hasA && seen
	switch {
	case hasA && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY):
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: TTL},
			A:   addr.AsSlice(),
		})
		return m
	case inZone && name == apex && q.Qtype == dns.TypeSOA:
		m.Answer = append(m.Answer, s.soa(q.Name))
		return m
	case !z.exists(name) || !seen:
		m.Rcode = dns.RcodeNameError
	}
	// NXDOMAIN, or a name that exists without a record of this type
	// (AAAA of an app: the lab is IPv4 only). Inside a zone, the SOA says
	// for how long a resolver may remember that (RFC 2308).
	if inZone {
		m.Ns = append(m.Ns, s.soa(apex))
	}
	return m
}

// reverse answers m's question q, for reverse name, from z's PTR records.
// The lab serves no reverse zone of its own, only Azure's records for the
// VNet machines, so its answers are not authoritative, as Azure DNS's are
// not ("Non-authoritative answer" in the docs' nslookup -type=ptr), and a
// name it does not know is NXDOMAIN: a public address's reverse zone is
// on the Internet, which the lab cannot reach.
func reverse(m *dns.Msg, q dns.Question, z *Zone, name string, from netip.Addr) *dns.Msg {
	targets, exists := z.Reverse(name, from)
	if !exists {
		m.Rcode = dns.RcodeNameError
		return m
	}
	if q.Qtype != dns.TypePTR && q.Qtype != dns.TypeANY {
		return m
	}
	for _, t := range targets {
		m.Answer = append(m.Answer, &dns.PTR{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: TTL},
			Ptr: t,
		})
	}
	return m
}

func (s *Server) soa(apex string) *dns.SOA {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: apex, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:      nameServer,
		Mbox:    "hostmaster." + strings.ToLower(dns.Fqdn(apex)),
		Serial:  s.serial.Load(),
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  TTL,
	}
}
