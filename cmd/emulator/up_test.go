package main

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
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
