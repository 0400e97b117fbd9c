// Package wwwroot is the content of an ASE's apps: one directory of files
// per app, which FTP publishes into and the app serves over HTTP. As in
// App Service, where every instance of an app shares its site's content,
// one Store serves all of an ASE's front-ends and workers.
//
// Files live in the emulator's memory, so a lab starts with each app's
// hostingstart.html and forgets every upload when it goes down.
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
)

const (
	// Limit is what one Store may keep, all its files together: uploads
	// live in the emulator's own memory.
	Limit = 64 << 20
	// StartFile is every app directory's file until someone deletes it.
	StartFile = "hostingstart.html"
	// fileCost is what a file costs Limit besides its name and data: its
	// map entry and File. An empty file is not free, or an FTP client
	// could upload empty files under new names for ever.
	fileCost = 128
)

// File is one file of an app's directory. Data is never changed in place:
// a new upload replaces the File, so a reader may keep it unlocked.
type File struct {
	Name string
	Data []byte
	Mod  time.Time
}

// Store is the content of one ASE's apps.
type Store struct {
	mu   sync.Mutex
	apps map[string]map[string]*File // by lower-case app name, then lower-case file name; made on first use
	used int                         // cost of every file (see cost), uploads under way included
}

// New returns an ASE's content: every app's directory holds StartFile.
func New() *Store {
	return &Store{apps: map[string]map[string]*File{}}
}

// dir is app's directory, made with its start file the first time; mu held.
// App names are case-insensitive, as in Azure and in Host headers. So are
// file names, as on the Windows workers of an ASE v1, whose IIS serves
// /Hello.html for hello.html: a file keeps the name it was first uploaded
// with, and is found by it in any case (key).
func (s *Store) dir(app string) map[string]*File {
	k := strings.ToLower(app)
	d := s.apps[k]
	if d == nil {
		page := fmt.Sprintf("<html><body><h1>%s is up and running</h1><p>Served from the emulated ASE's content; upload next to it over FTP with curl -T.</p></body></html>\n", app)
		f := &File{Name: StartFile, Data: []byte(page), Mod: time.Now().UTC()}
		d = map[string]*File{key(StartFile): f}
		s.used += cost(f.Name, len(f.Data))
		s.apps[k] = d
	}
	return d
}

// Get returns app's file called name.
func (s *Store) Get(app, name string) (*File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.dir(app)[key(name)]
	return f, f != nil
}

// List returns app's files, sorted by name, in any case.
func (s *Store) List(app string) []*File {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dir(app)
	var fs []*File
	for _, n := range slices.Sorted(maps.Keys(d)) {
		fs = append(fs, d[n])
	}
	return fs
}

// Delete removes app's file called name, and reports whether it was there.
func (s *Store) Delete(app, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dir(app)
	f := d[key(name)]
	if f == nil {
		return false
	}
	s.used -= cost(f.Name, len(f.Data))
	delete(d, key(name))
	return true
}

// Put reads r to its end and stores it as app's file called name, in
// place of any file of that name. Room is reserved as the bytes come, so
// that uploads under way together never hold more than Limit; an upload
// that would pass it, or that r cuts, stores nothing.
func (s *Store) Put(app, name string, r io.Reader) (*File, error) {
	return s.write(app, name, nil, r)
}

// WriteAt stores app's file called name as its first at bytes followed by
// r's: FTP's resumed upload (REST then STOR) and, with at its size, its
// append (APPE). at may not pass the file's end; a file not there has
// none. The file is copied, never changed in place (File), and the copy
// counts against Limit like any upload.
func (s *Store) WriteAt(app, name string, at int, r io.Reader) (*File, error) {
	s.mu.Lock()
	old := s.dir(app)[key(name)]
	s.mu.Unlock()
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
	return s.write(app, name, prefix, r)
}

// ErrPastEnd is a WriteAt past the end of the file.
var ErrPastEnd = errors.New("past the end of the file")

// write stores prefix then r's bytes as app's file called name.
func (s *Store) write(app, name string, prefix []byte, r io.Reader) (*File, error) {
	if !s.reserve(cost(name, len(prefix))) {
		return nil, errFull
	}
	data := slices.Clone(prefix)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if !s.reserve(n) {
				s.release(cost(name, len(data)))
				return nil, errFull
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
	d := s.dir(app)
	if old := d[key(name)]; old != nil {
		s.used -= cost(old.Name, len(old.Data))
		// Written over, as Windows writes over a file: its name keeps
		// the case it had.
		f.Name = old.Name
		s.used += cost(f.Name, len(f.Data)) - cost(name, len(f.Data))
	}
	d[key(name)] = f
	s.mu.Unlock()
	return f, nil
}

// Rename gives app's file from the name to, as Windows renames: a
// change of case alone renames the file in place, and another file
// already called to is left alone (ErrExists).
func (s *Store) Rename(app, from, to string) (*File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dir(app)
	old := d[key(from)]
	if old == nil {
		return nil, ErrNotFound
	}
	if key(from) != key(to) && d[key(to)] != nil {
		return nil, ErrExists
	}
	// A longer name costs more: the rename must stay within Limit as
	// an upload does.
	grow := cost(to, 0) - cost(old.Name, 0)
	if s.used+grow > Limit {
		return nil, errFull
	}
	s.used += grow
	f := &File{Name: to, Data: old.Data, Mod: old.Mod}
	delete(d, key(from))
	d[key(to)] = f
	return f, nil
}

var (
	// ErrNotFound is a Rename of a file that is not there.
	ErrNotFound = errors.New("no such file")
	// ErrExists is a Rename onto another file.
	ErrExists = errors.New("a file of that name exists")
)

// key is a file name as a directory finds it: in any case.
func key(name string) string { return strings.ToLower(name) }

var errFull = fmt.Errorf("this ASE's content is limited to %d MiB in all (it lives in the emulator's memory)", Limit>>20)

// cost is what a file called name with size bytes counts against Limit.
func cost(name string, size int) int { return fileCost + len(name) + size }

// reserve takes n bytes of Limit, if there is room.
func (s *Store) reserve(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
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
