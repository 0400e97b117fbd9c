package test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// withNSG returns replacement pairs that attach an NSG to a subnet of the
// default lab and declare it with the given rules (YAML flow mappings).
func withNSG(subnetPrefix, name string, rules ...string) []string {
	var b strings.Builder
	fmt.Fprintf(&b, "networkSecurityGroups:\n  - name: %s\n    securityRules:\n", name)
	for _, r := range rules {
		fmt.Fprintf(&b, "      - %s\n", r)
	}
	return []string{
		"        addressPrefix: " + subnetPrefix + "\n", "        addressPrefix: " + subnetPrefix + "\n        networkSecurityGroup: " + name + "\n",
		"networkSecurityGroups: []\n", b.String(),
	}
}

// verifyJSON is `emulator verify --json`.
type verifyJSON struct {
	Allow    bool   `json:"allow"`
	Decision string `json:"decision"`
}

func (l *lab) verify(from, to string, flags ...string) verifyJSON {
	l.t.Helper()
	var v verifyJSON
	l.emuJSON(&v, "verify", append([]string{"--from", from, "--to", to}, flags...)...)
	return v
}

// curlFails asserts that curl from node to url gets no answer.
func (l *lab) curlFails(from, url string) {
	l.t.Helper()
	if r := l.exec(from, 20*time.Second, "curl", "-s", "-k", "-m", "3", url); r.code == 0 {
		l.t.Errorf("curl %s from %s got an answer; it should not: %v", url, from, r)
	}
}

// F5, the article's central example: an NSG on ase2's subnet that admits
// only ase1's VIP lets ase1 in and keeps the Internet out.
func TestNSGAdmitsOnlyCallerVIP(t *testing.T) {
	file := writeTopology(t, "ase2-nsg.yaml", withNSG("10.0.3.0/26", "ase2-nsg",
		`{name: AllowASE1VIP, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: 192.23.1.2, destinationPortRange: "80"}`,
		`{name: DenyInternet, priority: 200, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: Internet}`)...)
	l := upLab(t, "-f", file)
	if a := l.app("ase1-w1", "http://app2.ase2.p.azurewebsites.net/", ""); a.App != "app2" || a.ForwardedFor != "192.23.1.2" {
		t.Errorf("F5: ase1 -> app2: want app2 answering with X-Forwarded-For 192.23.1.2, got %+v", a)
	}
	l.curlFails("client", "http://app2.ase2.p.azurewebsites.net/")
	if v := l.verify("ase1-w1", "192.23.2.2:80"); !v.Allow || !strings.Contains(v.Decision, "ase2-nsg/AllowASE1VIP") {
		t.Errorf("verify ase1-w1 -> 192.23.2.2:80 = %+v, want Allow by ase2-nsg/AllowASE1VIP", v)
	}
	if v := l.verify("client", "192.23.2.2:80"); v.Allow || !strings.Contains(v.Decision, "ase2-nsg/DenyInternet") {
		t.Errorf("verify client -> 192.23.2.2:80 = %+v, want Deny by ase2-nsg/DenyInternet", v)
	}
}

// Management: denying 454-455 cuts azure-mgmt off; removing the rule with
// apply restores it without a restart. (The NSG allows the Internet in at
// 4000: without that, DenyAllInBound would keep management out anyway.)
func TestNSGManagementPortsLiveChange(t *testing.T) {
	allowInternet := `{name: AllowInternet, priority: 4000, direction: Inbound, access: Allow, protocol: "*", sourceAddressPrefix: Internet}`
	deny := writeTopology(t, "deny-mgmt.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyManagement, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, sourceAddressPrefix: Internet, destinationPortRange: 454-455}`,
		allowInternet)...)
	l := upLab(t, "-f", deny)
	l.refused("azure-mgmt", "192.23.1.2", 454)
	open := writeTopology(t, "open.yaml", withNSG("10.0.1.0/26", "ase1-nsg", allowInternet)...)
	if r := emu(t, "apply", "--name", l.name, "-f", open); r.code != 0 || !strings.Contains(r.stdout, "NSG ase1-nsg: rules changed") {
		t.Fatalf("apply removing the rule: %v", r)
	}
	if r := l.exec("azure-mgmt", 20*time.Second, "nc", "-z", "-w", "5", "192.23.1.2", "454"); r.code != 0 {
		t.Errorf("after apply, azure-mgmt still cannot reach 192.23.1.2:454: %v", r)
	}
}

// F12: with inbound DenyAll on vm-subnet, db1 can still call out and its
// replies come back; nobody reaches it.
func TestNSGStatefulness(t *testing.T) {
	file := writeTopology(t, "vm-nsg.yaml", withNSG("10.0.2.0/24", "vm-nsg",
		`{name: DenyAllIn, priority: 100, direction: Inbound, access: Deny, protocol: "*"}`)...)
	l := upLab(t, "-f", file)
	// db1 has no public IP: it leaves by default outbound access.
	if r := l.exec("db1", 20*time.Second, "curl", "-s", "-m", "5", "http://echo/"); r.code != 0 || strings.TrimSpace(r.stdout) != "192.0.2.1" {
		t.Errorf("db1 calling out with inbound DenyAll: want echo's answer (192.0.2.1, the default outbound address) to come back, got %v", r)
	}
	l.refused("ase1-w1", "10.0.2.4", 1433)
}

