package frontend

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/aseemu/emulator/cmd/emulator/internal/services/netx"
	"github.com/aseemu/emulator/cmd/emulator/internal/services/wwwroot"
)

// A front-end's FTP is a small passive-mode server: enough for curl, lftp
// and FileZilla to log in (any user and password), list one directory per
// app and the folders in it (LIST, or MLSD when FEAT offers it, as those
// clients prefer), download, upload into memory, resume either (REST),
// append, rename, delete, and make and remove folders. Active mode (PORT,
// EPRT) is refused: the front-end cannot open a connection back to a client
// through the load balancer, which is why Azure opens the data ports
// 10001-10020.
//
// FTPS (RFC 4217) is the same server in TLS: implicit on 990, where TLS
// starts with the first byte, or explicit on 21 after AUTH TLS. PROT P puts
// the data connections in TLS too. The session, not the front-end that
// accepted the data connection, does that handshake: only the session
// knows PROT, and the accepting front-end, maybe another one, just lends
// the connection.

const (
	// loginTimeout is how long the control connection waits for a command
	// before login: long enough to type USER into nc, short enough that a
	// port scan does not leave connections behind for long.
	loginTimeout = 30 * time.Second
	// dataWait is how long a transfer waits for the client's data
	// connection: the one thing that never comes when an NSG lets 21 in
	// and keeps 10001-10020 out.
	dataWait = 10 * time.Second
	// maxLine bounds a command line, end of line included: FTP's
	// commands and the lab's paths are short, and the line is read into a
	// buffer this big.
	maxLine = 4096
	// handshakeTimeout bounds a TLS handshake, on the control connection
	// or a data connection.
	handshakeTimeout = 10 * time.Second
	// dataTimeout bounds a whole transfer, so a client that stops reading
	// does not hold a session forever.
	dataTimeout = 2 * time.Minute
)

// idleTimeout ends a logged-in session nobody uses. A variable for tests.
var idleTimeout = 5 * time.Minute

// FTPSite is what the front-ends of one ASE share for FTP: its content,
// which the ASE's workers serve too, and its passive sessions. Give one to
// each front-end of an ASE, as with the certificate.
//
// The data connection goes to VIP:port, where the load balancer picks a
// front-end by the connection's 5-tuple, not the control connection's: it
// may land on another front-end than the one that answered PASV. Azure's
// front-ends share their sessions behind the scenes; ours are goroutines
// of one process, so a table in memory does it. A data connection finds
// its session by the data port and the client's address, which the load
// balancer keeps (F2).
type FTPSite struct {
	files   *wwwroot.Store
	mu      sync.Mutex
	passive map[passiveKey]*passive
	next    int // where the search for a free data port starts
}

type passiveKey struct {
	port   int
	client netip.Addr
}

// passive is a session's open PASV: the front-end that accepts the data
// connection hands it over on conns.
type passive struct {
	key   passiveKey
	conns chan *dataConn // buffered 1; sent to under FTPSite.mu only
}

// dataConn is a data connection lent to a session by the front-end that
// accepted it, which keeps it until done is closed.
type dataConn struct {
	net.Conn
	done chan struct{}
}

func (d *dataConn) release() {
	d.Close()
	close(d.done)
}

// NewFTPSite returns an ASE's FTP site on its content files (nil: a new
// Store, of this site alone).
func NewFTPSite(files *wwwroot.Store) *FTPSite {
	if files == nil {
		files = wwwroot.New()
	}
	return &FTPSite{files: files, passive: map[passiveKey]*passive{}}
}

// open registers a passive session for client on a free data port.
func (f *FTPSite) open(client netip.Addr) (*passive, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := FTPDataLast - FTPDataFirst + 1
	for i := range n {
		k := passiveKey{FTPDataFirst + (f.next+i)%n, client}
		if f.passive[k] == nil {
			f.next = (f.next + i + 1) % n
			p := &passive{key: k, conns: make(chan *dataConn, 1)}
			f.passive[k] = p
			return p, true
		}
	}
	return nil, false
}

// cancel unregisters p and releases a data connection it was given.
func (f *FTPSite) cancel(p *passive) {
	if p == nil {
		return
	}
	f.mu.Lock()
	if f.passive[p.key] == p {
		delete(f.passive, p.key)
	}
	f.mu.Unlock()
	// No send can follow: sends happen under mu while p is registered.
	select {
	case d := <-p.conns:
		d.release()
	default:
	}
}

