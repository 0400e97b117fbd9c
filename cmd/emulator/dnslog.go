package main

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/dns"
	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/nat"
	"github.com/aseemu/emulator/topology"
)

func (l *runningLab) handleDNS(w http.ResponseWriter, r *http.Request) {
	filter, err := dataplane.ParseFilter(r.URL.Query().Get("filter"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	l.mu.Lock()
	var srv *dns.Server
	if l.svc != nil {
		srv = l.svc.dns
	}
	l.mu.Unlock()
	queries := []dns.Query{} // [], not null, in dns --json of a lab without queries
	if srv != nil {
		for _, q := range srv.Queries() {
			if filter.Match(queryKey(q)) {
				queries = append(queries, q)
			}
		}
	}
	writeJSON(w, queries)
}

// queryKey is the tuple of q's packets as the dataplane carried them to
// Azure DNS, so that --filter reads as flows' and capture's do.
func queryKey(q dns.Query) nat.Key {
	proto := uint8(header.ProtoUDP)
	if q.Proto == "tcp" {
		proto = header.ProtoTCP
	}
	return nat.Key{
		Src: header.AddrFromNetip(q.Client.Addr()), SrcPort: q.Client.Port(),
		Dst: header.AddrFromNetip(topology.PlatformAddr), DstPort: dns.DefaultPort, Proto: proto,
	}
}

func cmdDNS(args []string, stdout io.Writer) error {
	fs, name := newFlags("dns")
	asJSON := fs.Bool("json", false, "print JSON")
	filter := fs.String("filter", "", "only queries whose packets match: host ADDR, port N, tcp|udp, each perhaps after not, joined by and")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if _, err := dataplane.ParseFilter(*filter); err != nil {
		return usagef("dns: %v", err)
	}
	if err := needRoot("dns"); err != nil {
		return err
	}
	var queries []dns.Query
	if err := controlGet(*name, "/dns?"+url.Values{"filter": {*filter}}.Encode(), &queries); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, queries)
	}
	if len(queries) == 0 {
		if *filter != "" {
			fmt.Fprintf(stdout, "No queries match %q.\n", *filter)
			return nil
		}
		fmt.Fprintln(stdout, "No queries.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	// A query asked again is one line, at its last TIME: COUNT says how
	// many times it was asked (the ASEs' health checks, every 2 s).
	fmt.Fprintln(tw, "TIME\tCLIENT\tNAME\tTYPE\tRCODE\tANSWER\tCOUNT")
	for _, q := range queries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", q.Time.Local().Format("15:04:05"), cmp.Or(q.Node, q.Client.Addr().String()),
			cmp.Or(q.Name, "-"), cmp.Or(q.Type, "-"), q.Rcode, cmp.Or(strings.Join(q.Answers, ","), "-"), q.Count)
	}
	return tw.Flush()
}
