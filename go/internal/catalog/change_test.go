package catalog

import (
	"encoding/json"
	"reflect"
	"testing"
)

// changeSeeds are events as the source writes them and near misses.
var changeSeeds = []string{
	`{"entity":"product","id":42,"version":1234,"dims":["price"],"ts":1795280000000}`,
	`{"entity":"product","id":42,"version":1234,"dims":["price","stock","recommend"],"ts":1795280000000}`,
	`{"entity":"product","id":7,"version":0,"refresh":true,"ts":0}`,
	`{"entity":"shop","id":3,"version":12,"ts":1}`,
	`{"entity":"product","id":42,"version":1234,"dims":[],"ts":1}`,
	`{"entity":"product","id":42,"version":1234,"dims":["nope"],"ts":1}`,
	`{"entity":"product","id":042,"version":1,"ts":1}`,
	`{"entity":"product","id":-1,"version":1,"ts":1}`,
	`{"entity":"product","id":1234567890123456789,"version":1,"ts":1}`,
	`{"entity":"product","id":1,"version":1,"ts":1} `,
	`{"entity":"product","id":1,"version":1,"ts":1,"id":2}`,
	`{"entity":"Product","id":1,"version":1,"ts":1}`,
	`{"entity":"product","id":1,"version":1,"refresh":false,"ts":1}`,
	`{"entity":"product","id":1,"version":1,"dims":["price",],"ts":1}`,
	`{"entity":"product","id":1,"version":1,"dims":["price"]"ts":1}`,
	`{"entity":"product","id":1,"version":1.5,"ts":1}`,
	`{"entity":"product","id":1,"version":1}`,
	`{"ts":1,"entity":"product","id":1,"version":1}`,
	`{"entity":"pro\u0064uct","id":1,"version":1,"ts":1}`,
	`{"entity":"product","id":1,"version":1,"dims":["pri"],"ts":1}`,
	`{"entity":"product","id":1,"version":1,"dims":["price"`,
	``,
}

// FuzzDecodeChangeFast: whatever the fast path accepts decodes exactly as
// encoding/json decodes it.
func FuzzDecodeChangeFast(f *testing.F) {
	for _, s := range changeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeChangeFast(b)
		if !ok {
			return
		}
		var want Change
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", b, fast, want)
		}
	})
}

// TestDecodeChangeFastTakesTheSourcesEvents: every event json.Marshal
// writes (the outbox's encoding) takes the fast path.
func TestDecodeChangeFastTakesTheSourcesEvents(t *testing.T) {
	for _, c := range []Change{
		{Entity: EntityProduct, ID: 42, Version: 1234, Dims: []Dimension{DimPrice}, TS: 1795280000000},
		{Entity: EntityProduct, ID: MaxID, Version: 999_999_999_999, Dims: ProductDimensions, TS: 1},
		{Entity: EntityProduct, ID: 1, Version: 5, Refresh: true, TS: 1795280000000},
		{Entity: EntityShop, ID: 9, Version: 0},
	} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeChangeFast(b)
		if !ok || !reflect.DeepEqual(got, c) {
			t.Errorf("%s: fast path %+v (ok %v), want %+v", b, got, ok, c)
		}
	}
}

func BenchmarkDecodeChange(b *testing.B) {
	ev := []byte(`{"entity":"product","id":4242,"version":123456789,"dims":["stock"],"ts":1795280000000}`)
	for b.Loop() {
		if _, err := DecodeChange(ev); err != nil {
			b.Fatal(err)
		}
	}
}
