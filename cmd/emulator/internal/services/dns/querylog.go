package dns

import (
	"container/list"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// LogSize is how many queries the server keeps: Azure DNS's query logs
// (DNS security policy) keep every query in a workspace; the lab keeps the
// last few hundred, enough to see what a command resolved, in memory that
// does not grow with the query rate.
const LogSize = 500

// maxAnswers bounds the answers a logged query keeps: the lab's answers
// have one record, and a reply of many would only bury the line.
const maxAnswers = 4

// Query is one query the server answered, as a DNS query log records it,
// with how many times the same client asked it since and got the same
// answer.
type Query struct {
	Time   time.Time      `json:"time"`           // of the last
	Count  int            `json:"count"`          // times asked and answered alike
	Proto  string         `json:"proto"`          // udp or tcp
	Client netip.AddrPort `json:"client"`         // where the last came from, as flows shows it
	Node   string         `json:"node,omitempty"` // the lab's node at the client's address
	Name   string         `json:"name"`           // as asked, "" in a query without a question
	Type   string         `json:"type"`
	Rcode  string         `json:"rcode"`
	// Answers are the answer records' data (an address, a name), at most
	// maxAnswers of them.
	Answers []string `json:"answers"`
}

// key is what makes two queries the same in the log: the client's port,
// new with every query, and the time aside.
func (q *Query) key() string {
	return strings.Join(append([]string{q.Proto, q.Client.Addr().String(), q.Name, q.Type, q.Rcode}, q.Answers...), " ")
}

// QueryLog is the last distinct queries a server answered, each once, at
// the time it was last asked. A query asked again moves to the end rather
// than taking a place of its own: the ASEs' health checks resolve their
// dependencies (F16) several times a second, and would otherwise push a
// learner's query out of the log within minutes. Safe for concurrent use.
type QueryLog struct {
	mu    sync.Mutex
	order *list.List // of *Query, oldest first
	byKey map[string]*list.Element
	size  int
}

// NewQueryLog returns a log that keeps the last size distinct queries.
func NewQueryLog(size int) *QueryLog {
	return &QueryLog{order: list.New(), byKey: make(map[string]*list.Element), size: size}
}

func (l *QueryLog) add(q Query) {
	k := q.key()
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.byKey[k]; e != nil {
		old := e.Value.(*Query)
		q.Count = old.Count + 1
		e.Value = &q
		l.order.MoveToBack(e)
		return
	}
	q.Count = 1
	l.byKey[k] = l.order.PushBack(&q)
	if l.order.Len() > l.size {
		oldest := l.order.Front()
		delete(l.byKey, oldest.Value.(*Query).key())
		l.order.Remove(oldest)
	}
}

// Queries returns the queries kept, oldest first.
func (l *QueryLog) Queries() []Query {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Query, 0, l.order.Len())
	for e := l.order.Front(); e != nil; e = e.Next() {
		out = append(out, *e.Value.(*Query))
	}
	return out
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
