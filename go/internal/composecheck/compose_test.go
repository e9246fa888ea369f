package composecheck

import (
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/detailpage/detailpage/go/internal/cli"
)

// testEnv is the only environment interpolation sees: offline and the same
// on every machine.
var testEnv = []string{"DETAILPAGE_ADMIN_TOKEN=compose-test-token"}

// MustRepoRoot returns the repository root (three levels above this package).
func MustRepoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// MustLoad loads file as a compose project rooted at the repository.
func MustLoad(tb testing.TB, file string) *types.Project {
	tb.Helper()
	p, err := Load(tb.Context(), MustRepoRoot(tb), file, testEnv)
	if err != nil {
		tb.Fatalf("load %s: %v", file, err)
	}
	return p
}

// binDir holds the detailpage binary built for these tests; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds the detailpage binary once.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "composecheck")
	if err != nil {
		return "", err
	}
	binDir = dir
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "detailpage")
	build := exec.Command("go", "build", "-o", bin, "./go/cmd/detailpage")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", errors.New("go build ./go/cmd/detailpage: " + err.Error() + "\n" + string(out))
	}
	return bin, nil
})

// cleanEnv is the process environment without DETAILPAGE_* variables, so
// the binary sees only the flags under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DETAILPAGE_") {
			env = append(env, kv)
		}
	}
	return env
}

// knownFlags lists each subcommand's flags from its --help output.
var knownFlags = sync.OnceValues(func() (map[string][]string, error) {
	bin, err := buildBinary()
	if err != nil {
		return nil, err
	}
	known := map[string][]string{}
	for _, name := range cli.Names() {
		if name == "up" {
			continue // never run from compose; its --help is not needed
		}
		help := exec.Command(bin, name, "--help")
		help.Env = cleanEnv()
		out, err := help.CombinedOutput()
		if err != nil {
			return nil, errors.New("detailpage " + name + " --help: " + err.Error() + "\n" + string(out))
		}
		flags := UsageFlags(string(out))
		if len(flags) == 0 {
			return nil, errors.New("detailpage " + name + " --help lists no flags:\n" + string(out))
		}
		known[name] = flags
	}
	return known, nil
})

// MustBinary returns the path of the detailpage binary built from this checkout.
func MustBinary(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds the detailpage binary")
	}
	bin, err := buildBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// MustKnownFlags returns each subcommand's flag names, from its --help.
func MustKnownFlags(tb testing.TB) map[string][]string {
	tb.Helper()
	MustBinary(tb)
	known, err := knownFlags()
	if err != nil {
		tb.Fatal(err)
	}
	return known
}

func TestComposeFile(t *testing.T) {
	root := MustRepoRoot(t)
	p := MustLoad(t, filepath.Join(root, "docker-compose.yml"))

	t.Run("check", func(t *testing.T) {
		for _, err := range Check(p) {
			t.Error(err)
		}
	})

	t.Run("flags", func(t *testing.T) {
		for _, err := range CheckFlags(p, MustKnownFlags(t)) {
			t.Error(err)
		}
	})

	// What each service runs, spelled out: Check enforces the rules, this
	// table pins the topology itself.
	tests := []struct {
		service    string
		dockerfile string // "" for a public image
		subcommand string
		tier       string
	}{
		{"redis-main", "", "", ""},
		{"redis-replica", "", "", ""},
		{"redis-b1", "", "", ""},
		{"redis-b2", "", "", ""},
		{"sentinel1", "", "", ""},
		{"sentinel2", "", "", ""},
		{"sentinel3", "", "", ""},
		{"kafka", "", "", ""},
		{"source", GoDockerfile, "source", ""},
		{"sync", GoDockerfile, "sync", ""},
		{"direct", GoDockerfile, "direct", ""},
		{"hot", GoDockerfile, "hot", ""},
		{"one", GoDockerfile, "one", ""},
		{"app1", OpenRestyDockerfile, "nginx", "app"},
		{"app2", OpenRestyDockerfile, "nginx", "app"},
		{"dist", OpenRestyDockerfile, "nginx", "dist"},
		{"console", GoDockerfile, "console", ""},
	}
	c := &checker{p: p, root: p.WorkingDir, entrypoints: map[string][]string{}}
	for _, tt := range tests {
		t.Run("service/"+tt.service, func(t *testing.T) {
			s, ok := p.Services[tt.service]
			if !ok {
				t.Fatalf("no service %q", tt.service)
			}
			df := c.dockerfile(s)
			if tt.dockerfile == "" {
				if df != "" {
					t.Fatalf("builds %s; want a public image", df)
				}
				if s.Image == "" {
					t.Fatal("no image")
				}
				return
			}
			if want := filepath.Join(root, tt.dockerfile); df != want {
				t.Fatalf("builds %s; want %s", df, want)
			}
			inv, ok := c.invocation(s)
			if !ok {
				t.Fatal("runs no detailpage command")
			}
			if inv.Subcommand != tt.subcommand {
				t.Errorf("runs `detailpage %s`; want %s", inv.Subcommand, tt.subcommand)
			}
			args, err := parseArgs(inv.Args)
			if err != nil {
				t.Fatal(err)
			}
			if tt.tier != "" && args.values["tier"] != tt.tier {
				t.Errorf("--tier=%q; want %q", args.values["tier"], tt.tier)
			}
		})
	}
	if len(p.Services) != len(tests) {
		t.Errorf("compose has %d services (%v); the table lists %d", len(p.Services), slices.Sorted(maps.Keys(p.Services)), len(tests))
	}
}

