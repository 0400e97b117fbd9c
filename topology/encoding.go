package topology

import (
	"bytes"
	"encoding/binary"
	"unicode/utf16"
	"unicode/utf8"
)

// fromUTF16 returns data as UTF-8 if it starts with a UTF-16 byte-order
// mark, and other data as it is. yaml.v3 reads UTF-16 itself (Windows
// Notepad saves "Unicode" files so), but the parser finds the line of a
// syntax error by cutting the bytes at '\n' (syntaxLine), which in UTF-16
// cuts characters in half: an error on line 40 of a UTF-16 default lab was
// reported on line 42. ok is false if the UTF-16 is broken, an odd byte at
// the end or a surrogate without its pair; line is then the line it is on.
func fromUTF16(data []byte) (text []byte, line int, ok bool) {
	var order binary.ByteOrder
	switch {
	case bytes.HasPrefix(data, []byte{0xff, 0xfe}):
		order = binary.LittleEndian
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}):
		order = binary.BigEndian
	default:
		return data, 0, true
	}
	data = data[2:]
	text = make([]byte, 0, len(data)/2)
	line = 1
	for i := 0; i < len(data); i += 2 {
		if i+1 == len(data) {
			return nil, line, false
		}
		r := rune(order.Uint16(data[i:]))
		if utf16.IsSurrogate(r) {
			if i+3 >= len(data) {
				return nil, line, false
			}
			if r = utf16.DecodeRune(r, rune(order.Uint16(data[i+2:]))); r == utf8.RuneError {
				return nil, line, false
			}
			i += 2
		}
		if r == '\n' {
			line++
		}
		text = utf8.AppendRune(text, r)
	}
	return text, 0, true
}
