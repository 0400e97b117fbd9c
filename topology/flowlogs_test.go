package topology

import "testing"

// Issue 8: flowLogs turns NSG flow logs on from the start; off by default.
func TestFlowLogsSetting(t *testing.T) {
	if Default().FlowLogs {
		t.Error("the default lab logs flows; it should not unless asked")
	}
	top, err := Parse("lab.yaml", []byte(y(vnet, "flowLogs: {enabled: true}")))
	if err != nil {
		t.Fatal(err)
	}
	if !top.FlowLogs {
		t.Error("flowLogs: {enabled: true} did not enable flow logs")
	}
	runErrCases(t, []errCase{
		{"unknown flowLogs field", y(vnet, "flowLogs: {enabled: true, retention: 7}"), 6, "flowLogs.retention", "unknown field", false},
		{"flowLogs not a bool", y(vnet, "flowLogs: {enabled: often}"), 6, "flowLogs.enabled", "", false},
		{"flowLogs not a mapping", y(vnet, "flowLogs: yes"), 6, "flowLogs", "", false},
	})
}
