package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/seed"
	"github.com/detailpage/detailpage/go/internal/sqlite"
)

// MustOpen opens the catalog database at path and closes it when the test
// ends.
func MustOpen(tb testing.TB, path string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(tb.Context(), path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustSeeded opens a new database in a temporary directory and bulk-loads
// shops 1..shops and products 1..products from package seed.
func MustSeeded(tb testing.TB, shops, products int64) (*sqlite.DB, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "catalog.db")
	db := MustOpen(tb, path)
	list := make([]catalog.Shop, 0, shops)
	for id := int64(1); id <= shops; id++ {
		list = append(list, seed.Shop(id))
	}
	items := func(yield func(sqlite.ProductRecords) bool) {
		for id := int64(1); id <= products; id++ {
			b := seed.Item(id, shops, products)
			if !yield(b.Records()) {
				return
			}
		}
	}
	if err := db.BulkLoad(tb.Context(), list, items, nil); err != nil {
		tb.Fatalf("bulk load: %v", err)
	}
	return db, path
}

// MustMarkAllSent acknowledges every pending outbox row.
func MustMarkAllSent(tb testing.TB, db *sqlite.DB) {
	tb.Helper()
	rows, err := db.Unsent(tb.Context(), 1_000_000)
	if err != nil {
		tb.Fatal(err)
	}
	seqs := make([]int64, len(rows))
	for i, r := range rows {
		seqs[i] = r.Seq
	}
	if err := db.MarkSent(tb.Context(), seqs); err != nil {
		tb.Fatal(err)
	}
}

// MustPending returns the number of outbox rows waiting for the broker.
func MustPending(tb testing.TB, db *sqlite.DB) int64 {
	tb.Helper()
	n, err := db.OutboxPending(tb.Context())
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// MustOutboxRows counts every outbox row, sent or not, through a separate
// read-only connection to the file.
func MustOutboxRows(tb testing.TB, path string) int64 {
	tb.Helper()
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	defer raw.Close()
	var n int64
	if err := raw.QueryRowContext(tb.Context(), `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// recordHead is what every stored record has: its version and its id
// (products and shops) or product id (the other dimensions).
type recordHead struct {
	Version   int64 `json:"version"`
	ID        int64 `json:"id"`
	ProductID int64 `json:"product_id"`
}

func decode[T any](tb testing.TB, raw json.RawMessage) T {
	tb.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func TestOpenTwiceKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	ctx := t.Context()

	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put(ctx, catalog.KindShop, 1, &catalog.Shop{Name: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for i := range 2 { // migrations must be idempotent
		db := MustOpen(t, path)
		got, err := db.Get(ctx, catalog.KindShop, 1)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		if s := decode[catalog.Shop](t, got); s.Name != "first" || s.Version != 1 {
			t.Fatalf("reopen %d: shop = %+v", i, s)
		}
		if n := MustPending(t, db); n != 1 {
			t.Fatalf("reopen %d: outbox pending = %d, want 1", i, n)
		}
	}

	// The version sequence survives too: the next edit is newer.
	db = MustOpen(t, path)
	stored, err := db.Put(ctx, catalog.KindShop, 1, &catalog.Shop{Name: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if s := decode[catalog.Shop](t, stored); s.Version != 2 {
		t.Fatalf("version after reopen = %d, want 2", s.Version)
	}
}

func TestBulkLoad(t *testing.T) {
	const shops, products = 3, 12
	db, _ := MustSeeded(t, shops, products)
	ctx := t.Context()

	seeded, err := db.Seeded(ctx)
	if err != nil || !seeded {
		t.Fatalf("Seeded = %v, %v; want true", seeded, err)
	}
	for _, k := range catalog.Kinds {
		want := int64(products)
		if k == catalog.KindShop {
			want = shops
		}
		if n, err := db.Count(ctx, k); err != nil || n != want {
			t.Errorf("count %s = %d, %v; want %d", k, n, err, want)
		}
	}

	rows, err := db.Unsent(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != shops+products {
		t.Fatalf("outbox has %d rows, want one refresh per shop and product (%d)", len(rows), shops+products)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Topic != catalog.TopicLow {
			t.Errorf("row %d on %s, want %s", r.Seq, r.Topic, catalog.TopicLow)
		}
		c, err := catalog.DecodeChange(r.Payload)
		if err != nil {
			t.Fatalf("row %d payload %s: %v", r.Seq, r.Payload, err)
		}
		if !c.Refresh || c.Version <= 0 {
			t.Errorf("row %d = %+v, want a refresh with a version", r.Seq, c)
		}
		if seen[r.Key] {
			t.Errorf("two refresh rows for %s", r.Key)
		}
		seen[r.Key] = true
	}
	for _, key := range []string{"shop:1", "shop:3", "product:1", "product:12"} {
		if !seen[key] {
			t.Errorf("no refresh row keyed %s", key)
		}
	}

	// The stored record is the seeded one, with a version.
	raw, err := db.Get(ctx, catalog.KindPrice, 7)
	if err != nil {
		t.Fatal(err)
	}
	p := decode[catalog.Price](t, raw)
	want := seed.Item(7, shops, products).Price
	if p.Amount != want.Amount || p.ProductID != 7 || p.Version <= 0 {
		t.Fatalf("price 7 = %+v, want amount %s and a version", p, want.Amount)
	}
}

func TestPutVersionsAndOutbox(t *testing.T) {
	db, _ := MustSeeded(t, 2, 4)
	ctx := t.Context()
	MustMarkAllSent(t, db)

	edits := []struct {
		kind *catalog.Kind
		id   int64
		rec  catalog.Record
		dim  catalog.Dimension
	}{
		{catalog.KindProduct, 1, &catalog.Product{ShopID: 2, Name: "renamed"}, catalog.DimBase},
		{catalog.KindPrice, 1, &catalog.Price{Amount: "1.00", Currency: "CNY"}, catalog.DimPrice},
		{catalog.KindShop, 2, &catalog.Shop{Name: "shop two"}, ""},
		{catalog.KindStock, 3, &catalog.Stock{Available: 4}, catalog.DimStock},
		{catalog.KindDescription, 3, &catalog.Description{HTML: "<p>x</p>"}, catalog.DimDescription},
		{catalog.KindSpec, 4, &catalog.Spec{}, catalog.DimSpec},
		{catalog.KindRecommend, 4, &catalog.Recommendations{IDs: []int64{1}}, catalog.DimRecommend},
		{catalog.KindProduct, 9, &catalog.Product{ShopID: 1, Name: "new product"}, catalog.DimBase},
	}
	last := int64(0)
	for _, e := range edits {
		t.Run(e.kind.Name, func(t *testing.T) {
			stored, err := db.Put(ctx, e.kind, e.id, e.rec)
			if err != nil {
				t.Fatal(err)
			}
			head := decode[recordHead](t, stored)
			if head.Version <= last {
				t.Fatalf("version %d not above the previous %d", head.Version, last)
			}
			last = head.Version
			if head.ID != e.id && head.ProductID != e.id {
				t.Fatalf("stored %s does not carry id %d", stored, e.id)
			}
			got, err := db.Get(ctx, e.kind, e.id)
			if err != nil || string(got) != string(stored) {
				t.Fatalf("Get = %s, %v; want the stored %s", got, err, stored)
			}

			rows, err := db.Unsent(ctx, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 {
				t.Fatalf("outbox has %d unsent rows, want exactly 1", len(rows))
			}
			r := rows[0]
			c, err := catalog.DecodeChange(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			wantEntity := catalog.EntityProduct
			if e.kind == catalog.KindShop {
				wantEntity = catalog.EntityShop
			}
			if r.Topic != catalog.TopicHigh || c.Entity != wantEntity || c.ID != e.id || c.Version != head.Version || c.Refresh {
				t.Fatalf("outbox row %+v change %+v, want %s %s %d version %d on %s", r, c, wantEntity, e.kind, e.id, head.Version, catalog.TopicHigh)
			}
			if e.dim != "" && (len(c.Dims) != 1 || c.Dims[0] != e.dim) {
				t.Fatalf("dims = %v, want [%s]", c.Dims, e.dim)
			}
			MustMarkAllSent(t, db)
		})
	}
}

func TestPutRejectedWritesNothing(t *testing.T) {
	db, _ := MustSeeded(t, 2, 4)
	ctx := t.Context()
	MustMarkAllSent(t, db)
	before, err := db.Get(ctx, catalog.KindProduct, 1)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		kind   *catalog.Kind
		id     int64
		rec    catalog.Record
		check  func(error) bool
		absent bool // the record must not exist afterwards
	}{
		{
			name: "product with unknown shop", kind: catalog.KindProduct, id: 1,
			rec:   &catalog.Product{ShopID: 99, Name: "moved"},
			check: func(err error) bool { var ve *catalog.ValidationError; return errors.As(err, &ve) },
		},
		{
			name: "new product with unknown shop", kind: catalog.KindProduct, id: 50,
			rec:   &catalog.Product{ShopID: 99, Name: "new"},
			check: func(err error) bool { var ve *catalog.ValidationError; return errors.As(err, &ve) }, absent: true,
		},
		{
			name: "description of unknown product", kind: catalog.KindDescription, id: 77,
			rec:   &catalog.Description{HTML: "<p>x</p>"},
			check: func(err error) bool { return errors.Is(err, catalog.ErrNotFound) }, absent: true,
		},
		{
			name: "price of unknown product", kind: catalog.KindPrice, id: 78,
			rec:   &catalog.Price{Amount: "1", Currency: "CNY"},
			check: func(err error) bool { return errors.Is(err, catalog.ErrNotFound) }, absent: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := db.Put(ctx, tt.kind, tt.id, tt.rec)
			if err == nil || !tt.check(err) {
				t.Fatalf("Put = %v, want a rejection", err)
			}
			if n := MustPending(t, db); n != 0 {
				t.Fatalf("outbox pending = %d after a rejected put, want 0", n)
			}
			if tt.absent {
				if _, err := db.Get(ctx, tt.kind, tt.id); !errors.Is(err, catalog.ErrNotFound) {
					t.Fatalf("Get after rejected put = %v, want ErrNotFound", err)
				}
			}
		})
	}
	after, err := db.Get(ctx, catalog.KindProduct, 1)
	if err != nil || string(after) != string(before) {
		t.Fatalf("product 1 changed by rejected puts:\nbefore %s\nafter  %s", before, after)
	}

	// A rejected put does not use up a version: the next one follows the
	// highest version stored so far.
	var maxV int64
	for _, k := range catalog.Kinds {
		docs, err := db.GetMany(ctx, k, []int64{1, 2, 3, 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			maxV = max(maxV, decode[recordHead](t, d).Version)
		}
	}
	stored, err := db.Put(ctx, catalog.KindStock, 1, &catalog.Stock{Available: 1})
	if err != nil {
		t.Fatal(err)
	}
	if v := decode[catalog.Stock](t, stored).Version; v != maxV+1 {
		t.Fatalf("next version = %d, want %d", v, maxV+1)
	}
}

func TestUnsentAndMarkSent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	db := MustOpen(t, path)
	ctx := t.Context()
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	db.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	for id := int64(1); id <= 5; id++ {
		if _, err := db.Put(ctx, catalog.KindShop, id, &catalog.Shop{Name: "s"}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("oldest first, limited", func(t *testing.T) {
		rows, err := db.Unsent(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("got %d rows, want 3", len(rows))
		}
		for i, r := range rows {
			if want := "shop:" + string(rune('1'+i)); r.Key != want {
				t.Fatalf("row %d key %s, want %s", i, r.Key, want)
			}
			if i > 0 && r.Seq <= rows[i-1].Seq {
				t.Fatalf("rows not in seq order: %d after %d", r.Seq, rows[i-1].Seq)
			}
		}
	})

	all, err := db.Unsent(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("marked rows are not unsent", func(t *testing.T) {
		if err := db.MarkSent(ctx, []int64{all[0].Seq, all[2].Seq}); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Unsent(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range rows {
			keys = append(keys, r.Key)
		}
		if len(keys) != 3 || keys[0] != "shop:2" || keys[1] != "shop:4" || keys[2] != "shop:5" {
			t.Fatalf("unsent keys = %v, want [shop:2 shop:4 shop:5]", keys)
		}
		if n := MustPending(t, db); n != 3 {
			t.Fatalf("pending = %d, want 3", n)
		}
	})

	t.Run("empty and unknown seqs are harmless", func(t *testing.T) {
		if err := db.MarkSent(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := db.MarkSent(ctx, []int64{999_999}); err != nil {
			t.Fatal(err)
		}
		if n := MustPending(t, db); n != 3 {
			t.Fatalf("pending = %d, want 3", n)
		}
	})

	t.Run("sent rows are pruned after an hour", func(t *testing.T) {
		if n := MustOutboxRows(t, path); n != 5 {
			t.Fatalf("outbox rows = %d, want 5 (sent rows kept for a while)", n)
		}
		advance(30 * time.Minute)
		if err := db.MarkSent(ctx, []int64{all[1].Seq}); err != nil {
			t.Fatal(err)
		}
		if n := MustOutboxRows(t, path); n != 5 {
			t.Fatalf("outbox rows = %d after 30 min, want 5", n)
		}
		advance(31 * time.Minute) // rows 0 and 2 were sent 61 min ago, row 1 31 min ago
		if err := db.MarkSent(ctx, []int64{all[3].Seq}); err != nil {
			t.Fatal(err)
		}
		if n := MustOutboxRows(t, path); n != 3 {
			t.Fatalf("outbox rows = %d after 61 min, want 3 (two pruned)", n)
		}
		rows, err := db.Unsent(ctx, 100)
		if err != nil || len(rows) != 1 || rows[0].Key != "shop:5" {
			t.Fatalf("unsent = %+v, %v; want only shop:5", rows, err)
		}
	})
}

func TestGetMany(t *testing.T) {
	db, _ := MustSeeded(t, 2, 6)
	ctx := t.Context()
	tests := []struct {
		name string
		kind *catalog.Kind
		ids  []int64
		want []int64
	}{
		{name: "all exist", kind: catalog.KindProduct, ids: []int64{3, 1, 2}, want: []int64{1, 2, 3}},
		{name: "some missing", kind: catalog.KindPrice, ids: []int64{6, 7, 100, 1}, want: []int64{1, 6}},
		{name: "none exist", kind: catalog.KindStock, ids: []int64{70, 80}, want: nil},
		{name: "empty", kind: catalog.KindSpec, ids: nil, want: nil},
		{name: "shops", kind: catalog.KindShop, ids: []int64{1, 2, 3}, want: []int64{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.GetMany(ctx, tt.kind, tt.ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d records, want ids %v", len(got), tt.want)
			}
			for _, id := range tt.want {
				raw, ok := got[id]
				if !ok {
					t.Fatalf("id %d missing from %v", id, got)
				}
				h := decode[recordHead](t, raw)
				if h.ID != id && h.ProductID != id {
					t.Fatalf("record under id %d is %s", id, raw)
				}
			}
		})
	}
}

func TestGetUnknown(t *testing.T) {
	db, _ := MustSeeded(t, 1, 1)
	for _, k := range catalog.Kinds {
		if _, err := db.Get(t.Context(), k, 12345); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("Get %s 12345 = %v, want ErrNotFound", k, err)
		}
	}
}

// Every kind of the catalog's table has its SQLite table, and a record of
// each goes in and comes back; a record of another kind is refused.
func TestEveryKindHasItsTable(t *testing.T) {
	db, _ := MustSeeded(t, 1, 1)
	for _, k := range catalog.Kinds {
		if _, err := db.Count(t.Context(), k); err != nil {
			t.Errorf("count %s (table %s): %v", k, k.Table, err)
		}
		raw, err := db.Get(t.Context(), k, 1)
		if err != nil {
			t.Fatalf("get %s 1: %v", k, err)
		}
		rec := k.New()
		if err := json.Unmarshal(raw, rec); err != nil {
			t.Fatalf("decode %s into %T: %v", k, rec, err)
		}
		if id, v := rec.Stamped(); id != 1 || v <= 0 {
			t.Errorf("%s 1 reads back as id %d version %d", k, id, v)
		}
	}
	if _, err := db.Put(t.Context(), catalog.KindPrice, 1, &catalog.Stock{}); err == nil {
		t.Errorf("a stock record was stored as a price")
	}
}

func TestConcurrentPuts(t *testing.T) {
	db, _ := MustSeeded(t, 2, 8)
	ctx := context.WithoutCancel(t.Context())
	const workers, each = 8, 15
	versions := make(chan int64, workers*each)
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			id := int64(w + 1)
			for i := range each {
				var rec catalog.Record = &catalog.Stock{Available: int64(i)}
				kind := catalog.KindStock
				if i%3 == 0 {
					rec, kind = &catalog.Price{Amount: "9.99", Currency: "CNY"}, catalog.KindPrice
				}
				stored, err := db.Put(ctx, kind, id, rec)
				if err != nil {
					errs <- err
					continue
				}
				var h struct {
					Version int64 `json:"version"`
				}
				if err := json.Unmarshal(stored, &h); err != nil {
					errs <- err
					continue
				}
				versions <- h.Version
				// Readers run beside the writers.
				if _, err := db.GetMany(ctx, catalog.KindStock, []int64{1, 2, 3}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(versions)
	close(errs)
	for err := range errs {
		t.Errorf("concurrent put: %v", err)
	}
	seen := map[int64]bool{}
	for v := range versions {
		if seen[v] {
			t.Fatalf("version %d assigned twice", v)
		}
		seen[v] = true
	}
	if len(seen) != workers*each {
		t.Fatalf("%d versions, want %d", len(seen), workers*each)
	}
	rows, err := db.Unsent(ctx, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	high := 0
	for _, r := range rows {
		if r.Topic == catalog.TopicHigh {
			high++
		}
	}
	if high != workers*each {
		t.Fatalf("%d edit rows in the outbox, want %d", high, workers*each)
	}
}

// ProductVersions reads each product's dimension versions, the same the
// documents carry, in catalog.ProductKinds order; ids that are not
// products are absent.
func TestProductVersions(t *testing.T) {
	db, _ := MustSeeded(t, 2, 6)
	ctx := t.Context()
	if _, err := db.Put(ctx, catalog.KindStock, 4, &catalog.Stock{Available: 3}); err != nil {
		t.Fatal(err)
	}
	got, err := db.ProductVersions(ctx, []int64{4, 1, 99})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[99] != nil {
		t.Fatalf("versions of %v: want products 4 and 1 only", got)
	}
	for _, id := range []int64{1, 4} {
		if len(got[id]) != len(catalog.ProductKinds) {
			t.Fatalf("product %d: %d versions, want %d", id, len(got[id]), len(catalog.ProductKinds))
		}
		for i, k := range catalog.ProductKinds {
			raw, err := db.Get(ctx, k, id)
			if err != nil {
				t.Fatal(err)
			}
			if v := decode[struct{ Version int64 }](t, raw).Version; got[id][i] != v {
				t.Errorf("product %d %s: version %d, the document has %d", id, k, got[id][i], v)
			}
		}
	}
	if empty, err := db.ProductVersions(ctx, nil); err != nil || len(empty) != 0 {
		t.Fatalf("no ids: %v %v", empty, err)
	}
}
