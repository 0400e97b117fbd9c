package nat

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapped returns n zeroed values of T in anonymous memory that the Go heap
// does not own, and that memory. T must hold no Go pointers: the garbage
// collector does not see into it.
//
// Why not make: the slab and the index are allocated whole for MaxFlows
// (56 MiB at the default 262,144 flows), and the collector counts all of
// it as live heap even while the kernel has backed only the pages flows
// touched. With GOGC=100 it then let garbage grow by as much before it
// collected: a default lab's dataplane, idle but for its probes and
// health checks, went from 29 MB resident at up to 86 MB two minutes
// later. Mapped here, the pages still cost nothing until a flow touches
// them, and the heap the collector paces is the rest of the process.
func mapped[T any](n int) ([]T, []byte, error) {
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if n <= 0 || size <= 0 {
		return nil, nil, fmt.Errorf("nat: cannot map %d entries", n)
	}
	mem := spare.take(size)
	if mem == nil {
		var err error
		mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return nil, nil, fmt.Errorf("nat: mapping %d bytes for the flow table: %w", size, err)
		}
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n), mem, nil
}

// spareWhenUnreachable hands t's mappings to spare once t is garbage.
//
// They are kept mapped, not returned to the kernel: a Flow does not hold
// its table (a pointer to it in Flow cost 2-4 ns a packet in
// BenchmarkEstablished), so a Flow used after its table was collected
// must still find memory there. It finds zeros, or a later table's
// entries: a state change it makes then fails on their generation, though
// its counters land there. The dataplane's one table lives as long as
// the process; only a test could drop a table and go on with its flows.
func spareWhenUnreachable(t *Table, mems ...[]byte) {
	runtime.AddCleanup(t, func(mems [][]byte) {
		for _, m := range mems {
			spare.put(m)
		}
	}, mems)
}

// spare holds the mappings of collected tables by size, emptied of their
// pages (MADV_DONTNEED reads back as zeros), for mapped to reuse: the
// process maps at most what its tables ever needed at once.
var spare = &spares{bySize: map[int][][]byte{}}

type spares struct {
	mu     sync.Mutex
	bySize map[int][][]byte
}

func (s *spares) put(mem []byte) {
	unix.Madvise(mem, unix.MADV_DONTNEED)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bySize[len(mem)] = append(s.bySize[len(mem)], mem)
}

func (s *spares) take(size int) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.bySize[size]
	if len(l) == 0 {
		return nil
	}
	mem := l[len(l)-1]
	s.bySize[size] = l[:len(l)-1]
	return mem
}
