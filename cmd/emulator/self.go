package main

import (
	"os"
	"strings"
)

// self is the program as the user invoked it, for the commands advice
// tells them to run: os.Args[0] as typed, bin/emulator from the
// repository as the README writes it, emulator when the shell found it
// through PATH, so that the advice can be pasted as it is.
var self = invokedAs(os.Args[0])

// invokedAs is arg0, or "emulator" when arg0 is empty or holds a
// character a shell would need quoted: advice then names the program
// plainly rather than quote a path nobody types. The name also goes into
// format strings, so it must hold no %.
func invokedAs(arg0 string) string {
	if arg0 == "" || strings.IndexFunc(arg0, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._+-", r))
	}) >= 0 {
		return "emulator"
	}
	return arg0
}
