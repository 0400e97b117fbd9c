//go:build linux

package build

import (
	"fmt"
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
	dir := filepath.Join(EtcDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := fmt.Sprintf("# written by the emulator for namespace %s\nnameserver %s\nsearch %s\n", name, nameserver, search)
	return os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(conf), 0o644)
}

// RemoveEtc removes namespace name's files under EtcDir.
func RemoveEtc(name string) error {
	return os.RemoveAll(filepath.Join(EtcDir, name))
}

// Enter moves the calling thread into namespace name as `ip netns exec`
// does, for a program about to be exec'd: the network namespace, a private
// mount namespace in which /etc/netns/NAME/* is bind-mounted over /etc/*
// and /sys shows the namespace's interfaces. It locks the thread, which
// must not run other Go code afterwards: call exec next.
func Enter(name string) error {
	runtime.LockOSThread()
	f, err := os.Open(filepath.Join(NetnsDir, name))
	if err != nil {
		return fmt.Errorf("namespace %s: %w", name, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter %s: %w", name, err)
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
