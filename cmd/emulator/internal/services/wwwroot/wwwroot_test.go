package wwwroot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func names(fs []*File) []string {
	var ns []string
	for _, f := range fs {
		ns = append(ns, f.Name)
	}
	return ns
}

func TestEveryAppStartsWithItsStartPage(t *testing.T) {
	s := New()
	f, ok := s.Get("App1", StartFile)
	if !ok || !strings.Contains(string(f.Data), "App1 is up and running") || f.Mod.IsZero() {
		t.Fatalf("Get(App1, %s) = %+v, %v; want App1's start page with a time", StartFile, f, ok)
	}
	// App names are case-insensitive: app1 is the same directory.
	if g, _ := s.Get("app1", StartFile); g != f {
		t.Errorf("Get(app1) and Get(App1) are different files: app names must not depend on case")
	}
	if got := names(s.List("app2")); len(got) != 1 || got[0] != StartFile {
		t.Errorf("List(app2) = %v, want [%s]", got, StartFile)
	}
}

func TestPutGetListDelete(t *testing.T) {
	s := New()
	if _, err := s.Put("app1", "b.txt", strings.NewReader("bee")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("app1", "A.html", strings.NewReader("<p>old</p>")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("app1", "A.html", strings.NewReader("<p>new</p>")); err != nil {
		t.Fatal(err)
	}
	if f, ok := s.Get("app1", "A.html"); !ok || string(f.Data) != "<p>new</p>" {
		t.Errorf("Get(A.html) after two uploads = %+v, %v; want the second", f, ok)
	}
	// File names are found in any case, as on an ASE v1's Windows
	// workers, and keep the case of their first upload.
	if f, ok := s.Get("app1", "a.HTML"); !ok || f.Name != "A.html" {
		t.Errorf("Get(a.HTML) = %+v, %v; want A.html: file names must not depend on case", f, ok)
	}
	if _, err := s.Put("app1", "a.HTML", strings.NewReader("<p>newer</p>")); err != nil {
		t.Fatal(err)
	}
	if f, ok := s.Get("app1", "A.html"); !ok || f.Name != "A.html" || string(f.Data) != "<p>newer</p>" {
		t.Errorf("Get(A.html) after an upload as a.HTML = %+v, %v; want the upload under its first name", f, ok)
	}
	if got, want := names(s.List("app1")), []string{"A.html", "b.txt", StartFile}; !slicesEqual(got, want) {
		t.Errorf("List(app1) = %v, want %v", got, want)
	}
	if _, ok := s.Get("app2", "b.txt"); ok {
		t.Errorf("app2 sees app1's b.txt: each app has its own directory")
	}
	if !s.Delete("app1", "b.txt") || s.Delete("app1", "b.txt") {
		t.Errorf("Delete(b.txt) twice: want true then false")
	}
	if !s.Delete("app1", StartFile) {
		t.Errorf("Delete(%s): want true", StartFile)
	}
	if _, ok := s.Get("app1", StartFile); ok {
		t.Errorf("%s came back after Delete: the start page is made once, not on every look", StartFile)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestPutIsLimited(t *testing.T) {
	s := New()
	if _, err := s.Put("app1", "big", bytes.NewReader(make([]byte, Limit+1))); err == nil {
		t.Fatalf("Put of more than Limit: no error")
	}
	if _, ok := s.Get("app1", "big"); ok {
		t.Errorf("the refused upload was stored")
	}
	// The refused upload gave back the room it had taken, and a replaced
	// file gives back its own: four quarters in one place fit.
	for range 4 {
		if _, err := s.Put("app1", "quarter", bytes.NewReader(make([]byte, Limit/4))); err != nil {
			t.Fatalf("Put of Limit/4 after a refused upload, or in place of itself: %v", err)
		}
	}
	if !s.Delete("app1", "quarter") {
		t.Fatal("Delete(quarter): want true")
	}
	if _, err := s.Put("app1", "again", bytes.NewReader(make([]byte, Limit*3/4))); err != nil {
		t.Errorf("Put of 3/4 Limit after Delete: %v; Delete must give back the room", err)
	}
}

func TestPutCutStoresNothing(t *testing.T) {
	s := New()
	cut := io.MultiReader(strings.NewReader("part"), iotest.ErrReader(errors.New("reset")))
	if _, err := s.Put("app1", "cut.txt", cut); err == nil {
		t.Fatal("Put of a cut upload: no error")
	}
	if _, ok := s.Get("app1", "cut.txt"); ok {
		t.Errorf("a cut upload was stored")
	}
	if start := mustGet(t, s, "app1", StartFile); s.used != cost(start.Name, len(start.Data)) {
		t.Errorf("used = %d after a cut upload, want the start page's size only", s.used)
	}
}

func mustGet(t *testing.T, s *Store, app, name string) *File {
	t.Helper()
	f, ok := s.Get(app, name)
	if !ok {
		t.Fatalf("Get(%s, %s): not found", app, name)
	}
	return f
}

// An FTP client can upload empty files under ever new names: the files'
// names and their bookkeeping live in the emulator's memory as their
// bytes do, so Limit must count them, or the uploads never end.
func TestEmptyFilesAreLimitedToo(t *testing.T) {
	s := New()
	long := strings.Repeat("n", 4000) // about the longest an FTP command line lets through
	for i := range Limit/len(long) + 1 {
		if _, err := s.Put("app1", fmt.Sprint(i, long), strings.NewReader("")); err != nil {
			return
		}
	}
	t.Fatalf("%d empty files with names of %d bytes were stored, %d MiB of names: Limit must count them", Limit/len(long)+1, len(long), Limit>>20)
}

// WriteAt is FTP's resumed upload and its append: the file's first bytes
// then the new ones, never past its end, and within Limit as any upload.
func TestWriteAt(t *testing.T) {
	s := New()
	if _, err := s.Put("app1", "f.txt", strings.NewReader("hello world")); err != nil {
		t.Fatal(err)
	}
	old := mustGet(t, s, "app1", "f.txt")
	if _, err := s.WriteAt("app1", "F.TXT", 5, strings.NewReader(" there")); err != nil {
		t.Fatal(err)
	}
	if f := mustGet(t, s, "app1", "f.txt"); string(f.Data) != "hello there" || f.Name != "f.txt" {
		t.Errorf("after WriteAt(5, \" there\"): %q named %q, want \"hello there\" named f.txt", f.Data, f.Name)
	}
	if string(old.Data) != "hello world" {
		t.Errorf("WriteAt changed the old File's data in place to %q: a reader holding it must keep what it read", old.Data)
	}
	if _, err := s.WriteAt("app1", "f.txt", 12, strings.NewReader("x")); !errors.Is(err, ErrPastEnd) {
		t.Errorf("WriteAt past the end: %v, want ErrPastEnd", err)
	}
	if _, err := s.WriteAt("app1", "new.txt", 1, strings.NewReader("x")); !errors.Is(err, ErrPastEnd) {
		t.Errorf("WriteAt(1) of a file not there: %v, want ErrPastEnd", err)
	}
	if _, err := s.Put("app1", "third", bytes.NewReader(make([]byte, Limit/3))); err != nil {
		t.Fatal(err)
	}
	// The copy counts: adding half to a third needs room for two thirds
	// and the half while the upload is under way; the refusal gives it
	// all back.
	if _, err := s.WriteAt("app1", "third", Limit/3, bytes.NewReader(make([]byte, Limit/2))); err == nil {
		t.Errorf("WriteAt that holds more than Limit while it copies: no error")
	}
	if f := mustGet(t, s, "app1", "third"); len(f.Data) != Limit/3 {
		t.Errorf("a refused WriteAt left %d bytes, want the %d there before", len(f.Data), Limit/3)
	}
	if _, err := s.WriteAt("app1", "third", Limit/3, bytes.NewReader(make([]byte, 1000))); err != nil {
		t.Errorf("a small WriteAt after a refused one: %v; the refusal must give back its room", err)
	}
}

func TestRename(t *testing.T) {
	s := New()
	for _, n := range []string{"a.txt", "b.txt"} {
		if _, err := s.Put("app1", n, strings.NewReader(n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Rename("app1", "a.txt", "B.TXT"); !errors.Is(err, ErrExists) {
		t.Errorf("Rename onto b.txt: %v, want ErrExists, as Windows keeps the file it would replace", err)
	}
	if _, err := s.Rename("app1", "none.txt", "c.txt"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Rename of a file not there: %v, want ErrNotFound", err)
	}
	if _, err := s.Rename("app1", "a.txt", "A.TXT"); err != nil {
		t.Fatalf("Rename to another case: %v", err)
	}
	if f := mustGet(t, s, "app1", "a.txt"); f.Name != "A.TXT" || string(f.Data) != "a.txt" {
		t.Errorf("after Rename to A.TXT: %q named %q, want a.txt's data named A.TXT", f.Data, f.Name)
	}
	before := s.used
	if _, err := s.Rename("app1", "A.TXT", "c.html"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get("app1", "a.txt"); ok {
		t.Errorf("a.txt is still there after its rename")
	}
	if s.used != before+len("c.html")-len("A.TXT") {
		t.Errorf("used = %d after a rename, want %d: a name costs its length", s.used, before+1)
	}
	// A longer name is more to keep: a rename stays within Limit.
	if _, err := s.Put("app1", "fill", bytes.NewReader(make([]byte, Limit-s.used-cost("fill", 0)))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rename("app1", "c.html", "longer-name.html"); err == nil {
		t.Errorf("Rename to a longer name with the store full: no error")
	}
	mustGet(t, s, "app1", "c.html")
}
