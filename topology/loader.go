package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads a topology file and parses it. A file that cannot be read gives
// the os error; a bad file gives Errors.
func Load(path string) (*Topology, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Read one byte past the limit so Parse sees the file is too large
	// without the whole of a huge file being read into memory.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates a topology file and assigns addresses. filename is only used
// in error messages. It returns either a complete Topology or Errors listing
// every problem found, in line order.
func Parse(filename string, data []byte) (*Topology, error) {
	return ParseOver(filename, data, nil)
}

// ParseOver is Parse for a file applied to a running lab: a machine that
// running already has, in the same subnet, keeps its address where the
// file leaves the address to the emulator, and new machines take the
// lowest addresses free of them. Azure never renumbers a running machine
// when its neighbours scale (F1, F4); assigning afresh would shift every
// machine behind a new front-end. running may be nil.
func ParseOver(filename string, data []byte, running *Topology) (*Topology, error) {
	if filename == "" {
		filename = "<input>"
	}
	p := &parser{file: filename, running: running}
	if len(data) > MaxFileSize {
		// The line where the limit falls, so the message points into the file.
		line := bytes.Count(data[:MaxFileSize], []byte("\n")) + 1
		p.errAt(loc{line: line}, "the file is over %d MiB, the limit for a topology file; it passes the limit on this line", MaxFileSize>>20)
		return nil, p.errs
	}
	data, line, ok := fromUTF16(data)
	if !ok {
		p.errAt(loc{line: line}, "the file is UTF-16, by its byte-order mark, and a character on this line is cut short or unpaired; save the file as UTF-8")
		return nil, p.errs
	}
	if line, msg := badText(data); line > 0 {
		p.errAt(loc{line: line}, "%s", msg)
		return nil, p.errs
	}
	var t *Topology
	if root := p.parseYAML(data); root != nil {
		if d := p.document(root); d != nil {
			t = p.build(d)
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs.sorted()
	}
	return t, nil
}

type parser struct {
	file    string
	errs    Errors
	running *Topology // whose machines keep their addresses (ParseOver); nil for Parse
}

// loc is where a value is (or, when it is missing, should be) in the file.
type loc struct {
	line int
	path string
}

func (l loc) field(key string) loc {
	if l.path == "" {
		return loc{l.line, key}
	}
	return loc{l.line, l.path + "." + key}
}

func (l loc) index(i int, line int) loc { return loc{line, fmt.Sprintf("%s[%d]", l.path, i)} }

func (p *parser) errAt(at loc, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: at.line, Field: at.path, Msg: fmt.Sprintf(format, args...)})
}

var (
	yamlLine   = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlAnchor = regexp.MustCompile(`anchor '([^']*)'`)
)

// parseYAML returns the document's root node, or nil after reporting why
// there is none.
func (p *parser) parseYAML(data []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 panics only on its own bugs; bad input must still give an
		// error and never take the emulator down.
		if r := recover(); r != nil {
			p.errAt(loc{line: 1}, "YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			p.errAt(loc{line: 1}, "the file is empty; `emulator init` prints a lab to start from")
		} else {
			p.yamlError(err, data, nil)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		p.yamlError(err, data, nil)
		return nil
	default:
		p.errAt(loc{line: extra.Line}, "a topology file holds one YAML document; remove this second one")
		return nil
	}
	// Decoding into a Node does not expand aliases, so yaml.v3's guard against
	// alias bombs ("billion laughs") and self-containing anchors only runs when
	// decoding into Go values. Do that once and throw the result away: after
	// it, walking the tree (which follows aliases) is bounded. Type errors such
	// as duplicate keys are reported with better positions by the walk.
	var discard any
	if err := doc.Decode(&discard); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) && (strings.Contains(err.Error(), "alias") || strings.Contains(err.Error(), "anchor")) {
			p.yamlError(err, data, &doc)
			return nil
		}
	}
	if len(doc.Content) == 0 {
		p.errAt(loc{line: 1}, "the file is empty; `emulator init` prints a lab to start from")
		return nil
	}
	root = doc.Content[0]
	if r := deref(root); r.Kind == yaml.ScalarNode && r.Tag == "!!null" {
		p.errAt(loc{line: doc.Line}, "the file is empty; `emulator init` prints a lab to start from")
		return nil
	}
	missingValuesOnTheirKeys(root)
	return root
}

