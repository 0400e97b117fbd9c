package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/graph"
)

// cmdGraph draws a lab from its topology: -f FILE, else, with --name, the
// file that lab was started from, else the default lab. It needs no root and
// no running lab.
func cmdGraph(args []string, stdout io.Writer) error {
	fs, name := newFlags("graph")
	file := fs.String("f", "", "topology file (default: the lab's, or the default lab)")
	format := fs.String("format", "dot", "dot or mermaid")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("graph: usage: emulator graph [-f FILE | --name LAB] [--format dot|mermaid]")
	}
	render := map[string]func(*topology.Topology) string{"dot": graph.Dot, "mermaid": graph.Mermaid}[strings.ToLower(*format)]
	if render == nil {
		return usagef("graph: --format %q: want dot or mermaid", *format)
	}
	path := *file
	named := false
	fs.Visit(func(f *flag.Flag) { named = named || f.Name == "name" })
	if path == "" && named {
		// The named lab's own file, when it was started from one.
		st, err := readState(*name)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("graph: lab %s is not running (draw a file with: emulator graph -f FILE)", *name)
		}
		if errors.Is(err, os.ErrPermission) {
			return usagef("graph --name needs root to read lab %s's state: run it with sudo, or draw a file with: emulator graph -f FILE", *name)
		}
		if err != nil {
			return err
		}
		if strings.HasPrefix(st.Topology, "/") {
			path = st.Topology
		}
	}
	t, _, err := loadTopology(path)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(stdout, render(t))
	return err
}
