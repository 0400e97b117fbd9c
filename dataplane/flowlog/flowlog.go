// Package flowlog writes NSG flow logs in Azure's version 2 JSON format
// from the dataplane's flow events, so that tools reading Azure's flow
// logs read the lab's:
//
//	{"records": [{"time": ..., "systemId": ..., "macAddress": ...,
//	  "category": "NetworkSecurityGroupFlowEvent", "resourceId": ".../NETWORKSECURITYGROUPS/NAME",
//	  "operationName": "NetworkSecurityGroupFlowEvents",
//	  "properties": {"Version": 2, "flows": [{"rule": "UserRule_X",
//	    "flows": [{"mac": ..., "flowTuples": ["ts,src,dst,sport,dport,T|U,I|O,A|D,B|C|E,pkts,bytes,pkts,bytes"]}]}]}}]}
//
// There is one record per NSG and NIC (node) per minute, and one file per
// minute, DIR/y=YYYY/m=MM/d=DD/h=HH/m=MM/PT1M.json, rewritten whole as
// events arrive so that it is always complete JSON. A tuple's addresses
// are the flow as that NSG saw it: before SNAT outbound, after DNAT inbound
// (F13). B is an allowed flow's first packet, C what a live flow carried
// each ContinueEvery, E its end with each direction's packets and bytes
// since its last C, and a denied flow is D with state B, once a minute
// however many of its packets the NSG dropped. An NSG that allowed a flow
// which a later NSG (or the load balancer) dropped logs it as any flow it
// allowed: B once, C while its packets keep coming, and E with what it
// sent once none came for conntrack's idle timeout. A flow under way when the
// writer starts has no B, and its C and E count from then. ICMP flows are
// not logged: version 2 knows only T and U.
package flowlog

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aseemu/emulator/dataplane"
	"github.com/aseemu/emulator/dataplane/header"
	"github.com/aseemu/emulator/dataplane/nsg"
	"github.com/aseemu/emulator/nat"
)

// ContinueEvery is how often a live flow gets a continuing (C) tuple:
// Azure's version 2 gives the statistics of ongoing flows at 5-minute
// intervals.
const ContinueEvery = 5 * time.Minute

// stateContinue is the event state of a C tuple. The dataplane sends no
// such event: a flow that lives on is seen by reading the live flows.
const stateContinue = 'C'

// File is one flow log file.
type File struct {
	Records []Record `json:"records"`
}

// Record is one NSG's flows at one NIC in one minute.
type Record struct {
	Time          string     `json:"time"`
	SystemID      string     `json:"systemId"`
	MACAddress    string     `json:"macAddress"`
	Category      string     `json:"category"`
	ResourceID    string     `json:"resourceId"`
	OperationName string     `json:"operationName"`
	Properties    Properties `json:"properties"`
}

// Properties holds a record's flows by rule.
type Properties struct {
	Version int         `json:"Version"`
	Flows   []RuleFlows `json:"flows"`
}

// RuleFlows are the tuples one rule decided.
type RuleFlows struct {
	Rule  string     `json:"rule"`
	Flows []MACFlows `json:"flows"`
}

// MACFlows are the tuples of one NIC.
type MACFlows struct {
	MAC        string   `json:"mac"`
	FlowTuples []string `json:"flowTuples"`
}

// Writer turns flow events into files.
type Writer struct {
	dir, lab, systemID string

	mu      sync.Mutex
	minute  time.Time
	records map[recKey]*Record
	order   []recKey
	denied  map[deniedKey]bool // the minute's denied flows, logged once each
	begun   map[nat.Key]*begun // allowed flows the writer saw begin
	half    map[nat.Key]*halfOpen
	idle    func() time.Duration // conntrack's idle timeout, which ends a half-open flow
	due     time.Time            // the earliest C tuple due; zero with none
	dirty   bool
	current string
}

type recKey struct{ nsg, mac string }

// begun is an allowed flow the writer saw begin.
type begun struct {
	nsgs           []dataplane.FlowNSG // the NSGs that decided it, for its C and E tuples
	last           time.Time           // its latest B or C tuple's
	packets, bytes [2]uint64           // what its C tuples counted
}

// halfOpen is a flow that an NSG allowed and one further on denied (or
// the load balancer dropped). It never enters conntrack, so no E comes
// for it from the dataplane; the writer ends it as conntrack ends a flow
// that nothing answers, after the idle timeout since its last packet.
type halfOpen struct {
	nsgs           []dataplane.FlowNSG // the NSGs that allowed it
	last           time.Time           // its B or latest C tuple's
	seen           time.Time           // its latest packet's
	packets, bytes uint64              // what it sent since its last tuple
}

