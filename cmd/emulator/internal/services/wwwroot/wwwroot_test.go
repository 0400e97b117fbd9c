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
	if got := names(mustList(t, s, "app2", "")); len(got) != 1 || got[0] != StartFile {
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
	if got, want := names(mustList(t, s, "app1", "")), []string{"A.html", "b.txt", StartFile}; !slicesEqual(got, want) {
		t.Errorf("List(app1) = %v, want %v", got, want)
	}
	if _, ok := s.Get("app2", "b.txt"); ok {
		t.Errorf("app2 sees app1's b.txt: each app has its own directory")
	}
	if err, again := s.Delete("app1", "b.txt"), s.Delete("app1", "b.txt"); err != nil || !errors.Is(again, ErrNotFound) {
		t.Errorf("Delete(b.txt) twice: %v then %v, want nil then ErrNotFound", err, again)
	}
	if err := s.Delete("app1", StartFile); err != nil {
		t.Errorf("Delete(%s): %v", StartFile, err)
	}
	if _, ok := s.Get("app1", StartFile); ok {
		t.Errorf("%s came back after Delete: the start page is made once, not on every look", StartFile)
	}
}

func mustList(t *testing.T, s *Store, app, p string) []*File {
	t.Helper()
	fs, err := s.List(app, p)
	if err != nil {
		t.Fatalf("List(%s, %q): %v", app, p, err)
	}
	return fs
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
	if err := s.Delete("app1", "quarter"); err != nil {
		t.Fatalf("Delete(quarter): %v", err)
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
	testEmptyAreLimited(t, func(s *Store, name string) error {
		_, err := s.Put("app1", name, strings.NewReader(""))
		return err
	})
}

// testEmptyAreLimited leaves a Store room bytes, as if full of uploads
// but for them, then makes empty files or folders with mk until it
// refuses: it must, before room is gone at fileCost each.
func testEmptyAreLimited(t *testing.T, mk func(s *Store, name string) error) {
	t.Helper()
	s := New()
	mustGet(t, s, "app1", StartFile)
	const room = 64 << 10
	s.used = Limit - room
	for i := range room/fileCost + 1 {
		if err := mk(s, fmt.Sprint(i)); err != nil {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("empty %d: %v, want ErrFull", i, err)
			}
			return
		}
	}
	t.Fatalf("%d empty files or folders were made in %d bytes of room: Limit must count each at least %d bytes", room/fileCost+1, room, fileCost)
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

// A site has folders (css/, js/, images/): made, filled, listed, found in
// any case, and removed as Windows and IIS's FTP remove them, empty only.
func TestFolders(t *testing.T) {
	s := New()
	mustGet(t, s, "app1", StartFile)
	mustGet(t, s, "app2", StartFile)
	start := s.used
	if _, err := s.Mkdir("app1", "css"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("app1", "css/site.css", strings.NewReader("body{}")); err != nil {
		t.Fatal(err)
	}
	if f, ok := s.Get("app1", "CSS/Site.CSS"); !ok || f.Name != "site.css" || string(f.Data) != "body{}" {
		t.Errorf("Get(CSS/Site.CSS) = %+v, %v; want css/site.css: folder names must not depend on case either", f, ok)
	}
	if got := mustList(t, s, "app1", "Css"); len(got) != 1 || got[0].Name != "site.css" || got[0].Dir {
		t.Errorf("List(Css) = %v, want the file site.css", names(got))
	}
	if got := mustList(t, s, "app1", ""); len(got) != 2 || got[0].Name != "css" || !got[0].Dir {
		t.Errorf("List of app1's directory = %v, want the folder css and %s", names(got), StartFile)
	}
	for _, c := range []struct {
		what string
		err  error
		want error
	}{
		{"Put into a folder not there", put(s, "nofolder/x.css"), ErrNotFound},
		{"Put onto a folder", put(s, "CSS"), ErrIsFolder},
		{"Put under a file", put(s, StartFile+"/x"), ErrNotFolder},
		{"Mkdir of a folder there, in another case", mkdir(s, "CSS"), ErrExists},
		{"Mkdir onto a file", mkdir(s, "css/site.css"), ErrExists},
		{"Mkdir in a folder not there", mkdir(s, "img/a"), ErrNotFound},
		{"Delete of a folder", s.Delete("app1", "css"), ErrIsFolder},
		{"Rmdir of a folder with a file", s.Rmdir("app1", "css"), ErrNotEmpty},
		{"Rmdir of a file", s.Rmdir("app1", "css/site.css"), ErrNotFolder},
		{"Rmdir of a folder not there", s.Rmdir("app1", "js"), ErrNotFound},
		{"List of a file", list(s, StartFile), ErrNotFolder},
		{"List of a folder not there", list(s, "js"), ErrNotFound},
		{"WriteAt onto a folder", writeAt(s, "css"), ErrIsFolder},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.err, c.want)
		}
	}
	if _, ok := s.Get("app2", "css"); ok {
		t.Errorf("app2 sees app1's folder css: each app has its own directory")
	}
	if err := s.Delete("app1", "css/site.css"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rmdir("app1", "css"); err != nil {
		t.Fatalf("Rmdir of the emptied folder: %v", err)
	}
	if s.used != start {
		t.Errorf("used = %d after the folder and its file are gone, want %d as before", s.used, start)
	}
}

func put(s *Store, p string) error {
	_, err := s.Put("app1", p, strings.NewReader("x"))
	return err
}

func mkdir(s *Store, p string) error {
	_, err := s.Mkdir("app1", p)
	return err
}

func list(s *Store, p string) error {
	_, err := s.List("app1", p)
	return err
}

func writeAt(s *Store, p string) error {
	_, err := s.WriteAt("app1", p, 0, strings.NewReader("x"))
	return err
}

// A path is names in the app's directory: nothing in it leads out of the
// directory, to another app's, or into a tree too deep or too long for a
// Windows worker's MAX_PATH.
func TestPathsStayInTheApp(t *testing.T) {
	s := New()
	deep := strings.Repeat("d/", MaxDepth) + "f"
	for _, p := range []string{
		"", "..", "../app2/" + StartFile, "css/../" + StartFile, "./" + StartFile,
		"/" + StartFile, StartFile + "/", "a//b", `..\app2\x`, "a\rb", "tab\t.txt",
		deep, strings.Repeat("n", MaxPath+1),
	} {
		if err := put(s, p); !errors.Is(err, ErrBadPath) {
			t.Errorf("Put(%q): %v, want ErrBadPath", p, err)
		}
		if err := mkdir(s, p); !errors.Is(err, ErrBadPath) {
			t.Errorf("Mkdir(%q): %v, want ErrBadPath", p, err)
		}
		if _, ok := s.Get("app1", p); ok && p != "" {
			t.Errorf("Get(%q) found something: a refused path names nothing", p)
		}
	}
	if _, ok := s.Get("app2", StartFile); !ok {
		t.Fatal("app2's start page is gone")
	}
	// The deepest and the longest paths there may be are taken.
	p := "d"
	for range MaxDepth - 1 {
		if _, err := s.Mkdir("app1", p); err != nil {
			t.Fatalf("Mkdir(%s): %v", p, err)
		}
		p += "/d"
	}
	if err := put(s, p); err != nil {
		t.Errorf("Put of a file %d names deep: %v", MaxDepth, err)
	}
	if err := put(s, strings.Repeat("n", MaxPath)); err != nil {
		t.Errorf("Put of a name of %d bytes: %v", MaxPath, err)
	}
}

// An empty folder costs what an empty file does, or an FTP client could
// make them for ever.
func TestEmptyFoldersAreLimitedToo(t *testing.T) {
	testEmptyAreLimited(t, func(s *Store, name string) error {
		_, err := s.Mkdir("app1", name)
		return err
	})
}

// A rename moves a file between folders, or a folder with all it holds,
// but never a folder into itself, onto another name, or so deep that what
// it holds passes MaxDepth or MaxPath.
func TestRenameFolders(t *testing.T) {
	s := New()
	for _, d := range []string{"a", "a/b", "c"} {
		if err := mkdir(s, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(s, "a/b/f.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rename("app1", "a/b/f.txt", "C/g.txt"); err != nil {
		t.Fatalf("Rename of a file into another folder: %v", err)
	}
	if _, ok := s.Get("app1", "c/g.txt"); !ok {
		t.Errorf("c/g.txt is not there after the rename")
	}
	if _, err := s.Rename("app1", "c", "a/B/c"); err != nil {
		t.Fatalf("Rename of a folder into another: %v", err)
	}
	if f, ok := s.Get("app1", "a/b/c/g.txt"); !ok || string(f.Data) != "x" {
		t.Errorf("a/b/c/g.txt = %+v, %v after its folder moved: want the file, moved with it", f, ok)
	}
	if _, ok := s.Get("app1", "c"); ok {
		t.Errorf("c is still there after it moved")
	}
	for _, c := range []struct {
		from, to string
		want     error
	}{
		{"a", "A/x", ErrBadPath},
		{"a/b", "a/b/c/b", ErrBadPath},
		{"a/b/c", "a/B", ErrExists},
		{"a/b", "none/b", ErrNotFound},
		{"none", "x", ErrNotFound},
		{"a", "../app2/a", ErrBadPath},
	} {
		if _, err := s.Rename("app1", c.from, c.to); !errors.Is(err, c.want) {
			t.Errorf("Rename(%s, %s): %v, want %v", c.from, c.to, err, c.want)
		}
	}
	if _, err := s.Rename("app1", "a", "A"); err != nil {
		t.Fatalf("Rename of a folder to another case: %v", err)
	}
	if got := mustList(t, s, "app1", ""); got[0].Name != "A" || !got[0].Dir {
		t.Errorf("after the rename to A, the directory lists %v first, want the folder A", names(got))
	}
	// A chain of folders MaxDepth deep from z: it may not move one
	// folder deeper.
	p := "z"
	for range MaxDepth {
		if err := mkdir(s, p); err != nil {
			t.Fatal(err)
		}
		p += "/z"
	}
	if _, err := s.Rename("app1", "z", "A/z"); !errors.Is(err, ErrBadPath) {
		t.Errorf("Rename of a folder whose tree would pass %d names: %v, want ErrBadPath", MaxDepth, err)
	}
	long := strings.Repeat("l", MaxPath-20)
	if err := mkdir(s, "y"); err != nil {
		t.Fatal(err)
	}
	if err := put(s, "y/"+long); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rename("app1", "y", strings.Repeat("y", 30)); !errors.Is(err, ErrBadPath) {
		t.Errorf("Rename of a folder whose file's path would pass %d bytes: %v, want ErrBadPath", MaxPath, err)
	}
	if _, ok := s.Get("app1", "z/z"); !ok {
		t.Errorf("the refused move took z away")
	}
}

// An upload whose folder goes while its bytes come stores nothing and
// gives back its room.
func TestPutIntoAFolderRemovedMeanwhile(t *testing.T) {
	s := New()
	if err := mkdir(s, "tmp"); err != nil {
		t.Fatal(err)
	}
	before := s.used - cost("tmp", 0)
	r := io.MultiReader(strings.NewReader("part"), readFunc(func() {
		if err := s.Rmdir("app1", "tmp"); err != nil {
			t.Errorf("Rmdir(tmp) while an upload into it is under way: %v, want it gone: the upload is not stored yet", err)
		}
	}), strings.NewReader("rest"))
	if _, err := s.Put("app1", "tmp/f.txt", r); !errors.Is(err, ErrNotFound) {
		t.Errorf("Put into a folder removed meanwhile: %v, want ErrNotFound", err)
	}
	if s.used != before {
		t.Errorf("used = %d, want %d: the refused upload must give back its room", s.used, before)
	}
}

// readFunc is a reader that calls f on its first read and ends.
type readFunc func()

func (f readFunc) Read([]byte) (int, error) {
	f()
	return 0, io.EOF
}
