package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Labs come up and go down at once: each makes its directory under a
// parent (the labs' state directory, EtcDir) and the last to go removes
// the parent. MkdirAll must make its directory whatever the others do
// meanwhile: os.MkdirAll failed with "mkdir PARENT: file exists" when
// another made the parent just before it and a third removed it just
// after (TestUpsAndDownsAtOnce, once in CI).
func TestMkdirAllBesideTeardowns(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "labs")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(parent, fmt.Sprint(i))
			for range 2000 {
				if err := MkdirAll(dir, 0o700); err != nil {
					errs <- err
					return
				}
				os.Remove(dir)
				os.Remove(parent) // fails while another's directory is there
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A file where the directory or its parent goes is an error at once, not
// a parent that keeps going.
func TestMkdirAllOverAFile(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "labs")
	if err := os.WriteFile(parent, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{parent, filepath.Join(parent, "lab")} {
		if err := MkdirAll(dir, 0o700); err == nil || strings.Contains(err.Error(), "keeps being removed") {
			t.Errorf("MkdirAll(%s) over a file: %v, want the file's error", dir, err)
		}
	}
}
