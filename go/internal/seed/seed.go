// Package seed generates a deterministic, realistic demo catalog: shops and
// products as a Chinese/English e-commerce site would list them.
//
// Every record is a pure function of its id (and, for a product, of the
// catalog size it is generated for): each id seeds its own PCG streams, so
// product N is the same whether one product or a million are generated, in
// any order, and nothing needs to be held in memory between calls.
package seed

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// Bundle is every product dimension of one generated product. Versions are
// left 0: the store assigns them.
type Bundle struct {
	Product   catalog.Product
	Desc      catalog.Description
	Spec      catalog.Spec
	Price     catalog.Price
	Stock     catalog.Stock
	Recommend catalog.Recommendations
}

// Records are the bundle's records, the product first.
func (b *Bundle) Records() []catalog.Record {
	return []catalog.Record{&b.Product, &b.Desc, &b.Spec, &b.Price, &b.Stock, &b.Recommend}
}

// NumCategories is the number of top-level categories.
const NumCategories = 12

// NumViews is the number of distinct gallery view labels; image n of a
// product is labelled ViewLabel(n).
const NumViews = 12

// Independent random streams per id, so that changing how one dimension is
// generated does not reshuffle the others.
const (
	streamBase uint64 = iota + 1
	streamDesc
	streamSpec
	streamPrice
	streamStock
	streamRecommend
	streamShop
	streamShopPick
	saltCategory = 0x6a09e667f3bcc909
	saltShopKind = 0xbb67ae8584caa73b
)

// mix is splitmix64's finaliser: a cheap, well-spread hash of a uint64.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func newRand(id int64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(mix(uint64(id)), mix(uint64(id)^(stream<<56)^stream)))
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// Category returns the category index (0..NumCategories-1) of product id.
// It depends on the id alone, so other packages (artwork) can draw a picture
// that fits the product without generating it.
func Category(id int64) int {
	return int(mix(uint64(id)^saltCategory) % NumCategories)
}

// CategoryKey returns a stable ASCII key for category c ("phone",
// "computer", "appliance", ...), or "" if c is out of range.
func CategoryKey(c int) string {
	if c < 0 || c >= len(categories) {
		return ""
	}
	return categories[c].key
}

// ViewLabel returns the label of gallery picture n ("主图 Main", ...).
func ViewLabel(n int) string {
	if n < 0 {
		n = -n
	}
	return views[n%len(views)]
}

// Item generates product id of a catalog of the given number of shops and
// products: ShopID is in 1..shops and recommendations name other products in
// 1..products. shops and products below 1 are taken as 1.
func Item(id int64, shops int64, products int64) Bundle {
	shops, products = max(shops, 1), max(products, 1)
	ci := Category(id)
	cat := &categories[ci]
	r := newRand(id, streamBase)
	sb := &cat.subs[r.IntN(len(cat.subs))]

	shopID := pickShop(newRand(id, streamShopPick), ci, shops)
	brand := pick(r, cat.brands)
	if k := shopKindOf(shopID); k.cat == ci && k.brand >= 0 {
		brand = cat.brands[k.brand] // a brand's own shop sells that brand
	}
	model := makeModel(r, cat, sb)
	name := expand(r, sb, cat, brand, model)
	short := strings.TrimSpace(brand + " " + sb.noun)
	if cat.key == "book" {
		short = name[:strings.Index(name, "》")+len("》")]
	}

	nImages := 3 + r.IntN(4)
	images := make([]catalog.Image, nImages)
	for n := range images {
		images[n] = catalog.Image{URL: imageURL(id, n), Alt: short + " " + views[n]}
	}

	points := choose(r, sb.points, 1+r.IntN(2))
	points = append(points, choose(r, cat.points, 1+r.IntN(2))...)
	subtitle := strings.Join(points, "｜")
	if r.IntN(3) == 0 {
		subtitle = pick(r, promos) + subtitle
	}

	b := Bundle{
		Product: catalog.Product{
			ID:       id,
			ShopID:   shopID,
			Name:     name,
			Subtitle: subtitle,
			Brand:    brand,
			Category: []string{cat.name, sb.name},
			Images:   images,
		},
	}
	b.Spec = catalog.Spec{ProductID: id, Groups: makeSpec(newRand(id, streamSpec), id, cat, sb, brand, model)}
	b.Price = makePrice(newRand(id, streamPrice), id, sb)
	b.Stock = catalog.Stock{ProductID: id, Available: makeStock(newRand(id, streamStock))}
	b.Recommend = catalog.Recommendations{ProductID: id, IDs: makeRecs(newRand(id, streamRecommend), id, ci, products)}
	b.Desc = catalog.Description{ProductID: id, HTML: makeDesc(newRand(id, streamDesc), id, cat, sb, name, short, nImages, b.Spec.Groups)}
	return b
}

