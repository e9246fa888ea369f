package redisstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// paths are Put's two ways of calling the compare-and-set: one script call
// per run of entries sharing a hash tag (what Put does), and one per entry
// (what it did before). Every grouped-write test runs on both, against a
// server of its own, and wants the same answers from both.
var paths = []struct {
	name string
	view func(*redisstore.Store) *redisstore.Store
}{
	{"grouped", func(s *redisstore.Store) *redisstore.Store { return s }},
	{"per key", redisstore.PerKeyCalls},
}

// productKeys are the page document's key and each dimension's.
func productKeys(id int64) []string {
	keys := []string{redisstore.ItemKey(id)}
	for _, d := range catalog.ProductDimensions {
		keys = append(keys, redisstore.DimKey(id, d))
	}
	return keys
}

// MustEvalshaCalls returns how many EVALSHA commands the server ran since
// its statistics were last reset (CONFIG RESETSTAT).
func MustEvalshaCalls(tb testing.TB, st *redisstore.Store) int {
	tb.Helper()
	info, err := st.Client().Info(tb.Context(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:calls=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		if err != nil {
			tb.Fatalf("commandstats line %q: %v", line, err)
		}
		return n
	}
	return 0
}

// MustResetStats loads both paths' scripts (a first call fails NOSCRIPT
// and is repeated, which would count twice) and zeroes the server's
// command statistics.
func MustResetStats(tb testing.TB, st *redisstore.Store) {
	tb.Helper()
	for _, p := range paths {
		if _, err := p.view(st).Put(tb.Context(), redisstore.Entry{Key: "warm", Version: 1, Value: doc(1, "warm")}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := st.Client().ConfigResetStat(tb.Context()).Err(); err != nil {
		tb.Fatal(err)
	}
}

// One product's keys, some newer in Redis than the write, some older, one
// equal, some absent and one a foreign value: one script call writes
// exactly the older, absent and foreign ones and counts them.
func TestGroupedPutMixedVersions(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			ctx := t.Context()
			keys := productKeys(1)
			before := [][]byte{doc(9, "newer"), doc(3, "older"), nil, doc(5, "equal"), doc(4, "older"), []byte("foreign"), nil}
			want := []bool{false, true, true, false, true, true, true}
			var entries []redisstore.Entry
			for i, k := range keys {
				if before[i] != nil {
					if err := st.Client().Set(ctx, k, before[i], 0).Err(); err != nil {
						t.Fatal(err)
					}
				}
				entries = append(entries, redisstore.Entry{Key: k, Version: 5, Value: doc(5, "new "+k)})
			}
			MustResetStats(t, st)
			MustPut(t, p.view(st), 5, entries...)
			for i, k := range keys {
				got := MustGet(t, st, k)
				switch {
				case want[i] && !bytes.Equal(got, entries[i].Value):
					t.Errorf("%s = %s, want it replaced by %s", k, got, entries[i].Value)
				case !want[i] && !bytes.Equal(got, before[i]):
					t.Errorf("%s = %s, want it kept (%s)", k, got, before[i])
				}
			}
			calls := MustEvalshaCalls(t, st)
			if p.name == "grouped" && calls != 1 {
				t.Errorf("%d script calls for one product's %d keys, want 1", calls, len(keys))
			}
			if p.name == "per key" && calls != len(keys) {
				t.Errorf("%d script calls on the per-key path, want %d", calls, len(keys))
			}
		})
	}
}

