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
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/syncer"
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
		v, _ := json.Marshal(c)
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
	deadline := time.Now().Add(limit)
	for {
		lag, err := kafka.GroupLag(context.Background(), brokers, syncer.GroupFor(topology.SyncGroup, topic), topic)
		if err == nil && lag == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not drained after %s (lag %d, %v)", topic, limit, lag, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
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

// BenchmarkEditToPage: 100 edits/s for 20 s while pages are being served;
// the time from each edit's PUT until the page through the dist tier shows
// it.
func BenchmarkEditToPage(b *testing.B) {
	const rate, seconds = 100, 20
	stop := make(chan struct{})
	var served atomic.Int64
	var load sync.WaitGroup
	for w := range 16 { // page traffic alongside
		load.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(pageURL(shared, strconv.Itoa(1+r.IntN(benchProducts))))
				if err == nil {
					resp.Body.Close()
					served.Add(1)
				}
			}
		})
	}
	var mu sync.Mutex
	var lat []time.Duration
	var edits sync.WaitGroup
	tick := time.NewTicker(time.Second / rate)
	b.ResetTimer()
	start := time.Now()
	for i := range rate * seconds {
		<-tick.C
		id := int64(2000 + i%4000) // one edit per product in flight
		edits.Go(func() {
			amount := fmt.Sprintf("%d.%02d", 10_000+i, i%100) // unique: the page shows it once the edit is there
			t0 := time.Now()
			status, _ := put(b, shared, fmt.Sprintf("/api/prices/%d", id), fmt.Appendf(nil, `{"amount":%q,"list":"","currency":"CNY"}`, amount))
			if status != http.StatusOK {
				b.Errorf("edit: %d", status)
				return
			}
			for time.Since(t0) < 10*time.Second {
				p := MustGetPage(b, pageURL(shared, strconv.FormatInt(id, 10)))
				if p.status == http.StatusOK && strings.Contains(p.body, ">"+amount+"<") {
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
					return
				}
				time.Sleep(5 * time.Millisecond) // poll interval
			}
			b.Errorf("edit of %d never showed", id)
		})
	}
	tick.Stop()
	edits.Wait()
	elapsed := time.Since(start)
	close(stop)
	load.Wait()
	if len(lat) == 0 {
		b.Fatal("no edit showed")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	b.ReportMetric(float64(served.Load())/elapsed.Seconds(), "pages/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEditBehindRefreshBacklog: with 100,000 refresh events queued,
// how long edits take to reach Redis main (the target: under a second).
func BenchmarkEditBehindRefreshBacklog(b *testing.B) {
	waitDrained(b, catalog.TopicLow, time.Minute)
	produceChanges(b, catalog.TopicLow, 100_000, true, nil)
	rdb := redisClient(b, shared.Config().Ports.RedisMain)
	var lat []time.Duration
	b.ResetTimer()
	for i := range 20 {
		id := int64(7000 + i)
		before, _ := rdb.Get(context.Background(), redisstore.ItemKey(id)).Bytes()
		t0 := time.Now()
		if status, _ := put(b, shared, fmt.Sprintf("/api/stock/%d", id), fmt.Appendf(nil, `{"available":%d}`, 200_000+i)); status != http.StatusOK {
			b.Fatalf("edit: %d", status)
		}
		for {
			cur, _ := rdb.Get(context.Background(), redisstore.ItemKey(id)).Bytes()
			if redisstore.VersionOf(cur) > redisstore.VersionOf(before) {
				lat = append(lat, time.Since(t0))
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatalf("edit of %d not in Redis after 30 s", id)
			}
			time.Sleep(2 * time.Millisecond) // poll interval
		}
		time.Sleep(200 * time.Millisecond) // spread the edits over the backlog's life
	}
	brokers := []string{topology.Addr(shared.Config().Ports.Kafka)}
	backlog, _ := kafka.GroupLag(context.Background(), brokers, syncer.GroupFor(topology.SyncGroup, catalog.TopicLow), catalog.TopicLow)
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(backlog), "backlog-left")
	b.ReportMetric(0, "ns/op")
	waitDrained(b, catalog.TopicLow, 10*time.Minute)
}
