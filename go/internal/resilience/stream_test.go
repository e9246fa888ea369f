package resilience_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// streamWant is what hystrix-go's collector of a command must hold after
// the calls Prometheus counted (detailpage_resilience_command_total),
// mapped as hystrix-go maps event types (success: success and
// bad_request; failure: failure and panic; fallback-failure: a failed or
// rejected fallback). Callers that had given up before the call are not
// dashboard events.
func streamWant(oc map[string]int, early int) map[string]int {
	w := map[string]int{
		"successes":          oc["success"] + oc["bad_request"],
		"failures":           oc["failure"] + oc["panic"],
		"rejects":            oc["rejected"],
		"short_circuits":     oc["short_circuited"],
		"timeouts":           oc["timeout"],
		"context_canceled":   oc["cancelled"] - early,
		"fallback_successes": oc["fallback_success"],
		"fallback_failures":  oc["fallback_failure"] + oc["fallback_rejected"],
	}
	w["errors"] = w["failures"] + w["rejects"] + w["short_circuits"] + w["timeouts"]
	w["requests"] = w["successes"] + w["errors"] + w["context_canceled"]
	return w
}

func streamGot(name string) map[string]int {
	dc := resilience.StreamCollector(name)
	now := time.Now()
	return map[string]int{
		"requests": int(dc.NumRequests().Sum(now)), "errors": int(dc.Errors().Sum(now)),
		"successes": int(dc.Successes().Sum(now)), "failures": int(dc.Failures().Sum(now)),
		"rejects": int(dc.Rejects().Sum(now)), "short_circuits": int(dc.ShortCircuits().Sum(now)),
		"timeouts": int(dc.Timeouts().Sum(now)), "context_canceled": int(dc.ContextCanceled().Sum(now)),
		"fallback_successes": int(dc.FallbackSuccesses().Sum(now)), "fallback_failures": int(dc.FallbackFailures().Sum(now)),
	}
}