// missingValuesOnTheirKeys puts each mapping value that is missing ("key:"
// or "? key" with nothing after it) on its key's line. yaml.v3 gives such a
// value the line of whatever comes next, which after the file's last line
// does not exist: fuzzing found "? <<" and "- ? name" reported on a line
// past the end. An error about a missing value belongs on its key's line.
func missingValuesOnTheirKeys(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := n.Content[i+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!null" && v.Value == "" && v.Style == 0 {
				v.Line = n.Content[i].Line
			}
		}
	}
	// An alias's target is walked where its anchor is.
	for _, c := range n.Content {
		missingValuesOnTheirKeys(c)
	}
}

// yamlError reports an error from yaml.v3 at the line it names, or failing
// that at the line of the anchor or alias it is about.
func (p *parser) yamlError(err error, data []byte, doc *yaml.Node) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if doc == nil && len(data) <= maxRefinedSize {
			line = syntaxLine(data, err.Error(), line)
		}
	}
	if strings.Contains(msg, "did not find expected alphabetic or numeric character") {
		msg += " (a bare * starts a YAML alias: write '*' in quotes)"
	}
	if strings.Contains(msg, "found character that cannot start any token") && line > 0 && tabIndented(data, line) {
		msg += " (the line is indented with a tab; YAML indents with spaces only)"
	}
	field := ""
	if line == 0 && doc != nil {
		line, field = firstAlias(doc, "")
	}
	if line == 0 {
		if m := yamlAnchor.FindStringSubmatch(msg); m != nil {
			for i, l := range bytes.Split(data, []byte("\n")) {
				if bytes.Contains(l, []byte("*"+m[1])) || bytes.Contains(l, []byte("&"+m[1])) {
					line = i + 1
					break
				}
			}
		}
	}
	if line == 0 {
		line = 1
	}
	p.errAt(loc{line, field}, "%s", msg)
}

// tabIndented reports whether line (from 1) of data starts with a tab
// among its leading blanks.
func tabIndented(data []byte, line int) bool {
	lines := bytes.SplitN(data, []byte("\n"), line+1)
	if line > len(lines) {
		return false
	}
	l := lines[line-1]
	return bytes.ContainsRune(l[:len(l)-len(bytes.TrimLeft(l, " \t"))], '\t')
}

// syntaxLine finds the line a YAML syntax error is on. yaml.v3 reports the
// line where the enclosing construct starts, less one, for parser errors
// ("did not find expected '-' indicator" for a bad line 40 of a list that
// starts on line 10 says line 9). The first prefix of the file, in whole
// lines, that fails with the same error ends on the line at fault; a binary
// search finds it in O(log n) parses. If the search is inconclusive,
// yaml.v3's line stands, as it does for files over maxRefinedSize, where
// the parses would take seconds (real topology files are a few KiB).
const maxRefinedSize = 512 << 10

func syntaxLine(data []byte, msg string, fallback int) int {
	ends := []int{0} // ends[k] is the offset just past line k
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	fails := func(k int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[k]]))
		for {
			var n yaml.Node
			err := dec.Decode(&n)
			if err == io.EOF {
				return false
			}
			if err != nil {
				return withoutLine(err.Error()) == withoutLine(msg)
			}
		}
	}
	k := sort.Search(len(ends), fails)
	if k == 0 || k == len(ends) {
		return fallback
	}
	return k
}

func withoutLine(msg string) string {
	return yamlLine.ReplaceAllString(strings.TrimPrefix(msg, "yaml: "), "$2")
}

