package main

import (
	"errors"
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
	if q.From == "" || q.To == "" || fs.NArg() > 0 {
		return usagef("nexthop: usage: %s nexthop [--name LAB] --from NODE --to ADDR [--json]", prog)
	}
	if _, _, _, err := destination(q.To, false); err != nil {
		return badDestination("nexthop", *name, q.To, false, err)
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
	nh, err := l.engine.NextHop(q.From, to)
	switch {
	case errors.Is(err, dataplane.ErrNoNode):
		http.Error(w, l.noNode(q.From), http.StatusUnprocessableEntity)
		return
	case err != nil:
		http.Error(w, "nexthop: "+err.Error(), http.StatusUnprocessableEntity)
		return
	}
	writeJSON(w, nh)
}
