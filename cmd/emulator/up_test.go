package main

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aseemu/emulator/topology"
)

// up refuses a --busy-poll outside 0..1ms as a usage error, before it
// reads the topology (a missing file here, so that up without the check
// fails on that and builds nothing).
func TestUpBusyPollRange(t *testing.T) {
	for _, v := range []string{"-1us", "2ms", "1s"} {
		err := cmdUp([]string{"--name", "t", "-f", "/nonexistent/lab.yaml", "--busy-poll", v}, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--busy-poll") {
			t.Errorf("--busy-poll %s: %v, want a usage error naming the flag", v, err)
		}
	}
}

// A topology file that cannot be read is a bad topology (SPEC §5: exit 2),
// named in the message, for every command that takes -f.
func TestUnreadableTopologyExitsTwo(t *testing.T) {
	dir := t.TempDir()
	for _, file := range []string{filepath.Join(dir, "missing.yaml"), dir} {
		for _, args := range [][]string{
			{"up", "-d", "--name", "t", "-f", file},
			{"apply", "--name", "t", "-f", file},
			{"graph", "-f", file},
		} {
			var stderr strings.Builder
			code := run(args, io.Discard, &stderr)
			if code != exitUsage || !strings.Contains(stderr.String(), "cannot read the topology file "+file+": ") {
				t.Errorf("emulator %s: exit %d, %q; want exit 2 naming the file", strings.Join(args, " "), code, stderr.String())
			}
		}
	}
}

// The services of the default lab, under the 20,000 descriptors Go raises
// the soft limit to on a machine like this one, may hold as many
// connections as ase1's four instances have SNAT ports (F17: 1,024 each):
// echo must not refuse an ASE's calls before its SNAT ports run out. The
// reserve follows the lab rather than the largest lab the emulator
// accepts, which would have cut them to an eighth of the limit.
func TestDescriptorReserveLeavesAnASEsSNATPorts(t *testing.T) {
	const limit = 20000
	d := topology.Default()
	reserve := descriptorReserve(d, autoQueues(len(d.Nodes)))
	if budget := (limit - reserve) / 2; budget < 4*1024 {
		t.Errorf("default lab: reserve %d leaves the services %d connections of %d descriptors, fewer than ase1's 4 × 1,024 SNAT ports", reserve, budget, limit)
	}
	// An apply that adds nodes makes the reserve grow with them.
	if bigger := descriptorReserve(threeTimes(d), 1); bigger <= descriptorReserve(d, 1) {
		t.Errorf("a lab with more nodes reserves %d, no more than the default lab's %d", bigger, descriptorReserve(d, 1))
	}
}

func threeTimes(t *topology.Topology) *topology.Topology {
	c := *t
	c.Nodes = append(append(append([]*topology.Node{}, t.Nodes...), t.Nodes...), t.Nodes...)
	return &c
}
