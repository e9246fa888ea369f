// Package e2e tests detailpage end to end against real processes: Redis main
// and replica, the embedded Kafka-protocol broker, the Go services and real
// nginx with the Lua module, started by the same topology code `make run`
// uses, on free loopback ports in a temp dir.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/testutil"
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
	t, err := startTopology(0, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	shared = t
	defer func() {
		t.Stop()
		os.RemoveAll(t.Config().VarDir)
	}()
	return m.Run()
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

// startTopology starts a topology on free ports in a new temp dir and waits
// until the catalog is in Redis. products 0 means the default catalog.
func startTopology(products, shops int) (*topology.Topology, error) {
	return startTopologyWith(products, shops, 0, 0)
}

// startTopologyWith is startTopology with the app nodes' L1 and L2 TTLs.
func startTopologyWith(products, shops int, l1, l2 time.Duration) (*topology.Topology, error) {
	return startTopologyOpts(topology.Config{SeedProducts: products, SeedShops: shops, AppL1TTL: l1, AppL2TTL: l2})
}

// startTopologyOpts starts a topology of cfg (root, dirs, ports, binary and
// token filled in) and waits until the catalog is in Redis.
func startTopologyOpts(cfg topology.Config) (*topology.Topology, error) {
	dir, err := os.MkdirTemp("", "detailpage-e2e-")
	if err != nil {
		return nil, err
	}
	ports, err := topology.FreePorts()
	if err != nil {
		return nil, err
	}
	cfg.Root, cfg.VarDir, cfg.Binary, cfg.Ports, cfg.AdminToken, cfg.Progress = repoRoot(), dir, builtBinary, ports, token, os.Stderr
	t, err := topology.New(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := t.Start(ctx); err != nil {
		return nil, err
	}
	if err := t.WaitWarm(ctx, 3*time.Minute); err != nil {
		t.Stop()
		return nil, err
	}
	return t, nil
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

// Eventually polls cond until it returns nil or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	testutil.Eventually(tb, timeout, cond)
}

func redisClient(tb testing.TB, port int) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: topology.Addr(port)})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}