// accept lends c, accepted on data port port, to the session waiting for
// it, and waits until the session is done with it or stop ends. With no
// session waiting, it returns at once and c is closed: nc -z still finds
// the port open.
func (f *FTPSite) accept(c net.Conn, port int, stop <-chan struct{}) {
	client := netx.AddrPort(c.RemoteAddr()).Addr()
	f.mu.Lock()
	p := f.passive[passiveKey{port, client}]
	var d *dataConn
	if p != nil {
		delete(f.passive, p.key)
		d = &dataConn{Conn: c, done: make(chan struct{})}
		p.conns <- d
	}
	f.mu.Unlock()
	if d == nil {
		return
	}
	select {
	case <-d.done:
	case <-stop:
	}
}

// ftpSession is one control connection.
type ftpSession struct {
	s       *Server
	site    *FTPSite
	c       net.Conn
	r       *bufio.Reader
	client  netip.Addr
	user    string
	login   bool
	cwd     string // "/", "/APP" or "/APP/FOLDER...", clean
	binary  bool
	pasv    *passive
	proto   string
	closing context.Context
	secure  bool   // the control connection is in TLS
	pbsz    bool   // PBSZ came, after TLS, as PROT must follow it
	private bool   // PROT P: data connections in TLS
	rest    int    // REST: where the next RETR or STOR starts
	rnfr    string // RNFR: the file or folder RNTO renames, resolved
	aborted bool   // the last transfer ended for an ABOR, which is answered next
}

// ftps serves implicit FTPS on c: TLS first, then FTP inside it.
func (s *Server) ftps(c net.Conn) {
	tc := tls.Server(c, s.tls)
	if s.handshake(tc) != nil {
		return
	}
	s.ftp(tc, "FTPS")
}

func (s *Server) handshake(tc *tls.Conn) error {
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	defer cancel()
	return tc.HandshakeContext(ctx)
}

// ftp serves FTP on control connection c, which is in TLS for FTPS.
func (s *Server) ftp(c net.Conn, proto string) {
	st := s.state.Load()
	_, secure := c.(*tls.Conn)
	fs := &ftpSession{s: s, site: s.site, c: c, r: bufio.NewReaderSize(c, maxLine), client: netx.AddrPort(c.RemoteAddr()).Addr(), cwd: "/", proto: proto, closing: s.ctx, secure: secure}
	defer func() { fs.site.cancel(fs.pasv) }()
	defer func() {
		// In TLS from the start or since AUTH: close_notify, which TLS
		// clients expect.
		if tc, ok := fs.c.(*tls.Conn); ok {
			tc.Close()
		}
	}()
	fs.reply(220, "%s %s (emulated ASE %s)", st.fe, proto, st.ase)
	for {
		timeout := idleTimeout
		if !fs.login {
			timeout = loginTimeout
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		// A line is read into the reader's buffer, maxLine bytes: a
		// client that never ends its line must not grow the emulator's
		// memory (ReadString would, without bound).
		line, err := fs.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			fs.reply(500, "Command line longer than %d bytes.", maxLine)
			return
		} else if err != nil {
			return
		}
		if !fs.command(parseCommand(line)) {
			return
		}
	}
}

// parseCommand splits a command line into its command, in upper case, and
// its argument. Clients send ABOR after Telnet's Interrupt Process and
// Synch (IAC IP IAC DM, RFC 959 4.1.3), which are not the command.
func parseCommand(line []byte) (cmd, arg string) {
	cmd, arg, _ = strings.Cut(strings.TrimLeft(strings.TrimRight(string(line), "\r\n"), "\xff\xf4\xf2"), " ")
	return strings.ToUpper(cmd), arg
}

func (fs *ftpSession) reply(code int, format string, a ...any) {
	fs.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(fs.c, "%d %s\r\n", code, fmt.Sprintf(format, a...))
}