// A split value among a product's small ones: written with its segments
// when the call accepts its version; an older split value in a call is
// refused and leaves no segment; a replay at the same version repairs a
// head that lost a segment, and replaces no whole one.
func TestGroupedPutSegmented(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			w := p.view(st)
			ctx := t.Context()
			desc := redisstore.DimKey(7, catalog.DimDescription)
			product := func(version int64, descBytes int, fill string) []redisstore.Entry {
				var out []redisstore.Entry
				for _, k := range productKeys(7) {
					v := doc(version, k)
					if k == desc {
						v = bigValue(version, descBytes, fill)
					}
					out = append(out, redisstore.Entry{Key: k, Version: version, Value: v})
				}
				return out
			}
			v10 := product(10, 200<<10, "详情<p>")
			MustPut(t, w, 7, v10...)
			for _, e := range v10 {
				if got := MustGet(t, st, e.Key); !bytes.Equal(got, e.Value) {
					t.Fatalf("%s: %d bytes back, want the %d written", e.Key, len(got), len(e.Value))
				}
			}
			segs := MustNoLargeValue(t, st, "item:{7}*") - 7
			if segs < 4 {
				t.Fatalf("%d segment keys for a 200 KB value, want at least 4", segs)
			}

			// Older: nothing of the call is written, no segment left behind.
			MustPut(t, w, 0, product(9, 300<<10, "y")...)
			if n := MustNoLargeValue(t, st, "item:{7}*"); n != 7+segs {
				t.Errorf("%d keys after a refused call, want %d", n, 7+segs)
			}
			// The same version again, whole: refused.
			MustPut(t, w, 0, v10...)
			// One segment evicted: the replay of the same version repairs
			// the split value, and only it.
			if err := st.Client().Del(ctx, redisstore.SegmentKey(desc, 10, 1)).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, desc); !errors.Is(err, redisstore.ErrSegmentMissing) {
				t.Fatalf("after the eviction: %v, want ErrSegmentMissing", err)
			}
			MustPut(t, w, 1, v10...)
			if got := MustGet(t, st, desc); !bytes.Equal(got, entryOf(v10, desc).Value) {
				t.Errorf("split value not repaired: %d bytes", len(got))
			}
			// Newer and small: the head and every segment of the split
			// value are replaced.
			MustPut(t, w, 7, product(11, 100, "z")...)
			if n := MustNoLargeValue(t, st, "item:{7}*"); n != 7 {
				t.Errorf("%d keys after a small value replaced the split one, want 7", n)
			}
		})
	}
}

func entryOf(entries []redisstore.Entry, key string) redisstore.Entry {
	for _, e := range entries {
		if e.Key == key {
			return e
		}
	}
	return redisstore.Entry{}
}

// Entries of one call keep their own TTLs, split values' segments too.
func TestGroupedPutTTL(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			ctx := t.Context()
			keys := productKeys(3)
			entries := []redisstore.Entry{
				{Key: keys[0], Version: 0, Value: catalog.MissingJSON, TTL: redisstore.NegativeTTL},
				{Key: keys[1], Version: 2, Value: doc(2, "kept")},
				{Key: keys[2], Version: 2, Value: bigValue(2, 100<<10, "x"), TTL: time.Hour},
				{Key: keys[3], Version: 2, Value: doc(2, "short"), TTL: 50 * time.Millisecond},
			}
			MustPut(t, p.view(st), 4, entries...)
			pttl := func(k string) time.Duration {
				d, err := st.Client().PTTL(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			if d := pttl(keys[0]); d <= 0 || d > redisstore.NegativeTTL {
				t.Errorf("marker ttl %v, want 0 < ttl <= %v", d, redisstore.NegativeTTL)
			}
			if d := pttl(keys[1]); d != -1 {
				t.Errorf("document ttl %v, want none", d)
			}
			for i := range 2 {
				for _, k := range []string{keys[2], redisstore.SegmentKey(keys[2], 2, i)} {
					if d := pttl(k); d <= 50*time.Minute || d > time.Hour {
						t.Errorf("%s ttl %v, want about an hour", k, d)
					}
				}
			}
			testutil.Eventually(t, 5*time.Second, func() error {
				if got := MustGet(t, st, keys[3]); got != nil {
					return fmt.Errorf("%s still there: %s", keys[3], got)
				}
				return nil
			})
			if got := MustGet(t, st, keys[1]); !bytes.Equal(got, doc(2, "kept")) {
				t.Errorf("%s = %s after its neighbour expired", keys[1], got)
			}
		})
	}
}

