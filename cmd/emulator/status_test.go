package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Plain status says so when the services refused connections past their
// budget, which a client sees as resets no NSG or NAT explains, and how
// to give them more; it says nothing while none were refused.
func TestStatusShowsRefusedConnections(t *testing.T) {
	r := &statusReport{Lab: "lab1", PID: 4321, Started: time.Now()}
	var b bytes.Buffer
	printStatus(&b, r)
	if strings.Contains(b.String(), "Services:") {
		t.Errorf("status with no connection refused shows a Services line:\n%s", b.String())
	}
	r.Process.ConnBudget, r.Process.Conns, r.Process.RefusedConns = 69, 69, 281
	b.Reset()
	printStatus(&b, r)
	want := "Services: 281 connections refused since up, past their budget of 69 (69 held now)"
	if out := b.String(); !strings.Contains(out, want) || !strings.Contains(out, "RLIMIT_NOFILE") || !strings.Contains(out, "prlimit --pid 4321") {
		t.Errorf("status with 281 connections refused: want %q, naming RLIMIT_NOFILE and prlimit for pid 4321, got:\n%s", want, out)
	}
}
