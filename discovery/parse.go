package discovery

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"golang.org/x/sys/unix"
)

// The keys a port map may hold, in the order the docs list them.
var (
	serviceKeys = []string{"name", "port", "host", "socket", "srv", "public", "health", "tags", "hosts", "paths", "rate", "burst", "body_limit", "buffering",
		"exec", "env", "user", "memory_max", "cpu_weight", "tasks_max", "restart", "slo"}
	defaultsKeys = []string{"db", "host", "socket_dir", "base_port"}
	nginxKeys    = []string{"listen", "server_name", "tls_cert", "tls_key", "root"}
	topKeys      = []string{"defaults", "service", "nginx"}
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// problems collects what is wrong with a file, each at its line.
type problems struct {
	path string
	list []Problem
}

func (p *problems) add(line int, format string, args ...any) {
	p.list = append(p.list, Problem{File: p.path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool { return p.list[i].Line < p.list[j].Line })
	return &ValidationError{Problems: p.list}
}

// table is a TOML table with the line of each of its keys.
type table struct {
	line   int // the table's own line
	values map[string]any
	lines  map[string]int
}

// keyLine is the line of key, or of the table when the key is absent.
func (t *table) keyLine(key string) int {
	if l := t.lines[key]; l > 0 {
		return l
	}
	return t.line
}

// parse decodes and validates a registry, collecting every problem. It
// reads the file once as values and once as syntax, for the lines; both
// passes are linear in the file's size.
// parsed is a valid port map.
type parsed struct {
	services []Service
	defaults Defaults
	nginx    NginxSettings
	warnings []Problem
}

func parse(path string, data []byte) (parsed, error) {
	probs := &problems{path: path}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 byte-order mark
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			probs.add(row, "%s", strings.TrimPrefix(de.Error(), "toml: "))
		} else {
			probs.add(0, "%v", err)
		}
		return parsed{}, probs.err()
	}
	lines := keyLines(data)
	top := &table{line: 1, values: doc, lines: lines.top}
	unknownKeys(probs, top, "", topKeys)

	defaults := &table{line: lines.defaults, values: map[string]any{}, lines: lines.defaultsKeys}
	if v, ok := doc["defaults"]; ok {
		if m, ok := v.(map[string]any); ok {
			defaults.values = m
		} else {
			probs.add(top.keyLine("defaults"), "defaults must be a table ([defaults]), not %s", kind(v))
		}
	}
	var services []*table
	if v, ok := doc["service"]; ok {
		list, ok := v.([]any)
		if !ok {
			probs.add(top.keyLine("service"), "service must be a list of tables ([[service]]), not %s", kind(v))
		}
		for i, e := range list {
			s := &table{line: lines.line(i), values: map[string]any{}, lines: lines.serviceKeys(i)}
			if m, ok := e.(map[string]any); ok {
				s.values = m
			} else {
				probs.add(s.line, "service %d must be a table, not %s", i+1, kind(e))
			}
			services = append(services, s)
		}
	}
	if len(services) == 0 && len(probs.list) == 0 {
		probs.add(0, "no service: a port map lists at least one [[service]] with a name")
	}
	d := readDefaults(probs, defaults, filepath.Dir(path))
	warns := &problems{path: path}
	out := readServices(probs, warns, services, d, filepath.Dir(path))
	nginx := &table{line: lines.nginx, values: map[string]any{}, lines: lines.nginxKeys}
	if v, ok := doc["nginx"]; ok {
		if m, ok := v.(map[string]any); ok {
			nginx.values = m
		} else {
			probs.add(top.keyLine("nginx"), "nginx must be a table ([nginx]), not %s", kind(v))
		}
	}
	ng := readNginx(probs, nginx, out, filepath.Dir(path))
	if err := probs.err(); err != nil {
		return parsed{}, err
	}
	warns.err() // sorts them
	return parsed{services: out, defaults: d, nginx: ng, warnings: warns.list}, nil
}

