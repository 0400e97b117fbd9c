package topology

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDefaultLab checks every row of SPEC §3 against the embedded lab.
func TestDefaultLab(t *testing.T) {
	top := Default()

	type want struct {
		kind   NodeKind
		addr   string
		subnet string // "" for Internet hosts
		gw     string
		ase    string
	}
	nodes := map[string]want{
		// F1: ASE machines get addresses inside their subnet, from .4.
		"ase1-fe1": {NodeFrontEnd, "10.0.1.4", "ase1-subnet", "10.0.1.1", "ase1"},
		"ase1-fe2": {NodeFrontEnd, "10.0.1.5", "ase1-subnet", "10.0.1.1", "ase1"},
		"ase1-w1":  {NodeWorker, "10.0.1.6", "ase1-subnet", "10.0.1.1", "ase1"},
		"ase1-w2":  {NodeWorker, "10.0.1.7", "ase1-subnet", "10.0.1.1", "ase1"},
		"db1":      {NodeVM, "10.0.2.4", "vm-subnet", "10.0.2.1", ""},
		"ase2-fe1": {NodeFrontEnd, "10.0.3.4", "ase2-subnet", "10.0.3.1", "ase2"},
		"ase2-fe2": {NodeFrontEnd, "10.0.3.5", "ase2-subnet", "10.0.3.1", "ase2"},
		"ase2-w1":  {NodeWorker, "10.0.3.6", "ase2-subnet", "10.0.3.1", "ase2"},
		"ase2-w2":  {NodeWorker, "10.0.3.7", "ase2-subnet", "10.0.3.1", "ase2"},
		"ase3-fe1": {NodeFrontEnd, "10.0.4.4", "ase3-subnet", "10.0.4.1", "ase3"},
		"ase3-fe2": {NodeFrontEnd, "10.0.4.5", "ase3-subnet", "10.0.4.1", "ase3"},
		"ase3-w1":  {NodeWorker, "10.0.4.6", "ase3-subnet", "10.0.4.1", "ase3"},
		"ase3-w2":  {NodeWorker, "10.0.4.7", "ase3-subnet", "10.0.4.1", "ase3"},

		"client":        {NodeInternet, "198.51.100.10", "", "198.51.100.1", ""},
		"echo":          {NodeInternet, "203.0.113.10", "", "203.0.113.1", ""},
		"azure-sql":     {NodeInternet, "203.0.113.20", "", "203.0.113.1", ""},
		"azure-storage": {NodeInternet, "203.0.113.30", "", "203.0.113.1", ""},
		"azure-mgmt":    {NodeInternet, "203.0.113.40", "", "203.0.113.1", ""},
		"platform":      {NodePlatform, "168.63.129.16", "", "168.63.129.1", ""},
	}
	if len(top.Nodes) != len(nodes) {
		t.Errorf("default lab has %d nodes, SPEC §3 lists %d", len(top.Nodes), len(nodes))
	}
	order := []string{"ase1-fe1", "ase1-fe2", "ase1-w1", "ase1-w2", "ase2-fe1", "ase2-fe2", "ase2-w1", "ase2-w2",
		"ase3-fe1", "ase3-fe2", "ase3-w1", "ase3-w2", "db1", "client", "echo", "azure-sql", "azure-storage", "azure-mgmt", "platform"}
	for i, n := range top.Nodes {
		if i < len(order) && n.Name != order[i] {
			t.Errorf("Nodes[%d] is %s, want %s (front-ends, workers, VMs, hosts)", i, n.Name, order[i])
		}
	}
	for name, w := range nodes {
		n := top.NodeByName(name)
		if n == nil {
			t.Errorf("node %s is missing", name)
			continue
		}
		if n.Kind != w.kind || n.Addr.String() != w.addr || n.Gateway.String() != w.gw {
			t.Errorf("%s: kind %s addr %s gateway %s, want %s %s %s", name, n.Kind, n.Addr, n.Gateway, w.kind, w.addr, w.gw)
		}
		if top.NodeByAddr(n.Addr) != n {
			t.Errorf("NodeByAddr(%s) is not %s", n.Addr, name)
		}
		// SPEC §3: Azure Storage is in a remote region (F16); the rest
		// of the lab is near.
		want := Latency{}
		if name == "azure-storage" {
			want = Latency{Delay: 40 * time.Millisecond}
		}
		if n.Latency != want {
			t.Errorf("%s: latency %+v, want %+v", name, n.Latency, want)
		}
		if w.subnet == "" {
			if n.Subnet != nil || n.VNet != nil {
				t.Errorf("%s: Internet host has subnet %v", name, n.Subnet)
			}
			if n.Prefix != onLink24(n.Addr) {
				t.Errorf("%s: prefix %s, want the /24 %s", name, n.Prefix, onLink24(n.Addr))
			}
		} else {
			if n.Subnet == nil || n.Subnet.Name != w.subnet || n.Prefix != n.Subnet.Prefix || n.VNet == nil || n.VNet.Name != "vnet1" {
				t.Errorf("%s: subnet %v prefix %s, want %s in vnet1", name, n.Subnet, n.Prefix, w.subnet)
			}
		}
		gotASE := ""
		if n.ASE != nil {
			gotASE = n.ASE.Name
		}
		if gotASE != w.ase {
			t.Errorf("%s: ASE %q, want %q", name, gotASE, w.ase)
		}
	}

	if v := top.VNetByName("vnet1"); v == nil || joinPrefixes(v.AddressSpace) != "10.0.0.0/16" || len(v.Subnets) != 4 {
		t.Errorf("vnet1 = %+v, want 10.0.0.0/16 with 4 subnets", v)
	}
	for name, prefix := range map[string]string{"ase1-subnet": "10.0.1.0/26", "vm-subnet": "10.0.2.0/24", "ase2-subnet": "10.0.3.0/26", "ase3-subnet": "10.0.4.0/26"} {
		if s := top.SubnetByName(name); s == nil || s.Prefix.String() != prefix || s.NSG != "" {
			t.Errorf("subnet %s = %+v, want %s without NSG", name, s, prefix)
		}
	}
	if len(top.NSGs) != 0 {
		t.Errorf("default lab has %d NSGs, want none (only default rules apply)", len(top.NSGs))
	}

	type aseWant struct {
		kind, vip, ilb, mode, suffix, subnet, app string
	}
	for name, w := range map[string]aseWant{
		"ase1": {KindExternal, "192.23.1.2", "invalid IP", "", "ase1.p.azurewebsites.net", "ase1-subnet", "app1"},
		"ase2": {KindExternal, "192.23.2.2", "invalid IP", "", "ase2.p.azurewebsites.net", "ase2-subnet", "app2"},
		"ase3": {KindILB, "192.23.3.2", "10.0.4.8", ILBModeWebPublishing, "ase3.internal", "ase3-subnet", "app3"},
	} {
		a := top.ASEByName(name)
		if a == nil {
			t.Errorf("ASE %s is missing", name)
			continue
		}
		if a.Kind != w.kind || a.VIP.String() != w.vip || a.ILB.String() != w.ilb || a.ILBMode != w.mode || a.DNSSuffix != w.suffix || a.Subnet.Name != w.subnet {
			t.Errorf("%s = %s VIP %s ILB %s mode %q suffix %s subnet %s, want %+v", name, a.Kind, a.VIP, a.ILB, a.ILBMode, a.DNSSuffix, a.Subnet.Name, w)
		}
		if a.Subnet.ASE != a {
			t.Errorf("subnet %s does not point back at %s", a.Subnet.Name, name)
		}
		if len(a.FrontEnds) != 2 || len(a.Workers) != 2 {
			t.Errorf("%s has %d front-ends and %d workers, want 2 and 2", name, len(a.FrontEnds), len(a.Workers))
		}
		// F4: the app runs on every worker when the file names none.
		if len(a.Apps) != 1 || a.Apps[0].Name != w.app || len(a.Apps[0].Workers) != 2 ||
			a.Apps[0].Workers[0] != a.Workers[0] || a.Apps[0].Workers[1] != a.Workers[1] {
			t.Errorf("%s apps = %+v, want %s on both workers", name, a.Apps, w.app)
		}
		// F6, F7: app names resolve to the VIP, or to the ILB address.
		wantAppAddr := w.vip
		if w.kind == KindILB {
			wantAppAddr = w.ilb
		}
		if a.AppAddr().String() != wantAppAddr {
			t.Errorf("%s apps resolve to %s, want %s", name, a.AppAddr(), wantAppAddr)
		}
		if top.ASEByAddr(a.VIP) != a {
			t.Errorf("ASEByAddr(%s) is not %s", a.VIP, name)
		}
	}
	if got := top.ASEByName("ase3").Apps[0].FQDN(); got != "app3.ase3.internal" {
		t.Errorf("app3 FQDN = %s, want app3.ase3.internal", got)
	}
	if top.ASEByAddr(netip.MustParseAddr("10.0.4.8")).Name != "ase3" {
		t.Errorf("ASEByAddr(10.0.4.8) is not ase3")
	}
	db1 := top.VMs[0]
	if db1.PrivateIP.String() != "10.0.2.4" || db1.PublicIP.IsValid() || db1.Node != top.NodeByName("db1") {
		t.Errorf("db1 = %+v", db1)
	}
	if v := top.VNetContaining(netip.MustParseAddr("10.0.200.1")); v == nil || v.Name != "vnet1" {
		t.Errorf("VNetContaining(10.0.200.1) = %v, want vnet1", v)
	}
	if v := top.VNetContaining(netip.MustParseAddr("192.23.1.2")); v != nil {
		t.Errorf("VNetContaining(VIP 192.23.1.2) = %s, want none (F3: the VIP is outside the VNet)", v.Name)
	}
	if s := top.SubnetContaining(netip.MustParseAddr("10.0.3.9")); s == nil || s.Name != "ase2-subnet" {
		t.Errorf("SubnetContaining(10.0.3.9) = %v, want ase2-subnet", s)
	}
}

