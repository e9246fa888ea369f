package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/benchrow"
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
// time until the page through the dist tier shows it, and where that time
// goes: each hop of the write path is timed from outside the processes
// (hopWatch): the edit's PUT answered (committed), its event on
// catalog.changes.high (relay), its entry on dp:invalidate on Redis main
// (sync: fetch, batch, source reads, writes) and on the replica
// (replication), and the page through the dist tier (the node's follower
// dropped its copy, plus the 5 ms page poll).
func BenchmarkEditToPage(b *testing.B) {
	const editRate, pageRate, d = 100, 1000, 20 * time.Second
	ctx := b.Context()
	watch := startHopWatch(b, shared)
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
	var edits []editTimes
	lateEdits := 0
	b.ResetTimer()
	loadgen.Schedule(ctx, editRate, d, func(i int, at time.Time) {
		late := time.Since(at) > loadgen.LateAfter
		id := int64(2000 + i%4000)                        // one edit per product in flight
		amount := fmt.Sprintf("%d.%02d", 10_000+i, i%100) // unique: the page shows it once the edit is there
		status, body, err := putSource(shared, fmt.Sprintf("/api/prices/%d", id), fmt.Appendf(nil, `{"amount":%q,"list":"","currency":"CNY"}`, amount))
		committed := time.Now()
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
		shown := time.Now()
		mu.Lock()
		defer mu.Unlock()
		lat = append(lat, shown.Sub(at))
		edits = append(edits, editTimes{id: id, at: at, committed: committed, shown: shown})
		if late {
			lateEdits++
		}
	})
	traffic.Wait()
	if len(lat) == 0 {
		b.Fatal("no edit showed")
	}
	watch.stop()
	slices.Sort(lat)
	served := 0
	for _, r := range pages.Results {
		if r.Status == http.StatusOK {
			served++
		}
	}
	p50, p99 := loadgen.Percentile(lat, 0.5), loadgen.Percentile(lat, 0.99)
	b.Logf("pages alongside: %s", pages.Summary())
	hopSummary := watch.report(b, edits)
	b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
	b.ReportMetric(float64(lateEdits), "late-edits")
	b.ReportMetric(float64(served)/d.Seconds(), "pages/s")
	b.ReportMetric(float64(loadgen.Percentile(pages.Latencies(), 0.99).Microseconds())/1000, "page-p99-ms")
	b.ReportMetric(float64(pages.Late()), "late-pages")
	b.ReportMetric(0, "ns/op")
	benchrow.Record(b, benchrow.Row{
		What: "edit → page through the dist tier at 100 edits/s, p99", Figure: fmt.Sprintf("%d ms", p99.Milliseconds()),
		Target: "≤ 60 ms", Met: p99 <= 60*time.Millisecond && len(lat) == editRate*int(d/time.Second),
	})
	benchrow.Record(b, benchrow.Row{
		What:   "edit → page through the dist tier at 100 edits/s, p50",
		Figure: fmt.Sprintf("%d ms (%d of %d edits shown, %d sent late)", p50.Milliseconds(), len(lat), editRate*int(d/time.Second), lateEdits),
	})
	benchrow.Record(b, benchrow.Row{What: "edit → page, p50 per hop", Figure: hopSummary})
}

// editTimes is one edit of BenchmarkEditToPage: when it was due, when its
// PUT answered and when the page through the dist tier showed it.
type editTimes struct {
	id                   int64
	at, committed, shown time.Time
}

// hopWatch notes when an edit of each product id first appears on
// catalog.changes.high and on dp:invalidate on Redis main and on the
// replica, each followed from the test with a blocking read (a Kafka fetch
// the broker answers as soon as a message is there, XREAD BLOCK), so a
// hop's time is what the write path took plus a read's round trip.
type hopWatch struct {
	mu                   sync.Mutex
	kafka, main, replica map[int64]time.Time
	cancel               context.CancelFunc
	wg                   sync.WaitGroup
}

