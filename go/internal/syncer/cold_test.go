package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/preheat"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
	tu "github.com/detailpage/detailpage/go/internal/testutil"
)

// hotStub answers GET /api/top like the hot service, and records the
// periods asked for.
func hotStub(tb testing.TB, top map[string][]int64) (string, func() []string) {
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("period")
		mu.Lock()
		asked = append(asked, p)
		mu.Unlock()
		type e struct {
			ID    int64 `json:"id"`
			Count int   `json:"count"`
		}
		var out []e
		for i, id := range top[p] {
			out = append(out, e{ID: id, Count: 100 - i})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"period": p, "top": out})
	}))
	tb.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}
}

// The whole cold path against a real Redis, source service and broker:
// the first load is marked warm; a FLUSHALL is noticed, the hot ids are
// preheated, a refresh brings the rest, and main is marked warm again.
func TestColdMainIsRecovered(t *testing.T) {
	addr := tu.MustRedis(t)
	src, broker := tu.MustSourceService(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = src.Run(ctx) })
	hot, asked := hotStub(t, map[string][]int64{"hour": {5, 3}, "day": {3, 7}})
	var logs tu.SyncBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sync service log:\n%s", logs.String())
		}
	})
	// The first load must succeed for it to be marked "loaded": the whole
	// catalog is one batch, and a fetch over the default 1 s (a loaded CI
	// machine running -race) sends it to the retry topic, after which the
	// watcher rightly sees a main that is not loaded and recovers it.
	var patient []resilience.Command
	for _, c := range sourceclient.Commands() {
		patient = append(patient, resilience.Command{Name: c.Name, Timeout: 10 * time.Second})
	}
	svc, err := Open(Config{
		Listen: "127.0.0.1:0", Brokers: []string{broker}, Redis: addr, SourceURL: "http://" + src.Addr(),
		Group: "cold-test", BatchSize: 100, BatchWait: 10 * time.Millisecond, MaxAttempts: 3,
		RetryBase: 100 * time.Millisecond, RetryMax: time.Second, Pipeline: 2,
		ColdCheck: 50 * time.Millisecond, HotURLs: []string{hot}, AdminToken: tu.SourceToken,
		Commands: patient,
	}, slog.New(slog.NewTextHandler(&logs, nil)), httpapi.Telemetry{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	wg.Go(func() { _ = svc.Run(ctx) })

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	marker := func(reason string) func() error {
		return func() error {
			m, ok, err := ReadMarker(ctx, rdb)
			switch {
			case err != nil:
				return err
			case !ok:
				return fmt.Errorf("no marker")
			case m.Reason != reason || m.Products != tu.SourceProducts || m.Keys < tu.SourceProducts:
				return fmt.Errorf("marker %+v, want reason %s and %d products", m, reason, tu.SourceProducts)
			}
			return nil
		}
	}
	// The seed's full load, then the marker.
	tu.Eventually(t, 30*time.Second, marker("loaded"))
	if n := testutil.ToFloat64(svc.m.cold); n != 0 {
		t.Fatalf("cold count %v after the first load, want 0 (a load under way is not cold)", n)
	}
	if got := asked(); len(got) != 0 {
		t.Fatalf("hot service asked %v on the first load, want nothing", got)
	}

	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 30*time.Second, marker("recovered"))
	if n := testutil.ToFloat64(svc.m.cold); n != 1 {
		t.Fatalf("cold count %v, want 1", n)
	}
	if n := testutil.ToFloat64(svc.m.preheated); n != 3 {
		t.Fatalf("preheated %v products, want 3 (hour's 5 and 3, then day's 7)", n)
	}
	if got := asked(); !slices.Equal(got, []string{"hour", "day"}) {
		t.Fatalf("hot service asked for %v, want [hour day]", got)
	}
	for id := int64(1); id <= tu.SourceProducts; id++ {
		if n, err := rdb.Exists(ctx, redisstore.ItemKey(id)).Result(); err != nil || n != 1 {
			t.Fatalf("product %d not back in redis (%v)", id, err)
		}
	}
	if n, _ := rdb.Exists(ctx, ColdLeaseKey).Result(); n != 0 {
		t.Fatalf("the recovery lease was not released")
	}

	// The marker kept but most keys gone (DBSIZE far below the marked
	// size): cold as well.
	deleted := time.Now()
	keys, err := rdb.Keys(ctx, "item:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, WarmKey).Result(); n != 1 {
		t.Fatal("the marker went with the item keys")
	}
	tu.Eventually(t, 30*time.Second, func() error {
		if n := testutil.ToFloat64(svc.m.cold); n != 2 {
			return fmt.Errorf("cold count %v, want 2", n)
		}
		if m, _, _ := ReadMarker(ctx, rdb); !m.At.After(deleted) {
			return fmt.Errorf("marker %+v not set again", m)
		}
		return marker("recovered")()
	})
	for id := int64(1); id <= tu.SourceProducts; id++ {
		if n, err := rdb.Exists(ctx, redisstore.ItemKey(id)).Result(); err != nil || n != 1 {
			t.Fatalf("product %d not back in redis after the second recovery (%v)", id, err)
		}
	}

	// An operator's preheat under way (announced on main as preheat.Run
	// does from its start) is a load: the watcher waits for it and marks
	// main loaded after it, instead of recovering beside it (which would
	// load every product from the sources a second time).
	if err := rdb.Set(ctx, preheat.ActiveKey, "operator", preheat.ActiveTTL).Err(); err != nil {
		t.Fatal(err)
	}
	const waiting = "a load is under way; waiting for it"
	waited := strings.Count(logs.String(), waiting)
	if keys, err = rdb.Keys(ctx, "item:*").Result(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	tu.Eventually(t, 10*time.Second, func() error {
		if strings.Count(logs.String(), waiting) == waited {
			return fmt.Errorf("the watcher has not seen the emptied main as loading yet")
		}
		return nil
	})
	store, err := redisstore.Open(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srcClient, err := sourceclient.New("http://" + src.Addr())
	if err != nil {
		t.Fatal(err)
	}
	sum, err := preheat.Run(ctx, preheat.Config{Store: store, Source: srcClient, Run: "operator", Log: slog.New(slog.DiscardHandler)})
	if err != nil || sum.Products != tu.SourceProducts {
		t.Fatalf("operator's preheat: %+v, %v", sum, err)
	}
	// The run's announcement expires with its last instance.
	tu.Eventually(t, 10*time.Second, func() error {
		if n, err := rdb.Exists(ctx, preheat.ActiveKey).Result(); err != nil || n != 0 {
			return fmt.Errorf("%s still there (%v)", preheat.ActiveKey, err)
		}
		return nil
	})
	if n := testutil.ToFloat64(svc.m.cold); n != 2 {
		t.Fatalf("cold count %v, want still 2: the watcher recovered beside a preheat under way", n)
	}
	if n := testutil.ToFloat64(svc.m.preheated); n != 6 {
		t.Fatalf("preheated %v products, want still 6 (3 in each of the two recoveries)", n)
	}
}

func TestLeaseIsExclusiveAndReleasedByItsHolderOnly(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: tu.MustRedis(t)})
	defer rdb.Close()
	ctx := t.Context()
	a, err := acquireLease(ctx, rdb, "l", time.Second)
	if err != nil || a == nil {
		t.Fatalf("first acquire: %v %v", a, err)
	}
	if b, err := acquireLease(ctx, rdb, "l", time.Second); err != nil || b != nil {
		t.Fatalf("second acquire while held: %v %v, want none", b, err)
	}
	lctx, lost := context.WithCancelCause(ctx)
	stop := a.keep(lctx, lost)
	// renewed past its TTL
	tu.Eventually(t, 5*time.Second, func() error {
		ttl, err := rdb.PTTL(ctx, "l").Result()
		if err != nil || ttl < 700*time.Millisecond {
			return fmt.Errorf("ttl %s %v", ttl, err)
		}
		return nil
	})
	stop()
	if n, _ := rdb.Exists(ctx, "l").Result(); n != 0 {
		t.Fatal("stop did not release the lease")
	}
	// A holder whose lease was taken over learns it and deletes nothing.
	a, _ = acquireLease(ctx, rdb, "l", 600*time.Millisecond)
	rdb.Set(ctx, "l", "someone-else", time.Minute)
	lctx, lost = context.WithCancelCause(ctx)
	stop = a.keep(lctx, lost)
	tu.Eventually(t, 5*time.Second, func() error {
		if context.Cause(lctx) != errLeaseLost {
			return fmt.Errorf("cause %v", context.Cause(lctx))
		}
		return nil
	})
	stop()
	if v, _ := rdb.Get(ctx, "l").Result(); v != "someone-else" {
		t.Fatalf("the lost holder released another's lease (now %q)", v)
	}
}

