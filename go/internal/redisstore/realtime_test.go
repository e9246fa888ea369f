package redisstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
)

func priceRec(id, version int64, amount string) redisstore.RealtimeRecord {
	b, _ := json.Marshal(catalog.Price{Version: version, ProductID: id, Amount: amount, List: "5999.00", Currency: "CNY"})
	return redisstore.RealtimeRecord{ID: id, Dim: catalog.DimPrice, Version: version, JSON: b}
}

func stockRec(id, version, available int64) redisstore.RealtimeRecord {
	b, _ := json.Marshal(catalog.Stock{Version: version, ProductID: id, Available: available})
	return redisstore.RealtimeRecord{ID: id, Dim: catalog.DimStock, Version: version, JSON: b}
}

// MustStreamEntries returns the realtime stream's entries as "id/dim/v".
func MustStreamEntries(tb testing.TB, st *redisstore.Store) []string {
	tb.Helper()
	msgs, err := st.Client().XRange(tb.Context(), redisstore.RealtimeStream, "-", "+").Result()
	if err != nil {
		tb.Fatalf("xrange %s: %v", redisstore.RealtimeStream, err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("%v/%v/%v", m.Values["id"], m.Values["dim"], m.Values["v"])
	}
	return out
}

// MustPutRealtime writes recs and fails unless exactly want took effect.
func MustPutRealtime(tb testing.TB, st *redisstore.Store, at time.Time, want int, recs ...redisstore.RealtimeRecord) {
	tb.Helper()
	n, err := st.PutRealtime(tb.Context(), at, recs...)
	if err != nil {
		tb.Fatalf("put realtime: %v", err)
	}
	if n != want {
		tb.Fatalf("put realtime wrote %d of %d, want %d", n, len(recs), want)
	}
}

func TestRealtimeKeys(t *testing.T) {
	if got := redisstore.RealtimeKey(42, catalog.DimPrice); got != "item:{42}:rt:price" {
		t.Errorf("price key %q", got)
	}
	if got := redisstore.RealtimeKey(42, catalog.DimStock); got != "item:{42}:rt:stock" {
		t.Errorf("stock key %q", got)
	}
	if redisstore.RealtimeStream != "dp:rt" {
		t.Errorf("stream %q", redisstore.RealtimeStream)
	}
}

func TestPutRealtimeVersionedWithStreamEntry(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	at := time.UnixMilli(1_700_000_000_123)

	MustPutRealtime(t, st, at, 2, priceRec(7, 10, "5599.50"), stockRec(7, 11, 3))
	raw := MustGet(t, st, redisstore.RealtimeKey(7, catalog.DimPrice))
	want := `{"version":10,"at":1700000000123,"record":{"version":10,"product_id":7,"amount":"5599.50","list":"5999.00","currency":"CNY"}}`
	if string(raw) != want {
		t.Fatalf("stored value\n got %s\nwant %s", raw, want)
	}
	if ttl := st.Client().PTTL(ctx, redisstore.RealtimeKey(7, catalog.DimPrice)).Val(); ttl <= 0 || ttl > redisstore.RealtimeTTL {
		t.Errorf("ttl %v, want within (0, %v]", ttl, redisstore.RealtimeTTL)
	}

	// older and equal versions are refused and add no entry
	MustPutRealtime(t, st, at, 0, priceRec(7, 9, "1.00"), priceRec(7, 10, "2.00"), stockRec(7, 5, 100))
	// a newer one replaces
	MustPutRealtime(t, st, at.Add(time.Second), 1, priceRec(7, 12, "5000.00"))

	if got, want := strings.Join(MustStreamEntries(t, st), " "), "7/price/10 7/stock/11 7/price/12"; got != want {
		t.Errorf("stream entries %q, want %q", got, want)
	}
	vals, err := st.Realtime(ctx, []int64{7})
	if err != nil {
		t.Fatal(err)
	}
	p := vals[7][catalog.DimPrice]
	var pr catalog.Price
	if err := json.Unmarshal(p.Record, &pr); err != nil || pr.Amount != "5000.00" || p.Version != 12 || !p.At.Equal(at.Add(time.Second)) {
		t.Errorf("price back: %+v (%s), %v", p, p.Record, err)
	}
	if s := vals[7][catalog.DimStock]; s.Version != 11 || !s.At.Equal(at) {
		t.Errorf("stock back: %+v", s)
	}
}

func TestPutRealtimeRejectsBadRecords(t *testing.T) {
	st := MustStore(t)
	good := priceRec(1, 1, "1.00")
	tests := []struct {
		name string
		rec  redisstore.RealtimeRecord
	}{
		{"dimension without realtime value", redisstore.RealtimeRecord{ID: 1, Dim: catalog.DimBase, Version: 1, JSON: good.JSON}},
		{"zero version", redisstore.RealtimeRecord{ID: 1, Dim: catalog.DimPrice, Version: 0, JSON: good.JSON}},
		{"not JSON", redisstore.RealtimeRecord{ID: 1, Dim: catalog.DimPrice, Version: 1, JSON: []byte("{nope")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := st.PutRealtime(t.Context(), time.Now(), good, tt.rec); err == nil || n != 0 {
				t.Fatalf("put: %d, %v; want an error and nothing written", n, err)
			}
		})
	}
	if b := MustGet(t, st, redisstore.RealtimeKey(1, catalog.DimPrice)); b != nil {
		t.Errorf("a batch with a bad record wrote %s", b)
	}
}

// Concurrent writers of the same key: whatever the order, the newest
// version stays and the stream has exactly one entry per accepted write,
// with ascending versions.
func TestPutRealtimeConcurrentNewestWins(t *testing.T) {
	st := MustStore(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for v := int64(1); v <= 50; v++ {
		wg.Go(func() {
			n, err := st.PutRealtime(t.Context(), time.Now(), priceRec(3, v, fmt.Sprintf("%d.00", v)))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	vals, err := st.Realtime(t.Context(), []int64{3})
	if err != nil {
		t.Fatal(err)
	}
	if v := vals[3][catalog.DimPrice].Version; v != 50 {
		t.Errorf("version %d stays, want 50", v)
	}
	entries := MustStreamEntries(t, st)
	if len(entries) != total {
		t.Errorf("%d stream entries for %d accepted writes", len(entries), total)
	}
	last := 0
	for _, e := range entries {
		var id, v int
		var dim string
		if _, err := fmt.Sscanf(strings.ReplaceAll(e, "/", " "), "%d %s %d", &id, &dim, &v); err != nil || v <= last {
			t.Errorf("entry %q after version %d", e, last)
		}
		last = v
	}
}

// Realtime answers the newer of the realtime value and the sync-written
// dimension key, including a dimension key stored as a segment head.
func TestRealtimeNewestOfRealtimeAndDimensionKey(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	at := time.UnixMilli(1_700_000_000_000)
	dimPrice := func(id, version int64, amount string) redisstore.Entry {
		r := priceRec(id, version, amount)
		return redisstore.Entry{Key: redisstore.DimKey(id, catalog.DimPrice), Version: version, Value: r.JSON}
	}
	// 1: realtime newer than the dimension key (the sync has not caught up)
	MustPut(t, st, 1, dimPrice(1, 5, "10.00"))
	MustPutRealtime(t, st, at, 1, priceRec(1, 6, "11.00"))
	// 2: dimension key newer (a later edit reached it through the pipeline)
	MustPutRealtime(t, st, at, 1, priceRec(2, 6, "20.00"))
	MustPut(t, st, 1, dimPrice(2, 8, "22.00"))
	// 3: only the dimension key, stock only
	sr := stockRec(3, 4, 9)
	MustPut(t, st, 1, redisstore.Entry{Key: redisstore.DimKey(3, catalog.DimStock), Version: 4, Value: sr.JSON})
	// 4: same version in both: the realtime value (it has a time)
	MustPut(t, st, 1, dimPrice(4, 7, "40.00"))
	MustPutRealtime(t, st, at, 1, priceRec(4, 7, "40.00"))
	// 5: the dimension key is a segment head (a record padded past the limit)
	big := fmt.Appendf(nil, `{"version":9,"product_id":5,"amount":"50.00","list":"60.00","currency":"CNY","pad":%q}`, strings.Repeat("x", redisstore.MaxValueBytes+10))
	MustPut(t, st, 1, redisstore.Entry{Key: redisstore.DimKey(5, catalog.DimPrice), Version: 9, Value: big})
	// 6: a realtime value that does not parse, and a good dimension key
	if err := st.Client().Set(ctx, redisstore.RealtimeKey(6, catalog.DimPrice), `{"version":99,garbage`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	MustPut(t, st, 1, dimPrice(6, 2, "60.00"))

	vals, err := st.Realtime(ctx, []int64{1, 2, 3, 4, 5, 6, 404})
	if err != nil {
		t.Fatal(err)
	}
	amount := func(v redisstore.RealtimeValue) string {
		var p catalog.Price
		if err := json.Unmarshal(v.Record, &p); err != nil {
			return "undecodable: " + err.Error()
		}
		return p.Amount
	}
	tests := []struct {
		id       int64
		version  int64
		amount   string
		haveTime bool
	}{
		{1, 6, "11.00", true},
		{2, 8, "22.00", false},
		{4, 7, "40.00", true},
		{5, 9, "50.00", false},
		{6, 2, "60.00", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.id), func(t *testing.T) {
			v, ok := vals[tt.id][catalog.DimPrice]
			if !ok {
				t.Fatalf("no price for %d", tt.id)
			}
			if v.Version != tt.version || amount(v) != tt.amount || v.At.IsZero() == tt.haveTime {
				t.Errorf("got version %d amount %s at %v; want %d %s (time known: %v)", v.Version, amount(v), v.At, tt.version, tt.amount, tt.haveTime)
			}
		})
	}
	if s, ok := vals[3][catalog.DimStock]; !ok || s.Version != 4 || !s.At.IsZero() {
		t.Errorf("stock of 3: %+v, %v", s, ok)
	}
	if _, ok := vals[3][catalog.DimPrice]; ok {
		t.Errorf("price of 3 present, none was written")
	}
	if m, ok := vals[404]; ok {
		t.Errorf("unknown id answered %v", m)
	}
}

func TestPutRealtimeFenced(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	const fence = "dp:test:fence"
	f := MustFenced(t, st, fence)
	MustPutRealtime(t, f, time.Now(), 1, priceRec(1, 1, "1.00"))
	st.Client().Incr(ctx, fence)
	if n, err := f.PutRealtime(ctx, time.Now(), priceRec(1, 2, "2.00")); !errors.Is(err, redisstore.ErrFenced) || n != 0 {
		t.Fatalf("fenced-out write: %d, %v; want ErrFenced", n, err)
	}
	if got := strings.Join(MustStreamEntries(t, st), " "); got != "1/price/1" {
		t.Errorf("stream %q, want the one accepted write", got)
	}
}

// A server that has not seen the script (a restart, a promoted replica)
// gets it loaded and the write goes through.
func TestPutRealtimeAfterScriptFlush(t *testing.T) {
	st := MustStore(t)
	MustPutRealtime(t, st, time.Now(), 1, priceRec(1, 1, "1.00"))
	if err := st.Client().ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	MustPutRealtime(t, st, time.Now(), 1, priceRec(1, 2, "2.00"))
}

func TestRealtimeOnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	addrs := MustCluster(t)
	st, err := redisstore.Open(strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	var recs []redisstore.RealtimeRecord
	var ids []int64
	for id := int64(1); id <= 20; id++ {
		recs = append(recs, priceRec(id, 5, "5.00"), stockRec(id, 6, 1))
		ids = append(ids, id)
	}
	MustPutRealtime(t, st, time.Now(), 40, recs...)
	MustPutRealtime(t, st, time.Now(), 0, priceRec(1, 4, "4.00"))
	vals, err := st.Realtime(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if vals[id][catalog.DimPrice].Version != 5 || vals[id][catalog.DimStock].Version != 6 {
			t.Errorf("id %d: %+v", id, vals[id])
		}
	}
	n, err := st.Client().XLen(ctx, redisstore.RealtimeStream).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	if n != 40 {
		t.Errorf("%d stream entries, want 40", n)
	}
}
