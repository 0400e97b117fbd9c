//go:build linux

// Package build turns a topology into network namespaces: it creates and
// deletes the named namespaces (as `ip netns` does, so `ip netns exec` works on
// them) with each one's UTS namespace, configures a node's interface inside
// its namespace over netlink, and finds what a lab left behind. It never touches the root namespace's
// addresses, routes, firewall or sysctls.
package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named namespaces are bind-mounted, as iproute2 does.
const NetnsDir = "/run/netns"

// NamespaceName is the name of node's namespace in lab. Lab and node names
// cannot contain '.', so the prefix "lab." tells a lab's namespaces apart
// even when one lab's name is a prefix of another's.
func NamespaceName(lab, node string) string { return lab + "." + node }

// Do runs fn on an OS thread that has been switched into ns, then switches
// the thread back. If the thread cannot be restored it is left locked, and the
// Go runtime discards it when the goroutine ends, so no other goroutine ever
// runs in the wrong namespace.
func Do(ns netns.NsHandle, fn func() error) error {
	return DoEach([]netns.NsHandle{ns}, func(int) error { return fn() })
}

// DoEach is Do for many namespaces on one thread: it runs fn(i) inside
// nss[i] for each i in turn, and joins the errors. A namespace it cannot
// enter is skipped, with its error. One thread for all saves a thread
// switch per namespace when a status visits a thousand nodes.
func DoEach(nss []netns.NsHandle, fn func(i int) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		var errs []error
		for i, ns := range nss {
			if err := netns.Set(ns); err != nil {
				errs = append(errs, fmt.Errorf("enter netns: %w", err))
				continue
			}
			errs = append(errs, fn(i))
		}
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(append(errs, fmt.Errorf("restore netns: %w", err))...)
			return // the thread stays locked and dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- errors.Join(errs...)
	}()
	return <-errc
}

var mountOnce sync.Once
var mountErr error

// prepareNetnsDir makes /run/netns a shared mount point, exactly as
// `ip netns add` does, so namespaces created here propagate to mount
// namespaces created later (ip netns exec, systemd services).
func prepareNetnsDir() error {
	mountOnce.Do(func() {
		if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
			mountErr = err
			return
		}
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == unix.EINVAL { // not a mount point yet
			if err = unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
			}
		}
		if err != nil {
			mountErr = fmt.Errorf("prepare %s: %w", NetnsDir, err)
		}
	})
	return mountErr
}

// UTSDir is where each node's UTS namespace, which holds its hostname, is
// bind-mounted, under the name of its network namespace. Not in NetnsDir:
// `ip netns` takes every file there for a network namespace.
const UTSDir = "/run/utsns"

// CreateNamespace creates the named network namespace, and a UTS namespace
// of the same name whose hostname is hostname, as an Azure VM's hostname
// is its name. It returns a handle to the network namespace. The caller's
// thread is never moved.
func CreateNamespace(name, hostname string) (netns.NsHandle, error) {
	if err := prepareNetnsDir(); err != nil {
		return netns.None(), err
	}
	path := filepath.Join(NetnsDir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("namespace %s: %w", name, err)
	}
	f.Close()
	utsPath := filepath.Join(UTSDir, name)
	if err := createUTSFile(utsPath); err != nil {
		_ = DeleteNamespace(name)
		return netns.None(), fmt.Errorf("namespace %s: %w", name, err)
	}

	type result struct {
		h   netns.NsHandle
		err error
	}
	resc := make(chan result, 1)
	go func() {
		// This thread is never unlocked: after unshare it belongs to the new
		// namespaces, and the runtime throws it away when the goroutine ends.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWUTS); err != nil {
			resc <- result{err: fmt.Errorf("unshare: %w", err)}
			return
		}
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			resc <- result{err: fmt.Errorf("hostname %s: %w", hostname, err)}
			return
		}
		// The UTS namespace first: Enter takes a mounted network namespace
		// for a node that is made, and enters its UTS namespace too.
		tid := unix.Gettid()
		for _, m := range []struct{ ns, path string }{{"uts", utsPath}, {"net", path}} {
			self := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, m.ns)
			if err := unix.Mount(self, m.path, "none", unix.MS_BIND, ""); err != nil {
				resc <- result{err: fmt.Errorf("bind %s: %w", m.path, err)}
				return
			}
		}
		h, err := netns.GetFromPath(path)
		resc <- result{h, err}
	}()
	r := <-resc
	if r.err != nil {
		_ = DeleteNamespace(name)
		return netns.None(), fmt.Errorf("namespace %s: %w", name, r.err)
	}
	return r.h, nil
}

// createUTSFile creates the file a UTS namespace is bind-mounted on. UTSDir
// is removed once empty (DeleteNamespace), possibly by another lab's
// teardown between making it and creating the file: then it tries again.
func createUTSFile(path string) error {
	for range 100 {
		if err := MkdirAll(UTSDir, 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
		if err == nil {
			return f.Close()
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return fmt.Errorf("create %s: %s keeps being removed", path, UTSDir)
}

// DeleteNamespace removes a named namespace and its UTS namespace, and
// UTSDir once it is empty: the emulator made it, and after the last lab
// /run is as it was (SPEC §6). A namespace that does not exist is not an
// error, so teardown can be repeated.
func DeleteNamespace(name string) error {
	// The network namespace first, the reverse of CreateNamespace.
	for _, path := range []string{filepath.Join(NetnsDir, name), filepath.Join(UTSDir, name)} {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", path, err)
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	os.Remove(UTSDir) // fails, as it should, while another namespace is there
	return nil
}

// LabNamespaces lists the namespaces that belong to lab, sorted: those
// mounted under NetnsDir or UTSDir and those that left files under EtcDir.
func LabNamespaces(lab string) ([]string, error) {
	seen := map[string]bool{}
	for _, dir := range []string{NetnsDir, UTSDir, EtcDir} {
		ents, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), lab+".") {
				seen[e.Name()] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// PidsIn returns the processes, other than this one, whose network namespace
// is one of the named namespaces. Teardown stops them so that no process of
// the lab outlives it and pins its namespace.
func PidsIn(names []string) []int {
	inodes := map[uint64]bool{}
	for _, n := range names {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(NetnsDir, n), &st) == nil {
			inodes[st.Ino] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	procs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var pids []int
	for _, p := range procs {
		var pid int
		if _, err := fmt.Sscanf(p.Name(), "%d", &pid); err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && inodes[st.Ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}
