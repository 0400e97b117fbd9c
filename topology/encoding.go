package topology

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// badText finds the first character of data that yaml.v3 refuses, or that
// it takes in and then garbles, and says where and what it is. yaml.v3
// reports these without a line ("invalid leading UTF-8 octet", "control
// characters are not allowed"), so the parser put them on line 1: a
// Windows-1252 "ü" in a comment on line 40 read as "line 1: invalid
// leading UTF-8 octet". A byte-order mark past the start of the file
// (files joined with cat keep one at each join) is taken into the next
// name, invisibly ("virtualMachines: unknown field"), or, right after the
// first one, eats a character of the line after it. line is 0 when data
// is clean. Lines end at \n, \r\n or a lone \r, as editors count them.
func badText(data []byte) (line int, msg string) {
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	// A NUL among the first bytes is how git and grep tell a binary file;
	// "remove the control character" would be no help to one who gave
	// the emulator a binary (an ELF starts with DEL) for a topology.
	if bytes.IndexByte(data[:min(len(data), 8000)], 0) >= 0 {
		return 1, "this is not a text file (it holds NUL bytes, as a binary does); give a YAML topology file, such as `emulator init` prints"
	}
	line, col := 1, 0
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		col++
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, fmt.Sprintf("byte 0x%02X (column %d) is not UTF-8: save the file as UTF-8 (it looks like Latin-1 or Windows-1252 text)", data[i], col)
		case r == '\ufeff':
			return line, fmt.Sprintf("an invisible byte-order mark (U+FEFF, column %d) that is not the first character of the file, as where two files were joined; remove it", col)
		case r == '\n' || r == '\r' && (i+1 == len(data) || data[i+1] != '\n'):
			line, col = line+1, 0
		case !yamlPrintable(r):
			return line, fmt.Sprintf("the control character U+%04X (column %d) cannot be in a YAML file; remove it", r, col)
		}
		i += size
	}
	return 0, ""
}

// yamlPrintable is YAML's set of characters a stream may hold, as yaml.v3's
// reader checks it.
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r >= 0x20 && r <= 0x7e, r == 0x85:
		return true
	case r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000 && r <= 0x10ffff:
		return true
	}
	return false
}
