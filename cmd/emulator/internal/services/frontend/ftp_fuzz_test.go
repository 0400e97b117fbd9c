package frontend

import (
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
)

// FuzzFTPSession sends a logged-in FTP session the lines of its input, as
// any host of a lab may, through a front-end's real control and data
// connections. The front-end runs in the emulator's process, beside the
// dataplane: a panic in a session would take the whole lab down (SPEC §6).
// Every line must get a reply with a code, a transfer must end with one,
// and the session must still answer NOOP and QUIT at the end.
func FuzzFTPSession(f *testing.F) {
	for _, seed := range []string{
		"MKD /app1/css\nCWD app1\nEPSV\nSTOR css/site.css\nEPSV\nRETR css/site.css\nEPSV\nLIST css",
		"CWD /app1\nMKD a\nMKD a/b\nRNFR a\nRNTO c\nRMD c/b\nRMD c\nCDUP\nPWD",
		"REST 3\nEPSV\nRETR /app1/hostingstart.html\nREST 99999999999999999999\nSIZE /app1/hostingstart.html\nMDTM /app1/hostingstart.html",
		"EPSV\nAPPE /app1/x\nRNFR /app1/x\nRNTO /app2/x\nDELE /app1/x\nMLST /app1\nEPSV\nMLSD /\nSTAT /app1\nFEAT\nHELP",
		"PASV\nNLST /app1/..\nCWD ../../..\nCWD /APP1/./\nTYPE A\nMODE S\nSTRU F\nALLO 10\nSITE CHMOD 644 x\nABOR",
	} {
		f.Add(seed)
	}
	l := newLab(f)
	addr := l.fe.Addr("tcp", FTPPort)
	f.Fuzz(func(t *testing.T, script string) {
		lines := strings.Split(script, "\n")
		if len(lines) > 24 {
			lines = lines[:24]
		}
		s := &fuzzSession{ftpClient: loginFTP(t, addr), fe: l.fe}
		for _, line := range lines {
			line = strings.TrimRight(line, "\r")
			cmd, _, _ := strings.Cut(line, " ")
			switch strings.ToUpper(cmd) {
			case "QUIT", "REIN":
				continue // the session would end before the script
			case "AUTH", "PBSZ", "PROT", "CCC":
				continue // TLS, which this client does not speak
			}
			if strings.ContainsAny(line, "\xff") || len(line) > 512 {
				continue // Telnet's codes and over-long lines are not the point here
			}
			s.run(line)
		}
		s.want("200", "NOOP")
		s.want("221", "QUIT")
	})
}

// fuzzSession is FuzzFTPSession's client: it connects to each passive
// port the server opens, and sends or reads the data of each transfer.
type fuzzSession struct {
	*ftpClient
	fe   *netx.Loopback
	data net.Conn // the open passive port's connection, for the next transfer
}

var pasvPort = regexp.MustCompile(`\((?:\|\|\|(\d+)\||\d+,\d+,\d+,\d+,(\d+),(\d+))\)`)

// run sends one line and plays the client's part of what it starts.
func (s *fuzzSession) run(line string) {
	reply := s.cmd(line)
	switch code := s.code(line, reply); code {
	case 227, 229:
		if s.data != nil {
			s.data.Close()
		}
		s.data = s.dial(reply)
	case 150:
		d := s.data
		s.data = nil
		if d == nil {
			s.t.Fatalf("%q: 150 with no passive port open", line)
		}
		cmd, _, _ := strings.Cut(strings.ToUpper(line), " ")
		if cmd == "STOR" || cmd == "APPE" || cmd == "STOU" {
			d.Write([]byte("fuzz"))
		} else {
			io.Copy(io.Discard, d)
		}
		d.Close()
		if code := s.code(line, s.read(line)); code != 226 && code != 426 && code/100 != 5 {
			s.t.Fatalf("%q: the transfer ended with code %d", line, code)
		}
	}
}

// code is a reply's code, which every reply must start with.
func (s *fuzzSession) code(line, reply string) int {
	code, err := strconv.Atoi(reply[:min(3, len(reply))])
	if err != nil || code < 100 || code > 599 {
		s.t.Fatalf("%q: reply %q has no code", line, reply)
	}
	return code
}

// dial connects to the passive port a 227 or 229 reply names.
func (s *fuzzSession) dial(reply string) net.Conn {
	m := pasvPort.FindStringSubmatch(reply)
	if m == nil {
		s.t.Fatalf("passive reply %q names no port", reply)
	}
	port, _ := strconv.Atoi(m[1])
	if m[1] == "" {
		hi, _ := strconv.Atoi(m[2])
		lo, _ := strconv.Atoi(m[3])
		port = hi<<8 | lo
	}
	d, err := net.DialTimeout("tcp", s.fe.Addr("tcp", port), 5*time.Second)
	if err != nil {
		s.t.Fatalf("passive port %d: %v", port, err)
	}
	d.SetDeadline(time.Now().Add(5 * time.Second))
	return d
}
