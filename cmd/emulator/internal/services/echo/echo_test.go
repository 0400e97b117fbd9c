package echo

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/internal/leakcheck"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func start(t *testing.T) *netx.Loopback {
	t.Helper()
	n := netx.NewLoopback("echo", "203.0.113.10")
	s, err := Start(n, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return n
}

func TestWhatIsMyIP(t *testing.T) { // F3: the caller's address as it arrived
	n := start(t)
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()

	resp, err := c.Get("http://" + n.Addr("tcp", 80) + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "127.0.0.1\n" {
		t.Errorf("curl http://echo/ answered %q, want the caller's address \"127.0.0.1\\n\"", b)
	}

	// Without keep-alive, so that the local port below is the one echo saw.
	conn, err := net.Dial("tcp", n.Addr("tcp", 80))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /?format=json HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	var a Answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("?format=json is not JSON: %v", err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(conn.LocalAddr().String())
	if a.Address != "127.0.0.1" || strconv.Itoa(a.Port) != port {
		t.Errorf("?format=json = %+v, want address 127.0.0.1 port %s", a, port)
	}
}

func TestTCPEcho(t *testing.T) { // RFC 862
	n := start(t)
	c, err := net.Dial("tcp", n.Addr("tcp", 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	for _, msg := range []string{"hello\n", "from the ASE\n"} {
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
			t.Errorf("TCP echo of %q gave %q, %v", msg, buf, err)
		}
	}
}

func TestUDPEcho(t *testing.T) { // RFC 862
	n := start(t)
	c, err := net.Dial("udp", n.Addr("udp", 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 100)
	k, err := c.Read(buf)
	if err != nil || string(buf[:k]) != "ping" {
		t.Errorf("UDP echo gave %q, %v; want \"ping\"", buf[:k], err)
	}
}

func TestStartFailsOnTakenPort(t *testing.T) {
	n := netx.NewLoopback("echo")
	pc, err := n.ListenPacket("udp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := Start(n, Config{}); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Start with udp 7 taken: %v, want address in use", err)
	}
	if n.Addr("tcp", 80) != "" || n.Addr("tcp", 7) != "" {
		t.Error("a failed Start left ports open")
	}
}
