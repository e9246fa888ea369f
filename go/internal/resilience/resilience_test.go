package resilience_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/resilience/resiliencetest"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

var errBoom = errors.New("boom")

// 1. The circuit opens after the volume and error thresholds, short-circuits
// while open, lets exactly one probe through after the sleep window, closes
// on the probe's success and reopens on its failure. testing/synctest's
// clock drives the window and the sleep.
func TestCircuitBreaker(t *testing.T) {
	const (
		volume = 10
		sleep  = 5 * time.Second
	)
	tests := []struct {
		name      string
		probe     func() (int, error) // what the probe's run does
		wantState int                 // after the probe
	}{
		{name: "probe succeeds: closes", probe: func() (int, error) { return 1, nil }, wantState: resilience.StateClosed},
		{name: "probe fails: reopens", probe: func() (int, error) { return 0, errBoom }, wantState: resilience.StateOpen},
		{name: "probe panics: reopens", probe: func() (int, error) { panic("probe") }, wantState: resilience.StateOpen},
		{name: "probe is a business answer: closes", probe: func() (int, error) {
			return 0, resilience.Permanent{Err: catalog.ErrNotFound}
		}, wantState: resilience.StateClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := MustRegistry(t)
			// Commands (and hystrix-go's circuits, with their goroutines)
			// are made outside the bubble.
			name := MustCommand(t, func(c *resilience.Command) {
				c.RequestVolumeThreshold = volume
				c.ErrorPercentThreshold = 50
				c.SleepWindow = sleep
				c.Window = 10 * time.Second
			})
			synctest.Test(t, func(t *testing.T) {
				var runs atomic.Int64
				do := func(ctx context.Context, run func() (int, error)) error {
					_, err := resilience.Do(ctx, name, func(context.Context) (int, error) {
						runs.Add(1)
						return run()
					}, nil)
					return err
				}
				ok := func() (int, error) { return 1, nil }
				fail := func() (int, error) { return 0, errBoom }
				mustState := func(want int, when string) {
					t.Helper()
					if got := resilience.CircuitState(name); got != want {
						t.Fatalf("%s: circuit state %d, want %d", when, got, want)
					}
				}

				// Below the volume threshold nothing opens, however bad;
				// at the volume, 40% errors stay under the 50% threshold.
				for range 5 {
					do(t.Context(), ok)
				}
				for range 4 {
					do(t.Context(), fail)
				}
				mustState(resilience.StateClosed, "9 calls, 4 failed")
				do(t.Context(), ok)
				mustState(resilience.StateClosed, "10 calls, 40% failed")
				do(t.Context(), fail)
				mustState(resilience.StateClosed, "11 calls, 45% failed")
				do(t.Context(), fail)
				mustState(resilience.StateOpen, "12 calls, 50% failed")

				// Open: run is not called, the caller learns why at once.
				before := runs.Load()
				for i := range 5 {
					if err := do(t.Context(), ok); !errors.Is(err, resilience.ErrCircuitOpen) {
						t.Fatalf("call %d while open: err = %v, want ErrCircuitOpen", i, err)
					}
				}
				time.Sleep(sleep - time.Millisecond)
				if err := do(t.Context(), ok); !errors.Is(err, resilience.ErrCircuitOpen) {
					t.Fatalf("just before the sleep window ends: err = %v, want ErrCircuitOpen", err)
				}
				if runs.Load() != before {
					t.Fatal("run was called while the circuit was open")
				}
				time.Sleep(time.Millisecond)

				// After the sleep window: of 20 concurrent callers exactly
				// one runs (the probe); the others are short-circuited.
				probe := func(result func() (int, error)) {
					t.Helper()
					release := make(chan struct{})
					var shorted atomic.Int64
					var wg sync.WaitGroup
					before := runs.Load()
					for range 20 {
						wg.Go(func() {
							err := do(t.Context(), func() (int, error) { <-release; return result() })
							if errors.Is(err, resilience.ErrCircuitOpen) {
								shorted.Add(1)
							}
						})
					}
					synctest.Wait()
					if n := runs.Load() - before; n != 1 {
						t.Fatalf("%d calls ran after the sleep window, want exactly one probe", n)
					}
					mustState(resilience.StateHalfOpen, "probe in flight")
					close(release)
					wg.Wait()
					if shorted.Load() != 19 {
						t.Fatalf("%d of 19 callers beside the probe were short-circuited", shorted.Load())
					}
				}
				probe(tt.probe)
				mustState(tt.wantState, "after the probe")

				switch tt.wantState {
				case resilience.StateClosed:
					before := runs.Load()
					for range 5 {
						if err := do(t.Context(), ok); err != nil {
							t.Fatalf("closed again: %v", err)
						}
					}
					if runs.Load()-before != 5 {
						t.Fatal("calls after the circuit closed did not run")
					}
				case resilience.StateOpen:
					// Reopened for a whole new sleep window, then one probe
					// again, whose success closes the circuit.
					if err := do(t.Context(), ok); !errors.Is(err, resilience.ErrCircuitOpen) {
						t.Fatalf("after a failed probe: err = %v, want ErrCircuitOpen", err)
					}
					time.Sleep(sleep - time.Millisecond)
					if err := do(t.Context(), ok); !errors.Is(err, resilience.ErrCircuitOpen) {
						t.Fatalf("within the new sleep window: err = %v, want ErrCircuitOpen", err)
					}
					time.Sleep(time.Millisecond)
					probe(ok)
					mustState(resilience.StateClosed, "after a second, good probe")
				}
			})
			got := Outcomes(t, reg, name)
			if got["short_circuited"] < 19 || got["failure"] < 6 {
				t.Fatalf("outcome counts %v: want short-circuits and failures counted", got)
			}
		})
	}
}

