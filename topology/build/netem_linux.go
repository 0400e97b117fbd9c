//go:build linux

package build

import (
	"errors"
	"fmt"

	"github.com/aseemu/emulator/topology"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrNoNetem says the running kernel has no netem qdisc
// (CONFIG_NET_SCH_NETEM), so links cannot be impaired.
var ErrNoNetem = errors.New("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set), so link latency cannot be emulated")

// ifbName is the device that carries a node's incoming traffic through
// netem: a qdisc on eth0 only shapes what the node sends.
const ifbName = "ifb0"

// SetLatency impairs node's link each way with the kernel's netem (delay,
// jitter, loss, rate): on eth0's egress for what the node sends, and on an
// ifb device that eth0's ingress is redirected to for what it receives. A
// zero Latency removes the impairment. It runs inside the node's namespace
// only.
func SetLatency(ns netns.NsHandle, ifname string, l topology.Latency) error {
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return err
	}
	idx := link.Attrs().Index
	ingress := &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS}}
	if l == (topology.Latency{}) {
		h.QdiscDel(&netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: idx, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}, QdiscType: "netem"})
		h.QdiscDel(ingress)
		if ifb, err := h.LinkByName(ifbName); err == nil {
			h.LinkDel(ifb)
		}
		return nil
	}
	if err := h.QdiscReplace(netem(idx, l)); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return ErrNoNetem // the kernel does not know the qdisc kind
		}
		return fmt.Errorf("netem on %s: %w", ifname, err)
	}
	ifb, err := h.LinkByName(ifbName)
	if err != nil {
		if err := h.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: ifbName}}); err != nil {
			return fmt.Errorf("%s: %w", ifbName, err)
		}
		if ifb, err = h.LinkByName(ifbName); err != nil {
			return err
		}
	}
	if err := h.LinkSetUp(ifb); err != nil {
		return err
	}
	if err := h.QdiscReplace(netem(ifb.Attrs().Index, l)); err != nil {
		return fmt.Errorf("netem on %s: %w", ifbName, err)
	}
	if err := h.QdiscReplace(ingress); err != nil {
		return fmt.Errorf("ingress qdisc on %s: %w", ifname, err)
	}
	redirect := &netlink.MatchAll{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: idx, Parent: netlink.MakeHandle(0xffff, 0), Priority: 1, Protocol: unix.ETH_P_ALL},
		Actions:     []netlink.Action{netlink.NewMirredAction(ifb.Attrs().Index)},
	}
	if err := h.FilterReplace(redirect); err != nil {
		return fmt.Errorf("redirect %s to %s: %w", ifname, ifbName, err)
	}
	return nil
}

func netem(link int, l topology.Latency) *netlink.Netem {
	return netlink.NewNetem(
		netlink.QdiscAttrs{LinkIndex: link, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{
			Latency: uint32(l.Delay.Microseconds()),
			Jitter:  uint32(l.Jitter.Microseconds()),
			Loss:    float32(l.Loss),
			Rate64:  l.Rate / 8, // netem takes bytes per second
			Limit:   10000,
		})
}

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
