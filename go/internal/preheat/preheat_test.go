package preheat_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/preheat"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

type harness struct {
	src   *sourceclient.Client
	store *redisstore.Store
}

func mustHarness(tb testing.TB) *harness {
	tb.Helper()
	base, _ := testutil.MustSourceServer(tb)
	c, err := sourceclient.New(base)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.CloseIdleConnections)
	st, err := redisstore.Open(testutil.MustRedis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return &harness{src: c, store: st}
}

func (h *harness) cfg(run string) preheat.Config {
	return preheat.Config{Store: h.store, Source: h.src, Run: run, PartitionSize: 7, Lease: time.Second, Workers: 2,
		Log: slog.New(slog.DiscardHandler)}
}

// items counts the products with a page document in Redis.
func (h *harness) items(tb testing.TB) int {
	tb.Helper()
	keys, err := h.store.Client().Keys(tb.Context(), "item:{*}").Result()
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "}") {
			n++
		}
	}
	return n
}

// claims returns every partition's claim history.
func (h *harness) claims(tb testing.TB, run string, parts int) [][]string {
	tb.Helper()
	out := make([][]string, parts)
	for i := range parts {
		l, err := h.store.Client().LRange(tb.Context(), preheat.ClaimsKey(run, i), 0, -1).Result()
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = l
	}
	return out
}

// Three instances of one run split the catalog: every product is written,
// every partition is done once, and the summaries add up.
func TestRunSplitsAcrossInstances(t *testing.T) {
	h := mustHarness(t)
	var wg sync.WaitGroup
	sums := make([]preheat.Summary, 3)
	errs := make([]error, 3)
	for i := range sums {
		wg.Go(func() { sums[i], errs[i] = preheat.Run(t.Context(), h.cfg("split")) })
	}
	wg.Wait()
	total, parts := 0, 0
	for i := range sums {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		total += sums[i].Products
		parts += sums[i].Partitions
		if sums[i].Products+sums[i].Skipped != testutil.SourceProducts {
			t.Errorf("instance %d: products %d + skipped %d, want %d", i, sums[i].Products, sums[i].Skipped, testutil.SourceProducts)
		}
	}
	wantParts := (testutil.SourceProducts + 6) / 7
	if total != testutil.SourceProducts || parts != wantParts {
		t.Errorf("instances completed %d products in %d partitions, want %d in %d", total, parts, testutil.SourceProducts, wantParts)
	}
	if n := h.items(t); n != testutil.SourceProducts {
		t.Errorf("%d page documents in Redis, want %d", n, testutil.SourceProducts)
	}
	for i, c := range h.claims(t, "split", wantParts) {
		if len(c) != 1 {
			t.Errorf("partition %d claimed %d times: %v", i, len(c), c)
		}
		b, err := h.store.Client().Get(t.Context(), preheat.DoneKey("split", i)).Bytes()
		if err != nil {
			t.Fatalf("done marker %d: %v", i, err)
		}
		var m preheat.DoneMarker
		if err := json.Unmarshal(b, &m); err != nil || m.Fence != 1 || m.Products == 0 {
			t.Errorf("done marker %d: %s (%v)", i, b, err)
		}
	}
	MustNoPreheatGoroutines(t)
	// A late instance of the finished run has nothing to do.
	sum, err := preheat.Run(t.Context(), h.cfg("split"))
	if err != nil || sum.Products != 0 || sum.Partitions != 0 {
		t.Errorf("late instance: %+v, %v", sum, err)
	}
}

