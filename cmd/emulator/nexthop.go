package main

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"github.com/aseemu/emulator/dataplane"
)

// nexthopRequest is `emulator nexthop`'s question.
type nexthopRequest struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// cmdNexthop answers like Network Watcher's next hop: the hop type, its
// address, and the route that decided, from the dataplane's own tables.
func cmdNexthop(args []string, stdout io.Writer) error {
	fs, name := newFlags("nexthop")
	var q nexthopRequest
	fs.StringVar(&q.From, "from", "", "node")
	fs.StringVar(&q.To, "to", "", "destination address")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if q.From == "" || fs.NArg() > 0 {
		return usagef("nexthop: usage: emulator nexthop [--name LAB] --from NODE --to ADDR [--json]")
	}
	if a, err := netip.ParseAddr(q.To); err != nil || !a.Is4() {
		return usagef("nexthop: --to %q: want an IPv4 address", q.To)
	}
	if err := needRoot("nexthop"); err != nil {
		return err
	}
	var nh dataplane.NextHop
	if err := controlPost(*name, "/nexthop", q, &nh); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, nh)
	}
	fmt.Fprintf(stdout, "Next hop type: %s\n", nh.Type)
	if nh.IPAddress != "" {
		fmt.Fprintf(stdout, "Next hop IP address: %s\n", nh.IPAddress)
	}
	fmt.Fprintf(stdout, "Route: %s", nh.Route)
	if nh.Prefix != "" {
		fmt.Fprintf(stdout, " (%s)", nh.Prefix)
	}
	fmt.Fprintln(stdout)
	return nil
}

func (l *runningLab) handleNexthop(w http.ResponseWriter, r *http.Request) {
	var q nexthopRequest
	if !readJSON(w, r, 1<<16, &q) {
		return
	}
	to, err := netip.ParseAddr(q.To)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	nh, ok := l.engine.NextHop(q.From, to)
	if !ok {
		http.Error(w, fmt.Sprintf("lab %s has no node %q", l.name, q.From), http.StatusUnprocessableEntity)
		return
	}
	// The dataplane answers VnetLocal for a node without a subnet (it
	// delivers by destination alone), which is no route a user could find
	// on an Internet or on-premises host.
	l.mu.Lock()
	n := l.topo.NodeByName(q.From)
	l.mu.Unlock()
	if n != nil && n.Subnet == nil {
		http.Error(w, fmt.Sprintf("nexthop: %s is not in a VNet (a node of kind %s): next hop reads the routes of a VNet subnet; ask from a machine in one", q.From, n.Kind), http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, nh)
}
