package header

import "strconv"

// Reason says why a packet is malformed. The dataplane counts drops per
// Reason, so the values are small and dense: a [NumReasons]uint64 array
// indexed by Reason holds every counter. The zero value is OK.
type Reason uint8

const (
	OK          Reason = iota
	TooShort           // fewer bytes than the fixed header
	BadVersion         // IP version is not 4
	BadIHL             // IHL < 5, or the header runs past the end of the bytes
	BadTotalLen        // total length < header length, or > the bytes received
	BadL4              // truncated L4 header, TCP data offset < 20 or past the end, UDP length < 8 or past the end
	BadChecksum        // for callers that verify a checksum; no Parse function does
	NumReasons         // number of Reason values, for sizing counter arrays
)

var reasonNames = [NumReasons]string{
	OK:          "ok",
	TooShort:    "too-short",
	BadVersion:  "bad-version",
	BadIHL:      "bad-ihl",
	BadTotalLen: "bad-total-len",
	BadL4:       "bad-l4",
	BadChecksum: "bad-checksum",
}

// String returns a short lowercase name fit for a metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}
