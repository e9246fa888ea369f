package topology

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
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
	Replica     string   // app: Redis replica host:port
	Direct      string   // direct-data service host:port
	Apps        []string // dist: app nodes host:port
	Source      string   // dist: source service host:port (product pictures)
	LoadModules bool     // Debian nginx: load ndk and lua modules
	ModulesDir  string   // where the dynamic modules are
	RunAsRoot   bool     // master is root: keep workers root so they can read the checkout
	Workers     int      // worker processes (0: auto)
	Resolver    string   // DNS server for host names Lua connects to (compose: 127.0.0.11)
	L1TTL       float64  // app: seconds a page stays in a worker's L1 (0: DEFAULTS in lua/detailpage/app.lua)
	L2TTL       float64  // app: seconds a page stays fresh in the node's L2 (0: DEFAULTS in lua/detailpage/app.lua)
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
	switch n.Tier {
	case "app":
		if err := check("replica", n.Replica); err != nil {
			return err
		}
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
	}
	if n.L1TTL < 0 || n.L2TTL < 0 {
		return fmt.Errorf("nginx: l1 ttl %g, l2 ttl %g: want positive seconds, or 0 for the default", n.L1TTL, n.L2TTL)
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
	}).ParseFiles(src)
	if err != nil {
		return "", fmt.Errorf("nginx: %w", err)
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
