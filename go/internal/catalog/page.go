package catalog

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// PageDoc is the aggregated page document stored at item:{<id>}: everything
// templates/item.html needs about one product except its shop, which the
// app tier reads beside it from shop:{s<id>}.
//
// Version is the sum of the versions of the dimensions it was built from.
// Each dimension's version only grows, so a page built from newer dimensions
// always has a higher version — also when dimensions reach Redis out of
// order (a retried price edit after a later name edit): the page built once
// both arrived outranks the one built in between, which the highest
// dimension version alone would not (both would carry the name's version).
type PageDoc struct {
	Version         int64         `json:"version"`
	ID              int64         `json:"id"`
	ShopID          int64         `json:"shop_id"`
	Name            string        `json:"name"`
	Subtitle        string        `json:"subtitle"`
	Brand           string        `json:"brand"`
	Category        []string      `json:"category"`
	Images          []Image       `json:"images"`
	Price           PagePrice     `json:"price"`
	Stock           PageStock     `json:"stock"`
	DescriptionHTML string        `json:"description_html"`
	Specs           []SpecGroup   `json:"specs"`
	Recommendations []PageRecItem `json:"recommendations"`
	// RecsVersion is the version of the recommendation list the
	// recommendations were resolved from; a rebuild reuses them only while
	// that list is current.
	RecsVersion int64  `json:"recs_version,omitempty"`
	UpdatedAt   string `json:"updated_at"` // RFC 3339, UTC
}

// PagePrice is the price as the page shows it.
type PagePrice struct {
	Amount   string `json:"amount"`
	List     string `json:"list"` // "" when there is no higher list price
	Currency string `json:"currency"`
	Symbol   string `json:"symbol"`
}

// PageStock is the stock as the page shows it.
type PageStock struct {
	Available int64  `json:"available"`
	Status    string `json:"status"` // in_stock | low_stock | out_of_stock
	Label     string `json:"label"`
}

// PageRecItem is one recommended product.
type PageRecItem struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Price string `json:"price"`
	Image string `json:"image"`
}

// Missing is the negative marker stored at item:{<id>} for an id that does
// not exist: version 0, so any real write replaces it.
type Missing struct {
	Version int64 `json:"version"`
	Missing bool  `json:"missing"`
}

// MissingJSON is the encoded negative marker.
var MissingJSON = []byte(`{"version":0,"missing":true}`)

// Parts are the dimensions a page document is built from. Recs holds the
// base and price of each recommended product that exists.
type Parts struct {
	Base      Product
	Desc      *Description
	Spec      *Spec
	Price     *Price
	Stock     *Stock
	Recommend *Recommendations
	RecBases  map[int64]Product
	RecPrices map[int64]Price
}

// BuildPage aggregates the dimensions of one product into its page document.
// Missing optional dimensions leave their part empty; the template copes.
func BuildPage(p Parts, now time.Time) PageDoc {
	doc := PageDoc{
		Version:   p.Base.Version,
		ID:        p.Base.ID,
		ShopID:    p.Base.ShopID,
		Name:      p.Base.Name,
		Subtitle:  p.Base.Subtitle,
		Brand:     p.Base.Brand,
		Category:  nonNil(p.Base.Category),
		Images:    nonNil(p.Base.Images),
		Specs:     []SpecGroup{},
		UpdatedAt: now.UTC().Format(time.RFC3339),
	}
	bump := func(v int64) { doc.Version += v }
	if p.Desc != nil {
		bump(p.Desc.Version)
		doc.DescriptionHTML = p.Desc.HTML
	}
	if p.Spec != nil {
		bump(p.Spec.Version)
		doc.Specs = nonNil(p.Spec.Groups)
	}
	if p.Price != nil {
		bump(p.Price.Version)
		doc.Price = pagePrice(*p.Price)
	}
	if p.Stock != nil {
		bump(p.Stock.Version)
		doc.Stock = pageStock(p.Stock.Available)
	} else {
		doc.Stock = pageStock(0)
	}
	doc.Recommendations = []PageRecItem{}
	if p.Recommend != nil {
		bump(p.Recommend.Version)
		doc.RecsVersion = p.Recommend.Version
		for _, id := range p.Recommend.IDs {
			b, ok := p.RecBases[id]
			if !ok || id == p.Base.ID {
				continue
			}
			item := PageRecItem{ID: id, Name: b.Name}
			if len(b.Images) > 0 {
				item.Image = b.Images[0].URL
			}
			if pr, ok := p.RecPrices[id]; ok {
				item.Price = pr.Amount
			}
			doc.Recommendations = append(doc.Recommendations, item)
		}
	}
	return doc
}

