// Package wwwroot is the content of an ASE's apps: one directory per app,
// with files and folders, which FTP publishes into and the app serves over
// HTTP. As in App Service, where every instance of an app shares its
// site's content, one Store serves all of an ASE's front-ends and workers.
//
// Files live in the emulator's memory, so a lab starts with each app's
// hostingstart.html and forgets every upload when it goes down.
//
// A path names a file or folder inside an app's directory, its names
// separated by slashes: "css/site.css". The Store checks every path it is
// given (split), so no caller can reach outside the app's directory or
// grow a tree without bound.
package wwwroot

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

const (
	// Limit is what one Store may keep, all its files and folders
	// together: uploads live in the emulator's own memory.
	Limit = 64 << 20
	// StartFile is every app directory's file until someone deletes it.
	StartFile = "hostingstart.html"
	// MaxDepth is how many names a path has at most: folders nest no
	// deeper, so a client cannot build a chain of them the walks and
	// listings follow for ever.
	MaxDepth = 16
	// MaxPath is the longest path in bytes, as Windows' MAX_PATH (260)
	// bounds the paths of an ASE v1's workers.
	MaxPath = 260
	// fileCost is what a file or a folder costs Limit besides its name
	// and data: its map entry and File. An empty file or folder is not
	// free, or an FTP client could make them under new names for ever.
	fileCost = 128
)

// File is one file or folder of an app's directory. Data is never changed
// in place: a new upload replaces the File, so a reader may keep it
// unlocked.
type File struct {
	Name string // its own name, the last of its path, in the case first given
	Data []byte
	Mod  time.Time
	Dir  bool // a folder, which has no Data
}

// node is a File in its tree.
type node struct {
	f    *File
	kids map[string]*node // a folder's files and folders by key; nil for a file
}

// Store is the content of one ASE's apps.
type Store struct {
	mu   sync.Mutex
	apps map[string]*node // app directories by lower-case app name; made on first use
	used int              // cost of every file and folder (see cost), uploads under way included
}

// New returns an ASE's content: every app's directory holds StartFile.
func New() *Store {
	return &Store{apps: map[string]*node{}}
}

// Errors of the Store's operations; each is wrapped with what it was about.
var (
	// ErrNotFound: no file or folder at the path, or at one of its folders.
	ErrNotFound = errors.New("no such file or folder")
	// ErrExists: a rename or a new folder onto a name already there.
	ErrExists = errors.New("a file or folder of that name exists")
	// ErrIsFolder: a file's operation on a folder.
	ErrIsFolder = errors.New("is a folder")
	// ErrNotFolder: a folder's operation on a file.
	ErrNotFolder = errors.New("not a folder")
	// ErrNotEmpty: a folder removed with files or folders in it, which
	// Windows and IIS's FTP keep.
	ErrNotEmpty = errors.New("the folder is not empty")
	// ErrBadPath: a path the Store does not take (see split).
	ErrBadPath = errors.New("path refused")
	// ErrPastEnd is a WriteAt past the end of the file.
	ErrPastEnd = errors.New("past the end of the file")
	// ErrFull: the write would pass Limit.
	ErrFull = fmt.Errorf("this ASE's content is limited to %d MiB in all (it lives in the emulator's memory)", Limit>>20)
)

