package dataplane

import "testing"

// Status's line names how the workers read and, where they do not use
// io_uring, why.
func TestReaderStatusString(t *testing.T) {
	for _, c := range []struct {
		r    ReaderStatus
		want string
	}{
		{ReaderStatus{Workers: []string{"io_uring"}}, "1 worker reading through io_uring"},
		{ReaderStatus{Workers: []string{"io_uring", "io_uring"}}, "2 workers reading through io_uring"},
		{ReaderStatus{Workers: []string{"epoll"}, Epoll: true}, "1 worker reading through epoll (up --io-uring=false)"},
		{ReaderStatus{Workers: []string{"epoll", "epoll"}, NoIOURing: "io_uring_setup: operation not permitted"},
			"2 workers reading through epoll (io_uring failed: io_uring_setup: operation not permitted)"},
		{ReaderStatus{Workers: []string{"io_uring", "epoll"}, NoIOURing: "io_uring_setup: cannot allocate memory"},
			"1 worker reading through io_uring, 1 worker reading through epoll (io_uring failed: io_uring_setup: cannot allocate memory)"},
		{ReaderStatus{Workers: []string{"goroutines"}}, "1 without a worker (a goroutine per queue)"},
		{ReaderStatus{}, "no workers"},
	} {
		if got := c.r.String(); got != c.want {
			t.Errorf("%+v.String() = %q, want %q", c.r, got, c.want)
		}
	}
}
