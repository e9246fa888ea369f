package realtime

import (
	"fmt"
	"strconv"
	"strings"
)

// Region is one row of the shipping rule table: a shopper's region, its
// base shipping fee, the order amount from which shipping is free (0: never
// free) and the estimated days to deliver. Amounts are in cents of the
// product's currency.
type Region struct {
	Code     string
	Name     string
	Fee      int64
	FreeOver int64 // 0: no free shipping
	ETADays  int
}

// Regions is the shipping rule table (seed 004: shipping cost and delivery
// time for the shopper's region). The first is the default region.
var Regions = []Region{
	{Code: "east", Name: "华东", Fee: 600, FreeOver: 9900, ETADays: 1},
	{Code: "north", Name: "华北", Fee: 800, FreeOver: 9900, ETADays: 2},
	{Code: "south", Name: "华南", Fee: 800, FreeOver: 9900, ETADays: 2},
	{Code: "west", Name: "西部", Fee: 1200, FreeOver: 19900, ETADays: 3},
	{Code: "remote", Name: "偏远", Fee: 2000, FreeOver: 0, ETADays: 5},
}

// DefaultRegion is the region of a request that names none.
var DefaultRegion = &Regions[0]

// RegionCodes lists the region codes, for error messages and docs.
func RegionCodes() string {
	codes := make([]string, len(Regions))
	for i, r := range Regions {
		codes[i] = r.Code
	}
	return strings.Join(codes, ", ")
}

// regionByCode returns the region with code.
func regionByCode(code string) (*Region, bool) {
	for i := range Regions {
		if Regions[i].Code == code {
			return &Regions[i], true
		}
	}
	return nil, false
}

// Shipping is the shipping part of an answer. Fee is absent when the price
// is unknown (the free-shipping threshold needs it); FreeOver is absent for
// a region without free shipping.
type Shipping struct {
	Region   string `json:"region"`
	Fee      string `json:"fee,omitempty"`
	FreeOver string `json:"free_over,omitempty"`
	ETADays  int    `json:"eta_days"`
}

// shipping computes the shipping of an order of amount cents (known: false
// when the price is unknown) to region r: free at or above the threshold,
// else the region's base fee.
func shipping(r *Region, amount int64, known bool) Shipping {
	s := Shipping{Region: r.Code, ETADays: r.ETADays}
	if r.FreeOver > 0 {
		s.FreeOver = formatCents(r.FreeOver)
	}
	if known {
		fee := r.Fee
		if r.FreeOver > 0 && amount >= r.FreeOver {
			fee = 0
		}
		s.Fee = formatCents(fee)
	}
	return s
}

// RegionInfo is a region as GET /api/regions lists it.
type RegionInfo struct {
	Code     string `json:"code"`
	Name     string `json:"name"`
	Fee      string `json:"fee"`
	FreeOver string `json:"free_over,omitempty"`
	ETADays  int    `json:"eta_days"`
	Default  bool   `json:"default,omitempty"`
}

func regionTable() []RegionInfo {
	out := make([]RegionInfo, len(Regions))
	for i, r := range Regions {
		out[i] = RegionInfo{Code: r.Code, Name: r.Name, Fee: formatCents(r.Fee), ETADays: r.ETADays, Default: &Regions[i] == DefaultRegion}
		if r.FreeOver > 0 {
			out[i].FreeOver = formatCents(r.FreeOver)
		}
	}
	return out
}

// maxCents bounds parsed amounts (13 integer digits), far from overflow.
const maxCents = 1e15

// parseCents parses a non-negative decimal with at most two fraction
// digits ("5599.5", "12", "0.99") into cents.
func parseCents(s string) (int64, error) {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" || len(intPart) > 13 || (hasDot && (frac == "" || len(frac) > 2)) {
		return 0, fmt.Errorf("amount %q: want a decimal with at most two fraction digits", s)
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return 0, fmt.Errorf("amount %q: want a decimal with at most two fraction digits", s)
			}
		}
	}
	n, _ := strconv.ParseInt(intPart, 10, 64)
	c := n * 100
	switch len(frac) {
	case 1:
		c += int64(frac[0]-'0') * 10
	case 2:
		c += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	return c, nil
}

// formatCents formats cents with two decimals: 559950 → "5599.50".
func formatCents(c int64) string {
	b := strconv.AppendInt(make([]byte, 0, 16), c/100, 10)
	f := c % 100
	b = append(b, '.', byte('0'+f/10), byte('0'+f%10))
	return string(b)
}
