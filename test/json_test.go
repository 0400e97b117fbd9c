package test

import (
	"path/filepath"
	"testing"
)

// flowLogJSON is `flowlog --json` and status's flowLogs.
type flowLogJSON struct {
	Enabled   bool   `json:"enabled"`
	Directory string `json:"directory"`
	Current   string `json:"current"`
	Lost      uint64 `json:"lost"`
}

// flowlog --json answers the query and the on/off forms with the state the
// lab is in afterwards, the same as status --json reports.
func TestFlowlogJSON(t *testing.T) {
	l := upLab(t)
	dir := filepath.Join("/run/emulator", l.name, "flowlogs")
	for _, c := range []struct {
		args []string
		on   bool
	}{
		{nil, false}, // the default lab starts with flow logs off
		{[]string{"on"}, true},
		{nil, true},
		{[]string{"off"}, false},
	} {
		var got flowLogJSON
		l.emuJSON(&got, "flowlog", c.args...)
		if got.Enabled != c.on || (c.on && got.Directory != dir) {
			t.Errorf("flowlog --json %v = %+v; want enabled %v, directory %s while on", c.args, got, c.on, dir)
		}
		var st struct {
			FlowLogs flowLogJSON `json:"flowLogs"`
		}
		l.emuJSON(&st, "status")
		if st.FlowLogs.Enabled != got.Enabled || st.FlowLogs.Directory != got.Directory {
			t.Errorf("after flowlog --json %v: status says %+v, flowlog said %+v", c.args, st.FlowLogs, got)
		}
	}
}
