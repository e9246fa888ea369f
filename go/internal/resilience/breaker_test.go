package resilience_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/detailpage/detailpage/go/internal/resilience"
)

// TestBreakerCounts: successes counted without the breaker's lock (when no
// failure is in the window) still count: with 2,000 successes from 8
// goroutines at a 50% threshold, the circuit opens at exactly the 2,000th
// failure; and a success that brings the window to its volume with enough
// failures in it opens the circuit, as a failure would.
func TestBreakerCounts(t *testing.T) {
	ok := func(context.Context) (int, error) { return 1, nil }
	fail := func(context.Context) (int, error) { return 0, errBoom }

	t.Run("successes from 8 goroutines", func(t *testing.T) {
		name := MustCommand(t, func(c *resilience.Command) {
			c.RequestVolumeThreshold = 10
			c.ErrorPercentThreshold = 50
			c.MaxConcurrent = 1 << 20
			c.Window = 10 * time.Second
		})
		synctest.Test(t, func(t *testing.T) {
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 250 {
						resilience.Do(t.Context(), name, ok, nil)
					}
				})
			}
			wg.Wait()
			for i := 1; i <= 2000; i++ {
				resilience.Do(t.Context(), name, fail, nil)
				if got, want := resilience.CircuitState(name), map[bool]int{false: resilience.StateClosed, true: resilience.StateOpen}[i == 2000]; got != want {
					t.Fatalf("after %d failures and 2000 successes: state %d, want %d", i, got, want)
				}
			}
		})
	})

	t.Run("a success at the volume opens", func(t *testing.T) {
		name := MustCommand(t, func(c *resilience.Command) {
			c.RequestVolumeThreshold = 10
			c.ErrorPercentThreshold = 50
		})
		synctest.Test(t, func(t *testing.T) {
			for range 9 {
				resilience.Do(t.Context(), name, fail, nil)
			}
			if got := resilience.CircuitState(name); got != resilience.StateClosed {
				t.Fatalf("9 calls, under the volume: state %d", got)
			}
			resilience.Do(t.Context(), name, ok, nil)
			if got := resilience.CircuitState(name); got != resilience.StateOpen {
				t.Fatalf("10 calls, 90%% failed, the last a success: state %d, want open", got)
			}
		})
	})
}