func readDefaults(probs *problems, t *table, dir string) Defaults {
	unknownKeys(probs, t, "defaults.", defaultsKeys)
	f := fields{probs: probs, t: t, what: "[defaults]"}
	d := Defaults{DB: absIn(dir, f.str("db")), Host: f.str("host"), SocketDir: absIn(dir, f.str("socket_dir"))}
	if d.Host == "" {
		d.Host = DefaultHost
	}
	if p, ok := f.int("base_port"); ok {
		d.BasePort = int(p)
		if p < 1 || p > 65535 {
			probs.add(t.keyLine("base_port"), "base_port %d is not a port from 1 to 65535", p)
		}
	}
	return d
}

func readServices(probs, warns *problems, tables []*table, d Defaults, dir string) []Service {
	var services []Service
	names := map[string]int{}     // name -> line
	routes := map[string]string{} // host + path -> service
	ports := map[string]string{}
	sockets := map[string]string{}
	next := d.BasePort
	for _, t := range tables {
		typos := unknownKeys(probs, t, "service.", serviceKeys)
		f := fields{probs: probs, t: t}
		name := f.str("name")
		f.what = fmt.Sprintf("service %q", name)
		svc := Service{Name: name, Public: f.bool("public"), Health: f.str("health"), Tags: f.strs("tags"), Line: t.line}
		readFrontDoor(probs, t, f, &svc)
		readSupervision(probs, t, f, &svc, dir)
		readSLO(probs, t, &svc)
		if _, set := t.values["health"]; set && svc.Health == "" && svc.Public {
			warns.add(t.keyLine("health"), "public service %q has no health path: nginx and monitors cannot tell whether it is up; remove health = \"\" to use %s", name, DefaultHealthPath)
		}
		if svc.Health == "" {
			svc.Health = DefaultHealthPath
		} else if !strings.HasPrefix(svc.Health, "/") {
			probs.add(t.keyLine("health"), "service %q: health path %q must start with /", name, svc.Health)
		}
		switch {
		case name == "" && t.lines["name"] == 0:
			probs.add(t.line, "a [[service]] without name: add name = \"...\"")
		case !dnsLabel.MatchString(name):
			probs.add(t.keyLine("name"), "service name %q is not a DNS label: use lowercase letters, digits and '-', at most 63, not starting or ending with '-'", name)
		}
		if first, dup := names[name]; dup && name != "" {
			probs.add(t.keyLine("name"), "service %q is listed twice (first at line %d)", name, first)
		} else {
			names[name] = t.keyLine("name")
		}
		port, hasPort := f.int("port")
		socket, srv := f.str("socket"), f.str("srv")
		if _, set := t.values["port"]; set && !hasPort {
			continue // its type is wrong, and said so
		}
		given := 0
		for _, set := range []bool{hasPort, socket != "", srv != ""} {
			if set {
				given++
			}
		}
		if given > 1 {
			probs.add(t.line, "service %q: give only one of port, socket and srv", name)
			continue
		}
		host := f.str("host")
		if host == "" {
			host = d.Host
		}
		switch {
		case hasPort:
			if port < 1 || port > 65535 {
				probs.add(t.keyLine("port"), "service %q: port %d is not from 1 to 65535", name, port)
				continue
			}
			svc.Endpoint = Endpoint{Network: "tcp", Address: joinHostPort(host, int(port))}
			if port < 1024 && f.str("host") == "" {
				warns.add(t.keyLine("port"), "service %q: port %d is below 1024, which only root (or CAP_NET_BIND_SERVICE) may bind on %s: choose a port above 1024 behind nginx, or give its host", name, port, host)
			}
		case socket != "":
			svc.Endpoint = Endpoint{Network: "unix", Address: absIn(dir, socket)}
		case srv != "":
			svc.Endpoint = Endpoint{Network: "srv", Address: srv}
		case d.SocketDir != "":
			svc.Endpoint = Endpoint{Network: "unix", Address: filepath.Join(d.SocketDir, name+".sock")}
		case d.BasePort > 0:
			if next > 65535 {
				probs.add(t.line, "service %q: base_port %d leaves no port for it", name, d.BasePort)
				continue
			}
			svc.Endpoint = Endpoint{Network: "tcp", Address: joinHostPort(host, next)}
			next++
		default:
			if typos == 0 { // else a misspelt key is the likely cause, and said
				probs.add(t.line, "service %q has no port, socket or srv, and [defaults] sets neither socket_dir nor base_port", name)
			}
			continue
		}
		switch svc.Endpoint.Network {
		case "tcp":
			i := strings.LastIndexByte(svc.Endpoint.Address, ':') // host:port, an IPv6 host in brackets
			h, p := svc.Endpoint.Address[:i], svc.Endpoint.Address[i+1:]
			l := t.keyLine("port")
			for _, k := range []string{h + ":" + p, "*:" + p} {
				if other, dup := ports[k]; dup {
					probs.add(l, "service %q: port %s is already used by %q", name, p, other)
					break
				}
			}
			ports[h+":"+p] = name
			if wildcard(h) { // a wildcard takes the port on every address
				ports["*:"+p] = name
				for k, other := range ports {
					if strings.HasSuffix(k, ":"+p) && k != h+":"+p && k != "*:"+p && other != name {
						probs.add(l, "service %q: port %s on every address clashes with %q", name, p, other)
						break
					}
				}
			}
		case "unix":
			l := t.keyLine("socket")
			a := svc.Endpoint.Address
			if strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				probs.add(l, "service %q: socket path %q has a control character (such as a NUL)", name, a)
			}
			if len(a) > MaxSocketPath {
				probs.add(l, "service %q: socket path %s is %d bytes, longer than the OS limit of %d: use a shorter folder such as /run/flotilla", name, a, len(a), MaxSocketPath)
			}
			if other, dup := sockets[a]; dup {
				probs.add(l, "service %q: socket %s is already used by %q", name, a, other)
			}
			sockets[a] = name
			if w := socketDirProblem(filepath.Dir(a)); w != "" {
				warns.add(l, "service %q: socket folder %s %s", name, filepath.Dir(a), w)
			}
		}
		for _, host := range append([]string{""}, svc.Hosts...) {
			if host == "" && len(svc.Hosts) > 0 {
				continue // a service with hosts is routed on them only
			}
			for _, path := range svc.nginxPaths() {
				k := host + path
				if other, dup := routes[k]; dup && other != name {
					where := "path " + path
					if host != "" {
						where = "host " + host + " path " + path
					}
					l := t.keyLine("paths")
					if len(svc.Paths) == 0 {
						l = t.keyLine("hosts")
					}
					probs.add(l, "service %q: %s is already routed to %q: give one of them other hosts or paths", name, where, other)
				}
				routes[k] = name
			}
		}
		services = append(services, svc)
	}
	return services
}

func wildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

func absIn(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	a, err := filepath.Abs(filepath.Join(dir, p))
	if err != nil {
		return filepath.Join(dir, p)
	}
	return a
}

// unknownKeys reports the keys of t that are not in known, each with the
// nearest known key when one is close, and returns how many there are.
func unknownKeys(probs *problems, t *table, prefix string, known []string) int {
	n := 0
	for k := range t.values {
		if contains(known, k) {
			continue
		}
		n++
		msg := fmt.Sprintf("unknown key %q", prefix+k)
		if near := nearest(k, known); near != "" {
			msg += fmt.Sprintf(": did you mean %q?", near)
		} else {
			msg += ": the keys are " + strings.Join(known, ", ")
		}
		probs.add(t.keyLine(k), "%s", msg)
	}
	return n
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// nearest returns the known key within two edits of k, if any.
func nearest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
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

// fields reads typed values of a table, reporting a wrong type in words.
type fields struct {
	probs *problems
	t     *table
	what  string // "[defaults]" or `service "x"`
}

func (f fields) wrong(key, want string, v any) {
	who := f.what
	if who == "" {
		who = "service"
	}
	f.probs.add(f.t.keyLine(key), "%s: %s must be %s, not %s", who, key, want, kind(v))
}

func (f fields) str(key string) string {
	v, ok := f.t.values[key]
	if !ok {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.wrong(key, "a string in quotes", v)
	}
	return s
}

func (f fields) int(key string) (int64, bool) {
	v, ok := f.t.values[key]
	if !ok {
		return 0, false
	}
	n, ok := v.(int64)
	if !ok {
		f.wrong(key, "a whole number, such as 3035", v)
		return 0, false
	}
	return n, true
}

func (f fields) bool(key string) bool {
	v, ok := f.t.values[key]
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		f.wrong(key, "true or false", v)
	}
	return b
}

