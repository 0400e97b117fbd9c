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

// cpuSeconds is the CPU time a process has used, user and system, from
// /proc/PID/stat: clock ticks of USER_HZ, which is 100 on every Linux
// architecture the project builds for.
func cpuSeconds(pid int) (float64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	// utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q %q", pid, f[11], f[12])
	}
	return float64(utime+stime) / 100, nil
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

// sampleBusy waits, then reports busyCPUs over the next span; NaN when the
// span is empty or /proc/stat cannot be read.
func sampleBusy(wait, span time.Duration) float64 {
	if span <= 0 {
		return math.NaN()
	}
	time.Sleep(wait)
	a, err := readCPUTimes()
	if err != nil {
		return math.NaN()
	}
	time.Sleep(span)
	b, err := readCPUTimes()
	if err != nil {
		return math.NaN()
	}
	return busyCPUs(a, b)
}
