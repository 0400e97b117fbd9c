package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/frontend"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/topology"
)

// The load balancer's probes (F15) and the ASE's health (F16). Both send
// real traffic through the dataplane, so NSGs and routes decide them as
// they decide everything else.
const (
	probeInterval = time.Second
	probeTimeout  = time.Second
	// probeFailures failed probes in a row take a front-end out of its
	// VIP's rotation, as Azure's load balancer does with its default probe.
	probeFailures = 2

	healthInterval = 2 * time.Second
	healthTimeout  = 2 * time.Second
)

// probeState is one front-end as the load balancer sees it.
type probeState struct {
	InRotation bool   `json:"inRotation"`
	Failures   int    `json:"failures"` // in a row
	LastError  string `json:"lastError,omitempty"`
}

// aseHealth is an ASE's health: its dependencies, checked from the ASE.
type aseHealth struct {
	Healthy  bool      `json:"healthy"`
	Problems []string  `json:"problems,omitempty"`
	Checked  time.Time `json:"checked"`
}

// monitor runs the probes and the health checks of a lab.
type monitor struct {
	lab    *runningLab
	mu     sync.Mutex
	probes map[string]*probeState // by front-end
	health map[string]aseHealth   // by ASE
	// ctx ends with stop, which also ends the probes and checks under way:
	// waiting out their timeouts made a lab's teardown take up to 10 s.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startMonitor(l *runningLab) *monitor {
	m := &monitor{lab: l, probes: map[string]*probeState{}, health: map[string]aseHealth{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	// The front-ends start out of rotation (dataplane.Config.AwaitProbes):
	// the first round of probes, before up returns, puts in those that
	// answer. A lab is then ready with the rotation Azure would give it,
	// and the first health check's call to the VIP finds it.
	m.probe()
	m.every(probeInterval, m.probe, false)
	m.every(healthInterval, m.checkHealth, true)
	m.every(probeInterval, l.checkDir, true)
	return m
}

// every runs f every d until stop, the first time at once if now.
func (m *monitor) every(d time.Duration, f func(), now bool) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for ; ; now = true {
			if now {
				f()
			}
			select {
			case <-t.C:
			case <-m.ctx.Done():
				return
			}
		}
	}()
}

func (m *monitor) stop() {
	m.cancel()
	m.wg.Wait()
}

// topology returns the lab's current topology and node sockets.
func (m *monitor) topology() (*topology.Topology, map[string]netx.Net) {
	m.lab.mu.Lock()
	defer m.lab.mu.Unlock()
	nets := make(map[string]netx.Net, len(m.lab.nets))
	for k, v := range m.lab.nets {
		nets[k] = v
	}
	return m.lab.topo, nets
}

// probe asks every front-end for /probe on 454, from 168.63.129.16.
func (m *monitor) probe() {
	t, nets := m.topology()
	platform := nets[topology.PlatformNode]
	if platform == nil {
		return
	}
	// A spent budget of the services must not refuse the probes: every
	// front-end would leave rotation, and every VIP of the lab go dark,
	// because one client held its connections (F15;
	// TestServicesLeaveDescriptorsToTheLab).
	client := netx.Client(netx.Exempt(platform), probeTimeout)
	var wg sync.WaitGroup
	for _, a := range t.ASEs {
		for _, fe := range a.FrontEnds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := get(m.ctx, client, fmt.Sprintf("http://%s:454/probe", fe.Addr))
				if m.ctx.Err() == nil { // not cut short by stop
					m.probed(fe.Name, err)
				}
			}()
		}
	}
	wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.probes {
		if t.NodeByName(name) == nil {
			delete(m.probes, name) // scaled away
		}
	}
}

func (m *monitor) probed(fe string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.probes[fe]
	if s == nil {
		ps := m.frontEnd(nil, fe)
		s = &ps
		m.probes[fe] = s
	}
	if err == nil {
		s.Failures, s.LastError = 0, ""
		if !s.InRotation {
			s.InRotation = true
			m.lab.engine.SetInRotation(fe, true)
		}
		return
	}
	s.Failures++
	s.LastError = err.Error()
	if s.InRotation && s.Failures >= probeFailures {
		s.InRotation = false
		m.lab.engine.SetInRotation(fe, false)
	}
}

// checkHealth checks every ASE's dependencies (F16): DNS, Azure SQL, Azure
// Storage, and Azure management reaching the VIP.
func (m *monitor) checkHealth() {
	t, nets := m.topology()
	var wg sync.WaitGroup
	for _, a := range t.ASEs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := checkASE(m.ctx, t, a, nets, m.lab.engine)
			m.mu.Lock()
			m.health[a.Name] = h
			m.mu.Unlock()
		}()
	}
	wg.Wait()
}