// command runs one command and reports whether the session goes on.
func (fs *ftpSession) command(cmd, arg string) bool {
	switch cmd {
	case "QUIT":
		fs.reply(221, "Goodbye.")
		return false
	case "NOOP":
		fs.reply(200, "OK.")
		return true
	case "USER":
		fs.user, fs.login = arg, false
		fs.reply(331, "Any password will do for %s (emulated ASE: every user and password logs in).", arg)
		return true
	case "PASS":
		if fs.user == "" {
			fs.reply(503, "Send USER first.")
			return true
		}
		fs.login = true
		fs.reply(230, "Logged in as %s; one directory per app of ASE %s.", fs.user, fs.s.state.Load().ase)
		return true
	case "SYST":
		fs.reply(215, "UNIX Type: L8")
		return true
	case "FEAT":
		fs.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		// REST STREAM, as IIS's FTP service, App Service's, advertises
		// it; MLST (RFC 3659), which FileZilla and lftp list with when
		// offered, with the facts its files and folders have.
		io.WriteString(fs.c, "211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n EPSV\r\n PASV\r\n SIZE\r\n MDTM\r\n REST STREAM\r\n "+mlstFeat+"\r\n UTF8\r\n211 End\r\n")
		return true
	case "OPTS":
		// Every fact is always sent (RFC 3659 7.9: the reply names
		// those selected, whatever was asked).
		if opt, _, _ := strings.Cut(arg, " "); strings.EqualFold(opt, "MLST") {
			fs.reply(200, "MLST OPTS %s", mlstFacts)
			return true
		}
		fs.reply(200, "OK.")
		return true
	case "HELP":
		fs.help()
		return true
	case "PORT", "EPRT":
		fs.reply(502, "Active mode is not served: the front-end cannot connect back to you through the load balancer; use passive mode (PASV or EPSV, data ports %d-%d).", FTPDataFirst, FTPDataLast)
		return true
	case "AUTH":
		return fs.auth(arg)
	case "PBSZ":
		if !fs.secure {
			fs.reply(503, "PBSZ needs TLS first: AUTH TLS, or FTPS on port %d.", FTPSPort)
			return true
		}
		fs.pbsz = true
		// TLS has no buffer size to agree on: RFC 4217 says 0.
		fs.reply(200, "PBSZ=0")
		return true
	case "PROT":
		fs.prot(arg)
		return true
	}
	if !fs.login {
		fs.reply(530, "Log in with USER and PASS first.")
		return true
	}
	switch cmd {
	case "PWD", "XPWD":
		fs.reply(257, "%s is the current directory.", quote(fs.cwd))
	case "CWD", "XCWD":
		fs.cd(arg)
	case "CDUP", "XCUP":
		fs.cd("..")
	case "TYPE":
		switch strings.ToUpper(strings.TrimSpace(arg)) {
		case "A", "A N":
			fs.binary = false
			fs.reply(200, "Type set to A.")
		case "I", "L 8":
			fs.binary = true
			fs.reply(200, "Type set to I.")
		default:
			fs.reply(504, "Type %s is not served; use A or I.", arg)
		}
	case "SIZE", "MDTM":
		fl, ok := fs.get(arg)
		switch {
		case !ok:
			fs.reply(550, "%s: no such file.", printable(arg))
		case cmd == "SIZE":
			fs.reply(213, "%d", len(fl.Data))
		default:
			fs.reply(213, "%s", fl.Mod.Format("20060102150405"))
		}
	case "EPSV", "PASV":
		fs.passive(cmd)
	case "LIST", "NLST", "MLSD":
		fs.list(cmd, arg)
	case "MLST":
		fs.mlst(arg)
	case "STAT":
		fs.stat(arg)
	case "REST":
		fs.restart(arg)
	case "RETR":
		fs.retr(arg)
	case "STOR", "APPE":
		fs.stor(cmd, arg)
	case "RNFR":
		fs.rnfr = ""
		// The root and the apps' directories stay as the ASE has them.
		if _, _, ok := fs.file(arg); !ok {
			fs.reply(550, "%s: no such file or folder in an app's directory.", printable(arg))
			return true
		}
		if _, ok := fs.entry(arg); !ok {
			fs.reply(550, "%s: no such file or folder.", printable(arg))
			return true
		}
		fs.rnfr = fs.resolve(arg)
		fs.reply(350, "Send RNTO with the new name.")
	case "RNTO":
		fs.rename(arg)
	case "MKD", "XMKD":
		fs.mkdir(arg)
	case "RMD", "XRMD":
		fs.remove(arg, fs.site.files.Rmdir, "not a folder in an app's directory; / and its apps' directories stay", "removed")
	case "ALLO":
		fs.reply(202, "No storage to allocate: uploads go to memory as they come.")
	case "ABOR":
		// A transfer ABOR came during has ended (watchControl), with its
		// 426; otherwise only an open PASV is left to give up.
		fs.site.cancel(fs.pasv)
		fs.pasv = nil
		if fs.aborted {
			fs.aborted = false
			fs.reply(226, "Transfer aborted; the data connection is closed.")
		} else {
			fs.reply(225, "No transfer to abort.")
		}
	case "DELE":
		fs.remove(arg, fs.site.files.Delete, "no such file", "deleted")
	default:
		fs.reply(502, "%s is not implemented.", cmd)
	}
	return true
}

