// Package e2e tests detailpage end to end against real processes: Redis main
// and replica, the embedded Kafka-protocol broker, the Go services and real
// nginx with the Lua module, started by the same topology code `make run`
// uses, on free loopback ports in a temp dir.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/topology"
)

// shared is the topology most tests use; tests that stop or kill a
// component bring it back before they end.
var shared *topology.Topology

const token = "e2e-admin-token"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, cleanup, err := binary() // sets builtBinary
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer cleanup()
	t, err := startTopology(topology.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	shared = t
	code := m.Run()
	if err := stopTopology(t); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop the shared topology:", err)
		code = max(code, 1)
	}
	return code
}

var builtBinary string

// binary returns the detailpage binary: $DETAILPAGE_BIN (make e2e builds
// it) or a fresh build.
func binary() (string, func(), error) {
	if b := os.Getenv("DETAILPAGE_BIN"); b != "" {
		builtBinary = b
		return b, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "detailpage-bin-")
	if err != nil {
		return "", nil, err
	}
	out := filepath.Join(dir, "detailpage")
	cmd := exec.Command("go", "build", "-o", out, "./go/cmd/detailpage")
	cmd.Dir = repoRoot()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build: %w", err)
	}
	builtBinary = out
	return out, func() { os.RemoveAll(dir) }, nil
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// startTopology starts cfg in the small Redis layout (main and one
// replica, no Sentinel: Config.NoSentinel), which every test uses but the
// failover tests (failover_test.go, startLayout with Sentinels).
func startTopology(cfg topology.Config) (*topology.Topology, error) {
	cfg.NoSentinel = true
	return startLayout(cfg)
}

// startLayout is the one way the suite starts a topology: cfg with the
// root, a new temp dir, free ports (unless cfg has ports), the binary and
// the token filled in (zero counts and TTLs are the defaults); it waits
// until the catalog is in Redis.
func startLayout(cfg topology.Config) (_ *topology.Topology, err error) {
	dir, err := os.MkdirTemp("", "detailpage-e2e-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.RemoveAll(dir))
		}
	}()
	if cfg.Ports == (topology.Ports{}) { // a test that puts proxies in between picks them itself
		if cfg.Ports, err = topology.FreePorts(); err != nil {
			return nil, err
		}
	}
	cfg.Root, cfg.VarDir, cfg.Binary, cfg.AdminToken, cfg.Progress = repoRoot(), dir, builtBinary, token, os.Stderr
	t, err := topology.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := t.Start(ctx); err != nil {
		return nil, err // Start stopped what it started
	}
	if err := t.WaitWarm(ctx, 3*time.Minute); err != nil {
		return nil, errors.Join(err, t.Stop())
	}
	return t, nil
}

// stopTopology stops t and removes its directory.
func stopTopology(t *topology.Topology) error {
	return errors.Join(t.Stop(), os.RemoveAll(t.Config().VarDir))
}

// MustTopology starts a topology of its own for one test (startTopology)
// and stops it when the test ends; a failed stop fails the test.
func MustTopology(tb testing.TB, cfg topology.Config) *topology.Topology {
	tb.Helper()
	topo, err := startTopology(cfg)
	if err != nil {
		tb.Fatalf("start a topology: %v", err)
	}
	tb.Cleanup(func() {
		if err := stopTopology(topo); err != nil {
			tb.Errorf("stop the test's topology: %v", err)
		}
	})
	return topo
}

// MustStart starts a stopped or killed component again and waits for it.
func MustStart(tb testing.TB, t *topology.Topology, name string) {
	tb.Helper()
	c := t.Component(name)
	if c.Running() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		tb.Fatalf("restart %s: %v", name, err)
	}
}

func redisClient(tb testing.TB, port int) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: topology.Addr(port)})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}
