package catalog_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

var fixedNow = time.Date(2024, 5, 1, 12, 30, 0, 0, time.FixedZone("CST", 8*3600))

func fullParts() catalog.Parts {
	return catalog.Parts{
		Base: catalog.Product{Version: 10, ID: 1, ShopID: 2, Name: "手机", Category: []string{"数码"},
			Images: []catalog.Image{{URL: "/img/p/1/0.svg", Alt: "main"}}},
		Desc:      &catalog.Description{Version: 11, ProductID: 1, HTML: "<p>desc</p>"},
		Spec:      &catalog.Spec{Version: 12, ProductID: 1, Groups: []catalog.SpecGroup{{Name: "主体", Items: []catalog.SpecItem{{Name: "a", Value: "b"}}}}},
		Price:     &catalog.Price{Version: 13, ProductID: 1, Amount: "5599.00", List: "5999.00", Currency: "CNY"},
		Stock:     &catalog.Stock{Version: 14, ProductID: 1, Available: 50},
		Recommend: &catalog.Recommendations{Version: 15, ProductID: 1, IDs: []int64{2, 1, 3, 4}},
		RecBases: map[int64]catalog.Product{
			1: {ID: 1, Name: "self"},
			2: {ID: 2, Name: "two", Images: []catalog.Image{{URL: "/img/p/2/0.svg"}}},
			4: {ID: 4, Name: "four"},
		},
		RecPrices: map[int64]catalog.Price{2: {Amount: "99.00"}},
	}
}

func TestBuildPageVersionIsSumOfDimensions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*catalog.Parts)
		want int64
	}{
		{name: "all dimensions", edit: func(*catalog.Parts) {}, want: 10 + 11 + 12 + 13 + 14 + 15},
		{name: "base newer", edit: func(p *catalog.Parts) { p.Base.Version = 99 }, want: 99 + 11 + 12 + 13 + 14 + 15},
		{name: "price newer", edit: func(p *catalog.Parts) { p.Price.Version = 102 }, want: 10 + 11 + 12 + 102 + 14 + 15},
		{name: "only base", edit: func(p *catalog.Parts) {
			*p = catalog.Parts{Base: p.Base}
		}, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fullParts()
			tt.edit(&p)
			if got := catalog.BuildPage(p, fixedNow).Version; got != tt.want {
				t.Fatalf("version = %d, want %d", got, tt.want)
			}
		})
	}
}

// Dimensions can reach Redis out of order (a retried price edit after a
// later name edit). The page built once both arrived must outrank the one
// built in between, or the compare-and-set would keep the stale price.
func TestBuildPageVersionOrdersOutOfOrderArrivals(t *testing.T) {
	between := fullParts()
	between.Base.Version, between.Price.Version = 101, 90 // name edit applied, price edit not yet
	after := fullParts()
	after.Base.Version, after.Price.Version = 101, 100
	vb, va := catalog.BuildPage(between, fixedNow).Version, catalog.BuildPage(after, fixedNow).Version
	if va <= vb {
		t.Fatalf("page with both edits has version %d, not above the in-between page's %d", va, vb)
	}
}

func TestBuildPageListPrice(t *testing.T) {
	tests := []struct {
		amount, list string
		wantList     string
	}{
		{"5599.00", "5999.00", "5999.00"},
		{"5599.00", "", ""},
		{"5599.00", "5599.00", ""},
		{"5599.00", "5599", ""}, // the same amount spelled differently
		{"5599.00", "5000.00", ""},
		{"99.5", "100", "100"},
		{"9.99", "10.00", "10.00"},
		{"100", "99.99", ""},
	}
	for _, tt := range tests {
		t.Run(tt.amount+" vs "+tt.list, func(t *testing.T) {
			p := fullParts()
			p.Price.Amount, p.Price.List = tt.amount, tt.list
			doc := catalog.BuildPage(p, fixedNow)
			if doc.Price.List != tt.wantList {
				t.Fatalf("list shown = %q, want %q", doc.Price.List, tt.wantList)
			}
			if doc.Price.Amount != tt.amount {
				t.Fatalf("amount = %q, want %q", doc.Price.Amount, tt.amount)
			}
		})
	}
}

func TestBuildPageCurrencySymbol(t *testing.T) {
	for _, tt := range []struct{ currency, symbol string }{
		{"CNY", "¥"}, {"USD", "$"}, {"EUR", "€"}, {"GBP", "£"}, {"CHF", "CHF "},
	} {
		t.Run(tt.currency, func(t *testing.T) {
			p := fullParts()
			p.Price.Currency = tt.currency
			if got := catalog.BuildPage(p, fixedNow).Price; got.Symbol != tt.symbol || got.Currency != tt.currency {
				t.Fatalf("price = %+v, want symbol %q", got, tt.symbol)
			}
		})
	}
}

