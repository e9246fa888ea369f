package catalog_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// MustValidationError fails unless err is a *catalog.ValidationError whose
// reason mentions want.
func MustValidationError(tb testing.TB, err error, want string) {
	tb.Helper()
	var ve *catalog.ValidationError
	if !errors.As(err, &ve) {
		tb.Fatalf("error = %v (%T), want a *catalog.ValidationError mentioning %q", err, err, want)
	}
	if !strings.Contains(ve.Reason, want) {
		tb.Fatalf("reason %q does not mention %q", ve.Reason, want)
	}
}

func TestParseID(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "", wantErr: true},
		{in: "0", wantErr: true},
		{in: "00", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "+1", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "1.5", wantErr: true},
		{in: "1e3", wantErr: true},
		{in: " 1", wantErr: true},
		{in: "1 ", wantErr: true},
		{in: "0x10", wantErr: true},
		{in: "１", wantErr: true}, // full-width digit
		{in: "1234567890123456789", wantErr: true},
		{in: "9999999999999999999", wantErr: true},
		{in: strings.Repeat("9", 100), wantErr: true},
		{in: "1", want: 1},
		{in: "42", want: 42},
		{in: "007", want: 7},
		{in: "000000000000000001", want: 1},
		{in: "999999999999999999", want: catalog.MaxID},
		{in: "123456789012345678", want: 123456789012345678},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := catalog.ParseID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseID(%q) = %d, want an error", tt.in, got)
				}
				if len(err.Error()) > 120 {
					t.Fatalf("error message not bounded: %d bytes", len(err.Error()))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseID(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseIDList(t *testing.T) {
	ids := func(from, n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = itoa(int64(from + i))
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		name    string
		in      string
		want    []int64
		wantErr string
	}{
		{name: "one", in: "5", want: []int64{5}},
		{name: "order kept", in: "3,1,2", want: []int64{3, 1, 2}},
		{name: "duplicates removed", in: "3,1,3,1,2", want: []int64{3, 1, 2}},
		{name: "leading zeros are the same id", in: "7,007", want: []int64{7}},
		{name: "spaces around entries", in: " 1 , 2 ", want: []int64{1, 2}},
		{name: "exactly 100", in: ids(1, 100), want: seq(1, 100)},
		{name: "101 ids", in: ids(1, 101), wantErr: "at most 100"},
		{name: "101 entries even if duplicates", in: ids(1, 100) + ",1", wantErr: "at most 100"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "blank", in: "   ", wantErr: "empty"},
		{name: "empty entry", in: "1,,2", wantErr: "ids"},
		{name: "trailing comma", in: "1,2,", wantErr: "ids"},
		{name: "zero", in: "1,0", wantErr: "ids"},
		{name: "negative", in: "1,-2", wantErr: "ids"},
		{name: "word", in: "1,abc", wantErr: "ids"},
		{name: "19 digits", in: "1,1234567890123456789", wantErr: "ids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := catalog.ParseIDList(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseIDList(%q) = %v, %v; want an error mentioning %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseIDList(%q): %v", tt.in, err)
			}
			if !equalIDs(got, tt.want) {
				t.Fatalf("ParseIDList(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func seq(from, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(from + i)
	}
	return out
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const badUTF8 = "caf\xe9"

func goodProduct() catalog.Product {
	return catalog.Product{
		ShopID:   3,
		Name:     "华为 Mate 60 Pro 12GB+512GB",
		Subtitle: "【限时直降】卫星通话",
		Brand:    "华为",
		Category: []string{"手机", "5G手机"},
		Images:   []catalog.Image{{URL: "/img/p/1/0.svg", Alt: "main"}, {URL: "https://cdn.example.com/a.jpg"}},
	}
}

func TestProductValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*catalog.Product)
		wantErr string // "" for valid
	}{
		{name: "good", edit: func(*catalog.Product) {}},
		{name: "no images, no category", edit: func(p *catalog.Product) { p.Images, p.Category = nil, nil }},
		{name: "http image", edit: func(p *catalog.Product) { p.Images[0].URL = "http://cdn.example.com/a.png" }},
		{name: "max name length in runes", edit: func(p *catalog.Product) { p.Name = strings.Repeat("手", 200) }},
		{name: "no shop", edit: func(p *catalog.Product) { p.ShopID = 0 }, wantErr: "shop_id"},
		{name: "negative shop", edit: func(p *catalog.Product) { p.ShopID = -4 }, wantErr: "shop_id"},
		{name: "shop id above max", edit: func(p *catalog.Product) { p.ShopID = catalog.MaxID + 1 }, wantErr: "shop_id"},
		{name: "empty name", edit: func(p *catalog.Product) { p.Name = "" }, wantErr: "name: required"},
		{name: "blank name", edit: func(p *catalog.Product) { p.Name = " \t " }, wantErr: "name: required"},
		{name: "name too long", edit: func(p *catalog.Product) { p.Name = strings.Repeat("手", 201) }, wantErr: "name: longer"},
		{name: "name invalid utf-8", edit: func(p *catalog.Product) { p.Name = badUTF8 }, wantErr: "name: not valid UTF-8"},
		{name: "subtitle invalid utf-8", edit: func(p *catalog.Product) { p.Subtitle = badUTF8 }, wantErr: "subtitle"},
		{name: "brand too long", edit: func(p *catalog.Product) { p.Brand = strings.Repeat("b", 101) }, wantErr: "brand"},
		{name: "too many category levels", edit: func(p *catalog.Product) { p.Category = make([]string, 7) }, wantErr: "category"},
		{name: "empty category level", edit: func(p *catalog.Product) { p.Category = []string{"手机", ""} }, wantErr: "category[1]"},
		{name: "too many images", edit: func(p *catalog.Product) {
			p.Images = make([]catalog.Image, 13)
			for i := range p.Images {
				p.Images[i].URL = "/img/x.svg"
			}
		}, wantErr: "images: at most"},
		{name: "javascript image", edit: func(p *catalog.Product) { p.Images[1].URL = "javascript:alert(1)" }, wantErr: "images[1].url"},
		{name: "JavaScript image, mixed case", edit: func(p *catalog.Product) { p.Images[0].URL = "JavaScript:alert(1)" }, wantErr: "images[0].url"},
		{name: "javascript image after a space", edit: func(p *catalog.Product) { p.Images[0].URL = " javascript:alert(1)" }, wantErr: "images[0].url"},
		{name: "data image", edit: func(p *catalog.Product) { p.Images[0].URL = "data:image/svg+xml,<svg onload=alert(1)>" }, wantErr: "images[0].url"},
		{name: "protocol-relative image", edit: func(p *catalog.Product) { p.Images[0].URL = "//evil.example.com/a.png" }, wantErr: "images[0].url"},
		{name: "relative image without slash", edit: func(p *catalog.Product) { p.Images[0].URL = "img/a.png" }, wantErr: "images[0].url"},
		{name: "empty image url", edit: func(p *catalog.Product) { p.Images[0].URL = "" }, wantErr: "images[0].url"},
		{name: "image url too long", edit: func(p *catalog.Product) { p.Images[0].URL = "/" + strings.Repeat("a", 500) }, wantErr: "images[0].url"},
		{name: "image alt invalid utf-8", edit: func(p *catalog.Product) { p.Images[0].Alt = badUTF8 }, wantErr: "images[0].alt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := goodProduct()
			tt.edit(&p)
			err := p.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			MustValidationError(t, err, tt.wantErr)
		})
	}
}

