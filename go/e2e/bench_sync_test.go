package e2e

import (
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

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
