package topology

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// Text yaml.v3 refuses without a line, or garbles, is reported on its own
// line with what it is. Each of these was "lab.yaml:1: invalid leading
// UTF-8 octet", "lab.yaml:1: control characters are not allowed", or, for
// a byte-order mark where two files were joined, an unknown field whose
// name looked right.
func TestBadTextLine(t *testing.T) {
	body := strings.Join(vnet, "\n") + "\n" // lines 1-5
	for _, c := range []struct {
		name, data string
		line       int
		msg        string
	}{
		{"Windows-1252 in a comment", body + "# Z\xfcrich office\n", 6, "byte 0xFC (column 4) is not UTF-8"},
		{"a cut UTF-8 character", body + "virtualMachines: []\n# \xe2\x82\n", 7, "byte 0xE2 (column 3) is not UTF-8"},
		{"a control character", body + "virtualMachines: []\n\x01\n", 7, "control character U+0001 (column 1)"},
		{"a binary", "\x7fELF\x02\x01\x01\x00" + body, 1, "this is not a text file (it holds NUL bytes"},
		{"DEL in a CRLF file", strings.ReplaceAll(body, "\n", "\r\n") + "# a\x7f\r\n", 6, "control character U+007F (column 4)"},
		{"a C1 control in a CR file", strings.ReplaceAll(body, "\n", "\r") + "# \u0090\r", 6, "control character U+0090"},
		{"two files joined", "\ufeff" + body + "\ufeffvirtualMachines: []\n", 6, "byte-order mark (U+FEFF, column 1)"},
		{"two byte-order marks", "\ufeff\ufeff" + body, 1, "byte-order mark (U+FEFF, column 1)"},
	} {
		_, err := Parse("lab.yaml", []byte(c.data))
		want := fmt.Sprintf("lab.yaml:%d: ", c.line)
		if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: Parse = %v\nwant %s...%s", c.name, err, want, c.msg)
		}
	}
	// What YAML allows stays allowed: one byte-order mark first, tabs
	// after the indentation, and characters outside ASCII.
	ok := "\ufeff" + body + "virtualMachines: []\t# Zürich \U0001F600\n"
	if _, err := Parse("lab.yaml", []byte(ok)); err != nil {
		t.Errorf("clean text refused: %v", err)
	}
}
