// Package loadgen sends open-loop traffic for the protection tests and the
// benchmarks: request i is due at start + i/rate whatever earlier requests
// are doing, as real shoppers arrive, and its latency is measured from that
// scheduled time, not from when it actually left. A server that stalls
// therefore shows the whole wait its shoppers saw (no coordinated omission),
// and a request that could not leave on time (the client out of
// connections, the machine out of CPU) is counted as late.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"time"
)

// LateAfter is how long after its scheduled time a request may be written
// to the connection and still count as sent on time.
const LateAfter = 10 * time.Millisecond

// maxConns bounds the connections of NewClient; a request that finds them
// all busy waits for one, and that wait is part of its latency.
const maxConns = 512

// Schedule calls fn(i, at) for i = 0 … rate·d-1, each in a goroutine of its
// own started at its scheduled time at = start + i/rate, never waiting for
// earlier calls to return. When the scheduler itself falls behind, the
// calls that are due start at once, with their original at. It returns the
// start time and how many calls it made (fewer than rate·d only when ctx
// ends first), after every call has returned.
func Schedule(ctx context.Context, rate int, d time.Duration, fn func(i int, at time.Time)) (time.Time, int) {
	if rate <= 0 {
		panic("loadgen: rate must be positive")
	}
	n := int(float64(rate) * d.Seconds())
	var wg sync.WaitGroup
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	made := 0
	for i := range n {
		at := start.Add(offset(i, rate))
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() { fn(i, at) })
		made++
	}
	wg.Wait()
	return start, made
}

// offset is when request i is due, after the start.
func offset(i, rate int) time.Duration {
	return time.Duration(int64(i) * int64(time.Second) / int64(rate))
}

// Result is one request of a run.
type Result struct {
	ID     int64
	Status int // 0: transport error (Err says which)
	Cache  string
	Err    error
	// At is the request's scheduled time, since the run started.
	At time.Duration
	// SendDelay is from the scheduled time until the request was written
	// to a connection; for a request never written, its whole latency.
	SendDelay time.Duration
	// Latency is from the scheduled time until the response was read.
	Latency time.Duration
}

// Late reports whether the request could not be sent on time.
func (r Result) Late() bool { return r.SendDelay > LateAfter }

// Report is a run: every scheduled request, in schedule order.
type Report struct {
	Start   time.Time
	Rate    int
	Results []Result
}

// Late is how many requests could not be sent on time.
func (r Report) Late() int {
	n := 0
	for _, x := range r.Results {
		if x.Late() {
			n++
		}
	}
	return n
}

// Latencies returns the latencies from scheduled time, sorted.
func (r Report) Latencies() []time.Duration {
	lat := make([]time.Duration, len(r.Results))
	for i, x := range r.Results {
		lat[i] = x.Latency
	}
	slices.Sort(lat)
	return lat
}

// Percentile is the q-quantile (0 ≤ q ≤ 1) of sorted durations; 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*q)]
}

// Summary is a short human line about the run.
func (r Report) Summary() string {
	if len(r.Results) == 0 {
		return "no requests"
	}
	statuses, caches := map[int]int{}, map[string]int{}
	for _, x := range r.Results {
		statuses[x.Status]++
		caches[x.Cache]++
	}
	lat := r.Latencies()
	p := func(q float64) time.Duration { return Percentile(lat, q).Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d requests at %d/s; status %v; X-Cache %v; latency from scheduled time p50 %s p90 %s p99 %s max %s; %d sent late (over %s behind schedule)",
		len(r.Results), r.Rate, statuses, caches, p(0.5), p(0.9), p(0.99), p(1), r.Late(), LateAfter)
}

// Run sends rate GET requests a second for d to url(id), ids from next,
// open loop (see Schedule), and returns every result in schedule order.
func Run(ctx context.Context, c *http.Client, rate int, d time.Duration, url func(int64) string, next func() int64) Report {
	results := make([]Result, int(float64(rate)*d.Seconds()))
	ids := make([]int64, len(results)) // drawn in order up front: the same run every time
	for i := range ids {
		ids[i] = next()
	}
	start, made := Schedule(ctx, rate, d, func(i int, at time.Time) {
		results[i] = get(ctx, c, url, ids[i], at)
		results[i].At = offset(i, rate)
	})
	return Report{Start: start, Rate: rate, Results: results[:made]}
}

// get sends one request scheduled at at.
func get(ctx context.Context, c *http.Client, url func(int64) string, id int64, at time.Time) Result {
	r := Result{ID: id}
	var wrote time.Time
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		mu.Lock()
		wrote = time.Now()
		mu.Unlock()
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url(id), nil)
	if err == nil {
		var resp *http.Response
		if resp, err = c.Do(req); err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			if cerr := resp.Body.Close(); err == nil {
				err = cerr
			}
			r.Status, r.Cache = resp.StatusCode, resp.Header.Get("X-Cache")
			if err != nil {
				r.Status = 0 // the body did not arrive whole
			}
		}
	}
	r.Err = err
	r.Latency = time.Since(at)
	mu.Lock()
	defer mu.Unlock()
	if wrote.IsZero() {
		r.SendDelay = r.Latency
	} else {
		r.SendDelay = wrote.Sub(at)
	}
	return r
}

// NewClient is an HTTP client sized for Run: up to 512 connections.
func NewClient() *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: maxConns, MaxConnsPerHost: maxConns}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// Zipf draws ids 1..n with a Zipf distribution (s = 1.1): a few hot ids
// and a long tail, as shoppers do. Safe for concurrent use.
func Zipf(seed uint64, n int) func() int64 {
	var mu sync.Mutex
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, seed+1)), 1.1, 1, uint64(n-1))
	return func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return int64(z.Uint64()) + 1
	}
}
