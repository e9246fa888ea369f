package seed

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/microcosm-cc/bluemonday"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

const (
	testShops    = 240
	testProducts = 10_000
)

// testIDs are 1..2000 and a few large ids.
func testIDs() []int64 {
	ids := make([]int64, 0, 2010)
	for id := int64(1); id <= 2000; id++ {
		ids = append(ids, id)
	}
	return append(ids, 9_999, 10_000, 123_456_789, 1<<40, 999_999_999_999, catalog.MaxID-1, catalog.MaxID)
}

func MustValid(tb testing.TB, what string, id int64, v interface{ Validate() error }) {
	tb.Helper()
	if err := v.Validate(); err != nil {
		tb.Fatalf("%s %d: %v", what, id, err)
	}
}

func TestItemValid(t *testing.T) {
	imgRe := regexp.MustCompile(`^/img/p/([0-9]+)/([0-9]+)\.svg$`)
	descImgRe := regexp.MustCompile(`<img src="/img/p/([0-9]+)/([0-9]+)\.svg" alt="[^"]+">`)
	for _, id := range testIDs() {
		products := max(int64(testProducts), id)
		b := Item(id, testShops, products)
		MustValid(t, "product", id, &b.Product)
		MustValid(t, "desc", id, &b.Desc)
		MustValid(t, "spec", id, &b.Spec)
		MustValid(t, "price", id, &b.Price)
		MustValid(t, "stock", id, &b.Stock)
		MustValid(t, "recommend", id, &b.Recommend)

		p := b.Product
		if p.ID != id || b.Desc.ProductID != id || b.Spec.ProductID != id || b.Price.ProductID != id ||
			b.Stock.ProductID != id || b.Recommend.ProductID != id {
			t.Fatalf("item %d: ids do not match: %+v", id, b)
		}
		if p.Version|b.Desc.Version|b.Spec.Version|b.Price.Version|b.Stock.Version|b.Recommend.Version != 0 {
			t.Fatalf("item %d: versions must be 0", id)
		}
		if p.ShopID < 1 || p.ShopID > testShops {
			t.Fatalf("item %d: shop_id %d out of 1..%d", id, p.ShopID, testShops)
		}
		if len(p.Category) != 2 || p.Category[0] != categories[Category(id)].name {
			t.Fatalf("item %d: category %q", id, p.Category)
		}
		if p.Brand == "" || p.Subtitle == "" {
			t.Fatalf("item %d: brand %q subtitle %q", id, p.Brand, p.Subtitle)
		}
		if n := len(p.Images); n < 3 || n > 6 {
			t.Fatalf("item %d: %d images", id, n)
		}
		for n, im := range p.Images {
			m := imgRe.FindStringSubmatch(im.URL)
			if m == nil || m[1] != strconv.FormatInt(id, 10) || m[2] != strconv.Itoa(n) || im.Alt == "" {
				t.Fatalf("item %d: image %d: %+v", id, n, im)
			}
		}

		html := b.Desc.HTML
		if len(html) < 1024 || len(html) > 6*1024 {
			t.Fatalf("item %d: description is %d bytes, want 1–6 KB", id, len(html))
		}
		imgs := descImgRe.FindAllStringSubmatch(html, -1)
		if len(imgs) < 1 || len(imgs) > 2 || strings.Count(html, "<img") != len(imgs) {
			t.Fatalf("item %d: description images %q", id, imgs)
		}
		for _, m := range imgs {
			if n, _ := strconv.Atoi(m[2]); m[1] != strconv.FormatInt(id, 10) || n >= len(p.Images) {
				t.Fatalf("item %d: description image %q", id, m[0])
			}
		}

		if n := len(b.Spec.Groups); n < 2 || n > 4 {
			t.Fatalf("item %d: %d spec groups", id, n)
		}
		for _, g := range b.Spec.Groups {
			if n := len(g.Items); n < 3 || n > 8 {
				t.Fatalf("item %d: spec group %q has %d items", id, g.Name, n)
			}
		}

		pr := b.Price
		if pr.Currency != "CNY" || !strings.Contains(pr.Amount, ".") || len(pr.Amount)-strings.Index(pr.Amount, ".") != 3 {
			t.Fatalf("item %d: price %+v", id, pr)
		}
		if pr.List != "" && mustCents(t, pr.List) <= mustCents(t, pr.Amount) {
			t.Fatalf("item %d: list %s not above amount %s", id, pr.List, pr.Amount)
		}
		if mustCents(t, pr.Amount) <= 0 {
			t.Fatalf("item %d: price %s", id, pr.Amount)
		}

		if b.Stock.Available < 0 || b.Stock.Available > 5000 {
			t.Fatalf("item %d: stock %d", id, b.Stock.Available)
		}

		recs := b.Recommend.IDs
		if len(recs) < 4 || len(recs) > 8 {
			t.Fatalf("item %d: %d recommendations", id, len(recs))
		}
		seen := map[int64]bool{}
		for _, r := range recs {
			if r == id || r < 1 || r > products || seen[r] {
				t.Fatalf("item %d: recommendations %v", id, recs)
			}
			seen[r] = true
		}
	}
}

