// Package tun is the dataplane's packet I/O: one device per emulated node.
//
// A Device moves whole packets, each preceded by a 10-byte virtio-net header
// (header.VirtioNetHdrLen) that carries GSO and partial-checksum metadata, so
// that TCP super-packets of up to 64 KiB cross the dataplane in one read and
// one write instead of ~44 MTU-sized ones.
package tun

import "syscall"

// Device is the interface the dataplane's forwarding loop needs. It is shaped
// after wireguard-go's tun.Device so a batching backend (multi-queue TUN,
// AF_XDP) can replace the single-queue one without touching the pipeline.
type Device interface {
	// Read reads up to len(bufs) packets. Each packet is written to bufs[i]
	// starting with its virtio-net header, and its length (header included)
	// to sizes[i]. It blocks until at least one packet is available.
	Read(bufs [][]byte, sizes []int) (n int, err error)
	// Write writes each buffer, a virtio-net header followed by an IPv4
	// packet, as one packet.
	Write(bufs [][]byte) (int, error)
	// BatchSize is the largest number of packets Read can return at once.
	BatchSize() int
	// Name is the interface name inside its namespace.
	Name() string
	Close() error
}

// MultiQueue is a Device whose packets arrive on several queues. The
// dataplane reads each queue with its own goroutine, so one node's flows
// are forwarded on several cores at once. Queues()[0] is the queue the
// Device itself reads and writes.
type MultiQueue interface {
	Device
	Queues() []Device
}

// Pollable is a queue the dataplane can wait on together with many others
// (Poller), then read without blocking. A wrapper that adds behaviour to a
// queue (a test's, say) stays Pollable by passing these through.
type Pollable interface {
	Device
	// SyscallConn gives the descriptor a Poller registers.
	SyscallConn() (syscall.RawConn, error)
	// TryRead is Read that returns 0 at once when no packet is waiting.
	TryRead(bufs [][]byte, sizes []int) (n int, err error)
}