// 2. With the source's latency at 2s and 1,000 concurrent callers on a
// command limited to 10 with a 200ms timeout: never more than 10 requests
// in flight at the source, every caller answered within the timeout and a
// few ms, the timed-out requests aborted, and no goroutine left behind.
func TestBulkheadBoundsInFlightAtSource(t *testing.T) {
	const (
		callers = 1000
		limit   = 10
		timeout = 200 * time.Millisecond
		slack   = 50 * time.Millisecond // scheduling of 1,000 goroutines under -race
	)
	resiliencetest.VerifyNoLeaks(t) // first: its check runs after every other cleanup
	src := MustSource(t)
	client := MustHTTPClient(t)
	reg := MustRegistry(t)
	src.MustFault(t, `{"service":"product","latency_ms":2000}`)
	src.ResetStats(t)
	name := MustCommand(t, func(c *resilience.Command) {
		c.MaxConcurrent = limit
		c.Timeout = timeout
		c.RequestVolumeThreshold = 1 << 30 // this test is about the bulkhead, not the circuit
	})

	type answer struct {
		took time.Duration
		err  error
	}
	answers := make([]answer, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			_, err := resilience.Do(t.Context(), name, func(ctx context.Context) (string, error) {
				return httpGet(ctx, client, src.URL+"/api/products/"+strconv.Itoa(i%testutil.SourceProducts+1))
			}, nil)
			answers[i] = answer{time.Since(t0), err}
		})
	}
	close(start)
	wg.Wait()

	var rejected, timedOut int
	var slowest time.Duration
	for i, a := range answers {
		switch {
		case errors.Is(a.err, resilience.ErrRejected):
			rejected++
		case errors.Is(a.err, resilience.ErrTimeout):
			timedOut++
		default:
			t.Fatalf("caller %d: err = %v, want rejected or timed out", i, a.err)
		}
		slowest = max(slowest, a.took)
	}
	t.Logf("%d timed out, %d rejected; slowest answer %v (timeout %v)", timedOut, rejected, slowest, timeout)
	if slowest > timeout+slack {
		t.Fatalf("slowest caller answered after %v, want within %v", slowest, timeout+slack)
	}
	if timedOut < limit || timedOut+rejected != callers {
		t.Fatalf("%d timed out and %d rejected, want %d to run and the rest rejected", timedOut, rejected, limit)
	}
	if st := src.Stats(t, "product"); st.MaxInFlight > limit || st.MaxInFlight < 1 {
		t.Fatalf("source saw up to %d requests in flight, want 1 to %d", st.MaxInFlight, limit)
	}
	// The timed-out requests were aborted: the source lets go of them well
	// before its 2s latency would have.
	testutil.Eventually(t, time.Second, func() error {
		if n := src.Stats(t, "product").InFlight; n != 0 {
			return fmt.Errorf("%d requests still in flight at the source", n)
		}
		return nil
	})
	got := Outcomes(t, reg, name)
	if got["rejected"] != rejected || got["timeout"] != timedOut {
		t.Fatalf("metrics count %v, want %d rejected and %d timeouts", got, rejected, timedOut)
	}
}

