package main

// The load generators. The harness runs its own executable inside a
// namespace (`ip netns exec NS BENCH helper MODE ...`); each mode prints its
// result as one JSON object on stdout. Servers and sinks print "ready" once
// they listen and stop when their stdin closes.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aseemu/emulator/topology/build"
)

// Results of the helpers, as JSON.

type rrResult struct {
	Count   int     `json:"count"`
	Seconds float64 `json:"seconds"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	MeanUs  float64 `json:"mean_us"`
}

type crrResult struct {
	Count      int64   `json:"count"`
	Seconds    float64 `json:"seconds"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

type blastResult struct {
	Sent       int64   `json:"sent"`
	Seconds    float64 `json:"seconds"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Sockets    int     `json:"sockets"`
}

type sinkResult struct {
	Packets int64 `json:"packets"`
	Bytes   int64 `json:"bytes"`
	Sources int   `json:"sources"` // distinct source address:port pairs, with -sources
}

func runHelper(args []string) error {
	if len(args) == 0 {
		return errors.New("helper: no mode")
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("helper "+mode, flag.ContinueOnError)
	addr := fs.String("addr", "", "server address:port")
	port := fs.Int("port", 0, "port to listen on")
	rrPort := fs.Int("rr-port", 0, "request/response port")
	crrPort := fs.Int("crr-port", 0, "connect/request/response port")
	dur := fs.Duration("duration", 3*time.Second, "how long to send")
	size := fs.Int("size", 64, "payload bytes")
	conc := fs.Int("conc", 1, "concurrent connections or sending threads")
	batch := fs.Int("batch", 64, "datagrams per sendmmsg")
	sources := fs.Bool("sources", false, "count distinct senders")
	nsFile := fs.String("netns-file", "", "file with one namespace name a line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ap netip.AddrPort
	if *addr != "" {
		var err error
		if ap, err = netip.ParseAddrPort(*addr); err != nil {
			return err
		}
	}
	var res any
	var err error
	switch mode {
	case "tcp-server":
		return tcpServer(*rrPort, *crrPort, *size, *conc)
	case "udp-sink":
		return udpSink(*port, *conc, *sources)
	case "rr-client":
		res, err = rrClient(ap, *size, *dur)
	case "crr-client":
		res, err = crrClient(ap, *conc, *dur)
	case "udp-blast":
		res, err = udpBlast(ap, *conc, *size, *batch, *dur)
	case "scale-blast":
		res, err = scaleBlast(ap, *nsFile, *conc, *size, *batch, *dur)
	default:
		return fmt.Errorf("helper: unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// waitStdinEOF blocks until the harness closes our stdin.
func waitStdinEOF() { io.Copy(io.Discard, os.Stdin) }

// tcpServer answers two kinds of client: on rrPort it echoes size-byte
// messages for as long as the connection lasts (one thread per connection);
// on crrPort threads accept, read one message, answer it and close first,
// so TIME_WAIT stays on the server and the client never runs out of ports.
func tcpServer(rrPort, crrPort, size, threads int) error {
	if threads < 1 {
		threads = 1
	}
	rr, err := tcpListen(rrPort)
	if err != nil {
		return fmt.Errorf("listen %d: %w", rrPort, err)
	}
	crr, err := tcpListen(crrPort)
	if err != nil {
		return fmt.Errorf("listen %d: %w", crrPort, err)
	}
	go func() {
		for {
			var fd int
			err := retry(func() (e error) { fd, _, e = syscall.Accept4(rr, syscall.SOCK_CLOEXEC); return })
			if err != nil {
				return
			}
			go func() {
				runtime.LockOSThread()
				defer syscall.Close(fd)
				syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				b := make([]byte, size)
				for {
					if n, err := readFull(fd, b); err != nil || n < len(b) {
						return
					}
					if writeFull(fd, b) != nil {
						return
					}
				}
			}()
		}
	}()
	for range threads {
		go func() {
			runtime.LockOSThread()
			b := make([]byte, size)
			for {
				var fd int
				err := retry(func() (e error) { fd, _, e = syscall.Accept4(crr, syscall.SOCK_CLOEXEC); return })
				if err != nil {
					return
				}
				syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
				if n, err := readFull(fd, b); err == nil && n == len(b) {
					writeFull(fd, b)
				}
				syscall.Close(fd)
			}
		}()
	}
	fmt.Println("ready")
	waitStdinEOF()
	return nil
}

// rrClient does size-byte round trips on one connection, one at a time, for
// d after a short warm-up, and reports their rate and latency percentiles.
func rrClient(ap netip.AddrPort, size int, d time.Duration) (*rrResult, error) {
	runtime.LockOSThread()
	fd, err := tcpConnect(ap)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ap, err)
	}
	defer syscall.Close(fd)
	b := make([]byte, size)
	once := func() error {
		if err := writeFull(fd, b); err != nil {
			return err
		}
		n, err := readFull(fd, b)
		if err == nil && n < len(b) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	for range 1000 { // warm-up: ARP, caches, the flow's first packets
		if err := once(); err != nil {
			return nil, err
		}
	}
	lat := make([]int64, 0, 1<<20)
	start := time.Now()
	end := start.Add(d)
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			break
		}
		if err := once(); err != nil {
			return nil, err
		}
		lat = append(lat, int64(time.Since(t0)))
	}
	el := time.Since(start).Seconds()
	if len(lat) == 0 {
		return nil, errors.New("no round trip completed")
	}
	var sum int64
	for _, l := range lat {
		sum += l
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e3 }
	return &rrResult{
		Count: len(lat), Seconds: el, P50us: pct(0.50), P99us: pct(0.99),
		MeanUs: float64(sum) / float64(len(lat)) / 1e3,
	}, nil
}

// crrClient opens connections as fast as conc threads can, each doing
// connect, one 1-byte request, its answer, the server's FIN, close.
func crrClient(ap netip.AddrPort, conc int, d time.Duration) (*crrResult, error) {
	var count, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	for range max(conc, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			b := make([]byte, 1)
			fail := func(err error) {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				time.Sleep(time.Millisecond)
			}
			for time.Now().Before(end) {
				fd, err := tcpConnect(ap)
				if err != nil {
					fail(err)
					continue
				}
				err = writeFull(fd, b)
				if err == nil {
					var n int
					if n, err = readFull(fd, b); err == nil && n != 1 {
						err = io.ErrUnexpectedEOF
					}
				}
				if err == nil {
					// Wait for the server's FIN so it, not we, holds TIME_WAIT.
					var n int
					err = retry(func() (e error) { n, e = syscall.Read(fd, b); return })
					if err == nil && n != 0 {
						err = errors.New("server sent more than one byte")
					}
				}
				syscall.Close(fd)
				if err != nil {
					fail(err)
					continue
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	r := &crrResult{Count: count.Load(), Seconds: time.Since(start).Seconds(), Errors: errs.Load()}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	if r.Count == 0 {
		return nil, fmt.Errorf("no connection completed (%d errors, first: %s)", r.Errors, r.FirstError)
	}
	return r, nil
}

// blastSockets sends batches of size-byte datagrams round robin over socks
// from conc threads until d has passed.
func blastSockets(socks []int, conc, size, batch int, d time.Duration) *blastResult {
	payload := make([]byte, size)
	var sent, errs atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	conc = max(1, min(conc, len(socks)))
	for t := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			m := newMmsg(batch, payload, 0, false)
			var mine []int
			for i := t; i < len(socks); i += conc {
				mine = append(mine, socks[i])
			}
			var n int64
			for i := 0; ; i++ {
				if i%len(mine) == 0 && !time.Now().Before(end) {
					break
				}
				k, err := m.send(mine[i%len(mine)])
				if err != nil {
					// ECONNREFUSED (an ICMP error for an earlier datagram)
					// or ENOBUFS: count it and go on.
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				n += int64(k)
			}
			sent.Add(n)
		}()
	}
	wg.Wait()
	r := &blastResult{Sent: sent.Load(), Seconds: time.Since(start).Seconds(), Errors: errs.Load(), Sockets: len(socks)}
	if e, ok := firstErr.Load().(string); ok {
		r.FirstError = e
	}
	return r
}

// udpBlast sends from conc sockets (conc flows, one thread each).
func udpBlast(ap netip.AddrPort, conc, size, batch int, d time.Duration) (*blastResult, error) {
	var socks []int
	for range max(conc, 1) {
		fd, err := udpSocket(ap, 0)
		if err != nil {
			return nil, err
		}
		defer syscall.Close(fd)
		socks = append(socks, fd)
	}
	return blastSockets(socks, conc, size, batch, d), nil
}

// scaleBlast opens one UDP socket inside each namespace of nsFile, all
// connected to ap, then sends from all of them at once: every node talks.
func scaleBlast(ap netip.AddrPort, nsFile string, conc, size, batch int, d time.Duration) (*blastResult, error) {
	data, err := os.ReadFile(nsFile)
	if err != nil {
		return nil, err
	}
	var socks []int
	defer func() {
		for _, fd := range socks {
			syscall.Close(fd)
		}
	}()
	names := strings.Fields(string(data))
	nss, err := openNamespaces(names)
	defer closeNamespaces(nss)
	if err != nil {
		return nil, err
	}
	// A socket stays in the namespace it was opened in, whatever thread
	// later sends on it: one thread visits every namespace to open them.
	err = build.DoEach(nss, func(i int) error {
		fd, err := udpSocket(ap, 0)
		if err != nil {
			return fmt.Errorf("socket in %s: %w", names[i], err)
		}
		socks = append(socks, fd)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(socks) == 0 {
		return nil, errors.New("no namespace")
	}
	return blastSockets(socks, conc, size, batch, d), nil
}

// udpSink counts datagrams on port with conc SO_REUSEPORT sockets until
// stdin closes.
func udpSink(port, conc int, sources bool) error {
	var fds []int
	for range max(conc, 1) {
		fd, err := udpSocket(netip.AddrPort{}, port)
		if err != nil {
			return err
		}
		// Wake up now and then to notice the end.
		tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
		syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		fds = append(fds, fd)
	}
	var stop atomic.Bool
	var pkts, bytes atomic.Int64
	seen := make([]map[uint64]struct{}, len(fds))
	var wg sync.WaitGroup
	for i, fd := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			m := newMmsg(256, nil, 2048, sources)
			if sources {
				seen[i] = map[uint64]struct{}{}
			}
			var n, nb int64
			for !stop.Load() {
				k, err := m.recv(fd)
				if err != nil {
					continue // EAGAIN after the timeout, EINTR
				}
				n += int64(k)
				for j := range k {
					nb += int64(m.hdrs[j].Len)
					if sources {
						a := m.names[j]
						seen[i][uint64(a.Addr[0])<<40|uint64(a.Addr[1])<<32|uint64(a.Addr[2])<<24|uint64(a.Addr[3])<<16|uint64(a.Port)] = struct{}{}
					}
				}
			}
			pkts.Add(n)
			bytes.Add(nb)
		}()
	}
	fmt.Println("ready")
	waitStdinEOF()
	stop.Store(true)
	wg.Wait()
	all := map[uint64]struct{}{}
	for _, s := range seen {
		for k := range s {
			all[k] = struct{}{}
		}
	}
	w := bufio.NewWriter(os.Stdout)
	json.NewEncoder(w).Encode(sinkResult{Packets: pkts.Load(), Bytes: bytes.Load(), Sources: len(all)})
	return w.Flush()
}