// auth starts TLS on the control connection (explicit FTPS, RFC 4217).
// AUTH SSL, older, still comes from some clients and means the same here.
func (fs *ftpSession) auth(arg string) bool {
	switch mech := strings.ToUpper(strings.TrimSpace(arg)); {
	case fs.secure:
		fs.reply(503, "The connection is in TLS already.")
		return true
	case mech != "TLS" && mech != "TLS-C" && mech != "SSL":
		fs.reply(504, "AUTH %s is not served; use AUTH TLS.", arg)
		return true
	}
	fs.reply(234, "Starting TLS.")
	tc := tls.Server(fs.c, fs.s.tls)
	if fs.s.handshake(tc) != nil {
		return false
	}
	// RFC 4217: TLS starts a new session, to be logged in again.
	fs.c, fs.r, fs.secure = tc, bufio.NewReaderSize(tc, maxLine), true
	fs.user, fs.login = "", false
	return true
}

// prot sets the data connections' protection (RFC 4217): clear or TLS.
func (fs *ftpSession) prot(arg string) {
	if !fs.secure || !fs.pbsz {
		fs.reply(503, "PROT needs TLS and PBSZ 0 first.")
		return
	}
	switch strings.ToUpper(strings.TrimSpace(arg)) {
	case "C":
		fs.private = false
		fs.reply(200, "Data connections in clear.")
	case "P":
		fs.private = true
		fs.reply(200, "Data connections in TLS.")
	case "S", "E":
		fs.reply(536, "PROT %s is not served; use P or C.", arg)
	default:
		fs.reply(504, "PROT %s is unknown; use P or C.", arg)
	}
}

// resolve returns the absolute, clean form of p relative to the current
// directory.
func (fs *ftpSession) resolve(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = fs.cwd + "/" + p
	}
	return path.Clean(p)
}

// app returns the ASE's app called name (any case), as topology spells it.
func (fs *ftpSession) app(name string) (string, bool) {
	rt := fs.s.state.Load().apps[strings.ToLower(name)]
	if rt == nil {
		return "", false
	}
	return rt.app, true
}

// where splits p into an app of the ASE and a path in its directory: ""
// for the app's directory itself, and app "" for the root, which holds
// the apps' directories. ok is false for an app the ASE does not have.
func (fs *ftpSession) where(p string) (app, rel string, ok bool) {
	rest := strings.TrimPrefix(fs.resolve(p), "/")
	if rest == "" {
		return "", "", true
	}
	first, rel, _ := strings.Cut(rest, "/")
	app, ok = fs.app(first)
	return app, rel, ok
}

// file is where(p) for what only an app's directory holds: its files and
// folders, never the root or the app's directory itself.
func (fs *ftpSession) file(p string) (app, rel string, ok bool) {
	app, rel, ok = fs.where(p)
	return app, rel, ok && rel != ""
}

// get returns the file, not a folder, at p.
func (fs *ftpSession) get(p string) (*wwwroot.File, bool) {
	app, rel, ok := fs.file(p)
	if !ok {
		return nil, false
	}
	f, ok := fs.site.files.Get(app, rel)
	return f, ok && !f.Dir
}

// entry describes what is at p: the root, an app's directory, a folder or
// a file, named by its path, in the case it was first given.
func (fs *ftpSession) entry(p string) (dirEntry, bool) {
	app, rel, ok := fs.where(p)
	switch {
	case !ok:
		return dirEntry{}, false
	case app == "":
		return dirEntry{name: "/", dir: true, mod: time.Now().UTC()}, true
	case rel == "":
		return dirEntry{name: "/" + app, dir: true, mod: time.Now().UTC()}, true
	}
	f, ok := fs.site.files.Get(app, rel)
	if !ok {
		return dirEntry{}, false
	}
	return dirEntry{name: "/" + app + "/" + rel, dir: f.Dir, size: len(f.Data), mod: f.Mod}, true
}