// Entries of several products interleaved, and one key written twice in a
// Put: each write is evaluated after the ones before it, so both paths
// leave the same values and count the same writes.
func TestGroupedPutInterleavedAndRepeated(t *testing.T) {
	a, b := redisstore.ItemKey(1), redisstore.ItemKey(2)
	da := redisstore.DimKey(1, catalog.DimBase)
	e := func(key string, v int64) redisstore.Entry {
		return redisstore.Entry{Key: key, Version: v, Value: doc(v, key)}
	}
	tests := []struct {
		name    string
		entries []redisstore.Entry
		written int
		want    map[string]int64
	}{
		{"newer after older", []redisstore.Entry{e(a, 3), e(a, 5)}, 2, map[string]int64{a: 5}},
		{"older after newer", []redisstore.Entry{e(a, 5), e(a, 3)}, 1, map[string]int64{a: 5}},
		{"equal twice", []redisstore.Entry{e(a, 5), e(a, 5)}, 1, map[string]int64{a: 5}},
		{"interleaved products", []redisstore.Entry{e(a, 1), e(b, 1), e(da, 1), e(b, 2), e(a, 2), e(da, 1)}, 5, map[string]int64{a: 2, b: 2, da: 1}},
		{"back to a product", []redisstore.Entry{e(a, 4), e(da, 4), e(b, 4), e(a, 3), e(da, 6), e(a, 7)}, 5, map[string]int64{a: 7, b: 4, da: 6}},
		{"untagged keys between", []redisstore.Entry{e("plain", 2), e(a, 2), e("plain", 1), e(a, 1), e("plain", 3)}, 3, map[string]int64{"plain": 3, a: 2}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if err := st.Client().FlushDB(t.Context()).Err(); err != nil {
						t.Fatal(err)
					}
					MustPut(t, p.view(st), tt.written, tt.entries...)
					for k, v := range tt.want {
						if got := redisstore.VersionOf(MustGet(t, st, k)); got != v {
							t.Errorf("%s at version %d, want %d", k, got, v)
						}
					}
				})
			}
		})
	}
}

// A split value written twice in one call: the second write, at the same
// version, finds the first one's segments whole and is refused; at a
// higher version it replaces them (and the same version again before it
// is refused: the value is whole).
func TestGroupedPutSplitValueTwice(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			key := redisstore.DimKey(5, catalog.DimDescription)
			v1, v2 := bigValue(1, 150<<10, "a"), bigValue(2, 70<<10, "b")
			MustPut(t, p.view(st), 1,
				redisstore.Entry{Key: key, Version: 1, Value: v1},
				redisstore.Entry{Key: key, Version: 1, Value: bigValue(1, 150<<10, "c")})
			if got := MustGet(t, st, key); !bytes.Equal(got, v1) {
				t.Fatalf("after a same-version repeat: %.40s…, want the first value", got)
			}
			MustPut(t, p.view(st), 1,
				redisstore.Entry{Key: key, Version: 1, Value: v1},
				redisstore.Entry{Key: key, Version: 2, Value: v2})
			if got := MustGet(t, st, key); !bytes.Equal(got, v2) {
				t.Fatalf("after a newer repeat: %.40s…, want the newer value", got)
			}
			if n := MustNoLargeValue(t, st, "item:{5}*"); n != 1+2 {
				t.Errorf("%d keys, want the head and the newer value's 2 segments", n)
			}
		})
	}
}

// A product with more keys than a call holds is written in several calls
// of at most redisstore.MaxCallKeys, a repeated key in a new call, values
// over a megabyte in calls of their own, and an untagged key in a call of
// its own.
func TestGroupedPutCallBounds(t *testing.T) {
	st := MustStore(t)
	var entries []redisstore.Entry
	for i := range 2*redisstore.MaxCallKeys + 10 {
		entries = append(entries, redisstore.Entry{Key: fmt.Sprintf("item:{9}:k%d", i), Version: 1, Value: doc(1, "v")})
	}
	MustResetStats(t, st)
	MustPut(t, st, len(entries), entries...)
	if calls := MustEvalshaCalls(t, st); calls != 3 {
		t.Errorf("%d keys of one tag in %d calls, want 3", len(entries), calls)
	}

	// A key repeated in a run starts a new call: the repeat is evaluated
	// after the first write (a call writes its keys with one MSET).
	MustResetStats(t, st)
	MustPut(t, st, 4,
		redisstore.Entry{Key: "item:{10}", Version: 1, Value: doc(1, "a")},
		redisstore.Entry{Key: "item:{10}:base", Version: 1, Value: doc(1, "b")},
		redisstore.Entry{Key: "item:{10}", Version: 2, Value: doc(2, "a")},
		redisstore.Entry{Key: "item:{10}:spec", Version: 1, Value: doc(1, "c")},
		redisstore.Entry{Key: "item:{10}:base", Version: 1, Value: doc(1, "stale")})
	// The calls: [{10}, base] and [{10} v2, spec, base]: each repeat is in
	// the call after its first write's.
	if calls := MustEvalshaCalls(t, st); calls != 2 {
		t.Errorf("%d calls for a run with repeated keys, want 2", calls)
	}
	if got := MustGet(t, st, "item:{10}"); !bytes.Equal(got, doc(2, "a")) {
		t.Errorf("item:{10} = %s, want the repeat's newer value", got)
	}
	if got := MustGet(t, st, "item:{10}:base"); !bytes.Equal(got, doc(1, "b")) {
		t.Errorf("item:{10}:base = %s, want the first value (the repeat is not newer)", got)
	}

	big := func(key string) redisstore.Entry {
		return redisstore.Entry{Key: key, Version: 1, Value: bigValue(1, 600<<10, "b")}
	}
	MustResetStats(t, st)
	MustPut(t, st, 5, big("item:{8}:a"), big("item:{8}:b"), big("item:{8}:c"),
		redisstore.Entry{Key: "untagged", Version: 1, Value: doc(1, "u")},
		redisstore.Entry{Key: "empty:{}tag", Version: 1, Value: doc(1, "e")})
	// 600 KB + 600 KB passes the megabyte: a, b, c alone; then the two
	// untagged keys ({} is no tag) one call each.
	if calls := MustEvalshaCalls(t, st); calls != 5 {
		t.Errorf("%d calls, want 5", calls)
	}
	for _, k := range []string{"item:{8}:a", "item:{8}:b", "item:{8}:c"} {
		if got := MustGet(t, st, k); !bytes.Equal(got, big(k).Value) {
			t.Errorf("%s: %d bytes back", k, len(got))
		}
	}
}

