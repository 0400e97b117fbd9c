// Package leakcheck fails a service's tests if goroutines outlive them: a
// service runs for the life of a lab and is restarted on every reload, so a
// goroutine that Close leaves behind is a leak that grows with each one.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then waits up to five seconds for the goroutines they
// started to end, and fails the run with their stacks if some do not.
// Use it as: func TestMain(m *testing.M) { leakcheck.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := wait(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines still running after the tests:\n\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func wait(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaked := others()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// others returns the stacks of the goroutines, other than this one, that
// run the project's code, net/http's or miekg/dns's: those a service starts.
func others() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	// The first stack is this goroutine's.
	for _, g := range strings.Split(string(buf), "\n\n")[1:] {
		for _, mark := range []string{"github.com/aseemu/emulator/", "net/http.", "github.com/miekg/dns."} {
			if strings.Contains(g, mark) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}
