package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A node's hostname is its name, as an Azure VM's is: in `hostname`, and
// in /etc/hostname both for `emulator exec` and for `ip netns exec`.
// Nodes that apply adds have theirs; those it removes leave nothing.
func TestNodeHostname(t *testing.T) {
	l := upLab(t, "-f", writeTopology(t, "two.yaml"))
	for _, node := range []string{"db1", "ase1-fe1", "ase3-w2", "client", "echo"} {
		if got := strings.TrimSpace(l.mustExec(node, "hostname")); got != node {
			t.Errorf("hostname in %s printed %q, want %q", node, got, node)
		}
		if got := strings.TrimSpace(l.mustExec(node, "cat", "/etc/hostname")); got != node {
			t.Errorf("/etc/hostname in %s (emulator exec) is %q, want %q", node, got, node)
		}
		r := run(t, 10*time.Second, "ip", "netns", "exec", l.name+"."+node, "cat", "/etc/hostname")
		if got := strings.TrimSpace(r.stdout); r.code != 0 || got != node {
			t.Errorf("/etc/hostname in %s (ip netns exec): %v; want %q", node, r, node)
		}
	}

	three := threeWorkers(t)
	if r := emu(t, "apply", "--name", l.name, "-f", three); r.code != 0 {
		t.Fatalf("apply with 3 workers: %v", r)
	}
	if got := strings.TrimSpace(l.mustExec("ase1-w3", "hostname")); got != "ase1-w3" {
		t.Errorf("hostname in ase1-w3, added by apply, printed %q", got)
	}
	one := writeTopology(t, "one.yaml", "    workers: 2\n    apps:\n      - name: app1", "    workers: 1\n    apps:\n      - name: app1")
	if r := emu(t, "apply", "--name", l.name, "-f", one); r.code != 0 {
		t.Fatalf("apply with 1 worker: %v", r)
	}
	for _, gone := range []string{"ase1-w2", "ase1-w3"} {
		if left := l.nodeFiles(gone); len(left) > 0 {
			t.Errorf("apply removed %s but left %v", gone, left)
		}
	}
	if got := strings.TrimSpace(l.mustExec("ase1-w1", "hostname")); got != "ase1-w1" {
		t.Errorf("hostname in ase1-w1 after the scale-in printed %q", got)
	}
}

// nodeFiles lists the files the lab keeps for node: its namespaces and
// its /etc/netns directory.
func (l *lab) nodeFiles(node string) []string {
	var left []string
	for _, p := range []string{"/run/netns/", "/run/utsns/", "/etc/netns/"} {
		if _, err := os.Stat(p + l.name + "." + node); err == nil {
			left = append(left, p+l.name+"."+node)
		}
	}
	return left
}

// A lab made by a build that gave nodes no UTS namespace still works:
// exec runs the command in the node's network namespace, with the
// host's hostname, status reports, and down removes it all.
func TestExecWithoutUTSNamespace(t *testing.T) {
	l := upLab(t)
	uts := filepath.Join("/run/utsns", l.name+".db1")
	if err := unix.Unmount(uts, unix.MNT_DETACH); err != nil {
		t.Fatalf("unmount %s: %v (was db1 given a UTS namespace?)", uts, err)
	}
	if err := os.Remove(uts); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if got := strings.TrimSpace(l.mustExec("db1", "hostname")); got != host {
		t.Errorf("hostname in db1 without a UTS namespace printed %q, want the host's %q", got, host)
	}
	if out := l.mustExec("db1", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(out, "10.0.2.4/24") {
		t.Errorf("db1 without a UTS namespace is not in its network namespace: %s", out)
	}
	if st := l.status(); len(st.Nodes) == 0 {
		t.Errorf("status of a lab with a node without a UTS namespace: %+v", st)
	}
	// The file is there, but nothing is mounted on it: a lab coming up.
	if err := os.WriteFile(uts, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(l.mustExec("db1", "hostname")); got != host {
		t.Errorf("hostname in db1 with an empty UTS file printed %q, want the host's %q", got, host)
	}
}

// Reverse DNS, as Azure DNS answers it: a VNet machine's address is
// NAME.internal.cloudapp.net to the VNet, and nothing to the Internet;
// other addresses have no name.
func TestReverseDNS(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig is not installed (dnsutils)")
	}
	l := upLab(t)
	for _, c := range []struct{ from, addr, want string }{
		{"ase1-w1", "10.0.2.4", "db1.internal.cloudapp.net."},
		{"db1", "10.0.1.4", "ase1-fe1.internal.cloudapp.net."},
		{"db1", "10.0.4.7", "ase3-w2.internal.cloudapp.net."},
	} {
		if got := strings.TrimSpace(l.mustExec(c.from, "dig", "+short", "-x", c.addr)); got != c.want {
			t.Errorf("dig -x %s from %s: %q, want %s", c.addr, c.from, got, c.want)
		}
	}
	if out := l.mustExec("ase1-w1", "nslookup", "10.0.2.4"); !strings.Contains(out, "name = db1.internal.cloudapp.net.") {
		t.Errorf("nslookup 10.0.2.4 from ase1-w1: want name = db1.internal.cloudapp.net., got\n%s", out)
	}
	for _, c := range []struct{ from, addr, why string }{
		{"client", "10.0.2.4", "a VNet address, asked from the Internet"},
		{"db1", "10.0.2.200", "an address no machine has"},
		{"db1", "192.23.1.2", "an ASE's public VIP"},
		{"db1", "203.0.113.10", "an Internet host"},
	} {
		if out := l.mustExec(c.from, "dig", "-x", c.addr); !strings.Contains(out, "status: NXDOMAIN") {
			t.Errorf("dig -x %s from %s (%s): want status: NXDOMAIN, got\n%s", c.addr, c.from, c.why, out)
		}
	}
}

// `exec NODE` with no command is a shell in the node, as `docker exec -it
// NODE sh` would be: the user's $SHELL, or sh. It used to be a usage error.
// Fed from a pipe, the shell reads its commands from it.
func TestExecWithoutCommandIsAShell(t *testing.T) {
	l := upLab(t)
	for _, shell := range []string{"", "/bin/bash"} {
		cmd := exec.Command(emulator, "exec", "--name", l.name, "db1")
		cmd.Env = append(os.Environ(), "SHELL="+shell)
		cmd.Stdin = strings.NewReader("hostname; ip -4 -o addr show dev eth0\n")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "db1\n") || !strings.Contains(string(out), "10.0.2.4/24") {
			t.Errorf("exec db1 with no command, SHELL=%q, fed 'hostname; ip addr': %v\n%s", shell, err, out)
		}
	}
}
