package main

// The Go micro-benchmarks of the established-flow path, the NSG check and
// conntrack memory, run with `go test -bench` and parsed from its output.

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// benchLine is one result line of `go test -bench`.
type benchLine struct {
	pkg     string
	name    string // without the -GOMAXPROCS suffix
	metrics map[string]float64
}

// parseBench reads `go test -bench` output.
func parseBench(out string) []benchLine {
	var lines []benchLine
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if p, ok := strings.CutPrefix(l, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		b := benchLine{pkg: pkg, name: name, metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			b.metrics[f[i+1]] = v
		}
		lines = append(lines, b)
	}
	return lines
}

func runMicro(cfg *config, res *results) {
	logf("bench: Go micro-benchmarks (go test -bench, -count %d)", cfg.microCount)
	args := []string{"test", "-p", "1", "-run", "^$", "-bench", "BenchmarkForward|BenchmarkEstablished|BenchmarkCheck|BenchmarkMemoryPerFlow",
		"-benchmem", "-benchtime", cfg.benchtime, "-count", strconv.Itoa(cfg.microCount),
		"./dataplane/", "./dataplane/nsg/", "./nat/"}
	res.microCmd = cfg.goCmd + " " + strings.Join(args, " ")
	t0 := time.Now()
	out, err := runT(8*time.Minute, cfg.goCmd, args...)
	logf("bench: micro-benchmarks took %s", time.Since(t0).Round(time.Second))
	if err != nil {
		res.microErr = err.Error()
		logf("bench: micro-benchmarks: %v", err)
	}
	for _, b := range parseBench(out) {
		key := shortPkg(b.pkg) + "." + b.name
		m := res.micro[key]
		if m == nil {
			m = map[string][]float64{}
			res.micro[key] = m
			res.microOrder = append(res.microOrder, key)
		}
		for unit, v := range b.metrics {
			m[unit] = append(m[unit], v)
		}
	}
	if len(res.micro) == 0 && res.microErr == "" {
		res.microErr = fmt.Sprintf("no benchmark result in the output of %s", res.microCmd)
	}
}

func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/aseemu/emulator/")
}
