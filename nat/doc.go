// Package nat is the dataplane's connection tracking and address
// translation: the flow table, the SNAT port pools of the VIPs (F3, F5,
// F7, F17), and the in-place rewriting of packets and of the ICMP errors
// about them. Which flow gets which translation (the ASE's VIP, a
// front-end behind the load balancer) is the dataplane's policy; this
// package takes the translated tuple as given.
//
// # Model
//
// It is netfilter's. A flow has an original tuple, as its initiator sent
// it, and a reply tuple, as replies arrive at the dataplane, which
// reflects the translation: SNAT of 10.0.1.6:40000 -> 203.0.113.10:80 to
// 192.23.1.2:40000 has the reply tuple 203.0.113.10:80 -> 192.23.1.2:40000.
// Both index the flow, and a lookup says which direction a packet went.
// One flow can carry SNAT and DNAT at once, for ASE-to-ASE hairpins.
//
// Per packet the dataplane does:
//
//	now := tbl.Now() // once per batch
//	k, ok := nat.KeyOf(ip)
//	if !ok {
//		// Not TCP, UDP or ICMP echo: maybe an ICMP error about a flow.
//		if tbl.TranslateICMPError(ip, vnet, now) { forward it }
//		return
//	}
//	f, ok := tbl.Lookup(k, now)
//	if !ok {
//		var err error
//		f, err = tbl.Insert(k, policy(k), now) // policy(k) == k: tracked, no NAT
//		if err != nil && !errors.Is(err, nat.ErrExists) {
//			refuse() // F17: RST or ICMP admin-prohibited; existing flows go on
//			return
//		}
//	}
//	f.Translate(ip, vnet)
//
// # Concurrency and memory
//
// One goroutine per node interface looks flows up, and the two directions
// of a flow are seen by different goroutines, so lookups take no lock and
// allocate nothing. Creating and removing flows (Insert, Expire) serialise
// on one mutex: there is a single writer.
//
// Flows live in a slab, a []flow allocated once for Config.MaxFlows. It
// holds no pointers, so the GC never scans it, and a flow is named by its
// uint32 index. Everything a lookup reads in it is an atomic; the
// generation word makes each entry a seqlock (odd: live), so a reader that
// raced with the entry being freed and reused notices and looks again.
//
// The index is open addressing with linear probing over a []atomic.Uint64
// of at least four slots per flow (load factor <= 1/2, two keys per flow).
// A slot is one word: used bit, direction, flow index and a 32-bit hash
// tag; the keys themselves are compared in the flow, whose lines the
// packet needs anyway. Because a slot is a single word, the writer
// publishes or moves an entry with one store and a reader never sees half
// of one. Deletion shifts the following entries of the cluster back
// (no tombstones, so no rehash is ever needed); a reader whose probe ran
// while that happened could miss a key that moved past it, so the writer
// bumps a sequence counter around each deletion and a lookup that misses
// looks again if the counter moved.
//
// Memory is 192 bytes of slab per flow (three cache lines, see flow) and
// four 8-byte index slots, 224 bytes, plus 264 KiB per SNAT pool: 237
// bytes a flow for a million flows through 16 VIPs (TestMemoryPerFlow).
//
// # Time
//
// Timeouts follow F17: 4 minutes idle (TCP before a FIN or RST, UDP, ICMP),
// 240 s after a FIN, 15 s after a RST, each counted from the flow's last
// packet. Time comes from a Clock, so tests run on a fake one. A flow past
// its timeout is gone for Lookup and Insert at once, its SNAT port free for
// the next flow, though its memory is reclaimed only by Expire, which the
// dataplane calls from a timer.
package nat
