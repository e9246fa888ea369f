package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// countingBatch is a batch fetch over ids 1–99 (0 and ≥100 do not exist)
// that counts how often each id was asked for.
type countingBatch struct {
	mu    sync.Mutex
	asked map[int64]int
	fail  error
	calls int
}

func (b *countingBatch) fetch(ctx context.Context, ids []int64) (map[int64]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.asked == nil {
		b.asked = map[int64]int{}
	}
	for _, id := range ids {
		b.asked[id]++
	}
	if b.fail != nil {
		return nil, b.fail
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := map[int64]string{}
	for _, id := range ids {
		if id > 0 && id < 100 {
			out[id] = fmt.Sprint("v", id)
		}
	}
	return out, nil
}

func (b *countingBatch) most() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := 0
	for _, n := range b.asked {
		m = max(m, n)
	}
	return m
}

func cacheName(id int64) string { return fmt.Sprint("test/", id) }

// CachedMany shares one request cache with Cached: overlapping batches,
// at once or one after another, ask for each key once; a key a batch did
// not return is not found for later askers too; an error is kept unless
// the caller that fetched gave up.
func TestCachedMany(t *testing.T) {
	t.Run("overlapping batches at once", func(t *testing.T) {
		ctx := resilience.WithRequestCache(t.Context())
		var b countingBatch
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				ids := []int64{int64(i % 5), 1, 2, 3, int64(100 + i%3)}
				got, err := resilience.CachedMany(ctx, ids, cacheName, b.fetch)
				if err != nil {
					t.Error(err)
					return
				}
				for _, id := range ids {
					if v, ok := got[id]; ok != (id > 0 && id < 100) || (ok && v != fmt.Sprint("v", id)) {
						t.Errorf("id %d: %q, %v", id, v, ok)
					}
				}
			})
		}
		wg.Wait()
		if n := b.most(); n != 1 {
			t.Errorf("an id was asked for %d times, want once: %v", n, b.asked)
		}
	})
	t.Run("shared with Cached", func(t *testing.T) {
		ctx := resilience.WithRequestCache(t.Context())
		var b countingBatch
		v, err := resilience.Cached(ctx, cacheName(7), func(context.Context) (string, error) { return "v7", nil })
		if err != nil || v != "v7" {
			t.Fatal(v, err)
		}
		got, err := resilience.CachedMany(ctx, []int64{7, 8, 200}, cacheName, b.fetch)
		if err != nil || len(got) != 2 || got[7] != "v7" || got[8] != "v8" {
			t.Fatalf("got %v, %v", got, err)
		}
		if b.asked[7] != 0 || b.asked[8] != 1 {
			t.Errorf("asked %v, want 8 only", b.asked)
		}
		_, err = resilience.Cached(ctx, cacheName(200), func(context.Context) (string, error) {
			t.Error("200 asked again")
			return "", nil
		})
		if !errors.Is(err, catalog.ErrNotFound) || !errors.As(err, new(resilience.Permanent)) {
			t.Errorf("200 after a batch that did not return it: %v, want a Permanent ErrNotFound", err)
		}
		if v, err := resilience.Cached(ctx, cacheName(8), func(context.Context) (string, error) { return "", errors.New("asked again") }); err != nil || v != "v8" {
			t.Errorf("8 after the batch: %q, %v", v, err)
		}
	})
	t.Run("an error is kept", func(t *testing.T) {
		ctx := resilience.WithRequestCache(t.Context())
		b := countingBatch{fail: errors.New("source down")}
		for range 2 {
			if _, err := resilience.CachedMany(ctx, []int64{1, 2}, cacheName, b.fetch); !errors.Is(err, b.fail) {
				t.Fatalf("err %v, want %v", err, b.fail)
			}
		}
		if b.calls != 1 {
			t.Errorf("%d calls, want 1: the error is the request's answer", b.calls)
		}
	})
	t.Run("a caller that gives up is not an answer", func(t *testing.T) {
		ctx := resilience.WithRequestCache(t.Context())
		gone, cancel := context.WithCancel(ctx)
		cancel()
		var b countingBatch
		if _, err := resilience.CachedMany(gone, []int64{1, 2}, cacheName, b.fetch); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		got, err := resilience.CachedMany(ctx, []int64{1, 2}, cacheName, b.fetch)
		if err != nil || len(got) != 2 {
			t.Fatalf("after the first caller gave up: %v, %v", got, err)
		}
		if b.calls != 2 {
			t.Errorf("%d calls, want 2", b.calls)
		}
	})
	t.Run("without a request cache", func(t *testing.T) {
		var b countingBatch
		for range 3 {
			if _, err := resilience.CachedMany(t.Context(), []int64{1, 2}, cacheName, b.fetch); err != nil {
				t.Fatal(err)
			}
		}
		if b.calls != 3 || !slices.Equal([]int{b.asked[1], b.asked[2]}, []int{3, 3}) {
			t.Errorf("%d calls, asked %v, want every call to fetch", b.calls, b.asked)
		}
	})
}
