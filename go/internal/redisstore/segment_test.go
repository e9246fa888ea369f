package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
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

// A split value that lost a segment (evicted) is written again at the
// same version, so a refresh repairs it; a whole one is not.
func TestSameVersionRepairsLostSegment(t *testing.T) {
	st := MustStore(t)
	key := redisstore.ItemKey(10)
	v := bigValue(30, 150<<10, "页")
	MustPut(t, st, 1, redisstore.Entry{Key: key, Version: 30, Value: v})
	MustPut(t, st, 0, redisstore.Entry{Key: key, Version: 30, Value: v})
	if err := st.Client().Del(t.Context(), redisstore.SegmentKey(key, 30, 1)).Err(); err != nil {
		t.Fatal(err)
	}
	vs, err := st.ProductVersions(t.Context(), []int64{10})
	if err != nil || vs[10].Page != -1 {
		t.Fatalf("versions with a segment gone: %+v, %v; want the page absent (-1)", vs[10], err)
	}
	MustPut(t, st, 1, redisstore.Entry{Key: key, Version: 30, Value: v})
	if got := MustGet(t, st, key); !bytes.Equal(got, v) {
		t.Fatalf("after the repair: %d bytes, want the %d written", len(got), len(v))
	}
	MustPut(t, st, 0, redisstore.Entry{Key: key, Version: 29, Value: v})
	if vs, err = st.ProductVersions(t.Context(), []int64{10}); err != nil || vs[10].Page != 30 {
		t.Fatalf("versions after the repair: %+v, %v; want the page at 30", vs[10], err)
	}
}

// failSegmentReads makes every MGET of segment keys fail on the client (the
// server stays real): the read of a split value's segments breaks after its
// head was read.
type failSegmentReads struct{}

var (
	errSegmentRead = errors.New("injected: segment read failed")
	segmentKey     = regexp.MustCompile(`:\d+:\d+$`) // key:version:i
)

func (failSegmentReads) DialHook(next redis.DialHook) redis.DialHook { return next }
func (failSegmentReads) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); cmd.Name() == "mget" && len(args) > 1 && segmentKey.MatchString(fmt.Sprint(args[1])) {
			cmd.SetErr(errSegmentRead)
			return errSegmentRead
		}
		return next(ctx, cmd)
	}
}
func (failSegmentReads) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A failed read of a split value's segments is an error of the bulk reads,
// never a missing value (which would send the caller to rebuild a page
// that is there); a segment really gone still reads as absent.
func TestBulkReadsReportSegmentReadFailures(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	const id = 5
	doc := bigValue(30, 150<<10, "段")
	desc := bigValue(30, 150<<10, "述")
	if _, err := st.Put(ctx,
		redisstore.Entry{Key: redisstore.ItemKey(id), Version: 30, Value: doc},
		redisstore.Entry{Key: redisstore.DimKey(id, catalog.DimDescription), Version: 30, Value: desc},
	); err != nil {
		t.Fatal(err)
	}
	failing := redisstore.New(redis.NewClient(st.Client().(*redis.Client).Options()))
	t.Cleanup(func() { failing.Close() })
	failing.Client().AddHook(failSegmentReads{})

	if vals, err := failing.ProductValues(ctx, []int64{id}); !errors.Is(err, errSegmentRead) {
		t.Errorf("ProductValues with failing segment reads: %d values, error %v; want the read error", len(vals[id].Item), err)
	}
	if vals, err := failing.Dimensions(ctx, []int64{id}, catalog.DimDescription); !errors.Is(err, errSegmentRead) {
		t.Errorf("Dimensions with failing segment reads: %d bytes, error %v; want the read error", len(vals[id].Dims[catalog.DimDescription]), err)
	}

	// A lost segment: absent, no error.
	if err := st.Client().Del(ctx, redisstore.SegmentKey(redisstore.DimKey(id, catalog.DimDescription), 30, 1)).Err(); err != nil {
		t.Fatal(err)
	}
	vals, err := st.Dimensions(ctx, []int64{id}, catalog.DimDescription)
	if err != nil {
		t.Fatalf("Dimensions with a lost segment: %v, want no error", err)
	}
	if v, ok := vals[id].Dims[catalog.DimDescription]; ok {
		t.Errorf("a description that lost a segment read as %d bytes, want absent", len(v))
	}
	pv, err := st.ProductValues(ctx, []int64{id})
	if err != nil {
		t.Fatalf("ProductValues with a lost segment: %v, want no error", err)
	}
	if _, ok := pv[id].Dims[catalog.DimDescription]; ok || !bytes.Equal(pv[id].Item, doc) {
		t.Errorf("ProductValues: description present %v, item %d bytes; want the description absent and the %d-byte item", ok, len(pv[id].Item), len(doc))
	}
}
