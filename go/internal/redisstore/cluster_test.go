package redisstore_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	MustClusterAgreed(tb, addrs)
	return addrs
}

// MustClusterAgreed waits until every node reports cluster_state:ok with all
// 16384 slots served, and every node gives the same slot map: a node that
// has not yet learnt the map by gossip answers CLUSTERDOWN.
func MustClusterAgreed(tb testing.TB, addrs []string) {
	tb.Helper()
	clients := make([]*redis.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a})
		defer clients[i].Close()
	}
	ctx := tb.Context()
	testutil.Eventually(tb, 30*time.Second, func() error {
		var first string
		for i, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: cluster info: %w", addrs[i], err)
			}
			for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_slots_ok:16384", "cluster_known_nodes:3"} {
				if !strings.Contains(info, want+"\r\n") {
					return fmt.Errorf("%s: no %q yet in cluster info", addrs[i], want)
				}
			}
			m, err := slotMap(ctx, c)
			if err != nil {
				return fmt.Errorf("%s: %w", addrs[i], err)
			}
			if i == 0 {
				first = m
			} else if m != first {
				return fmt.Errorf("%s sees slots %s, %s sees %s", addrs[i], m, addrs[0], first)
			}
		}
		return nil
	})
}

// slotMap is a node's view of which master serves which slots, as text.
func slotMap(ctx context.Context, c *redis.Client) (string, error) {
	slots, err := c.ClusterSlots(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("cluster slots: %w", err)
	}
	var ranges []string
	covered := 0
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			return "", fmt.Errorf("slots %d-%d have no master", s.Start, s.End)
		}
		ranges = append(ranges, fmt.Sprintf("%05d-%05d@%s", s.Start, s.End, s.Nodes[0].Addr))
		covered += s.End - s.Start + 1
	}
	if covered != 16384 {
		return "", fmt.Errorf("%d of 16384 slots covered", covered)
	}
	slices.Sort(ranges)
	return strings.Join(ranges, ","), nil
}

// MustClientRoutes waits until the cluster client has loaded the slot map
// the nodes agree on: every key goes to the master that serves its slot.
func MustClientRoutes(tb testing.TB, cc *redis.ClusterClient, node string, keys []string) {
	tb.Helper()
	ctx := tb.Context()
	c := redis.NewClient(&redis.Options{Addr: node})
	defer c.Close()
	testutil.Eventually(tb, 10*time.Second, func() error {
		slots, err := c.ClusterSlots(ctx).Result()
		if err != nil {
			return fmt.Errorf("cluster slots: %w", err)
		}
		for _, k := range keys {
			slot, err := c.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				return fmt.Errorf("keyslot %s: %w", k, err)
			}
			owner := ""
			for _, s := range slots {
				if int64(s.Start) <= slot && slot <= int64(s.End) {
					owner = s.Nodes[0].Addr
				}
			}
			m, err := cc.MasterForKey(ctx, k)
			if err != nil {
				cc.ReloadState(ctx)
				return fmt.Errorf("client route of %s: %w", k, err)
			}
			if got := m.Options().Addr; got != owner {
				cc.ReloadState(ctx)
				return fmt.Errorf("client sends %s (slot %d) to %s, the cluster serves it on %s", k, slot, got, owner)
			}
		}
		return nil
	})
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
	cc, ok := store.Client().(*redis.ClusterClient)
	if !ok {
		t.Fatalf("three addresses gave a %T, want a cluster client", store.Client())
	}
	ctx := t.Context()
	var entries []redisstore.Entry
	ids := []int64{1, 2, 3, 42, 777, 9999}
	var routed []string
	for _, id := range ids {
		routed = append(routed, redisstore.ItemKey(id))
	}
	MustClientRoutes(t, cc, addrs[0], routed)
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

// The refresh's version read and the edit's page patch run as one script
// per product on a real Cluster too: each product's keys share a slot.
func TestClusterVersionsAndPatch(t *testing.T) {
	addrs := MustCluster(t)
	store, err := redisstore.Open(strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx := t.Context()
	ids := []int64{1, 2, 3, 42, 777, 9999}
	page := func(id, version int64, available int) []byte {
		return fmt.Appendf(nil, `{"version":%d,"id":%d,"price":{"amount":"1.00","list":"","currency":"CNY","symbol":"¥"},"stock":{"available":%d,"status":"in_stock","label":"有货 In stock"},"description_html":"","updated_at":"2026-11-24T02:00:00Z"}`, version, id, available)
	}
	var entries []redisstore.Entry
	for _, id := range ids {
		entries = append(entries, redisstore.Entry{Key: redisstore.ItemKey(id), Version: 30, Value: page(id, 30, 50)})
		for _, d := range catalog.ProductDimensions {
			entries = append(entries, redisstore.Entry{Key: redisstore.DimKey(id, d), Version: 5, Value: fmt.Appendf(nil, `{"version":5,"dim":%q}`, d)})
		}
	}
	if n, err := store.Put(ctx, entries...); err != nil || n != len(entries) {
		t.Fatalf("Put on the cluster: %d written, %v", n, err)
	}
	vs, err := store.ProductVersions(ctx, append(ids, 12345))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if vs[id].Page != 30 || len(vs[id].Dims) != len(catalog.ProductDimensions) || slices.ContainsFunc(vs[id].Dims, func(v int64) bool { return v != 5 }) {
			t.Errorf("versions of %d: %+v", id, vs[id])
		}
	}
	if vs[12345].Page != -1 {
		t.Errorf("versions of an id with no keys: %+v", vs[12345])
	}
	var patches []redisstore.Patch
	for _, id := range ids {
		patches = append(patches, redisstore.Patch{ID: id, Dim: catalog.DimStock, Version: 9, Value: []byte(`{"version":9,"dim":"stock"}`),
			Member: []byte(`{"available":60,"status":"in_stock","label":"有货 In stock"}`), UpdatedAt: []byte(`"2026-11-24T02:01:00Z"`)})
	}
	res, err := store.PatchPages(ctx, patches)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		want := strings.Replace(string(page(id, 34, 60)), "02:00:00Z", "02:01:00Z", 1)
		if res[i].Outcome != redisstore.PatchPatched || res[i].PageVersion != 34 {
			t.Errorf("patch of %d: %+v", id, res[i])
		} else if got := MustGet(t, store, redisstore.ItemKey(id)); string(got) != want {
			t.Errorf("patched page of %d:\n%s\nwant\n%s", id, got, want)
		}
	}
}
