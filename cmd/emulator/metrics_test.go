package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestCheckMetricsAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9100", "localhost:9100", "[::1]:9100", "127.0.0.2:0"} {
		if err := checkMetricsAddr(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:9100", ":9100", "10.0.0.1:9100", "192.23.1.2:80", "127.0.0.1", "example.com:9100"} {
		if checkMetricsAddr(bad) == nil {
			t.Errorf("%s accepted; only loopback may serve metrics", bad)
		}
	}
	// A bad port is bad usage (exit 2), refused before up builds the lab
	// rather than by listen once it is built (exit 1).
	for _, bad := range []string{"127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:http"} {
		if checkMetricsAddr(bad) == nil {
			t.Errorf("%s accepted; the port must be a number from 0 to 65535", bad)
		}
	}
}

// A port already taken is refused by listenMetrics, which up calls before
// it builds anything, with what to do instead.
func TestListenMetricsInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	ln, err := listenMetrics(held.Addr().String())
	if err == nil {
		ln.Close()
		t.Fatalf("listenMetrics(%s) succeeded on a port another socket holds", held.Addr())
	}
	for _, want := range []string{held.Addr().String(), "in use", "port 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("listenMetrics on a taken port: %q, want it to say %q", err, want)
		}
	}
}

// While the lab is being built a scrape gets 503, not a page of zeros
// nor a hung connection; once stopped, the port refuses connections.
func TestMetricsWhileStarting(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &runningLab{name: "starting"}
	l.serveMetrics(ln)
	url := "http://" + l.metricsAddr + "/metrics"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "lab starting is starting") {
		t.Errorf("scrape of a lab being built: %s %q, want 503 saying the lab is starting", resp.Status, body)
	}
	l.stopMetrics()
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("scrape after stopMetrics: %s, want the connection refused", resp.Status)
	}
}