func (f fields) strs(key string) []string {
	v, ok := f.t.values[key]
	if !ok {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		f.wrong(key, `a list of strings, such as ["a", "b"]`, v)
		return nil
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			f.wrong(key, `a list of strings, such as ["a", "b"]`, e)
			return nil
		}
		out = append(out, s)
	}
	return out
}

func (f fields) strMap(key string) map[string]string {
	v, ok := f.t.values[key]
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		f.wrong(key, `a table of strings, such as { KEY = "value" }`, v)
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, ok := e.(string)
		if !ok {
			f.wrong(key+"."+k, "a string", e)
			continue
		}
		out[k] = s
	}
	return out
}

// kind names a decoded TOML value's type as a user reads it.
func kind(v any) string {
	switch v := v.(type) {
	case string:
		return "a string (" + strconv.Quote(v) + ")"
	case int64:
		return "a number (" + strconv.FormatInt(v, 10) + ")"
	case float64:
		return "a decimal number"
	case bool:
		return "a boolean (" + strconv.FormatBool(v) + ")"
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	default:
		return "a date or time"
	}
}

// layoutLines are the lines of the keys of a port map.
type layoutLines struct {
	top, defaultsKeys, nginxKeys map[string]int
	defaults, nginx              int
	services                     []int            // the line of each service's table
	serviceKey                   []map[string]int // and of each of its keys
}

func (l *layoutLines) line(i int) int {
	if i < len(l.services) {
		return l.services[i]
	}
	return 0
}

func (l *layoutLines) serviceKeys(i int) map[string]int {
	if i < len(l.serviceKey) {
		return l.serviceKey[i]
	}
	return nil
}

// keyLines finds the line of every key of the port map in one pass over
// the syntax, with the [[service]] and service = [{...}] forms alike.
func keyLines(data []byte) *layoutLines {
	starts := []int{0} // byte offset of each line
	for i, b := range data {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	lineOf := func(off uint32) int { return sort.SearchInts(starts, int(off)+1) }
	out := &layoutLines{top: map[string]int{}, defaultsKeys: map[string]int{}, nginxKeys: map[string]int{}}
	newService := func(line int) map[string]int {
		m := map[string]int{}
		out.services = append(out.services, line)
		out.serviceKey = append(out.serviceKey, m)
		return m
	}
	keyOf := func(n *unstable.Node) (string, int) {
		var parts []string
		line := 0
		for it := n.Key(); it.Next(); {
			parts = append(parts, string(it.Node().Data))
			if line == 0 {
				line = lineOf(it.Node().Raw.Offset)
			}
		}
		return strings.Join(parts, "."), line
	}
	var p unstable.Parser
	p.Reset(data)
	table := ""
	var svc map[string]int
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.ArrayTable, unstable.Table:
			k, line := keyOf(e)
			table = k
			svc = nil
			switch {
			case e.Kind == unstable.ArrayTable && k == "service":
				svc = newService(line)
			case k == "defaults":
				out.defaults = line
				out.top["defaults"] = line
			case k == "nginx":
				out.nginx = line
				out.top["nginx"] = line
			default:
				out.top[strings.SplitN(k, ".", 2)[0]] = line
			}
		case unstable.KeyValue:
			k, line := keyOf(e)
			switch table {
			case "service":
				if svc != nil { // else [service], not [[service]]: an error of its own
					svc[k] = line
				}
			case "defaults":
				out.defaultsKeys[k] = line
			case "nginx":
				out.nginxKeys[k] = line
			case "":
				out.top[k] = line
				if k == "service" && e.Value().Kind == unstable.Array {
					// service = [{ name = "a", port = 1 }, ...]
					for it := e.Value().Children(); it.Next(); {
						elem := it.Node()
						m := newService(line)
						if elem.Kind != unstable.InlineTable {
							continue
						}
						first := true
						for kv := elem.Children(); kv.Next(); {
							ek, el := keyOf(kv.Node())
							m[ek] = el
							if first {
								out.services[len(out.services)-1] = el
								first = false
							}
						}
					}
				}
			}
		}
	}
	return out
}

