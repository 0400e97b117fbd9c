package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// makeCheck runs `make check` with the repository's Makefile in a module
// of its own holding the one file src, with PATH lacking Go's bin, as sudo
// leaves it, and returns what it printed and whether it passed.
func makeCheck(t *testing.T, src string, vars ...string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"Makefile": string(mk), "go.mod": "module checkme\n\ngo 1.22\n", "f.go": src} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{"-C", dir, "--no-print-directory", "check", "GO=" + filepath.Join(runtime.GOROOT(), "bin", "go")}, vars...)
	cmd := exec.Command("make", args...)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+sudoPath)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// sudoPath is a PATH as sudo's secure_path leaves it: without Go's bin.
const sudoPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// make check finds gofmt where it finds go, so that sudo's PATH cannot turn
// it into a check that passes without looking; and a gofmt that cannot run
// fails it.
func TestMakeCheckGofmt(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	for _, d := range filepath.SplitList(sudoPath) {
		if _, err := os.Stat(filepath.Join(d, "gofmt")); err == nil {
			t.Skipf("%s/gofmt exists: this machine has no PATH without gofmt to try", d)
		}
	}
	const good = "package checkme\n\nfunc F() {}\n"
	if out, ok := makeCheck(t, good); !ok {
		t.Errorf("make check of a formatted file failed:\n%s", out)
	}
	if out, ok := makeCheck(t, "package checkme\nfunc   F( ) {  }\n"); ok || !strings.Contains(out, "gofmt would change") || !strings.Contains(out, "f.go") {
		t.Errorf("make check of an unformatted file, without gofmt on PATH: want a failure naming f.go, got ok=%v:\n%s", ok, out)
	}
	if out, ok := makeCheck(t, good, "GOFMT=/nonexistent/gofmt"); ok || !strings.Contains(out, "/nonexistent/gofmt") {
		t.Errorf("make check with a gofmt that cannot run: want a failure naming it, got ok=%v:\n%s", ok, out)
	}
}