func goodShop() catalog.Shop {
	return catalog.Shop{
		Name: "华为官方旗舰店", Logo: "/img/s/1.svg", Location: "广东 深圳", OpenedYear: 2010,
		Rating: "4.8", ServiceScore: "5", Followers: 1200, Badges: []string{"官方", "品牌"},
	}
}

func TestShopValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*catalog.Shop)
		wantErr string
	}{
		{name: "good", edit: func(*catalog.Shop) {}},
		{name: "minimal", edit: func(s *catalog.Shop) { *s = catalog.Shop{Name: "x"} }},
		{name: "https logo", edit: func(s *catalog.Shop) { s.Logo = "https://cdn.example.com/l.png" }},
		{name: "rating with two decimals", edit: func(s *catalog.Shop) { s.Rating = "4.85" }},
		{name: "year bounds", edit: func(s *catalog.Shop) { s.OpenedYear = 1900 }},
		{name: "no name", edit: func(s *catalog.Shop) { s.Name = "" }, wantErr: "name: required"},
		{name: "name invalid utf-8", edit: func(s *catalog.Shop) { s.Name = badUTF8 }, wantErr: "name: not valid UTF-8"},
		{name: "javascript logo", edit: func(s *catalog.Shop) { s.Logo = "javascript:alert(document.cookie)" }, wantErr: "logo"},
		{name: "vbscript logo", edit: func(s *catalog.Shop) { s.Logo = "vbscript:msgbox" }, wantErr: "logo"},
		{name: "location invalid utf-8", edit: func(s *catalog.Shop) { s.Location = badUTF8 }, wantErr: "location"},
		{name: "year too old", edit: func(s *catalog.Shop) { s.OpenedYear = 1899 }, wantErr: "opened_year"},
		{name: "year too new", edit: func(s *catalog.Shop) { s.OpenedYear = 2101 }, wantErr: "opened_year"},
		{name: "rating not decimal", edit: func(s *catalog.Shop) { s.Rating = "great" }, wantErr: "rating"},
		{name: "rating two dots", edit: func(s *catalog.Shop) { s.Rating = "4.8.1" }, wantErr: "rating"},
		{name: "rating negative", edit: func(s *catalog.Shop) { s.Rating = "-4.8" }, wantErr: "rating"},
		{name: "rating three decimals", edit: func(s *catalog.Shop) { s.Rating = "4.855" }, wantErr: "rating"},
		{name: "service score exponent", edit: func(s *catalog.Shop) { s.ServiceScore = "1e1" }, wantErr: "service_score"},
		{name: "service score trailing dot", edit: func(s *catalog.Shop) { s.ServiceScore = "4." }, wantErr: "service_score"},
		{name: "negative followers", edit: func(s *catalog.Shop) { s.Followers = -1 }, wantErr: "followers"},
		{name: "too many badges", edit: func(s *catalog.Shop) { s.Badges = strings.Split("a,b,c,d,e,f,g,h,i", ",") }, wantErr: "badges"},
		{name: "empty badge", edit: func(s *catalog.Shop) { s.Badges = []string{"ok", " "} }, wantErr: "badges[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := goodShop()
			tt.edit(&s)
			err := s.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			MustValidationError(t, err, tt.wantErr)
		})
	}
}

