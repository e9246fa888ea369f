package realtime

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// The parts an answer merges, each from its own source service.
const (
	partPrice = iota
	partStock
	numParts
)

var partNames = [numParts]string{"price", "stock"}

var partDims = [numParts]catalog.Dimension{catalog.DimPrice, catalog.DimStock}

// value is one part of one product, decoded once when it arrives (from
// the source, or Redis as the last good value): the price in cents, or the
// stock count.
type value struct {
	version   int64
	amount    int64 // price: cents
	list      int64 // price: cents (0: none)
	currency  string
	available int64 // stock
}

// decodePart decodes a catalog.Price or catalog.Stock record of id.
func decodePart(part int, id int64, raw []byte) (value, error) {
	switch part {
	case partPrice:
		var p catalog.Price
		if err := json.Unmarshal(raw, &p); err != nil {
			return value{}, fmt.Errorf("decode price %d: %w", id, err)
		}
		amount, err := parseCents(p.Amount)
		if err != nil {
			return value{}, fmt.Errorf("price %d: %w", id, err)
		}
		v := value{version: p.Version, amount: amount, currency: p.Currency}
		if p.List != "" {
			if v.list, err = parseCents(p.List); err != nil {
				return value{}, fmt.Errorf("price %d list: %w", id, err)
			}
		}
		return v, nil
	default:
		var s catalog.Stock
		if err := json.Unmarshal(raw, &s); err != nil {
			return value{}, fmt.Errorf("decode stock %d: %w", id, err)
		}
		return value{version: s.Version, available: s.Available}, nil
	}
}

// Levels a part is served from, as counted in
// detailpage_realtime_parts_total{level}.
const (
	levelLRU      = "lru"      // a fresh local entry
	levelLive     = "live"     // the source service, now
	levelLastGood = "lastgood" // the newest of the local entry (however old) and Redis
	levelNone     = "none"     // nothing anywhere: the part is omitted
)

// resolved is one part of one answer and where it came from.
type resolved struct {
	val   value
	level string
	at    time.Time // when the value was known good (zero: unknown)
}

func (r *resolved) ok() bool { return r.level != levelNone && r.level != "" }
func (r *resolved) stale() bool {
	return r.level == levelLastGood || r.level == levelNone || r.level == ""
}

// Object is one product's realtime answer.
type Object struct {
	ID        int64      `json:"id"`
	Price     string     `json:"price,omitempty"`
	ListPrice string     `json:"list_price,omitempty"`
	Currency  string     `json:"currency,omitempty"`
	Stock     *StockPart `json:"stock,omitempty"`
	Promotion *Promotion `json:"promotion,omitempty"`
	Shipping  Shipping   `json:"shipping"`
	Versions  Versions   `json:"versions"`
	Version   int64      `json:"version"`
	Stale     bool       `json:"stale"`
	// StaleParts and AgeMS are only there when Stale is: the parts that
	// came from a fallback (or are missing), and the age of the fallback
	// values whose age is known, in milliseconds.
	StaleParts []string         `json:"stale_parts,omitempty"`
	AgeMS      map[string]int64 `json:"age_ms,omitempty"`
}

// StockPart is the stock as a status: out (none left), low (1 to
// catalog.LowStock left; Quantity says how many) or in_stock.
type StockPart struct {
	Status   string `json:"status"`
	Quantity int64  `json:"quantity,omitempty"`
}

// Promotion is the active promotion, derived from the price record: a
// discount when the list price is above the price.
type Promotion struct {
	Type  string `json:"type"`
	Label string `json:"label"`
	Save  string `json:"save"`
}

// Versions are the versions of the parts the answer holds.
type Versions struct {
	Price int64 `json:"price,omitempty"`
	Stock int64 `json:"stock,omitempty"`
}

// stockStatus converts a stock count into its status.
func stockStatus(available int64) StockPart {
	switch {
	case available <= 0:
		return StockPart{Status: "out"}
	case available <= catalog.LowStock:
		return StockPart{Status: "low", Quantity: available}
	default:
		return StockPart{Status: "in_stock"}
	}
}

// buildObject merges the parts of id into its answer for region r.
func buildObject(id int64, parts *[numParts]resolved, r *Region, now time.Time) Object {
	o := Object{ID: id}
	p, s := &parts[partPrice], &parts[partStock]
	if p.ok() {
		o.Price = formatCents(p.val.amount)
		o.Currency = p.val.currency
		o.Versions.Price = p.val.version
		if p.val.list > p.val.amount {
			o.ListPrice = formatCents(p.val.list)
			save := formatCents(p.val.list - p.val.amount)
			sym := catalog.CurrencySymbol(p.val.currency)
			o.Promotion = &Promotion{Type: "discount", Label: "直降 " + sym + save + " Save " + sym + save, Save: save}
		}
	}
	if s.ok() {
		st := stockStatus(s.val.available)
		o.Stock = &st
		o.Versions.Stock = s.val.version
	}
	o.Shipping = shipping(r, p.val.amount, p.ok())
	o.Version = max(o.Versions.Price, o.Versions.Stock)
	for i := range parts {
		part := &parts[i]
		if !part.stale() {
			continue
		}
		o.Stale = true
		o.StaleParts = append(o.StaleParts, partNames[i])
		if part.ok() && !part.at.IsZero() {
			if o.AgeMS == nil {
				o.AgeMS = make(map[string]int64, numParts)
			}
			o.AgeMS[partNames[i]] = max(0, now.Sub(part.at).Milliseconds())
		}
	}
	return o
}