// TestNginxConfigsRender runs each nginx service's exact command line with
// --render-only, the repository as --root and a temp prefix: the tier's
// template must render for the compose addresses, without load_module lines
// (OpenResty has lua built in).
func TestNginxConfigsRender(t *testing.T) {
	root := MustRepoRoot(t)
	p := MustLoad(t, filepath.Join(root, "docker-compose.yml"))
	bin := MustBinary(t)
	c := &checker{p: p, root: p.WorkingDir, entrypoints: map[string][]string{}}
	for _, name := range []string{"app1", "app2", "dist"} {
		t.Run(name, func(t *testing.T) {
			inv, ok := c.invocation(p.Services[name])
			if !ok || inv.Subcommand != "nginx" {
				t.Fatalf("service %q does not run `detailpage nginx`", name)
			}
			args := []string{"nginx"}
			for _, a := range inv.Args {
				switch {
				case strings.HasPrefix(a, "--root="):
					a = "--root=" + root
				case strings.HasPrefix(a, "--prefix="):
					a = "--prefix=" + t.TempDir()
				}
				args = append(args, a)
			}
			cmd := exec.Command(bin, append(args, "--render-only")...)
			cmd.Env = cleanEnv()
			out, err := cmd.Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					t.Fatalf("detailpage %s --render-only: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
				}
				t.Fatal(err)
			}
			conf, err := os.ReadFile(strings.TrimSpace(string(out)))
			if err != nil {
				t.Fatal(err)
			}
			listen := "listen 0.0.0.0:" + map[string]string{"app1": "8081", "app2": "8082", "dist": "8080"}[name]
			if !strings.Contains(string(conf), listen) {
				t.Errorf("rendered config has no %q", listen)
			}
			if strings.Contains(string(conf), "load_module") {
				t.Error("rendered config loads dynamic modules; OpenResty has lua built in")
			}
		})
	}
}

