package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology/build"
)

// traceWait is how long trace waits for its probe to reach the dataplane,
// and traceLinger how long it then keeps watching for the same packet
// coming back from a virtual appliance.
const (
	traceWait   = 3 * time.Second
	traceLinger = 300 * time.Millisecond
)

// traceResult is `emulator trace`'s answer: the probe's path, hop by hop.
type traceResult struct {
	Flow        string                 `json:"flow"` // the probe as sent: "tcp 10.0.1.6:51234 -> 203.0.113.10:80"
	Hops        []traceHop             `json:"hops"`
	Delivered   bool                   `json:"delivered"`
	ToNode      string                 `json:"toNode,omitempty"`
	Drop        string                 `json:"drop,omitempty"`
	Translation string                 `json:"translation"` // as it left the dataplane (emulator flows' TRANSLATED)
	NAT         string                 `json:"nat,omitempty"`
	Decision    string                 `json:"decision"` // the deciding NSG rule, as emulator verify names it
	Evaluated   []dataplane.VerifyStep `json:"evaluated"`
	Route       dataplane.NextHop      `json:"route"`
}

// traceHop is one pass of the probe through the dataplane.
type traceHop struct {
	From  string                 `json:"from"`
	Route dataplane.NextHop      `json:"route"`
	NSGs  []dataplane.VerifyStep `json:"nsgs"`
	NAT   string                 `json:"nat,omitempty"`
	Out   string                 `json:"out,omitempty"` // the node it was handed to
	Drop  string                 `json:"drop,omitempty"`
	Left  string                 `json:"left"` // the packet as it left
}

func cmdTrace(args []string, stdout io.Writer) error {
	fs, name := newFlags("trace")
	var q verifyRequest
	asJSON := probeFlags(fs, &q)
	if err := parseProbe(fs, args, name, &q, prog+" trace [--name LAB] --from NODE --to ADDR[:PORT] [--proto tcp|udp|icmp] [--json]"); err != nil {
		return err
	}
	var r traceResult
	if err := controlPost(*name, "/trace", q, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, r)
	}
	fmt.Fprintf(stdout, "Probe: %s, from %s\n", r.Flow, q.From)
	for i, h := range r.Hops {
		fmt.Fprintf(stdout, "%d. %s: route %s", i+1, h.From, h.Route.Type)
		if h.Route.IPAddress != "" {
			fmt.Fprintf(stdout, " %s", h.Route.IPAddress)
		}
		fmt.Fprintf(stdout, " (%s", h.Route.Route)
		if h.Route.Prefix != "" {
			fmt.Fprintf(stdout, ", %s", h.Route.Prefix)
		}
		fmt.Fprintln(stdout, ")")
		if len(h.NSGs) == 0 {
			fmt.Fprintln(stdout, "   NSG: none on the way")
		}
		for _, st := range h.NSGs {
			fmt.Fprintf(stdout, "   NSG %-8s %s %s %s/%s (priority %d): %s\n", st.Direction, st.Node, st.Attached, st.NSG, st.Rule, st.Priority, st.Access)
		}
		if h.NAT != "" {
			fmt.Fprintf(stdout, "   translated: %s\n", h.NAT)
		} else {
			fmt.Fprintln(stdout, "   translated: no")
		}
		if h.Drop != "" {
			fmt.Fprintf(stdout, "   dropped: %s\n", h.Drop)
		} else if h.Out == "" {
			fmt.Fprintf(stdout, "   answered by the dataplane as %s\n", h.Left)
		} else {
			fmt.Fprintf(stdout, "   delivered to %s as %s\n", h.Out, h.Left)
		}
	}
	switch {
	case r.Delivered && r.ToNode == "":
		fmt.Fprintf(stdout, "Result: %s\n", r.Decision) // a gateway's answer
	case r.Delivered:
		fmt.Fprintf(stdout, "Result: delivered to %s as %s (%s)\n", r.ToNode, r.Translation, r.Decision)
	case strings.HasSuffix(r.Decision, ": "+r.Drop):
		// A drop no NSG decided: the decision already says what dropped it
		// and why ("dropped by the load balancer: port-closed").
		fmt.Fprintf(stdout, "Result: %s\n", r.Decision)
	default:
		fmt.Fprintf(stdout, "Result: dropped (%s): %s\n", r.Drop, r.Decision)
	}
	return nil
}

func (l *runningLab) handleTrace(w http.ResponseWriter, r *http.Request) {
	q, ok := readQuery(w, r)
	if !ok {
		return
	}
	l.mu.Lock()
	node := l.topo.NodeByName(q.From)
	ns, ok := l.nsh[q.From]
	l.mu.Unlock()
	if node == nil || !ok {
		http.Error(w, l.noNode(q.From), http.StatusUnprocessableEntity)
		return
	}
	if q.To == node.Addr {
		// The node's kernel answers its own address itself: the probe
		// would be reported as "did not leave", blamed on a firewall.
		http.Error(w, fmt.Sprintf("trace: %s is %s's own address: a probe to it never leaves %s, so the dataplane has no path to show", q.To, q.From, q.From), http.StatusUnprocessableEntity)
		return
	}
	res, err := l.trace(r.Context(), q, header.AddrFromNetip(node.Addr), func(fn func() error) error { return build.Do(ns, fn) })
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, res)
}