// fakeBatchSource answers /api/<service>?ids=... like the source, with the
// records of the ids that exist in shuffled order, after delay.
type fakeBatchSource struct {
	URL   string
	calls atomic.Int64
}

func exists(id int64) bool { return id%7 != 0 }

// record is what the fake source serves for any per-product dimension.
type record struct {
	ProductID int64  `json:"product_id"`
	Version   int64  `json:"version"`
	Amount    string `json:"amount"`
}

func MustFakeBatchSource(tb testing.TB, delay time.Duration) *fakeBatchSource {
	tb.Helper()
	f := &fakeBatchSource{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		ids, err := catalog.ParseIDList(r.URL.Query().Get("ids"))
		if err != nil {
			http.Error(w, `{"error":"bad ids"}`, http.StatusBadRequest)
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		items := []record{}
		for _, id := range ids {
			if exists(id) {
				items = append(items, record{ProductID: id, Version: id, Amount: strconv.FormatInt(id, 10) + ".00"})
			}
		}
		rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"items": items})
	}))
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// 3. The collapser: concurrent lookups over a few ids with some missing,
// answered in shuffled order, each caller gets exactly its own record or
// not-found; batches are really formed; a caller that gives up gets its
// context's error at once and the batch still serves the others.
func TestCollapser(t *testing.T) {
	tests := []struct {
		name      string
		service   string // a service per case: each has its own batch command
		lookups   int
		ids       int64
		delay     time.Duration // of each batch answer
		impatient int           // every impatient-th caller gives up after giveUp
		giveUp    time.Duration
	}{
		{name: "10,000 lookups over 500 ids", service: "price", lookups: 10_000, ids: 500},
		{name: "callers giving up", service: "stock", lookups: 200, ids: 50, delay: 300 * time.Millisecond, impatient: 2, giveUp: 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			collapser := sourceclient.CommandName(tt.service, "lookup")
			reg := MustRegistry(t)
			fake := MustFakeBatchSource(t, tt.delay)
			c, err := sourceclient.New(fake.URL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.CloseIdleConnections)
			// 10,000 goroutines under -race on a small machine: give the
			// batch calls time, this test is about matching and forming.
			batch := resilience.Defaults(sourceclient.CommandName(tt.service, "batch"))
			batch.Timeout = 10 * time.Second
			resiliencetest.MustConfigure(t, batch)
			batches0, size0 := BatchSizes(t, reg, collapser)

			start := make(chan struct{})
			var wg sync.WaitGroup
			var found, missing, gaveUp atomic.Int64
			errs := make(chan error, tt.lookups)
			for i := range tt.lookups {
				id := int64(i)%tt.ids + 1
				impatient := tt.impatient > 0 && i%tt.impatient == 0
				wg.Go(func() {
					ctx := t.Context()
					if impatient {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, tt.giveUp)
						defer cancel()
					}
					<-start
					t0 := time.Now()
					p, err := sourceclient.Lookup[record](ctx, c, tt.service, id)
					switch {
					case impatient:
						if !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > tt.giveUp+100*time.Millisecond {
							errs <- fmt.Errorf("impatient lookup of %d: %v after %v, want its deadline at once", id, err, time.Since(t0))
						}
						gaveUp.Add(1)
					case !exists(id):
						if !errors.Is(err, catalog.ErrNotFound) {
							errs <- fmt.Errorf("lookup of missing %d: %+v, %v; want ErrNotFound", id, p, err)
						}
						missing.Add(1)
					case err != nil || p.ProductID != id || p.Amount != strconv.FormatInt(id, 10)+".00":
						errs <- fmt.Errorf("lookup of %d got %+v, %v", id, p, err)
					default:
						found.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			batches1, size1 := BatchSizes(t, reg, collapser)
			batches, ids := batches1-batches0, size1-size0
			calls := fake.calls.Load()
			t.Logf("%d lookups (%d found, %d missing, %d gave up) → %d batch calls at the source, %.1f distinct ids per batch",
				tt.lookups, found.Load(), missing.Load(), gaveUp.Load(), calls, ids/float64(batches))
			if batches == 0 || ids/float64(batches) <= 1 {
				t.Fatalf("average batch size %v over %d batches, want > 1", ids/float64(batches), batches)
			}
			if calls > int64(tt.lookups)/10 {
				t.Fatalf("%d source calls for %d lookups: not collapsed", calls, tt.lookups)
			}
		})
	}
}

// 4. The request cache: one aggregation asks for shop 3 seven times, one
// after another and at once, and the shop source is called once.
func TestRequestCache(t *testing.T) {
	src := MustSource(t)
	c, err := sourceclient.New(src.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	tests := []struct {
		name       string
		cache      bool
		concurrent bool
		wantCalls  int64
	}{
		{name: "one after another", cache: true, wantCalls: 1},
		{name: "at once", cache: true, concurrent: true, wantCalls: 1},
		{name: "without a request cache", cache: false, wantCalls: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src.ResetStats(t)
			ctx := t.Context()
			if tt.cache {
				ctx = resilience.WithRequestCache(ctx)
			}
			ask := func(i int) error {
				var s catalog.Shop
				var err error
				if i%3 == 2 {
					s, err = sourceclient.Get[catalog.Shop](ctx, c, "shop", 3)
				} else {
					s, err = sourceclient.Lookup[catalog.Shop](ctx, c, "shop", 3)
				}
				if err != nil || s.ID != 3 {
					return fmt.Errorf("ask %d: shop %+v, %v", i, s, err)
				}
				return nil
			}
			var wg sync.WaitGroup
			for i := range 7 {
				if !tt.concurrent {
					if err := ask(i); err != nil {
						t.Fatal(err)
					}
					continue
				}
				wg.Go(func() {
					if err := ask(i); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if got := src.Stats(t, "shop").Requests; got != tt.wantCalls {
				t.Fatalf("shop source called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

// 5. A panic in run is recovered, counted as a failure and handed to the
// fallback; a caller's own cancellation or deadline is not a dependency
// failure: no fallback, nothing counted against the circuit, and the call
// to the source is aborted.
func TestPanicAndCallerCancel(t *testing.T) {
	src := MustSource(t)
	client := MustHTTPClient(t)
	reg := MustRegistry(t)
	src.MustFault(t, `{"service":"stock","latency_ms":2000}`)
	stockURL := src.URL + "/api/stock/1"

	tests := []struct {
		name         string
		ctx          func(t *testing.T) context.Context // the caller's context
		run          func(ctx context.Context) (string, error)
		fallback     bool
		wantErr      error
		opensAfter   int            // calls after which the circuit is open (0: never)
		wantOutcomes map[string]int // after 5 calls
		wantState    int
	}{
		{
			name:         "panic with a fallback",
			run:          func(context.Context) (string, error) { panic("bad record") },
			fallback:     true,
			opensAfter:   3,
			wantOutcomes: map[string]int{"panic": 3, "short_circuited": 2, "fallback_success": 5},
			wantState:    resilience.StateOpen,
		},
		{
			name:         "panic without a fallback",
			run:          func(context.Context) (string, error) { panic(errBoom) },
			wantErr:      resilience.ErrPanic,
			opensAfter:   3,
			wantOutcomes: map[string]int{"panic": 3, "short_circuited": 2},
			wantState:    resilience.StateOpen,
		},
		{
			name: "cancelled before the call",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				return ctx
			},
			run:          func(ctx context.Context) (string, error) { return httpGet(ctx, client, stockURL) },
			fallback:     true,
			wantErr:      context.Canceled,
			wantOutcomes: map[string]int{"cancelled": 5},
		},
		{
			name: "cancelled while the source is slow",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				before := src.Stats(t, "stock").Requests
				go func() { // cancel once the request is at the source
					defer cancel()
					deadline := time.Now().Add(10 * time.Second)
					for time.Now().Before(deadline) && src.Stats(t, "stock").Requests == before {
						time.Sleep(5 * time.Millisecond) // a poll interval
					}
				}()
				return ctx
			},
			run:          func(ctx context.Context) (string, error) { return httpGet(ctx, client, stockURL) },
			fallback:     true,
			wantErr:      context.Canceled,
			wantOutcomes: map[string]int{"cancelled": 5},
		},
		{
			name: "caller's deadline before the command's timeout",
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			run:          func(ctx context.Context) (string, error) { return httpGet(ctx, client, stockURL) },
			fallback:     true,
			wantErr:      context.DeadlineExceeded,
			wantOutcomes: map[string]int{"cancelled": 5},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := MustCommand(t, func(c *resilience.Command) { c.Timeout = 5 * time.Second })
			for i := range 5 {
				ctx := t.Context()
				if tt.ctx != nil {
					ctx = tt.ctx(t)
				}
				var reason error
				var fallback func(context.Context, error) (string, error)
				if tt.fallback {
					fallback = func(_ context.Context, err error) (string, error) { reason = err; return "last good copy", nil }
				}
				t0 := time.Now()
				got, err := resilience.Do(ctx, name, tt.run, fallback)
				if took := time.Since(t0); took > time.Second {
					t.Fatalf("call %d answered after %v", i, took)
				}
				if tt.wantErr != nil {
					want := tt.wantErr
					if tt.opensAfter > 0 && i >= tt.opensAfter {
						want = resilience.ErrCircuitOpen
					}
					if !errors.Is(err, want) {
						t.Fatalf("call %d: err = %v, want %v", i, err, want)
					}
					if reason != nil {
						t.Fatalf("call %d: fallback ran for %v", i, reason)
					}
					continue
				}
				if err != nil || got != "last good copy" {
					t.Fatalf("call %d: Do = %q, %v; want the fallback's value", i, got, err)
				}
				var pe *resilience.PanicError
				if i < tt.opensAfter && (!errors.As(reason, &pe) || pe.Value != "bad record" || len(pe.Stack) == 0) {
					t.Fatalf("call %d: fallback reason %v, want the recovered panic", i, reason)
				}
			}
			if got := Outcomes(t, reg, name); fmt.Sprint(got) != fmt.Sprint(tt.wantOutcomes) {
				t.Fatalf("outcomes %v, want %v", got, tt.wantOutcomes)
			}
			if got := resilience.CircuitState(name); got != tt.wantState {
				t.Fatalf("circuit state %d, want %d", got, tt.wantState)
			}
		})
	}
	// The cancelled requests were aborted, not left waiting at the source.
	testutil.Eventually(t, time.Second, func() error {
		if n := src.Stats(t, "stock").InFlight; n != 0 {
			return fmt.Errorf("%d stock requests still in flight", n)
		}
		return nil
	})
}
