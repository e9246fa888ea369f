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

// Whatever Decode accepts, encoding/json accepts too: the faster decoder
// lets nothing through that was refused before.
func FuzzDecodeAcceptsNoMore(f *testing.F) {
	for _, s := range []string{`{"version":1,"id":2,"name":"n","images":[{"url":"u"}]}`, `{"version":1,"product_id":2,"html":"<p>x</p>"}`, `{}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p Product
		if Decode(data, &p) != nil {
			return
		}
		var q Product
		if err := json.Unmarshal(data, &q); err != nil {
			t.Fatalf("Decode accepted %q, encoding/json refuses it: %v", data, err)
		}
	})
}
