// Package catalog holds detailpage's domain: the product dimensions the
// source services own, the page document the app tier renders, the change
// events that travel through Kafka, and their validation.
//
// Every record carries a monotonic Version taken from one catalog-wide
// sequence; the page document's version is the sum of the versions of the
// dimensions it was built from (see PageDoc).
// Version is the first field of every JSON encoding on purpose: the Redis
// compare-and-set script reads it from the value's prefix.
package catalog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxID is the largest product or shop id: ids are 1 to 18 decimal digits.
const MaxID = 999_999_999_999_999_999

// MaxBatch is the most ids one batch lookup may name.
const MaxBatch = 100

// Dimension names one part of a product, each owned by one source service
// (see Kinds): the name in change events and the Redis key suffix.
type Dimension string

const (
	DimBase        Dimension = "base"      // product service: name, brand, images, shop
	DimDescription Dimension = "desc"      // description service: sanitized HTML
	DimSpec        Dimension = "spec"      // spec service: grouped key/value table
	DimPrice       Dimension = "price"     // price service
	DimStock       Dimension = "stock"     // stock service
	DimRecommend   Dimension = "recommend" // recommendation service
)

// Valid reports whether d is a known product dimension.
func (d Dimension) Valid() bool {
	for _, k := range ProductDimensions {
		if d == k {
			return true
		}
	}
	return false
}

// Image is one gallery picture.
type Image struct {
	URL string `json:"url"`
	Alt string `json:"alt"`
}

// Product is the base dimension (product service).
type Product struct {
	Version  int64    `json:"version"`
	ID       int64    `json:"id"`
	ShopID   int64    `json:"shop_id"`
	Name     string   `json:"name"`
	Subtitle string   `json:"subtitle"`
	Brand    string   `json:"brand"`
	Category []string `json:"category"`
	Images   []Image  `json:"images"`
}

// Shop is a seller (shop service).
type Shop struct {
	Version      int64    `json:"version"`
	ID           int64    `json:"id"`
	Name         string   `json:"name"`
	Logo         string   `json:"logo"`
	Location     string   `json:"location"`
	OpenedYear   int      `json:"opened_year"`
	Rating       string   `json:"rating"`        // "4.8", a string like every decimal
	ServiceScore string   `json:"service_score"` // "4.9"
	Followers    int64    `json:"followers"`
	Badges       []string `json:"badges"`
}

// Description is the description dimension: HTML sanitized on write.
type Description struct {
	Version   int64  `json:"version"`
	ProductID int64  `json:"product_id"`
	HTML      string `json:"html"`
}

// SpecItem is one row of a specification table.
type SpecItem struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// SpecGroup is one titled section of a specification table.
type SpecGroup struct {
	Name  string     `json:"name"`
	Items []SpecItem `json:"items"`
}

// Spec is the specification dimension.
type Spec struct {
	Version   int64       `json:"version"`
	ProductID int64       `json:"product_id"`
	Groups    []SpecGroup `json:"groups"`
}

// Price is the price dimension. Amounts are decimal strings ("5599.50") so
// that no renderer formats a float.
type Price struct {
	Version   int64  `json:"version"`
	ProductID int64  `json:"product_id"`
	Amount    string `json:"amount"`
	List      string `json:"list"`
	Currency  string `json:"currency"`
}

// Stock is the stock dimension.
type Stock struct {
	Version   int64 `json:"version"`
	ProductID int64 `json:"product_id"`
	Available int64 `json:"available"`
}

// Recommendations is the recommendation dimension: other products to show.
type Recommendations struct {
	Version   int64   `json:"version"`
	ProductID int64   `json:"product_id"`
	IDs       []int64 `json:"ids"`
}

// ParseID parses a product or shop id: 1 to 18 decimal digits, not zero.
// It is the one place that decides what an id from outside looks like.
func ParseID(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, invalid("id %q: want 1 to 18 digits", truncate(s, 40))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, invalid("id %q: want 1 to 18 digits", truncate(s, 40))
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, invalid("id %q: want a positive number", truncate(s, 40))
	}
	return id, nil
}

