package direct

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

type harness struct {
	svc   *Service
	src   string
	clock *fakeClock
	r     atomic.Uint64 // math.Float64bits of what rand returns
}

// MustService opens a direct-data service over a real Redis and an
// in-process source service (testutil.SourceProducts products), with an
// injected clock and rand, and waits for its Bloom filter.
func MustService(tb testing.TB, edit func(*Config)) *harness {
	tb.Helper()
	src, _ := testutil.MustSourceServer(tb)
	cfg := Defaults()
	_, file, _, _ := runtime.Caller(0)
	cfg.Listen, cfg.Redis, cfg.SourceURL = "127.0.0.1:0", testutil.MustRedis(tb), src
	cfg.TemplatesDir = filepath.Join(filepath.Dir(file), "..", "..", "..", "templates")
	if edit != nil {
		edit(&cfg)
	}
	svc, err := Open(cfg, slog.New(slog.DiscardHandler), httpapi.Telemetry{Registry: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.Close() })
	h := &harness{svc: svc, src: src, clock: &fakeClock{}}
	h.clock.ns.Store(time.Unix(1_000_000, 0).UnixNano())
	h.setRand(0.999999)
	svc.now = h.clock.now
	svc.rand = func() float64 { return mathFloat(h.r.Load()) }
	svc.Start(tb.Context())
	if cfg.Bloom {
		testutil.Eventually(tb, 10*time.Second, func() error {
			if !svc.filter.ready.Load() {
				return errors.New("bloom filter not ready")
			}
			return nil
		})
	}
	return h
}

func (h *harness) setRand(r float64) { h.r.Store(floatBits(r)) }

// sourceStats resets (DELETE) or reads (GET) the source's per-service stats.
func (h *harness) sourceStats(tb testing.TB, method string) map[string]map[string]int64 {
	tb.Helper()
	return testutil.MustSourceStats(tb, h.src, method)
}

func (h *harness) fault(tb testing.TB, service string, latencyMS int) {
	tb.Helper()
	b, _ := json.Marshal(map[string]any{"service": service, "latency_ms": latencyMS})
	req, _ := http.NewRequest(http.MethodPost, h.src+"/_admin/faults", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+testutil.SourceToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("inject fault: %s", resp.Status)
	}
}

func TestBloomRefusesUnknownIDsWithoutTheSource(t *testing.T) {
	h := MustService(t, nil)
	h.sourceStats(t, http.MethodDelete)
	for id := int64(testutil.SourceProducts + 1000); id < testutil.SourceProducts+1100; id++ {
		_, level, err := h.svc.Item(t.Context(), id)
		if !errors.Is(err, catalog.ErrNotFound) || level != "bloom" {
			t.Fatalf("id %d: level %q err %v, want refused by the bloom filter", id, level, err)
		}
	}
	for name, st := range h.sourceStats(t, http.MethodGet) {
		if st["lookups"] != 0 {
			t.Errorf("source %s saw %d lookups, want 0", name, st["lookups"])
		}
	}
	// Products the filter holds are found.
	if _, _, err := h.svc.Item(t.Context(), 7); err != nil {
		t.Fatalf("existing id 7: %v", err)
	}
	// A product created later is learnt from the invalidation stream.
	h.svc.applyInvalidation("p:900001:5,s:3:9")
	if !h.svc.filter.MayContain(900001) {
		t.Errorf("the filter did not learn a product from the invalidation stream")
	}
}

