//go:build linux

package build

// EnableForwarding makes the calling thread's namespace forward packets
// that are not its own, as a VM with IP forwarding does, without sending
// ICMP redirects: its packets come back out of the interface they came in
// by, which is how an appliance on a stick works. Call it inside Do.
func EnableForwarding() error {
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/conf/all/send_redirects", "/proc/sys/net/ipv4/conf/default/send_redirects"} {
		v := "0"
		if f == "/proc/sys/net/ipv4/ip_forward" {
			v = "1"
		}
		if err := writeSysctl(f, v); err != nil {
			return err
		}
	}
	return nil
}

// DisableForwarding makes the calling thread's namespace stop forwarding,
// as a VM whose IP forwarding is turned off. Call it inside Do.
func DisableForwarding() error {
	return writeSysctl("/proc/sys/net/ipv4/ip_forward", "0")
}
