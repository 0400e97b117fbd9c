//go:build linux

package tun

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ring reads many queues through one io_uring: each queue has a multishot
// read armed (IORING_OP_READ_MULTISHOT), and every read takes a buffer
// from one ring of buffers shared by all the queues. One io_uring_enter
// then collects every packet that arrived since the last, where the
// Poller needs an epoll_wait, a read per packet and a read that finds the
// queue empty. On this project's VM, where a system call costs about
// 1.2 µs, that doubled the datagrams a worker forwards (the dataplane's
// ringWorker). A worker may also queue the writes of what it read
// (QueueWrite), so that they enter the kernel together with the next
// Enter rather than one write(2) each.
//
// A Ring belongs to the OS thread that made it (IORING_SETUP_SINGLE_ISSUER,
// which DEFER_TASKRUN needs): only Wake may be called from elsewhere. Its
// reads run when that thread calls Enter, not in whichever thread a
// packet's arrival interrupts.
//
// An armed read holds its queue's file open: a queue closed while its read
// is armed stays attached, and its interface stays up, until the read is
// cancelled. So Cancel every token, and see its last completion, before
// closing the queue.
type Ring struct {
	fd   int
	wake int // an eventfd polled under WakeToken

	rings []byte // the SQ and CQ rings, one mapping (IORING_FEAT_SINGLE_MMAP)
	sqes  []byte
	sq    struct {
		head, tail *uint32
		mask       uint32
		array      unsafe.Pointer
		queued     uint32 // entries filled since the last Enter
	}
	cq struct {
		head, tail *uint32
		mask       uint32
		cqes       unsafe.Pointer
	}

	bufRing []byte // the provided-buffer ring: one uringBuf per buffer
	bufMem  []byte // the buffers, bufSize bytes each
	bufSize int
	bufTail uint16
	free    []uint16 // buffers back from the reads and not yet lent: the last back on top
	lent    int      // buffers in the ring or read into, not yet back
	lend    int      // the most to lend at once (SetBuffers)

	// ArmRead's state, so that passing armFn to RawConn.Control
	// allocates nothing: a closure would be allocated at every arm, and
	// the reads end and are armed again each time the buffers run out.
	armFn    func(fd uintptr)
	armToken uint32
}

// Completion is what the ring reports of one request.
type Completion struct {
	Token uint32 // as armed; WakeToken after Wake; WriteToken for a write
	Res   int32  // bytes read or written, or a negated errno
	Buf   int    // the buffer read into (Ring.Buf) or written from, or -1 if none
	More  bool   // the request stays armed; if false, this is its last
}

// WriteToken is the token of a write's completion (QueueWrite). It sorts
// after every queue's token.
const WriteToken = WakeToken - 1

// io_uring's ABI (linux/io_uring.h), which x/sys/unix does not carry.
const (
	ringSetupCQSize       = 1 << 3
	ringSetupSingleIssuer = 1 << 12
	ringSetupDeferTaskrun = 1 << 13
	ringFeatSingleMmap    = 1 << 0

	ringOffSQRing = 0
	ringOffSQEs   = 0x10000000

	ringEnterGetEvents = 1 << 0

	ringRegisterProbe    = 8
	ringRegisterPbufRing = 22

	ringOpPollAdd       = 6
	ringOpAsyncCancel   = 14
	ringOpWrite         = 23
	ringOpReadMultishot = 49

	sqeBufferSelect = 1 << 5
	sqeCQESkip      = 1 << 6 // IOSQE_CQE_SKIP_SUCCESS
	pollAddMulti    = 1 << 0

	cqeFBuffer     = 1 << 0
	cqeFMore       = 1 << 1
	cqeBufferShift = 16

	sqeLen = 64
	cqeLen = 16
	bufLen = 16 // struct io_uring_buf
)

