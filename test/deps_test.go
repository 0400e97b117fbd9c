package test

import (
	"archive/zip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// installDeps runs scripts/install-deps.sh with a PATH of stubs only: every
// tool it looks for, but for those left out, and an apt-get that records
// what it was asked to install. It returns apt-get's arguments ("" if it
// was not run).
func installDeps(t *testing.T, env []string, leaveOut ...string) string {
	t.Helper()
	script, err := filepath.Abs("../scripts/install-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, log := filepath.Join(dir, "bin"), filepath.Join(dir, "apt-get.log")
	os.Mkdir(bin, 0o755)
	stub := func(name, body string) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tools := []string{"gcc", "clang"}
	for _, m := range regexp.MustCompile(`\[([\w.+-]+)\]=`).FindAllStringSubmatch(string(src), -1) {
		tools = append(tools, m[1])
	}
	for _, tool := range tools {
		if !slices.Contains(leaveOut, tool) {
			stub(tool, "exit 0")
		}
	}
	stub("id", "echo 0")
	stub("apt-get", `echo "$@" >> `+log)
	sort, err := exec.LookPath("sort")
	if err != nil {
		t.Fatal(err)
	}
	os.Symlink(sort, filepath.Join(bin, "sort"))

	cmd := exec.Command("/bin/bash", script)
	cmd.Env = append(env, "PATH="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install-deps: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(log)
	return string(b)
}

// make test runs go test -race, which needs cgo and so the C compiler go
// uses ($CC, else gcc on Linux, even where clang is): install-deps installs
// gcc when that is missing.
func TestInstallDepsCCompiler(t *testing.T) {
	installs := func(apt, pkg string) bool {
		for _, l := range strings.Split(apt, "\n") {
			if strings.HasPrefix(l, "install ") && slices.Contains(strings.Fields(l), pkg) {
				return true
			}
		}
		return false
	}
	if apt := installDeps(t, nil, "gcc"); !installs(apt, "gcc") || !installs(apt, "libc6-dev") {
		t.Errorf("without gcc: want apt-get install gcc and libc6-dev (only a recommends of gcc), got %q", apt)
	}
	if apt := installDeps(t, nil, "gcc", "curl"); !installs(apt, "gcc") || !installs(apt, "curl") {
		t.Errorf("without gcc and curl: want both installed, got %q", apt)
	}
	if apt := installDeps(t, nil); apt != "" {
		t.Errorf("with every tool there: want no apt-get, got %q", apt)
	}
	// Go's default C compiler on Linux is gcc, whatever else is there.
	if apt := installDeps(t, []string{"CC=clang"}, "gcc"); apt != "" {
		t.Errorf("with CC=clang, which is there: want no apt-get, got %q", apt)
	}
}

// installGo runs scripts/install-go.sh with args, installing into dest, on
// a PATH of the system's directories and bin (not /usr/local/go/bin), and
// returns its output.
func installGo(t *testing.T, dest, bin string, env []string, args ...string) (string, error) {
	t.Helper()
	script, err := filepath.Abs("../scripts/install-go.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/bash", append([]string{script}, args...)...)
	cmd.Env = append(env, "PATH="+bin+":/usr/sbin:/usr/bin:/sbin:/bin", "GO_INSTALL_DIR="+dest, "HOME="+os.Getenv("HOME"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// SPEC §7: the Makefile runs a go that can build the module, and names the
// one install-go.sh would install when the machine has none: Debian 12's
// Go 1.19 can neither build it nor fetch a newer toolchain, while a Go
// from 1.21 on fetches go.mod's by itself.
func TestInstallGoPicksAUsableGo(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "go")
	for _, c := range []struct {
		version string
		usable  bool
	}{{"go1.19.8", false}, {"go1.20.14", false}, {"go1.21.0", true}, {"go1.26.8", true}, {"go2.0.0", true}} {
		bin := t.TempDir()
		stub := "#!/bin/sh\n[ \"$1 $2\" = 'env GOVERSION' ] && echo " + c.version + "\n"
		if err := os.WriteFile(filepath.Join(bin, "go"), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := installGo(t, dest, bin, nil, "--print")
		want := dest + "/bin/go"
		if c.usable {
			want = filepath.Join(bin, "go")
		}
		if err != nil || strings.TrimSpace(out) != want {
			t.Errorf("with %s on PATH: --print said %q (%v), want %s", c.version, out, err, want)
		}
	}
}

// SPEC §7: on a machine without Go, install-go.sh fetches the toolchain
// go.mod names from the Go module proxy and checks it against the checksum
// database, refusing one that does not match.
func TestInstallGoFetchesTheToolchain(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if want == nil {
		t.Fatal("go.mod names no go version")
	}
	// A proxy that serves another zip under the toolchain's name, and
	// passes the checksum database's answers on as they are.
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sumdb/") {
			resp, err := http.Get("https://proxy.golang.org" + r.URL.Path)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			defer resp.Body.Close()
			w.WriteHeader(resp.StatusCode)
			io.Copy(w, resp.Body)
			return
		}
		z := zip.NewWriter(w)
		f, _ := z.Create(strings.TrimSuffix(path.Base(r.URL.Path), ".zip") + "/bin/go")
		f.Write([]byte("#!/bin/sh\necho tampered\n"))
		z.Close()
	}))
	defer fake.Close()
	dest := filepath.Join(t.TempDir(), "go")
	out, err := installGo(t, dest, t.TempDir(), []string{"GOPROXY=" + fake.URL})
	if err == nil || !strings.Contains(out, "but the checksum database says h1:") {
		t.Errorf("a zip that is not the toolchain: want refused on its hash, got %v: %s", err, out)
	}
	if _, err := os.Stat(dest); err == nil {
		t.Errorf("the refused toolchain was installed in %s", dest)
	}

	out, err = installGo(t, dest, t.TempDir(), nil)
	if err != nil {
		t.Fatalf("install-go: %v\n%s", err, out)
	}
	v, err := exec.Command(filepath.Join(dest, "bin", "go"), "version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "go"+string(want[1])+" ") {
		t.Errorf("the installed go says %q (%v), want go%s", v, err, want[1])
	}
	// Installed, it is the go to run, and nothing is fetched again.
	if out, err := installGo(t, dest, t.TempDir(), nil, "--print"); err != nil || strings.TrimSpace(out) != dest+"/bin/go" {
		t.Errorf("after the install: --print said %q (%v), want %s/bin/go", out, err, dest)
	}
	if out, err := installGo(t, dest, t.TempDir(), nil); err != nil || out != "" {
		t.Errorf("a second run: %v, %q; want nothing done", err, out)
	}
}