// TestCheckReportsBrokenCopies mutates a copy of docker-compose.yml, loads it
// from a temp dir (paths still resolve against the repository) and expects
// the checker to say what is wrong.
func TestCheckReportsBrokenCopies(t *testing.T) {
	root := MustRepoRoot(t)
	orig, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	type edit struct{ old, new string }
	tests := []struct {
		name  string
		edits []edit
		flags bool     // also run CheckFlags
		want  []string // each must appear in some reported error
	}{
		{
			name: "port collision and missing Dockerfile",
			edits: []edit{
				{":8082:8082", ":8081:8082"},
				{"dockerfile: docker/go.Dockerfile", "dockerfile: docker/missing.Dockerfile"},
			},
			want: []string{
				`host port 8081/tcp is published by both "app1" and "app2"`,
				`Dockerfile ` + filepath.Join(root, "docker", "missing.Dockerfile") + ` does not exist`,
			},
		},
		{
			name:  "embedded broker",
			edits: []edit{{"      - sync\n", "      - broker\n"}},
			want:  []string{"runs `detailpage broker`, which does not belong in compose"},
		},
		{
			name:  "unknown subcommand",
			edits: []edit{{"      - direct\n", "      - directd\n"}},
			want:  []string{`"directd" is not a detailpage subcommand`},
		},
		{
			name:  "loopback listen",
			edits: []edit{{"--listen=0.0.0.0:9103", "--listen=127.0.0.1:9103"}},
			want:  []string{`service "direct": --listen="127.0.0.1:9103": other containers cannot reach`},
		},
		{
			name:  "dist names a missing app",
			edits: []edit{{"--apps=app1:8081,app2:8082", "--apps=app1:8081,app3:8082"}},
			want:  []string{`service "dist": --apps names "app3", which is not a service`},
		},
		{
			name:  "wrong mount source",
			edits: []edit{{"./templates:/app/templates:ro", "./docs:/app/templates:ro"}},
			want:  []string{`service "app1": mounts ` + filepath.Join(root, "docs") + ` at /app/templates; want the repository's ` + filepath.Join(root, "templates")},
		},
		{
			name:  "read-write mount",
			edits: []edit{{"./lua:/app/lua:ro", "./lua:/app/lua"}},
			want:  []string{`service "dist": mounts /app/lua read-write`},
		},
		{
			name:  "bad tier",
			edits: []edit{{"--tier=dist", "--tier=edge"}},
			want:  []string{`service "dist": --tier="edge": want app or dist`},
		},
		{
			name:  "port off contract",
			edits: []edit{{":6380:6379", ":6390:6379"}},
			want:  []string{`service "redis-main": publishes host ports [6390]; the contract says 6380`},
		},
		{
			name:  "missing dependency",
			edits: []edit{{"      sentinel3:\n        condition: service_healthy\n      source:\n", "      source:\n"}},
			want:  []string{`service "direct": --redis-sentinels names "sentinel3", but "direct" does not depend_on it`},
		},
		{
			name:  "no restart policy",
			edits: []edit{{"    image: apache/kafka:3.9.0\n    restart: unless-stopped\n", "    image: apache/kafka:3.9.0\n"}},
			want:  []string{`service "kafka": restart policy "none": a long-running service wants one of always, unless-stopped, on-failure`},
		},
		{
			name:  "restart never",
			edits: []edit{{"  restart: unless-stopped\n  environment: *admin-env\n  volumes:", "  restart: \"no\"\n  environment: *admin-env\n  volumes:"}},
			want:  []string{`service "app1": restart policy "no"`, `service "dist": restart policy "no"`},
		},
		{
			name:  "unknown flag",
			edits: []edit{{"--group=detailpage-sync", "--consumer-group=detailpage-sync"}},
			flags: true,
			want:  []string{`service "sync": --consumer-group is not a flag of ` + "`detailpage sync`"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := string(orig)
			for _, e := range tt.edits {
				if !strings.Contains(text, e.old) {
					t.Fatalf("docker-compose.yml no longer contains %q: update this test", e.old)
				}
				text = strings.ReplaceAll(text, e.old, e.new)
			}
			file := filepath.Join(t.TempDir(), "docker-compose.yml")
			if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			p := MustLoad(t, file)
			errs := Check(p)
			if tt.flags {
				errs = append(errs, CheckFlags(p, MustKnownFlags(t))...)
			}
			var msgs []string
			for _, err := range errs {
				msgs = append(msgs, err.Error())
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, w) }) {
					t.Errorf("no error says %q; got:\n  %s", w, strings.Join(msgs, "\n  "))
				}
			}
		})
	}
}

func TestUsageFlags(t *testing.T) {
	usage := `Usage of detailpage sync:
  -batch int
    	most change events handled in one round (env DETAILPAGE_SYNC_BATCH) (default 500)
  -kafka string
    	Kafka brokers, comma-separated (env DETAILPAGE_KAFKA) (default "127.0.0.1:9092")
  -render-only
    	write the config, print its path and exit
`
	got := UsageFlags(usage)
	want := []string{"batch", "kafka", "render-only"}
	if !slices.Equal(got, want) {
		t.Errorf("UsageFlags = %q; want %q", got, want)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args    []string
		want    map[string]string
		wantErr bool
	}{
		{[]string{"--listen=0.0.0.0:1", "-db", "x.db", "--render-only"}, map[string]string{"listen": "0.0.0.0:1", "db": "x.db", "render-only": ""}, false},
		{[]string{"--tier", "app", "--tier=dist"}, nil, true},
		{[]string{"stray"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, err := parseArgs(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v; wantErr %v", err, tt.wantErr)
			}
			if err == nil && !maps.Equal(got.values, tt.want) {
				t.Errorf("values = %v; want %v", got.values, tt.want)
			}
		})
	}
}
