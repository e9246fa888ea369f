package realtime

import (
	"encoding/json"
	"testing"
	"time"
)

func TestCents(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "5599.50", want: 559950}, {in: "5599.5", want: 559950}, {in: "12", want: 1200},
		{in: "0.99", want: 99}, {in: "0", want: 0}, {in: "1234567890123.45", want: 123456789012345},
		{in: "", bad: true}, {in: ".5", bad: true}, {in: "1.", bad: true}, {in: "1.234", bad: true},
		{in: "-1", bad: true}, {in: "1e3", bad: true}, {in: "12345678901234", bad: true}, {in: "1,5", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseCents(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("parseCents(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseCents(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
	for c, want := range map[int64]string{0: "0.00", 5: "0.05", 99: "0.99", 100: "1.00", 559950: "5599.50", 40000: "400.00"} {
		if got := formatCents(c); got != want {
			t.Errorf("formatCents(%d) = %q, want %q", c, got, want)
		}
	}
}

func TestShippingRules(t *testing.T) {
	region := func(code string) *Region {
		r, ok := regionByCode(code)
		if !ok {
			t.Fatalf("no region %q", code)
		}
		return r
	}
	for _, tc := range []struct {
		region string
		amount int64
		known  bool
		want   Shipping
	}{
		{"east", 559950, true, Shipping{Region: "east", Fee: "0.00", FreeOver: "99.00", ETADays: 1}},
		{"east", 9900, true, Shipping{Region: "east", Fee: "0.00", FreeOver: "99.00", ETADays: 1}}, // at the threshold: free
		{"east", 9899, true, Shipping{Region: "east", Fee: "6.00", FreeOver: "99.00", ETADays: 1}},
		{"north", 5000, true, Shipping{Region: "north", Fee: "8.00", FreeOver: "99.00", ETADays: 2}},
		{"south", 5000, true, Shipping{Region: "south", Fee: "8.00", FreeOver: "99.00", ETADays: 2}},
		{"west", 15000, true, Shipping{Region: "west", Fee: "12.00", FreeOver: "199.00", ETADays: 3}},
		{"west", 19900, true, Shipping{Region: "west", Fee: "0.00", FreeOver: "199.00", ETADays: 3}},
		{"remote", 9_999_999, true, Shipping{Region: "remote", Fee: "20.00", ETADays: 5}}, // never free
		{"east", 0, false, Shipping{Region: "east", FreeOver: "99.00", ETADays: 1}},       // no price: no fee
		{"remote", 0, false, Shipping{Region: "remote", ETADays: 5}},
	} {
		if got := shipping(region(tc.region), tc.amount, tc.known); got != tc.want {
			t.Errorf("shipping(%s, %d, %v) = %+v, want %+v", tc.region, tc.amount, tc.known, got, tc.want)
		}
	}
	if DefaultRegion.Code != "east" {
		t.Errorf("default region %q, want east", DefaultRegion.Code)
	}
}

func TestStockStatus(t *testing.T) {
	for n, want := range map[int64]StockPart{
		-3: {Status: "out"}, 0: {Status: "out"}, 1: {Status: "low", Quantity: 1},
		10: {Status: "low", Quantity: 10}, 11: {Status: "in_stock"}, 5000: {Status: "in_stock"},
	} {
		if got := stockStatus(n); got != want {
			t.Errorf("stockStatus(%d) = %+v, want %+v", n, got, want)
		}
	}
}

// TestBuildObject checks the JSON of merged answers against the contract.
func TestBuildObject(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	price := value{version: 12, amount: 559950, list: 599950, currency: "CNY"}
	stock := value{version: 14, available: 7}
	east := DefaultRegion
	for _, tc := range []struct {
		name  string
		parts [numParts]resolved
		want  string
	}{
		{"live", [numParts]resolved{{val: price, level: levelLive, at: now}, {val: stock, level: levelLRU, at: now}},
			`{"id":1,"price":"5599.50","list_price":"5999.50","currency":"CNY","stock":{"status":"low","quantity":7},` +
				`"promotion":{"type":"discount","label":"直降 ¥400.00 Save ¥400.00","save":"400.00"},` +
				`"shipping":{"region":"east","fee":"0.00","free_over":"99.00","eta_days":1},"versions":{"price":12,"stock":14},"version":14,"stale":false}`},
		{"no discount", [numParts]resolved{{val: value{version: 3, amount: 5000, list: 5000, currency: "USD"}, level: levelLive}, {val: value{version: 2, available: 50}, level: levelLive}},
			`{"id":1,"price":"50.00","currency":"USD","stock":{"status":"in_stock"},` +
				`"shipping":{"region":"east","fee":"6.00","free_over":"99.00","eta_days":1},"versions":{"price":3,"stock":2},"version":3,"stale":false}`},
		{"last good price with age", [numParts]resolved{{val: price, level: levelLastGood, at: now.Add(-1234 * time.Millisecond)}, {val: value{version: 14}, level: levelLive}},
			`{"id":1,"price":"5599.50","list_price":"5999.50","currency":"CNY","stock":{"status":"out"},` +
				`"promotion":{"type":"discount","label":"直降 ¥400.00 Save ¥400.00","save":"400.00"},` +
				`"shipping":{"region":"east","fee":"0.00","free_over":"99.00","eta_days":1},"versions":{"price":12,"stock":14},"version":14,` +
				`"stale":true,"stale_parts":["price"],"age_ms":{"price":1234}}`},
		{"no price, stock of unknown age", [numParts]resolved{{level: levelNone}, {val: stock, level: levelLastGood}},
			`{"id":1,"stock":{"status":"low","quantity":7},"shipping":{"region":"east","free_over":"99.00","eta_days":1},` +
				`"versions":{"stock":14},"version":14,"stale":true,"stale_parts":["price","stock"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := buildObject(1, &tc.parts, east, now)
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
}

func TestParseIDs(t *testing.T) {
	ids, err := parseIDs("3, 1,3,7")
	if err != nil || len(ids) != 3 || ids[0] != 3 || ids[1] != 1 || ids[2] != 7 {
		t.Fatalf("parseIDs = %v, %v; want [3 1 7]", ids, err)
	}
	for _, bad := range []string{"", " ", ",", "1,,2", "0", "-1", "a", "1;2", "9999999999999999999"} {
		if ids, err := parseIDs(bad); err == nil {
			t.Errorf("parseIDs(%q) = %v, want an error", bad, ids)
		}
	}
}

// TestEncodeMatchesJSON holds the hand-written encoder to json.Marshal,
// over the contract's shapes and hostile strings.
func TestEncodeMatchesJSON(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	hostile := []string{"CNY", "", `"quoted"`, `back\slash`, "<script>&</script>", "tab\there\nnl\r\b\f\x01\x1f",
		"\u2028\u2029", "直降 ¥", "bad\xffutf8\xc3", "emoji 🛒", "\x7f"}
	var objs []Object
	for i, cur := range hostile {
		for lvl, parts := range [][numParts]resolved{
			{{val: value{version: int64(i + 1), amount: 559950, list: 599950, currency: cur}, level: levelLive}, {val: value{version: 3, available: 4}, level: levelLRU}},
			{{val: value{version: 1, amount: 100, currency: cur}, level: levelLastGood, at: now.Add(-time.Second)}, {level: levelNone}},
			{{level: levelNone}, {val: value{version: 9, available: 900}, level: levelLastGood, at: now.Add(-2 * time.Second)}},
			{{val: value{version: 1, amount: 100, list: 50, currency: cur}, level: levelLastGood}, {val: value{version: 2}, level: levelLastGood, at: now}},
		} {
			o := buildObject(int64(i*10+lvl+1), &parts, &Regions[(i+lvl)%len(Regions)], now)
			if o.Promotion != nil {
				o.Promotion.Label += cur
			}
			o.Shipping.Region += cur
			objs = append(objs, o)
		}
	}
	for _, o := range objs {
		want, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendObject(nil, &o); string(got) != string(want) {
			t.Errorf("appendObject:\n got  %s\n want %s", got, want)
		}
	}
}