// MaxHalfOpen bounds the half-open flows the writer remembers: a flood of
// denied connections from fresh ports would otherwise grow it without end.
// Beyond it, a denied flow's allowing NSGs log it as they did before there
// were E tuples for it: a B once a minute.
const MaxHalfOpen = 65536

// deniedKey is a denied flow as one NSG saw it, allowing or denying.
type deniedKey struct {
	nsg string
	dir nsg.Direction
	k   nat.Key
}

// New returns a writer into dir for lab.
func New(dir, lab string) *Writer {
	h := fnv.New128a()
	h.Write([]byte("emulator lab " + lab))
	s := h.Sum(nil)
	return &Writer{
		dir: dir, lab: lab,
		systemID: fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16]),
		records:  map[recKey]*Record{},
		denied:   map[deniedKey]bool{},
		begun:    map[nat.Key]*begun{},
		half:     map[nat.Key]*halfOpen{},
		idle:     func() time.Duration { return nat.DefaultTimeouts().Idle },
	}
}

// Dir is the directory the files go to.
func (w *Writer) Dir() string { return w.dir }

// Current is the file of the minute being written, "" before the first.
func (w *Writer) Current() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Run consumes events until stop is closed, writing the minute's file at
// most once a second.
func (w *Writer) Run(events *dataplane.FlowEvents, stop <-chan struct{}) {
	w.mu.Lock()
	w.idle = events.IdleTimeout
	w.mu.Unlock()
	w.run(events.C(), events.Live, stop)
}

func (w *Writer) run(events <-chan dataplane.FlowEvent, live func() []dataplane.FlowEvent, stop <-chan struct{}) {
	w.adopt(time.Now(), live())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case ev := <-events:
			w.Add(ev)
		case now := <-tick.C:
			w.continueFlows(now, live)
			w.endHalfOpen(now)
			w.Flush()
		case <-stop:
			// The subscription has ended by now, so what is queued is all
			// there will be: flows that began before logging was turned
			// off, which select alone would drop at random.
			for {
				select {
				case ev := <-events:
					w.Add(ev)
					continue
				default:
				}
				break
			}
			w.Flush()
			return
		}
	}
}

// Forget drops what the writer remembers of the flows that began: call it
// when logging stops, since their ends will go unseen.
func (w *Writer) Forget() {
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.begun)
	clear(w.half)
	w.due = time.Time{}
}

// Add records one event.
func (w *Writer) Add(ev dataplane.FlowEvent) {
	if ev.Orig.Proto != header.ProtoTCP && ev.Orig.Proto != header.ProtoUDP {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var nsgs []dataplane.FlowNSG
	if b := w.begun[ev.Orig]; ev.State == dataplane.FlowEnd && b != nil {
		nsgs = b.nsgs
	} else {
		nsgs = ev.NSGs() // an end of a flow that began before logging did: today's rules
	}
	w.addLocked(ev, nsgs)
}

// continueFlows logs a C tuple for each flow whose last tuple is
// ContinueEvery old at now. It reads the live flows' counters from live
// only when one is due, and at most once a minute (as Azure collects flow
// logs), since that walks the whole flow table: flows that began in
// different seconds would otherwise have it read every second.
func (w *Writer) continueFlows(now time.Time, live func() []dataplane.FlowEvent) {
	w.mu.Lock()
	due := !w.due.IsZero() && !now.Before(w.due)
	w.mu.Unlock()
	if !due {
		return
	}
	flows := live()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, fi := range flows {
		b := w.begun[fi.Orig]
		if b == nil || now.Sub(b.last) < ContinueEvery {
			continue
		}
		ev := dataplane.FlowEvent{Time: now, State: stateContinue, Orig: fi.Orig, Xl: fi.Xl}
		for d := range 2 {
			ev.Packets[d], ev.Bytes[d] = since(fi.Packets[d], b.packets[d]), since(fi.Bytes[d], b.bytes[d])
		}
		b.packets, b.bytes, b.last = fi.Packets, fi.Bytes, now
		w.addLocked(ev, b.nsgs)
	}
	// A flow gone from the table without its end here yet (queued, or
	// lost to a full queue) waits another interval rather than being
	// looked for every second.
	w.due = time.Time{}
	for _, b := range w.begun {
		if now.Sub(b.last) >= ContinueEvery {
			b.last = now
		}
		w.schedule(b)
	}
	if next := now.Add(time.Minute); !w.due.IsZero() && w.due.Before(next) {
		w.due = next
	}
}

// endHalfOpen logs, at now, an E tuple for each half-open flow that sent
// nothing for the idle timeout, and a C tuple for each that has gone on
// for ContinueEvery since its last tuple.
func (w *Writer) endHalfOpen(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.half) == 0 {
		return
	}
	idle := w.idle()
	// Only the flows due are sorted (into the order their packets came, so
	// the file reads the same each run): this runs every second, over up
	// to MaxHalfOpen flows.
	var due []nat.Key
	for k, h := range w.half {
		if now.Sub(h.seen) >= idle || now.Sub(h.last) >= ContinueEvery {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b nat.Key) int { return w.half[a].seen.Compare(w.half[b].seen) })
	for _, k := range due {
		h := w.half[k]
		ev := dataplane.FlowEvent{Time: now, State: stateContinue, Orig: k, Xl: k, Packets: [2]uint64{h.packets, 0}, Bytes: [2]uint64{h.bytes, 0}}
		if now.Sub(h.seen) >= idle {
			ev.State = dataplane.FlowEnd
			delete(w.half, k)
		}
		h.packets, h.bytes, h.last = 0, 0, now
		w.addLocked(ev, h.nsgs)
	}
}