func (fs *ftpSession) cd(arg string) {
	e, ok := fs.entry(arg)
	if !ok || !e.dir {
		fs.reply(550, "%s: no such directory; / holds one directory per app.", printable(fs.resolve(arg)))
		return
	}
	fs.cwd = e.name
	fs.reply(250, "Directory is now %s.", printable(fs.cwd))
}

// mkdir makes a folder in an app's directory (MKD). The root holds the
// ASE's apps, which FTP cannot add to.
func (fs *ftpSession) mkdir(arg string) {
	app, rel, ok := fs.file(arg)
	if !ok {
		fs.reply(550, "%s: a folder goes into an app's directory (/APP/FOLDER); / holds one directory per app, as the ASE has them.", printable(arg))
		return
	}
	if _, err := fs.site.files.Mkdir(app, rel); err != nil {
		fs.refuse(arg, err)
		return
	}
	// RFC 959: 257 and the new directory's path, quoted.
	fs.reply(257, "%s created.", quote("/"+app+"/"+rel))
}

// remove runs del, a Store's Delete or Rmdir, on the file or folder at
// arg, and replies: 250 and done, notThere for a path outside an app's
// directory, or the Store's refusal.
func (fs *ftpSession) remove(arg string, del func(app, rel string) error, notThere, done string) {
	app, rel, ok := fs.file(arg)
	if !ok {
		fs.reply(550, "%s: %s.", printable(arg), notThere)
	} else if err := del(app, rel); err != nil {
		fs.refuse(arg, err)
	} else {
		fs.reply(250, "%s %s.", printable(arg), done)
	}
}

// refuse answers a Store's refusal to act on p (refusal).
func (fs *ftpSession) refuse(p string, err error) {
	fs.reply(refusal(err), "%s: %v.", printable(p), err)
}

// refusal is the reply code of a Store's error: 553 for a path it does
// not take, 552 past its limit, 550 for what is or is not there.
func refusal(err error) int {
	switch {
	case errors.Is(err, wwwroot.ErrBadPath):
		return 553
	case errors.Is(err, wwwroot.ErrFull):
		return 552
	}
	return 550
}

// stored is the path a file or folder the Store wrote at rel now has: its
// folders as given, its own name in the case the Store kept.
func stored(app, rel string, f *wwwroot.File) string {
	return printable(path.Join("/"+app, path.Dir(rel), f.Name))
}

// quote is p as RFC 959's 257 replies quote a path: in double quotes,
// each one in it doubled.
func quote(p string) string {
	return `"` + strings.ReplaceAll(printable(p), `"`, `""`) + `"`
}

// printable is p as a reply may show it: a control character, which a
// client's path may hold, would cut the reply's line or fake another.
func printable(p string) string {
	if strings.ContainsFunc(p, unicode.IsControl) {
		return strconv.Quote(p)
	}
	return p
}

// passive opens a passive data port. PASV advertises the address the
// client reached FTP on, which the load balancer forwards (the ASE's VIP,
// or its ILB address when its mode puts FTP there), never the front-end's
// own: the client cannot reach that.
func (fs *ftpSession) passive(cmd string) {
	fs.site.cancel(fs.pasv)
	fs.pasv = nil
	p, ok := fs.site.open(fs.client)
	if !ok {
		fs.reply(425, "Every data port (%d-%d) is waiting for a connection from %s.", FTPDataFirst, FTPDataLast, fs.client)
		return
	}
	fs.pasv = p
	port := p.key.port
	if cmd == "EPSV" {
		fs.reply(229, "Entering Extended Passive Mode (|||%d|)", port)
		return
	}
	a := fs.s.state.Load().ftpAddr.As4()
	fs.reply(227, "Entering Passive Mode (%d,%d,%d,%d,%d,%d)", a[0], a[1], a[2], a[3], port>>8, port&0xff)
}

// data waits for the data connection of the session's open PASV, which
// the transfer then has until dataTimeout.
func (fs *ftpSession) data() *dataConn {
	p := fs.pasv
	fs.pasv = nil
	if p == nil {
		fs.reply(425, "Use PASV or EPSV first.")
		return nil
	}
	t := time.NewTimer(dataWait)
	defer t.Stop()
	select {
	case d := <-p.conns:
		fs.reply(150, "Data connection open on port %d.", p.key.port)
		d.SetDeadline(time.Now().Add(dataTimeout))
		return d
	case <-t.C:
		fs.site.cancel(p)
		fs.reply(425, "No data connection from %s to port %d within %v: is it denied on the way (an NSG on 10001-10020)?", fs.client, p.key.port, dataWait)
	case <-fs.closing.Done():
		fs.site.cancel(p)
	}
	return nil
}

