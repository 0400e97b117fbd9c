package main

import (
	"errors"
	"io"
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
