package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// TestRunContext: calls share run contexts (that is how a command costs no
// allocation in a loop) without changing what each run sees: its deadline
// is never before its start + Timeout nor more than ShareWithin after;
// values and cancellation come from its own caller's context; a run that
// outlasts ShareWithin has its context cancelled when it returns; and no
// run context outlives its deadline, taken or not.
func TestRunContext(t *testing.T) {
	const timeout = 50 * time.Millisecond
	name := MustCommand(t, func(c *resilience.Command) { c.Timeout = timeout; c.MaxConcurrent = 1 << 20 })

	t.Run("deadlines and parents, 8 goroutines", func(t *testing.T) {
		type key struct{}
		type seen struct {
			ctx        context.Context
			t0, t1     time.Time
			deadline   time.Time
			value      any
			wantValue  int
			parentDone <-chan struct{}
		}
		var mu sync.Mutex
		var all []seen
		var wg sync.WaitGroup
		shared := context.WithValue(context.Background(), key{}, -1)
		for g := range 8 {
			wg.Go(func() {
				// Half the goroutines share one parent, the others have one each.
				parent, want := shared, -1
				if g%2 == 1 {
					parent, want = context.WithValue(context.Background(), key{}, g), g
				}
				for i := range 200 {
					t0 := time.Now()
					resilience.Do(parent, name, func(ctx context.Context) (int, error) {
						d, _ := ctx.Deadline()
						s := seen{ctx: ctx, t0: t0, t1: time.Now(), deadline: d, value: ctx.Value(key{}), wantValue: want}
						if i%2 == 0 {
							s.parentDone = ctx.Done() // materialized: timer and all
						}
						mu.Lock()
						all = append(all, s)
						mu.Unlock()
						runtime.Gosched()
						return 0, nil
					}, nil)
				}
			})
		}
		wg.Wait()
		distinct := map[context.Context]bool{}
		for _, s := range all {
			distinct[s.ctx] = true
			if s.deadline.Before(s.t0.Add(timeout)) || s.deadline.After(s.t1.Add(timeout+resilience.ShareWithin)) {
				t.Fatalf("deadline %v: want between start + timeout (%v) and + %v", s.deadline, s.t0.Add(timeout), resilience.ShareWithin)
			}
			if s.value != s.wantValue {
				t.Fatalf("a run whose caller's value is %d sees %v: another caller's context", s.wantValue, s.value)
			}
		}
		if len(distinct) == len(all) {
			t.Logf("no two of %d calls shared a run context (a very slow machine?)", len(all))
		}
		t.Logf("%d calls, %d run contexts", len(all), len(distinct))
		// None outlives its deadline.
		testutil.Eventually(t, 5*time.Second, func() error {
			for ctx := range distinct {
				if ctx.Err() == nil {
					return fmt.Errorf("a run context still live after its deadline %v", func() time.Time { d, _ := ctx.Deadline(); return d }())
				}
			}
			return nil
		})
		for _, s := range all {
			if s.parentDone == nil {
				continue
			}
			select {
			case <-s.parentDone:
			default:
				t.Fatal("a done channel taken by a run is not closed after the deadline")
			}
		}
	})

	t.Run("cancelled when a long run returns", func(t *testing.T) {
		var kept context.Context
		resilience.Do(t.Context(), name, func(ctx context.Context) (int, error) {
			kept = ctx
			t0 := time.Now()
			for time.Since(t0) < 3*resilience.ShareWithin { // a run that takes a while
				runtime.Gosched()
			}
			return 0, nil
		}, nil)
		if err := kept.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("run's context after it returned: Err = %v, want context.Canceled", err)
		}
		select {
		case <-kept.Done():
		default:
			t.Fatal("run's context not done after it returned")
		}
	})

	t.Run("the caller's cancellation reaches a shared context", func(t *testing.T) {
		parent, cancel := context.WithCancel(t.Context())
		started := make(chan struct{})
		errc := make(chan error, 1)
		go func() {
			_, err := resilience.Do(parent, name, func(ctx context.Context) (int, error) {
				close(started)
				<-ctx.Done()
				return 0, ctx.Err()
			}, nil)
			errc <- err
		}()
		<-started
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, want the caller's context.Canceled", err)
		}
	})
}
