package topology

import (
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in a topology file. Its text is FILE:LINE: FIELD: MSG,
// the shape editors and CI logs already link to a source position.
type Error struct {
	File  string
	Line  int    // 1-based; 0 when the problem concerns the whole file
	Field string // YAML path such as virtualNetworks[0].subnets[1].addressPrefix; "" for syntax errors
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in line order. Parse and Load
// return it, so a caller can tell a bad topology (errors.As(err, &Errors{}))
// from a failure to read the file.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find an individual *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sorted orders the errors by line, keeping discovery order within a line,
// and drops exact repeats (one bad value can be reached through two checks).
func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	out := es[:0]
	seen := make(map[Error]bool, len(es))
	for _, e := range es {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	return out
}