// split checks p, a path in an app's directory, and returns its names.
// Every name is a file's or folder's own: "..", "." and empty names (a
// doubled, leading or trailing slash) have no place in it, so a path never
// leads out of the app's directory. A control character would break the
// listing's lines, and a backslash is a separator on the Windows workers.
func split(p string) ([]string, error) {
	if p == "" {
		return nil, fmt.Errorf("%w: an empty path", ErrBadPath)
	}
	if len(p) > MaxPath {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrBadPath, MaxPath)
	}
	names := strings.Split(p, "/")
	if len(names) > MaxDepth {
		return nil, fmt.Errorf("%w: deeper than %d names", ErrBadPath, MaxDepth)
	}
	for _, n := range names {
		switch {
		case n == "":
			return nil, fmt.Errorf("%w: an empty name (a doubled, leading or trailing slash)", ErrBadPath)
		case n == "." || n == "..":
			return nil, fmt.Errorf("%w: %q is not a name", ErrBadPath, n)
		case strings.ContainsFunc(n, unicode.IsControl):
			return nil, fmt.Errorf("%w: a name has no control characters", ErrBadPath)
		case strings.Contains(n, `\`):
			return nil, fmt.Errorf("%w: a name has no backslash, a separator on Windows", ErrBadPath)
		}
	}
	return names, nil
}

// root is app's directory, made with its start file the first time; mu
// held. App names are case-insensitive, as in Azure and in Host headers.
// So are file and folder names, as on the Windows workers of an ASE v1,
// whose IIS serves /Hello.html for hello.html: a name keeps the case it
// was first given, and is found in any case (key).
func (s *Store) root(app string) *node {
	k := strings.ToLower(app)
	d := s.apps[k]
	if d == nil {
		page := fmt.Sprintf("<html><body><h1>%s is up and running</h1><p>Served from the emulated ASE's content; upload next to it over FTP with curl -T.</p></body></html>\n", app)
		now := time.Now().UTC()
		f := &File{Name: StartFile, Data: []byte(page), Mod: now}
		d = &node{f: &File{Name: app, Mod: now, Dir: true}, kids: map[string]*node{key(StartFile): {f: f}}}
		s.used += cost(f.Name, len(f.Data))
		s.apps[k] = d
	}
	return d
}

// walk returns what names lead to in app's directory (the directory
// itself for none), or nil; mu held.
func (s *Store) walk(app string, names []string) *node {
	n := s.root(app)
	for _, name := range names {
		if n.kids == nil {
			return nil
		}
		if n = n.kids[key(name)]; n == nil {
			return nil
		}
	}
	return n
}

// parent returns the folder that holds, or is to hold, the last of names;
// mu held.
func (s *Store) parent(app string, names []string) (*node, error) {
	up := names[:len(names)-1]
	d := s.walk(app, up)
	if d == nil {
		return nil, fmt.Errorf("%w: no folder %s", ErrNotFound, strings.Join(up, "/"))
	}
	if d.kids == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFolder, strings.Join(up, "/"))
	}
	return d, nil
}

// Get returns app's file or folder at path p.
func (s *Store) Get(app, p string) (*File, bool) {
	names, err := split(p)
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.walk(app, names)
	if n == nil {
		return nil, false
	}
	return n.f, true
}

// List returns the files and folders of app's folder p ("" for the app's
// directory), sorted by name, in any case.
func (s *Store) List(app, p string) ([]*File, error) {
	var names []string
	if p != "" {
		var err error
		if names, err = split(p); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.walk(app, names)
	switch {
	case d == nil:
		return nil, ErrNotFound
	case d.kids == nil:
		return nil, ErrNotFolder
	}
	var fs []*File
	for _, k := range slices.Sorted(maps.Keys(d.kids)) {
		fs = append(fs, d.kids[k].f)
	}
	return fs, nil
}

// Delete removes app's file at p; a folder stays (ErrIsFolder: Rmdir).
func (s *Store) Delete(app, p string) error {
	return s.remove(app, p, false)
}

// Mkdir makes app's folder p, in a folder that is there.
func (s *Store) Mkdir(app, p string) (*File, error) {
	names, err := split(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, err := s.parent(app, names)
	if err != nil {
		return nil, err
	}
	name := names[len(names)-1]
	if d.kids[key(name)] != nil {
		return nil, ErrExists
	}
	if !s.take(cost(name, 0)) {
		return nil, ErrFull
	}
	f := &File{Name: name, Mod: time.Now().UTC(), Dir: true}
	d.kids[key(name)] = &node{f: f, kids: map[string]*node{}}
	return f, nil
}

// Rmdir removes app's folder p, which must be empty (ErrNotEmpty), as
// Windows and IIS's FTP remove folders.
func (s *Store) Rmdir(app, p string) error {
	return s.remove(app, p, true)
}

// remove deletes app's file at p, or its empty folder if folder is set.
func (s *Store) remove(app, p string, folder bool) error {
	names, err := split(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.walk(app, names)
	switch {
	case n == nil:
		return ErrNotFound
	case !folder && n.kids != nil:
		return ErrIsFolder
	case folder && n.kids == nil:
		return ErrNotFolder
	case len(n.kids) > 0:
		return ErrNotEmpty
	}
	d, _ := s.parent(app, names)
	s.used -= cost(n.f.Name, len(n.f.Data))
	delete(d.kids, key(n.f.Name))
	return nil
}

// Writable reports why an upload to app's p would fail now, before its
// bytes come: the path refused, no folder to hold it, or a folder there.
// The upload itself checks again (write): the tree may change meanwhile.
func (s *Store) Writable(app, p string) error {
	names, err := split(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _, err = s.slot(app, names)
	return err
}

// slot returns the folder a file at names goes into and the node there
// now (nil if none), or why no file can go there: no such folder, or a
// folder of that name; mu held.
func (s *Store) slot(app string, names []string) (d, old *node, err error) {
	if d, err = s.parent(app, names); err != nil {
		return nil, nil, err
	}
	if old = d.kids[key(names[len(names)-1])]; old != nil && old.kids != nil {
		return nil, nil, ErrIsFolder
	}
	return d, old, nil
}

// Put reads r to its end and stores it as app's file at p, in place of any
// file there; p's folders must be there. Room is reserved as the bytes
// come, so that uploads under way together never hold more than Limit; an
// upload that would pass it, or that r cuts, stores nothing.
func (s *Store) Put(app, p string, r io.Reader) (*File, error) {
	return s.write(app, p, nil, r)
}

// WriteAt stores app's file at p as its first at bytes followed by r's:
// FTP's resumed upload (REST then STOR) and, with at its size, its append
// (APPE). at may not pass the file's end; a file not there has none. The
// file is copied, never changed in place (File), and the copy counts
// against Limit like any upload.
func (s *Store) WriteAt(app, p string, at int, r io.Reader) (*File, error) {
	names, err := split(p)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	var old *File
	n := s.walk(app, names)
	if n != nil {
		old = n.f
	}
	s.mu.Unlock()
	if old != nil && old.Dir {
		return nil, ErrIsFolder
	}
	size := 0
	if old != nil {
		size = len(old.Data)
	}
	if at < 0 || at > size {
		return nil, fmt.Errorf("%w: offset %d, size %d", ErrPastEnd, at, size)
	}
	var prefix []byte
	if old != nil {
		prefix = old.Data[:at]
	}
	return s.write(app, p, prefix, r)
}

// write stores prefix then r's bytes as app's file at p.
func (s *Store) write(app, p string, prefix []byte, r io.Reader) (*File, error) {
	names, err := split(p)
	if err != nil {
		return nil, err
	}
	name := names[len(names)-1]
	if !s.reserve(cost(name, len(prefix))) {
		return nil, ErrFull
	}
	data := slices.Clone(prefix)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !s.reserve(n) {
				s.release(cost(name, len(data)))
				return nil, ErrFull
			}
			data = append(data, buf[:n]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			s.release(cost(name, len(data)))
			return nil, fmt.Errorf("cut: %v", err)
		}
	}
	f := &File{Name: name, Data: data, Mod: time.Now().UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The folder may have gone, or the name become a folder, while
	// the bytes came.
	d, old, err := s.slot(app, names)
	if err != nil {
		s.used -= cost(name, len(data))
		return nil, err
	}
	if old != nil {
		s.used -= cost(old.f.Name, len(old.f.Data))
		// Written over, as Windows writes over a file: its name keeps
		// the case it had.
		f.Name = old.f.Name
		s.used += cost(f.Name, len(f.Data)) - cost(name, len(f.Data))
	}
	d.kids[key(name)] = &node{f: f}
	return f, nil
}

// Rename moves app's file or folder at from to to, as Windows renames: a
// change of case alone renames it in place, another file or folder
// already at to is left alone (ErrExists), to's folder must be there, and
// a folder cannot go into itself. A folder takes its files and folders
// with it, and the deepest of them must stay within MaxDepth and MaxPath.
func (s *Store) Rename(app, from, to string) (*File, error) {
	fn, err := split(from)
	if err != nil {
		return nil, err
	}
	tn, err := split(to)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.walk(app, fn)
	if n == nil {
		return nil, ErrNotFound
	}
	if n.kids != nil {
		if len(tn) > len(fn) && slices.Equal(keys(tn[:len(fn)]), keys(fn)) {
			return nil, fmt.Errorf("%w: a folder cannot go into itself", ErrBadPath)
		}
		depth, length := extent(n)
		if len(tn)+depth > MaxDepth || len(to)+length > MaxPath {
			return nil, fmt.Errorf("%w: what the folder holds would be deeper than %d names or longer than %d bytes", ErrBadPath, MaxDepth, MaxPath)
		}
	}
	d, err := s.parent(app, tn)
	if err != nil {
		return nil, err
	}
	name := tn[len(tn)-1]
	if there := d.kids[key(name)]; there != nil && there != n {
		return nil, ErrExists
	}
	// A longer name costs more: the rename must stay within Limit as
	// an upload does.
	if !s.take(cost(name, 0) - cost(n.f.Name, 0)) {
		return nil, ErrFull
	}
	f := &File{Name: name, Data: n.f.Data, Mod: n.f.Mod, Dir: n.f.Dir}
	up, _ := s.parent(app, fn)
	delete(up.kids, key(n.f.Name))
	d.kids[key(name)] = &node{f: f, kids: n.kids}
	return f, nil
}

// extent is how deep folder n's tree goes below it, in names, and how
// long its longest path below it is, in bytes with its slashes.
func extent(n *node) (depth, length int) {
	for _, k := range n.kids {
		d, l := extent(k)
		depth = max(depth, 1+d)
		length = max(length, 1+len(k.f.Name)+l)
	}
	return depth, length
}

// key is a name as a folder finds it: in any case.
func key(name string) string { return strings.ToLower(name) }

func keys(names []string) []string {
	ks := make([]string, len(names))
	for i, n := range names {
		ks[i] = key(n)
	}
	return ks
}

// cost is what a file called name with size bytes, or a folder (size 0),
// counts against Limit.
func cost(name string, size int) int { return fileCost + len(name) + size }

// reserve takes n bytes of Limit, if there is room.
func (s *Store) reserve(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.take(n)
}

// take is reserve with mu held: the one place Limit is checked.
func (s *Store) take(n int) bool {
	if s.used+n > Limit {
		return false
	}
	s.used += n
	return true
}

func (s *Store) release(n int) {
	s.mu.Lock()
	s.used -= n
	s.mu.Unlock()
}