// socketDirProblem says why a service could not create its socket in dir
// now, or "" when it can.
func socketDirProblem(dir string) string {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "does not exist: create it (systemd's RuntimeDirectory= does), or the service creates it when it may"
	case err != nil:
		return fmt.Sprintf("cannot be read: %v", err)
	case !fi.IsDir():
		return "is not a folder"
	}
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Sprintf("is not writable by this user (uid %d): services running as another user may still write it", os.Geteuid())
	}
	return ""
}

var (
	hostName  = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	nginxRate = regexp.MustCompile(`^[1-9][0-9]*r/[sm]$`)
	nginxSize = regexp.MustCompile(`^[0-9]+[kKmMgG]?$`)
)

// readFrontDoor reads a service's nginx settings: hosts, paths, rate, burst,
// body_limit and buffering.
func readFrontDoor(probs *problems, t *table, f fields, svc *Service) {
	name := svc.Name
	for _, h := range f.strs("hosts") {
		if !hostName.MatchString(h) {
			probs.add(t.keyLine("hosts"), "service %q: hosts entry %q is not a host name: give lowercase names such as geo.example.com (or *.example.com)", name, h)
		}
		svc.Hosts = append(svc.Hosts, h)
	}
	for _, p := range f.strs("paths") {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \t{};") {
			probs.add(t.keyLine("paths"), "service %q: paths entry %q must be a path prefix starting with /, such as \"/api/\"", name, p)
		}
		svc.Paths = append(svc.Paths, p)
	}
	if r := f.str("rate"); r != "" {
		if !nginxRate.MatchString(r) {
			probs.add(t.keyLine("rate"), "service %q: rate %q: give requests per second or minute per client address, such as \"10r/s\" or \"600r/m\"", name, r)
		}
		svc.Rate = r
	}
	if b, ok := f.int("burst"); ok {
		if b < 0 || b > 100000 {
			probs.add(t.keyLine("burst"), "service %q: burst %d: give a number of requests from 0", name, b)
		}
		if svc.Rate == "" {
			probs.add(t.keyLine("burst"), "service %q: burst without rate: add rate = \"10r/s\" or remove burst", name)
		}
		svc.Burst = int(b)
	} else if svc.Rate != "" {
		svc.Burst = DefaultNginxBurst
	}
	if l := f.str("body_limit"); l != "" {
		if !nginxSize.MatchString(l) {
			probs.add(t.keyLine("body_limit"), "service %q: body_limit %q: give a size such as \"4M\", \"512k\" or \"1G\"", name, l)
		}
		svc.BodyLimit = l
	}
	if _, set := t.values["buffering"]; set {
		svc.Unbuffered = !f.bool("buffering")
	}
}