func mustCents(tb testing.TB, s string) int64 {
	tb.Helper()
	whole, frac, _ := strings.Cut(s, ".")
	w, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || len(frac) != 2 {
		tb.Fatalf("price %q: want two fraction digits", s)
	}
	return w*100 + f
}

// The description survives bluemonday's UGC policy unchanged.
func TestDescriptionSanitized(t *testing.T) {
	policy := bluemonday.UGCPolicy()
	for id := int64(1); id <= 500; id++ {
		html := Item(id, testShops, testProducts).Desc.HTML
		if got := policy.Sanitize(html); got != html {
			t.Fatalf("item %d: sanitizing changes the description\n got: %s\nwant: %s", id, got, html)
		}
	}
}

func TestShopValid(t *testing.T) {
	ids := []int64{0, -5, 1_000, 123_456_789, catalog.MaxID}
	for id := int64(1); id <= 600; id++ {
		ids = append(ids, id)
	}
	names := map[string]bool{}
	for _, id := range ids {
		s := Shop(id)
		MustValid(t, "shop", id, &s)
		if s.ID != max(id, 1) || s.Version != 0 {
			t.Fatalf("shop %d: id %d version %d", id, s.ID, s.Version)
		}
		if s.Logo != "/img/s/"+strconv.FormatInt(s.ID, 10)+".svg" || s.Location == "" {
			t.Fatalf("shop %d: %+v", id, s)
		}
		if s.OpenedYear < 2008 || s.OpenedYear > 2024 {
			t.Fatalf("shop %d: opened %d", id, s.OpenedYear)
		}
		for _, v := range []string{s.Rating, s.ServiceScore} {
			if len(v) != 3 || v < "4.2" || v > "5.0" {
				t.Fatalf("shop %d: rating %q service %q", id, s.Rating, s.ServiceScore)
			}
		}
		if s.Followers <= 0 || len(s.Badges) > 3 || s.Badges == nil {
			t.Fatalf("shop %d: followers %d badges %q", id, s.Followers, s.Badges)
		}
		official := strings.HasSuffix(s.Name, "官方旗舰店")
		if official != (len(s.Badges) > 0 && s.Badges[0] == officialBadge) {
			t.Fatalf("shop %d: %q badges %q", id, s.Name, s.Badges)
		}
		if id <= 200 {
			names[s.Name] = true
		}
	}
	if len(names) < 150 {
		t.Errorf("only %d distinct names over the first 200 shops", len(names))
	}
}

// A product of a brand's own shop is of that brand.
func TestShopSellsItsBrand(t *testing.T) {
	for id := int64(1); id <= 2000; id++ {
		p := Item(id, testShops, testProducts).Product
		if Category(id) != shopKindOf(p.ShopID).cat {
			t.Fatalf("item %d (category %d) sold by shop %d of category %d", id, Category(id), p.ShopID, shopKindOf(p.ShopID).cat)
		}
		shop := Shop(p.ShopID)
		if strings.HasSuffix(shop.Name, "官方旗舰店") && !strings.HasPrefix(shop.Name, p.Brand) {
			t.Fatalf("item %d of brand %q sold by %q", id, p.Brand, shop.Name)
		}
	}
}

func TestDeterministic(t *testing.T) {
	const n = 300
	forward := make([]Bundle, n+1)
	for id := int64(1); id <= n; id++ {
		forward[id] = Item(id, testShops, testProducts)
	}
	for id := int64(n); id >= 1; id-- {
		if got := Item(id, testShops, testProducts); !reflect.DeepEqual(got, forward[id]) {
			t.Fatalf("item %d differs between calls", id)
		}
		if !reflect.DeepEqual(Shop(id), Shop(id)) {
			t.Fatalf("shop %d differs between calls", id)
		}
	}
	// Pinned values: a change to the generator must be a deliberate one,
	// since it changes every demo catalog.
	b := Item(1, testShops, testProducts)
	if b.Product.Name != "美家 406升 变频十字对开门冰箱 风冷无霜 BCD-W511HE 云母白" ||
		b.Price.Amount != "6449.00" || b.Stock.Available != 38 ||
		!reflect.DeepEqual(b.Recommend.IDs, []int64{451, 1118, 3429, 4841}) || Shop(1).Name != "星耀官方旗舰店" {
		t.Errorf("item 1 changed: %q %q %d %v, shop 1 %q", b.Product.Name, b.Price.Amount, b.Stock.Available, b.Recommend.IDs, Shop(1).Name)
	}
	// The catalog size only affects the shop, its brand and the recommendations.
	norm := func(b Bundle) string {
		j, err := json.Marshal([]any{b.Product.Name, b.Product.Subtitle, b.Product.Category, b.Product.Images,
			b.Desc, b.Spec, b.Price, b.Stock})
		if err != nil {
			t.Fatal(err)
		}
		return strings.ReplaceAll(string(j), b.Product.Brand, "BRAND")
	}
	for id := int64(1); id <= 100; id++ {
		if small, big := Item(id, 12, 50), Item(id, 100_000, 1_000_000); norm(small) != norm(big) {
			t.Fatalf("item %d: content depends on the catalog size:\n%s\n%s", id, norm(small), norm(big))
		}
	}
}

