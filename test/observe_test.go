package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// capturedPacket is one packet of a pcapng file with its comments.
type capturedPacket struct {
	src, dst string
	syn, ack bool
	comments []string
}

func readCapture(t *testing.T, file string) []capturedPacket {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatalf("%s is not pcapng: %v", file, err)
	}
	var out []capturedPacket
	for {
		data, _, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil {
			t.Fatalf("captured packet is not IPv4: %v", p)
		}
		cp := capturedPacket{src: ip.SrcIP.String(), dst: ip.DstIP.String(), comments: opts.Comments}
		if tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
			cp.syn, cp.ack = tcp.SYN, tcp.ACK
		}
		out = append(out, cp)
	}
	return out
}

// waitFile waits until file has at least n bytes: the capture's header is
// written once its tap is running.
func waitFile(t *testing.T, file string, n int64) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if st, err := os.Stat(file); err == nil && st.Size() >= n {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s never got %d bytes", file, n)
}

// Issue 8: a capture on ase1-w1 during a curl to echo shows the SYN
// leaving as 10.0.1.6 and arriving as 192.23.1.2, both copies commented
// with the translation and the NSG verdict; tcpdump reads the file, also
// streamed live on stdout.
func TestCapture(t *testing.T) {
	l := upLab(t)
	file := filepath.Join(t.TempDir(), "w1.pcapng")
	capture := exec.Command(emulator, "capture", "ase1-w1", "--name", l.name, "-w", file, "--filter", "tcp and port 80", "-c", "4")
	var stderr strings.Builder
	capture.Stderr = &stderr
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- capture.Wait() }()
	t.Cleanup(func() { capture.Process.Kill(); <-done })
	waitFile(t, file, 64)
	l.mustExec("ase1-w1", "curl", "-s", "-m", "5", "http://echo/")
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("capture: %v: %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("capture -c 4 did not end after the curl")
	}

	pkts := readCapture(t, file)
	if len(pkts) < 4 {
		t.Fatalf("capture has %d packets, want the SYN and SYN-ACK before and after translation: %+v", len(pkts), pkts)
	}
	syn := pkts[:2]
	if !syn[0].syn || syn[0].ack || syn[0].src != "10.0.1.6" || syn[1].src != "192.23.1.2" || syn[1].dst != "203.0.113.10" {
		t.Fatalf("first two packets %+v, want the SYN leaving as 10.0.1.6 and arriving at echo as 192.23.1.2", syn)
	}
	for i, want := range []string{"before translation", "after translation"} {
		c := strings.Join(syn[i].comments, " ")
		if !strings.Contains(c, want) || !strings.Contains(c, "SNAT 10.0.1.6:") || !strings.Contains(c, "-> 192.23.1.2:") || !strings.Contains(c, "NSG") {
			t.Errorf("SYN %s has comment %q, want %q naming the SNAT and the NSG verdict", want, c, want)
		}
	}
	if r := run(t, 10*time.Second, "tcpdump", "-n", "-r", file); r.code != 0 || !strings.Contains(r.stdout, "10.0.1.6") || !strings.Contains(r.stdout, "192.23.1.2") {
		t.Errorf("tcpdump -r %s: %v", file, r)
	}

	// Live: -w - into tcpdump -r -.
	liveDone := make(chan result, 1)
	go func() {
		liveDone <- run(t, 30*time.Second, "sh", "-c", emulator+" capture echo --name "+l.name+" -w - -c 2 --filter 'port 80' | tcpdump -n -r -")
	}()
	for i := 0; i < 20; i++ {
		l.exec("ase1-w1", 10*time.Second, "curl", "-s", "-m", "2", "http://echo/")
		select {
		case r := <-liveDone:
			if r.code != 0 || !strings.Contains(r.stdout, "192.23.1.2") {
				t.Errorf("capture -w - | tcpdump -r -: %v", r)
			}
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	t.Error("capture -w - -c 2 never ended")
}
