package e2e

// Benchmarks of the write path against the real topology (make bench runs
// them with -benchtime 1x: each is one fixed workload, timed).

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/syncer"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

const benchProducts = 10_000 // the shared topology's catalog

// produceChanges writes n change events for products 1..benchProducts in
// turn to topic, as fast as the broker takes them.
func produceChanges(tb testing.TB, topic string, n int, refresh bool, dims []catalog.Dimension) {
	tb.Helper()
	w := kafka.NewWriter([]string{topology.Addr(shared.Config().Ports.Kafka)})
	w.BatchSize = 1000
	defer w.Close()
	msgs := make([]kafkago.Message, 0, 1000)
	for i := range n {
		id := int64(i%benchProducts) + 1
		c := catalog.Change{Entity: catalog.EntityProduct, ID: id, Refresh: refresh, Dims: dims, TS: time.Now().UnixMilli()}
		v, err := json.Marshal(c)
		if err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, kafkago.Message{Topic: topic, Key: []byte("product:" + strconv.FormatInt(id, 10)), Value: v})
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := w.WriteMessages(context.Background(), msgs...); err != nil {
				tb.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
}

// waitDrained waits until the sync group of topic has committed everything.
func waitDrained(tb testing.TB, topic string, limit time.Duration) {
	tb.Helper()
	brokers := []string{topology.Addr(shared.Config().Ports.Kafka)}
	testutil.Eventually(tb, limit, func() error {
		lag, err := kafka.GroupLag(context.Background(), brokers, syncer.GroupFor(topology.SyncGroup, topic), topic)
		if err != nil {
			return err
		}
		if lag != 0 {
			return fmt.Errorf("%s: lag %d", topic, lag)
		}
		return nil
	})
}

// BenchmarkSyncThroughput: change events per second from Kafka into Redis
// main, for bulk refreshes (every dimension) and for edits (one dimension).
func BenchmarkSyncThroughput(b *testing.B) {
	for _, tc := range []struct {
		name    string
		topic   string
		events  int
		refresh bool
		dims    []catalog.Dimension
	}{
		{"refresh-all-dimensions", catalog.TopicLow, 30_000, true, nil},
		{"edit-one-dimension", catalog.TopicHigh, 30_000, false, []catalog.Dimension{catalog.DimStock}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			waitDrained(b, tc.topic, time.Minute)
			b.ResetTimer()
			start := time.Now()
			produceChanges(b, tc.topic, tc.events, tc.refresh, tc.dims)
			waitDrained(b, tc.topic, 5*time.Minute)
			d := time.Since(start)
			b.ReportMetric(float64(tc.events)/d.Seconds(), "events/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

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

// BenchmarkHotDetection: surges of 2 s at 600 requests/s on one id at a
// time (ids the Zipf background at 400 requests/s rarely asks for), one
// after the other; for each, the time from its first request until the
// id is in the hot service's GET /api/hot, and until the dist tier serves
// it itself (X-Served-By: dist). Reports p50 and p99 over the surges.
func BenchmarkHotDetection(b *testing.B) {
	const surges = 20
	load := newHotLoad(shared)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	load.run(ctx, 400, loadgen.Zipf(31, benchProducts))
	var detected, spread []time.Duration
	b.ResetTimer()
	for i := range surges {
		id := int64(9_000 + i)
		surgeCtx, stopSurge := context.WithCancel(ctx)
		start := time.Now()
		load.run(surgeCtx, 600, func() int64 { return id })
		var inSet, atDist time.Duration
		err := testutil.PollEvery(5*time.Second, 5*time.Millisecond, func() error {
			if inSet == 0 {
				if _, hot, err := inHotSet(shared, id); err == nil && hot {
					inSet = time.Since(start)
				}
			}
			if atDist == 0 {
				for _, r := range load.snapshot() {
					if r.id == id && r.servedBy == "dist" {
						atDist = r.end.Sub(start)
						break
					}
				}
			}
			if inSet == 0 || atDist == 0 {
				return fmt.Errorf("surge on %d: in the hot set after %s, served by dist after %s", id, inSet, atDist)
			}
			return nil
		})
		if err != nil {
			set, _ := hotSet(topology.Addr(shared.Config().Ports.Hot))
			by := map[string]int{}
			for _, r := range load.snapshot() {
				if r.id == id {
					by[fmt.Sprintf("%d/%s", r.status, r.servedBy)]++
				}
			}
			b.Fatalf("%v; answers %v; hot set %v; hot service log: %s", err, by, set, tail(shared.Component(topology.Hot).LogPath()))
		}
		detected, spread = append(detected, inSet), append(spread, atDist)
		// two seconds of surge, then the next id
		testutil.Eventually(b, 5*time.Second, func() error {
			if time.Since(start) < 2*time.Second {
				return fmt.Errorf("surge on")
			}
			return nil
		})
		stopSurge()
	}
	b.StopTimer()
	stop()
	load.wait()
	if bad := failures(load.snapshot()); len(bad) > 0 {
		b.Errorf("%d answers were not 200, e.g. %v", len(bad), bad[:min(5, len(bad))])
	}
	slices.Sort(detected)
	slices.Sort(spread)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(loadgen.Percentile(detected, 0.5)), "detect-p50-ms")
	b.ReportMetric(ms(loadgen.Percentile(detected, 0.99)), "detect-p99-ms")
	b.ReportMetric(ms(loadgen.Percentile(spread, 0.5)), "at-dist-p50-ms")
	b.ReportMetric(ms(loadgen.Percentile(spread, 0.99)), "at-dist-p99-ms")
	b.ReportMetric(0, "ns/op")
}
