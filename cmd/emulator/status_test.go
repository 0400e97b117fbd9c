package main

import (
	"testing"

	"github.com/aseemu/emulator/dataplane"
)

// The status line names how the workers read and, where they do not use
// io_uring, why.
func TestReaderLine(t *testing.T) {
	for _, c := range []struct {
		r    dataplane.ReaderStatus
		want string
	}{
		{dataplane.ReaderStatus{Workers: []string{"io_uring"}}, "1 worker reading through io_uring"},
		{dataplane.ReaderStatus{Workers: []string{"io_uring", "io_uring"}}, "2 workers reading through io_uring"},
		{dataplane.ReaderStatus{Workers: []string{"epoll"}}, "1 worker reading through epoll (up --io-uring=false)"},
		{dataplane.ReaderStatus{Workers: []string{"epoll", "epoll"}, NoIOURing: "io_uring_setup: operation not permitted"},
			"2 workers reading through epoll (io_uring failed: io_uring_setup: operation not permitted)"},
		{dataplane.ReaderStatus{Workers: []string{"io_uring", "epoll"}, NoIOURing: "io_uring_setup: cannot allocate memory"},
			"1 worker reading through io_uring, 1 worker reading through epoll (io_uring failed: io_uring_setup: cannot allocate memory)"},
		{dataplane.ReaderStatus{Workers: []string{"goroutines"}}, "1 without a worker (a goroutine per queue)"},
		{dataplane.ReaderStatus{}, "no workers"},
	} {
		if got := readerLine(c.r); got != c.want {
			t.Errorf("readerLine(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
}
