package redisstore_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// MustStore starts a real redis-server and returns a Store connected to it.
func MustStore(tb testing.TB) *redisstore.Store {
	tb.Helper()
	addr := testutil.MustRedis(tb)
	st, err := redisstore.Open(addr)
	if err != nil {
		tb.Fatalf("open redis %s: %v", addr, err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Ping(tb.Context()); err != nil {
		tb.Fatalf("ping redis %s: %v", addr, err)
	}
	return st
}

// MustPut writes entries and fails unless exactly want were written.
func MustPut(tb testing.TB, st *redisstore.Store, want int, entries ...redisstore.Entry) {
	tb.Helper()
	n, err := st.Put(tb.Context(), entries...)
	if err != nil {
		tb.Fatalf("put: %v", err)
	}
	if n != want {
		tb.Fatalf("put wrote %d of %d entries, want %d", n, len(entries), want)
	}
}

// MustGet returns the value at key (nil when absent).
func MustGet(tb testing.TB, st *redisstore.Store, key string) []byte {
	tb.Helper()
	b, err := st.Get(tb.Context(), key)
	if err != nil {
		tb.Fatalf("get %s: %v", key, err)
	}
	return b
}

func doc(version int64, name string) []byte {
	return fmt.Appendf(nil, `{"version":%d,"id":1,"name":%q}`, version, name)
}

func TestKeys(t *testing.T) {
	tests := []struct{ got, want string }{
		{redisstore.ItemKey(42), "item:{42}"},
		{redisstore.DimKey(42, catalog.DimBase), "item:{42}:base"},
		{redisstore.DimKey(42, catalog.DimDescription), "item:{42}:desc"},
		{redisstore.DimKey(42, catalog.DimSpec), "item:{42}:spec"},
		{redisstore.ShopKey(7), "shop:{s7}"},
		{redisstore.ItemKey(catalog.MaxID), "item:{999999999999999999}"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("key = %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestPutVersioned(t *testing.T) {
	st := MustStore(t)
	tests := []struct {
		name      string
		before    []byte // raw value SET before the put; nil for none
		version   int64
		wantWrite bool
	}{
		{name: "empty key", version: 5, wantWrite: true},
		{name: "newer version", before: doc(5, "old"), version: 6, wantWrite: true},
		{name: "much newer version", before: doc(5, "old"), version: 1_000_000_000_000, wantWrite: true},
		{name: "older version", before: doc(5, "old"), version: 4, wantWrite: false},
		{name: "equal version", before: doc(5, "old"), version: 5, wantWrite: false},
		{name: "foreign value without version", before: []byte(`hello`), version: 1, wantWrite: true},
		{name: "foreign JSON, version not first", before: []byte(`{"id":1,"version":99}`), version: 1, wantWrite: true},
		{name: "foreign value, negative version", before: []byte(`{"version":-3}`), version: 1, wantWrite: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := redisstore.ItemKey(int64(1000 + i))
			if tt.before != nil {
				if err := st.Client().Set(t.Context(), key, tt.before, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			val := doc(tt.version, "new")
			want := 0
			if tt.wantWrite {
				want = 1
			}
			MustPut(t, st, want, redisstore.Entry{Key: key, Version: tt.version, Value: val})
			got := MustGet(t, st, key)
			switch {
			case tt.wantWrite && string(got) != string(val):
				t.Fatalf("value = %s, want %s", got, val)
			case !tt.wantWrite && string(got) != string(tt.before):
				t.Fatalf("value = %s, want it unchanged (%s)", got, tt.before)
			}
		})
	}
}

func TestPutRejectsUnversionedValue(t *testing.T) {
	st := MustStore(t)
	key := redisstore.ItemKey(1)
	MustPut(t, st, 1, redisstore.Entry{Key: key, Version: 1, Value: doc(1, "kept")})
	for _, v := range []string{``, `{"id":1,"version":9}`, ` {"version":9}`, `null`, `{"Version":9}`} {
		t.Run(v, func(t *testing.T) {
			n, err := st.Put(t.Context(),
				redisstore.Entry{Key: redisstore.ItemKey(2), Version: 9, Value: doc(9, "ok")},
				redisstore.Entry{Key: key, Version: 9, Value: []byte(v)},
			)
			if err == nil || !strings.Contains(err.Error(), "version") {
				t.Fatalf("put = %d, %v; want an error about the version prefix", n, err)
			}
			if got := MustGet(t, st, key); string(got) != string(doc(1, "kept")) {
				t.Fatalf("value = %s, want it unchanged", got)
			}
			if got := MustGet(t, st, redisstore.ItemKey(2)); got != nil {
				t.Fatalf("the valid entry of a rejected batch was written: %s", got)
			}
		})
	}
}

func TestNegativeMarker(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	missing := func(key string) redisstore.Entry {
		return redisstore.Entry{Key: key, Version: 0, Value: catalog.MissingJSON, TTL: redisstore.NegativeTTL}
	}

	t.Run("written with a TTL", func(t *testing.T) {
		key := redisstore.ItemKey(10)
		MustPut(t, st, 1, missing(key))
		if got := MustGet(t, st, key); string(got) != string(catalog.MissingJSON) {
			t.Fatalf("value = %s", got)
		}
		ttl, err := st.Client().PTTL(ctx, key).Result()
		if err != nil || ttl <= 0 || ttl > redisstore.NegativeTTL {
			t.Fatalf("ttl = %v, %v; want 0 < ttl <= %v", ttl, err, redisstore.NegativeTTL)
		}
	})

	t.Run("replaced by a real document, which keeps no TTL", func(t *testing.T) {
		key := redisstore.ItemKey(11)
		MustPut(t, st, 1, missing(key))
		MustPut(t, st, 1, redisstore.Entry{Key: key, Version: 1, Value: doc(1, "real")})
		if got := MustGet(t, st, key); string(got) != string(doc(1, "real")) {
			t.Fatalf("value = %s, want the real document", got)
		}
		if ttl, err := st.Client().PTTL(ctx, key).Result(); err != nil || ttl != -1 {
			t.Fatalf("ttl = %v, %v; want none (-1ms)", ttl, err)
		}
	})

	t.Run("never replaces a real document", func(t *testing.T) {
		key := redisstore.ItemKey(12)
		MustPut(t, st, 1, redisstore.Entry{Key: key, Version: 3, Value: doc(3, "real")})
		MustPut(t, st, 0, missing(key))
		if got := MustGet(t, st, key); string(got) != string(doc(3, "real")) {
			t.Fatalf("value = %s, want the real document", got)
		}
		if ttl, err := st.Client().PTTL(ctx, key).Result(); err != nil || ttl != -1 {
			t.Fatalf("ttl = %v, %v; want none", ttl, err)
		}
	})

	t.Run("expires", func(t *testing.T) {
		key := redisstore.ItemKey(13)
		MustPut(t, st, 1, redisstore.Entry{Key: key, Version: 0, Value: catalog.MissingJSON, TTL: 50 * time.Millisecond})
		testutil.Eventually(t, 5*time.Second, func() error {
			if got := MustGet(t, st, key); got != nil {
				return fmt.Errorf("marker still there: %s", got)
			}
			return nil
		})
	})
}

func TestPutAfterScriptFlush(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	key := redisstore.ItemKey(20)
	MustPut(t, st, 1, redisstore.Entry{Key: key, Version: 1, Value: doc(1, "a")})
	for round := range 2 {
		if err := st.Client().ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		v := int64(2 + round)
		MustPut(t, st, 2, redisstore.Entry{Key: key, Version: v, Value: doc(v, "b")},
			redisstore.Entry{Key: redisstore.DimKey(20, catalog.DimBase), Version: v, Value: doc(v, "base")})
		// And the compare-and-set still holds after the reload.
		MustPut(t, st, 0, redisstore.Entry{Key: key, Version: 1, Value: doc(1, "stale")})
	}
	if got := MustGet(t, st, key); string(got) != string(doc(3, "b")) {
		t.Fatalf("value = %s", got)
	}
}

func TestMGetHashTaggedKeys(t *testing.T) {
	st := MustStore(t)
	const id = 77
	keys := []string{
		redisstore.ItemKey(id),
		redisstore.DimKey(id, catalog.DimBase),
		redisstore.DimKey(id, catalog.DimDescription),
		redisstore.DimKey(id, catalog.DimSpec),
	}
	for _, k := range keys {
		if tag := hashTag(k); tag != "77" {
			t.Fatalf("key %s has hash tag %q, want 77", k, tag)
		}
	}
	MustPut(t, st, 3,
		redisstore.Entry{Key: keys[0], Version: 4, Value: doc(4, "page")},
		redisstore.Entry{Key: keys[1], Version: 2, Value: doc(2, "base")},
		redisstore.Entry{Key: keys[3], Version: 3, Value: doc(3, "spec")},
	)
	got, err := st.MGet(t.Context(), keys...)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{string(doc(4, "page")), string(doc(2, "base")), "", string(doc(3, "spec"))}
	if len(got) != len(want) {
		t.Fatalf("MGet returned %d values, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("MGet[%d] (%s) = %q, want %q", i, keys[i], got[i], want[i])
		}
	}
	if got[2] != nil {
		t.Errorf("a missing key must come back nil, got %q", got[2])
	}
}

// hashTag is the part of a key Redis Cluster hashes: between the first {
// and the next }.
func hashTag(key string) string {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return key
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok || tag == "" {
		return key
	}
	return tag
}

func TestVersionOf(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{`{"version":42,"id":1}`, 42},
		{`{"version":0,"missing":true}`, 0},
		{`{"version":7}`, 7},
		{`{"version":123456789012}`, 123456789012},
		{`{"version":`, 0},
		{`{"id":1,"version":9}`, 0},
		{`{"version":-1}`, 0},
		{`hello`, 0},
		{``, 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := redisstore.VersionOf([]byte(tt.in)); got != tt.want {
				t.Fatalf("VersionOf(%s) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
	if got := redisstore.VersionOf(nil); got != 0 {
		t.Fatalf("VersionOf(nil) = %d", got)
	}
}

// TestConcurrentWritersNewestWins races 20 writers over versions 1..200 of
// one key in random order: whatever the interleaving, 200 stays.
func TestConcurrentWritersNewestWins(t *testing.T) {
	st := MustStore(t)
	key := redisstore.ItemKey(500)
	versions := rand.Perm(200)
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	for w := range 20 {
		wg.Go(func() {
			for i := w; i < len(versions); i += 20 {
				v := int64(versions[i] + 1)
				n, err := st.Put(t.Context(), redisstore.Entry{Key: key, Version: v, Value: doc(v, "x")})
				if err != nil {
					t.Errorf("put version %d: %v", v, err)
					return
				}
				mu.Lock()
				written += n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	got := MustGet(t, st, key)
	if v := redisstore.VersionOf(got); v != 200 {
		t.Fatalf("final version = %d (%s), want 200", v, got)
	}
	if written < 1 || written > 200 {
		t.Fatalf("%d writes reported, want 1..200", written)
	}
}

func TestMGetNoKeys(t *testing.T) {
	st := MustStore(t)
	got, err := st.MGet(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("MGet() = %q, %v; want nothing and no error", got, err)
	}
}