// A hot id that expires is refreshed once in the background while every
// request gets the stale copy at once; XFetch refreshes it before expiry.
func TestStaleAndXFetchRefreshOncePerID(t *testing.T) {
	h := MustService(t, nil)
	const id = 11
	h.sourceStats(t, http.MethodDelete)
	doc, level, err := h.svc.Item(t.Context(), id)
	if err != nil || level != "source" {
		t.Fatalf("first lookup: level %q err %v, want a rebuild from source", level, err)
	}
	if n := h.sourceStats(t, http.MethodGet)["stock"]["lookups"]; n != 1 {
		t.Fatalf("stock lookups after one rebuild = %d, want 1", n)
	}

	// Past expiry: 200 concurrent requests all get the stale copy, one
	// background refresh runs (a Redis hit: the rebuild wrote it back).
	h.clock.advance(time.Minute)
	var wg sync.WaitGroup
	var stale atomic.Int64
	took := make([]time.Duration, 200)
	for i := range took {
		wg.Go(func() {
			start := time.Now()
			defer func() { took[i] = time.Since(start) }()
			got, level, err := h.svc.Item(t.Context(), id)
			// stale until the refresh lands, then local
			if err != nil || (level != "stale" && level != "local") || !bytes.Equal(got, doc) {
				t.Errorf("expired entry: level %q err %v, want the stale copy", level, err)
			}
			if level == "stale" {
				stale.Add(1)
			}
		})
	}
	wg.Wait()
	if stale.Load() == 0 {
		t.Errorf("no request got the stale copy")
	}
	// The copy is in memory: a request waits for nothing but the CPU. The
	// bound is generous (a loaded machine under -race); the figure is logged.
	slices.Sort(took)
	t.Logf("stale copy to 200 concurrent requests: p50 %s, max %s", took[100], took[199])
	if took[199] > time.Second {
		t.Errorf("a request for the stale copy took %s", took[199])
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, level, _ := h.svc.Item(t.Context(), id); level != "local" {
			return fmt.Errorf("level %q after the refresh, want local", level)
		}
		return nil
	})
	if n := counterValue(t, h.svc.refreshes.WithLabelValues("stale")); n != 1 {
		t.Errorf("stale refreshes = %v, want 1", n)
	}

	// Just before expiry with a small r: XFetch refreshes early, once.
	e, _ := h.svc.items.Peek(id)
	h.clock.ns.Store(e.expires.Add(-time.Millisecond).UnixNano())
	h.setRand(1e-12)
	for range 50 {
		if _, level, err := h.svc.Item(t.Context(), id); err != nil || level != "local" {
			t.Fatalf("level %q err %v, want the local entry while it refreshes", level, err)
		}
	}
	// A refresh that failed (a starved -race process's Redis or source call
	// timing out) is tried again after refreshRetry of the service's clock,
	// which this test holds still: the retry is let through by hand, and
	// counted.
	retries := 0
	testutil.Eventually(t, 10*time.Second, func() error {
		if e2, _ := h.svc.items.Peek(id); e2 == e {
			if e.retryAt.Load() != 0 {
				retries++
				e.retryAt.Store(0)
				h.svc.Item(t.Context(), id)
			}
			return errors.New("entry not refreshed yet")
		}
		return nil
	})
	if n := counterValue(t, h.svc.refreshes.WithLabelValues("early")); n < 1 || n > float64(2+retries) {
		t.Errorf("early refreshes = %v after %d failed, want %d (one more if the first finished in between)", n, retries, 1+retries)
	}
	if n := h.sourceStats(t, http.MethodGet)["stock"]["lookups"]; n != 1 {
		t.Errorf("stock lookups = %d, want still 1: refreshes read Redis", n)
	}
}

