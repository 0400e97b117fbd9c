package main

// CPU time, of one process and of the whole machine, from /proc.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// procCPU is the CPU time a process has used, in seconds: in user space,
// and in the kernel on its behalf (system calls, and the packet work they
// run, such as a TUN write's delivery into the receiving node's stack).
type procCPU struct{ user, sys float64 }

func (c procCPU) total() float64 { return c.user + c.sys }

func (c procCPU) sub(d procCPU) procCPU { return procCPU{c.user - d.user, c.sys - d.sys} }

// readProcCPU reads utime and stime from /proc/PID/stat: clock ticks of
// USER_HZ, which is 100 on every Linux architecture the project builds for.
func readProcCPU(pid int) (procCPU, error) {
	f, err := statFields(pid)
	if err != nil {
		return procCPU{}, err
	}
	// utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: %q %q", pid, f[11], f[12])
	}
	return procCPU{float64(utime) / 100, float64(stime) / 100}, nil
}

// cpuSeconds is a process's CPU time, user and system, in seconds.
func cpuSeconds(pid int) (float64, error) {
	c, err := readProcCPU(pid)
	return c.total(), err
}

// cpuTimes is the whole machine's time from /proc/stat's first line, in
// clock ticks summed over its CPUs. Steal (time the hypervisor gave to other
// guests) is in neither part: it is not this machine's to spend.
type cpuTimes struct {
	busy, idle uint64 // idle includes iowait
	cpus       int
}

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(string(b))
}

func parseCPUTimes(stat string) (cpuTimes, error) {
	var t cpuTimes
	total := false
	for line := range strings.Lines(stat) {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || !strings.HasPrefix(f[0], "cpu"):
		case f[0] != "cpu":
			t.cpus++
		case len(f) < 8:
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q", strings.TrimSpace(line))
		default:
			// user nice system idle iowait irq softirq; guest time is
			// already inside user.
			var v [7]uint64
			for i := range v {
				n, err := strconv.ParseUint(f[i+1], 10, 64)
				if err != nil {
					return cpuTimes{}, fmt.Errorf("/proc/stat: %q", strings.TrimSpace(line))
				}
				v[i] = n
			}
			t.busy = v[0] + v[1] + v[2] + v[5] + v[6]
			t.idle = v[3] + v[4]
			total = true
		}
	}
	if !total || t.cpus == 0 {
		return cpuTimes{}, errors.New("/proc/stat: no cpu lines")
	}
	return t, nil
}

// busyCPUs is how many CPUs were busy on average between two readings.
func busyCPUs(a, b cpuTimes) float64 {
	busy, idle := b.busy-a.busy, b.idle-a.idle
	if busy+idle == 0 {
		return math.NaN()
	}
	return float64(b.cpus) * float64(busy) / float64(busy+idle)
}

// cpuSample is what the CPUs did over a span of a measurement: how many of
// the machine's were busy, and (on the emulator path) how much of that was
// the dataplane process, in CPUs; dp is zero when there is no dataplane.
type cpuSample struct {
	busy float64
	dp   procCPU
}

// sampleCPU waits, then reads the machine's CPU time and process pid's
// (none when pid is 0) over the next span. Its busy is NaN when the span
// is empty or /proc cannot be read.
func sampleCPU(wait, span time.Duration, pid int) cpuSample {
	bad := cpuSample{busy: math.NaN()}
	if span <= 0 {
		return bad
	}
	time.Sleep(wait)
	a, err := readCPUTimes()
	if err != nil {
		return bad
	}
	var pa, pb procCPU
	if pid != 0 {
		if pa, err = readProcCPU(pid); err != nil {
			return bad
		}
	}
	t0 := time.Now()
	time.Sleep(span)
	b, err := readCPUTimes()
	if err != nil {
		return bad
	}
	if pid != 0 {
		if pb, err = readProcCPU(pid); err != nil {
			return bad
		}
	}
	secs := time.Since(t0).Seconds()
	d := pb.sub(pa)
	return cpuSample{busy: busyCPUs(a, b), dp: procCPU{d.user / secs, d.sys / secs}}
}
