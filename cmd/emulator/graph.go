package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/aseemu/emulator/topology"
	"github.com/aseemu/emulator/topology/graph"
)

// cmdGraph draws a lab from its topology: -f FILE, else, with --name, the
// topology that lab runs, else the default lab. Only --name needs root and
// a running lab.
func cmdGraph(args []string, stdout, stderr io.Writer) error {
	fs, name := newFlags("graph")
	file := fs.String("f", "", "topology file, - for standard input (default: the running lab's with --name, or the default lab)")
	format := fs.String("format", "dot", "dot or mermaid")
	if err := parseFlags(fs, args, name); err != nil {
		return err
	}
	if err := fileArgs(fs, *file); err != nil {
		return err
	}
	*format = strings.ToLower(*format)
	if graphRenderers[*format] == nil {
		return usagef("graph: --format %q: want dot or mermaid", *format)
	}
	named := flagGiven(fs, "name")
	if *file != "" && named {
		// Drawing the file would pass it off as what lab --name runs.
		return usagef("graph: -f %s and --name %s: draw either a file (-f) or what a running lab runs (--name), not both", *file, *name)
	}
	if *file == "" && named {
		return graphOfLab(*name, *format, stdout)
	}
	t, _, err := loadTopology(*file)
	if err != nil {
		return err
	}
	// On stderr, so that graph -f FILE > lab.dot draws and still warns.
	for _, warn := range labWarnings(t) {
		fmt.Fprintf(stderr, "emulator: warning: %s\n", warn)
	}
	_, err = fmt.Fprint(stdout, graphRenderers[*format](t))
	return err
}

var graphRenderers = map[string]func(*topology.Topology) string{"dot": graph.Dot, "mermaid": graph.Mermaid}

// graphOfLab has the running lab draw the topology it runs. Its file may
// have changed since up or apply read it, and a drawing of the file would
// show a lab that does not run.
func graphOfLab(name, format string, stdout io.Writer) error {
	if os.Geteuid() != 0 {
		return usagef("graph --name needs root to ask lab %s what it runs: run it with sudo, or draw a file with: "+self+" graph -f FILE", name)
	}
	if !labRunning(name) {
		return fmt.Errorf("graph: lab %s is not running (draw a file with: "+self+" graph -f FILE)", name)
	}
	resp, err := controlDo(name, http.MethodGet, "/graph?"+url.Values{"format": {format}}.Encode(), nil, queryTimeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(stdout, resp.Body)
	return err
}

// handleGraph draws the topology the lab runs, as apply last left it.
func (l *runningLab) handleGraph(w http.ResponseWriter, r *http.Request) {
	render := graphRenderers[r.URL.Query().Get("format")]
	if render == nil {
		http.Error(w, "graph: want format dot or mermaid", http.StatusUnprocessableEntity)
		return
	}
	l.mu.Lock()
	t := l.topo
	l.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, render(t))
}
