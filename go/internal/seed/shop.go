package seed

import (
	"math"
	"strconv"
	"strings"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// shopKind says what a shop sells. Shop ids cycle through the categories:
// shop id belongs to category (id-1) % NumCategories. The first shops of a
// category are the official flagship stores of its brands, one per brand;
// later ones are either a brand's authorised store or a themed
// multi-brand store.
type shopKind struct {
	cat      int
	brand    int // index into the category's brands, or -1 for a multi-brand store
	flagship bool
}

func shopKindOf(id int64) shopKind {
	cat := int((id - 1) % NumCategories)
	k := (id - 1) / NumCategories
	brands := categories[cat].brands
	if k < int64(len(brands)) {
		return shopKind{cat: cat, brand: int(k), flagship: true}
	}
	h := mix(uint64(id) ^ saltShopKind)
	if h%10 < 4 {
		return shopKind{cat: cat, brand: int((h >> 8) % uint64(len(brands)))}
	}
	return shopKind{cat: cat, brand: -1}
}

// ratings are tenths from 4.2 to 5.0, weighted towards 4.7–4.8.
var ratingWeights = [...]int{1, 1, 2, 4, 8, 12, 14, 10, 4} // 4.2 .. 5.0

// Shop generates shop id. Ids below 1 are taken as 1.
func Shop(id int64) catalog.Shop {
	id = max(id, 1)
	k := shopKindOf(id)
	cat := &categories[k.cat]
	r := newRand(id, streamShop)
	city := cities[r.IntN(len(cities))]

	var name string
	switch {
	case k.flagship:
		name = join(cat.brands[k.brand], "官方旗舰店")
	case k.brand >= 0:
		name = join(cat.brands[k.brand], city.short+"专卖店")
	default:
		theme, suffix := pick(r, cat.themes), pick(r, cat.suffixes)
		// "木语家居" + "家居馆" is "木语家居馆", not "木语家居家居馆".
		if len(suffix) > 6 && strings.HasSuffix(theme, suffix[:6]) {
			suffix = suffix[6:]
		}
		name = join(theme, suffix)
		if r.IntN(4) == 0 && !isLatin(theme) {
			name = city.short + name
		}
	}

	total := 0
	for _, w := range ratingWeights {
		total += w
	}
	u := r.IntN(total)
	rating := 42
	for _, w := range ratingWeights {
		if u < w {
			break
		}
		u -= w
		rating++
	}
	if k.flagship {
		rating = min(rating+1, 50)
	}
	service := min(max(rating+r.IntN(3)-1, 42), 50)

	followers := 300 * math.Pow(1000, r.Float64()) // 300 .. 300k
	if k.flagship {
		followers = 50_000 * math.Pow(160, r.Float64()) // 50k .. 8M
	}

	b := []string{}
	if k.flagship {
		b = append(b, officialBadge)
	}
	b = append(b, choose(r, badges, r.IntN(4-len(b)))...)

	return catalog.Shop{
		ID:           id,
		Name:         name,
		Logo:         "/img/s/" + strconv.FormatInt(id, 10) + ".svg",
		Location:     city.full,
		OpenedYear:   2008 + r.IntN(17),
		Rating:       tenths(rating),
		ServiceScore: tenths(service),
		Followers:    int64(followers),
		Badges:       b,
	}
}

func tenths(t int) string { return strconv.Itoa(t/10) + "." + strconv.Itoa(t%10) }

// join concatenates two name parts, with a space after a Latin word
// ("Northwind Home 家居馆") and none between Chinese ones ("山野户外专营店").
func join(a, b string) string {
	if isLatin(a) {
		return a + " " + b
	}
	return a + b
}

// isLatin reports whether s ends in an ASCII character ("Northwind Home").
func isLatin(s string) bool { return s != "" && s[len(s)-1] < 0x80 }