// transfer runs f on the data connection, in TLS after PROT P, which it
// then closes, and replies with f's result.
func (fs *ftpSession) transfer(f func(c net.Conn) (int, string)) {
	d := fs.data()
	if d == nil {
		return
	}
	// The front-end closing ends a transfer its client has stopped reading.
	stop := context.AfterFunc(fs.closing, func() { d.Close() })
	watch := fs.watchControl(d)
	code, msg := fs.onData(d, f)
	stop()
	if fs.aborted = watch(); fs.aborted {
		code, msg = 426, "Transfer aborted (ABOR)."
	}
	d.release()
	// After the close: a client may read a download up to its end first.
	fs.reply(code, "%s", msg)
}

// watchControl watches the control connection, which the session's loop
// does not read while d carries a transfer. The client closing it, or
// sending ABOR (RFC 959: the one command served during a transfer), closes
// d and so ends the transfer: a client gone mid-transfer held d, the
// transfer's goroutine and two descriptors until dataTimeout. Another
// command waits in fs.r for the loop. The returned stop ends the watch,
// leaving fs.r as it was, and reports whether the client aborted.
func (fs *ftpSession) watchControl(d net.Conn) (stop func() (aborted bool)) {
	var stopping, aborted atomic.Bool
	// The loop's deadline for the next command is not the transfer's,
	// which dataTimeout bounds on d: a client that waited minutes before
	// RETR would otherwise see the transfer cut at it.
	fs.c.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for n := 1; ; {
			_, err := fs.r.Peek(n)
			if stopping.Load() {
				return // stop's deadline woke Peek
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				return // no command ends in fs.r: the loop refuses the line
			}
			if err != nil {
				d.Close() // the client closed the control connection, or it broke
				return
			}
			b, _ := fs.r.Peek(fs.r.Buffered())
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				n = len(b) + 1 // the rest of the line
				continue
			}
			if cmd, _ := parseCommand(b[:i+1]); cmd == "ABOR" {
				aborted.Store(true)
				d.Close()
			}
			return
		}
	}()
	return func() bool {
		stopping.Store(true)
		// Peek returns the deadline's error and forgets it, so the loop
		// reads on; TLS survives a read that timed out (crypto/tls keeps
		// no temporary error).
		fs.c.SetReadDeadline(time.Now())
		<-done
		return aborted.Load()
	}
}

// onData runs f on d, in TLS after PROT P.
func (fs *ftpSession) onData(d *dataConn, f func(c net.Conn) (int, string)) (int, string) {
	if !fs.private {
		return f(d)
	}
	tc := tls.Server(d, fs.s.dataTLS)
	if err := fs.s.handshake(tc); err != nil {
		return 425, fmt.Sprintf("No TLS on the data connection (PROT P): %v.", err)
	}
	code, msg := f(tc)
	tc.Close() // close_notify: the end of the data, as TLS clients check
	return code, msg
}

// mlstFacts are the facts of MLSD and MLST (RFC 3659 7.5), all sent
// always; mlstFeat advertises them in FEAT, each marked as sent.
const (
	mlstFacts = "type;size;modify;"
	mlstFeat  = "MLST type*;size*;modify*;"
)

// dirEntry is one name of a listing: an app's directory at the root, a
// file or folder in an app's.
type dirEntry struct {
	name string
	dir  bool
	size int
	mod  time.Time
}

// listed lists the directory a listing command (LIST, NLST, MLSD, STAT)
// names, ls options ("LIST -al", which clients send) left out: there are
// none to honour. A file named where file is set lists as itself, as
// RFC 959 has LIST, NLST and STAT do (`ls -l site.css` in lftp); MLSD
// lists only a directory (RFC 3659 7.2). p is the path; ok is false if
// it names nothing listable.
func (fs *ftpSession) listed(arg string, file bool) (p string, es []dirEntry, ok bool) {
	if strings.HasPrefix(arg, "-") {
		_, arg, _ = strings.Cut(arg, " ")
	}
	p = fs.resolve(arg)
	app, rel, ok := fs.where(p)
	if !ok {
		return p, nil, false
	}
	if app == "" {
		for _, name := range fs.s.state.Load().names {
			es = append(es, dirEntry{name: name, dir: true, mod: time.Now().UTC()})
		}
		return p, es, true
	}
	files, err := fs.site.files.List(app, rel)
	if errors.Is(err, wwwroot.ErrNotFolder) && file {
		// Deleted since, it is not found (err stays).
		if f, ok := fs.site.files.Get(app, rel); ok {
			files, err = []*wwwroot.File{f}, nil
		}
	}
	if err != nil {
		return p, nil, false
	}
	for _, f := range files {
		es = append(es, dirEntry{name: f.Name, dir: f.Dir, size: len(f.Data), mod: f.Mod})
	}
	return p, es, true
}

