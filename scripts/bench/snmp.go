package main

import (
	"strconv"
	"strings"
)

// snmpCounter finds counter name of protocol proto in the text of
// /proc/net/snmp, where each protocol has two lines: "Proto: Name1 Name2 ..."
// and then "Proto: 1 2 ...".
func snmpCounter(snmp []byte, proto, name string) (uint64, bool) {
	var names []string
	for line := range strings.Lines(string(snmp)) {
		p, rest, ok := strings.Cut(line, ":")
		if !ok || p != proto {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		vals := strings.Fields(rest)
		for i, n := range names {
			if n == name && i < len(vals) {
				v, err := strconv.ParseUint(vals[i], 10, 64)
				return v, err == nil
			}
		}
		return 0, false
	}
	return 0, false
}