// Beyond the rebuild limit a request fails fast instead of queueing.
func TestRebuildLimitFailsFast(t *testing.T) {
	h := MustService(t, func(c *Config) {
		c.RebuildConcurrency = 1
		// The stock service takes 2 s, within every timeout on the way.
		c.Commands = []resilience.Command{
			{Name: sourceclient.CommandName("stock", "get"), Timeout: 5 * time.Second},
			{Name: sourceclient.CommandName("stock", "batch"), Timeout: 5 * time.Second},
		}
	})
	h.fault(t, "stock", 2000)
	done := make(chan error, 1)
	go func() {
		_, _, err := h.svc.Item(t.Context(), 21)
		done <- err
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := h.sourceStats(t, http.MethodGet)["stock"]["in_flight"]; n != 1 {
			return fmt.Errorf("stock in flight = %d, want the rebuild of 21 waiting there", n)
		}
		return nil
	})
	// Over HTTP the rejection is a 503 with Retry-After, JSON and page alike.
	for _, path := range []string{"/api/item/23", "/item/24.html"} {
		w := httptest.NewRecorder()
		h.svc.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
			t.Errorf("GET %s: %d Retry-After %q, want 503 with Retry-After", path, w.Code, w.Header().Get("Retry-After"))
		}
	}
	start := time.Now()
	_, level, err := h.svc.Item(t.Context(), 22)
	if level != "rejected" || !errors.Is(err, errRejected) {
		t.Errorf("level %q err %v, want rejected while 21 rebuilds", level, err)
	}
	// At once: before the rebuild holding the only slot (2 s in the slow
	// stock service) is done, not after it.
	select {
	case <-done:
		t.Errorf("the rejection came after the rebuild of 21 finished (%s): it waited for the slot", time.Since(start))
		return
	default:
	}
	t.Logf("rejected in %s while 21 rebuilds", time.Since(start))
	if err := <-done; err != nil {
		t.Errorf("the rebuild within the limit failed: %v", err)
	}
}

// Every handler answers through httpapi's one error mapping: bad input is a
// 400 with the reason, a missing product a 404, a page URL that names no
// product the 404 page.
func TestHandlerStatuses(t *testing.T) {
	h := MustService(t, nil)
	missing := fmt.Sprint(testutil.SourceProducts + 500)
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/api/item/7", 200, `"version"`},
		{"/api/item/abc", 400, "want 1 to 18 digits"},
		{"/api/item/0", 400, "positive"},
		{"/api/item/" + missing, 404, "not found"},
		{"/item/7.html", 200, "<html"},
		{"/item/" + missing + ".html", 404, string(h.svc.renderer.NotFound())},
		{"/item/abc.html", 404, string(h.svc.renderer.NotFound())},
		{"/item/7.htm", 404, string(h.svc.renderer.NotFound())},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.svc.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, tc.path, nil))
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("%d %.200q, want %d with %.80q", w.Code, w.Body, tc.status, tc.body)
			}
		})
	}
}

// A command has one configuration in a process: a second service with
// other settings for it fails at start, naming the setting; the same
// settings are fine, and once the first closes the name is free.
func TestOpenRejectsASecondConfiguration(t *testing.T) {
	h := MustService(t, nil)
	open := func(edit func(*Config)) (*Service, error) {
		cfg := h.svc.cfg
		edit(&cfg)
		return Open(cfg, slog.New(slog.DiscardHandler), httpapi.Telemetry{Registry: prometheus.NewRegistry()})
	}
	_, err := open(func(c *Config) { c.RebuildConcurrency = 3 })
	if want := fmt.Sprintf("direct.rebuild: configured twice differently: max_concurrent %d, then 3", h.svc.cfg.RebuildConcurrency); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want the conflict on direct.rebuild named", err)
	}
	_, err = open(func(c *Config) {
		c.Commands = []resilience.Command{{Name: RedisGetCommand, Timeout: time.Second}}
	})
	if err == nil || !strings.Contains(err.Error(), "direct.redis.get: configured twice differently") {
		t.Fatalf("err = %v, want the conflict on direct.redis.get", err)
	}
	same, err := open(func(*Config) {})
	if err != nil {
		t.Fatalf("the same settings again: %v", err)
	}
	same.Close()
	h.svc.Close()
	other, err := open(func(c *Config) { c.RebuildConcurrency = 3 })
	if err != nil {
		t.Fatalf("after both closed: %v", err)
	}
	other.Close()
}

func mathFloat(b uint64) float64 { return math.Float64frombits(b) }
func floatBits(f float64) uint64 { return math.Float64bits(f) }

func counterValue(tb testing.TB, c prometheus.Collector) float64 {
	tb.Helper()
	return promtest.ToFloat64(c)
}
