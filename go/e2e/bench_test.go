package e2e

// Benchmarks of the write path against the real topology (make bench runs
// them with -benchtime 1x: each is one fixed workload, timed).

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/benchrow"
	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/loadgen"
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
	dp99, sp99 := loadgen.Percentile(detected, 0.99), loadgen.Percentile(spread, 0.99)
	benchrow.Record(b, benchrow.Row{What: "hot detection: surge → /api/hot, p99 of 20 surges", Figure: fmt.Sprintf("%.0f ms", ms(dp99)), Target: "≤ 1,000 ms", Met: dp99 <= time.Second})
	benchrow.Record(b, benchrow.Row{What: "hot detection: surge → served by the dist tier, p99", Figure: fmt.Sprintf("%.0f ms", ms(sp99)), Target: "≤ 1,000 ms", Met: sp99 <= time.Second})
	b.ReportMetric(ms(loadgen.Percentile(spread, 0.5)), "at-dist-p50-ms")
	b.ReportMetric(ms(loadgen.Percentile(spread, 0.99)), "at-dist-p99-ms")
	b.ReportMetric(0, "ns/op")
}