// The offsets of fields within an SQE, a CQE and an io_uring_buf.
const (
	sqeOpcode   = 0
	sqeFlags    = 1
	sqeFd       = 4
	sqeOff      = 8
	sqeAddr     = 16
	sqeLenField = 24
	sqeOpFlags  = 28
	sqeUserData = 32
	sqeBufGroup = 40

	cqeUserData = 0
	cqeRes      = 8
	cqeFlags    = 12
)

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type ringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

type ringBufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// Sizes of the rings. A buffer is either lent to the reads or written
// from (QueueWrite) until its completion, and a worker hands every buffer
// back before it enters again, so the CQ holds a completion per buffer,
// and the last completion of each read that found none (ENOBUFS); past
// that the kernel keeps them on a list of its own until there is room. The
// SQ takes a worker's arms, cancels and writes; when it fills, they are
// submitted at once.
const (
	ringSQEntries = 64
	ringCQEntries = 4096
)

// cancelTag marks the user data of a cancel request, whose own completion
// is skipped when it succeeds and dropped by Completions when it does not.
// writeTag marks a write's, with its buffer in the low bits.
const (
	cancelTag = 1 << 32
	writeTag  = 1 << 33
)

// NewRing makes a ring whose reads fill nbuf buffers of size bytes each;
// nbuf must be a power of two of at most 32,768. It fails where the kernel
// lacks io_uring, multishot reads (Linux 6.7) or provided-buffer rings, or
// where io_uring is turned off; the caller then reads with a Poller.
func NewRing(nbuf, size int) (*Ring, error) {
	if nbuf <= 0 || nbuf&(nbuf-1) != 0 || nbuf > 1<<15 {
		return nil, fmt.Errorf("io_uring: %d buffers, want a power of two up to 32768", nbuf)
	}
	p := ringParams{flags: ringSetupSingleIssuer | ringSetupDeferTaskrun | ringSetupCQSize, cqEntries: ringCQEntries}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, ringSQEntries, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &Ring{fd: int(fd), wake: -1, bufSize: size}
	r.armFn = r.armRead
	if err := r.init(&p, nbuf); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) init(p *ringParams, nbuf int) error {
	if p.features&ringFeatSingleMmap == 0 {
		return errors.New("io_uring: no single mapping of the rings")
	}
	if err := r.probe(ringOpReadMultishot, ringOpPollAdd, ringOpAsyncCancel, ringOpWrite); err != nil {
		return err
	}
	var err error
	size := max(int(p.sqOff.array)+int(p.sqEntries)*4, int(p.cqOff.cqes)+int(p.cqEntries)*cqeLen)
	if r.rings, err = unix.Mmap(r.fd, ringOffSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("io_uring: map rings: %w", err)
	}
	if r.sqes, err = unix.Mmap(r.fd, ringOffSQEs, int(p.sqEntries)*sqeLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("io_uring: map SQEs: %w", err)
	}
	word := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&r.rings[off])) }
	r.sq.head, r.sq.tail, r.sq.mask = word(p.sqOff.head), word(p.sqOff.tail), *word(p.sqOff.ringMask)
	r.sq.array = unsafe.Pointer(&r.rings[p.sqOff.array])
	r.cq.head, r.cq.tail, r.cq.mask = word(p.cqOff.head), word(p.cqOff.tail), *word(p.cqOff.ringMask)
	r.cq.cqes = unsafe.Pointer(&r.rings[p.cqOff.cqes])

	// The buffers are mapped rather than allocated: the kernel writes
	// into them behind the Go runtime's back, and pages no packet reached
	// cost no memory.
	if r.bufRing, err = unix.Mmap(-1, 0, nbuf*bufLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return fmt.Errorf("io_uring: map buffer ring: %w", err)
	}
	if r.bufMem, err = unix.Mmap(-1, 0, nbuf*r.bufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return fmt.Errorf("io_uring: map buffers: %w", err)
	}
	reg := ringBufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&r.bufRing[0]))), ringEntries: uint32(nbuf)}
	if err := r.register(ringRegisterPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return fmt.Errorf("io_uring: register buffer ring: %w", err)
	}
	r.free = make([]uint16, 0, nbuf)
	for i := nbuf - 1; i >= 0; i-- {
		r.Recycle(i) // buffer 0 on top: lent first
	}
	r.lend = nbuf

	if r.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	r.armWake()
	return nil
}