// TestStreamCountsExact: the dashboard feed passes counts on in bulk; what
// hystrix-go's collector (the numbers /hystrix.stream shows) holds adds up
// exactly to the calls Prometheus counted, outcome by outcome, with 8
// goroutines calling at once (run with -race); every call's duration is in
// its latency timings or counted as dropped; a success while hystrix-go's
// circuit is open closes it as before; and the stream's events show the
// counts.
func TestStreamCountsExact(t *testing.T) {
	reg := MustRegistry(t)
	stream := hystrix.NewStreamHandler()
	stream.Start()
	t.Cleanup(stream.Stop)

	// Mixed outcomes from 8 goroutines on a command whose circuit never
	// opens: a bulkhead of 3 and a fallback bulkhead of 1 reject some.
	name := MustCommand(t, func(c *resilience.Command) {
		c.MaxConcurrent = 3
		c.FallbackMaxConcurrent = 1
		c.RequestVolumeThreshold = 1 << 30
		c.Timeout = 20 * time.Millisecond
	})
	droppedBefore := dropped(t)
	const goroutines, calls = 8, 400
	var wg sync.WaitGroup
	var earlyMu sync.Mutex
	early := 0
	for range goroutines {
		wg.Go(func() {
			for i := range calls {
				ctx, cancel := context.WithCancel(t.Context())
				run := func(ctx context.Context) (int, error) {
					runtime.Gosched() // overlap with the others: some are rejected
					switch i % 8 {
					case 0:
						return 1, nil
					case 4:
						return 0, resilience.Permanent{Err: catalog.ErrNotFound}
					case 5:
						panic("bad record")
					case 7: // the caller gives up while run runs
						cancel()
						return 0, ctx.Err()
					}
					return 0, errBoom
				}
				var fallback func(context.Context, error) (int, error)
				switch i % 8 {
				case 2, 5:
					fallback = func(context.Context, error) (int, error) { runtime.Gosched(); return 2, nil }
				case 3:
					fallback = func(context.Context, error) (int, error) { return 0, errBoom }
				case 6:
					cancel()
					earlyMu.Lock()
					early++
					earlyMu.Unlock()
				}
				resilience.Do(ctx, name, run, fallback)
				cancel()
			}
		})
	}
	wg.Wait()
	for range 4 { // timeouts: run waits for its context
		resilience.Do(t.Context(), name, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }, nil)
	}
	resilience.FlushStream()
	oc := Outcomes(t, reg, name)
	t.Logf("outcomes %v, callers gone before the call %d", oc, early)
	want := streamWant(oc, early)
	if got := streamGot(name); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("hystrix-go's numbers\n %v, want (from Prometheus's counts %v)\n %v", got, oc, want)
	}
	dc := resilience.StreamCollector(name)
	total, run := len(dc.TotalDuration().SortedDurations()), len(dc.RunDuration().SortedDurations())
	if d := int(dropped(t) - droppedBefore); total != run || total+d != want["requests"] {
		t.Fatalf("latency samples: total %d, run %d, dropped %d; want one per event (%d)", total, run, d, want["requests"])
	}

	// A success reported while hystrix-go's circuit is open closes it and
	// starts its numbers anew, as when every event went through
	// ReportEvent.
	name2 := MustCommand(t, func(c *resilience.Command) { c.SleepWindow = 20 * time.Millisecond })
	for range 3 {
		resilience.Do(t.Context(), name2, func(context.Context) (int, error) { return 0, errBoom }, nil)
	}
	resilience.FlushStream()
	cb, _, _ := hystrix.GetCircuit(name2)
	if !cb.IsOpen() {
		t.Fatal("hystrix-go's circuit is not open after 3 failures of 3")
	}
	testutil.Eventually(t, 5*time.Second, func() error { // our probe after the sleep window
		_, err := resilience.Do(t.Context(), name2, func(context.Context) (int, error) { return 1, nil }, nil)
		return err
	})
	for range 4 {
		if _, err := resilience.Do(t.Context(), name2, func(context.Context) (int, error) { return 1, nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	resilience.FlushStream()
	testutil.Eventually(t, 5*time.Second, func() error { // one success goes through hystrix-go's monitor
		got := streamGot(name2)
		if cb.IsOpen() || got["requests"] != 5 || got["successes"] != 5 || got["errors"] != 0 {
			return fmt.Errorf("hystrix-go: open %v, numbers %v; want closed, the probe's success and the 4 after it", cb.IsOpen(), got)
		}
		return nil
	})

	// The stream's event of the first command shows the same numbers.
	srv := httptest.NewServer(stream)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev["name"] != name || ev["type"] != "HystrixCommand" {
			continue
		}
		for field, key := range map[string]string{
			"requestCount": "requests", "errorCount": "errors", "rollingCountSuccess": "successes",
			"rollingCountFailure": "failures", "rollingCountThreadPoolRejected": "rejects",
			"rollingCountShortCircuited": "short_circuits", "rollingCountTimeout": "timeouts",
			"rollingCountFallbackSuccess": "fallback_successes", "rollingCountFallbackFailure": "fallback_failures",
		} {
			if got := int(ev[field].(float64)); got != want[key] {
				t.Errorf("/hystrix.stream %s = %d, want %d", field, got, want[key])
			}
		}
		return
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	t.Fatal("no event of the command on the stream")
}

func dropped(t *testing.T) float64 {
	t.Helper()
	m := metric(t, MustRegistry(t), "detailpage_resilience_stream_dropped_total", nil)
	if m == nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// TestCommandMetricsExact: the outcome counts and the duration histogram
// Prometheus scrapes add up exactly to the calls made, 8 goroutines at
// once (run with -race).
func TestCommandMetricsExact(t *testing.T) {
	reg := MustRegistry(t)
	name := MustCommand(t, func(c *resilience.Command) {
		c.MaxConcurrent = 1 << 20
		c.RequestVolumeThreshold = 1 << 30
	})
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	const goroutines, calls = 8, 1000
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for i := range calls {
				switch i % 4 {
				case 0:
					resilience.Do(t.Context(), name, func(context.Context) (int, error) { return 1, nil }, nil)
				case 1:
					resilience.Do(t.Context(), name, func(context.Context) (int, error) { return 0, errBoom }, nil)
				case 2:
					resilience.Do(t.Context(), name, func(context.Context) (int, error) {
						return 0, resilience.Permanent{Err: catalog.ErrNotFound}
					}, nil)
				case 3:
					resilience.Do(cancelled, name, func(context.Context) (int, error) { return 1, nil }, nil)
				}
			}
		})
	}
	wg.Wait()
	each := goroutines * calls / 4
	want := map[string]int{"success": each, "failure": each, "bad_request": each, "cancelled": each}
	if got := Outcomes(t, reg, name); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	h := metric(t, reg, "detailpage_resilience_command_duration_seconds", map[string]string{"command": name}).GetHistogram()
	if h.GetSampleCount() != uint64(3*each) { // the cancelled callers never ran
		t.Fatalf("duration histogram counts %d runs, want %d", h.GetSampleCount(), 3*each)
	}
	if b := h.GetBucket(); b[len(b)-1].GetCumulativeCount() != h.GetSampleCount() || h.GetSampleSum() <= 0 {
		t.Fatalf("duration histogram: buckets %v, sum %v", b, h.GetSampleSum())
	}
}
