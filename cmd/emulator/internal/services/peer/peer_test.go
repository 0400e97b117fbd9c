package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/internal/leakcheck"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func start(t *testing.T, name string) *netx.Loopback {
	t.Helper()
	cfg, ok := ForNode(name)
	if !ok {
		t.Fatalf("no peer service for %s", name)
	}
	n := netx.NewLoopback(name)
	s, err := Start(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func TestTCPPortSaysTheAddressItSees(t *testing.T) { // F3, F4: the peer address as it arrived
	for _, name := range []string{"azure-sql", "db1"} {
		n := start(t, name)
		c, err := net.Dial("tcp", n.Addr("tcp", 1433))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		c.Close()
		if want := name + ": you are " + c.LocalAddr().String() + "\n"; string(b) != want || err != nil {
			t.Errorf("%s:1433 said %q (%v), want %q", name, b, err, want)
		}
	}
}

func TestStorageHTTPAndHTTPS(t *testing.T) { // F16: Azure Storage on 80 and 443
	n := start(t, "azure-storage")
	for _, c := range []struct {
		url    string
		secure bool
	}{{"http://" + n.Addr("tcp", 80) + "/", false}, {"https://" + n.Addr("tcp", 443) + "/", true}} {
		var local string
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "storage.blob.core.windows.net"},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					local = conn.LocalAddr().String()
				}
				return conn, err
			},
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(c.url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if want := "azure-storage: you are " + local + "\n"; string(b) != want {
			t.Errorf("%s answered %q, want %q", c.url, b, want)
		}
		if c.secure {
			if err := resp.TLS.PeerCertificates[0].VerifyHostname("mystorage.blob.core.windows.net"); err != nil {
				t.Errorf("storage certificate: %v", err)
			}
		}
	}
}

func TestConfigurablePorts(t *testing.T) {
	n := netx.NewLoopback("custom")
	s, err := Start(n, Config{Name: "custom", TCPPorts: []int{5432, 3306}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range []int{5432, 3306} {
		c, err := net.Dial("tcp", n.Addr("tcp", p))
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		c.Close()
		if want := Line("custom", c.LocalAddr().String()); string(b) != want {
			t.Errorf("port %d said %q, want %q", p, b, want)
		}
	}
	if got := (Config{Name: "azure-storage", HTTPPorts: []int{80}, HTTPSPorts: []int{443}}).String(); got != "azure-storage: http 80, https 443" {
		t.Errorf("String() = %q", got)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(netx.NewLoopback("x"), Config{}); err == nil {
		t.Error("Start without a name succeeded")
	}
	n := netx.NewLoopback("azure-storage")
	l, err := n.Listen("tcp", ":443")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg, _ := ForNode("azure-storage")
	if _, err := Start(n, cfg); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Start with 443 taken: %v, want address in use", err)
	}
	if n.Addr("tcp", 80) != "" {
		t.Error("a failed Start left port 80 open")
	}
}
