package test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// processJSON is status --json's process: the services' connections
// against their budget of the emulator's descriptors.
type processJSON struct {
	PID     int `json:"pid"`
	Process struct {
		ConnBudget   int64  `json:"connBudget"`
		Conns        int64  `json:"conns"`
		RefusedConns uint64 `json:"refusedConns"`
	} `json:"process"`
}

// labOwnAtOnce bounds the connections of the default lab's own that the
// services' budget serves past it, all short: a load balancer probe of
// each of the six front-ends (F15), and the five checks of each of the
// three ASEs that land on a budgeted port (F16: Azure SQL, Storage's 80
// and 443, the VIP's 454 and 455).
const labOwnAtOnce = 6 + 3*5

// leaveDescriptors lowers the running emulator's descriptor limit to what
// it holds now plus spare, as a user's prlimit would, and puts the old
// limit back when the test ends. It returns status --json's process from
// before, and the new limit.
func (l *lab) leaveDescriptors(spare int) (processJSON, uint64) {
	l.t.Helper()
	var before processJSON
	l.emuJSON(&before, "status")
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", before.PID))
	if err != nil {
		l.t.Fatal(err)
	}
	limit := uint64(len(fds) + spare)
	var old unix.Rlimit
	if err := unix.Prlimit(before.PID, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, &old); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { unix.Prlimit(before.PID, unix.RLIMIT_NOFILE, &old, nil) })
	return before, limit
}

// A client of the lab holding more connections than the emulator has
// descriptors to spare cannot take those the lab needs: with the running
// emulator's limit lowered to leave 300, client holds 350 FTP connections
// to ase1's VIP, and status, and an apply that adds a worker (its TUN
// queue, namespace and listeners), still work; the connections past the
// services' budget were closed at once and counted. The budget follows the
// limit at each connection, so lowering it after up is what a user's
// prlimit does.
func TestServicesLeaveDescriptorsToTheLab(t *testing.T) {
	l := upLab(t)
	before, limit := l.leaveDescriptors(300)

	const hold = 350
	b := l.background("client", "bash", "-c", fmt.Sprintf(
		`for i in $(seq %d); do exec {fd}<>/dev/tcp/192.23.1.2/21 || exit 1; done; echo held; sleep 300`, hold))
	if !waitFor(30*time.Second, func() bool { return strings.Contains(b.stdout.String(), "held") }) {
		t.Fatalf("client did not open its %d connections to 192.23.1.2:21: %v", hold, b.wait())
	}
	var after processJSON
	if !waitFor(20*time.Second, func() bool {
		l.emuJSON(&after, "status")
		return after.Process.RefusedConns > before.Process.RefusedConns
	}) {
		t.Errorf("with a limit of %d, client's %d connections: refusedConns stayed %d; want it to rise past the budget (%d, %d held)",
			limit, hold, after.Process.RefusedConns, after.Process.ConnBudget, after.Process.Conns)
	}
	if after.Process.Conns > after.Process.ConnBudget+labOwnAtOnce {
		t.Errorf("the services hold %d connections, over their budget of %d and the lab's own %d", after.Process.Conns, after.Process.ConnBudget, labOwnAtOnce)
	}
	t.Logf("limit %d: budget %d connections, %d held, %d refused", limit, after.Process.ConnBudget, after.Process.Conns, after.Process.RefusedConns)
	// F15: the load balancer's probes still reach the front-ends, so the
	// VIP stays in service; two failed probes, a second apart, would take
	// a front-end out of rotation. F16: the ASEs' own dependency checks
	// (every 2 s, each given 2 s) still reach azure-sql, azure-storage and,
	// from azure-mgmt, the VIPs' 454 and 455, so every ASE stays Healthy:
	// the emulator's own shortage of descriptors is no failure of Azure's.
	// 6 s is a round of probes and one of checks begun and ended since.
	time.Sleep(6 * time.Second)
	for _, ase := range []string{"ase1", "ase2", "ase3"} {
		a := l.ase(ase)
		for _, fe := range a.FrontEnds {
			if !fe.InRotation {
				t.Errorf("with the services' budget spent, %s left rotation (%s): the load balancer's probes were refused", fe.Name, fe.LastError)
			}
		}
		if a.Health != "Healthy" {
			t.Errorf("with the services' budget spent, %s is %s %q: its own dependency checks were refused", ase, a.Health, a.Problems)
		}
	}
	// Plain status says why connections are refused, and what to do.
	if r := emu(t, "status", "--name", l.name); r.code != 0 || !strings.Contains(r.stdout, "connections refused") || !strings.Contains(r.stdout, "RLIMIT_NOFILE") {
		t.Errorf("status with %d connections refused past the budget should say so, naming RLIMIT_NOFILE: %v", after.Process.RefusedConns, r)
	}
	three := threeWorkers(t)
	if r := emu(t, "apply", "--name", l.name, "-f", three); r.code != 0 || !strings.Contains(r.stdout, "added ase1-w3") {
		t.Fatalf("apply adding ase1-w3 while client holds %d connections, under a limit of %d: %v", hold, limit, r)
	}
	if n := l.node("ase1-w3"); n.Address != "10.0.1.8" {
		t.Errorf("status after the apply shows ase1-w3 at %q, want 10.0.1.8", n.Address)
	}
	l.mustExec("ase1-w3", "ping", "-c", "1", "-W", "2", "10.0.1.1")
}