// probe fails unless the kernel supports every op.
func (r *Ring) probe(ops ...uint8) error {
	// struct io_uring_probe: a 16-byte head, then 8 bytes an op.
	const nops = 256
	var buf [16 + nops*8]byte
	if err := r.register(ringRegisterProbe, unsafe.Pointer(&buf[0]), nops); err != nil {
		return fmt.Errorf("io_uring: probe: %w", err)
	}
	lastOp := buf[0]
	for _, op := range ops {
		const supported = 1 // IO_URING_OP_SUPPORTED
		if op > lastOp || buf[16+int(op)*8+2]&supported == 0 {
			return fmt.Errorf("io_uring: op %d not supported", op)
		}
	}
	return nil
}

func (r *Ring) register(op uintptr, arg unsafe.Pointer, n uintptr) error {
	if _, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), n, 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// Buf is buffer i, as a completion names it.
func (r *Ring) Buf(i int) []byte { return r.bufMem[i*r.bufSize : (i+1)*r.bufSize : (i+1)*r.bufSize] }

// Recycle hands buffer i back for the reads to fill; the next Enter lends
// it to them again. Every buffer a completion names must come back, or the
// reads run out (their last completion then says ENOBUFS, and the queue
// must be armed again).
func (r *Ring) Recycle(i int) { r.free = append(r.free, uint16(i)) }

// SetBuffers sets how many buffers the reads may hold at once, from 1 to
// the ring's number; NewRing lends them all. Fewer is less memory that
// packets pass through: the kernel fills the buffers in the order they
// were lent, so every buffer lent is reached in turn. A lower number takes
// effect as the reads hand buffers back.
func (r *Ring) SetBuffers(n int) { r.lend = min(max(n, 1), cap(r.free)) }

// Buffers is how many buffers the reads may hold at once.
func (r *Ring) Buffers() int { return r.lend }

// lendBuffers puts buffers in the ring until the reads hold as many as
// they may, the last handed back first: those are the likeliest still in
// the CPU's caches.
func (r *Ring) lendBuffers() {
	if r.lent >= r.lend || len(r.free) == 0 {
		return
	}
	mask := uint16(len(r.bufRing)/bufLen - 1)
	for r.lent < r.lend && len(r.free) > 0 {
		i := int(r.free[len(r.free)-1])
		r.free = r.free[:len(r.free)-1]
		e := unsafe.Pointer(&r.bufRing[int(r.bufTail&mask)*bufLen])
		*(*uint64)(e) = uint64(uintptr(unsafe.Pointer(&r.bufMem[i*r.bufSize])))
		*(*uint32)(unsafe.Add(e, 8)) = uint32(r.bufSize)
		*(*uint16)(unsafe.Add(e, 12)) = uint16(i)
		r.bufTail++
		r.lent++
	}
	// The ring's tail is the last 16 bits of entry 0, beside that entry's
	// buffer ID: store the two as one word, so the tail is published with
	// release order after the entries it covers.
	tailWord := (*uint32)(unsafe.Pointer(&r.bufRing[12]))
	atomic.StoreUint32(tailWord, uint32(*(*uint16)(unsafe.Pointer(&r.bufRing[12])))|uint32(r.bufTail)<<16)
}

// Trim gives the buffers' memory back to the system: the pages packets
// reached are dropped, and a packet that reaches one again faults in a
// zeroed page. The reads write into the buffers only inside Enter, where
// DEFER_TASKRUN runs them (a multishot read that finds its queue empty
// waits on a poll, never in io_uring's worker threads), so Trim is safe
// between Enters, with buffers lent.
func (r *Ring) Trim() error { return unix.Madvise(r.bufMem, unix.MADV_DONTNEED) }

