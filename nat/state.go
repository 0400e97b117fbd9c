package nat

import (
	"strconv"
	"time"

	"github.com/aseemu/emulator/dataplane/header"
)

// Dir says which way a packet travels through its flow.
type Dir uint8

const (
	Original Dir = 0 // as the initiator sent it
	Reply    Dir = 1 // back towards the initiator
)

// String returns "original" or "reply".
func (d Dir) String() string {
	if d == Reply {
		return "reply"
	}
	return "original"
}

// State is how far a flow has got. TCP follows SYN, FIN and RST, which is
// all the timeouts of F17 need; UDP and ICMP echo go from New to
// Established when the first reply is seen, for `emulator flows` to show
// the flows nobody answered.
type State uint8

const (
	StateNew         State = iota // created, nothing seen back yet (TCP: not even the first packet)
	StateSynSent                  // TCP: SYN seen, no reply yet
	StateEstablished              // TCP: reply seen; UDP, ICMP: reply seen
	StateClosing                  // TCP: FIN seen in either direction
	StateClosed                   // TCP: RST seen
	numStates
)

var stateNames = [numStates]string{"new", "syn-sent", "established", "closing", "closed"}

// String returns a short lowercase name.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// nextState is the state after a packet with TCP flags (0 for UDP and
// ICMP) went through a flow in state s in direction d.
func nextState(s State, proto uint8, d Dir, flags uint8) State {
	if proto != header.ProtoTCP {
		if s == StateNew && d == Reply {
			return StateEstablished
		}
		return s
	}
	switch {
	case flags&header.TCPFlagRST != 0:
		return StateClosed
	case flags&header.TCPFlagFIN != 0:
		if s == StateClosed {
			return s
		}
		return StateClosing
	case flags&(header.TCPFlagSYN|header.TCPFlagACK) == header.TCPFlagSYN:
		// A new SYN on a closed or closing flow reopens it, as Linux does
		// for a connection in TIME_WAIT: the client reused its port and
		// the translation it had is still the right one.
		if s == StateNew || s == StateClosing || s == StateClosed {
			return StateSynSent
		}
		return s
	case s == StateNew:
		// Picked up mid-stream (a SYN-ACK or plain ACK first): the flow
		// exists on both ends already.
		return StateEstablished
	case s == StateSynSent && d == Reply:
		return StateEstablished
	}
	return s
}

// Timeouts are F17's: how long a flow lives after its last packet, by
// state. Zero fields take the defaults.
type Timeouts struct {
	Idle time.Duration // new, SYN-sent and established TCP; UDP; ICMP echo. F17: 4 minutes
	Fin  time.Duration // after a FIN. F17: 240 s
	Rst  time.Duration // after a RST. F17: 15 s
}

// DefaultTimeouts returns F17's timeouts.
func DefaultTimeouts() Timeouts {
	return Timeouts{Idle: 4 * time.Minute, Fin: 240 * time.Second, Rst: 15 * time.Second}
}

func (t Timeouts) withDefaults() Timeouts {
	d := DefaultTimeouts()
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	if t.Fin <= 0 {
		t.Fin = d.Fin
	}
	if t.Rst <= 0 {
		t.Rst = d.Rst
	}
	return t
}

// byState lays the timeouts out as the lookup reads them, indexed by State.
func (t Timeouts) byState() [numStates]int64 {
	return [numStates]int64{
		StateNew:         int64(t.Idle),
		StateSynSent:     int64(t.Idle),
		StateEstablished: int64(t.Idle),
		StateClosing:     int64(t.Fin),
		StateClosed:      int64(t.Rst),
	}
}

// Clock gives the table its time: monotonic nanoseconds from any origin.
// Tests pass a fake one to run F17's minutes in microseconds.
type Clock interface {
	Now() int64
}

// SystemClock returns the monotonic clock of the process, in nanoseconds
// since the call.
func SystemClock() Clock { return monoClock{start: time.Now()} }

type monoClock struct{ start time.Time }

func (c monoClock) Now() int64 { return int64(time.Since(c.start)) }
