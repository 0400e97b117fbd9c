package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
)

// verifyRequest is `emulator verify`'s question, as sent to the lab.
type verifyRequest struct {
	From      string `json:"from"`
	To        string `json:"to"` // ADDR or ADDR:PORT
	Proto     string `json:"proto"`
	Direction string `json:"direction"`
}

// probeFlags registers the flags of a command about one flow (verify,
// trace): --from, --to, --proto and --json.
func probeFlags(fs *flag.FlagSet, q *verifyRequest) (asJSON *bool) {
	fs.StringVar(&q.From, "from", "", "node the flow starts from")
	fs.StringVar(&q.To, "to", "", "destination ADDR[:PORT] (ADDR for icmp)")
	fs.StringVar(&q.Proto, "proto", "tcp", "tcp, udp or icmp")
	return fs.Bool("json", false, "print JSON")
}

// parseProbe parses what probeFlags registered, checks the flow it names,
// and that the command runs as root; usage is the command's synopsis.
func parseProbe(fs *flag.FlagSet, args []string, name *string, q *verifyRequest, usage string) error {
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if q.From == "" || q.To == "" || fs.NArg() > 0 {
		return usagef("%s: usage: %s", fs.Name(), usage)
	}
	if _, err := q.query(); err != nil {
		return badDestination(fs.Name(), *name, q.To, true, err)
	}
	return needRoot(fs.Name())
}

func cmdVerify(args []string, stdout io.Writer) error {
	fs, name := newFlags("verify")
	var q verifyRequest
	asJSON := probeFlags(fs, &q)
	fs.StringVar(&q.Direction, "direction", "both", "outbound (at the source), inbound (at the destination) or both")
	if err := parseProbe(fs, args, name, &q, prog+" verify [--name LAB] --from NODE --to ADDR[:PORT] [--proto tcp|udp|icmp] [--direction inbound|outbound|both]"); err != nil {
		return err
	}
	var r dataplane.VerifyResult
	if err := controlPost(*name, "/verify", q, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, r)
	}
	verdict := "Deny"
	if r.Allow {
		verdict = "Allow"
	}
	fmt.Fprintf(stdout, "%s: %s\n", verdict, r.Decision)
	fmt.Fprintf(stdout, "  flow: %s %s -> %s, leaving as %s", q.Proto, q.From, q.To, r.Translation)
	if r.ToNode != "" {
		fmt.Fprintf(stdout, ", to %s", r.ToNode)
	}
	fmt.Fprintln(stdout)
	for _, st := range r.Evaluated {
		fmt.Fprintf(stdout, "  %-8s %-8s %s %s/%s (priority %d): %s\n", st.Direction, st.Node, st.Attached, st.NSG, st.Rule, st.Priority, st.Access)
	}
	return nil
}

// destination parses the --to of verify, trace and nexthop: an IPv4
// address, with :PORT where the command takes one (portOK).
func destination(to string, portOK bool) (a netip.Addr, port string, hasPort bool, err error) {
	host, port, hasPort := strings.Cut(to, ":")
	a, err = netip.ParseAddr(host)
	if err != nil || !a.Is4() || hasPort && !portOK {
		if portOK {
			return a, "", false, fmt.Errorf("--to %q: want an IPv4 address, optionally with :PORT", to)
		}
		return a, "", false, fmt.Errorf("--to %q: want an IPv4 address", to)
	}
	return a, port, hasPort, nil
}

// badDestination is cmd's usage error for a --to that err refused. A
// learner names the machine they mean ("--to echo:80"): when the host part
// is one of lab's nodes, the error gives the address to type instead.
func badDestination(cmd, lab, to string, portOK bool, err error) error {
	host, port, hasPort := strings.Cut(to, ":")
	if _, perr := netip.ParseAddr(host); perr != nil {
		if st, serr := readState(lab); serr == nil {
			if addr, ok := nodeAddress(st.Nodes, host); ok {
				if hasPort && portOK {
					addr += ":" + port
				}
				return usagef("%s: --to %q: %s is a node; give its address: --to %s", cmd, to, host, addr)
			}
		}
	}
	return usagef("%s: %v", cmd, err)
}

func nodeAddress(nodes []nodeState, name string) (string, bool) {
	for _, n := range nodes {
		if n.Name == name {
			return n.Address, true
		}
	}
	return "", false
}

// query turns the request into the engine's question.
func (q verifyRequest) query() (dataplane.VerifyQuery, error) {
	v := dataplane.VerifyQuery{From: q.From}
	a, port, hasPort, err := destination(q.To, true)
	if err != nil {
		return v, err
	}
	v.To = a
	switch strings.ToLower(q.Proto) {
	case "tcp":
		v.Proto = header.ProtoTCP
	case "udp":
		v.Proto = header.ProtoUDP
	case "icmp":
		v.Proto = header.ProtoICMP
	default:
		return v, fmt.Errorf("--proto %q: want tcp, udp or icmp", q.Proto)
	}
	if hasPort {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return v, fmt.Errorf("--to %q: bad port", q.To)
		}
		v.Port = uint16(p)
	} else if v.Proto != header.ProtoICMP {
		return v, fmt.Errorf("--to %q: give a port for %s", q.To, q.Proto)
	}
	switch strings.ToLower(q.Direction) {
	case "both", "":
		v.Directions = []nsg.Direction{nsg.Outbound, nsg.Inbound}
	default:
		d, err := nsg.ParseDirection(q.Direction)
		if err != nil {
			return v, fmt.Errorf("--direction %q: want inbound, outbound or both", q.Direction)
		}
		v.Directions = []nsg.Direction{d}
	}
	return v, nil
}

// readQuery reads a verify or trace request into its query; on failure it
// answers 400 or 422 and returns false.
func readQuery(w http.ResponseWriter, r *http.Request) (dataplane.VerifyQuery, bool) {
	var req verifyRequest
	if !readJSON(w, r, 1<<16, &req) {
		return dataplane.VerifyQuery{}, false
	}
	q, err := req.query()
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return q, false
	}
	return q, true
}

func (l *runningLab) handleVerify(w http.ResponseWriter, r *http.Request) {
	q, ok := readQuery(w, r)
	if !ok {
		return
	}
	if !l.hasNode(q.From) {
		http.Error(w, l.noNode(q.From), http.StatusUnprocessableEntity)
		return
	}
	res, err := l.engine.Verify(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	if res.Evaluated == nil {
		res.Evaluated = []dataplane.VerifyStep{} // [], not null, in --json
	}
	writeJSON(w, res)
}

// hasNode reports whether the lab has a node of that name now (apply may
// add and remove nodes).
func (l *runningLab) hasNode(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.topo.NodeByName(name) != nil
}

// noNode refuses a node name the lab does not have as exec does.
func (l *runningLab) noNode(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for _, n := range l.topo.Nodes {
		names = append(names, n.Name)
	}
	return noSuchNode(l.name, name, names)
}

// noSuchNode says that lab has no node called node, and lists the nodes it
// has, so that a typo says what to write instead.
func noSuchNode(lab, node string, nodes []string) string {
	sort.Strings(nodes)
	return fmt.Sprintf("lab %s has no node %q; its nodes are: %s", lab, node, strings.Join(nodes, ", "))
}
