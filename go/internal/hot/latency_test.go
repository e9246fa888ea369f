package hot

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkDetectionLatency measures, in real time over HTTP, how long a
// surge takes to show in GET /api/hot/ids: each iteration starts a fresh
// service, three reporters (app1, app2, dist at random phases) post a
// Zipf background over 10,000 ids (800 req/s in all, the busiest id at
// 82 req/s, under the floor) every 250 ms, then one id surges at 5× the
// busiest; the latency runs from the surge's start to the id appearing in
// a poll (every 5 ms). Run with -benchtime=20x; reports p50 and max.
func BenchmarkDetectionLatency(b *testing.B) {
	var lat []time.Duration
	for i := range b.N {
		lat = append(lat, surgeOnce(b, uint64(i)))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
}

func surgeOnce(b *testing.B, seed uint64) time.Duration {
	b.Helper()
	s, _, _ := MustService(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	base := "http://" + s.Addr()

	const n = 10_000
	h := 0.0
	for k := 1; k <= n; k++ {
		h += 1 / float64(k)
	}
	rates := make(map[int64]float64, n+1)
	for k := 1; k <= n; k++ {
		rates[int64(k)] = 800 / h / float64(k)
	}
	const surgeID = 987654321012345678

	// Each node's requests not yet reported, counted up to last at the
	// rates in force (a change of rate first counts up to then).
	type node struct {
		name string
		acc  map[int64]float64
		last time.Time
	}
	var mu sync.Mutex // guards rates and nodes
	nodes := []*node{{name: "app1"}, {name: "app2"}, {name: "dist"}}
	count := func(nd *node, now time.Time) {
		dt := now.Sub(nd.last).Seconds()
		nd.last = now
		for id, rate := range rates {
			nd.acc[id] += rate * dt / float64(len(nodes))
		}
	}

	var wg sync.WaitGroup
	r := rand.New(rand.NewPCG(seed, 1))
	for _, nd := range nodes {
		phase := time.Duration(r.Int64N(int64(250 * time.Millisecond)))
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(phase):
			}
			mu.Lock()
			nd.acc, nd.last = map[int64]float64{}, time.Now()
			mu.Unlock()
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				var body strings.Builder
				body.WriteString(`{"node":"` + nd.name + `","interval_ms":250,"counts":{`)
				first := true
				mu.Lock()
				count(nd, time.Now())
				for id, x := range nd.acc {
					c := math.Floor(x)
					nd.acc[id] = x - c
					if c >= 1 {
						if !first {
							body.WriteByte(',')
						}
						first = false
						body.WriteString(`"` + strconv.FormatInt(id, 10) + `":` + strconv.Itoa(int(c)))
					}
				}
				mu.Unlock()
				body.WriteString(`}}`)
				req, _ := http.NewRequest("POST", base+"/api/report", strings.NewReader(body.String()))
				req.Header.Set("Authorization", "Bearer "+testToken)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	defer wg.Wait()
	defer cancel()

	time.Sleep(1500 * time.Millisecond) // the background fills the window
	if ids := getIDs(b, base); ids != "" {
		b.Fatalf("hot before the surge: %q", ids)
	}
	mu.Lock()
	start := time.Now()
	for _, nd := range nodes {
		count(nd, start)
	}
	rates[surgeID] = 5 * rates[1]
	mu.Unlock()
	want := fmt.Sprintf("%d\n", surgeID)
	for time.Since(start) < 3*time.Second {
		if getIDs(b, base) == want {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond) // the poll period of the measurement
	}
	b.Fatalf("surge not detected within 3 s")
	return 0
}

func getIDs(tb testing.TB, base string) string {
	resp, err := http.Get(base + "/api/hot/ids")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
