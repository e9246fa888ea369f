package source_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/source"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// MustFastSource serves a source service whose fast path writes to the
// Redis at redisAddr, and returns its base URL and metrics registry.
func MustFastSource(tb testing.TB, redisAddr string) (string, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	svc, err := source.Open(tb.Context(), source.Config{
		Listen:       "127.0.0.1:0",
		DBPath:       filepath.Join(tb.TempDir(), "catalog.db"),
		Brokers:      []string{testutil.MustKafka(tb)},
		AdminToken:   token,
		SeedProducts: seedProducts,
		SeedShops:    seedShops,
		Redis:        redisAddr,
	}, slog.New(slog.DiscardHandler), httpapi.Telemetry{Registry: reg})
	if err != nil {
		tb.Fatalf("open source service: %v", err)
	}
	tb.Cleanup(func() { svc.Close() })
	srv := httptest.NewServer(svc.Handler())
	tb.Cleanup(srv.Close)
	return srv.URL, reg
}

// MustRedisStore opens a Store on the Redis at addr.
func MustRedisStore(tb testing.TB, addr string) *redisstore.Store {
	tb.Helper()
	st, err := redisstore.Open(addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// fastPathCounts reads detailpage_source_fastpath_writes_total by result.
func fastPathCounts(tb testing.TB, reg *prometheus.Registry) map[string]float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "detailpage_source_fastpath_writes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// editPrice PUTs a new amount for id's price and returns the stored record.
func editPrice(tb testing.TB, base string, id int64, amount string) catalog.Price {
	tb.Helper()
	body, _ := json.Marshal(catalog.Price{Amount: amount, List: "9999.00", Currency: "CNY"})
	r := MustStatus(tb, http.StatusOK, http.MethodPut, fmt.Sprintf("%s/api/prices/%d", base, id), "", body)
	return mustDecode[catalog.Price](tb, r.Body)
}

func realtimeOf(tb testing.TB, st *redisstore.Store, id int64, d catalog.Dimension) (redisstore.RealtimeValue, bool) {
	tb.Helper()
	vals, err := st.Realtime(tb.Context(), []int64{id})
	if err != nil {
		tb.Fatal(err)
	}
	v, ok := vals[id][d]
	return v, ok
}

// streamVersions lists the dp:rt entries of id and d, as versions.
func streamVersions(tb testing.TB, st *redisstore.Store, id int64, d catalog.Dimension) []int64 {
	tb.Helper()
	msgs, err := st.Client().XRange(tb.Context(), redisstore.RealtimeStream, "-", "+").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var out []int64
	for _, m := range msgs {
		if m.Values["id"] == strconv.FormatInt(id, 10) && m.Values["dim"] == string(d) {
			v, _ := strconv.ParseInt(fmt.Sprint(m.Values["v"]), 10, 64)
			out = append(out, v)
		}
	}
	return out
}

// An edit's committed price and stock are in their realtime keys, with a
// stream entry each, by the time the edit answers (no polling: the write
// is part of the request).
func TestFastPathWritesEdit(t *testing.T) {
	t.Parallel()
	addr := testutil.MustRedis(t)
	base, reg := MustFastSource(t, addr)
	st := MustRedisStore(t, addr)

	before := time.Now()
	stored := editPrice(t, base, 7, "1234.50")
	v, ok := realtimeOf(t, st, 7, catalog.DimPrice)
	if !ok {
		t.Fatal("no realtime price after the edit's 200")
	}
	got := mustDecode[catalog.Price](t, v.Record)
	if got != stored || v.Version != stored.Version {
		t.Errorf("realtime price %+v (version %d), want the committed %+v", got, v.Version, stored)
	}
	if v.At.Before(before.Add(-time.Second)) || v.At.After(time.Now().Add(time.Second)) {
		t.Errorf("written at %v, want about now", v.At)
	}
	if vs := streamVersions(t, st, 7, catalog.DimPrice); len(vs) != 1 || vs[0] != stored.Version {
		t.Errorf("stream entries of 7/price: %v, want [%d]", vs, stored.Version)
	}

	body, _ := json.Marshal(catalog.Stock{Available: 3})
	stock := mustDecode[catalog.Stock](t, MustStatus(t, http.StatusOK, http.MethodPut, base+"/api/stock/7", "", body).Body)
	if v, ok := realtimeOf(t, st, 7, catalog.DimStock); !ok || v.Version != stock.Version || mustDecode[catalog.Stock](t, v.Record).Available != 3 {
		t.Errorf("realtime stock %+v %v, want available 3 at version %d", v, ok, stock.Version)
	}

	// other kinds have no realtime value
	prod := mustDecode[catalog.Product](t, MustStatus(t, 200, http.MethodGet, base+"/api/products/7", "", nil).Body)
	body, _ = json.Marshal(prod)
	MustStatus(t, http.StatusOK, http.MethodPut, base+"/api/products/7", "", body)
	if n := st.Client().XLen(t.Context(), redisstore.RealtimeStream).Val(); n != 2 {
		t.Errorf("%d stream entries, want 2 (price and stock only)", n)
	}
	if c := fastPathCounts(t, reg); c["ok"] != 2 || c["stale"] != 0 || c["error"] != 0 {
		t.Errorf("fast path counts %v, want ok 2", c)
	}
}

// Whatever order concurrent edits' fast-path writes reach Redis in, the
// realtime key ends at the newest committed version, never an older one,
// and a version already superseded in Redis is counted stale.
func TestFastPathOlderNeverReplacesNewer(t *testing.T) {
	t.Parallel()
	addr := testutil.MustRedis(t)
	base, reg := MustFastSource(t, addr)
	st := MustRedisStore(t, addr)

	const edits = 30
	var wg sync.WaitGroup
	for i := range edits {
		wg.Go(func() { editPrice(t, base, 3, fmt.Sprintf("%d.00", 100+i)) })
	}
	wg.Wait()
	committed := mustDecode[catalog.Price](t, MustStatus(t, 200, http.MethodGet, base+"/api/prices/3", "", nil).Body)
	v, ok := realtimeOf(t, st, 3, catalog.DimPrice)
	if !ok || v.Version != committed.Version || mustDecode[catalog.Price](t, v.Record) != committed {
		t.Fatalf("realtime price %s (version %d), want the committed %+v", v.Record, v.Version, committed)
	}
	vs := streamVersions(t, st, 3, catalog.DimPrice)
	for i := 1; i < len(vs); i++ {
		if vs[i] <= vs[i-1] {
			t.Errorf("stream versions not ascending: %v", vs)
			break
		}
	}
	c := fastPathCounts(t, reg)
	if c["ok"]+c["stale"] != edits || c["error"] != 0 || int(c["ok"]) != len(vs) {
		t.Errorf("fast path counts %v and %d stream entries for %d edits", c, len(vs), edits)
	}

	// A newer value already in Redis stays; the edit is counted stale.
	newer := redisstore.RealtimeRecord{ID: 3, Dim: catalog.DimPrice, Version: 1 << 50,
		JSON: fmt.Appendf(nil, `{"version":%d,"product_id":3,"amount":"1.00","list":"1.00","currency":"CNY"}`, int64(1<<50))}
	if n, err := st.PutRealtime(t.Context(), time.Now(), newer); err != nil || n != 1 {
		t.Fatalf("put newer: %d %v", n, err)
	}
	staleBefore := fastPathCounts(t, reg)["stale"]
	editPrice(t, base, 3, "2.00")
	if v, _ := realtimeOf(t, st, 3, catalog.DimPrice); v.Version != 1<<50 {
		t.Errorf("an older edit replaced version %d with %d", int64(1<<50), v.Version)
	}
	if got := fastPathCounts(t, reg)["stale"]; got != staleBefore+1 {
		t.Errorf("stale count %v, want %v", got, staleBefore+1)
	}
}

// Redis down (nothing listening) or not answering (writes paused): the
// edit is committed and answers 200 within the fast path's timeout, and
// the failure is counted.
func TestFastPathRedisFailureKeepsEdit(t *testing.T) {
	t.Parallel()
	t.Run("down", func(t *testing.T) {
		t.Parallel()
		base, reg := MustFastSource(t, "127.0.0.1:"+strconv.Itoa(testutil.FreePort(t)))
		stored := editPrice(t, base, 5, "55.55")
		got := mustDecode[catalog.Price](t, MustStatus(t, 200, http.MethodGet, base+"/api/prices/5", "", nil).Body)
		if got != stored || got.Amount != "55.55" {
			t.Errorf("after the edit the source has %+v, want %+v", got, stored)
		}
		if c := fastPathCounts(t, reg); c["error"] != 1 || c["ok"] != 0 {
			t.Errorf("fast path counts %v, want error 1", c)
		}
	})
	t.Run("paused", func(t *testing.T) {
		t.Parallel()
		addr := testutil.MustRedis(t)
		base, reg := MustFastSource(t, addr)
		st := MustRedisStore(t, addr)
		editPrice(t, base, 6, "60.00") // connects the pool
		// CLIENT PAUSE WRITE holds every write, scripts included, like a
		// main that stopped answering.
		if err := st.Client().Do(t.Context(), "CLIENT", "PAUSE", "3000", "WRITE").Err(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		editPrice(t, base, 6, "61.00")
		took := time.Since(start)
		t.Logf("edit with Redis paused answered in %v", took)
		// the timeout plus the edit's own commit, with room for a loaded machine
		if limit := source.FastPathTimeout + 750*time.Millisecond; took > limit {
			t.Errorf("edit took %v with Redis paused, want under %v", took, limit)
		}
		if c := fastPathCounts(t, reg); c["error"] != 1 || c["ok"] != 1 {
			t.Errorf("fast path counts %v, want ok 1 and error 1", c)
		}
		st.Client().Do(t.Context(), "CLIENT", "UNPAUSE")
	})
}
