package redisstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/detailpage/detailpage/go/internal/redisstore"
)

// bigValue is a versioned JSON value of about n bytes.
func bigValue(version int64, n int, fill string) []byte {
	return fmt.Appendf(nil, `{"version":%d,"html":"%s"}`, version, strings.Repeat(fill, n/len(fill)))
}

// MustNoLargeValue checks that no key of the hash tag holds more than
// redisstore.MaxValueBytes, and returns how many keys it has.
func MustNoLargeValue(tb testing.TB, st *redisstore.Store, pattern string) int {
	tb.Helper()
	keys, err := st.Client().Keys(tb.Context(), pattern).Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, k := range keys {
		n, err := st.Client().StrLen(tb.Context(), k).Result()
		if err != nil {
			tb.Fatal(err)
		}
		if n > redisstore.MaxValueBytes {
			tb.Errorf("%s holds %d bytes, more than %d", k, n, redisstore.MaxValueBytes)
		}
	}
	return len(keys)
}

func TestLargeValuesAreSegmented(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	key := redisstore.DimKey(7, "desc")

	v1 := bigValue(10, 200<<10, "详情<p>")
	if n, err := st.Put(ctx, redisstore.Entry{Key: key, Version: 10, Value: v1}); err != nil || n != 1 {
		t.Fatalf("put 200 KB: %d, %v", n, err)
	}
	got, err := st.Get(ctx, key)
	if err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(v1))
	}
	if keys := MustNoLargeValue(t, st, "item:{7}*"); keys < 5 {
		t.Errorf("%d keys for a 200 KB value, want a head and at least 4 segments", keys)
	}

	// A newer, smaller value replaces it and its segments go away.
	v2 := bigValue(11, 100<<10, "x")
	if n, err := st.Put(ctx, redisstore.Entry{Key: key, Version: 11, Value: v2}); err != nil || n != 1 {
		t.Fatalf("put newer: %d, %v", n, err)
	}
	if keys := MustNoLargeValue(t, st, "item:{7}*"); keys != 1+2 {
		t.Errorf("%d keys after the replacement, want the head and 2 segments", keys)
	}
	// An older split value is refused and leaves no segments behind.
	if n, err := st.Put(ctx, redisstore.Entry{Key: key, Version: 9, Value: bigValue(9, 300<<10, "y")}); err != nil || n != 0 {
		t.Fatalf("put older: %d, %v; want refused", n, err)
	}
	if keys := MustNoLargeValue(t, st, "item:{7}*"); keys != 3 {
		t.Errorf("%d keys after a refused write, want 3", keys)
	}
	if got, _ := st.Get(ctx, key); !bytes.Equal(got, v2) {
		t.Errorf("value changed by a refused write")
	}
	// A small value replaces a split one and its segments.
	small := []byte(`{"version":12,"html":"short"}`)
	if n, _ := st.Put(ctx, redisstore.Entry{Key: key, Version: 12, Value: small}); n != 1 {
		t.Fatal("small put refused")
	}
	if keys := MustNoLargeValue(t, st, "item:{7}*"); keys != 1 {
		t.Errorf("%d keys after a small value replaced a split one, want 1", keys)
	}

	// A lost segment reads as an error callers treat as a miss.
	if _, err := st.Put(ctx, redisstore.Entry{Key: key, Version: 13, Value: bigValue(13, 130<<10, "z")}); err != nil {
		t.Fatal(err)
	}
	st.Client().Del(ctx, redisstore.SegmentKey(key, 13, 1))
	if _, err := st.Get(ctx, key); !errors.Is(err, redisstore.ErrSegmentMissing) {
		t.Errorf("read with a lost segment: %v, want ErrSegmentMissing", err)
	}
}

func TestProductValuesReassembleSegments(t *testing.T) {
	st := MustStore(t)
	doc := bigValue(50, 150<<10, "段")
	if _, err := st.Put(t.Context(), redisstore.Entry{Key: redisstore.ItemKey(3), Version: 50, Value: doc}); err != nil {
		t.Fatal(err)
	}
	vals, err := st.ProductValues(t.Context(), []int64{3})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(vals[3].Item, doc) {
		t.Errorf("ProductValues gave %d bytes, want the %d-byte document", len(vals[3].Item), len(doc))
	}
}

// A replay of a split value at the same version (a re-delivered event, a
// refresh, a rebuild) is refused without touching the live segments.
func TestSameVersionReplayKeepsSegments(t *testing.T) {
	st := MustStore(t)
	key := redisstore.ItemKey(9)
	v := bigValue(20, 150<<10, "页")
	for range 3 {
		if _, err := st.Put(t.Context(), redisstore.Entry{Key: key, Version: 20, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Get(t.Context(), key)
	if err != nil || !bytes.Equal(got, v) {
		t.Fatalf("after replays: %d bytes, %v; want the %d written", len(got), err, len(v))
	}
}