// firstAlias returns the line and the field path of the first alias under
// n, whose own path is path.
func firstAlias(n *yaml.Node, path string) (int, string) {
	if n.Kind == yaml.AliasNode {
		return n.Line, path
	}
	for i, c := range n.Content {
		sub := path
		switch n.Kind {
		case yaml.MappingNode:
			if i%2 == 1 {
				sub = loc{path: path}.field(n.Content[i-1].Value).path
			}
		case yaml.SequenceNode:
			sub = fmt.Sprintf("%s[%d]", path, i)
		}
		if l, p := firstAlias(c, sub); l > 0 {
			return l, p
		}
	}
	return 0, ""
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return strconv.Quote(n.Value)
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "nothing"
		}
		return fmt.Sprintf("%s %s", strings.TrimPrefix(n.Tag, "!!"), n.Value)
	}
	return "an unexpected YAML node"
}

// mapping is a YAML mapping being read field by field. It remembers every key
// so that the ones nobody asked for can be reported as unknown.
type mapping struct {
	p    *parser
	at   loc
	keys []string
	key  map[string]*yaml.Node
	val  map[string]*yaml.Node
}

// maxMergeDepth bounds "<<" merges that merge mappings that merge others.
const maxMergeDepth = 16

func (p *parser) mapping(n *yaml.Node, at loc) *mapping {
	d := deref(n)
	if d.Kind != yaml.MappingNode {
		p.errAt(at, "expected a mapping, got %s", describe(d))
		return nil
	}
	m := &mapping{p: p, at: at, key: map[string]*yaml.Node{}, val: map[string]*yaml.Node{}}
	m.collect(d, 0)
	return m
}

// collect takes a mapping's own keys first and then its "<<" merges, so that
// explicit keys win over merged ones as the YAML merge-key spec says.
func (m *mapping) collect(n *yaml.Node, depth int) {
	merged := depth > 0
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		kd := deref(k)
		if kd.Kind != yaml.ScalarNode {
			m.p.errAt(loc{k.Line, m.at.path}, "a field name must be plain text, got %s", describe(kd))
			continue
		}
		name := kd.Value
		if prev, dup := m.key[name]; dup {
			if !merged {
				m.p.errAt(m.at.field(name).at(k.Line), "field given twice (first at line %d)", prev.Line)
			}
			continue
		}
		m.keys = append(m.keys, name)
		m.key[name], m.val[name] = k, v
	}
	for _, v := range merges {
		if depth >= maxMergeDepth {
			m.p.errAt(loc{v.Line, m.at.path}, "<< merges are nested too deeply")
			return
		}
		switch d := deref(v); d.Kind {
		case yaml.MappingNode:
			m.collect(d, depth+1)
		case yaml.SequenceNode:
			for _, e := range d.Content {
				if ed := deref(e); ed.Kind == yaml.MappingNode {
					m.collect(ed, depth+1)
				} else {
					m.p.errAt(loc{e.Line, m.at.path}, "<< can only merge mappings, got %s", describe(ed))
				}
			}
		default:
			m.p.errAt(loc{v.Line, m.at.path}, "<< can only merge mappings, got %s", describe(d))
		}
	}
}

func (l loc) at(line int) loc { return loc{line, l.path} }

// allow reports every key not in keys as unknown. hint, if not empty, is
// added to the message.
func (m *mapping) allow(hint string, keys ...string) {
	for _, k := range m.keys {
		known := false
		for _, a := range keys {
			known = known || k == a
		}
		if known {
			continue
		}
		msg := "unknown field"
		if s := suggest(k, keys); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		} else {
			msg += "; the fields here are " + strings.Join(keys, ", ")
		}
		if hint != "" {
			msg += "; " + hint
		}
		m.p.errAt(m.at.field(k).at(m.key[k].Line), "%s", msg)
	}
}