// F8: a VM in ase1's own subnet cannot be reached from ase1; the same VM in
// vm-subnet can.
func TestVMInASESubnet(t *testing.T) {
	inside := writeTopology(t, "f8.yaml", "    subnet: vm-subnet\n    privateIPAddress: 10.0.2.4\n", "    subnet: ase1-subnet\n    privateIPAddress: 10.0.1.20\n")
	name := uniqueName()
	l := &lab{t: t, name: name}
	t.Cleanup(l.down)
	r := emu(t, "up", "-d", "--name", name, "-f", inside)
	if r.code != 0 || !strings.Contains(r.stdout, "warning: VM db1 is in ASE ase1's subnet") {
		t.Fatalf("up with db1 in ase1-subnet: want a warning naming db1, got %v", r)
	}
	l.refused("ase1-w1", "10.0.1.20", 1433)
	if d := l.status().Drops["ase-subnet-vm"]; d < 1 {
		t.Errorf("status counts %d ase-subnet-vm drops, want at least 1", d)
	}
	other := upLab(t)
	if peer := other.peerSeen("ase1-w1", "10.0.2.4", 1433); peer != "10.0.1.6" {
		t.Errorf("db1 in vm-subnet: saw %s, want 10.0.1.6", peer)
	}
}

// F12: an apply that denies a port cuts off new connections, while an open
// session keeps working.
func TestNSGApplyKeepsOpenSession(t *testing.T) {
	l := upLab(t)
	session := l.background("ase1-w1", "sh", "-c", "(echo one; sleep 4; echo two; sleep 1) | nc -N 203.0.113.10 7")
	time.Sleep(time.Second)
	deny := writeTopology(t, "deny7.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: DenyEchoOut, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPortRange: "7"}`)...)
	if r := emu(t, "apply", "--name", l.name, "-f", deny); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	l.refused("ase1-w1", "203.0.113.10", 7)
	got := session.wait()
	if !strings.Contains(got.stdout, "one") || !strings.Contains(got.stdout, "two") {
		t.Errorf("F12: the session opened before the apply should go on (echo both lines), got %v", got)
	}
}

// The article's "control inbound traffic" NSG: management open to the
// Internet, apps, FTP and remote debugging only from one address.
func TestNSGArticleInboundExample(t *testing.T) {
	file := writeTopology(t, "inbound.yaml", withNSG("10.0.1.0/26", "ase1-nsg",
		`{name: AllowManagement, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: Internet, destinationPortRange: 454-455}`,
		`{name: AllowClient, priority: 200, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: 198.51.100.10, destinationPortRanges: ["80", "443", "21", "990", 10001-10020, "4016", "4018", "4020"]}`,
		`{name: DenyInternet, priority: 300, direction: Inbound, access: Deny, protocol: "*", sourceAddressPrefix: Internet}`)...)
	l := upLab(t, "-f", file)
	for _, port := range []int{454, 80, 443, 21, 10005, 4016} {
		if r := l.exec("client", 20*time.Second, "nc", "-z", "-w", "5", "192.23.1.2", fmt.Sprint(port)); r.code != 0 {
			t.Errorf("client -> VIP:%d should be allowed: %v", port, r)
		}
	}
	if r := l.exec("echo", 20*time.Second, "nc", "-z", "-w", "5", "192.23.1.2", "454"); r.code != 0 {
		t.Errorf("another Internet host -> VIP:454 (management) should be allowed: %v", r)
	}
	for _, port := range []int{80, 443, 21, 10005, 4016} {
		l.refused("echo", "192.23.1.2", port)
	}
}

// F2, F13, F14: db1 calling a closed port of ase1's VIP. Its packet leaves
// the VNet with db1's default outbound address, so that is what the load
// balancer drops; verify said the flow left as 10.0.2.4, which no packet
// to the VIP ever carries. And the load balancer sees only what db1's own
// outbound rules let out: with them denying the port, verify, the drop
// counters and the rule's hits named port-closed instead.
func TestVerifyClosedVIPPort(t *testing.T) {
	type verifyOut struct {
		Allow       bool   `json:"allow"`
		Decision    string `json:"decision"`
		Translation string `json:"translation"`
		Reason      string `json:"reason"`
		Evaluated   []struct {
			Rule, Access string
		} `json:"evaluated"`
	}
	l := upLab(t)
	var v verifyOut
	l.emuJSON(&v, "verify", "--from", "db1", "--to", "192.23.1.2:8080")
	if v.Allow || v.Reason != "port-closed" || !strings.HasPrefix(v.Translation, "192.0.2.1:") {
		t.Errorf("verify db1 -> 192.23.1.2:8080: got %+v; want port-closed, the flow reaching the VIP from db1's outbound address 192.0.2.1", v)
	}
	file := writeTopology(t, "vm-nsg.yaml", withNSG("10.0.2.0/24", "vm-nsg",
		`{name: DenyOut8080, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPortRange: "8080"}`)...)
	if r := emu(t, "apply", "--name", l.name, "-f", file); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	v = verifyOut{}
	l.emuJSON(&v, "verify", "--from", "db1", "--to", "192.23.1.2:8080")
	if v.Allow || v.Reason != "" || len(v.Evaluated) != 1 || v.Evaluated[0].Rule != "DenyOut8080" {
		t.Errorf("verify db1 -> 192.23.1.2:8080 with db1's outbound 8080 denied: got %+v; want Deny by vm-nsg/DenyOut8080, which the packet meets before the load balancer", v)
	}
	l.refused("db1", "192.23.1.2", 8080)
	if d := l.node("db1").Drops; d["nsg-outbound"] < 1 || d["port-closed"] != 0 {
		t.Errorf("db1's drops after nc to the VIP's 8080 with its outbound 8080 denied: %v; want nsg-outbound, no port-closed", d)
	}
}