// PageMember is the page document member that a price or stock record
// alone decides ("price" or "stock") and its value as BuildPage sets it;
// ok is false for the other dimensions, whose part of the page depends on
// more than the record. An edit of a price or stock can then patch that
// member of a page built from the same other dimensions.
func PageMember(r Record) (name string, value any, ok bool) {
	switch r := r.(type) {
	case *Price:
		return "price", pagePrice(*r), true
	case *Stock:
		return "stock", pageStock(r.Available), true
	}
	return "", nil, false
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return slices.Clone(s)
}

var currencySymbols = map[string]string{"CNY": "¥", "USD": "$", "EUR": "€", "JPY": "¥", "GBP": "£", "HKD": "HK$"}

// CurrencySymbol is the symbol shown before an amount in currency: the
// page's and the realtime service's one table (the code and a space when
// the table has none).
func CurrencySymbol(currency string) string {
	if s := currencySymbols[currency]; s != "" {
		return s
	}
	return currency + " "
}

func pagePrice(p Price) PagePrice {
	out := PagePrice{Amount: p.Amount, Currency: p.Currency, Symbol: currencySymbols[p.Currency]}
	if out.Symbol == "" {
		out.Symbol = p.Currency + " "
	}
	if p.List != "" && p.List != p.Amount && decimalLess(p.Amount, p.List) {
		out.List = p.List
	}
	return out
}

// decimalLess compares two strings that passed isDecimal.
func decimalLess(a, b string) bool {
	var fa, fb float64
	fmt.Sscan(a, &fa)
	fmt.Sscan(b, &fb)
	return fa < fb
}

// LowStock is the count at or below which the page warns that few are left.
const LowStock = 10

func pageStock(n int64) PageStock {
	switch {
	case n <= 0:
		return PageStock{Available: 0, Status: "out_of_stock", Label: "暂时缺货 Out of stock"}
	case n <= LowStock:
		return PageStock{Available: n, Status: "low_stock", Label: fmt.Sprintf("仅剩 %d 件 Only %d left", n, n)}
	default:
		return PageStock{Available: n, Status: "in_stock", Label: "有货 In stock"}
	}
}

// Entity names what a change event is about.
type Entity string

const (
	EntityProduct Entity = "product"
	EntityShop    Entity = "shop"
)

// Change is the event the source services emit through the outbox. Dims
// names the product dimensions that changed (empty for a shop, or for a
// refresh of everything).
type Change struct {
	Entity  Entity      `json:"entity"`
	ID      int64       `json:"id"`
	Version int64       `json:"version"`
	Dims    []Dimension `json:"dims,omitempty"`
	Refresh bool        `json:"refresh,omitempty"` // bulk refresh / preheat, not an edit
	TS      int64       `json:"ts"`                // unix milliseconds when the change was made
}

// Validate checks an event read from Kafka; a bad one goes to the DLQ.
func (c *Change) Validate() error {
	switch c.Entity {
	case EntityProduct, EntityShop:
	default:
		return invalid("entity: unknown %q", truncate(string(c.Entity), 40))
	}
	if c.ID <= 0 || c.ID > MaxID {
		return invalid("id: want a positive id, got %d", c.ID)
	}
	if c.Version < 0 {
		return invalid("version: negative")
	}
	for _, d := range c.Dims {
		if !d.Valid() {
			return invalid("dims: unknown dimension %q", truncate(string(d), 40))
		}
	}
	return nil
}

// DecodeChange parses and validates one Kafka message value.
func DecodeChange(b []byte) (Change, error) {
	if c, ok := decodeChangeFast(b); ok {
		if err := c.Validate(); err != nil {
			return Change{}, err
		}
		return c, nil
	}
	var c Change
	if err := json.Unmarshal(b, &c); err != nil {
		return Change{}, invalid("change: %v", err)
	}
	if err := c.Validate(); err != nil {
		return Change{}, err
	}
	return c, nil
}

// Kafka topics of the write path.
const (
	TopicHigh  = "catalog.changes.high" // edits: handled first
	TopicLow   = "catalog.changes.low"  // bulk refresh and preheat
	TopicRetry = "catalog.retry"
	TopicDLQ   = "catalog.dlq"
)

// Topics lists every topic the broker creates.
var Topics = []string{TopicHigh, TopicLow, TopicRetry, TopicDLQ}
