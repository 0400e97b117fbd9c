package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/aseemu/emulator/dataplane/tun"
)

// testPanicEnv is a switch for the crash-recovery tests only: it makes the
// emulator panic where a bug would, so the tests can show that `down` still
// leaves nothing behind. Users never set it.
//
//	EMULATOR_TEST_PANIC=up       panic while building, once half the nodes exist
//	EMULATOR_TEST_PANIC=forward  panic in a forwarding goroutine on the first
//	                             packet that carries testPanicMagic
const testPanicEnv = "EMULATOR_TEST_PANIC"

// testPanicMagic is what a packet must carry to trigger the forward panic,
// so the lab's own probes never do.
var testPanicMagic = []byte("EMULATOR_TEST_PANIC")

var testPanic = os.Getenv(testPanicEnv)

// testPanicBuild panics, under EMULATOR_TEST_PANIC=up, once built of total
// nodes have their namespace.
func testPanicBuild(built, total int) {
	if testPanic == "up" && built == total/2 {
		panic(fmt.Sprintf("%s=up: injected panic after %d of %d nodes", testPanicEnv, built, total))
	}
}

// testPanicDevice wraps dev, under EMULATOR_TEST_PANIC=forward, so that the
// forwarding goroutine reading it panics on a packet holding testPanicMagic.
func testPanicDevice(dev tun.Device) tun.Device {
	if testPanic != "forward" || dev == nil {
		return dev
	}
	mq, ok := dev.(tun.MultiQueue)
	if !ok {
		return panicQueue(dev)
	}
	// Every queue, since the kernel may steer the marked packet to any.
	p := panicQueues{Device: dev}
	for _, q := range mq.Queues() {
		p.queues = append(p.queues, panicQueue(q))
	}
	return p
}

// panicQueue wraps one queue, keeping it tun.Pollable if it was, so that
// the panic happens in the dataplane's real forwarding workers.
func panicQueue(q tun.Device) tun.Device {
	if pq, ok := q.(tun.Pollable); ok {
		return panicPollable{pq}
	}
	return panicDevice{q}
}

type panicDevice struct{ tun.Device }

type panicPollable struct{ tun.Pollable }

func (d panicPollable) TryRead(bufs [][]byte, sizes []int) (int, error) {
	n, err := d.Pollable.TryRead(bufs, sizes)
	panicOnMagic(bufs, sizes, n, d.Name())
	return n, err
}

type panicQueues struct {
	tun.Device
	queues []tun.Device
}

func (p panicQueues) Queues() []tun.Device { return p.queues }

func (d panicDevice) Read(bufs [][]byte, sizes []int) (int, error) {
	n, err := d.Device.Read(bufs, sizes)
	panicOnMagic(bufs, sizes, n, d.Name())
	return n, err
}

func panicOnMagic(bufs [][]byte, sizes []int, n int, name string) {
	for i := 0; i < n; i++ {
		if bytes.Contains(bufs[i][:sizes[i]], testPanicMagic) {
			panic(fmt.Sprintf("%s=forward: injected panic in the forwarding goroutine of %s", testPanicEnv, name))
		}
	}
}