// A key of another type in a call fails that key only: the others of its
// call and of the other calls are written, and Put reports the error (and
// no count), as with one call per key.
func TestGroupedPutKeyOfAnotherType(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			ctx := t.Context()
			keys := productKeys(4)
			if err := st.Client().RPush(ctx, keys[2], "a list").Err(); err != nil {
				t.Fatal(err)
			}
			var entries []redisstore.Entry
			for _, id := range []int64{4, 5} {
				for _, k := range productKeys(id) {
					entries = append(entries, redisstore.Entry{Key: k, Version: 1, Value: doc(1, k)})
				}
			}
			n, err := p.view(st).Put(ctx, entries...)
			if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") || n != 0 {
				t.Fatalf("put over a list: %d, %v; want 0 and the WRONGTYPE error", n, err)
			}
			for _, e := range entries {
				got, err := st.Client().Get(ctx, e.Key).Bytes()
				if e.Key == keys[2] {
					if !errors.Is(err, redis.Nil) && !strings.Contains(fmt.Sprint(err), "WRONGTYPE") {
						t.Errorf("%s: %v", e.Key, err)
					}
					continue
				}
				if err != nil || !bytes.Equal(got, e.Value) {
					t.Errorf("%s = %s, %v; want it written", e.Key, got, err)
				}
			}
		})
	}
}

// A fenced call is refused whole when the fence has moved: none of its
// keys is written, split values' segments neither.
func TestGroupedFencedCallRefusedWhole(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			ctx := t.Context()
			const fence = "fence:{g}"
			f := p.view(MustFenced(t, st, fence))
			var entries []redisstore.Entry
			for _, k := range productKeys(6) {
				entries = append(entries, redisstore.Entry{Key: k, Version: 1, Value: doc(1, k)})
			}
			MustPut(t, f, len(entries), entries...)
			if err := st.Client().Incr(ctx, fence).Err(); err != nil {
				t.Fatal(err)
			}
			var newer []redisstore.Entry
			for _, e := range entries {
				newer = append(newer, redisstore.Entry{Key: e.Key, Version: 2, Value: bigValue(2, 70<<10, "n")})
			}
			n, err := f.Put(ctx, newer...)
			if !errors.Is(err, redisstore.ErrFenced) || n != 0 {
				t.Fatalf("put after the fence moved: %d, %v; want 0 and ErrFenced", n, err)
			}
			for _, e := range entries {
				if got := MustGet(t, st, e.Key); !bytes.Equal(got, e.Value) {
					t.Errorf("%s = %.40s… after a refused call, want version 1", e.Key, got)
				}
			}
			if n := MustNoLargeValue(t, st, "item:{6}*"); n != len(entries) {
				t.Errorf("%d keys, want %d: a refused call wrote segments", n, len(entries))
			}
		})
	}
}

