package main

// How the scheduler passed work between the CPUs, from /proc, counted
// around the round trips: PERFORMANCE.md (Round trips) says what the counts
// showed of the emulator's fast and slow rounds.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// handoffs counts, over a span, the machine's cross-CPU interrupts (a
// wake-up or a call sent to the other CPU) and the dataplane's threads'
// preemptions (another program, such as a woken endpoint, taking its CPU).
type handoffs struct{ ipis, preempted float64 }

// handoffsDuring runs f and counts the hand-offs meanwhile.
func (p *path) handoffsDuring(f func() error) (handoffs, error) {
	before := p.readHandoffs()
	if err := f(); err != nil {
		return handoffs{}, err
	}
	after := p.readHandoffs()
	return handoffs{ipis: after.ipis - before.ipis, preempted: after.preempted - before.preempted}, nil
}

// readHandoffs reads the counts as they stand. One this machine does not
// give (no RES and CAL rows, as on arm64), or that the path does not have
// (preempted, without a dataplane), is NaN, and so is any difference with
// it: they explain the figure a run measures, and must not cost it.
func (p *path) readHandoffs() handoffs {
	h := handoffs{ipis: math.NaN(), preempted: math.NaN()}
	if n, err := readIPIs(); err == nil {
		h.ipis = n
	}
	if p.dataplane != 0 {
		if n, err := preemptions(p.dataplane); err == nil {
			h.preempted = n
		}
	}
	return h
}

func readIPIs() (float64, error) {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		return 0, err
	}
	return parseIPIs(string(b))
}

// parseIPIs sums /proc/interrupts' rescheduling (RES) and function-call
// (CAL) interrupts over the CPUs: how a wake-up or a remote call reaches
// another CPU. A row's counts are the fields after its name up to the
// first that is not a number, its description.
func parseIPIs(text string) (float64, error) {
	var sum float64
	found := 0
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 || (f[0] != "RES:" && f[0] != "CAL:") {
			continue
		}
		found++
		for _, s := range f[1:] {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				break
			}
			sum += float64(n)
		}
	}
	if found != 2 {
		return 0, fmt.Errorf("/proc/interrupts: %d of the RES and CAL rows", found)
	}
	return sum, nil
}

// preemptions sums nonvoluntary_ctxt_switches over a process's threads:
// the times one was switched out while it could still run.
func preemptions(pid int) (float64, error) {
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("threads of %d: %v", pid, err)
	}
	var sum float64
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended meanwhile; the dataplane's are long-lived
		}
		n, err := statusField(string(b), "nonvoluntary_ctxt_switches")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
		sum += n
	}
	return sum, nil
}

// statusField is the number after "name:" in a /proc status file, its
// unit (VmRSS's kB) left out.
func statusField(status, name string) (float64, error) {
	for line := range strings.Lines(status) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s", name)
}