// suggest returns the known key the unknown one was probably meant to be:
// one that differs only in case, or by at most two edits.
func suggest(k string, keys []string) string {
	best, bestD := "", 3
	for _, a := range keys {
		if strings.EqualFold(k, a) {
			return a
		}
		if d := editDistance(strings.ToLower(k), strings.ToLower(a)); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99 // not a typo; don't spend time on it
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (m *mapping) has(key string) bool { return m.get(key) != nil }

// get returns the dereferenced value of key, or nil if it is absent or null
// (ARM templates write null for "not set").
func (m *mapping) get(key string) *yaml.Node {
	v := deref(m.val[key])
	if v == nil || v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	return v
}

// loc is where key's value is; where the mapping starts if key is absent.
func (m *mapping) loc(key string) loc {
	at := m.at.field(key)
	if v := m.val[key]; v != nil {
		return at.at(v.Line)
	}
	return at
}

// require reports each of keys that is absent or null.
func (m *mapping) require(keys ...string) {
	for _, k := range keys {
		if m.has(k) {
			continue
		}
		if _, given := m.key[k]; given {
			m.p.errAt(m.loc(k), "required field has no value")
		} else {
			m.p.errAt(m.loc(k), "required field is missing")
		}
	}
}

// field is one value read from the file, with where it was.
type field[T any] struct {
	v   T
	set bool // given, and not null
	ok  bool // given and well formed; v is meaningful only then
	loc
}

func (m *mapping) sub(key string) *mapping {
	n := m.get(key)
	if n == nil {
		return nil
	}
	return m.p.mapping(n, m.loc(key))
}

func (m *mapping) str(key string) field[string] {
	n := m.get(key)
	if n == nil {
		return field[string]{loc: m.loc(key)}
	}
	return m.p.scalar(n, m.loc(key))
}

func (p *parser) scalar(n *yaml.Node, at loc) field[string] {
	f := field[string]{set: true, loc: at}
	n = deref(n)
	switch {
	case n.Kind != yaml.ScalarNode:
		p.errAt(at, "expected a string, got %s", describe(n))
	case n.Tag == "!!bool":
		p.errAt(at, "expected a string, got %s", describe(n))
	default:
		f.v, f.ok = n.Value, true
	}
	return f
}

func (m *mapping) integer(key string) field[int] {
	at := m.loc(key)
	n := m.get(key)
	f := field[int]{set: n != nil, loc: at}
	if n == nil {
		return f
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		m.p.errAt(at, "expected an integer, got %s", describe(n))
	} else if err := n.Decode(&v); err != nil {
		m.p.errAt(at, "integer %s is out of range", n.Value)
	} else {
		f.v, f.ok = int(v), true
	}
	return f
}

// duration reads a duration written as Go writes one ("4m", "240s") or as
// a whole number of seconds.
func (m *mapping) duration(key string) field[time.Duration] {
	at := m.loc(key)
	n := m.get(key)
	f := field[time.Duration]{set: n != nil, loc: at}
	if n == nil {
		return f
	}
	var d time.Duration
	var err error
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!int":
		var secs int64
		if err = n.Decode(&secs); err == nil {
			d = time.Duration(secs) * time.Second
		}
	case n.Kind == yaml.ScalarNode && n.Tag == "!!str":
		d, err = time.ParseDuration(n.Value)
	default:
		err = fmt.Errorf("got %s", describe(n))
	}
	switch {
	case err != nil:
		m.p.errAt(at, "expected a duration such as 240s or 4m, or a number of seconds: %v", err)
	case d < time.Second || d > 24*time.Hour:
		m.p.errAt(at, "%v is out of range: use 1s to 24h", d)
	default:
		f.v, f.ok = d, true
	}
	return f
}

// portRange reads a port or a port range such as 1024-65535.
func (m *mapping) portRange(key string) field[PortRange] {
	at := m.loc(key)
	n := m.get(key)
	f := field[PortRange]{set: n != nil, loc: at}
	if n == nil {
		return f
	}
	v, err := parsePortRange(n)
	if err != nil {
		m.p.errAt(at, "%v", err)
		return f
	}
	f.v, f.ok = v, true
	return f
}

// item is one element of a list, with where it is.
type item struct {
	n  *yaml.Node
	at loc
}

// list returns the elements of a list field, and whether the field was given.
func (m *mapping) list(key string) ([]item, bool) {
	n := m.get(key)
	if n == nil {
		return nil, false
	}
	at := m.loc(key)
	if n.Kind != yaml.SequenceNode {
		m.p.errAt(at, "expected a list, got %s", describe(n))
		return nil, true
	}
	items := make([]item, len(n.Content))
	for i, c := range n.Content {
		items[i] = item{c, at.index(i, c.Line)}
	}
	return items, true
}

// convert parses a string field into T, reporting parse's error at the field.
func convert[T any](p *parser, f field[string], parse func(string) (T, error)) field[T] {
	out := field[T]{set: f.set, loc: f.loc}
	if !f.ok {
		return out
	}
	v, err := parse(f.v)
	if err != nil {
		p.errAt(f.loc, "%v", err)
		return out
	}
	out.v, out.ok = v, true
	return out
}

// enum matches a string field case-insensitively, as ARM does, and returns it
// in canonical spelling.
func enum(p *parser, f field[string], what string, values ...string) field[string] {
	return convert(p, f, func(s string) (string, error) {
		for _, v := range values {
			if strings.EqualFold(s, v) {
				return v, nil
			}
		}
		return "", fmt.Errorf("%q is not a valid %s; use %s", s, what, orList(values))
	})
}

func orList(vs []string) string {
	if len(vs) == 1 {
		return vs[0]
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	switch {
	case err != nil:
		return a, fmt.Errorf("%q is not an IPv4 address", s)
	case !a.Is4():
		return a, fmt.Errorf("%s is not an IPv4 address; the emulator supports IPv4 only", s)
	}
	return a, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		return netip.Prefix{}, fmt.Errorf("expected a CIDR prefix such as 10.0.0.0/16, got %q", s)
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return p, fmt.Errorf("%q is not a valid CIDR prefix", s)
	case !p.Addr().Is4():
		return p, fmt.Errorf("%s is not an IPv4 prefix; the emulator supports IPv4 only", s)
	case p != p.Masked():
		return p, fmt.Errorf("%s is not a network address; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// parseRulePrefix accepts what an NSG rule's address prefix may hold (F9,
// F11) and returns it canonically.
func parseRulePrefix(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("empty address prefix; use *, a service tag, an address or a CIDR prefix")
	case s == Any:
		return Any, nil
	case strings.Contains(s, "/"):
		p, err := parsePrefix(s)
		return p.String(), err
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if !a.Is4() {
			return "", fmt.Errorf("%s is not an IPv4 address; the emulator supports IPv4 only", s)
		}
		return netip.PrefixFrom(a, 32).String(), nil
	}
	// ASM-era documents, including the ASE v1 articles, spell the tags
	// VIRTUAL_NETWORK, INTERNET and AZURE_LOADBALANCER.
	switch strings.ToLower(strings.ReplaceAll(s, "_", "")) {
	case "virtualnetwork":
		return TagVirtualNetwork, nil
	case "internet":
		return TagInternet, nil
	case "azureloadbalancer":
		return TagAzureLoadBalancer, nil
	}
	if c := s[0]; 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
		return "", fmt.Errorf("service tag %q is not one the emulator knows; use VirtualNetwork, Internet, AzureLoadBalancer, *, an address or a CIDR prefix", s)
	}
	return "", fmt.Errorf("%q is not an address, a CIDR prefix, * or a service tag", s)
}

// parsePortRange reads a port written as a YAML integer or as a string: a
// number, "lo-hi" or "*".
func parsePortRange(n *yaml.Node) (PortRange, error) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!str") {
		return PortRange{}, fmt.Errorf("expected a port, a range such as 1000-2000, or *, got %s", describe(n))
	}
	if n.Tag == "!!int" {
		var v int64
		if err := n.Decode(&v); err != nil || v < 0 || v > 65535 {
			return PortRange{}, fmt.Errorf("port %s is out of range 0-65535", n.Value)
		}
		return PortRange{uint16(v), uint16(v)}, nil
	}
	s := strings.TrimSpace(n.Value)
	if s == "*" {
		return AllPorts, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err := parsePort(lo, s)
	if err != nil {
		return PortRange{}, err
	}
	h, err := parsePort(hi, s)
	if err != nil {
		return PortRange{}, err
	}
	if l > h {
		return PortRange{}, fmt.Errorf("port range %s starts above its end", s)
	}
	return PortRange{l, h}, nil
}

func parsePort(s, whole string) (uint16, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port, a range such as 1000-2000, or *", whole)
	}
	if v > 65535 {
		return 0, fmt.Errorf("port %d is out of range 0-65535", v)
	}
	return uint16(v), nil
}
