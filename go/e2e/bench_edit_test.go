package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/syncer"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// BenchmarkEditToPage: edits at 100/s for 20 s (open loop) while pages
// are served at 1,000/s (open loop); the time from each edit's scheduled
// time until the page through the dist tier shows it.
func BenchmarkEditToPage(b *testing.B) {
	const editRate, pageRate, d = 100, 1000, 20 * time.Second
	ctx := b.Context()
	var pages loadgen.Report
	var traffic sync.WaitGroup
	c := loadgen.NewClient()
	defer c.CloseIdleConnections()
	traffic.Go(func() { // page traffic alongside
		r := rand.New(rand.NewPCG(1, 3))
		pages = loadgen.Run(ctx, c, pageRate, d, func(id int64) string { return pageURL(shared, strconv.FormatInt(id, 10)) },
			func() int64 { return 1 + r.Int64N(benchProducts) })
	})
	var mu sync.Mutex
	var lat []time.Duration
	lateEdits := 0
	b.ResetTimer()
	loadgen.Schedule(ctx, editRate, d, func(i int, at time.Time) {
		late := time.Since(at) > loadgen.LateAfter
		id := int64(2000 + i%4000)                        // one edit per product in flight
		amount := fmt.Sprintf("%d.%02d", 10_000+i, i%100) // unique: the page shows it once the edit is there
		status, body, err := putSource(shared, fmt.Sprintf("/api/prices/%d", id), fmt.Appendf(nil, `{"amount":%q,"list":"","currency":"CNY"}`, amount))
		if err != nil || status != http.StatusOK {
			b.Errorf("edit %d: %d %.200s %v", id, status, body, err)
			return
		}
		err = testutil.PollEvery(10*time.Second, 5*time.Millisecond, func() error {
			p, err := getPage(pageURL(shared, strconv.FormatInt(id, 10)))
			if err != nil {
				return err
			}
			if p.status != http.StatusOK || !strings.Contains(p.body, ">"+amount+"<") {
				return fmt.Errorf("page %d: status %d, X-Cache %s, without the edit", id, p.status, p.cache)
			}
			return nil
		})
		if err != nil {
			b.Errorf("edit of %d never showed: %v", id, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, time.Since(at))
		if late {
			lateEdits++
		}
	})
	traffic.Wait()
	if len(lat) == 0 {
		b.Fatal("no edit showed")
	}
	slices.Sort(lat)
	served := 0
	for _, r := range pages.Results {
		if r.Status == http.StatusOK {
			served++
		}
	}
	b.Logf("pages alongside: %s", pages.Summary())
	b.ReportMetric(float64(loadgen.Percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(loadgen.Percentile(lat, 0.99).Milliseconds()), "p99-ms")
	b.ReportMetric(float64(lateEdits), "late-edits")
	b.ReportMetric(float64(served)/d.Seconds(), "pages/s")
	b.ReportMetric(float64(loadgen.Percentile(pages.Latencies(), 0.99).Microseconds())/1000, "page-p99-ms")
	b.ReportMetric(float64(pages.Late()), "late-pages")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEditBehindRefreshBacklog: with 100,000 refresh events queued,
// how long edits (5/s for 4 s, open loop) take from their scheduled time to
// Redis main (the target: under a second).
func BenchmarkEditBehindRefreshBacklog(b *testing.B) {
	waitDrained(b, catalog.TopicLow, time.Minute)
	produceChanges(b, catalog.TopicLow, 100_000, true, nil)
	rdb := redisClient(b, shared.Config().Ports.RedisMain)
	ctx := b.Context()
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	loadgen.Schedule(ctx, 5, 4*time.Second, func(i int, at time.Time) { // spread over the backlog's life
		id := int64(7000 + i)
		before, err := rdb.Get(ctx, redisstore.ItemKey(id)).Bytes()
		if err != nil {
			b.Errorf("product %d before the edit: %v", id, err)
			return
		}
		status, body, err := putSource(shared, fmt.Sprintf("/api/stock/%d", id), fmt.Appendf(nil, `{"available":%d}`, 200_000+i))
		if err != nil || status != http.StatusOK {
			b.Errorf("edit %d: %d %.200s %v", id, status, body, err)
			return
		}
		err = testutil.PollEvery(30*time.Second, 2*time.Millisecond, func() error {
			cur, err := rdb.Get(ctx, redisstore.ItemKey(id)).Bytes()
			if err != nil {
				return err
			}
			if redisstore.VersionOf(cur) <= redisstore.VersionOf(before) {
				return fmt.Errorf("product %d: version %d in Redis, not newer than %d", id, redisstore.VersionOf(cur), redisstore.VersionOf(before))
			}
			return nil
		})
		if err != nil {
			b.Errorf("edit of %d not in Redis: %v", id, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, time.Since(at))
	})
	if len(lat) == 0 {
		b.Fatal("no edit reached Redis")
	}
	brokers := []string{topology.Addr(shared.Config().Ports.Kafka)}
	backlog, err := kafka.GroupLag(ctx, brokers, syncer.GroupFor(topology.SyncGroup, catalog.TopicLow), catalog.TopicLow)
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(loadgen.Percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(backlog), "backlog-left")
	b.ReportMetric(0, "ns/op")
	waitDrained(b, catalog.TopicLow, 10*time.Minute)
}
