//go:build linux

// Package nstest gives unit tests a real kernel to talk to: a fresh,
// unnamed network namespace, gone when the test ends, with an interface
// the test creates in it.
package nstest

import (
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// New creates a namespace and runs create on a thread inside it, where
// whatever create opens (a TUN device, a socket) is born; it fails the
// test if create fails. IPv6 is off in the namespace, so no router
// solicitation or MLD report joins what the test counts. Without root the
// test is skipped, but CI runs as root and fails instead.
func New(t testing.TB, create func() error) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root: creates a namespace")
	}
	var ns netns.NsHandle
	inside(t, func() (err error) {
		if ns, err = netns.New(); err != nil { // unnamed; moves this thread into it
			return err
		}
		t.Cleanup(func() { ns.Close() })
		for _, k := range []string{"all", "default"} {
			if err = os.WriteFile("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
		}
		return create()
	})
	return ns
}

// In runs fn on a thread inside ns, where whatever fn opens is born; it
// fails the test if fn fails.
func In(t testing.TB, ns netns.NsHandle, fn func() error) {
	t.Helper()
	inside(t, func() error {
		if err := netns.Set(ns); err != nil {
			return err
		}
		return fn()
	})
}

// inside runs fn on this goroutine's thread, locked to it, and moves the
// thread back to the namespace it started in, whichever fn moved it to.
func inside(t testing.TB, fn func() error) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	err = fn()
	if serr := netns.Set(orig); serr != nil {
		t.Fatal(serr) // this thread would stay in the namespace
	}
	if err != nil {
		t.Fatal(err)
	}
}

// Up gives interface name in ns the address cidr and brings it up.
func Up(t testing.TB, ns netns.NsHandle, name, cidr string) {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(link, a); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
}
