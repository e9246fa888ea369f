package resilience_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/resilience"
)

// A lookup made after an earlier one returned never shares the earlier
// batch's answer: it may be asking because the value changed since (an edit
// followed by a read). Sequential lookups of one key are each a batch call.
func TestCollapserSequentialLookupsAreFresh(t *testing.T) {
	var calls atomic.Int64
	c := resilience.NewCollapser(resilience.CollapserConfig{Name: "test.sequential", Window: 50 * time.Microsecond},
		func(_ context.Context, keys []int64) (map[int64]int64, error) {
			n := calls.Add(1)
			out := make(map[int64]int64, len(keys))
			for _, k := range keys {
				out[k] = n
			}
			return out, nil
		})
	const lookups = 2000
	var last int64
	for i := range lookups {
		v, err := c.Get(t.Context(), 7)
		if err != nil {
			t.Fatal(err)
		}
		if v <= last {
			t.Fatalf("lookup %d got the answer of call %d again (previous lookup got %d)", i, v, last)
		}
		last = v
	}
	if got := calls.Load(); got != lookups {
		t.Fatalf("%d batch calls for %d sequential lookups", got, lookups)
	}
}