func TestHotURLs(t *testing.T) {
	got := HotURLs([]string{" 127.0.0.1:9104 ", "", "http://h:1/", "127.0.0.1:9104"})
	want := []string{"http://127.0.0.1:9104", "http://h:1"}
	if !slices.Equal(got, want) {
		t.Fatalf("HotURLs = %v, want %v", got, want)
	}
}

func TestConfigValidatesColdCheck(t *testing.T) {
	base := Config{Listen: ":0", Brokers: []string{"b"}, Redis: "r", SourceURL: "http://s", Group: "g",
		BatchSize: 1, BatchWait: time.Millisecond, MaxAttempts: 1, RetryBase: time.Second, RetryMax: time.Second, Pipeline: 1}
	for name, tc := range map[string]struct {
		mod func(*Config)
		ok  bool
	}{
		"off":             {func(c *Config) {}, true},
		"on with a token": {func(c *Config) { c.ColdCheck, c.AdminToken = time.Second, "t" }, true},
		"no token":        {func(c *Config) { c.ColdCheck = time.Second }, false},
		"negative":        {func(c *Config) { c.ColdCheck = -time.Second }, false},
		"bad hot URL":     {func(c *Config) { c.HotURLs = []string{"ftp://x"} }, false},
	} {
		t.Run(name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