// list sends a directory's listing (LIST, NLST or MLSD) on a data
// connection.
func (fs *ftpSession) list(cmd, arg string) {
	fs.rest = 0
	p, es, ok := fs.listed(arg, cmd != "MLSD")
	if !ok {
		// RFC 3659 7.2: MLSD names a directory, and only one.
		fs.reply(550, "%s: no such directory.", printable(p))
		return
	}
	var lines []string
	for _, e := range es {
		switch cmd {
		case "LIST":
			lines = append(lines, e.long())
		case "NLST":
			lines = append(lines, e.name)
		default:
			lines = append(lines, e.facts()+" "+e.name)
		}
	}
	fs.transfer(func(d net.Conn) (int, string) {
		for _, l := range lines {
			if _, err := io.WriteString(d, l+"\r\n"); err != nil {
				return 426, "Listing cut: " + err.Error()
			}
		}
		return 226, "Listing sent."
	})
}

// long is e as a line of LIST, as ls -l writes it.
func (e dirEntry) long() string {
	mode := "-rw-r--r--"
	if e.dir {
		mode = "drwxr-xr-x"
	}
	return fmt.Sprintf("%s 1 owner group %12d %s %s", mode, e.size, e.mod.Format("Jan _2 15:04"), e.name)
}

// facts are e's facts for MLSD and MLST (RFC 3659 7.5), without the
// space and the name that follow them.
func (e dirEntry) facts() string {
	modify := e.mod.UTC().Format("20060102150405")
	if e.dir {
		return "type=dir;modify=" + modify + ";"
	}
	return fmt.Sprintf("type=file;size=%d;modify=%s;", e.size, modify)
}

// mlst answers one file's or directory's facts on the control connection
// (RFC 3659 7.2): the reply's one line, which starts with a space, is
// the facts and the path.
func (fs *ftpSession) mlst(arg string) {
	p := fs.resolve(arg)
	e, ok := fs.entry(p)
	if !ok {
		fs.reply(550, "%s: no such file or directory.", printable(p))
		return
	}
	fs.lines(250, "Facts of "+e.name, []string{e.facts() + " " + e.name}, "End")
}

// stat with no argument describes the session (211); with one, it lists
// that directory on the control connection (213), as LIST would on a
// data connection (RFC 959 4.1.3).
func (fs *ftpSession) stat(arg string) {
	if arg == "" {
		mode := "ASCII"
		if fs.binary {
			mode = "binary"
		}
		fs.lines(211, "Status of "+fs.s.state.Load().fe, []string{
			fmt.Sprintf("Connected from %s, logged in as %s, over %s, control connection in TLS: %v", fs.client, fs.user, fs.proto, fs.secure),
			fmt.Sprintf("Type %s, passive mode only, data ports %d-%d, data connections in TLS: %v", mode, FTPDataFirst, FTPDataLast, fs.private),
		}, "End of status")
		return
	}
	p, es, ok := fs.listed(arg, true)
	if !ok {
		fs.reply(550, "%s: no such file or directory.", printable(p))
		return
	}
	var lines []string
	for _, e := range es {
		lines = append(lines, e.long())
	}
	fs.lines(213, "Status of "+p, lines, "End of status")
}

// help names the commands served (RFC 959 4.1.3: 214).
func (fs *ftpSession) help() {
	fs.lines(214, "The commands served (passive mode only; one directory per app, with folders):", []string{
		"USER PASS QUIT NOOP SYST FEAT OPTS HELP STAT AUTH PBSZ PROT",
		"PWD CWD CDUP TYPE PASV EPSV LIST NLST MLSD MLST SIZE MDTM",
		"RETR STOR APPE REST DELE RNFR RNTO MKD RMD ALLO ABOR",
	}, "End of help")
}