// checkASE runs an ASE's dependency checks from its first worker (or
// front-end), all at once.
func checkASE(parent context.Context, t *topology.Topology, a *topology.ASE, nets map[string]netx.Net, engine *dataplane.Engine) aseHealth {
	from := append(append([]*topology.Node{}, a.Workers...), a.FrontEnds...)
	if len(from) == 0 || nets[from[0].Name] == nil {
		return aseHealth{Problems: []string{"the ASE has no machines"}, Checked: time.Now()}
	}
	n := nets[from[0].Name]
	// The checks' own connections are never refused by the services'
	// budget, which a client of the lab may have spent: that would be the
	// emulator's shortage of descriptors, not Azure's failure (exempt.go).
	x := netx.Exempt(n)
	ctx, cancel := context.WithTimeout(parent, healthTimeout)
	defer cancel()
	addr := func(node string) (netip.Addr, bool) {
		if nd := t.NodeByName(node); nd != nil {
			return nd.Addr, true
		}
		return netip.Addr{}, false
	}
	checks := []func() string{
		func() string {
			// Any answer shows that 53 is reachable, which is what the
			// ASE needs of the network: a lab without azure-sql has no
			// address for the name, and the resolver says so (not found).
			_, err := netx.Resolver(n, azureDNS).LookupHost(ctx, "sql.database.windows.net")
			var de *net.DNSError
			switch {
			case err == nil, errors.As(err, &de) && de.IsNotFound:
			case de != nil:
				// de.Server is the host's resolver, which Go thought it
				// dialled; the query went to azureDNS.
				return fmt.Sprintf("DNS (%s) does not answer: %s", azureDNS, de.Err)
			default:
				return fmt.Sprintf("DNS (%s) does not answer: %v", azureDNS, err)
			}
			return ""
		},
		func() string {
			sql, ok := addr("azure-sql")
			if !ok {
				return ""
			}
			seen, err := peerSeen(ctx, x, netip.AddrPortFrom(sql, 1433))
			switch {
			case err != nil:
				return fmt.Sprintf("Azure SQL (azure-sql %s:1433) unreachable: %v", sql, err)
			case seen != a.VIP:
				cause := "outbound traffic leaves with another NAT address"
				if nh, err := engine.NextHop(from[0].Name, sql); err == nil && nh.Type == topology.NextHopVNG {
					cause = fmt.Sprintf("forced tunneling: %s sends it to the VirtualNetworkGateway (%s, %s), and the on-premises edge NATs it; add a route 0.0.0.0/0 -> Internet to %s",
						a.Subnet.Name, nh.Route, nh.Prefix, a.Subnet.Name)
				}
				return fmt.Sprintf("Azure SQL sees the ASE as %s, not its VIP %s: %s", seen, a.VIP, cause)
			}
			return ""
		},
	}
	// SPEC §3: Azure Storage serves 80 and 443, and Azure management calls
	// the VIP on 454 and 455. A check per port, so that a message names
	// the port an NSG or route closed.
	if st, ok := addr("azure-storage"); ok {
		checks = append(checks,
			func() string {
				if err := get(ctx, netx.Client(x, healthTimeout), fmt.Sprintf("http://%s:80/", st)); err != nil {
					return fmt.Sprintf("Azure Storage (azure-storage %s:80) unreachable: %v", st, err)
				}
				return ""
			},
			func() string {
				c, err := x.DialContext(ctx, "tcp", netip.AddrPortFrom(st, 443).String())
				if err == nil {
					tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "storage.blob.core.windows.net"})
					err = tc.HandshakeContext(ctx)
					tc.Close()
				}
				if err != nil {
					return fmt.Sprintf("Azure Storage (azure-storage %s:443) unreachable: %v", st, err)
				}
				return ""
			})
	}
	if mgmt := nets["azure-mgmt"]; mgmt != nil {
		mgmt = netx.Exempt(mgmt)
		for _, port := range frontend.ManagementPorts {
			checks = append(checks, func() string {
				if err := get(ctx, netx.Client(mgmt, healthTimeout), fmt.Sprintf("http://%s:%d/", a.VIP, port)); err != nil {
					return fmt.Sprintf("Azure management (azure-mgmt) cannot reach the VIP on %d: %v", port, err)
				}
				return ""
			})
		}
	}
	problems := make([]string, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() { defer wg.Done(); problems[i] = c() }()
	}
	wg.Wait()
	h := aseHealth{Checked: time.Now()}
	for _, p := range problems {
		if p != "" {
			h.Problems = append(h.Problems, p)
		}
	}
	h.Healthy = len(h.Problems) == 0
	return h
}

// peerSeen connects to a peer answerer and returns the address it says it
// sees ("azure-sql: you are 192.23.1.2:40000").
func peerSeen(ctx context.Context, n netx.Net, to netip.AddrPort) (netip.Addr, error) {
	c, err := n.DialContext(ctx, "tcp", to.String())
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.Addr{}, err
	}
	_, you, ok := strings.Cut(strings.TrimSpace(line), "you are ")
	ap, perr := netip.ParseAddrPort(you)
	if !ok || perr != nil {
		return netip.Addr{}, fmt.Errorf("unexpected answer %q", line)
	}
	return ap.Addr(), nil
}

// get fetches url and fails unless it answers 200.
func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		if ue, ok := err.(interface{ Unwrap() error }); ok {
			if ne, ok := ue.Unwrap().(net.Error); ok && ne.Timeout() {
				return fmt.Errorf("no answer within %v", c.Timeout)
			}
		}
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}

// snapshot returns copies of the probe and health states.
func (m *monitor) snapshot() (map[string]probeState, map[string]aseHealth) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := make(map[string]probeState, len(m.probes))
	for k, v := range m.probes {
		p[k] = *v
	}
	h := make(map[string]aseHealth, len(m.health))
	for k, v := range m.health {
		h[k] = v
	}
	return p, h
}

// frontEnd is front-end fe as the load balancer sees it: its probes'
// state in probes (snapshot's), or, before its first probe, whether the
// VIP sends it new flows. Every front-end, at up or added by apply,
// starts out of rotation until a probe succeeds (F15).
func (m *monitor) frontEnd(probes map[string]probeState, fe string) probeState {
	if ps, ok := probes[fe]; ok {
		return ps
	}
	return probeState{InRotation: m.lab.engine.InRotation(fe)}
}
