package main

import (
	"os"
	"testing"
)

// TestMain names the program as the README runs it: os.Args[0] is the
// test binary's path here, which no advice a test pins would name.
func TestMain(m *testing.M) {
	self = "bin/emulator"
	os.Exit(m.Run())
}

func TestInvokedAs(t *testing.T) {
	for arg0, want := range map[string]string{
		"bin/emulator":            "bin/emulator",
		"emulator":                "emulator",
		"/usr/local/bin/emulator": "/usr/local/bin/emulator",
		"./emulator":              "./emulator",
		"":                        "emulator",
		"my bin/emulator":         "emulator", // a shell would need it quoted
		"bin/emu%dlator":          "emulator", // and it goes into format strings
	} {
		if got := invokedAs(arg0); got != want {
			t.Errorf("invokedAs(%q) = %q, want %q", arg0, got, want)
		}
	}
}
