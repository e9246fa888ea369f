package source

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
)

// The fast path (issue 13; seed 004: 源服务 db + redis 双写): a committed
// price or stock edit is also written, in the same request, to its
// realtime key in Redis (redisstore.PutRealtime: versioned, with an entry
// on the dp:rt stream), so the OneServer answers it at once instead of
// after the Kafka pipeline. The database stays the truth and the pipeline
// still carries the change to the dimension key and the page document, so
// a failed fast-path write is only logged and counted: the edit answers
// 200 all the same.

// FastPathTimeout bounds one fast-path write: a frozen Redis costs an edit
// at most this much.
const FastPathTimeout = 250 * time.Millisecond

// fastPathLogEvery is how often a failing fast path logs (with the number
// of failures since its last line).
const fastPathLogEvery = 5 * time.Second

// fastPath writes committed price and stock records to their realtime keys.
type fastPath struct {
	st      *redisstore.Store
	log     *slog.Logger
	now     func() time.Time
	writes  *prometheus.CounterVec
	logLim  rate.Sometimes
	dropped atomic.Int64 // failures not logged since the last line
}

// Fast-path results, the counter's result label.
const (
	fastOK    = "ok"    // written
	fastStale = "stale" // refused: Redis holds this version or a newer one
	fastError = "error" // Redis failed or timed out
)

func newFastPath(st *redisstore.Store, log *slog.Logger, reg prometheus.Registerer) *fastPath {
	f := &fastPath{
		st: st, log: log, now: time.Now,
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detailpage_source_fastpath_writes_total",
			Help: "Price and stock edits written to their realtime Redis keys after the commit, by result (ok, stale: a newer version was there, error).",
		}, []string{"result"}),
		logLim: rate.Sometimes{Interval: fastPathLogEvery},
	}
	for _, r := range []string{fastOK, fastStale, fastError} {
		f.writes.WithLabelValues(r)
	}
	reg.MustRegister(f.writes)
	return f
}

// write stores the committed record doc (the JSON the database holds, its
// version first) of id's dimension d. It never fails the edit: it returns
// the result label.
func (f *fastPath) write(ctx context.Context, id int64, d catalog.Dimension, doc json.RawMessage) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FastPathTimeout)
	defer cancel()
	rec := redisstore.RealtimeRecord{ID: id, Dim: d, Version: redisstore.VersionOf(doc), JSON: doc}
	n, err := f.st.PutRealtime(ctx, f.now(), rec)
	result := fastOK
	switch {
	case err != nil:
		result = fastError
		f.dropped.Add(1)
		f.logLim.Do(func() {
			f.log.Warn("fast path: realtime write failed; the edit is committed and the pipeline still carries it",
				"id", id, "dim", string(d), "version", rec.Version, "failures", f.dropped.Swap(0), slog.Any("error", err))
		})
	case n == 0:
		result = fastStale
	}
	f.writes.WithLabelValues(result).Inc()
	return result
}

// hasRealtime reports whether edits of kind go through the fast path.
func hasRealtime(kind *catalog.Kind) bool {
	return kind.Dim == catalog.DimPrice || kind.Dim == catalog.DimStock
}