var promos = l("【领券立减】", "【限时直降】", "【新品上市】", "【官方正品】", "【爆款热卖】", "【顺丰包邮】")

func imageURL(id int64, n int) string {
	return "/img/p/" + strconv.FormatInt(id, 10) + "/" + strconv.Itoa(n) + ".svg"
}

// pickShop picks a shop of the product's category when there is one: shop
// ids cycle through the categories (see Shop).
func pickShop(r *rand.Rand, ci int, shops int64) int64 {
	first := int64(ci) + 1
	if shops < first {
		return 1 + r.Int64N(shops)
	}
	return first + NumCategories*r.Int64N((shops-first)/NumCategories+1)
}

func makeModel(r *rand.Rand, cat *category, sb *sub) string {
	m := cat.model
	if sb.models != nil {
		m.prefixes = sb.models
	}
	n := m.lo + r.IntN(m.hi-m.lo+1)
	if cat.key == "book" {
		// A plausible-looking ISBN-13; the check digit is computed.
		digits := "9787" + strconv.Itoa(100+r.IntN(900)) + strconv.Itoa(n) + strconv.Itoa(1000 + r.IntN(9000))[1:]
		sum := 0
		for i := 0; i < len(digits); i++ {
			w := 1
			if i%2 == 1 {
				w = 3
			}
			sum += int(digits[i]-'0') * w
		}
		return "978-7-" + digits[4:7] + "-" + digits[7:11] + "-" + digits[11:] + "-" + strconv.Itoa((10-sum%10)%10)
	}
	return pick(r, m.prefixes) + strconv.Itoa(n) + pick(r, m.suffixes)
}

// expand fills a name template: $b brand, $m model, $a adjective, $0..$2
// variant choices, $t a book title, $w an author.
func expand(r *rand.Rand, sb *sub, cat *category, brand, model string) string {
	var out strings.Builder
	out.Grow(len(sb.tmpl) + 64)
	t := sb.tmpl
	for i := 0; i < len(t); i++ {
		if t[i] != '$' || i+1 == len(t) {
			out.WriteByte(t[i])
			continue
		}
		i++
		switch c := t[i]; c {
		case 'b':
			out.WriteString(brand)
		case 'm':
			out.WriteString(model)
		case 'a':
			out.WriteString(pick(r, cat.adjs))
		case 't':
			out.WriteString(pick(r, sb.titles[0]))
			out.WriteString(pick(r, sb.titles[1]))
		case 'w':
			out.WriteString(pick(r, surnames))
			out.WriteString(pick(r, givenNames))
		case '0', '1', '2':
			if v := int(c - '0'); v < len(sb.vars) {
				out.WriteString(pick(r, sb.vars[v]))
			}
		default:
			out.WriteByte('$')
			out.WriteByte(c)
		}
	}
	return strings.Join(strings.Fields(out.String()), " ")
}

// choose returns k distinct elements of xs in their original order
// (selection sampling, Knuth's algorithm S).
func choose[T any](r *rand.Rand, xs []T, k int) []T {
	k = min(k, len(xs))
	out := make([]T, 0, k)
	for i := 0; i < len(xs) && len(out) < k; i++ {
		if r.IntN(len(xs)-i) < k-len(out) {
			out = append(out, xs[i])
		}
	}
	return out
}