// halfOpenLocked counts ev, a packet of a flow that nsgs denied further
// on, to the NSGs among them that allowed it. It reports whether the
// packet begins the flow for them (its B tuple is due).
func (w *Writer) halfOpenLocked(ev dataplane.FlowEvent, nsgs []dataplane.FlowNSG) (begins, tracked bool) {
	h := w.half[ev.Orig]
	if h == nil {
		var allowed []dataplane.FlowNSG
		for _, n := range nsgs {
			if n.Rule.Allow {
				allowed = append(allowed, n)
			}
		}
		if len(allowed) == 0 || len(w.half) >= MaxHalfOpen {
			return false, false
		}
		h = &halfOpen{nsgs: allowed, last: ev.Time}
		w.half[ev.Orig] = h
		begins = true
	}
	h.seen = ev.Time
	h.packets += ev.Packets[0]
	h.bytes += ev.Bytes[0]
	return begins, true
}

// adopt takes on the flows live when logging begins, evs (Live): they
// began unseen, so they have no B tuple, but as they go on they get C
// tuples and an E, each counting from now, as a flow log turned on in
// Azure starts with the flows under way.
func (w *Writer) adopt(now time.Time, evs []dataplane.FlowEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range evs {
		w.adoptLocked(now, ev, ev.NSGs())
	}
}

// adoptLocked takes on ev, a live flow that the NSGs nsgs decided.
func (w *Writer) adoptLocked(now time.Time, ev dataplane.FlowEvent, nsgs []dataplane.FlowNSG) {
	if _, seen := w.begun[ev.Orig]; seen || len(nsgs) == 0 {
		return
	}
	b := &begun{nsgs: nsgs, last: now, packets: ev.Packets, bytes: ev.Bytes}
	w.begun[ev.Orig] = b
	w.schedule(b)
}

// schedule makes sure w.due is no later than b's next C tuple.
func (w *Writer) schedule(b *begun) {
	if next := b.last.Add(ContinueEvery); w.due.IsZero() || next.Before(w.due) {
		w.due = next
	}
}

// since is how much a counter grew from was to now: 0 if it went back,
// as a new flow under an old flow's key starts again from nothing.
func since(now, was uint64) uint64 {
	if now < was {
		return 0
	}
	return now - was
}

// addLocked records ev, whose flow the NSGs nsgs decided.
func (w *Writer) addLocked(ev dataplane.FlowEvent, nsgs []dataplane.FlowNSG) {
	var begins, tracked bool
	switch ev.State {
	case dataplane.FlowDeny:
		begins, tracked = w.halfOpenLocked(ev, nsgs)
	case dataplane.FlowBegin:
		delete(w.half, ev.Orig) // allowed all the way now (a rule changed): conntrack ends it
		if len(nsgs) > 0 {
			b := &begun{nsgs: nsgs, last: ev.Time}
			w.begun[ev.Orig] = b
			w.schedule(b)
		}
	case dataplane.FlowEnd:
		// Azure's counters are since the flow's last tuple.
		if b := w.begun[ev.Orig]; b != nil {
			for d := range 2 {
				ev.Packets[d], ev.Bytes[d] = since(ev.Packets[d], b.packets[d]), since(ev.Bytes[d], b.bytes[d])
			}
			delete(w.begun, ev.Orig)
		}
	}
	// Only a later minute starts a new file: an event stamped in the last
	// minute can arrive after one of this minute (workers and the sweeper
	// stamp events before queueing them), and going back would rewrite the
	// last minute's file with that event alone. It joins this minute's
	// record, its tuple keeping its own time.
	if m := ev.Time.UTC().Truncate(time.Minute); m.After(w.minute) {
		if w.dirty {
			w.flushLocked()
		}
		w.minute, w.records, w.order, w.denied = m, map[recKey]*Record{}, nil, map[deniedKey]bool{}
	}
	for _, n := range nsgs {
		if (ev.State == dataplane.FlowEnd || ev.State == stateContinue) && !n.Rule.Allow {
			continue
		}
		// A denied flow never enters conntrack, so each packet of it (a
		// client's resent SYNs, a UDP sender's datagrams) comes as an
		// event of its own; Azure logs the flow, once a minute, in the
		// NSG that denied it and in the source's that allowed it.
		if ev.State == dataplane.FlowDeny && n.Rule.Allow && tracked {
			if !begins {
				continue // a half-open flow's later packet: counted for its C or E
			}
		} else if ev.State == dataplane.FlowDeny {
			d := deniedKey{n.Rule.NSG, n.Direction, n.Tuple}
			if w.denied[d] {
				continue
			}
			w.denied[d] = true
		}
		w.addTuple(n, tuple(ev, n))
	}
}