func TestPriceValidate(t *testing.T) {
	tests := []struct {
		name    string
		price   catalog.Price
		wantErr string
	}{
		{name: "good", price: catalog.Price{Amount: "5599.50", List: "5999.00", Currency: "CNY"}},
		{name: "integer amount, no list", price: catalog.Price{Amount: "12", Currency: "USD"}},
		{name: "one fraction digit", price: catalog.Price{Amount: "0.5", Currency: "EUR"}},
		{name: "zero", price: catalog.Price{Amount: "0", Currency: "JPY"}},
		{name: "empty amount", price: catalog.Price{Amount: "", Currency: "CNY"}, wantErr: "amount"},
		{name: "negative amount", price: catalog.Price{Amount: "-1.00", Currency: "CNY"}, wantErr: "amount"},
		{name: "three fraction digits", price: catalog.Price{Amount: "1.999", Currency: "CNY"}, wantErr: "amount"},
		{name: "leading dot", price: catalog.Price{Amount: ".50", Currency: "CNY"}, wantErr: "amount"},
		{name: "trailing dot", price: catalog.Price{Amount: "5.", Currency: "CNY"}, wantErr: "amount"},
		{name: "comma", price: catalog.Price{Amount: "5,599.00", Currency: "CNY"}, wantErr: "amount"},
		{name: "exponent", price: catalog.Price{Amount: "1e9", Currency: "CNY"}, wantErr: "amount"},
		{name: "NaN", price: catalog.Price{Amount: "NaN", Currency: "CNY"}, wantErr: "amount"},
		{name: "too long", price: catalog.Price{Amount: "1234567890123456", Currency: "CNY"}, wantErr: "amount"},
		{name: "bad list", price: catalog.Price{Amount: "1", List: "abc", Currency: "CNY"}, wantErr: "list"},
		{name: "lowercase currency", price: catalog.Price{Amount: "1", Currency: "cny"}, wantErr: "currency"},
		{name: "long currency", price: catalog.Price{Amount: "1", Currency: "CNYY"}, wantErr: "currency"},
		{name: "no currency", price: catalog.Price{Amount: "1"}, wantErr: "currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.price.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			MustValidationError(t, err, tt.wantErr)
		})
	}
}

