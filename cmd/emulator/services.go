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
	ases  map[string]*aseShared       // by ASE
	apps  map[string]*app.Server      // by worker
	fes   map[string]*frontend.Server // by front-end
	dns   *dns.Server
	other map[string]io.Closer // echo and the peer answerers, by node
}

// aseShared is what an ASE's front-ends and workers share, as the machines
// behind one VIP do in Azure: one certificate, one content that FTP
// publishes into and the apps serve, and the FTP sessions whose data
// connections the load balancer may send to any front-end.
type aseShared struct {
	cert    *tls.Certificate
	content *wwwroot.Store
	ftp     *frontend.FTPSite
}

// startServices starts every node's services. nets gives each node's
// sockets. On error, what was started is closed again.
func startServices(t *topology.Topology, nets map[string]netx.Net) (*labServices, error) {
	s := &labServices{
		ases:  map[string]*aseShared{},
		apps:  map[string]*app.Server{},
		fes:   map[string]*frontend.Server{},
		other: map[string]io.Closer{},
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
		shared, err := s.shared(n.ASE)
		if err != nil {
			return err
		}
		cfg := app.ConfigFor(n)
		cfg.Content = shared.content
		srv, err := app.Start(net, cfg)
		if err != nil {
			return err
		}
		s.apps[n.Name] = srv
	case topology.NodeFrontEnd:
		shared, err := s.shared(n.ASE)
		if err != nil {
			return err
		}
		srv, err := frontend.Start(net, frontend.Config{FrontEnd: n, Certificate: shared.cert, FTP: shared.ftp})
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

// shared is what ASE a's machines share, made once per lab.
func (s *labServices) shared(a *topology.ASE) (*aseShared, error) {
	if sh := s.ases[a.Name]; sh != nil {
		return sh, nil
	}
	cert, err := frontend.Certificate(a)
	if err != nil {
		return nil, err
	}
	content := wwwroot.New()
	sh := &aseShared{cert: &cert, content: content, ftp: frontend.NewFTPSite(content)}
	s.ases[a.Name] = sh
	return sh, nil
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
