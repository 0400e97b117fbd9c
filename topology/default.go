package topology

import _ "embed"

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the default lab's file verbatim, comments included;
// `emulator init` prints it as a starting point.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the default lab of SPEC §3, freshly parsed so that callers
// cannot change each other's copy. The file is part of the binary and a test
// parses it, so an error here is a build defect: it panics.
func Default() *Topology {
	t, err := Parse("default.yaml", defaultYAML)
	if err != nil {
		panic("topology: embedded default lab is invalid:\n" + err.Error())
	}
	return t
}
