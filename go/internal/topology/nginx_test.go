package topology

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func repoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func distNode(tb testing.TB) Nginx {
	return Nginx{
		Tier: "dist", Name: "dist", Listen: "127.0.0.1:18080", AdminListen: "127.0.0.1:18070",
		Prefix: filepath.Join(tb.TempDir(), "dist"), Root: repoRoot(tb),
		Direct: "127.0.0.1:9103", Source: "127.0.0.1:9101", Apps: []string{"127.0.0.1:8081", "localhost:8082"},
		Replica: "127.0.0.1:6381", Hot: []string{"127.0.0.1:9104"},
	}
}

func TestRenderDist(t *testing.T) {
	n := distNode(t)
	conf, err := RenderNginx(n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`{ name = "127.0.0.1:8081", host = "127.0.0.1", port = 8081 },`,
		`{ name = "localhost:8082", host = "127.0.0.1", port = 8082 },`, // resolved for ngx.balancer
		"listen 127.0.0.1:18070;",
		"balancer_by_lua_block",
		"proxy_next_upstream_tries 3;",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rendered dist config lacks %q", want)
		}
	}
	if strings.Contains(string(b), "user ") {
		t.Error("a user directive without Nginx.User")
	}
}

// The realtime API's routes exist only with OneServer nodes, resolved for
// ngx.balancer like the app nodes.
func TestRenderDistOne(t *testing.T) {
	render := func(one []string) string {
		n := distNode(t)
		n.One = one
		conf, err := RenderNginx(n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	with := render([]string{"127.0.0.1:9105", "localhost:9106"})
	for _, want := range []string{
		`{ name = "127.0.0.1:9105", host = "127.0.0.1", port = 9105 },`,
		`{ name = "localhost:9106", host = "127.0.0.1", port = 9106 },`,
		"upstream dp_one {",
		"location = /api/realtime {",
		"location ^~ /api/realtime/ {",
		"proxy_next_upstream_tries 2;",
		`ngx.header["Cache-Control"] = "no-store"`,
		"error_page 502 504 = @one_unavailable;",
	} {
		if !strings.Contains(with, want) {
			t.Errorf("rendered dist config with OneServers lacks %q", want)
		}
	}
	if n := strings.Count(with, `require("detailpage.dist").route_one()`); n != 2 {
		t.Errorf("route_one in %d locations, want 2", n)
	}
	without := render(nil)
	for _, unwanted := range []string{"dp_one", "location = /api/realtime", "route_one"} {
		if strings.Contains(without, unwanted) {
			t.Errorf("rendered dist config without OneServers has %q", unwanted)
		}
	}
}

func TestValidateDistAdmin(t *testing.T) {
	for name, mod := range map[string]func(*Nginx){
		"no admin port":       func(n *Nginx) { n.AdminListen = "" },
		"admin on page port":  func(n *Nginx) { n.AdminListen = n.Listen },
		"user with a newline": func(n *Nginx) { n.User = "www-data;\nuser root" },
		"no replica":          func(n *Nginx) { n.Replica = "" },
		"hot not host:port":   func(n *Nginx) { n.Hot = []string{"hot"} },
		"one not host:port":   func(n *Nginx) { n.One = []string{"one"} },
		"one listed twice":    func(n *Nginx) { n.One = []string{"127.0.0.1:9105", "127.0.0.1:9105"} },
	} {
		t.Run(name, func(t *testing.T) {
			n := distNode(t)
			mod(&n)
			if err := n.Validate(); err == nil {
				t.Error("Validate passed")
			}
		})
	}
}

func TestRenderUserDirective(t *testing.T) {
	n := distNode(t)
	n.User = "www-data"
	conf, err := RenderNginx(n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "\nuser www-data;\n") {
		t.Error("no user directive")
	}
}

// reachable reads permission bits for another uid; it needs no privileges.
func TestReachable(t *testing.T) {
	const nobody, nogroup = 65534, 65534
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := reachable(dir, 0o5, nobody, nogroup); err != nil {
		t.Skipf("the temp dir's parents are closed to others here: %v", err)
	}
	inner := filepath.Join(dir, "var", "app1", "tmp")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "var"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := reachable(inner, 0o1, nobody, nogroup); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "var")) {
		t.Errorf("through a 0700 dir: %v, want an error naming it", err)
	}
	if err := os.Chmod(filepath.Join(dir, "var"), 0o701); err != nil {
		t.Fatal(err)
	}
	if err := reachable(inner, 0o1, nobody, nogroup); err != nil {
		t.Errorf("through a 0701 dir: %v", err)
	}
	f := filepath.Join(dir, "x.lua")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := allows(f, 0o4, nobody, nogroup); err == nil {
		t.Error("a 0600 file counted as readable by others")
	}
}

func appNode(tb testing.TB) Nginx {
	return Nginx{
		Tier: "app", Name: "app1", Listen: "127.0.0.1:18081",
		Prefix: filepath.Join(tb.TempDir(), "app1"), Root: repoRoot(tb),
		Direct: "127.0.0.1:9103", Replica: "127.0.0.1:6381", Hot: []string{"127.0.0.1:9104"},
	}
}

func TestRenderAppWarm(t *testing.T) {
	for name, c := range map[string]struct {
		top  int
		max  float64
		want string
	}{
		"off":             {0, 0, "warm = { top = 0 },"},
		"default max":     {1000, 0, "warm = { top = 1000 },"},
		"top and max set": {3000, 2.5, "warm = { top = 3000, max = 2.5 },"},
	} {
		t.Run(name, func(t *testing.T) {
			n := appNode(t)
			n.WarmTop, n.WarmMax = c.top, c.max
			conf, err := RenderNginx(n)
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{c.want, `require("detailpage.warm").init({ hot = "127.0.0.1:9104" })`,
				`require("detailpage.warm").start()`, `require("detailpage.warm").health()`} {
				if !strings.Contains(string(b), want) {
					t.Errorf("rendered app config lacks %q", want)
				}
			}
		})
	}
}

func TestValidateAppWarm(t *testing.T) {
	for name, mod := range map[string]func(*Nginx){
		"negative top":      func(n *Nginx) { n.WarmTop = -1 },
		"top over the list": func(n *Nginx) { n.WarmTop = MaxWarmTop + 1 },
		"negative max":      func(n *Nginx) { n.WarmMax = -1 },
		"max over a minute": func(n *Nginx) { n.WarmMax = 61 },
	} {
		t.Run(name, func(t *testing.T) {
			n := appNode(t)
			mod(&n)
			if err := n.Validate(); err == nil {
				t.Error("Validate passed")
			}
		})
	}
}
