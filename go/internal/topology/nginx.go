package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// Nginx describes one nginx node (app or dist tier). The same rendering
// serves the local run (Debian nginx with dynamic modules) and compose
// (OpenResty, modules built in).
type Nginx struct {
	Tier        string   // app | dist
	Name        string   // app1, app2, dist: the X-Served-By value of an app node
	Listen      string   // host:port of the page port
	Prefix      string   // nginx prefix: config, pid, temp files and logs go here
	Root        string   // repository root (lua/, templates/)
	Replica     string   // Redis replica host:port (with Sentinels: the first choice until they answer)
	Sentinels   []string // Sentinels host:port that name the replicas to read (none: Replica only)
	MasterName  string   // the name the Sentinels know Redis main by
	Hot         []string // hot-product services host:port that get the node's request counts (none: off)
	Direct      string   // direct-data service host:port
	Apps        []string // dist: app nodes host:port
	Source      string   // dist: source service host:port (product pictures)
	One         []string // dist: OneServer nodes host:port that answer /api/realtime (none: no such route, 404)
	LoadModules bool     // Debian nginx: load ndk and lua modules
	ModulesDir  string   // where the dynamic modules are
	AdminListen string   // dist: host:port of the internal admin port (never the page port)
	User        string   // worker user when the master is root (e.g. www-data); "": no user directive
	Workers     int      // worker processes (0: auto)
	Resolver    string   // DNS server for host names Lua connects to (compose: 127.0.0.11)
	L1TTL       float64  // app: seconds a page stays in a worker's L1 (0: DEFAULTS in lua/detailpage/app.lua)
	L2TTL       float64  // app: seconds a page stays fresh in the node's L2 (0: DEFAULTS in lua/detailpage/app.lua)
	WarmTop     int      // app: the hottest pages loaded into L2 at start, before /_health answers 200 (0: no warm-up)
	WarmMax     float64  // app: seconds /_health waits for the warm-up at most (0: DEFAULTS in lua/detailpage/app.lua)

	// RenderOnly: the config is only written, for reading (no nginx
	// starts): an app node whose name does not resolve here is written by
	// name instead of failing.
	RenderOnly bool

	// Peers are the dist tier's app nodes with their IP addresses, which
	// ngx.balancer needs: filled by RenderNginx from Apps; OnePeers the
	// same for One.
	Peers    []Peer
	OnePeers []Peer
}

// Warm-up bounds: the hot service's top list has at most MaxWarmTop ids
// (its statistics' capacity), and a node reports itself not ready for at
// most MaxWarmMax.
const (
	MaxWarmTop = 16384
	MaxWarmMax = time.Minute
)

// Peer is one app node as the dist tier's Lua balancer sees it.
type Peer struct {
	Name string // host:port as configured (app1:8081 in compose)
	Host string // its IP address
	Port int
}

// Validate checks the node description.
func (n *Nginx) Validate() error {
	if n.Tier != "app" && n.Tier != "dist" {
		return fmt.Errorf("nginx: tier %q: want app or dist", n.Tier)
	}
	if n.Name == "" || strings.ContainsAny(n.Name, " ;{}\"'$") {
		return fmt.Errorf("nginx: name %q: want a plain word", n.Name)
	}
	check := func(what, addr string) error {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("nginx: %s %q: want host:port", what, addr)
		}
		return nil
	}
	if err := check("listen", n.Listen); err != nil {
		return err
	}
	if err := check("direct", n.Direct); err != nil {
		return err
	}
	// Both tiers read Redis (the dist tier the invalidation stream, for
	// its copies of hot pages) and report to the hot-product services.
	if err := check("replica", n.Replica); err != nil {
		return err
	}
	for _, a := range n.Sentinels {
		if err := check("sentinel", a); err != nil {
			return err
		}
	}
	if len(n.Sentinels) > 0 && (n.MasterName == "" || strings.ContainsAny(n.MasterName, " ;{}\"'$\\")) {
		return fmt.Errorf("nginx: master name %q: want a plain word", n.MasterName)
	}
	for _, a := range n.Hot {
		if err := check("hot", a); err != nil {
			return err
		}
	}
	switch n.Tier {
	case "dist":
		if len(n.Apps) == 0 {
			return errors.New("nginx: dist tier needs at least one app node")
		}
		for _, a := range n.Apps {
			if err := check("app", a); err != nil {
				return err
			}
		}
		if err := check("source", n.Source); err != nil {
			return err
		}
		for _, a := range n.One {
			if err := check("one", a); err != nil {
				return err
			}
		}
		if dup := firstDuplicate(n.One); dup != "" {
			return fmt.Errorf("nginx: one %q listed twice", dup)
		}
		if err := check("admin listen", n.AdminListen); err != nil {
			return err
		}
		if n.AdminListen == n.Listen {
			return fmt.Errorf("nginx: admin listen %q: the admin port must not be the page port", n.AdminListen)
		}
	}
	if strings.ContainsAny(n.User, " ;{}\"'$") {
		return fmt.Errorf("nginx: user %q: want a plain user name", n.User)
	}
	if n.L1TTL < 0 || n.L2TTL < 0 {
		return fmt.Errorf("nginx: l1 ttl %g, l2 ttl %g: want positive seconds, or 0 for the default", n.L1TTL, n.L2TTL)
	}
	if n.WarmTop < 0 || n.WarmTop > MaxWarmTop {
		return fmt.Errorf("nginx: warm top %d: want 0 (off) to %d", n.WarmTop, MaxWarmTop)
	}
	if n.WarmMax < 0 || n.WarmMax > MaxWarmMax.Seconds() {
		return fmt.Errorf("nginx: warm max %gs: want up to %s, or 0 for the default", n.WarmMax, MaxWarmMax)
	}
	if n.Prefix == "" || n.Root == "" {
		return errors.New("nginx: prefix and root required")
	}
	return nil
}

