package topology

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostileCase is one line of testdata/hostile/want.txt.
type hostileCase struct{ file, line, field, msg string }

// want is the text a refusal must contain: FILE:LINE: FIELD: MESSAGE, or
// FILE:LINE: MESSAGE for a syntax error, which has no field.
func (c hostileCase) want(path string) string {
	if c.field == "-" {
		return fmt.Sprintf("%s:%s: %s", path, c.line, c.msg)
	}
	return fmt.Sprintf("%s:%s: %s: %s", path, c.line, c.field, c.msg)
}

func readHostile(t *testing.T) []hostileCase {
	f, err := os.Open("testdata/hostile/want.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []hostileCase
	listed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" && l[0] != '#' {
			p := strings.Split(l, "\t")
			if len(p) != 4 {
				t.Fatalf("want.txt: %q: want FILE, LINE, FIELD and MESSAGE separated by tabs", l)
			}
			cases = append(cases, hostileCase{p[0], p[1], p[2], p[3]})
			listed[p[0]] = true
		}
	}
	files, _ := filepath.Glob("testdata/hostile/*.yaml")
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s has no line in want.txt", f)
		}
	}
	return cases
}

// Every hostile file is refused with the message want.txt gives, naming
// its line and field.
func TestHostileFiles(t *testing.T) {
	cases := readHostile(t)
	if len(cases) < 30 {
		t.Fatalf("only %d hostile files", len(cases))
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata/hostile", c.file)
			topo, err := Load(path)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %v, %v; want Errors", topo, err)
			}
			if want := c.want(path); !strings.Contains(err.Error(), want) {
				t.Errorf("got:\n%v\nwant a line with: %s", err, want)
			}
		})
	}
}

// A file over MaxFileSize is refused without being parsed, at the line
// where it passes the limit; Load reads no more than one byte past it.
func TestHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.yaml")
	line := "# " + strings.Repeat("x", 97) + "\n" // 100 bytes
	data := "virtualNetworks: []\n" + strings.Repeat(line, (MaxFileSize/100)+10)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	// 20 bytes of the first line, then 100 per line: byte MaxFileSize is on
	// line 2 + (MaxFileSize-20)/100.
	want := fmt.Sprintf("%s:%d: the file is over 4 MiB", path, 2+(MaxFileSize-20)/100)
	var errs Errors
	if !errors.As(err, &errs) || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}

// Each limit has its own message; one under the limit is accepted.
func TestLimitsAtTheirBound(t *testing.T) {
	rules := func(nsgs, per int) string {
		var b strings.Builder
		b.WriteString("networkSecurityGroups:\n")
		for g := range nsgs {
			fmt.Fprintf(&b, "  - name: n%d\n    securityRules:\n", g)
			for i := range per {
				// Priorities 100-4096 are unique per direction: past them,
				// the rules go on outbound.
				dir, prio := "Inbound", 100+i
				if prio > 4096 {
					dir, prio = "Outbound", prio-3997
				}
				fmt.Fprintf(&b, "      - {name: r%d, priority: %d, direction: %s, access: Allow, protocol: Tcp, sourceAddressPrefix: '*', sourcePortRange: '*', destinationAddressPrefix: '*', destinationPortRange: 80}\n", i, prio, dir)
			}
		}
		return b.String()
	}
	vips := func(n int) string {
		var b strings.Builder
		b.WriteString("virtualNetworks:\n  - name: vn\n    addressSpace: {addressPrefixes: [10.0.0.0/16]}\n    subnets: [{name: s, addressPrefix: 10.0.0.0/20}]\nvirtualMachines:\n")
		for i := range n {
			fmt.Fprintf(&b, "  - {name: vm%d, subnet: s, publicIpAddress: 192.23.%d.%d}\n", i, 10+i/200, 2+i%200)
		}
		return b.String()
	}
	for _, c := range []struct {
		name, yaml, msg string
	}{
		{"rules per NSG", rules(1, MaxRulesPerNSG), ""},
		{"rules per NSG + 1", rules(1, MaxRulesPerNSG+1), fmt.Sprintf("over the emulator's limit of %d per NSG", MaxRulesPerNSG)},
		{"rules in all", rules(MaxRules/MaxRulesPerNSG, MaxRulesPerNSG), ""},
		{"rules in all + 1", rules(MaxRules/MaxRulesPerNSG+1, MaxRulesPerNSG), "over the emulator's limit of 16384 in all NSGs"},
		{"VIPs", vips(MaxVIPs), ""},
		{"VIPs + 1", vips(MaxVIPs + 1), "over the emulator's limit of 256"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("lab.yaml", []byte(c.yaml))
			switch {
			case c.msg == "" && err != nil:
				t.Fatalf("at the limit: %v", err)
			case c.msg != "" && (err == nil || !strings.Contains(err.Error(), c.msg)):
				t.Fatalf("over the limit: got %v, want %q", err, c.msg)
			}
		})
	}
}
