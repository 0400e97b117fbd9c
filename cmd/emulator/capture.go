package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/nat"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// captureSnaplen keeps a whole GSO super-packet (64 KiB) with room to spare.
const captureSnaplen = 262144

// parseInterspersed parses args whose positional arguments may come before,
// between or after the flags ("capture ase1-w1 -w -").
func parseInterspersed(fs *flag.FlagSet, args []string, name *string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args, name); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// cmdCapture streams the dataplane's view of a node's interface or of an
// address (a VIP) as pcapng: the lab's process writes the file and this
// command copies it to -w.
func cmdCapture(args []string, stdout io.Writer) error {
	fs, name := newFlags("capture")
	file := fs.String("w", "-", "pcapng file to write, - for stdout")
	filter := fs.String("filter", "", "host ADDR, port N, tcp|udp|icmp, each perhaps after not, joined by and")
	count := fs.Int("c", 0, "stop after this many packets, a translated one counting once though written twice (0: until Ctrl-C)")
	pos, err := parseInterspersed(fs, args, name)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *count < 0 {
		return usagef("capture: usage: %s capture NODE|VIP [--name LAB] [-w FILE|-] [--filter EXPR] [-c COUNT]", prog)
	}
	if _, err := dataplane.ParseFilter(*filter); err != nil {
		return usagef("capture: %v", err)
	}
	if f, ok := stdout.(*os.File); ok && *file == "-" && isTerminal(f) {
		return usagef("capture: pcapng is binary: write it to a file (-w FILE) or a pipe (-w - | tcpdump -r -)")
	}
	if err := needRoot("capture"); err != nil {
		return err
	}
	q := url.Values{"target": {pos[0]}, "filter": {*filter}, "count": {strconv.Itoa(*count)}}
	resp, err := controlDo(*name, http.MethodGet, "/capture?"+q.Encode(), nil, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out := stdout
	if *file != "-" {
		f, err := os.Create(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	// Ctrl-C ends the capture: closing the stream makes the lab stop its
	// tap, and what arrived so far is a complete file.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(sigs)
	var stopped atomic.Bool
	go func() {
		<-sigs
		stopped.Store(true)
		resp.Body.Close()
	}()
	if _, err = io.Copy(out, resp.Body); err != nil && !stopped.Load() {
		// Only the lab's control server going away (down, or the emulator
		// killed) cuts the stream short; "unexpected EOF" would not say why
		// the capture ended.
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("capture: lab %s went down; what was captured until then was written", *name)
		}
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// handleCapture runs a tap for as long as the client reads, writing
// pcapng into the response.
func (l *runningLab) handleCapture(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter, err := dataplane.ParseFilter(q.Get("filter"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	m := dataplane.Match{Filter: filter}
	target := q.Get("target")
	if a, err := netip.ParseAddr(target); err == nil && a.Is4() {
		// A tap on an address nothing here holds would wait in silence:
		// the dataplane carries no packet to or from it but those a node
		// sends it, which a capture of that node shows.
		if !l.holdsAddr(a) {
			http.Error(w, fmt.Sprintf("no node or VIP of lab %s holds %s: to see what a node sends it, capture that node with --filter 'host %s'", l.name, a, a), http.StatusUnprocessableEntity)
			return
		}
		m.Addr = a
	} else if l.hasNode(target) {
		m.Node = target
	} else {
		http.Error(w, l.noNode(target), http.StatusUnprocessableEntity)
		return
	}
	count, _ := strconv.Atoi(q.Get("count"))
	tap, err := l.engine.AddTap(m)
	if err != nil {
		http.Error(w, fmt.Sprintf("capture: %v", err), http.StatusUnprocessableEntity)
		return
	}
	defer l.engine.RemoveTap(tap)
	w.Header().Set("Content-Type", "application/x-pcapng")
	start := time.Now()
	pw, err := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{
		Name: target, Filter: q.Get("filter"), Description: "emulator dataplane, lab " + l.name,
		LinkType: layers.LinkTypeRaw, SnapLength: captureSnaplen, TimestampResolution: 9, OS: "linux",
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "emulator capture", OS: "linux"}})
	if err != nil {
		return
	}
	rc := http.NewResponseController(w)
	flush := func() bool { return pw.Flush() == nil && rc.Flush() == nil }
	if !flush() {
		return
	}
	cw := captureWriter{w: pw, rules: map[nat.Key]string{}}
	defer func() {
		pw.WriteInterfaceStats(0, pcapgo.NgInterfaceStatistics{
			LastUpdate: time.Now(), StartTime: start, EndTime: time.Now(),
			PacketsReceived: cw.n, PacketsDropped: tap.Lost(),
		})
		flush()
	}()
	for count == 0 || int(cw.n) < count {
		select {
		case <-r.Context().Done():
			return
		case rec := <-tap.Records():
			if cw.write(&rec) != nil {
				return
			}
			// Drain what is queued before flushing, so a busy capture
			// flushes once per burst rather than once per packet.
			for more := true; more && (count == 0 || int(cw.n) < count); {
				select {
				case rec := <-tap.Records():
					if cw.write(&rec) != nil {
						return
					}
				default:
					more = false
				}
			}
			if !flush() {
				return
			}
		}
	}
}

// holdsAddr says whether a packet of the lab can carry a as its address
// before or after translation: a node's, a VIP or ILB address, a VM's
// public address, an outbound NAT address, or a gateway the dataplane
// answers pings from.
func (l *runningLab) holdsAddr(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.topo
	if t.NodeByAddr(a) != nil || t.ASEByAddr(a) != nil || a == t.DefaultOutbound {
		return true
	}
	if t.OnPremises != nil && a == t.OnPremises.NATAddress {
		return true
	}
	for _, n := range t.Nodes {
		if a == n.PublicIP || a == n.Gateway {
			return true
		}
	}
	return false
}

// captureWriter writes records as pcapng packets with their comments.
type captureWriter struct {
	w *pcapgo.NgWriter
	// n counts packets, not the file's records: -c and the interface
	// statistics mean packets, as tcpdump's do, and a translated packet
	// is one packet the dataplane carried, written twice.
	n     uint64
	rules map[nat.Key]string // the NSG comment of each flow, evaluated once
}

func (c *captureWriter) write(r *dataplane.Record) error {
	c.n++
	if r.Answer {
		return c.packet(r.Time, r.Pre, []string{"sent by the dataplane to " + r.Out})
	}
	if r.Post == nil && r.Drop == "" {
		return c.packet(r.Time, r.Pre, nil)
	}
	rules, ok := c.rules[r.Orig]
	if !ok {
		if len(c.rules) > 10000 {
			clear(c.rules)
		}
		rules = r.Rules()
		c.rules[r.Orig] = rules
	}
	if r.Post == nil {
		return c.packet(r.Time, r.Pre, []string{fmt.Sprintf("%s, %s; %s", r.In, r.Dropped(), rules)})
	}
	what := r.NAT()
	if r.Reply {
		what = "reply of " + what
	}
	route := r.In + " -> " + r.Out
	if err := c.packet(r.Time, r.Pre, []string{fmt.Sprintf("before translation (%s): %s; %s", route, what, rules)}); err != nil {
		return err
	}
	return c.packet(r.Time, r.Post, []string{fmt.Sprintf("after translation (%s): %s; %s", route, what, rules)})
}

func (c *captureWriter) packet(t time.Time, b []byte, comments []string) error {
	ci := gopacket.CaptureInfo{Timestamp: t, CaptureLength: len(b), Length: len(b)}
	return c.w.WritePacketWithOptions(ci, b, pcapgo.NgPacketOptions{Comments: comments})
}