// Resident returns how many bytes of the buffers' memory are resident: the
// pages packets have reached since the last Trim. Unlike the others, it may
// be called from any thread, but not once Close has begun.
func (r *Ring) Resident() (int, error) {
	page := os.Getpagesize()
	vec := make([]byte, (len(r.bufMem)+page-1)/page)
	// x/sys/unix has no Mincore.
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(r.bufMem))), uintptr(len(r.bufMem)), uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); errno != 0 {
		return 0, fmt.Errorf("mincore: %w", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n * page, nil
}

// sqe returns the next submission entry, zeroed; Enter submits it.
func (r *Ring) sqe(op uint8, fd int32, userData uint64) unsafe.Pointer {
	tail := *r.sq.tail
	if tail-atomic.LoadUint32(r.sq.head) > r.sq.mask {
		r.submit() // full: hand the kernel what it holds first
	}
	i := tail & r.sq.mask
	s := unsafe.Pointer(&r.sqes[int(i)*sqeLen])
	clear(r.sqes[int(i)*sqeLen : int(i+1)*sqeLen])
	*(*uint8)(unsafe.Add(s, sqeOpcode)) = op
	*(*int32)(unsafe.Add(s, sqeFd)) = fd
	*(*uint64)(unsafe.Add(s, sqeUserData)) = userData
	*(*uint32)(unsafe.Add(r.sq.array, 4*i)) = i
	atomic.StoreUint32(r.sq.tail, tail+1)
	r.sq.queued++
	return s
}

// ArmRead arms a multishot read of q under token. Each packet q receives
// then completes with Buf set, until the request's last completion (More
// false): after Cancel, or once the buffers run out (ENOBUFS).
//
// The next Enter submits it, and the kernel looks q's descriptor up only
// then: q must stay open until that Enter.
func (r *Ring) ArmRead(q Pollable, token uint32) error {
	rc, err := q.SyscallConn()
	if err != nil {
		return err
	}
	r.armToken = token
	if err := rc.Control(r.armFn); err != nil {
		return errClosed(err)
	}
	return nil
}

// armRead is ArmRead's body, run with the queue's descriptor held open.
func (r *Ring) armRead(fd uintptr) {
	s := r.sqe(ringOpReadMultishot, int32(fd), uint64(r.armToken))
	// Buffer group 0, the only one; length 0: a whole buffer.
	*(*uint8)(unsafe.Add(s, sqeFlags)) = sqeBufferSelect
}

// armWake polls the wake eventfd, multishot, under WakeToken.
func (r *Ring) armWake() {
	s := r.sqe(ringOpPollAdd, int32(r.wake), uint64(WakeToken))
	*(*uint32)(unsafe.Add(s, sqeLenField)) = pollAddMulti
	*(*uint32)(unsafe.Add(s, sqeOpFlags)) = unix.POLLIN
}

// Cancel cancels the read armed under token; its last completion says
// ECANCELED (or how it ended, if it was ending anyway).
func (r *Ring) Cancel(token uint32) {
	s := r.sqe(ringOpAsyncCancel, -1, cancelTag|uint64(token))
	*(*uint64)(unsafe.Add(s, sqeAddr)) = uint64(token)
	*(*uint8)(unsafe.Add(s, sqeFlags)) = sqeCQESkip
}

// QueueWrite queues a write of pkt, which must lie in buffer buf, to q; the
// next Enter submits it. Its completion names buf under WriteToken:
// Recycle buf only then, for until then the kernel may still read it. It
// reports false, queueing nothing, for a q that is not a queue of a TUN
// device this package opened; the caller then writes pkt itself.
//
// Like an armed read, the write looks q's descriptor up at the Enter that
// submits it: q must stay open until that Enter. The writes queued
// between two Enters cost one system call between them, where
// queue.Write costs one each (the dataplane's queueWrite says what that
// gained).
func (r *Ring) QueueWrite(q Device, buf int, pkt []byte) bool {
	var fd int
	switch d := q.(type) {
	case *queue:
		fd = d.fd
	case *Linux:
		fd = d.fd
	default:
		return false
	}
	s := r.sqe(ringOpWrite, int32(fd), writeTag|uint64(buf))
	// Offset -1: the file's own position, which a TUN device has none of.
	*(*uint64)(unsafe.Add(s, sqeOff)) = ^uint64(0)
	*(*uint64)(unsafe.Add(s, sqeAddr)) = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(pkt))))
	*(*uint32)(unsafe.Add(s, sqeLenField)) = uint32(len(pkt))
	return true
}