func TestDefaultYAMLIsTheFileVerbatim(t *testing.T) {
	disk, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := DefaultYAML()
	if !bytes.Equal(got, disk) {
		t.Fatal("DefaultYAML() differs from default.yaml")
	}
	got[0] = 'X' // a caller's copy must not change the embedded file
	if DefaultYAML()[0] == 'X' {
		t.Fatal("DefaultYAML() returned the embedded slice itself")
	}
	// `emulator init > lab.yaml; emulator up -f lab.yaml` must give the default lab.
	top, err := Parse("lab.yaml", disk)
	if err != nil {
		t.Fatal(err)
	}
	if len(top.Nodes) != len(Default().Nodes) {
		t.Fatal("parsing default.yaml gives a different lab from Default()")
	}
}

func TestDefaultReturnsFreshCopies(t *testing.T) {
	a, b := Default(), Default()
	a.Nodes[0].Name = "changed"
	if b.Nodes[0].Name != "ase1-fe1" {
		t.Fatal("two Default() calls share their nodes")
	}
}

// The files the project writes (emulator init, the labs) spell the VM's
// address as ARM does, privateIPAddress; the file still takes the old
// privateIpAddress.
func TestWrittenFilesUseARMSpelling(t *testing.T) {
	files, _ := filepath.Glob("../scripts/labs/*/*.yaml")
	files = append(files, "default.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, old := range []string{"privateIpAddress", "publicIpAddress"} {
			if strings.Contains(string(b), old) {
				t.Errorf("%s spells %s; ARM spells it %s", f, old, strings.Replace(old, "Ip", "IP", 1))
			}
		}
	}
}
