package pagedoc_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/pagedoc"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

type harness struct {
	src   string
	store *redisstore.Store
	asm   *pagedoc.Assembler
}

// MustAssembler builds an Assembler over a real Redis and an in-process
// source service of testutil.SourceProducts products.
func MustAssembler(tb testing.TB) *harness {
	tb.Helper()
	src, _ := testutil.MustSourceServer(tb)
	c, err := sourceclient.New(src)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.CloseIdleConnections)
	store, err := redisstore.Open(testutil.MustRedis(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	return &harness{src: src, store: store, asm: pagedoc.New(c, store)}
}

// lookups resets (DELETE) or reads (GET) the source's ids asked for, per
// service.
func (h *harness) lookups(tb testing.TB, method string) map[string]int64 {
	tb.Helper()
	out := map[string]int64{}
	for name, st := range testutil.MustSourceStats(tb, h.src, method) {
		out[name] = st["lookups"]
	}
	return out
}

// recommended returns the ids the products ids recommend, from the source.
func (h *harness) recommended(tb testing.TB, ids []int64) []int64 {
	tb.Helper()
	c, _ := sourceclient.New(h.src)
	recs, err := sourceclient.Batch[catalog.Recommendations](tb.Context(), c, catalog.KindRecommend.Name, ids)
	if err != nil {
		tb.Fatal(err)
	}
	var out []int64
	for _, r := range recs {
		out = append(out, r.IDs...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func allIDs() []int64 {
	all := make([]int64, testutil.SourceProducts)
	for i := range all {
		all[i] = int64(i + 1)
	}
	return all
}

func union(a, b []int64) []int64 {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// One aggregation asks each source for a given id at most once: a product
// that is rebuilt and also recommended by another product of the batch
// (its base and price are needed twice, and Redis has neither yet) is
// fetched once, in a large batch and in a small collapsed one alike.
func TestProductsAskEachSourceOncePerID(t *testing.T) {
	all := allIDs()
	tests := []struct {
		name string
		ids  []int64
	}{
		{"batch of every product", all},
		{"collapsed batch of three", []int64{3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := MustAssembler(t)
			recs := h.recommended(t, tt.ids)
			shared := 0
			for _, id := range recs {
				if slices.Contains(tt.ids, id) {
					shared++
				}
			}
			if tt.name == "batch of every product" && shared == 0 {
				t.Fatalf("no product of the batch is recommended by another: the test shows nothing")
			}
			h.lookups(t, http.MethodDelete)
			res, err := h.asm.Products(t.Context(), tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Docs) != len(tt.ids) {
				t.Fatalf("%d documents for %d ids", len(res.Docs), len(tt.ids))
			}
			got := h.lookups(t, http.MethodGet)
			t.Logf("%d products recommending %d products (%d of them in the batch): lookups %v", len(tt.ids), len(recs), shared, got)
			want := map[string]int64{
				"product": int64(len(union(tt.ids, recs))), "price": int64(len(union(tt.ids, recs))),
				"description": int64(len(tt.ids)), "spec": int64(len(tt.ids)), "stock": int64(len(tt.ids)),
				"recommendation": int64(len(tt.ids)), "shop": 0,
			}
			for name, n := range want {
				if got[name] != n {
					t.Errorf("%s: %d ids asked for, want %d (each id once)", name, got[name], n)
				}
			}
		})
	}
}

// Apply re-reads what Redis holds after writing the changed dimensions;
// when a dimension is missing there (a lost segment, never filled) it
// rebuilds the product from the source — without asking again for the
// dimension it has just fetched.
func TestApplyReReadAsksOncePerID(t *testing.T) {
	h := MustAssembler(t)
	const id = 7
	if _, err := h.asm.Products(t.Context(), allIDs()); err != nil { // Redis holds every product
		t.Fatal(err)
	}
	if err := h.store.Client().Del(t.Context(), redisstore.DimKey(id, catalog.DimDescription)).Err(); err != nil {
		t.Fatal(err)
	}
	h.lookups(t, http.MethodDelete)
	res, err := h.asm.Apply(t.Context(), map[int64][]catalog.Dimension{id: {catalog.DimPrice}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Docs[id]; !ok {
		t.Fatalf("no document for %d", id)
	}
	got := h.lookups(t, http.MethodGet)
	t.Logf("lookups %v", got)
	for _, k := range catalog.ProductKinds {
		if got[k.Name] != 1 && k != catalog.KindProduct {
			t.Errorf("%s: %d lookups of %d, want 1", k.Name, got[k.Name], id)
		}
	}
	// The recommended products' bases are in Redis: the product service is
	// asked for the product itself only.
	if got["product"] != 1 {
		t.Errorf("product: %d lookups, want 1", got["product"])
	}
	vals, err := h.store.ProductValues(t.Context(), []int64{id})
	if err != nil {
		t.Fatal(err)
	}
	if vals[id].Dims[catalog.DimDescription] == nil {
		t.Errorf("the rebuild did not write the missing description back")
	}
}

// An edit of only the stock or only the price patches the page in Redis:
// byte for byte the page a full rebuild from the stored dimensions makes,
// with the version summed again; an edit that is not newer changes nothing.
func TestApplyPatchesLikeARebuild(t *testing.T) {
	h := MustAssembler(t)
	at := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	h.asm.Now = func() time.Time { return at }
	const id = 11
	if _, err := h.asm.Products(t.Context(), allIDs()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dim  catalog.Dimension
		path string
		body string
	}{
		{catalog.DimStock, "/api/stock/11", `{"available":7}`},
		{catalog.DimStock, "/api/stock/11", `{"available":8}`}, // the same length: patched in place
		{catalog.DimPrice, "/api/prices/11", `{"amount":"12.50","list":"15.00","currency":"HKD"}`},
		{catalog.DimStock, "/api/stock/11", `{"available":0}`},
	} {
		t.Run(string(tc.dim), func(t *testing.T) {
			MustPut(t, h.src+tc.path, tc.body)
			at = at.Add(time.Minute)
			res, err := h.asm.Apply(t.Context(), map[int64][]catalog.Dimension{id: {tc.dim}})
			if err != nil {
				t.Fatal(err)
			}
			if _, built := res.Docs[id]; built || res.Written != 1 {
				t.Fatalf("Apply built %v, wrote %d: want the page patched (1 page written)", built, res.Written)
			}
			patched := MustValue(t, h, redisstore.ItemKey(id))
			if strings.Contains(tc.body, `8}`) {
				stats, err := h.store.Client().Info(t.Context(), "commandstats").Result()
				if err != nil || !strings.Contains(stats, "cmdstat_setrange:calls=3,") {
					t.Errorf("an edit keeping the page's length was not patched in place (3 SETRANGE): %v", err)
				}
			}
			// The same page rebuilt from the stored dimensions: drop it and
			// apply the (now not newer) edit again.
			if err := h.store.Client().Del(t.Context(), redisstore.ItemKey(id)).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := h.asm.Apply(t.Context(), map[int64][]catalog.Dimension{id: {tc.dim}}); err != nil {
				t.Fatal(err)
			}
			if rebuilt := MustValue(t, h, redisstore.ItemKey(id)); string(rebuilt) != string(patched) {
				t.Fatalf("patched page differs from the rebuilt one:\n%s\n%s", patched, rebuilt)
			}
			var doc catalog.PageDoc
			if err := json.Unmarshal(patched, &doc); err != nil {
				t.Fatal(err)
			}
			vals, err := h.store.ProductVersions(t.Context(), []int64{id})
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, v := range vals[id].Dims {
				sum += v
			}
			if doc.Version != sum || vals[id].Page != sum {
				t.Fatalf("page version %d (read %d), want the sum of its dimensions' %d", doc.Version, vals[id].Page, sum)
			}
		})
	}
}

func MustValue(tb testing.TB, h *harness, key string) []byte {
	tb.Helper()
	v, err := h.store.Get(tb.Context(), key)
	if err != nil || v == nil {
		tb.Fatalf("%s: %q, %v", key, v, err)
	}
	return v
}

func MustPut(tb testing.TB, url, body string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("PUT %s: %d", url, resp.StatusCode)
	}
}

// A refresh skips the products whose every value in Redis is at the
// source's version, and rebuilds those where a dimension changed at the
// source, a value is gone, a split value lost a segment, or the page is
// not the sum of its dimensions.
func TestRefreshSkipsOnlyCurrentProducts(t *testing.T) {
	h := MustAssembler(t)
	ctx := t.Context()
	if _, err := h.asm.Products(ctx, allIDs()); err != nil {
		t.Fatal(err)
	}
	h.lookups(t, http.MethodDelete)
	res, unchanged, err := h.asm.Refresh(ctx, allIDs())
	if err != nil || unchanged != len(allIDs()) || len(res.Docs) != 0 {
		t.Fatalf("refresh of an unchanged catalog: %d unchanged of %d, %d rebuilt, %v", unchanged, len(allIDs()), len(res.Docs), err)
	}
	for name, n := range h.lookups(t, http.MethodGet) {
		if n != 0 {
			t.Errorf("%s: %d records fetched for an unchanged catalog", name, n)
		}
	}
	// A large description is split: drop one of its segments.
	const split = 21
	MustPut(t, h.src+"/api/descriptions/21", `{"html":"<p>`+strings.Repeat("long text ", 10_000)+`</p>"}`)
	if _, err := h.asm.Products(ctx, []int64{split}); err != nil {
		t.Fatal(err)
	}
	rdb := h.store.Client()
	head := MustValue(t, h, redisstore.DimKey(split, catalog.DimDescription))
	segs, err := rdb.Keys(ctx, redisstore.DimKey(split, catalog.DimDescription)+":*").Result()
	if err != nil || len(segs) < 2 {
		t.Fatalf("description of %d not split (%d bytes): %v %v", split, len(head), segs, err)
	}
	const (
		gone    = 3 // a dimension evicted
		edited  = 4 // a newer price at the source
		badPage = 5 // the page replaced by an older build
		flushed = 6 // the page gone
	)
	MustPut(t, h.src+"/api/prices/4", `{"amount":"9.99","list":"","currency":"CNY"}`)
	for _, k := range []string{segs[1], redisstore.DimKey(gone, catalog.DimSpec), redisstore.ItemKey(flushed)} {
		if err := rdb.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	page := MustValue(t, h, redisstore.ItemKey(badPage))
	v := redisstore.VersionOf(page)
	older := strings.Replace(string(page), `{"version":`+strconv.FormatInt(v, 10), `{"version":`+strconv.FormatInt(v-1, 10), 1)
	if err := rdb.Set(ctx, redisstore.ItemKey(badPage), older, 0).Err(); err != nil {
		t.Fatal(err)
	}
	res, unchanged, err = h.asm.Refresh(ctx, allIDs())
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt []int64
	for id := range res.Docs {
		rebuilt = append(rebuilt, id)
	}
	slices.Sort(rebuilt)
	if want := []int64{gone, edited, badPage, flushed, split}; !slices.Equal(rebuilt, want) || unchanged != len(allIDs())-len(want) {
		t.Fatalf("rebuilt %v (%d unchanged), want %v", rebuilt, unchanged, want)
	}
	if _, unchanged, err = h.asm.Refresh(ctx, allIDs()); err != nil || unchanged != len(allIDs()) {
		t.Fatalf("after the rebuild: %d unchanged of %d, %v", unchanged, len(allIDs()), err)
	}
}

// BenchmarkPatchPages: one price/stock edit patched into a seeded page, in
// pipelines of 100; reports the script's own time in Redis per call.
func BenchmarkPatchPages(b *testing.B) {
	h := MustAssembler(b)
	ctx := b.Context()
	if _, err := h.asm.Products(ctx, allIDs()); err != nil {
		b.Fatal(err)
	}
	page := MustValue(b, h, redisstore.ItemKey(11))
	stock := MustValue(b, h, redisstore.DimKey(11, catalog.DimStock))
	var st catalog.Stock
	if err := json.Unmarshal(stock, &st); err != nil {
		b.Fatal(err)
	}
	rdb := h.store.Client()
	rdb.ConfigResetStat(ctx)
	v := st.Version
	b.ResetTimer()
	for b.Loop() {
		patches := make([]redisstore.Patch, 0, 100)
		for range 100 {
			v++
			st.Version = v
			val, _ := json.Marshal(st)
			patches = append(patches, redisstore.Patch{ID: 11, Dim: catalog.DimStock, Version: v, Value: val,
				Member: []byte(`{"available":5,"status":"low_stock","label":"x"}`), UpdatedAt: []byte(`"2026-11-24T02:00:00Z"`)})
		}
		res, err := h.store.PatchPages(ctx, patches)
		if err != nil || res[99].Outcome != redisstore.PatchPatched {
			b.Fatalf("%+v %v", res[99], err)
		}
	}
	b.StopTimer()
	info, _ := rdb.Info(ctx, "commandstats").Result()
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, "cmdstat_evalsha") {
			b.Logf("page %d bytes; %s", len(page), l)
		}
	}
}

// With a Recent, a later call does not fetch again from the source what
// an earlier one read (its own products' base and price, and those it
// recommended), even when Redis has lost them; its pages are the same as
// without. An entry older than the Recent's TTL is fetched again.
func TestRecentSparesRecommendedFetches(t *testing.T) {
	first, second := allIDs()[:25], allIDs()[25:]
	build := func(t *testing.T, recent *pagedoc.Recent) (map[int64][]byte, map[string]int64) {
		h := MustAssembler(t)
		h.asm.Recent = recent
		if _, err := h.asm.Products(t.Context(), first); err != nil {
			t.Fatal(err)
		}
		// Redis main flushed: the recommended products' dimensions are
		// gone, as on a cold main.
		if err := h.store.Client().FlushAll(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		h.lookups(t, http.MethodDelete)
		res, err := h.asm.Products(t.Context(), second)
		if err != nil {
			t.Fatal(err)
		}
		return res.Docs, h.lookups(t, http.MethodGet)
	}
	h := MustAssembler(t)
	seen := union(first, h.recommended(t, first))
	needed := union(second, h.recommended(t, second))
	fresh := slices.DeleteFunc(slices.Clone(needed), func(id int64) bool { return slices.Contains(seen, id) && !slices.Contains(second, id) })
	if len(fresh) == len(needed) {
		t.Fatal("the second batch needs nothing the first one read: the test shows nothing")
	}

	plain, plainLookups := build(t, nil)
	cached, cachedLookups := build(t, pagedoc.NewRecent(pagedoc.DefaultRecentSize, pagedoc.DefaultRecentTTL))
	expired, expiredLookups := build(t, pagedoc.NewRecent(pagedoc.DefaultRecentSize, time.Nanosecond))
	for name, got := range map[string]map[string]int64{"without a Recent": plainLookups, "with an expired Recent": expiredLookups} {
		if got["product"] != int64(len(needed)) || got["price"] != int64(len(needed)) {
			t.Errorf("%s: product %d, price %d ids asked for, want %d each", name, got["product"], got["price"], len(needed))
		}
	}
	if cachedLookups["product"] != int64(len(fresh)) || cachedLookups["price"] != int64(len(fresh)) {
		t.Errorf("with a Recent: product %d, price %d ids asked for, want %d each (only what the first call did not read)",
			cachedLookups["product"], cachedLookups["price"], len(fresh))
	}
	for _, docs := range []map[int64][]byte{cached, expired} {
		for _, id := range second {
			if a, b := withoutUpdatedAt(t, plain[id]), withoutUpdatedAt(t, docs[id]); a != b {
				t.Fatalf("page %d differs with a Recent:\n%s\n%s", id, a, b)
			}
		}
	}
}

// withoutUpdatedAt is a page document with its build time blanked.
func withoutUpdatedAt(t *testing.T, doc []byte) string {
	t.Helper()
	var d catalog.PageDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("page %q: %v", doc, err)
	}
	d.UpdatedAt = ""
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