// trace sends one probe from src (a node's address; inNS runs a function
// in its namespace) and follows it through the dataplane with a tap on
// its exact tuple.
func (l *runningLab) trace(ctx context.Context, q dataplane.VerifyQuery, src header.Addr, inNS func(func() error) error) (traceResult, error) {
	// A port from the top of the ephemeral range, where the node's own
	// connections rarely are; a clash is caught by bind and retried.
	var (
		key   nat.Key
		tap   *dataplane.Tap
		probe func() error
		err   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for try := 0; try < 8; try++ {
		port := uint16(50000 + rand.IntN(10000))
		key = nat.Key{Src: src, Dst: header.AddrFromNetip(q.To), SrcPort: port, DstPort: q.Port, Proto: q.Proto}
		if q.Proto == header.ProtoICMP {
			key.DstPort = port
		}
		if tap, err = l.engine.AddTap(dataplane.Match{Key: &key}); err != nil {
			return traceResult{}, err
		}
		if probe, err = openProbe(ctx, key, inNS); err == nil {
			break
		}
		l.engine.RemoveTap(tap)
		tap = nil
	}
	if tap == nil {
		return traceResult{}, fmt.Errorf("trace: opening the probe: %w", err)
	}
	defer l.engine.RemoveTap(tap)
	go probe()

	// Lists are [], not null, in --json, also when nothing was seen.
	res := traceResult{Flow: key.String(), Hops: []traceHop{}, Evaluated: []dataplane.VerifyStep{}}
	seen := map[string]bool{}
	wait := time.After(traceWait)
	for {
		select {
		case rec := <-tap.Records():
			// The connection's later packets carry the same tuple; only
			// the first packet from each node (the sender, then any
			// appliance that forwards it back) is a hop.
			if !seen[rec.In] {
				seen[rec.In] = true
				res.add(&rec)
			}
			wait = time.After(traceLinger)
			continue
		case <-wait:
		case <-ctx.Done():
			return res, ctx.Err()
		}
		break
	}
	if len(res.Hops) == 0 {
		res.Drop = "never reached the dataplane"
		res.Decision = "the probe did not leave " + q.From + " (its own firewall or routes?)"
	}
	return res, nil
}

// add folds one pass of the probe into the result; the last pass decides.
func (t *traceResult) add(r *dataplane.Record) {
	v := r.Explain()
	route := r.Route()
	if v.Evaluated == nil {
		v.Evaluated = []dataplane.VerifyStep{}
	}
	h := traceHop{From: r.In, Route: route, NSGs: v.Evaluated, NAT: r.NAT(), Out: r.Out, Drop: r.Drop, Left: tupleString(r.Xl)}
	t.Hops = append(t.Hops, h)
	t.Route, t.Evaluated, t.Decision, t.NAT = h.Route, v.Evaluated, v.Decision, h.NAT
	// A packet neither dropped nor handed on was for the dataplane itself,
	// a gateway address, which answered it (a ping).
	t.Translation, t.Drop, t.ToNode, t.Delivered = h.Left, r.Drop, r.Out, r.Drop == ""
}

// tupleString is a key without its protocol, as `emulator flows` prints it.
func tupleString(k nat.Key) string {
	s := k.String()
	for i := range s {
		if s[i] == ' ' {
			return s[i+1:]
		}
	}
	return s
}

// openProbe opens, in the node's namespace, the socket the probe leaves
// from, bound to the key's source port, and returns the function that
// sends it: a TCP connect (its SYN), a UDP datagram, or an ICMP echo
// request with the key's identifier.
func openProbe(ctx context.Context, k nat.Key, inNS func(func() error) error) (func() error, error) {
	local := k.Src.Netip()
	dst := k.Dst.Netip()
	switch k.Proto {
	case header.ProtoTCP:
		// Binding now reserves the port; connect then sends the SYN.
		var d net.Dialer
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice(), Port: int(k.SrcPort)}
		ln, err := listenCheck(inNS, "tcp", d.LocalAddr.String())
		if err != nil {
			return nil, err
		}
		ln.Close()
		return func() error {
			return inNS(func() error {
				c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(dst.String(), fmt.Sprint(k.DstPort)))
				if err == nil {
					c.Close()
				}
				return err
			})
		}, nil
	case header.ProtoUDP:
		var c *net.UDPConn
		err := inNS(func() error {
			var err error
			c, err = net.DialUDP("udp4", &net.UDPAddr{IP: local.AsSlice(), Port: int(k.SrcPort)}, &net.UDPAddr{IP: dst.AsSlice(), Port: int(k.DstPort)})
			return err
		})
		if err != nil {
			return nil, err
		}
		return func() error {
			defer c.Close()
			_, err := c.Write([]byte("emulator trace\n"))
			time.Sleep(traceWait)
			return err
		}, nil
	default:
		var c net.PacketConn
		err := inNS(func() error {
			var err error
			c, err = net.ListenPacket("ip4:icmp", local.String())
			return err
		})
		if err != nil {
			return nil, err
		}
		msg := []byte{header.ICMPEchoRequest, 0, 0, 0, 0, 0, 0, 1}
		binary.BigEndian.PutUint16(msg[4:], k.SrcPort)
		msg = append(msg, "emulator trace"...)
		binary.BigEndian.PutUint16(msg[2:], ^header.Checksum(msg, 0))
		return func() error {
			defer c.Close()
			_, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()})
			time.Sleep(traceWait)
			return err
		}, nil
	}
}

// listenCheck binds address in the namespace, to learn whether the port is
// free before the probe uses it.
func listenCheck(inNS func(func() error) error, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}
