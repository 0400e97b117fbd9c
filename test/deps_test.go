package test

import (
	"os"
	"os/exec"
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