// ParseIDList parses a batch query value "1,2,3": at most MaxBatch valid ids,
// duplicates removed, order kept.
func ParseIDList(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, invalid("ids: empty list")
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxBatch {
		return nil, invalid("ids: %d ids, at most %d per batch", len(parts), MaxBatch)
	}
	seen := make(map[int64]bool, len(parts))
	ids := make([]int64, 0, len(parts))
	for _, p := range parts {
		id, err := ParseID(strings.TrimSpace(p))
		if err != nil {
			return nil, invalid("ids: %v", err)
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ValidationError is a domain error caused by bad input from outside; the
// HTTP layer maps it to 400.
type ValidationError struct{ Reason string }

func (e *ValidationError) Error() string { return e.Reason }

func invalid(format string, args ...any) error {
	return &ValidationError{Reason: fmt.Sprintf(format, args...)}
}

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable marks an error as "a dependency is down, try later".
var ErrUnavailable = errors.New("temporarily unavailable")

// Limits on edited text, so one edit cannot blow up a page or a Redis value.
const (
	maxNameLen     = 200
	maxShortLen    = 100
	maxImages      = 12
	maxURLLen      = 500
	maxCategoryLen = 6
	maxDescLen     = 1 << 20
	maxSpecGroups  = 30
	maxSpecItems   = 60
	maxRecommend   = 24
	maxBadges      = 8
)

func checkText(field, s string, max int, required bool) error {
	if required && strings.TrimSpace(s) == "" {
		return invalid("%s: required", field)
	}
	if !utf8.ValidString(s) {
		return invalid("%s: not valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > max {
		return invalid("%s: longer than %d characters", field, max)
	}
	return nil
}

// checkURL accepts site-relative paths and http(s) URLs only, so that an
// edit cannot put a javascript: URL into an src attribute.
func checkURL(field, s string) error {
	if err := checkText(field, s, maxURLLen, true); err != nil {
		return err
	}
	if strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") {
		return nil
	}
	if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") {
		return nil
	}
	return invalid("%s: want a path starting with / or an http(s) URL", field)
}

// isDecimal reports whether s is a non-negative decimal with at most two
// fraction digits, like "5599.50" or "12".
func isDecimal(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || (hasDot && (frac == "" || len(frac) > 2)) {
		return false
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}

// Validate checks a product edit.
func (p *Product) Validate() error {
	if p.ShopID <= 0 || p.ShopID > MaxID {
		return invalid("shop_id: want a positive id")
	}
	if err := checkText("name", p.Name, maxNameLen, true); err != nil {
		return err
	}
	if err := checkText("subtitle", p.Subtitle, maxNameLen, false); err != nil {
		return err
	}
	if err := checkText("brand", p.Brand, maxShortLen, false); err != nil {
		return err
	}
	if len(p.Category) > maxCategoryLen {
		return invalid("category: at most %d levels", maxCategoryLen)
	}
	for i, c := range p.Category {
		if err := checkText(fmt.Sprintf("category[%d]", i), c, maxShortLen, true); err != nil {
			return err
		}
	}
	if len(p.Images) > maxImages {
		return invalid("images: at most %d", maxImages)
	}
	for i, im := range p.Images {
		if err := checkURL(fmt.Sprintf("images[%d].url", i), im.URL); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("images[%d].alt", i), im.Alt, maxNameLen, false); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a shop edit.
func (s *Shop) Validate() error {
	if err := checkText("name", s.Name, maxShortLen, true); err != nil {
		return err
	}
	if s.Logo != "" {
		if err := checkURL("logo", s.Logo); err != nil {
			return err
		}
	}
	if err := checkText("location", s.Location, maxShortLen, false); err != nil {
		return err
	}
	if s.OpenedYear != 0 && (s.OpenedYear < 1900 || s.OpenedYear > 2100) {
		return invalid("opened_year: want a year between 1900 and 2100")
	}
	for field, v := range map[string]string{"rating": s.Rating, "service_score": s.ServiceScore} {
		if v != "" && !isDecimal(v) {
			return invalid("%s: want a decimal like \"4.8\"", field)
		}
	}
	if s.Followers < 0 {
		return invalid("followers: must not be negative")
	}
	if len(s.Badges) > maxBadges {
		return invalid("badges: at most %d", maxBadges)
	}
	for i, b := range s.Badges {
		if err := checkText(fmt.Sprintf("badges[%d]", i), b, maxShortLen, true); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a description edit. The HTML is sanitized by the source
// service before it is stored; this only bounds it.
func (d *Description) Validate() error {
	if !utf8.ValidString(d.HTML) {
		return invalid("html: not valid UTF-8")
	}
	if len(d.HTML) > maxDescLen {
		return invalid("html: larger than %d bytes", maxDescLen)
	}
	return nil
}

// Validate checks a spec edit.
func (s *Spec) Validate() error {
	if len(s.Groups) > maxSpecGroups {
		return invalid("groups: at most %d", maxSpecGroups)
	}
	for i, g := range s.Groups {
		if err := checkText(fmt.Sprintf("groups[%d].name", i), g.Name, maxShortLen, true); err != nil {
			return err
		}
		if len(g.Items) > maxSpecItems {
			return invalid("groups[%d].items: at most %d", i, maxSpecItems)
		}
		for j, it := range g.Items {
			if err := checkText(fmt.Sprintf("groups[%d].items[%d].name", i, j), it.Name, maxShortLen, true); err != nil {
				return err
			}
			if err := checkText(fmt.Sprintf("groups[%d].items[%d].value", i, j), it.Value, maxNameLen, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate checks a price edit.
func (p *Price) Validate() error {
	if !isDecimal(p.Amount) {
		return invalid("amount: want a decimal string like \"5599.50\"")
	}
	if p.List != "" && !isDecimal(p.List) {
		return invalid("list: want a decimal string like \"5999.00\"")
	}
	if len(p.Currency) != 3 || strings.Trim(p.Currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return invalid("currency: want a three-letter code like \"CNY\"")
	}
	return nil
}

// Validate checks a stock edit.
func (s *Stock) Validate() error {
	if s.Available < 0 || s.Available > 1_000_000_000 {
		return invalid("available: want 0 to 1000000000")
	}
	return nil
}

// Validate checks a recommendations edit.
func (r *Recommendations) Validate() error {
	if len(r.IDs) > maxRecommend {
		return invalid("ids: at most %d", maxRecommend)
	}
	for i, id := range r.IDs {
		if id <= 0 || id > MaxID {
			return invalid("ids[%d]: want a positive id", i)
		}
	}
	return nil
}
