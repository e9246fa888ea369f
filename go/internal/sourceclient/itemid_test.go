package sourceclient

import (
	"encoding/json"
	"testing"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// FuzzItemID: the id read from an item's prefix is the one decoding the
// item gives, for every valid JSON item.
func FuzzItemID(f *testing.F) {
	for _, s := range []string{
		`{"version":5,"product_id":42,"html":"<p>x</p>"}`,
		`{"version":5,"id":42,"shop_id":7,"name":"n"}`,
		`{"version":5,"id":42,"product_id":43}`,
		`{"version":5,"product_id":42,"product_id":43}`,
		`{"version":5,"id":42,"x":{"id":1}}`,
		`{"version":5,"product_id":0,"id":9}`,
		`{"version":5,"id":42}`,
		`{"version":5,"id":042}`,
		`{"version":5,"ID":42,"id":43}`,
		`{"version":5,"id":42,"ID":43}`,
		`{"version":5,"product_id":42,"Product_ID":43}`,
		`{"version":5,"id":42,"pRoduct_id":43}`,
		`{"id":42,"version":5}`,
		`{"version":5,"product_id":123456789012345678}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return // the batch answer's decoding refuses it before
		}
		id, ok := prefixID(raw)
		if !ok {
			return
		}
		var key struct {
			ID        int64 `json:"id"`
			ProductID int64 `json:"product_id"`
		}
		if err := json.Unmarshal(raw, &key); err != nil {
			return // e.g. an id that is no int64: decoding errs, the batch fails
		}
		want := key.ProductID
		if want == 0 {
			want = key.ID
		}
		if id != want {
			t.Fatalf("%s: prefix id %d, decoded %d", raw, id, want)
		}
	})
}

// TestItemIDFromPrefix: the source's records (version first, their id
// second) are keyed without decoding.
func TestItemIDFromPrefix(t *testing.T) {
	for _, r := range []any{
		catalog.Product{Version: 3, ID: 42, ShopID: 7, Name: "n"},
		catalog.Shop{Version: 3, ID: 42},
		catalog.Description{Version: 3, ProductID: 42, HTML: `<p class="x">"ID":1</p>`},
		catalog.Stock{Version: 3, ProductID: 42, Available: 5},
	} {
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if id, ok := prefixID(raw); !ok || id != 42 {
			t.Errorf("%s: prefix id %d, %v; want 42 without decoding", raw, id, ok)
		}
	}
}