// RenderNginx renders nginx/<tier>.conf.tmpl for n and writes it to
// <prefix>/nginx.conf, creating the prefix's directories. It returns the
// config path.
func RenderNginx(n Nginx) (string, error) {
	if err := n.Validate(); err != nil {
		return "", err
	}
	src := filepath.Join(n.Root, "nginx", n.Tier+".conf.tmpl")
	tmpl, err := template.New(filepath.Base(src)).Funcs(template.FuncMap{
		"host": func(addr string) string { h, _, _ := net.SplitHostPort(addr); return h },
		"port": func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p },
		"lua":  func(s string) string { return fmt.Sprintf("%q", s) },
		"inc":  func(i int) int { return i + 1 },
		"join": strings.Join,
	}).ParseFiles(src)
	if err != nil {
		return "", fmt.Errorf("nginx: %w", err)
	}
	if n.Tier == "dist" {
		if n.Peers, err = resolvePeers("app node", n.Apps, n.RenderOnly); err != nil {
			return "", err
		}
		if n.OnePeers, err = resolvePeers("OneServer node", n.One, n.RenderOnly); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(n.Prefix, d), 0o755); err != nil {
			return "", fmt.Errorf("nginx: %w", err)
		}
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, n); err != nil {
		return "", fmt.Errorf("nginx: render %s: %w", src, err)
	}
	conf := filepath.Join(n.Prefix, "nginx.conf")
	if err := os.WriteFile(conf, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("nginx: %w", err)
	}
	return conf, nil
}

// firstDuplicate returns the first address listed twice, or "".
func firstDuplicate(addrs []string) string {
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if seen[a] {
			return a
		}
		seen[a] = true
	}
	return ""
}

// resolvePeers turns nodes' host:port (what: app node, OneServer node)
// into IP addresses for ngx.balancer (which takes no host names). A host
// name (compose: app1) is resolved once, here, as nginx resolves an
// upstream's server names once at start. With lenient, a name that does
// not resolve is kept as it is.
func resolvePeers(what string, apps []string, lenient bool) ([]Peer, error) {
	peers := make([]Peer, 0, len(apps))
	for _, a := range apps {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("nginx: %s %q: %w", what, a, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("nginx: %s %q: bad port", what, a)
		}
		ip := host
		if net.ParseIP(host) == nil {
			addrs, err := net.LookupHost(host)
			if err != nil || len(addrs) == 0 {
				if lenient {
					peers = append(peers, Peer{Name: a, Host: host, Port: p})
					continue
				}
				return nil, fmt.Errorf("nginx: resolve %s %q: %w", what, a, err)
			}
			// an IPv4 address when there is one (localhost: 127.0.0.1, not ::1)
			ip = addrs[0]
			if i := slices.IndexFunc(addrs, func(a string) bool { return net.ParseIP(a).To4() != nil }); i >= 0 {
				ip = addrs[i]
			}
		}
		peers = append(peers, Peer{Name: a, Host: ip, Port: p})
	}
	return peers, nil
}

// PrepareForUser readies a rendered prefix for workers running as n.User
// (the master being root) before nginx starts: the temp and log dirs
// belong to that user alone (mode 0700), and what the workers read — the
// Lua modules, the templates, their way to the temp dir — must be open to
// them. It fails with the path to fix rather than let a worker fail on its
// first request. Without a user it does nothing.
func PrepareForUser(n Nginx) error {
	if n.User == "" {
		return nil
	}
	u, err := user.Lookup(n.User)
	if err != nil {
		return fmt.Errorf("nginx: worker user: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("nginx: worker user %s: uid %q gid %q", n.User, u.Uid, u.Gid)
	}
	for _, d := range []string{"logs", "tmp"} {
		p := filepath.Join(n.Prefix, d)
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
	}
	// Directories workers search (x) and list or read (r).
	need := []struct {
		path string
		bits fs.FileMode
	}{
		{filepath.Join(n.Prefix, "tmp"), 0o1},
		{filepath.Join(n.Root, "lua", "detailpage"), 0o5},
		{filepath.Join(n.Root, "templates"), 0o5},
	}
	for _, w := range need {
		if err := reachable(w.path, w.bits, uid, gid); err != nil {
			return fmt.Errorf("nginx: worker user %s: %w (make it readable, or run as a non-root user)", n.User, err)
		}
	}
	for _, glob := range []string{filepath.Join(n.Root, "lua", "detailpage", "*.lua"), filepath.Join(n.Root, "templates", "*")} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			if err := allows(f, 0o4, uid, gid); err != nil {
				return fmt.Errorf("nginx: worker user %s: %w (make it readable, or run as a non-root user)", n.User, err)
			}
		}
	}
	return nil
}

// reachable checks that uid:gid can search every directory above path and
// has bits (rwx as 0o4/0o2/0o1) on path itself.
func reachable(path string, bits fs.FileMode, uid, gid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		if err := allows(dir, 0o1, uid, gid); err != nil {
			return err
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	return allows(abs, bits, uid, gid)
}

// allows checks the permission bits that apply to uid:gid on path (owner,
// group or other; supplementary groups are not considered).
func allows(path string, bits fs.FileMode, uid, gid int) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	perm := fi.Mode().Perm()
	var have fs.FileMode
	switch {
	case int(st.Uid) == uid:
		have = perm >> 6 & 7
	case int(st.Gid) == gid:
		have = perm >> 3 & 7
	default:
		have = perm & 7
	}
	if have&bits != bits {
		return fmt.Errorf("%s is %s owned by %d:%d", path, fi.Mode(), st.Uid, st.Gid)
	}
	return nil
}
