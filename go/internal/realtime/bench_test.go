package realtime

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/benchrow"
	"github.com/detailpage/detailpage/go/internal/loadgen"
)

// warmIDs is the benchmark's request: ten ids, all in the local cache.
const warmIDs = "/api/realtime?ids=1,2,3,4,5,6,7,8,9,10"

// MustWarmOne is a OneServer whose local entries of ids 1–10 stay fresh
// for the whole benchmark.
func MustWarmOne(b *testing.B) *harness {
	b.Helper()
	h := MustOne(b, func(c *Config) { c.Fresh = time.Hour })
	h.MustGet(b, warmIDs, http.StatusOK)
	res := h.svc.Resolve(b.Context(), []int64{1, 10})
	if res[0].Level("price") != levelLRU || res[1].Level("stock") != levelLRU {
		b.Fatalf("not warm: %s/%s", res[0].Level("price"), res[1].Level("stock"))
	}
	return h
}

// BenchmarkRealtimeWarm: GET /api/realtime?ids= with 10 warm ids, through
// HTTP over loopback (client and server in this process, keep-alive),
// closed loop with 16 requests in flight per core. answers/s is the
// throughput (the target is ≥ 20,000).
func BenchmarkRealtimeWarm(b *testing.B) {
	h := MustWarmOne(b)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	url := h.base + warmIDs
	b.ReportAllocs()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "answers/s")
}

// BenchmarkRealtimeWarmPaced sends the warm request open loop at 10,000
// answers/s (half the target rate) for 2 s and reports the latency
// percentiles from each request's scheduled time (loadgen: no coordinated
// omission). The target is p99 ≤ 10 ms.
func BenchmarkRealtimeWarmPaced(b *testing.B) {
	h := MustWarmOne(b)
	c := loadgen.NewClient()
	const rate = 10_000
	for b.Loop() {
		rep := loadgen.Run(context.Background(), c, rate, 2*time.Second,
			func(int64) string { return h.base + warmIDs }, func() int64 { return 1 })
		for _, r := range rep.Results {
			if r.Status != http.StatusOK {
				b.Fatalf("status %d: %v", r.Status, r.Err)
			}
		}
		lat := rep.Latencies()
		ms := func(q float64) float64 { return float64(loadgen.Percentile(lat, q)) / float64(time.Millisecond) }
		b.ReportMetric(ms(0.5), "p50-ms")
		b.ReportMetric(ms(0.99), "p99-ms")
		b.ReportMetric(float64(rep.Late()), "late")
		b.Log(rep.Summary())
	}
}

// BenchmarkCollapsing: rounds of 200 concurrent single-id answers of cold
// ids (the local cache emptied before each), reporting the price batch
// calls the source saw per answer. Without the collapser every answer
// would make one call (1 source-call/answer).
func BenchmarkCollapsing(b *testing.B) {
	h := MustOne(b, nil)
	var answers, calls int64
	for b.Loop() {
		n, c := h.collapseRound(b, 200)
		answers += int64(n)
		calls += c
	}
	b.ReportMetric(float64(calls)/float64(answers), "source-calls/answer")
	b.ReportMetric(float64(answers)/float64(calls), "answers/source-call")
	benchrow.Record(b, benchrow.Row{What: "realtime collapsing: source price calls per answer, 200 concurrent cold ids", Figure: fmt.Sprintf("%.3f (without: 1)", float64(calls)/float64(answers))})
}
