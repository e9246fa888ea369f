package resilience

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestDurationsMatchClientGolang: the command histogram puts every
// duration in the bucket client_golang's histogram with the same bounds
// puts it in (le, at the bounds to the nanosecond), and sums the same.
func TestDurationsMatchClientGolang(t *testing.T) {
	ref := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ref", Buckets: durationBuckets[:]})
	var h durations
	var ds []time.Duration
	for _, ns := range durationBucketsNs {
		ds = append(ds, time.Duration(ns-1), time.Duration(ns), time.Duration(ns+1))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		ds = append(ds, time.Duration(r.Int64N(int64(12*time.Second))))
	}
	ds = append(ds, 0, time.Nanosecond, time.Hour)
	for _, d := range ds {
		ref.Observe(d.Seconds())
		h.observe(d)
	}
	var m dto.Metric
	if err := ref.Write(&m); err != nil {
		t.Fatal(err)
	}
	var cum uint64
	for i, b := range m.GetHistogram().GetBucket() {
		cum += h.buckets[i].Load()
		if b.GetUpperBound() != durationBuckets[i] || b.GetCumulativeCount() != cum {
			t.Fatalf("bucket le %v: %d, client_golang %d (le %v)", durationBuckets[i], cum, b.GetCumulativeCount(), b.GetUpperBound())
		}
	}
	if total := cum + h.buckets[len(durationBuckets)].Load(); total != m.GetHistogram().GetSampleCount() || total != uint64(len(ds)) {
		t.Fatalf("count %d, client_golang %d, observed %d", total, m.GetHistogram().GetSampleCount(), len(ds))
	}
	sum, want := float64(h.sumNs.Load())/1e9, m.GetHistogram().GetSampleSum()
	if d := sum - want; d > 1e-6 || d < -1e-6 {
		t.Fatalf("sum %v, client_golang %v", sum, want)
	}
}
