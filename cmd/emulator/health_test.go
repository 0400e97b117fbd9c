package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/dns"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/peer"
	"github.com/aseemu/emulator/topology"
)

// healthTopology is the default lab without the Internet hosts named in
// drop, so that a test runs only the checks it is about: a check whose
// host is not in the lab is skipped.
func healthTopology(t *testing.T, drop ...string) *topology.Topology {
	t.Helper()
	yaml := string(topology.DefaultYAML())
	for _, host := range drop {
		var addr string
		for _, h := range topology.Default().Internet {
			if h.Name == host {
				addr = h.Addr.String()
			}
		}
		entry := regexp.MustCompile(`  - name: ` + host + `\n    address: ` + regexp.QuoteMeta(addr) + `\n(    region: \w+\n)?`)
		if addr == "" || !entry.MatchString(yaml) {
			t.Fatalf("the default lab has no Internet host %s", host)
		}
		yaml = entry.ReplaceAllLiteralString(yaml, "")
	}
	topo, err := topology.Parse("health.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// checkASE1 runs ase1's checks from ase1-w1, a node of reg.
func checkASE1(t *testing.T, topo *topology.Topology, reg *netx.Registry, nets map[string]netx.Net) aseHealth {
	t.Helper()
	nets["ase1-w1"] = reg.Node("ase1-w1")
	return checkASE(context.Background(), topo, topo.ASEByName("ase1"), nets, nil)
}

// F16: DNS is healthy when 168.63.129.16 answers, whatever it answers. A
// lab without azure-sql (lab 9) has no address for sql.database.windows.net,
// and that is no reason to call every ASE unhealthy.
func TestHealthDNSAnswerWithoutAddressIsHealthy(t *testing.T) {
	topo := healthTopology(t, "azure-sql", "azure-storage", "azure-mgmt")
	reg := netx.NewRegistry()
	srv, err := dns.Start(reg.Node(topology.PlatformAddr.String()), dns.Config{Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if h := checkASE1(t, topo, reg, map[string]netx.Net{}); !h.Healthy {
		t.Errorf("with DNS answering (no address for sql.database.windows.net), ase1 = %+v, want Healthy", h)
	}
}

// F16: DNS that does not answer, because nothing listens on 53 or because
// its answers never come back, makes the ASE unhealthy, naming DNS.
func TestHealthDNSWithoutAnswerIsUnhealthy(t *testing.T) {
	topo := healthTopology(t, "azure-sql", "azure-storage", "azure-mgmt")
	t.Run("refused", func(t *testing.T) {
		reg := netx.NewRegistry()
		reg.Node(topology.PlatformAddr.String())
		h := checkASE1(t, topo, reg, map[string]netx.Net{})
		if h.Healthy || len(h.Problems) != 1 || !strings.Contains(h.Problems[0], "DNS (168.63.129.16:53) does not answer") {
			t.Errorf("with nothing on 53, ase1 = %+v, want Unhealthy naming DNS", h)
		}
	})
	t.Run("silent", func(t *testing.T) {
		reg := netx.NewRegistry()
		pc, err := reg.Node(topology.PlatformAddr.String()).ListenPacket("udp", ":53")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		h := checkASE1(t, topo, reg, map[string]netx.Net{})
		if h.Healthy || len(h.Problems) != 1 || !strings.Contains(h.Problems[0], "DNS (168.63.129.16:53) does not answer") {
			t.Errorf("with queries unanswered, ase1 = %+v, want Unhealthy naming DNS", h)
		}
	})
}

// storageAndMgmt starts, on reg, Azure DNS, azure-storage on storagePorts
// (80 HTTP, 443 HTTPS) and ase1's VIP answering management on mgmtPorts,
// and returns the nodes' sockets the checks use.
func storageAndMgmt(t *testing.T, topo *topology.Topology, reg *netx.Registry, storagePorts, mgmtPorts []int) map[string]netx.Net {
	t.Helper()
	srv, err := dns.Start(reg.Node(topology.PlatformAddr.String()), dns.Config{Topology: topo})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })

	cfg, _ := peer.ForNode("azure-storage")
	cfg.HTTPPorts, cfg.HTTPSPorts = nil, nil
	for _, p := range storagePorts {
		if p == 443 {
			cfg.HTTPSPorts = append(cfg.HTTPSPorts, p)
		} else {
			cfg.HTTPPorts = append(cfg.HTTPPorts, p)
		}
	}
	st, err := peer.Start(reg.Node(topo.NodeByName("azure-storage").Addr.String()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	vip := reg.Node(topo.ASEByName("ase1").VIP.String())
	for _, p := range mgmtPorts {
		l, err := vip.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
		go hs.Serve(l)
		t.Cleanup(func() { hs.Close() })
	}
	return map[string]netx.Net{"azure-mgmt": reg.Node("azure-mgmt")}
}

// F16, SPEC §3: Azure Storage is checked on 80 and 443, and Azure
// management calls the VIP on 454 and 455; a port that does not answer is
// named.
func TestHealthStorageAndManagementPorts(t *testing.T) {
	topo := healthTopology(t, "azure-sql")
	for _, c := range []struct {
		name                    string
		storagePorts, mgmtPorts []int
		want                    string // the one problem; "": Healthy
	}{
		{"all", []int{80, 443}, []int{454, 455}, ""},
		{"storage 80 closed", []int{443}, []int{454, 455}, "Azure Storage (azure-storage 203.0.113.30:80) unreachable"},
		{"storage 443 closed", []int{80}, []int{454, 455}, "Azure Storage (azure-storage 203.0.113.30:443) unreachable"},
		{"management 454 closed", []int{80, 443}, []int{455}, "Azure management (azure-mgmt) cannot reach the VIP on 454"},
		{"management 455 closed", []int{80, 443}, []int{454}, "Azure management (azure-mgmt) cannot reach the VIP on 455"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := netx.NewRegistry()
			h := checkASE1(t, topo, reg, storageAndMgmt(t, topo, reg, c.storagePorts, c.mgmtPorts))
			switch {
			case c.want == "" && !h.Healthy:
				t.Errorf("ase1 = %+v, want Healthy", h)
			case c.want != "" && (h.Healthy || len(h.Problems) != 1 || !strings.Contains(h.Problems[0], c.want)):
				t.Errorf("ase1 = %+v, want Unhealthy with the one problem %q", h, c.want)
			}
		})
	}
}
