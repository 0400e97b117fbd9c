// Command inject writes raw packets to a network interface through an
// AF_PACKET socket, below the IP stack, so that they reach the device
// exactly as given: truncated headers, bad lengths, options, fragments,
// IPv6. The malformed-packet integration test runs it inside a node
// (`emulator exec NODE -- inject eth0 ...`) to feed the node's TUN, and so
// the dataplane, what no well-behaved stack would send.
//
// Usage: inject IFACE PACKET...
//
// Each PACKET is "ip:HEX" or "ip6:HEX": the EtherType to send it with (the
// TUN carries no link header; the dataplane reads the bytes as they are)
// and the packet in hex.
package main

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: inject IFACE ip:HEX|ip6:HEX...")
		os.Exit(2)
	}
	ifi, err := net.InterfaceByName(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, 0) // protocol 0: send only
	if err != nil {
		fmt.Fprintln(os.Stderr, "AF_PACKET socket:", err)
		os.Exit(1)
	}
	defer unix.Close(fd)
	for _, arg := range os.Args[2:] {
		kind, h, _ := strings.Cut(arg, ":")
		proto := uint16(unix.ETH_P_IP)
		if kind == "ip6" {
			proto = unix.ETH_P_IPV6
		}
		pkt, err := hex.DecodeString(h)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", arg, err)
			os.Exit(2)
		}
		sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index}
		if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
			fmt.Fprintf(os.Stderr, "send %d bytes: %v\n", len(pkt), err)
			os.Exit(1)
		}
	}
}
