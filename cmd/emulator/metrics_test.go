package main

import "testing"

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
