//go:build linux

package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// EtcDir holds per-namespace files that `ip netns exec NAME` (and Enter)
// bind-mount over /etc: iproute2's convention, so both see the same
// resolv.conf.
const EtcDir = "/etc/netns"

// WriteResolvConf makes programs in namespace name resolve through
// nameserver (Azure DNS at 168.63.129.16), with search as the search
// domain.
func WriteResolvConf(name, nameserver, search string) error {
	return writeEtc(name, "resolv.conf", fmt.Sprintf("# written by the emulator for namespace %s\nnameserver %s\nsearch %s\n", name, nameserver, search))
}

// WriteHostname makes /etc/hostname read hostname in namespace name, for
// programs that read the file rather than ask the kernel (Enter's UTS
// namespace), and for `ip netns exec`, which enters no UTS namespace.
func WriteHostname(name, hostname string) error {
	return writeEtc(name, "hostname", hostname+"\n")
}

// writeEtc writes file, which namespace name sees as /etc/FILE.
func writeEtc(name, file, content string) error {
	dir := filepath.Join(EtcDir, name)
	if err := MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644)
}

// RemoveEtc removes namespace name's files under EtcDir, and EtcDir once
// it is empty: the emulator made it, and after the last lab /etc is as it
// was (SPEC §6). A namespace coming up meanwhile keeps it (MkdirAll).
func RemoveEtc(name string) error {
	if err := os.RemoveAll(filepath.Join(EtcDir, name)); err != nil {
		return err
	}
	os.Remove(EtcDir) // fails, as it should, while another namespace has files there
	return nil
}

// MkdirAll is os.MkdirAll for a directory whose parent the last lab's
// teardown removes once it is empty (EtcDir, the labs' state directory):
// when the parent goes between MkdirAll making it and making dir, it tries
// again. So it does when another lab made the parent just before this one
// tried to (EEXIST) and a teardown removed it before os.MkdirAll looked
// again: os.MkdirAll then fails with "file exists" for a parent that is
// not there (TestMkdirAllBesideTeardowns).
func MkdirAll(dir string, perm os.FileMode) error {
	for range 100 {
		err := os.MkdirAll(dir, perm)
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, fs.ErrExist) && errors.As(err, &pe):
			if fi, serr := os.Lstat(pe.Path); serr == nil && !fi.IsDir() {
				return err // a file where a directory goes
			}
		default:
			return err
		}
	}
	return fmt.Errorf("mkdir %s: its parent keeps being removed", dir)
}

// Enter moves the calling thread into namespace name as `ip netns exec`
// does, for a program about to be exec'd: the network namespace, its UTS
// namespace (the node's hostname), a private mount namespace in which
// /etc/netns/NAME/* is bind-mounted over /etc/* and /sys shows the
// namespace's interfaces. It locks the thread, which
// must not run other Go code afterwards: call exec next.
func Enter(name string) error {
	runtime.LockOSThread()
	f, err := os.Open(filepath.Join(NetnsDir, name))
	if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); errors.Is(err, unix.EINVAL) {
		// The file is there but no namespace is mounted on it: it is being
		// made (created, then bind-mounted) or removed (unmounted, then
		// unlinked). To the caller that is a namespace not there yet, or
		// any more, as if the file were missing.
		return fmt.Errorf("namespace %s is not mounted: %w", name, os.ErrNotExist)
	} else if err != nil {
		return fmt.Errorf("enter %s: %w", name, err)
	}
	if err := enterUTS(name); err != nil {
		return err
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("mount namespace: %w", err)
	}
	// Keep our bind mounts from propagating back to the host.
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount namespace: %w", err)
	}
	ents, _ := os.ReadDir(filepath.Join(EtcDir, name))
	for _, e := range ents {
		src := filepath.Join(EtcDir, name, e.Name())
		dst := filepath.Join("/etc", e.Name())
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", src, dst, err)
		}
	}
	// As ip netns exec does; a failure only leaves /sys showing the host.
	if unix.Unmount("/sys", unix.MNT_DETACH) == nil {
		unix.Mount(name, "/sys", "sysfs", 0, "")
	}
	return nil
}

// enterUTS moves the calling thread into namespace name's UTS namespace.
// A lab made by an older build has none (no file), and one coming up or
// going down may have a file with nothing mounted on it (EINVAL): the
// thread then keeps the host's, as it did before nodes had their own.
func enterUTS(name string) error {
	f, err := os.Open(filepath.Join(UTSDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWUTS); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("enter %s's UTS namespace: %w", name, err)
	}
	return nil
}
