package main

import (
	"slices"
	"testing"
)

// A class's labs are listed as the teacher numbered them: a "not running"
// error that lists hc-10 between hc-1 and hc-2 hides who is missing.
func TestCompareLabNames(t *testing.T) {
	got := []string{"hc-10", "lab", "hc-2", "hc-1", "bob", "hc-02x", "hc-1b", "hc-12", "alice", "hc-9"}
	slices.SortFunc(got, compareLabNames)
	want := []string{"alice", "bob", "hc-1", "hc-1b", "hc-2", "hc-02x", "hc-9", "hc-10", "hc-12", "lab"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %v, want %v", got, want)
	}
}