// Queued reports whether requests wait for the next Enter.
func (r *Ring) Queued() bool { return r.sq.queued > 0 }

// Wake makes the ring's thread see a completion under WakeToken: an Enter
// that waits returns. Any goroutine may call it.
func (r *Ring) Wake() {
	var one = [8]byte{1}
	unix.Write(r.wake, one[:])
}

// submit hands the kernel the queued entries without waiting.
func (r *Ring) submit() error { return r.enter(0) }

// Enter submits what is queued, runs the reads that packets have made
// ready, and, if wait is set, sleeps until at least one completion is
// there to collect.
func (r *Ring) Enter(wait bool) error {
	var min uint32
	if wait {
		min = 1
	}
	return r.enter(min)
}

// An enter that does not wait is a raw system call, one the Go runtime does
// not see, for the reason queue.Write gives: it runs the reads that packets
// have made ready, copies and all, but never sleeps. One that waits must
// tell the runtime, so that it hands the thread's P to other goroutines.
func (r *Ring) enter(min uint32) error {
	r.lendBuffers()
	call := unix.Syscall6
	if min == 0 {
		call = unix.RawSyscall6
	}
	for {
		_, _, errno := call(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.sq.queued), uintptr(min), ringEnterGetEvents, 0, 0)
		switch errno {
		case 0:
			r.sq.queued = 0
			return nil
		case unix.EINTR:
			continue
		case unix.EBUSY, unix.EAGAIN:
			// The CQ is full: the caller must collect first. With
			// ringCQEntries far above the buffers, this does not happen.
			return nil
		}
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
}

// Completions appends the completions waiting, as many as cs has room for,
// and returns it. A completion under WakeToken drains the wake eventfd.
func (r *Ring) Completions(cs []Completion) []Completion {
	head := *r.cq.head
	tail := atomic.LoadUint32(r.cq.tail)
	for ; head != tail && len(cs) < cap(cs); head++ {
		c := unsafe.Add(r.cq.cqes, uintptr(head&r.cq.mask)*cqeLen)
		ud := *(*uint64)(unsafe.Add(c, cqeUserData))
		if ud&cancelTag != 0 {
			continue // a cancel that found nothing armed: its target had ended
		}
		flags := *(*uint32)(unsafe.Add(c, cqeFlags))
		cp := Completion{Token: uint32(ud), Res: *(*int32)(unsafe.Add(c, cqeRes)), Buf: -1, More: flags&cqeFMore != 0}
		if ud&writeTag != 0 {
			cp.Token, cp.Buf = WriteToken, int(uint32(ud))
		}
		if flags&cqeFBuffer != 0 {
			cp.Buf = int(flags >> cqeBufferShift)
			r.lent--
		}
		if cp.Token == WakeToken {
			var b [8]byte
			unix.Read(r.wake, b[:])
			if !cp.More {
				r.armWake()
			}
		}
		cs = append(cs, cp)
	}
	atomic.StoreUint32(r.cq.head, head)
	return cs
}

// Close releases the ring. Reads still armed end with it, but their
// queues' files are released only after, by the kernel's own worker: see
// Ring.
func (r *Ring) Close() error {
	// The ring goes first: a read still armed must not find its buffer's
	// address unmapped and perhaps mapped again by someone else.
	errs := []error{unix.Close(r.fd)}
	for _, m := range [][]byte{r.rings, r.sqes, r.bufRing, r.bufMem} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	if r.wake >= 0 {
		errs = append(errs, unix.Close(r.wake))
	}
	return errors.Join(errs...)
}