func TestStockValidate(t *testing.T) {
	for _, tt := range []struct {
		n     int64
		valid bool
	}{{0, true}, {1, true}, {1_000_000_000, true}, {-1, false}, {1_000_000_001, false}} {
		t.Run(itoa(tt.n), func(t *testing.T) {
			err := (&catalog.Stock{Available: tt.n}).Validate()
			if tt.valid && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.valid {
				MustValidationError(t, err, "available")
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	groups := func(n, items int) []catalog.SpecGroup {
		gs := make([]catalog.SpecGroup, n)
		for i := range gs {
			gs[i].Name = "g"
			gs[i].Items = make([]catalog.SpecItem, items)
			for j := range gs[i].Items {
				gs[i].Items[j] = catalog.SpecItem{Name: "n", Value: "v"}
			}
		}
		return gs
	}
	tests := []struct {
		name    string
		groups  []catalog.SpecGroup
		wantErr string
	}{
		{name: "good", groups: []catalog.SpecGroup{{Name: "主体", Items: []catalog.SpecItem{{Name: "型号", Value: "ALN-AL00"}, {Name: "备注"}}}}},
		{name: "none", groups: nil},
		{name: "limits", groups: groups(30, 60)},
		{name: "too many groups", groups: groups(31, 1), wantErr: "groups: at most"},
		{name: "too many items", groups: groups(1, 61), wantErr: "groups[0].items: at most"},
		{name: "empty group name", groups: []catalog.SpecGroup{{Name: ""}}, wantErr: "groups[0].name"},
		{name: "empty item name", groups: []catalog.SpecGroup{{Name: "g", Items: []catalog.SpecItem{{Value: "v"}}}}, wantErr: "groups[0].items[0].name"},
		{name: "value invalid utf-8", groups: []catalog.SpecGroup{{Name: "g", Items: []catalog.SpecItem{{Name: "n", Value: badUTF8}}}}, wantErr: "groups[0].items[0].value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&catalog.Spec{Groups: tt.groups}).Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			MustValidationError(t, err, tt.wantErr)
		})
	}
}

func TestDescriptionValidate(t *testing.T) {
	tests := []struct {
		name    string
		html    string
		wantErr string
	}{
		{name: "good", html: "<p>你好 <b>world</b></p>"},
		{name: "empty", html: ""},
		{name: "exactly 1 MiB", html: strings.Repeat("a", 1<<20)},
		{name: "over 1 MiB", html: strings.Repeat("a", 1<<20+1), wantErr: "html: larger"},
		{name: "invalid utf-8", html: "<p>" + badUTF8 + "</p>", wantErr: "html: not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&catalog.Description{HTML: tt.html}).Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			MustValidationError(t, err, tt.wantErr)
		})
	}
}

func TestRecommendationsValidate(t *testing.T) {
	tests := []struct {
		name    string
		ids     []int64
		wantErr string
	}{
		{name: "good", ids: []int64{1, 2, catalog.MaxID}},
		{name: "none", ids: nil},
		{name: "24", ids: seq(1, 24)},
		{name: "25", ids: seq(1, 25), wantErr: "ids: at most"},
		{name: "zero", ids: []int64{1, 0}, wantErr: "ids[1]"},
		{name: "negative", ids: []int64{-3}, wantErr: "ids[0]"},
		{name: "above max", ids: []int64{catalog.MaxID + 1}, wantErr: "ids[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&catalog.Recommendations{IDs: tt.ids}).Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			MustValidationError(t, err, tt.wantErr)
		})
	}
}

func TestDecodeChange(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    catalog.Change
		wantErr string
	}{
		{
			name: "product edit",
			in:   `{"entity":"product","id":7,"version":42,"dims":["price","stock"],"ts":1700000000000}`,
			want: catalog.Change{Entity: catalog.EntityProduct, ID: 7, Version: 42, Dims: []catalog.Dimension{catalog.DimPrice, catalog.DimStock}, TS: 1700000000000},
		},
		{
			name: "shop refresh",
			in:   `{"entity":"shop","id":3,"version":0,"refresh":true,"ts":1}`,
			want: catalog.Change{Entity: catalog.EntityShop, ID: 3, Refresh: true, TS: 1},
		},
		{name: "not json", in: `product 7`, wantErr: "change:"},
		{name: "truncated", in: `{"entity":"product","id":7`, wantErr: "change:"},
		{name: "empty", in: ``, wantErr: "change:"},
		{name: "wrong type", in: `{"entity":"product","id":"7","version":1}`, wantErr: "change:"},
		{name: "unknown entity", in: `{"entity":"user","id":7,"version":1}`, wantErr: "entity"},
		{name: "no entity", in: `{"id":7,"version":1}`, wantErr: "entity"},
		{name: "zero id", in: `{"entity":"product","id":0,"version":1}`, wantErr: "id"},
		{name: "negative id", in: `{"entity":"product","id":-7,"version":1}`, wantErr: "id"},
		{name: "id above max", in: `{"entity":"product","id":1000000000000000000,"version":1}`, wantErr: "id"},
		{name: "negative version", in: `{"entity":"product","id":7,"version":-1}`, wantErr: "version"},
		{name: "unknown dim", in: `{"entity":"product","id":7,"version":1,"dims":["price","colour"]}`, wantErr: "dims"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := catalog.DecodeChange([]byte(tt.in))
			if tt.wantErr != "" {
				MustValidationError(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatalf("DecodeChange: %v", err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tt.want)
			if string(gb) != string(wb) {
				t.Fatalf("DecodeChange = %s, want %s", gb, wb)
			}
		})
	}
}

func TestDimensionValid(t *testing.T) {
	for _, d := range catalog.ProductDimensions {
		if !d.Valid() {
			t.Errorf("%q is a product dimension but not Valid", d)
		}
	}
	for _, d := range []catalog.Dimension{"", "shop", "BASE", "price "} {
		if d.Valid() {
			t.Errorf("%q is Valid, want not", d)
		}
	}
}

// TestVersionFirstInJSON guards the Redis compare-and-set script, which
// reads the version from the prefix of every stored value.
func TestVersionFirstInJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"Product", catalog.Product{Version: 9, ID: 1, Name: "x"}},
		{"Shop", catalog.Shop{Version: 9, ID: 1}},
		{"Description", catalog.Description{Version: 9, ProductID: 1}},
		{"Spec", catalog.Spec{Version: 9}},
		{"Price", catalog.Price{Version: 9}},
		{"Stock", catalog.Stock{Version: 9}},
		{"Recommendations", catalog.Recommendations{Version: 9}},
		{"PageDoc", catalog.PageDoc{Version: 9}},
		{"PageDoc built", catalog.BuildPage(catalog.Parts{Base: catalog.Product{Version: 9, ID: 1}}, fixedNow)},
		{"Missing", catalog.Missing{Missing: true}},
		{"Product pointer", &catalog.Product{Version: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(b), `{"version":`) {
				t.Fatalf("JSON %s does not start with {\"version\":", b)
			}
		})
	}
	t.Run("MissingJSON", func(t *testing.T) {
		if !strings.HasPrefix(string(catalog.MissingJSON), `{"version":0,`) {
			t.Fatalf("MissingJSON %s must start with version 0", catalog.MissingJSON)
		}
		b, _ := json.Marshal(catalog.Missing{Missing: true})
		if string(b) != string(catalog.MissingJSON) {
			t.Fatalf("Missing{} encodes as %s, MissingJSON is %s", b, catalog.MissingJSON)
		}
	})
}
