package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// Cache penetration (缓存穿透): 10,000 requests over 5,000 random ids that
// do not exist, through the dist tier, cost the source nothing: the app
// tier's negative cache answers repeats, the direct-data service's Bloom
// filter refuses the rest without asking Redis or the source.
func TestPenetrationNoSourceLookups(t *testing.T) {
	MustBloomReady(t, shared)
	rng := rand.New(rand.NewPCG(6, 6))
	ids := make([]int64, 5000)
	for i := range ids {
		ids[i] = 1_000_000_000 + rng.Int64N(1_000_000_000_000) // far beyond the catalog
	}
	refusedBefore := directMetric(t, shared, `detailpage_direct_lookups_total{level="bloom"}`)
	MustSourceStats(t, shared, http.MethodDelete)

	var mu sync.Mutex
	i := 0
	next := func() int64 { // every id twice, in order
		mu.Lock()
		defer mu.Unlock()
		i++
		return ids[(i-1)%len(ids)]
	}
	rep := load(t, 2000, 5*time.Second, itemURL(shared), next)
	rs := rep.Results
	t.Logf("penetration: %s", rep.Summary())
	for _, r := range rs {
		if r.Status != http.StatusNotFound {
			t.Fatalf("id %d: status %d, want 404", r.ID, r.Status)
		}
	}
	if got := MustGetPage(t, pageURL(shared, fmt.Sprint(ids[0]))); !strings.Contains(got.body, "Product not found") {
		t.Errorf("the 404 is not the real 404 page: %.80q", got.body)
	}
	st := MustSourceStats(t, shared, http.MethodGet)
	lookups, missing := totalLookups(st)
	refused := directMetric(t, shared, `detailpage_direct_lookups_total{level="bloom"}`) - refusedBefore
	t.Logf("source: %d lookups in all (%d of ids that do not exist); direct: %.0f refused by the Bloom filter", lookups, missing, refused)
	// The shared topology may still sync an earlier test's edit (lookups of
	// products that exist); none of the lookups may be of ids that do not.
	if missing != 0 {
		t.Errorf("the source was asked for %d ids that do not exist, want 0: %+v", missing, st)
	}
	if refused < 1 || refused > float64(len(rs)) {
		t.Errorf("Bloom refusals = %.0f, want between 1 and %d", refused, len(rs))
	}
}

// Cache breakdown (缓存击穿): a hot id whose entries expire — its Redis
// value gone, its app-tier copies expiring every second — under 500
// requests/s for 3 s: exactly one rebuild reaches the source, and no
// request waits on it for long.
func TestBreakdownOneRebuild(t *testing.T) {
	topo := MustTopology(t, topology.Config{SeedProducts: 2000, SeedShops: 50, AppL1TTL: time.Second, AppL2TTL: time.Second})
	const hot = 77
	url := itemURL(topo)
	for range 3 {
		if got := MustGetPage(t, url(hot)); got.status != http.StatusOK {
			t.Fatalf("warm-up: status %d", got.status)
		}
	}
	// The Redis value goes (evicted, or expired) on main, and so on the replica.
	main, replica := redisClient(t, topo.Config().Ports.RedisMain), redisClient(t, topo.Config().Ports.RedisReplica)
	if err := main.Del(context.Background(), redisstore.ItemKey(hot)).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		n, err := replica.Exists(context.Background(), redisstore.ItemKey(hot)).Result()
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("the replica still has %s", redisstore.ItemKey(hot))
		}
		return nil
	})
	MustSourceStats(t, topo, http.MethodDelete)

	rep := load(t, 500, 3*time.Second, url, func() int64 { return hot })
	t.Logf("breakdown: %s", rep.Summary())
	var slow int
	for _, r := range rep.Results {
		if r.Status != http.StatusOK {
			t.Fatalf("status %d (X-Cache %q), want 200", r.Status, r.Cache)
		}
		if r.Latency > 50*time.Millisecond {
			slow++
			t.Logf("slow: request at +%s took %s from its scheduled time (sent %s late, X-Cache %s)", r.At.Round(time.Millisecond), r.Latency.Round(time.Millisecond), r.SendDelay.Round(time.Millisecond), r.Cache)
		}
	}
	// Nobody is held behind the rebuild: a request that waited for it the
	// app tier's whole lock wait (1 s) would be one. The figure (p99, and
	// how many took over 50 ms) is in the log; the bound is generous.
	lat := rep.Latencies()
	p99 := loadgen.Percentile(lat, 0.99)
	t.Logf("breakdown: %d of %d requests over 50ms from their scheduled time; p99 %s", slow, len(lat), p99.Round(time.Millisecond))
	if p99 >= time.Second {
		t.Errorf("p99 %s from scheduled time: requests waited on the rebuild as long as the lock wait (1 s)", p99)
	}
	st := MustSourceStats(t, topo, http.MethodGet)
	// A rebuild asks each source service once for the id (product also
	// for the products it recommends): stock and description count rebuilds.
	t.Logf("source lookups: product %d, stock %d, description %d", st["product"].Lookups, st["stock"].Lookups, st["description"].Lookups)
	if st["stock"].Lookups != 1 || st["description"].Lookups != 1 {
		t.Errorf("stock lookups %d, description lookups %d: want exactly one rebuild", st["stock"].Lookups, st["description"].Lookups)
	}
	if n, err := main.Exists(context.Background(), redisstore.ItemKey(hot)).Result(); err != nil || n != 1 {
		t.Errorf("the rebuild did not write %s back to Redis main (EXISTS %d, %v)", redisstore.ItemKey(hot), n, err)
	}
}

