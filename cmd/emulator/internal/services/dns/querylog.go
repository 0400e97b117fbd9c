package dns

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// LogSize is how many queries the server keeps: Azure DNS's query logs
// (DNS security policy) keep every query in a workspace; the lab keeps the
// last few hundred, enough to see what a command just resolved, in memory
// that does not grow with the query rate.
const LogSize = 500

// maxAnswers bounds the answers a logged query keeps: the lab's answers
// have one record, and a reply of many would only bury the line.
const maxAnswers = 4

// Query is one query the server answered, as a DNS query log records it.
type Query struct {
	Time   time.Time      `json:"time"`
	Proto  string         `json:"proto"`          // udp or tcp
	Client netip.AddrPort `json:"client"`         // where the query came from, as flows shows it
	Node   string         `json:"node,omitempty"` // the lab's node at the client's address
	Name   string         `json:"name"`           // as asked, "" in a query without a question
	Type   string         `json:"type"`
	Rcode  string         `json:"rcode"`
	// Answers are the answer records' data (an address, a name), at most
	// maxAnswers of them.
	Answers []string `json:"answers"`
}

// QueryLog is the last queries a server answered. Safe for concurrent use.
type QueryLog struct {
	mu   sync.Mutex
	ring []Query // up to size; once full, next is the oldest
	next int
	size int
}

// NewQueryLog returns a log that keeps the last size queries.
func NewQueryLog(size int) *QueryLog { return &QueryLog{size: size} }

func (l *QueryLog) add(q Query) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < l.size {
		l.ring = append(l.ring, q)
		return
	}
	l.ring[l.next] = q
	l.next = (l.next + 1) % l.size
}

// Queries returns the queries kept, oldest first.
func (l *QueryLog) Queries() []Query {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Query, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

// logged is the log's record of reply m to query r from client.
func logged(r, m *dns.Msg, proto string, client netip.AddrPort, node string) Query {
	q := Query{Time: time.Now(), Proto: proto, Client: client, Node: node, Rcode: dns.RcodeToString[m.Rcode], Answers: []string{}}
	if q.Rcode == "" {
		q.Rcode = strconv.Itoa(m.Rcode)
	}
	if len(r.Question) > 0 {
		q.Name, q.Type = r.Question[0].Name, dns.Type(r.Question[0].Qtype).String()
	}
	for _, rr := range m.Answer {
		if len(q.Answers) == maxAnswers {
			q.Answers = append(q.Answers, "…")
			break
		}
		// The record's text without its header: 192.23.1.2, or
		// db1.internal.cloudapp.net.
		q.Answers = append(q.Answers, strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String())))
	}
	return q
}
