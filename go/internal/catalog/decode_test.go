package catalog

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Decode reads records as encoding/json does: escapes, HTML, invalid
// UTF-8 (replaced), duplicate names (the last wins), unknown names and
// nulls; and it refuses what encoding/json refuses.
func TestDecodeAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"version":3,"id":7,"shop_id":2,"name":"a \u003cb\u003e \"q\" 南舍","images":[{"url":"/i/1.svg","alt":"x"}],"category":["c"]}`,
		`{"version":3,"id":7,"name":"<b>&amp;</b>","extra":{"nested":[1,2,{"x":null}]}}`,
		"{\"version\":3,\"id\":7,\"name\":\"bad \xff utf-8\"}",
		`{"version":3,"id":7,"name":"first","name":"second"}`,
		`{"version":3,"id":7,"name":null,"images":null}`,
		`{"version":3,"id":7}`,
		`{"version":3,"id":7,"shopid":9,"shop-id":8,"ShopID":1}`,
		`{"version":3,"id":7,"shop_id":2,"shopId":9}`,
		`{"version":3,"id":7,"name":"a","name":null}`,
		`{"version":3,"id":7,"images":[{"url":"u","alt":"a"}],"images":[{"url":"v"}]}`,
		`{"VERSION":3,"Id":7,"NAME":"n"}`,
	} {
		var want, got Product
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatalf("encoding/json refuses %q: %v", in, err)
		}
		if err := Decode([]byte(in), &got); err != nil {
			t.Errorf("Decode(%q): %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%q) = %+v, encoding/json %+v", in, got, want)
		}
	}
	for _, in := range []string{``, `{`, `{"version":3,"id":7,}`, `{"version":"3"}`, `{"id":1.5}`, `[]`, `{"version":3} x`, `{"name":"\x01"}`} {
		var want, got Product
		if json.Unmarshal([]byte(in), &want) == nil {
			t.Fatalf("encoding/json accepts %q: not a refusal case", in)
		}
		if err := Decode([]byte(in), &got); err == nil {
			t.Errorf("Decode(%q) accepted it: %+v", in, got)
		}
	}
}

// Decode accepts what encoding/json accepts and nothing else, and reads
// it the same: the faster decoder changes no record.
func FuzzDecodeAsBefore(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"id":2,"name":"n","images":[{"url":"u"}]}`, `{"version":1,"product_id":2,"html":"<p>x</p>"}`,
		`{}`, `null`, `{"name":"a","name":null,"shop_id":1,"shopid":2}`, `{"images":[{"url":"u","alt":"a"}],"images":[{"url":"v"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want Product
		gerr, werr := Decode(data, &got), json.Unmarshal(data, &want)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: Decode error %v, encoding/json error %v", data, gerr, werr)
		}
		if gerr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: Decode read %+v, encoding/json %+v", data, got, want)
		}
	})
}
