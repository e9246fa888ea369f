package catalog_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// The table of kinds is the one definition of the dimensions: every row
// must be complete and unambiguous, and its record type must round-trip
// through everything the other packages do with it.
func TestKindsTableIsConsistent(t *testing.T) {
	seen := map[string]string{}
	unique := func(what, v, kind string) {
		t.Helper()
		if v == "" {
			t.Errorf("%s: empty %s", kind, what)
			return
		}
		if other, dup := seen[what+"="+v]; dup {
			t.Errorf("%s %q is used by %s and %s", what, v, other, kind)
		}
		seen[what+"="+v] = kind
	}
	for _, k := range catalog.Kinds {
		t.Run(k.Name, func(t *testing.T) {
			unique("name", k.Name, k.Name)
			unique("URL segment", k.Segment, k.Name)
			unique("table", k.Table, k.Name)
			if strings.ContainsAny(k.Segment, "/?#") || strings.ContainsAny(k.Table, " ;'\"") {
				t.Errorf("segment %q or table %q is not a plain name", k.Segment, k.Table)
			}
			if got, ok := catalog.KindByName(k.Name); !ok || got != k {
				t.Errorf("KindByName(%q) = %v, %v", k.Name, got, ok)
			}
			rec := k.New()
			if rec == nil || rec.Kind() != k {
				t.Fatalf("New() = %T whose Kind() is not %s", rec, k.Name)
			}
			if k.New() == rec {
				t.Errorf("New() returns the same record twice")
			}
			// Stamp and Stamped agree, and the JSON starts with the version
			// (the Redis compare-and-set reads it there) and carries the id
			// batch answers are matched by.
			rec.Stamp(42, 7)
			if id, v := rec.Stamped(); id != 42 || v != 7 {
				t.Errorf("Stamped() = %d, %d after Stamp(42, 7)", id, v)
			}
			b, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), `{"version":7,`) {
				t.Errorf("JSON %.60s does not start with the version", b)
			}
			var key struct {
				ID        int64 `json:"id"`
				ProductID int64 `json:"product_id"`
			}
			if err := json.Unmarshal(b, &key); err != nil || max(key.ID, key.ProductID) != 42 {
				t.Errorf("JSON %.80s does not carry the id 42 as id or product_id", b)
			}
			// Validation is reachable through the table: a valid record
			// passes, and each kind refuses something.
			if err := rec.Validate(); err != nil && !errors.As(err, new(*catalog.ValidationError)) {
				t.Errorf("Validate() = %v, want nil or a *ValidationError", err)
			}
			bad := k.New()
			if err := json.Unmarshal([]byte(invalidEdits[k.Name]), bad); err != nil {
				t.Fatalf("no invalid edit for %s in the test: %v", k.Name, err)
			}
			if err := bad.Validate(); !errors.As(err, new(*catalog.ValidationError)) {
				t.Errorf("Validate(%s) = %v, want a *ValidationError", invalidEdits[k.Name], err)
			}

			if k.Dim == "" {
				if k.Entity != catalog.EntityShop {
					t.Errorf("a kind without a dimension is a shop, entity %q", k.Entity)
				}
				return
			}
			// A product dimension: a valid one, with a kind, a Redis key
			// suffix and a place in the page's parts.
			unique("dimension", string(k.Dim), k.Name)
			if !k.Dim.Valid() || k.Entity != catalog.EntityProduct {
				t.Errorf("dimension %q valid %v, entity %q", k.Dim, k.Dim.Valid(), k.Entity)
			}
			if got, ok := catalog.KindOf(k.Dim); !ok || got != k {
				t.Errorf("KindOf(%q) = %v, %v", k.Dim, got, ok)
			}
			var p catalog.Parts
			if k.Part(&p) != nil {
				t.Errorf("Part of empty parts is not nil")
			}
			k.SetPart(&p, rec)
			if got := k.Part(&p); got == nil || got.Kind() != k {
				t.Fatalf("Part after SetPart = %v", got)
			}
			if id, v := k.Part(&p).Stamped(); id != 42 || v != 7 {
				t.Errorf("the part holds %d, %d, want the record set", id, v)
			}
			for _, other := range catalog.ProductKinds {
				if other != k && other.Part(&p) != nil {
					t.Errorf("SetPart of %s filled %s too", k.Name, other.Name)
				}
			}
			// The page's version counts the dimension.
			p.Base = catalog.Product{ID: 42, Version: 1000}
			if k == catalog.KindProduct {
				p.Base.Version = 7
			}
			want := int64(1007)
			if k == catalog.KindProduct {
				want = 7
			}
			if got := catalog.BuildPage(p, fixedNow).Version; got != want {
				t.Errorf("page version %d, want %d: BuildPage ignores the dimension", got, want)
			}
		})
	}
	if catalog.ProductKinds[0] != catalog.KindProduct {
		t.Errorf("ProductKinds must start with the base")
	}
	if len(catalog.ProductDimensions) != len(catalog.ProductKinds) {
		t.Errorf("%d dimensions for %d product kinds", len(catalog.ProductDimensions), len(catalog.ProductKinds))
	}
	if _, ok := catalog.KindByName("nope"); ok {
		t.Errorf("KindByName of an unknown name succeeded")
	}
	if _, ok := catalog.KindOf("shop"); ok {
		t.Errorf("KindOf(shop) succeeded: shops are not a product dimension")
	}
}

// invalidEdits holds, per kind, an edit its Validate refuses.
var invalidEdits = map[string]string{
	"product":        `{"shop_id":0,"name":"x"}`,
	"shop":           `{"name":""}`,
	"description":    `{"html":"` + strings.Repeat("x", 1<<20+1) + `"}`,
	"spec":           `{"groups":[{"name":""}]}`,
	"price":          `{"amount":"1.234","currency":"CNY"}`,
	"stock":          `{"available":-1}`,
	"recommendation": `{"ids":[0]}`,
}