func TestBuildPageStockLabels(t *testing.T) {
	tests := []struct {
		available  int64
		status     string
		label      string
		wantAvail  int64
		noStockDim bool
	}{
		{available: 0, status: "out_of_stock", label: "Out of stock"},
		{available: -5, status: "out_of_stock", label: "Out of stock"},
		{available: 1, status: "low_stock", label: "Only 1 left", wantAvail: 1},
		{available: 10, status: "low_stock", label: "Only 10 left", wantAvail: 10},
		{available: 11, status: "in_stock", label: "In stock", wantAvail: 11},
		{available: 5000, status: "in_stock", label: "In stock", wantAvail: 5000},
		{noStockDim: true, status: "out_of_stock", label: "Out of stock"},
	}
	for _, tt := range tests {
		name := itoa(tt.available)
		if tt.noStockDim {
			name = "no stock dimension"
		}
		t.Run(name, func(t *testing.T) {
			p := fullParts()
			p.Stock.Available = tt.available
			if tt.noStockDim {
				p.Stock = nil
			}
			got := catalog.BuildPage(p, fixedNow).Stock
			if got.Status != tt.status || !strings.Contains(got.Label, tt.label) || got.Available != tt.wantAvail {
				t.Fatalf("stock = %+v, want status %q, label containing %q, available %d", got, tt.status, tt.label, tt.wantAvail)
			}
		})
	}
}

func TestBuildPageRecommendations(t *testing.T) {
	doc := catalog.BuildPage(fullParts(), fixedNow)
	want := []catalog.PageRecItem{
		{ID: 2, Name: "two", Price: "99.00", Image: "/img/p/2/0.svg"},
		{ID: 4, Name: "four"}, // known, but no price and no image
	}
	if len(doc.Recommendations) != len(want) {
		t.Fatalf("recommendations = %+v, want %+v (self and unknown ids skipped)", doc.Recommendations, want)
	}
	for i := range want {
		if doc.Recommendations[i] != want[i] {
			t.Fatalf("recommendations[%d] = %+v, want %+v", i, doc.Recommendations[i], want[i])
		}
	}
}

func TestBuildPageCopiesFields(t *testing.T) {
	p := fullParts()
	doc := catalog.BuildPage(p, fixedNow)
	if doc.ID != 1 || doc.ShopID != 2 || doc.Name != "手机" || doc.DescriptionHTML != "<p>desc</p>" || len(doc.Specs) != 1 {
		t.Fatalf("doc = %+v", doc)
	}
	if doc.UpdatedAt != "2024-05-01T04:30:00Z" {
		t.Fatalf("updated_at = %q, want RFC 3339 in UTC", doc.UpdatedAt)
	}
	// The document must not alias the caller's slices: a later edit of
	// the parts must not change a built (and maybe cached) page.
	p.Base.Category[0] = "changed"
	p.Base.Images[0].URL = "/changed"
	if doc.Category[0] != "数码" || doc.Images[0].URL != "/img/p/1/0.svg" {
		t.Fatalf("doc aliases the parts' slices: %+v", doc)
	}
}

func TestBuildPageNilDimensionsEncodeEmptyLists(t *testing.T) {
	tests := []struct {
		name  string
		parts catalog.Parts
	}{
		{name: "only base, nil slices", parts: catalog.Parts{Base: catalog.Product{Version: 1, ID: 5, ShopID: 1, Name: "x"}}},
		{name: "dims with nil slices", parts: catalog.Parts{
			Base:      catalog.Product{Version: 1, ID: 5, ShopID: 1, Name: "x"},
			Spec:      &catalog.Spec{Version: 2},
			Recommend: &catalog.Recommendations{Version: 3},
		}},
		{name: "recommendations all unknown", parts: catalog.Parts{
			Base:      catalog.Product{Version: 1, ID: 5, ShopID: 1, Name: "x"},
			Recommend: &catalog.Recommendations{Version: 3, IDs: []int64{8, 9, 5}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(catalog.BuildPage(tt.parts, fixedNow))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "null") {
				t.Fatalf("page JSON has a null: %s", b)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"category", "images", "specs", "recommendations"} {
				if string(m[k]) != "[]" {
					t.Errorf("%s = %s, want []", k, m[k])
				}
			}
		})
	}
}
