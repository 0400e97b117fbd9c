package test

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// buildInjector builds test/inject, which writes raw packets to an
// interface below the IP stack, and returns its path.
func buildInjector(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "inject")
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(gobin, "build", "-o", bin, "./inject").CombinedOutput(); err != nil {
		t.Fatalf("building the injector: %v\n%s", err, out)
	}
	return bin
}

var (
	db1Addr = net.IPv4(10, 0, 2, 4).To4()
	w1Addr  = net.IPv4(10, 0, 1, 6).To4()
)

func ser(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func udpTo(t *testing.T, id uint16, dport uint16, opts []layers.IPv4Option, payload []byte) []byte {
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: id, Protocol: layers.IPProtocolUDP, SrcIP: db1Addr, DstIP: w1Addr, Options: opts}
	udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return ser(t, ip, udp, gopacket.Payload(payload))
}

// split cuts whole into fragments at the given payload offsets (multiples
// of 8), as a sender's kernel would, with fresh header checksums.
func split(t *testing.T, whole []byte, cuts ...int) [][]byte {
	ip := gopacket.NewPacket(whole, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	cuts = append(append([]int{0}, cuts...), len(ip.Payload))
	var out [][]byte
	for i := 0; i+1 < len(cuts); i++ {
		f := &layers.IPv4{Version: 4, TTL: ip.TTL, Id: ip.Id, Protocol: ip.Protocol, SrcIP: ip.SrcIP, DstIP: ip.DstIP, FragOffset: uint16(cuts[i] / 8)}
		if i+2 < len(cuts) {
			f.Flags = layers.IPv4MoreFragments
		}
		out = append(out, ser(t, f, gopacket.Payload(ip.Payload[cuts[i]:cuts[i+1]])))
	}
	return out
}

// refix recomputes the IP header checksum after a test broke a field.
func refix(b []byte) []byte {
	hl := int(b[0]&0xf) * 4
	binary.BigEndian.PutUint16(b[10:12], 0)
	var s uint32
	for i := 0; i+1 < hl && i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(b[10:12], ^uint16(s))
	return b
}

// nodeDrops returns one node's drop counters from `status --json`.
func (l *lab) nodeDrops(node string) map[string]uint64 {
	l.t.Helper()
	if d := l.node(node).Drops; d != nil {
		return d
	}
	return map[string]uint64{}
}

// Malformed traffic injected through db1's interface, below its IP stack:
// each kind is dropped and counted under its reason, fragments follow
// their first fragment's flow, and good traffic, fragmented included,
// keeps flowing.
func TestMalformedPacketsAreDroppedAndCounted(t *testing.T) {
	l := upLab(t)
	inject := buildInjector(t)

	// A listener for the datagram sent in fragments, one of them twice.
	listener := l.background("ase1-w1", "nc", "-u", "-l", "-n", "7777")
	for i := 0; i < 100; i++ {
		if strings.Contains(l.exec("ase1-w1", 10*time.Second, "ss", "-Huln").stdout, ":7777 ") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	good := udpTo(t, 1, 9, nil, []byte("a well-formed datagram"))
	badIHL := append([]byte(nil), good...)
	badIHL[0] = 0x43
	badLen := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(badLen[2:4], 1000)
	badSum := append([]byte(nil), good...)
	badSum[10] ^= 0xff
	lsrr := udpTo(t, 2, 9, []layers.IPv4Option{{OptionType: 0x83, OptionLength: 7, OptionData: []byte{4, 10, 0, 1, 1}}}, []byte("source routed"))
	brokenOpt := udpTo(t, 3, 9, []layers.IPv4Option{{OptionType: 7, OptionLength: 7, OptionData: []byte{4, 0, 0, 0, 0}}}, []byte("record route"))
	brokenOpt[21] = 40 // the option's length runs past the header
	refix(brokenOpt)
	udpLen := udpTo(t, 4, 9, nil, []byte("short"))
	binary.BigEndian.PutUint16(udpLen[24:26], 500) // a UDP length past the datagram
	refix(udpLen)

	synIP := &layers.IPv4{Version: 4, TTL: 64, Id: 5, Protocol: layers.IPProtocolTCP, SrcIP: db1Addr, DstIP: w1Addr}
	syn := &layers.TCP{SrcPort: 40001, DstPort: 80, SYN: true, Window: 1000}
	syn.SetNetworkLayerForChecksum(synIP)
	badOff := ser(t, synIP, syn)
	badOff[20+12] = 0xf0 // a 60-byte TCP header in a 20-byte segment
	synIP.Id = 6
	tiny := split(t, ser(t, synIP, syn, gopacket.Payload(make([]byte, 64))), 8)[0] // ports, no TCP header

	whole := udpTo(t, 7, 7777, nil, []byte(strings.Repeat("fragmented-hello ", 20)))
	frags := split(t, whole, 96, 200) // 8 bytes of UDP header and 88 of data, then 104, then the rest
	orphan := split(t, udpTo(t, 8, 9, nil, make([]byte, 300)), 96)[1]
	overlapWhole := udpTo(t, 9, 9, nil, make([]byte, 300))
	overlap := append(split(t, overlapWhole, 96), split(t, overlapWhole, 48)[1]) // bytes 48-303 again, over the first

	icmpIP := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: db1Addr, DstIP: w1Addr}
	nonsense := ser(t, icmpIP, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, 3)},
		gopacket.Payload("this quotes no IPv4 packet at all"))

	ip6 := ser(t, &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolNoNextHeader,
		SrcIP: net.ParseIP("fd00::4"), DstIP: net.ParseIP("fd00::6")})

	sends := []struct {
		kind string
		pkt  []byte
	}{
		{"ip", good[:12]}, {"ip", badIHL}, {"ip", badLen}, {"ip", badSum}, {"ip", lsrr}, {"ip", brokenOpt},
		{"ip", udpLen}, {"ip", badOff}, {"ip", tiny}, {"ip", orphan},
		{"ip", frags[0]}, {"ip", frags[1]}, {"ip", frags[1]}, {"ip", frags[2]},
		{"ip", overlap[0]}, {"ip", overlap[2]}, {"ip", overlap[1]},
		{"ip", nonsense}, {"ip6", ip6},
	}
	want := map[string]uint64{
		"truncated": 1, "bad-ihl": 1, "bad-total-length": 1, "bad-ip-checksum": 1, "bad-ip-options": 2,
		"bad-l4-header": 2, "frag-tiny": 1, "frag-no-first": 1, "icmp-bad-quote": 1, "not-ipv4": 1,
	}
	before := l.nodeDrops("db1")
	args := []string{inject, "eth0"}
	for _, s := range sends {
		args = append(args, s.kind+":"+hex.EncodeToString(s.pkt))
	}
	l.mustExec("db1", args...)

	var after map[string]uint64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after = l.nodeDrops("db1")
		done := true
		for r, n := range want {
			done = done && after[r]-before[r] >= n
		}
		if done || time.Now().After(deadline) {
			break
		}
	}
	for r, n := range want {
		got := after[r] - before[r]
		// The node's own stack may send IPv6 (router solicitations) too.
		if got != n && !(r == "not-ipv4" && got > n) {
			t.Errorf("drops %q: %d, want %d", r, got, n)
		}
	}
	for r := range after {
		if _, ok := want[r]; !ok && after[r] != before[r] {
			t.Errorf("unexpected drops %q: %d (the duplicate and overlapping fragments must pass)", r, after[r]-before[r])
		}
	}

	// The datagram sent in fragments, one twice, arrived whole.
	time.Sleep(500 * time.Millisecond) // nc -u -l never ends by itself
	listener.kill()
	if got := listener.wait(); !strings.Contains(got.stdout, "fragmented-hello fragmented-hello") {
		t.Errorf("ase1-w1 did not receive the fragmented datagram: %v", got)
	}

	// Good traffic flows: TCP, and pings the kernel fragments, through
	// SNAT (to echo) and without (to ase1-w1).
	tcp := l.background("ase1-w1", "nc", "-l", "-n", "5000")
	l.waitListening("ase1-w1", 5000)
	if r := run(t, 20*time.Second, "sh", "-c", "echo still-forwarding | "+emulator+" exec --name "+l.name+" db1 -- nc -N -w 5 10.0.1.6 5000"); r.code != 0 {
		t.Fatalf("nc from db1 to ase1-w1 after the malformed traffic: %v", r)
	}
	if got := tcp.wait(); !strings.Contains(got.stdout, "still-forwarding") {
		t.Errorf("ase1-w1 did not receive the TCP data: %v", got)
	}
	for _, dst := range []string{"203.0.113.10", "10.0.1.6"} {
		if r := l.exec("db1", 20*time.Second, "ping", "-c", "2", "-W", "2", "-s", "3000", dst); r.code != 0 {
			t.Errorf("ping -s 3000 (fragmented) from db1 to %s: %v", dst, r)
		}
	}
	if d := l.nodeDrops("db1"); d["frag-no-first"] != after["frag-no-first"] || d["frag-tiny"] != after["frag-tiny"] {
		t.Errorf("real fragmented traffic was dropped: %v", d)
	}
}

