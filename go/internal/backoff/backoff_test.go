package backoff_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/detailpage/detailpage/go/internal/backoff"
)

func TestDelay(t *testing.T) {
	p := backoff.Policy{Base: 100 * time.Millisecond, Max: time.Second}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{60, time.Second}, // no overflow past the cap
		{1 << 30, time.Second},
	} {
		if got := p.Delay(tc.attempt); got != tc.want {
			t.Errorf("Delay(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestJitterShortensWithinItsShare(t *testing.T) {
	p := backoff.Policy{Base: time.Second, Max: 4 * time.Second, Jitter: 0.2}
	seen := map[time.Duration]bool{}
	for range 1000 {
		for attempt, full := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
			d := p.Delay(attempt + 1)
			if d > full || d < full*8/10 {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", attempt+1, d, full*8/10, full)
			}
			seen[d] = true
		}
	}
	if len(seen) < 100 {
		t.Fatalf("%d distinct delays in 4000 draws: jitter does not spread", len(seen))
	}
}

func TestBackoffNextAndReset(t *testing.T) {
	b := backoff.Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}.Start()
	var got []time.Duration
	for range 4 {
		got = append(got, b.Next())
	}
	b.Reset()
	got = append(got, b.Next())
	want := []time.Duration{1, 2, 4, 4, 1}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays %v, want %v ms", got, want)
		}
	}
}

func TestSleep(t *testing.T) {
	t.Run("waits the delay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			if err := backoff.Sleep(t.Context(), 3*time.Second); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took != 3*time.Second {
				t.Fatalf("slept %v, want 3s", took)
			}
		})
	})
	t.Run("ends with its context", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			start := time.Now()
			err := backoff.Sleep(ctx, time.Hour)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err %v, want the context's", err)
			}
			if took := time.Since(start); took != time.Second {
				t.Fatalf("slept %v, want 1s (the context's end)", took)
			}
		})
	})
	t.Run("done context returns at once", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		for _, d := range []time.Duration{0, -time.Second, time.Hour} {
			if err := backoff.Sleep(ctx, d); !errors.Is(err, context.Canceled) {
				t.Fatalf("Sleep(%v) on a done context: %v, want context.Canceled", d, err)
			}
		}
	})
}

// A retry loop as the services write it: the delays it waits are the
// policy's, in fake time.
func TestRetryLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := backoff.Policy{Base: 100 * time.Millisecond, Max: 500 * time.Millisecond}.Start()
		start := time.Now()
		var at []time.Duration
		for try := 0; ; try++ {
			at = append(at, time.Since(start))
			if try == 4 {
				break
			}
			if err := backoff.Sleep(t.Context(), b.Next()); err != nil {
				t.Fatal(err)
			}
		}
		want := []time.Duration{0, 100, 300, 700, 1200}
		for i := range want {
			if at[i] != want[i]*time.Millisecond {
				t.Fatalf("tries at %v, want %v ms", at, want)
			}
		}
	})
}
