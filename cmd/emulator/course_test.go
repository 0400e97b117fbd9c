package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aseemu/emulator/scripts/labs"
)

// lab list --json lists every lab with what the text listing shows. It
// needs no root and no running lab.
func TestLabListJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"lab", "list", "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("lab list --json: exit %d: %s", code, stderr.String())
	}
	var got []struct {
		Number int      `json:"number"`
		Title  string   `json:"title"`
		Facts  []string `json:"facts"`
		Guide  string   `json:"guide"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("lab list --json: %v\n%s", err, stdout.String())
	}
	all, err := labs.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) {
		t.Fatalf("lab list --json: %d labs, want %d:\n%s", len(got), len(all), stdout.String())
	}
	for i, l := range all {
		g := got[i]
		if g.Number != l.Number || g.Title != l.Title || !reflect.DeepEqual(g.Facts, l.Facts) || g.Guide != "scripts/labs/"+l.Dir+"/README.md" {
			t.Errorf("lab list --json entry %d = %+v; want lab %d %q, facts %v, guide of %s", i, g, l.Number, l.Title, l.Facts, l.Dir)
		}
	}
}

// A remembered step's evidence is the line its match found; a match across
// lines shows its first line and its last, not the flows between.
func TestEvidence(t *testing.T) {
	out := "PROTO ...\ntcp a -> vip:80  x\nudp b -> dns:53  y\ntcp c -> echo:80  z\nudp d -> dns:53  w\n"
	for _, c := range []struct{ match, want string }{
		{`(?m)^tcp a .*$`, "tcp a -> vip:80 x"},
		{`(?m)^tcp a .*\n(?:.*\n)*?tcp c`, "tcp a -> vip:80 x … tcp c -> echo:80 z"},
	} {
		if got := evidence(labs.Probe{Match: c.match}, out); got != c.want {
			t.Errorf("evidence of %q = %q, want %q", c.match, got, c.want)
		}
	}
}