func (w *Writer) addTuple(n dataplane.FlowNSG, t string) {
	node := n.Tuple.Src
	if n.Direction == nsg.Inbound {
		node = n.Tuple.Dst
	}
	mac := MAC(node)
	k := recKey{n.Rule.NSG, mac}
	r := w.records[k]
	if r == nil {
		r = &Record{
			Time: w.minute.Format("2006-01-02T15:04:05.0000000Z"), SystemID: w.systemID, MACAddress: mac,
			Category:      "NetworkSecurityGroupFlowEvent",
			ResourceID:    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/" + strings.ToUpper(w.lab) + "/PROVIDERS/MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/" + strings.ToUpper(n.Rule.NSG),
			OperationName: "NetworkSecurityGroupFlowEvents",
			Properties:    Properties{Version: 2},
		}
		w.records[k] = r
		w.order = append(w.order, k)
	}
	name := RuleName(n.Rule)
	var rf *RuleFlows
	for i := range r.Properties.Flows {
		if r.Properties.Flows[i].Rule == name {
			rf = &r.Properties.Flows[i]
		}
	}
	if rf == nil {
		r.Properties.Flows = append(r.Properties.Flows, RuleFlows{Rule: name, Flows: []MACFlows{{MAC: mac}}})
		rf = &r.Properties.Flows[len(r.Properties.Flows)-1]
	}
	rf.Flows[0].FlowTuples = append(rf.Flows[0].FlowTuples, t)
	w.dirty = true
}

// RuleName is a rule as flow logs name it: DefaultRule_ for the defaults
// of F10, UserRule_ for the NSG's own.
func RuleName(r *nsg.Rule) string {
	if r.Default {
		return "DefaultRule_" + r.Name
	}
	return "UserRule_" + r.Name
}

// MAC is the NIC address the lab gives the node at addr: Azure's OUI
// 00-0D-3A and the address's low three bytes.
func MAC(addr header.Addr) string {
	return fmt.Sprintf("000D3A%06X", uint32(addr)&0xffffff)
}

// tuple formats one flow tuple.
func tuple(ev dataplane.FlowEvent, n dataplane.FlowNSG) string {
	k := n.Tuple
	proto := "T"
	if k.Proto == header.ProtoUDP {
		proto = "U"
	}
	dir, access, state := "O", "A", "B"
	if n.Direction == nsg.Inbound {
		dir = "I"
	}
	if !n.Rule.Allow {
		access = "D"
	}
	counts := ",,,"
	switch ev.State {
	case dataplane.FlowEnd:
		state = "E"
	case stateContinue:
		state = "C"
	}
	if state != "B" {
		counts = fmt.Sprintf("%d,%d,%d,%d", ev.Packets[0], ev.Bytes[0], ev.Packets[1], ev.Bytes[1])
	}
	return fmt.Sprintf("%d,%v,%v,%d,%d,%s,%s,%s,%s,%s", ev.Time.Unix(), k.Src, k.Dst, k.SrcPort, k.DstPort, proto, dir, access, state, counts)
}

// Flush writes the current minute's file if it changed.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.dirty {
		return nil
	}
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	f := File{Records: []Record{}}
	for _, k := range w.order {
		f.Records = append(f.Records, *w.records[k])
	}
	m := w.minute
	path := filepath.Join(w.dir, fmt.Sprintf("y=%04d/m=%02d/d=%02d/h=%02d/m=%02d/PT1M.json", m.Year(), m.Month(), m.Day(), m.Hour(), m.Minute()))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	w.dirty, w.current = false, path
	return nil
}