func startHopWatch(tb testing.TB, t *topology.Topology) *hopWatch {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &hopWatch{kafka: map[int64]time.Time{}, main: map[int64]time.Time{}, replica: map[int64]time.Time{}, cancel: cancel}
	tb.Cleanup(w.stop)
	addr := topology.Addr(t.Config().Ports.Kafka)
	conn, err := kafkago.Dial("tcp", addr)
	if err != nil {
		tb.Fatalf("hop watch: %v", err)
	}
	parts, err := conn.ReadPartitions(catalog.TopicHigh)
	conn.Close()
	if err != nil {
		tb.Fatalf("hop watch: partitions: %v", err)
	}
	for _, p := range parts {
		leader, err := kafkago.DialLeader(ctx, "tcp", addr, catalog.TopicHigh, p.ID)
		if err != nil {
			tb.Fatalf("hop watch: partition %d: %v", p.ID, err)
		}
		last, err := leader.ReadLastOffset()
		leader.Close()
		if err != nil {
			tb.Fatalf("hop watch: partition %d: %v", p.ID, err)
		}
		r := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: []string{addr}, Topic: catalog.TopicHigh, Partition: p.ID, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond, // not 1 s: kafka-go would ask the broker to wait 0
		})
		if err := r.SetOffset(last); err != nil {
			tb.Fatalf("hop watch: partition %d: %v", p.ID, err)
		}
		w.wg.Go(func() {
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				if c, err := catalog.DecodeChange(m.Value); err == nil && c.Entity == catalog.EntityProduct {
					w.note(w.kafka, c.ID)
				}
			}
		})
	}
	for _, s := range []struct {
		port int
		seen map[int64]time.Time
	}{{t.Config().Ports.RedisMain, w.main}, {t.Config().Ports.RedisReplica, w.replica}} {
		rdb := redis.NewClient(&redis.Options{Addr: topology.Addr(s.port), ReadTimeout: -1})
		last := "0-0"
		if newest, err := rdb.XRevRangeN(ctx, redisstore.InvalidationStream, "+", "-", 1).Result(); err != nil {
			tb.Fatalf("hop watch: %v", err)
		} else if len(newest) > 0 {
			last = newest[0].ID
		}
		w.wg.Go(func() {
			defer rdb.Close()
			for ctx.Err() == nil {
				res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{redisstore.InvalidationStream, last}, Block: time.Second, Count: 1000}).Result()
				if err != nil {
					continue // redis.Nil: nothing within the block; ctx done: the loop ends
				}
				for _, e := range res[0].Messages {
					last = e.ID
					ids, _ := e.Values["ids"].(string)
					for _, entry := range strings.Split(ids, ",") {
						kind, rest, _ := strings.Cut(entry, ":")
						idText, _, _ := strings.Cut(rest, ":")
						if id, err := strconv.ParseInt(idText, 10, 64); err == nil && kind == "p" {
							w.note(s.seen, id)
						}
					}
				}
			}
		})
	}
	return w
}

func (w *hopWatch) note(seen map[int64]time.Time, id int64) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := seen[id]; !ok {
		seen[id] = now
	}
}

func (w *hopWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

// report logs p50, p90 and p99 of each hop over the edits every stage saw
// and returns the p50s in one line.
func (w *hopWatch) report(tb *testing.B, edits []editTimes) string {
	tb.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	names := []string{"scheduled → committed (PUT answered)", "committed → on Kafka (relay)", "Kafka → Redis main (sync)", "main → replica", "replica → page (follower, node, 5 ms poll)"}
	short := []string{"commit", "relay", "sync", "replica", "node+poll"}
	hops := make([][]time.Duration, len(names))
	for _, e := range edits {
		k, ok1 := w.kafka[e.id]
		m, ok2 := w.main[e.id]
		r, ok3 := w.replica[e.id]
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		for i, d := range []time.Duration{e.committed.Sub(e.at), k.Sub(e.committed), m.Sub(k), r.Sub(m), e.shown.Sub(r)} {
			hops[i] = append(hops[i], d)
		}
	}
	if len(hops[0]) == 0 {
		tb.Errorf("hop watch: no edit was seen at every stage")
		return "n/a"
	}
	parts := make([]string, len(names))
	for i, h := range hops {
		slices.Sort(h)
		p50, p90, p99 := loadgen.Percentile(h, 0.5), loadgen.Percentile(h, 0.9), loadgen.Percentile(h, 0.99)
		tb.Logf("hop %-45s p50 %6.1f ms  p90 %6.1f ms  p99 %6.1f ms", names[i], ms(p50), ms(p90), ms(p99))
		parts[i] = fmt.Sprintf("%s %.0f", short[i], ms(p50))
		tb.ReportMetric(ms(p99), "hop"+strconv.Itoa(i+1)+"-p99-ms")
	}
	tb.Logf("hops timed for %d of %d edits", len(hops[0]), len(edits))
	return strings.Join(parts, " / ") + " ms"
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

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
	worst := lat[len(lat)-1]
	b.ReportMetric(float64(loadgen.Percentile(lat, 0.5).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(worst.Milliseconds()), "max-ms")
	b.ReportMetric(float64(backlog), "backlog-left")
	b.ReportMetric(0, "ns/op")
	benchrow.Record(b, benchrow.Row{
		What:   "edit → Redis main behind a 100,000-event refresh backlog, slowest of 20",
		Figure: fmt.Sprintf("%d ms (p50 %d ms; %d of 20 edits; %d refresh events still queued after them)", worst.Milliseconds(), loadgen.Percentile(lat, 0.5).Milliseconds(), len(lat), backlog),
		Target: "≤ 1 s", Met: worst <= time.Second && len(lat) == 20,
	})
	waitDrained(b, catalog.TopicLow, 10*time.Minute)
}
