package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/flowlog"
)

// flowLogs is a lab's NSG flow logging, on or off.
type flowLogs struct {
	mu   sync.Mutex
	w    *flowlog.Writer
	sub  *dataplane.FlowEvents
	stop chan struct{}
	done chan struct{}
}

// flowLogStatus is what `status` and `flowlog` show.
type flowLogStatus struct {
	Enabled   bool   `json:"enabled"`
	Directory string `json:"directory,omitempty"`
	Current   string `json:"current,omitempty"` // the file of the minute being written
	Lost      uint64 `json:"lost,omitempty"`    // events dropped because the writer lagged
	NoNSG     bool   `json:"noNSG,omitempty"`   // no NSG is attached anywhere: nothing to log
}

func flowLogDir(lab string) string { return filepath.Join(labDir(lab), "flowlogs") }

// set turns flow logging on or off.
func (f *flowLogs) set(l *runningLab, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on == (f.sub != nil) {
		return
	}
	if !on {
		l.engine.StopFlowEvents(f.sub)
		close(f.stop)
		<-f.done
		f.w.Forget()
		f.sub = nil
		return
	}
	if f.w == nil {
		f.w = flowlog.New(flowLogDir(l.name), l.name)
	}
	f.sub = l.engine.StartFlowEvents()
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	go func(sub *dataplane.FlowEvents, stop, done chan struct{}) {
		defer close(done)
		f.w.Run(sub, stop)
	}(f.sub, f.stop, f.done)
}

func (f *flowLogs) status(e *dataplane.Engine) flowLogStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := flowLogStatus{Enabled: f.sub != nil, NoNSG: true}
	for _, g := range e.NSGStats() {
		if len(g.Subnets) > 0 || len(g.NICs) > 0 {
			st.NoNSG = false
		}
	}
	if f.w != nil {
		st.Directory, st.Current = f.w.Dir(), f.w.Current()
	}
	if f.sub != nil {
		st.Lost = f.sub.Lost()
	}
	return st
}

func cmdFlowlog(args []string, stdout io.Writer) error {
	fs, name := newFlags("flowlog")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args, name)
	if err != nil {
		return err
	}
	var req struct {
		Enabled *bool `json:"enabled,omitempty"`
	}
	switch {
	case len(pos) == 1 && (pos[0] == "on" || pos[0] == "off"):
		on := pos[0] == "on"
		req.Enabled = &on
	case len(pos) == 0:
	default:
		return usagef("flowlog: usage: %s flowlog [--name LAB] [on|off] [--json]", prog)
	}
	if err := needRoot("flowlog"); err != nil {
		return err
	}
	var st flowLogStatus
	if err := controlPost(*name, "/flowlog", req, &st); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, st)
	}
	printFlowLogs(stdout, st, *name)
	return nil
}

func printFlowLogs(w io.Writer, st flowLogStatus, lab string) {
	if !st.Enabled {
		fmt.Fprintf(w, "NSG flow logs: off (turn on with: "+self+" flowlog%s on)\n", labFlag(lab))
		return
	}
	fmt.Fprintf(w, "NSG flow logs: on, version 2, one file a minute under %s", st.Directory)
	if st.Current != "" {
		fmt.Fprintf(w, "; now %s", st.Current)
	}
	if st.Lost > 0 {
		fmt.Fprintf(w, "; %d events lost", st.Lost)
	}
	if st.NoNSG {
		// Azure logs per NSG: a lab without one has nothing to log.
		fmt.Fprint(w, "; no NSG is attached to a subnet or NIC, so nothing is logged")
	}
	fmt.Fprintln(w)
}

func (l *runningLab) handleFlowlog(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if !readJSON(w, r, 1<<16, &req) {
		return
	}
	if req.Enabled != nil {
		l.flowLogs.set(l, *req.Enabled)
	}
	writeJSON(w, l.flowLogs.status(l.engine))
}