// Azure DNS's TCP port takes its connections from the same budget as the
// other services: with the emulator's limit lowered to leave 300
// descriptors, db1 holds 350 TCP connections to 168.63.129.16:53, asking
// on each every 2 s as a resolver that keeps its connections would (the
// server drops one idle for 8 s). Those past the budget are closed at once
// and counted, and an apply that adds a worker still finds the
// descriptors its TUN queue and listeners need.
func TestDNSOverTCPStaysInTheBudget(t *testing.T) {
	l := upLab(t)
	before, limit := l.leaveDescriptors(300)

	const hold = 350
	// A query for db1.internal.cloudapp.net, A, with TCP's length first.
	b := l.background("db1", "python3", "-c", fmt.Sprintf(`
import socket, struct, time
name = b"".join(bytes([len(p)]) + p for p in b"db1.internal.cloudapp.net".split(b".")) + b"\0"
msg = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
query = struct.pack(">H", len(msg)) + msg
conns = []
for i in range(%d):
    s = socket.create_connection(("168.63.129.16", 53), timeout=5)
    s.sendall(query)
    conns.append(s)
print("held", flush=True)
while True:
    time.sleep(2)
    for s in conns:
        try:
            s.setblocking(False)
            try:
                while s.recv(65536):
                    pass
            except BlockingIOError:
                pass
            s.sendall(query)
        except OSError:
            pass
`, hold))
	if !waitFor(30*time.Second, func() bool { return strings.Contains(b.stdout.String(), "held") }) {
		t.Fatalf("db1 did not open its %d connections to 168.63.129.16:53: %v", hold, b.wait())
	}
	var after processJSON
	if !waitFor(20*time.Second, func() bool {
		l.emuJSON(&after, "status")
		return after.Process.RefusedConns > before.Process.RefusedConns
	}) {
		t.Errorf("with a limit of %d, db1's %d DNS connections: refusedConns stayed %d; want it to rise past the budget (%d, %d held)",
			limit, hold, after.Process.RefusedConns, after.Process.ConnBudget, after.Process.Conns)
	}
	if after.Process.Conns > after.Process.ConnBudget+labOwnAtOnce {
		t.Errorf("the services hold %d connections, over their budget of %d and the lab's own %d", after.Process.Conns, after.Process.ConnBudget, labOwnAtOnce)
	}
	t.Logf("limit %d: budget %d connections, %d held, %d refused", limit, after.Process.ConnBudget, after.Process.Conns, after.Process.RefusedConns)
	three := threeWorkers(t)
	if r := emu(t, "apply", "--name", l.name, "-f", three); r.code != 0 || !strings.Contains(r.stdout, "added ase1-w3") {
		t.Fatalf("apply adding ase1-w3 while db1 holds %d DNS connections, under a limit of %d: %v", hold, limit, r)
	}
	l.mustExec("ase1-w3", "ping", "-c", "1", "-W", "2", "10.0.1.1")
}
