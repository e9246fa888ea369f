package hot

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/benchrow"
)

// The batch shape of the ingest benchmarks: a report of 2,000 distinct ids
// drawn from a Zipf distribution (s = 1.1) over 10 million ids, whose
// counts add up to 100,000 page requests, i.e. one node's 250 ms at
// 400,000 req/s.
const (
	benchIDs      = 10_000_000
	benchDistinct = 2000
	benchRequests = 100_000
)

// zipfReport returns a report body of the benchmark's shape.
func zipfReport(seed uint64, node string) string {
	r := rand.New(rand.NewPCG(seed, 11))
	z := rand.NewZipf(r, 1.1, 1, benchIDs-1)
	// Ids are scattered over the id space (rank 1 is not id 1).
	perm := func(rank uint64) int64 { return int64((rank*2654435761+seed*97)%benchIDs) + 1 }
	draws := map[int64]uint64{}
	var total uint64
	for len(draws) < benchDistinct {
		draws[perm(z.Uint64())]++
		total++
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"node":%q,"interval_ms":250,"counts":{`, node)
	first, sum := true, uint64(0)
	var maxID int64
	var maxN uint64
	counts := map[int64]uint64{}
	for id, n := range draws {
		c := max(1, n*benchRequests/total)
		counts[id] = c
		sum += c
		if c > maxN {
			maxID, maxN = id, c
		}
	}
	counts[maxID] += benchRequests - sum // exactly benchRequests in all
	for id, c := range counts {
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(`"` + strconv.FormatInt(id, 10) + `":` + strconv.FormatUint(c, 10))
	}
	b.WriteString(`}}`)
	return b.String()
}

func zipfReports(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = zipfReport(uint64(i+1), fmt.Sprintf("app%d", i%3+1))
	}
	return out
}

// BenchmarkIngestHTTP posts reports of 2,000 ids from a Zipf over 10
// million ids covering 100,000 page requests each through the service's
// HTTP handler (token check, strict JSON decode, validation, window,
// long-term statistics, and the rule's evaluation at most every 10 ms):
// page-requests/s is how much traffic that ingest rate stands for.
func BenchmarkIngestHTTP(b *testing.B) {
	bodies := zipfReports(64)
	_, h, _ := MustService(b, nil)
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest("POST", "/api/report", strings.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Authorization", "Bearer "+testToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N)*benchRequests/b.Elapsed().Seconds(), "page-requests/s")
}

// BenchmarkIngestHTTPParallel is BenchmarkIngestHTTP with reports from
// several goroutines at once (several nodes reporting together).
func BenchmarkIngestHTTPParallel(b *testing.B) {
	bodies := zipfReports(64)
	_, h, _ := MustService(b, nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(bodies))
		for pb.Next() {
			i++
			req := httptest.NewRequest("POST", "/api/report", strings.NewReader(bodies[i%len(bodies)]))
			req.Header.Set("Authorization", "Bearer "+testToken)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
	rate := float64(b.N) * benchRequests / b.Elapsed().Seconds()
	b.ReportMetric(rate, "page-requests/s")
	benchrow.Record(b, benchrow.Row{What: "hot service ingest, reports from parallel nodes", Figure: fmt.Sprintf("%.2f M page requests/s", rate/1e6), Target: "≥ 1 M page requests/s", Met: rate >= 1e6})
}

// BenchmarkEvaluate is one evaluation of the rule with the window full
// (8 buckets of 4,096 ids) and three nodes' recent reports.
func BenchmarkEvaluate(b *testing.B) {
	now := time.Unix(1_700_000_000, 0)
	d, err := NewDetector(DefaultRule(), func() time.Time { return now }, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		now = now.Add(50 * time.Millisecond)
		rep := Report{Node: fmt.Sprintf("app%d", i%3), Interval: 250 * time.Millisecond}
		for range 5000 {
			rep.Counts = append(rep.Counts, IDCount{ID: int64(r.Uint64N(benchIDs)) + 1, Count: 1 + r.Uint64N(20)})
		}
		d.Ingest(rep)
	}
	b.ResetTimer()
	for range b.N {
		d.Evaluate()
	}
	b.ReportMetric(float64(d.Tracked()), "ids-tracked")
}

// feedDistinct feeds n distinct ids to d in reports of MaxCounts ids, the
// clock moving 50 ms per report.
func feedDistinct(d *Detector, n int, now *time.Time) {
	rep := Report{Node: "app1", Interval: 250 * time.Millisecond, Counts: make([]IDCount, 0, MaxCounts)}
	for id := 1; id <= n; id++ {
		rep.Counts = append(rep.Counts, IDCount{ID: int64(id)*7919 + 1, Count: 1 + uint64(id%5)})
		if len(rep.Counts) == MaxCounts || id == n {
			*now = now.Add(50 * time.Millisecond)
			d.Ingest(rep)
			rep.Counts = rep.Counts[:0]
		}
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkMemory10MIDs feeds 10 million distinct ids (each counted in
// the window and the hour and day statistics) and reports the heap the
// detector holds afterwards: bounded by the summaries' capacities, not by
// the ids seen.
func BenchmarkMemory10MIDs(b *testing.B) {
	for range b.N {
		before := heapInUse()
		now := time.Unix(1_700_000_000, 0)
		d, err := NewDetector(DefaultRule(), func() time.Time { return now }, NewStats(now), nil)
		if err != nil {
			b.Fatal(err)
		}
		feedDistinct(d, 10_000_000, &now)
		after := heapInUse()
		b.ReportMetric(float64(after)-float64(before), "heap-bytes")
		benchrow.Record(b, benchrow.Row{What: "hot service heap after 10 million distinct ids", Figure: fmt.Sprintf("%.1f MB, %d ids tracked", (float64(after)-float64(before))/1e6, d.Tracked())})
		b.ReportMetric(float64(d.Tracked()), "ids-tracked")
		runtime.KeepAlive(d)
	}
}

// TestMemoryBounded: a million distinct ids leave every structure within
// its capacity.
func TestMemoryBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rule := DefaultRule()
	rule.Capacity = 1024
	d, err := NewDetector(rule, func() time.Time { return now }, NewStats(now), nil)
	if err != nil {
		t.Fatal(err)
	}
	feedDistinct(d, 1_000_000, &now)
	buckets := int(rule.Window / rule.Bucket)
	if n := d.Tracked(); n > buckets*rule.Capacity {
		t.Fatalf("window tracks %d ids, bound %d", n, buckets*rule.Capacity)
	}
	for _, b := range d.win.buckets {
		checkHeap(t, b)
	}
	checkWindow(t, d.win)
	if n := d.stats.hour.cur.Len(); n > StatsCapacity {
		t.Fatalf("hour statistics track %d ids", n)
	}
	var recent int
	for _, n := range d.recent {
		for _, r := range n.reps {
			recent += len(r.counts)
		}
	}
	if maxRecent := MaxCounts * int(2*rule.Bucket/(50*time.Millisecond)); recent > maxRecent {
		t.Fatalf("recent reports hold %d counts, bound %d", recent, maxRecent)
	}
}
