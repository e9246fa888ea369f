package realtime

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// TestFollowerLosesStream: the OneServer reaches a real Redis through a
// proxy (toxiproxy, in-process). When the proxy drops every connection the
// follower outdates every local entry; when it is back the follower
// outdates them once more (it cannot know what it missed) and applies new
// notifications again.
func TestFollowerLosesStream(t *testing.T) {
	src, _ := testutil.MustSourceServer(t)
	rds := testutil.MustRedis(t)
	tox := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	proxy := toxiproxy.NewProxy(tox, "one→redis", "127.0.0.1:0", rds)
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Stop)
	cfg := Defaults()
	cfg.Listen, cfg.SourceURL, cfg.Redis, cfg.Fresh = "127.0.0.1:0", src, proxy.Listen, time.Hour
	h := MustOneWith(t, cfg)
	direct, err := redisstore.Open(rds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	level := func(id int64) string { return h.svc.Resolve(t.Context(), []int64{id})[0].Level("price") }
	resyncs := func() float64 { return promtest.ToFloat64(h.svc.resyncs) }

	h.MustObject(t, "/api/realtime/4")
	if l := level(4); l != levelLRU {
		t.Fatalf("served by %s, want lru", l)
	}
	proxy.Stop() // every connection to Redis drops
	testutil.Eventually(t, 5*time.Second, func() error {
		if resyncs() < 1 {
			return fmt.Errorf("no resync yet")
		}
		return nil
	})
	if l := level(4); l != levelLive {
		t.Fatalf("after the stream was lost served by %s, want live", l)
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if resyncs() < 2 {
			return fmt.Errorf("%v resyncs, want 2 (lost and back)", resyncs())
		}
		return nil
	})
	// Back: what was fetched while the stream was lost is outdated too,
	// then entries answer again and notifications apply again.
	if l := level(4); l != levelLive {
		t.Fatalf("after the stream came back served by %s, want live", l)
	}
	if l := level(4); l != levelLRU {
		t.Fatalf("served by %s, want lru", l)
	}
	p := MustSourceJSON[catalog.Price](t, h, "/api/prices/4")
	p.Version++
	rec, _ := json.Marshal(p)
	if n, err := direct.PutRealtime(t.Context(), time.Now(), redisstore.RealtimeRecord{ID: 4, Dim: catalog.DimPrice, Version: p.Version, JSON: rec}); err != nil || n != 1 {
		t.Fatalf("PutRealtime: %d %v", n, err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if e, ok := h.svc.cache.Peek(key{4, partPrice}); ok && !e.invalid.Load() {
			return fmt.Errorf("the local entry of 4 was not outdated by its notification")
		}
		return nil
	})
	h.MustGet(t, "/api/realtime/4", http.StatusOK)
}
