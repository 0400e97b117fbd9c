package topology

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"
)

// utf16File is s as a UTF-16 file in order, behind its byte-order mark.
func utf16File(s string, order binary.AppendByteOrder) []byte {
	b := order.AppendUint16(nil, 0xfeff)
	for _, u := range utf16.Encode([]rune(s)) {
		b = order.AppendUint16(b, u)
	}
	return b
}

func TestFromUTF16(t *testing.T) {
	const text = "a: 1\nb: \U0001F600 é\n"
	le, be := utf16File(text, binary.LittleEndian), utf16File(text, binary.BigEndian)
	be16 := binary.BigEndian.AppendUint16
	highThenLetter := be16(be16(utf16File("a\n", binary.BigEndian), 0xd83d), 'b')
	for _, c := range []struct {
		name string
		data []byte
		want string // "" if broken
		line int    // where broken
	}{
		{"UTF-8", []byte(text), text, 0},
		{"UTF-8 with its byte-order mark", []byte("\ufeff" + text), "\ufeff" + text, 0},
		{"UTF-16LE", le, text, 0},
		{"UTF-16BE", be, text, 0},
		{"only the mark", []byte{0xfe, 0xff}, "", 0},
		{"an odd byte at the end", append(bytes.Clone(le), 'x'), "", 3},
		{"a high surrogate at the end", binary.LittleEndian.AppendUint16(bytes.Clone(le), 0xd83d), "", 3},
		{"a high surrogate before a letter", highThenLetter, "", 2},
		{"a low surrogate first", be16([]byte{0xfe, 0xff}, 0xde00), "", 1},
	} {
		got, line, ok := fromUTF16(c.data)
		broken := c.want == "" && c.line > 0
		if ok == broken || (ok && string(got) != c.want) || (!ok && line != c.line) {
			t.Errorf("%s: fromUTF16 = %q, line %d, ok %v; want %q, line %d", c.name, got, line, ok, c.want, c.line)
		}
	}
}

// A syntax error in a UTF-16 file is reported on its own line, as in the
// same file in UTF-8. It was two lines late, found by fuzzing FuzzParse.
func TestUTF16ErrorLine(t *testing.T) {
	lines := strings.SplitAfter(string(DefaultYAML()), "\n")
	bad := strings.Join(lines[:39], "") + "      - name: [oops\n" + strings.Join(lines[39:], "")
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"UTF-8", []byte(bad)},
		{"UTF-16LE", utf16File(bad, binary.LittleEndian)},
		{"UTF-16BE", utf16File(bad, binary.BigEndian)},
	} {
		_, err := Parse("lab.yaml", c.data)
		if err == nil || !strings.HasPrefix(err.Error(), "lab.yaml:40: ") {
			t.Errorf("%s: Parse = %v, want an error on line 40", c.name, err)
		}
	}
	good := utf16File(string(DefaultYAML()), binary.LittleEndian)
	if top, err := Parse("lab.yaml", good); err != nil || len(top.Nodes) != len(Default().Nodes) {
		t.Errorf("the default lab in UTF-16: %v", err)
	}
	odd := good[:len(good)-1]
	if _, err := Parse("lab.yaml", odd); err == nil || !strings.Contains(err.Error(), "UTF-16") {
		t.Errorf("a UTF-16 file cut in a character: %v, want an error naming UTF-16", err)
	}
}