// A partition whose holder crashed (its lease left to expire) is taken
// over by another instance with a higher fence; the crashed holder's
// fence cannot write any more.
func TestCrashedHolderIsTakenOver(t *testing.T) {
	h := mustHarness(t)
	cfg := h.cfg("crash")
	plan, err := preheat.BuildPlan(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rdb := h.store.Client()
	ctx := t.Context()
	// The "crashed" instance made the plan and holds partition 0 (fence 1).
	b, _ := json.Marshal(plan)
	if err := rdb.Set(ctx, preheat.PlanKey("crash"), b, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	prefix := preheat.KeyPrefix("crash")
	if err := rdb.Set(ctx, prefix+"lease:0", "crashed", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, prefix+"fence:0", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.RPush(ctx, preheat.ClaimsKey("crash", 0), "crashed 1")
	start := time.Now()
	sum, err := preheat.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Products != testutil.SourceProducts {
		t.Errorf("took over %d products, want %d", sum.Products, testutil.SourceProducts)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("finished after %s: the crashed holder's lease (1s) was not waited for", el)
	}
	c := h.claims(t, "crash", 1)[0]
	if len(c) != 2 || !strings.HasSuffix(c[1], " 2") {
		t.Errorf("partition 0's claims: %v, want the crashed one's then fence 2", c)
	}
	stale, err := h.store.Fenced(prefix+"fence:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	id := plan.Partitions[0][0]
	_, err = stale.Put(ctx, redisstore.Entry{Key: redisstore.ItemKey(id), Version: 1 << 40, Value: fmt.Appendf(nil, `{"version":%d}`, int64(1)<<40)})
	if !errors.Is(err, redisstore.ErrFenced) {
		t.Errorf("the crashed holder's fence still writes: %v", err)
	}
}

// A lease taken over while its holder works stops the holder's writes at
// once: it drops the partition (nothing of it written), logs it, and goes
// on with the others.
func TestLeaseLostDropsPartition(t *testing.T) {
	h := mustHarness(t)
	cfg := h.cfg("lost")
	cfg.Rate = 20 // a batch of 7 every 350ms: time to take the lease over before the first write
	cfg.Workers = 1
	var logs testutil.SyncBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	ctx := t.Context()
	done := make(chan struct{})
	var sum preheat.Summary
	var runErr error
	go func() {
		defer close(done)
		sum, runErr = preheat.Run(ctx, cfg)
	}()
	rdb := h.store.Client()
	prefix := preheat.KeyPrefix("lost")
	testutil.Eventually(t, 5*time.Second, func() error {
		if rdb.Exists(ctx, prefix+"lease:0").Val() != 1 {
			return errors.New("partition 0 not claimed yet")
		}
		return nil
	})
	// Another instance takes over, completes the partition and lets go.
	rdb.Set(ctx, prefix+"lease:0", "thief", 0)
	rdb.Incr(ctx, prefix+"fence:0")
	rdb.Set(ctx, preheat.DoneKey("lost", 0), `{"owner":"thief"}`, time.Hour)
	rdb.Del(ctx, prefix+"lease:0")
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not end")
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	if !strings.Contains(logs.String(), "lease lost") {
		t.Errorf("the lost lease is not logged:\n%s", logs.String())
	}
	if sum.Partitions != 7 || sum.Products != testutil.SourceProducts-7 {
		t.Errorf("old holder: %+v, want the 7 other partitions", sum)
	}
	plan, err := preheat.ReadPlan(ctx, rdb, "lost")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range plan.Partitions[0] {
		if b, _ := h.store.Get(ctx, redisstore.ItemKey(id)); b != nil {
			t.Errorf("product %d of the lost partition written by its old holder", id)
		}
	}
}

// The order starts with the hot service's hour list, then its day list,
// then the rest of the catalog; the top pages are pushed to every app node
// with the token, and a node that fails is not fatal.
func TestHotOrderAndPush(t *testing.T) {
	h := mustHarness(t)
	hotSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/top" {
			http.NotFound(w, r)
			return
		}
		top := `[{"id":42,"count":9},{"id":7,"count":5},{"id":999999,"count":4}]`
		if r.URL.Query().Get("period") == "day" {
			top = `[{"id":7,"count":50},{"id":13,"count":40}]`
		}
		fmt.Fprintf(w, `{"period":%q,"top":%s}`, r.URL.Query().Get("period"), top)
	}))
	defer hotSrv.Close()
	var pushed atomic.Int64
	var badToken atomic.Bool
	node := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			badToken.Store(true)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/_admin/page/") {
			pushed.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer node.Close()
	down := "http://127.0.0.1:1" // refused
	cfg := h.cfg("hot")
	cfg.HotURLs = []string{down, hotSrv.URL}
	cfg.AppNodes = []string{node.URL, down}
	cfg.AdminToken = "tok"
	cfg.PushTop = 10
	plan, err := preheat.BuildPlan(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Partitions[0][:4]; fmt.Sprint(got) != "[42 7 13 1]" {
		t.Errorf("plan starts %v, want [42 7 13 1]", got)
	}
	if plan.Hot != 3 || plan.Total != testutil.SourceProducts {
		t.Errorf("plan: hot %d total %d", plan.Hot, plan.Total)
	}
	sum, err := preheat.Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Pushed != 10 || pushed.Load() != 10 || badToken.Load() {
		t.Errorf("pushed %d (node saw %d, bad token %v), want 10", sum.Pushed, pushed.Load(), badToken.Load())
	}
}

// Only preheats the given ids, in their order.
func TestOnly(t *testing.T) {
	h := mustHarness(t)
	cfg := h.cfg("only")
	cfg.Only = []int64{5, 3, 5, 9}
	sum, err := preheat.Run(t.Context(), cfg)
	if err != nil || sum.Products != 3 {
		t.Fatalf("%+v %v", sum, err)
	}
	if n := h.items(t); n != 3 {
		t.Errorf("%d documents, want 3", n)
	}
}

// A run of the whole catalog announces itself on main (ActiveKey, with
// its run name, expiring ActiveTTL after its end); one bounded by a rate
// or to some ids does not, so that it never holds off the sync service's
// recovery of a cold main.
func TestWholeCatalogRunAnnouncesItself(t *testing.T) {
	h := mustHarness(t)
	run := "announced"
	sum, err := preheat.Run(t.Context(), h.cfg(run))
	if err != nil || sum.Products == 0 {
		t.Fatalf("%+v %v", sum, err)
	}
	v, err := h.store.Client().Get(t.Context(), preheat.ActiveKey).Result()
	if err != nil || !strings.HasPrefix(v, run+" ") {
		t.Fatalf("%s = %q (%v) right after the run, want its run name first", preheat.ActiveKey, v, err)
	}
	if ttl := h.store.Client().PTTL(t.Context(), preheat.ActiveKey).Val(); ttl <= 0 || ttl > preheat.ActiveTTL {
		t.Errorf("%s expires in %s, want within %s", preheat.ActiveKey, ttl, preheat.ActiveTTL)
	}
	for name, cfg := range map[string]preheat.Config{"rate": {Rate: 100}, "only": {Only: []int64{1, 2}}} {
		if preheat.Announces(cfg) {
			t.Errorf("a run bounded by %s announces itself", name)
		}
	}
	if !preheat.Announces(preheat.Config{}) {
		t.Error("a whole-catalog run does not announce itself")
	}
}

// More workers than the batch bulkhead admits would fail their batches
// with "max concurrency" halfway: the run refuses at the start, saying
// what to change, and writes nothing.
func TestMoreWorkersThanTheBulkheadRefused(t *testing.T) {
	h := mustHarness(t)
	cfg := h.cfg("workers")
	for _, c := range preheat.Commands() {
		if c.Name == preheat.CmdBatch {
			cfg.Workers = c.MaxConcurrent + 1
		}
	}
	_, err := preheat.Run(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "max_concurrent") || !strings.Contains(err.Error(), preheat.CmdBatch) {
		t.Fatalf("run with %d workers: %v, want a refusal naming %s's max_concurrent", cfg.Workers, err, preheat.CmdBatch)
	}
	if n := h.items(t); n != 0 {
		t.Errorf("%d documents written by a refused run", n)
	}
}

// Preheat never replaces a newer version: a document newer than the
// source's stays.
func TestNeverOverwritesNewer(t *testing.T) {
	h := mustHarness(t)
	key := redisstore.ItemKey(1)
	newer := fmt.Appendf(nil, `{"version":%d,"id":1,"name":"newer"}`, int64(1)<<50)
	if err := h.store.Client().Set(t.Context(), key, newer, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := preheat.Run(t.Context(), h.cfg("newer")); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.store.Get(t.Context(), key); !bytes.Equal(got, newer) {
		t.Errorf("newer document replaced: %s", got)
	}
}

func TestProgressAndUnreachableRedis(t *testing.T) {
	h := mustHarness(t)
	var out testutil.SyncBuffer
	cfg := h.cfg("progress")
	cfg.Progress = &out
	cfg.Rate = 40 // ~1.25 s for 50 products: at least one progress line
	if _, err := preheat.Run(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "/50 products") || !strings.Contains(s, "ETA") || !strings.Contains(s, "preheat: finished 50/50") {
		t.Errorf("progress output:\n%s", s)
	}

	st, err := redisstore.Open("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg = h.cfg("x")
	cfg.Store = st
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := preheat.Run(ctx, cfg); !errors.Is(err, preheat.ErrRedisUnreachable) || !strings.Contains(err.Error(), "redis main unreachable") {
		t.Errorf("unreachable Redis: %v", err)
	}
}

// Cancelling a run releases its leases at once.
func TestCancelReleasesLeases(t *testing.T) {
	h := mustHarness(t)
	cfg := h.cfg("cancel")
	cfg.Rate = 10
	cfg.Lease = time.Minute
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := preheat.Run(ctx, cfg); done <- err }()
	rdb := h.store.Client()
	prefix := preheat.KeyPrefix("cancel")
	testutil.Eventually(t, 5*time.Second, func() error {
		if !(rdb.Exists(t.Context(), prefix+"lease:0").Val() == 1) {
			return errors.New("a lease held: not yet")
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
	if keys := rdb.Keys(t.Context(), prefix+"lease:*").Val(); len(keys) != 0 {
		t.Errorf("leases left after a stop: %v", keys)
	}
	MustNoPreheatGoroutines(t)
}

// MustNoPreheatGoroutines fails unless every goroutine preheat started has
// ended (Run owns and stops all of them before it returns).
func MustNoPreheatGoroutines(tb testing.TB) {
	tb.Helper()
	testutil.Eventually(tb, 5*time.Second, func() error {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "internal/preheat.") && !strings.Contains(g, "preheat_test.") {
				return fmt.Errorf("a preheat goroutine is left:\n%s", g)
			}
		}
		return nil
	})
}