// graph -f - draws the topology on standard input; up and apply, whose lab
// keeps its file's path (and up -d reads the file again), refuse -f -
// with why, exit 2, and create nothing.
func TestTopologyOnStdin(t *testing.T) {
	r := run(t, 20*time.Second, "sh", "-c", emulator+" init | "+emulator+" graph -f -")
	if r.code != 0 || !strings.Contains(r.stdout, "ilb_ase3") {
		t.Errorf("init | graph -f -: want the default lab drawn, got %v", r)
	}
	r = run(t, 20*time.Second, "sh", "-c", "printf 'virtualNetworks: 3\\n' | "+emulator+" graph -f -")
	if r.code != 2 || !strings.Contains(r.stderr, "<stdin>:1: virtualNetworks") {
		t.Errorf("a bad topology on stdin: want exit 2 and the error at <stdin>:1, got %v", r)
	}
	name := uniqueName()
	for _, cmd := range []string{"up -d", "apply"} {
		r = run(t, 20*time.Second, "sh", "-c", emulator+" init | "+emulator+" "+cmd+" --name "+name+" -f -")
		if r.code != 2 || !strings.Contains(r.stderr, "-f -: ") || !strings.Contains(r.stderr, "standard input") {
			t.Errorf("%s -f -: want exit 2 and why standard input is refused, got %v", cmd, r)
		}
	}
	if _, err := os.Stat("/run/emulator/" + name); err == nil {
		emu(t, "down", "--name", name)
		t.Errorf("up -f - created lab %s", name)
	}
}
