package main

import (
	"context"
	"strings"
	"testing"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/dns"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
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
		entry := "  - name: " + host + "\n    address: " + addr + "\n"
		if addr == "" || !strings.Contains(yaml, entry) {
			t.Fatalf("the default lab has no Internet host %s", host)
		}
		yaml = strings.Replace(yaml, entry, "", 1)
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
