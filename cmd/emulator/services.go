package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/app"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/dns"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/echo"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/frontend"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/peer"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/wwwroot"
	"github.com/aseemu/emulator/topology"
)

// labServices are the services the lab runs in its nodes' namespaces, so
// that curl, nc and nslookup get the answers the article predicts without
// the user starting anything: apps on workers, front-ends, the Internet
// hosts' servers and Azure DNS on the platform node.
type labServices struct {
	certs   map[string]*tls.Certificate  // per ASE, shared by its front-ends
	ftp     map[string]*frontend.FTPSite // per ASE, shared by its front-ends
	content map[string]*wwwroot.Store    // per ASE, shared by its FTP site and its workers
	apps    map[string]*app.Server       // by worker
	fes     map[string]*frontend.Server  // by front-end
	dns     *dns.Server
	other   map[string]io.Closer // echo and the peer answerers, by node
}

// startServices starts every node's services. nets gives each node's
// sockets. On error, what was started is closed again.
func startServices(t *topology.Topology, nets map[string]netx.Net) (*labServices, error) {
	s := &labServices{
		certs:   map[string]*tls.Certificate{},
		ftp:     map[string]*frontend.FTPSite{},
		content: map[string]*wwwroot.Store{},
		apps:    map[string]*app.Server{},
		fes:     map[string]*frontend.Server{},
		other:   map[string]io.Closer{},
	}
	if err := s.start(t, t.Nodes, nets); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// start starts the services of nodes (of topology t).
func (s *labServices) start(t *topology.Topology, nodes []*topology.Node, nets map[string]netx.Net) error {
	for _, n := range nodes {
		if err := s.startNode(t, n, nets[n.Name]); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	return nil
}

func (s *labServices) startNode(t *topology.Topology, n *topology.Node, net netx.Net) error {
	switch n.Kind {
	case topology.NodeWorker:
		cfg := app.ConfigFor(n)
		cfg.Content = s.contentOf(n.ASE)
		srv, err := app.Start(net, cfg)
		if err != nil {
			return err
		}
		s.apps[n.Name] = srv
	case topology.NodeFrontEnd:
		cert, err := s.cert(n.ASE)
		if err != nil {
			return err
		}
		if s.ftp[n.ASE.Name] == nil {
			s.ftp[n.ASE.Name] = frontend.NewFTPSite(s.contentOf(n.ASE))
		}
		srv, err := frontend.Start(net, frontend.Config{FrontEnd: n, Certificate: cert, FTP: s.ftp[n.ASE.Name]})
		if err != nil {
			return err
		}
		s.fes[n.Name] = srv
	case topology.NodePlatform:
		srv, err := dns.Start(net, dns.Config{Topology: t})
		if err != nil {
			return err
		}
		s.dns = srv
	default:
		// The Internet hosts of SPEC §3 (and db1) by name: "echo" is the
		// what-is-my-IP server, the others answer with the peer address.
		var c io.Closer
		var err error
		if n.Name == "echo" {
			c, err = echo.Start(net, echo.Config{})
		} else if cfg, ok := peer.ForNode(n.Name); ok {
			c, err = peer.Start(net, cfg)
		}
		if err != nil {
			return err
		}
		if c != nil {
			s.other[n.Name] = c
		}
	}
	return nil
}

// cert is the TLS certificate of ASE a's front-ends, made once per lab.
func (s *labServices) cert(a *topology.ASE) (*tls.Certificate, error) {
	if c := s.certs[a.Name]; c != nil {
		return c, nil
	}
	c, err := frontend.Certificate(a)
	if err != nil {
		return nil, err
	}
	s.certs[a.Name] = &c
	return &c, nil
}

// contentOf is ASE a's content, made once per lab: what its FTP stores
// its workers serve. A worker outside any ASE gets a Store of its own.
func (s *labServices) contentOf(a *topology.ASE) *wwwroot.Store {
	if a == nil {
		return wwwroot.New()
	}
	if c := s.content[a.Name]; c != nil {
		return c
	}
	c := wwwroot.New()
	s.content[a.Name] = c
	return c
}

// update follows an apply: services of removed nodes stop, those of added
// nodes start, workers and front-ends learn where apps now run, and DNS
// reloads.
func (s *labServices) update(t *topology.Topology, added, removed []*topology.Node, nets map[string]netx.Net) error {
	var errs []error
	for _, n := range removed {
		if srv := s.apps[n.Name]; srv != nil {
			errs = append(errs, srv.Close())
			delete(s.apps, n.Name)
		}
		if srv := s.fes[n.Name]; srv != nil {
			errs = append(errs, srv.Close())
			delete(s.fes, n.Name)
		}
	}
	errs = append(errs, s.start(t, added, nets))
	for name, srv := range s.apps {
		if n := t.NodeByName(name); n != nil {
			srv.Update(app.ConfigFor(n))
		}
	}
	for name, srv := range s.fes {
		if n := t.NodeByName(name); n != nil {
			errs = append(errs, srv.Update(n))
		}
	}
	if s.dns != nil {
		s.dns.Reload(t)
	}
	return errors.Join(errs...)
}

func (s *labServices) close() error {
	var errs []error
	for _, srv := range s.apps {
		errs = append(errs, srv.Close())
	}
	for _, srv := range s.fes {
		errs = append(errs, srv.Close())
	}
	if s.dns != nil {
		errs = append(errs, s.dns.Close())
	}
	for _, c := range s.other {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}