// readNginx reads the [nginx] table.
func readNginx(probs *problems, t *table, services []Service, dir string) NginxSettings {
	unknownKeys(probs, t, "nginx.", nginxKeys)
	f := fields{probs: probs, t: t, what: "[nginx]"}
	n := NginxSettings{Listen: f.str("listen"), ServerName: f.str("server_name"), Root: f.str("root"),
		TLSCert: absIn(dir, f.str("tls_cert")), TLSKey: absIn(dir, f.str("tls_key"))}
	if n.Root != "" && !slices.ContainsFunc(services, func(s Service) bool { return s.Name == n.Root }) {
		probs.add(t.keyLine("root"), "[nginx] root %q is not a service of the port map", n.Root)
	}
	switch {
	case (n.TLSCert == "") != (n.TLSKey == ""):
		probs.add(t.line, "[nginx] needs both tls_cert and tls_key, or neither")
	case n.TLSCert != "":
		if msg := certProblem(n.TLSCert); msg != "" {
			probs.add(t.keyLine("tls_cert"), "[nginx] tls_cert %s: %s", n.TLSCert, msg)
		}
		if _, err := os.Stat(n.TLSKey); err != nil {
			probs.add(t.keyLine("tls_key"), "[nginx] tls_key %s: %v", n.TLSKey, err)
		}
	}
	return n
}

// certProblem says why path is not a PEM certificate, or "".
func certProblem(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return "not a PEM certificate (-----BEGIN CERTIFICATE-----)"
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "not a certificate: " + err.Error()
	}
	return ""
}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	unixUser   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	systemdMem = regexp.MustCompile(`^([0-9]+[KMGT]?|infinity)$`)
)

// readSupervision reads a service's systemd settings: exec, env, user,
// memory_max, cpu_weight, tasks_max and restart.
func readSupervision(probs *problems, t *table, f fields, svc *Service, dir string) {
	name := svc.Name
	svc.Exec = absIn(dir, f.str("exec"))
	if strings.ContainsAny(svc.Exec, "\n\"") {
		probs.add(t.keyLine("exec"), "service %q: exec %q has a newline or a quote", name, svc.Exec)
	}
	svc.Env = f.strMap("env")
	for k, v := range svc.Env {
		if !envName.MatchString(k) {
			probs.add(t.keyLine("env"), "service %q: env %q is not a variable name: letters, digits and _, not starting with a digit", name, k)
		}
		if strings.ContainsAny(v, "\n\x00") {
			probs.add(t.keyLine("env"), "service %q: env %s has a newline or a NUL in its value", name, k)
		}
	}
	if u := f.str("user"); u != "" {
		if !unixUser.MatchString(u) {
			probs.add(t.keyLine("user"), "service %q: user %q is not a user name such as \"flotilla\"", name, u)
		}
		svc.User = u
	}
	if m := f.str("memory_max"); m != "" {
		if !systemdMem.MatchString(m) {
			probs.add(t.keyLine("memory_max"), "service %q: memory_max %q: give a size such as \"256M\" or \"1G\" (K, M, G, T), or \"infinity\"", name, m)
		}
		svc.MemoryMax = m
	}
	if w, ok := f.int("cpu_weight"); ok {
		if w < 1 || w > 10000 {
			probs.add(t.keyLine("cpu_weight"), "service %q: cpu_weight %d: give a weight from 1 to 10000 (100 is systemd's default)", name, w)
		}
		svc.CPUWeight = int(w)
	}
	if n, ok := f.int("tasks_max"); ok {
		if n < 1 {
			probs.add(t.keyLine("tasks_max"), "service %q: tasks_max %d: give a number of tasks from 1", name, n)
		}
		svc.TasksMax = int(n)
	}
	switch r := f.str("restart"); r {
	case "", "on-failure", "always":
		svc.Restart = r
	default:
		probs.add(t.keyLine("restart"), "service %q: restart %q: give \"on-failure\" or \"always\"", name, r)
	}
}