func TestVaried(t *testing.T) {
	const n = 1000
	names := map[string]bool{}
	cats := map[string]int{}
	subs := map[string]bool{}
	var out, low, list, sameRecs, recs int
	for id := int64(1); id <= n; id++ {
		b := Item(id, testShops, testProducts)
		names[b.Product.Name] = true
		cats[b.Product.Category[0]]++
		subs[b.Product.Category[1]] = true
		switch s := b.Stock.Available; {
		case s == 0:
			out++
		case s <= catalog.LowStock:
			low++
		}
		if b.Price.List != "" {
			list++
		}
		for _, r := range b.Recommend.IDs {
			recs++
			if Category(r) == Category(id) {
				sameRecs++
			}
		}
	}
	if len(names) < 500 {
		t.Errorf("%d distinct names over %d products, want at least 500", len(names), n)
	}
	if len(cats) != NumCategories || len(categories) != NumCategories {
		t.Errorf("%d categories appear, want %d: %v", len(cats), NumCategories, cats)
	}
	for c, k := range cats {
		if k < n/NumCategories/2 {
			t.Errorf("category %q: only %d products", c, k)
		}
	}
	if len(subs) < 30 {
		t.Errorf("only %d sub-categories appear", len(subs))
	}
	check := func(what string, got, lo, hi int) {
		if got < lo || got > hi {
			t.Errorf("%s: %d of %d, want %d..%d", what, got, n, lo, hi)
		}
	}
	check("out of stock", out, 25, 80)
	check("low stock", low, 60, 140)
	check("list price", list, 330, 470)
	if sameRecs*100 < recs*65 {
		t.Errorf("only %d of %d recommendations in the same category", sameRecs, recs)
	}
}

func TestSmallCatalog(t *testing.T) {
	tests := []struct {
		id, shops, products int64
		recs                int
	}{
		{1, 1, 1, 0},
		{1, 0, 0, 0},
		{2, 3, 2, 1},
		{3, 5, 5, 4},
		{7, 12, 9, 0}, // 4..8 recommendations, at most 8
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d/%d", tt.id, tt.shops, tt.products), func(t *testing.T) {
			b := Item(tt.id, tt.shops, tt.products)
			if b.Product.ShopID < 1 || b.Product.ShopID > max(tt.shops, 1) {
				t.Errorf("shop_id %d", b.Product.ShopID)
			}
			if b.Recommend.IDs == nil {
				t.Errorf("recommendations are nil, want empty")
			}
			if tt.recs > 0 && len(b.Recommend.IDs) != tt.recs {
				t.Errorf("%d recommendations, want %d", len(b.Recommend.IDs), tt.recs)
			}
			for _, r := range b.Recommend.IDs {
				if r == tt.id || r < 1 || r > max(tt.products, 1) {
					t.Errorf("recommendations %v", b.Recommend.IDs)
				}
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	for c := range NumCategories {
		if CategoryKey(c) == "" {
			t.Errorf("category %d has no key", c)
		}
	}
	if CategoryKey(-1) != "" || CategoryKey(NumCategories) != "" {
		t.Errorf("out-of-range category keys are not empty")
	}
	if ViewLabel(0) != "主图 Main" || ViewLabel(NumViews) != ViewLabel(0) {
		t.Errorf("view labels: %q %q", ViewLabel(0), ViewLabel(NumViews))
	}
	for _, tt := range []struct {
		cents int64
		want  string
	}{{0, "0.00"}, {5, "0.05"}, {3990, "39.90"}, {559900, "5599.00"}} {
		if got := formatCents(tt.cents); got != tt.want {
			t.Errorf("formatCents(%d) = %q, want %q", tt.cents, got, tt.want)
		}
	}
}

func BenchmarkItem(b *testing.B) {
	b.ReportAllocs()
	id := int64(0)
	for b.Loop() {
		id++
		_ = Item(id, testShops, testProducts)
	}
}

func BenchmarkShop(b *testing.B) {
	b.ReportAllocs()
	id := int64(0)
	for b.Loop() {
		id++
		_ = Shop(id)
	}
}