func makeSpec(r *rand.Rand, id int64, cat *category, sb *sub, brand, model string) []catalog.SpecGroup {
	groups := sb.specs
	if groups == nil {
		groups = cat.specs
	}
	main := []catalog.SpecItem{
		{Name: "品牌 Brand", Value: brand},
		{Name: cat.modelLabel, Value: model},
		{Name: "商品编号 Item no.", Value: strconv.FormatInt(id, 10)},
		{Name: "上市时间 Launched", Value: strconv.Itoa(2021+r.IntN(5)) + "年" + strconv.Itoa(1+r.IntN(12)) + "月"},
		{Name: "产地 Made in", Value: pick(r, origins)},
		{Name: "类别 Type", Value: sb.noun},
	}
	if cat.key == "book" {
		main[0].Name = "出版社 Publisher"
	}
	main = choose(r, main, 3+r.IntN(4))
	out := make([]catalog.SpecGroup, 0, 4)
	out = append(out, catalog.SpecGroup{Name: "主体 Main", Items: main})
	for _, gr := range choose(r, groups, 1+r.IntN(3)) {
		n := min(len(gr.items), 3+r.IntN(6))
		defs := choose(r, gr.items, n)
		items := make([]catalog.SpecItem, len(defs))
		for i, d := range defs {
			items[i] = catalog.SpecItem{Name: d.name, Value: pick(r, d.values)}
		}
		out = append(out, catalog.SpecGroup{Name: gr.name, Items: items})
	}
	return out
}

// makePrice picks a log-uniform price in the sub-category's range and
// rounds it the way shops do: 5599.00, 299.00, 39.90.
func makePrice(r *rand.Rand, id int64, sb *sub) catalog.Price {
	lo, hi := float64(sb.lo), float64(sb.hi)
	x := lo * math.Pow(hi/lo, r.Float64())
	amount := nice(r, x, false)
	p := catalog.Price{ProductID: id, Amount: formatCents(amount), Currency: "CNY"}
	if r.IntN(100) < 40 {
		list := nice(r, float64(amount)/100*(1.1+0.35*r.Float64()), true)
		if list <= amount {
			list = amount + 1000
		}
		p.List = formatCents(list)
	}
	return p
}

// nice rounds yuan x to a shop-like price in cents; up rounds upwards.
func nice(r *rand.Rand, x float64, up bool) int64 {
	round := func(v, step float64) float64 {
		if up {
			return math.Ceil(v/step) * step
		}
		return math.Floor(v/step) * step
	}
	switch {
	case x >= 1000:
		step := 100.0
		if r.IntN(2) == 0 {
			step = 50
		}
		return int64(round(x, step)-1) * 100 // 5599.00, 5549.00
	case x >= 100:
		return int64(round(x, 10)-1) * 100 // 299.00
	default:
		c := int64(round(x, 1)) * 100
		switch r.IntN(3) {
		case 0:
			c -= 10 // 39.90
		case 1:
			c -= 20 // 39.80
		default:
			c -= 1 // 39.99
		}
		return max(c, 90)
	}
}

func formatCents(c int64) string {
	frac := c % 100
	s := strconv.FormatInt(c/100, 10) + "."
	if frac < 10 {
		s += "0"
	}
	return s + strconv.FormatInt(frac, 10)
}

// makeStock: about 5% out of stock, 10% low (1..10), the rest 11..5000.
func makeStock(r *rand.Rand) int64 {
	switch u := r.IntN(100); {
	case u < 5:
		return 0
	case u < 15:
		return 1 + r.Int64N(catalog.LowStock)
	case u < 60:
		return 11 + r.Int64N(290)
	default:
		return 11 + r.Int64N(4990)
	}
}

// makeRecs picks 4–8 other products, about three in four of the same
// category. Candidates are drawn at random and filtered by Category, so no
// index of the catalog is needed.
func makeRecs(r *rand.Rand, id int64, ci int, products int64) []int64 {
	want := int(min(int64(4+r.IntN(5)), products-1))
	if want <= 0 {
		return []int64{}
	}
	ids := make([]int64, 0, want)
	has := func(c int64) bool {
		if c == id {
			return true
		}
		for _, x := range ids {
			if x == c {
				return true
			}
		}
		return false
	}
	// want < products, so an unused candidate always exists.
	for len(ids) < want {
		same := r.IntN(4) != 0
		for tries := 0; ; tries++ {
			c := 1 + r.Int64N(products)
			if has(c) || (same && tries < 48 && Category(c) != ci) {
				continue
			}
			ids = append(ids, c)
			break
		}
	}
	return ids
}