// Cache avalanche (缓存雪崩): Redis main and replica both down under
// Zipf traffic. Ids seen before the outage keep serving (app-tier and
// direct-data local and stale copies); the rest are rebuilt within the
// rebuild limit and beyond it fail fast; the source never sees more in
// flight than the limit; pages are back to Redis hits within 10 s of
// Redis returning. The issue asks for 2,000 requests/s for 30 s; this runs
// 1,000 requests/s for 10 s to fit the suite's budget on two cores
// (`make bench` runs the longer version).
func TestAvalancheRedisDown(t *testing.T) {
	const (
		limit    = 4
		zipfIDs  = 10_000
		products = 10_400 // 10,001… are never in the Zipf traffic: fresh probes
		rate     = 1000
		outage   = 10 * time.Second
	)
	topo := MustTopology(t, topology.Config{
		SeedProducts: products, SeedShops: 50, AppL1TTL: 2 * time.Second, AppL2TTL: 2 * time.Second,
		DirectArgs: []string{fmt.Sprintf("--rebuild-concurrency=%d", limit)},
	})
	url := itemURL(topo)
	next := loadgen.Zipf(7, zipfIDs)

	warm := load(t, rate, 3*time.Second, url, next)
	t.Logf("before the outage: %s", warm.Summary())
	seen := map[int64]bool{}
	for _, r := range warm.Results {
		if r.Status == http.StatusOK {
			seen[r.ID] = true
		}
	}

	MustSourceStats(t, topo, http.MethodDelete)
	for _, name := range []string{topology.RedisReplica, topology.RedisMain} {
		if err := topo.Component(name).Stop(); err != nil {
			t.Fatalf("stop %s: %v", name, err)
		}
	}
	downRep := load(t, rate, outage, url, next)
	down := downRep.Results
	t.Logf("Redis main and replica down: %s", downRep.Summary())
	var seen5xx, unseen, unseen5xx int
	for _, r := range down {
		switch {
		case seen[r.ID] && (r.Status >= 500 || r.Status == 0):
			seen5xx++
		case !seen[r.ID]:
			unseen++
			if r.Status >= 500 || r.Status == 0 {
				unseen5xx++
			}
		}
	}
	st := MustSourceStats(t, topo, http.MethodGet)
	lookups, _ := totalLookups(st)
	t.Logf("ids seen before: %d 5xx; other ids: %d requests, %d failed fast (5xx); source: %d lookups, %.1f per 1,000 page requests",
		seen5xx, unseen, unseen5xx, lookups, 1000*float64(lookups)/float64(len(down)))
	if seen5xx > 0 {
		t.Errorf("%d 5xx for ids seen before the outage, want 0", seen5xx)
	}
	for name, s := range st {
		t.Logf("source %-14s max in flight %d, lookups %d", name, s.MaxInFlight, s.Lookups)
		if s.MaxInFlight > limit {
			t.Errorf("source %s had %d requests in flight, want at most the rebuild limit %d", name, s.MaxInFlight, limit)
		}
	}

	// Redis returns: fresh ids are Redis hits again within 10 s.
	MustStart(t, topo, topology.RedisMain)
	back := time.Now()
	MustStart(t, topo, topology.RedisReplica)
	probe := int64(zipfIDs)
	testutil.Eventually(t, 10*time.Second, func() error {
		if probe == products {
			return testutil.StopPolling(fmt.Errorf("ran out of never-seen ids to probe"))
		}
		probe++
		last, err := getPage(url(probe))
		if err != nil {
			return err
		}
		if last.status != http.StatusOK || last.cache != "redis" {
			return fmt.Errorf("not back to Redis hits after Redis returned: id %d status %d X-Cache %q", probe, last.status, last.cache)
		}
		return nil
	})
	t.Logf("back to Redis hits %s after Redis main returned", time.Since(back).Round(10*time.Millisecond))
}