// lines sends a multi-line reply: first after code and a dash, each line
// indented by a space (RFC 959 4.2; RFC 3659 7.2 for MLST), last after
// code and a space.
func (fs *ftpSession) lines(code int, first string, lines []string, last string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d-%s\r\n", code, first)
	for _, l := range lines {
		fmt.Fprintf(&b, " %s\r\n", l)
	}
	fmt.Fprintf(&b, "%d %s\r\n", code, last)
	fs.c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(fs.c, b.String())
}

// restart keeps where the next RETR or STOR starts (RFC 3659 5, REST
// STREAM): resuming a download, or an upload the client cut.
func (fs *ftpSession) restart(arg string) {
	n, err := strconv.Atoi(strings.TrimSpace(arg))
	if err != nil || n < 0 {
		fs.rest = 0
		fs.reply(501, "REST takes a byte offset, 0 or more.")
		return
	}
	fs.rest = n
	fs.reply(350, "The next RETR or STOR starts at byte %d.", n)
}

func (fs *ftpSession) retr(arg string) {
	at := fs.rest
	fs.rest = 0
	f, ok := fs.get(arg)
	if !ok {
		fs.reply(550, "%s: no such file.", printable(arg))
		return
	}
	if at > len(f.Data) {
		fs.reply(554, "REST %d is past the end of %s (%d bytes).", at, printable(arg), len(f.Data))
		return
	}
	fs.transfer(func(d net.Conn) (int, string) {
		if _, err := d.Write(f.Data[at:]); err != nil {
			return 426, "Transfer cut: " + err.Error()
		}
		return 226, "Transfer complete."
	})
}

// stor uploads: STOR writes the file anew, or from its REST offset on;
// APPE adds to its end. Every way keeps the Store's limit (wwwroot.Limit).
func (fs *ftpSession) stor(cmd, arg string) {
	at := fs.rest
	fs.rest = 0
	app, name, ok := fs.file(arg)
	if !ok {
		fs.reply(553, "%s: a file goes into an app's directory (/APP/FILE, /APP/FOLDER/FILE).", printable(arg))
		return
	}
	// Refused before the data connection, not after the client has sent
	// its bytes for nothing.
	if err := fs.site.files.Writable(app, name); err != nil {
		fs.refuse(arg, err)
		return
	}
	if cmd == "APPE" || at > 0 {
		size := 0
		if f, ok := fs.site.files.Get(app, name); ok {
			size = len(f.Data)
		}
		if cmd == "APPE" {
			at = size
		} else if at > size {
			fs.reply(554, "REST %d is past the end of %s (%d bytes).", at, printable(arg), size)
			return
		}
	}
	fs.transfer(func(d net.Conn) (int, string) {
		var f *wwwroot.File
		var err error
		if at > 0 {
			f, err = fs.site.files.WriteAt(app, name, at, d)
		} else {
			f, err = fs.site.files.Put(app, name, d)
		}
		if err != nil {
			return refusal(err), "Upload not stored: " + err.Error() + "."
		}
		return 226, fmt.Sprintf("Stored %d bytes as %s.", len(f.Data), stored(app, name, f))
	})
}

// rename ends RNFR with RNTO: a file or folder moves within its app's
// directory, to a folder there.
func (fs *ftpSession) rename(arg string) {
	from := fs.rnfr
	fs.rnfr = ""
	if from == "" {
		fs.reply(503, "Send RNFR first.")
		return
	}
	fromApp, fromRel, _ := fs.file(from)
	app, rel, ok := fs.file(arg)
	if !ok {
		fs.reply(553, "%s: a file or folder goes into an app's directory (/APP/NAME, /APP/FOLDER/NAME).", printable(arg))
		return
	}
	if app != fromApp {
		fs.reply(553, "%s: a file or folder stays in its app's directory, /%s.", printable(arg), fromApp)
		return
	}
	f, err := fs.site.files.Rename(app, fromRel, rel)
	switch {
	case errors.Is(err, wwwroot.ErrExists):
		// As Windows, whose rename keeps a file it would replace.
		fs.reply(550, "%s: a file or folder of that name is there; delete it first.", printable(arg))
	case err != nil:
		fs.refuse(arg, err)
	default:
		fs.reply(250, "Renamed %s to %s.", printable(from), stored(app, rel, f))
	}
}