// The fence moving on while a long fenced pipeline of whole products runs:
// every product is written whole or not at all (its keys are one call,
// checked once), the written products are a prefix, and Put counts
// exactly their keys.
func TestGroupedFencedPrefixWhenFenceMoves(t *testing.T) {
	st := redisstore.New(redis.NewClient(&redis.Options{Addr: testutil.MustRedis(t), ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}))
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	const fence = "fence:{p}"
	f := MustFenced(t, st, fence)
	const products = 5000
	var entries []redisstore.Entry
	for id := int64(1); id <= products; id++ {
		for _, k := range productKeys(id) {
			entries = append(entries, redisstore.Entry{Key: k, Version: 1, Value: doc(1, k)})
		}
	}
	n := putWhileFenceMoves(t, st, f, fence, entries)
	keys := len(entries) / products
	if n%keys != 0 {
		t.Fatalf("put wrote %d keys: not whole products of %d keys", n, keys)
	}
	vals, err := st.MGet(ctx, func() []string {
		var ks []string
		for _, e := range entries {
			ks = append(ks, e.Key)
		}
		return ks
	}()...)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if (v != nil) != (i < n) {
			t.Fatalf("entry %d (%s) present %v, but %d were written: not a prefix of whole products", i, entries[i].Key, v != nil, n)
		}
	}
	t.Logf("%d of %d products written before the fence moved", n/keys, products)
}

// A key named like a segment of a split value written in the same call
// (no key of the contract is): the writes still land in the entries'
// order, as with one call per key.
func TestGroupedPutKeyNamedLikeASegment(t *testing.T) {
	desc := redisstore.DimKey(11, catalog.DimDescription)
	seg0 := redisstore.SegmentKey(desc, 10, 0)
	split := redisstore.Entry{Key: desc, Version: 10, Value: bigValue(10, 150<<10, "s")}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			st := MustStore(t)
			// after the split value: its first segment starts with version
			// 10, so an older write to that key is refused
			MustPut(t, p.view(st), 1, split, redisstore.Entry{Key: seg0, Version: 5, Value: doc(5, "after")})
			if got := MustGet(t, st, desc); !bytes.Equal(got, split.Value) {
				t.Fatalf("split value: %d bytes back, want %d", len(got), len(split.Value))
			}
			// before it, on empty keys: written, then overwritten by the
			// segment
			if err := st.Client().FlushDB(t.Context()).Err(); err != nil {
				t.Fatal(err)
			}
			MustPut(t, p.view(st), 2, redisstore.Entry{Key: seg0, Version: 5, Value: doc(5, "before")}, split)
			if got := MustGet(t, st, desc); !bytes.Equal(got, split.Value) {
				t.Fatalf("split value written after the key: %d bytes back, want %d", len(got), len(split.Value))
			}
		})
	}
}

// On a real Cluster each grouped call is one slot's: products written
// whole in one pipeline, with a split value, a TTL entry and keys newer in
// Redis among them, land on their shards with the same answers.
func TestClusterGroupedPut(t *testing.T) {
	addrs := MustCluster(t)
	store, err := redisstore.Open(strings.Join(addrs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cc := store.Client().(*redis.ClusterClient)
	ctx := t.Context()
	ids := []int64{1, 2, 3, 42, 777, 9999}
	var routed []string
	for _, id := range ids {
		routed = append(routed, productKeys(id)...)
	}
	MustClientRoutes(t, cc, addrs[0], routed)
	product := func(id, version int64) []redisstore.Entry {
		var out []redisstore.Entry
		for i, k := range productKeys(id) {
			e := redisstore.Entry{Key: k, Version: version, Value: doc(version, k)}
			switch i {
			case 0:
				e.TTL = time.Hour
			case 2:
				e.Value = bigValue(version, 100<<10, "c")
			}
			out = append(out, e)
		}
		return out
	}
	// id 42's page is newer in Redis already
	if err := cc.Set(ctx, redisstore.ItemKey(42), doc(9, "newer"), 0).Err(); err != nil {
		t.Fatal(err)
	}
	var entries []redisstore.Entry
	for _, id := range ids {
		entries = append(entries, product(id, 5)...)
	}
	if n, err := store.Put(ctx, entries...); err != nil || n != len(entries)-1 {
		t.Fatalf("Put on the cluster: %d written, %v; want %d", n, err, len(entries)-1)
	}
	for _, e := range entries {
		got := MustGet(t, store, e.Key)
		if e.Key == redisstore.ItemKey(42) {
			if !bytes.Equal(got, doc(9, "newer")) {
				t.Errorf("%s = %s, want the newer value kept", e.Key, got)
			}
			continue
		}
		if !bytes.Equal(got, e.Value) {
			t.Errorf("%s: %.40s…, want %.40s…", e.Key, got, e.Value)
		}
		if e.TTL > 0 {
			if d, err := cc.PTTL(ctx, e.Key).Result(); err != nil || d <= 0 || d > time.Hour {
				t.Errorf("%s ttl %v, %v; want up to an hour", e.Key, d, err)
			}
		}
	}
}
