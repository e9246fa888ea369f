// Package loadgen sends open-loop page traffic for the protection tests
// and the protection benchmark: requests leave at their scheduled times
// whatever earlier ones are doing, as real shoppers would.
package loadgen

import (
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Result is one request of a run.
type Result struct {
	ID      int64
	Status  int // 0: transport error
	Cache   string
	At      time.Duration // since the run started
	Latency time.Duration
}

// maxInFlight bounds the requests outstanding at once.
const maxInFlight = 512

// Run sends rate requests a second for d to url(id), ids from next, and
// returns every result in send order.
func Run(c *http.Client, rate int, d time.Duration, url func(int64) string, next func() int64) []Result {
	n := int(float64(rate) * d.Seconds())
	results := make([]Result, n)
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxInFlight)
	start := time.Now()
	for i := range n {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			time.Sleep(w) // pacing the load, not waiting for a condition
		}
		id := next()
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			r := Result{ID: id, At: t0.Sub(start)}
			resp, err := c.Get(url(id))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				r.Status, r.Cache = resp.StatusCode, resp.Header.Get("X-Cache")
			}
			r.Latency = time.Since(t0)
			results[i] = r
		})
	}
	wg.Wait()
	return results
}

// NewClient is an HTTP client sized for Run.
func NewClient() *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: maxInFlight, MaxConnsPerHost: maxInFlight}
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
