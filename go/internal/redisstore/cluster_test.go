package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// MustCluster starts a real 3-master Redis Cluster on loopback ports and
// returns its addresses.
func MustCluster(tb testing.TB) []string {
	tb.Helper()
	var addrs []string
	for i := range 3 {
		port := testutil.FreePort(tb)
		dir := filepath.Join(tb.TempDir(), "node"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no")
		cmd.Stdout, cmd.Stderr = nil, nil
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start redis-server (cluster node): %v", err)
		}
		tb.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		})
		addr := "127.0.0.1:" + strconv.Itoa(port)
		testutil.Eventually(tb, 10*time.Second, func() error {
			c := redis.NewClient(&redis.Options{Addr: addr})
			defer c.Close()
			return c.Ping(context.Background()).Err()
		})
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	testutil.Eventually(tb, 15*time.Second, func() error {
		c := redis.NewClient(&redis.Options{Addr: addrs[0]})
		defer c.Close()
		info, err := c.ClusterInfo(context.Background()).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("cluster not ready")
		}
		return nil
	})
	return addrs
}

// One product's keys share a hash tag: on a real Cluster the versioned
// write script and the MGET over all of a product's keys work.
func TestClusterCASAndMGet(t *testing.T) {
	addrs := MustCluster(t)
	store, err := redisstore.Open(strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, ok := store.Client().(*redis.ClusterClient); !ok {
		t.Fatalf("three addresses gave a %T, want a cluster client", store.Client())
	}
	ctx := t.Context()
	var entries []redisstore.Entry
	ids := []int64{1, 2, 3, 42, 777, 9999}
	for _, id := range ids {
		entries = append(entries, redisstore.Entry{Key: redisstore.ItemKey(id), Version: 5, Value: fmt.Appendf(nil, `{"version":5,"id":%d}`, id)})
		for _, d := range catalog.ProductDimensions {
			entries = append(entries, redisstore.Entry{Key: redisstore.DimKey(id, d), Version: 5, Value: fmt.Appendf(nil, `{"version":5,"dim":%q}`, d)})
		}
	}
	n, err := store.Put(ctx, entries...)
	if err != nil || n != len(entries) {
		t.Fatalf("Put on the cluster: %d written, %v", n, err)
	}
	// An older version is refused and a newer one written, on every shard.
	old := []redisstore.Entry{{Key: redisstore.ItemKey(42), Version: 4, Value: []byte(`{"version":4,"id":42}`)}}
	if n, err := store.Put(ctx, old...); err != nil || n != 0 {
		t.Fatalf("older write: %d written, %v; want 0", n, err)
	}
	newer := []redisstore.Entry{{Key: redisstore.DimKey(777, catalog.DimPrice), Version: 6, Value: []byte(`{"version":6,"dim":"price"}`)}}
	if n, err := store.Put(ctx, newer...); err != nil || n != 1 {
		t.Fatalf("newer write: %d written, %v; want 1", n, err)
	}
	vals, err := store.ProductValues(ctx, ids)
	if err != nil {
		t.Fatalf("MGET over hash-tagged keys on the cluster: %v", err)
	}
	for _, id := range ids {
		v := vals[id]
		if redisstore.VersionOf(v.Item) != 5 {
			t.Errorf("item %d: %s", id, v.Item)
		}
		for _, d := range catalog.ProductDimensions {
			want := int64(5)
			if id == 777 && d == catalog.DimPrice {
				want = 6
			}
			if got := redisstore.VersionOf(v.Dims[d]); got != want {
				t.Errorf("item %d %s: version %d, want %d", id, d, got, want)
			}
		}
	}
	if err := store.Invalidate(ctx, []redisstore.Changed{{ID: 42, Version: 5}}); err != nil {
		t.Errorf("invalidation stream on the cluster: %v", err)
	}
}
