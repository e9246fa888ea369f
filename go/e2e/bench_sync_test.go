package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	_ "modernc.org/sqlite" // the source's catalog file, to bump versions in place

	"github.com/detailpage/detailpage/go/internal/benchrow"
	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/syncer"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// BenchmarkSyncThroughput: change events per second from Kafka into Redis
// main, for bulk refreshes (every dimension) and for edits (one dimension).
//
//   - refresh-all-dimensions: the whole catalog re-sent three times (30,000
//     refresh events), as a periodic bulk refresh is: mostly unchanged.
//   - refresh-every-product-changed: three rounds; before each, every
//     dimension of every product gets a new version at the source, then the
//     10,000 refresh events go out: every event finds the source newer than
//     Redis.
//   - edit-one-dimension: three rounds; before each, every product's stock
//     gets a new version (and a new count) at the source, then one stock
//     edit event per product: every edit really changes the record.
//
// The versions are bumped in the source's SQLite file (one transaction,
// from the catalog-wide version sequence, as the source would assign them)
// and not through its API, which would publish events of its own. Only the
// time from the first event produced to the group's last commit counts.
// After the changed rounds every product's page and dimensions in Redis
// must carry the source's versions: the events were applied, not skipped.
func BenchmarkSyncThroughput(b *testing.B) {
	for _, tc := range []struct {
		name    string
		topic   string
		rounds  int
		events  int // per round
		refresh bool
		dims    []catalog.Dimension
		bump    []*catalog.Kind // bumped at the source before each round
		row     string
		target  bool // the row has the target (≥ 20,000 events/s)
	}{
		{"refresh-all-dimensions", catalog.TopicLow, 1, 30_000, true, nil, nil,
			"sync, refresh events (all dimensions) into Redis", true},
		{"refresh-every-product-changed", catalog.TopicLow, 3, benchProducts, true, nil, catalog.ProductKinds,
			"sync, refresh events, every product changed at the source", false},
		{"edit-one-dimension", catalog.TopicHigh, 3, benchProducts, false, []catalog.Dimension{catalog.DimStock}, []*catalog.Kind{catalog.KindStock},
			"sync, one-dimension edit events into Redis", true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			rate := syncRounds(b, tc.topic, tc.rounds, tc.events, tc.refresh, tc.dims, tc.bump)
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(0, "ns/op")
			row := benchrow.Row{What: tc.row, Figure: thousands(rate) + " events/s"}
			if tc.target {
				row.Target, row.Met = "≥ 20,000 events/s", rate >= 20_000
			}
			benchrow.Record(b, row)
		})
	}
}

// syncRounds runs rounds of events change events on topic (bumping kinds
// at the source before each) and returns the events per second over the
// time the rounds took, from the first event produced to the last commit.
func syncRounds(tb testing.TB, topic string, rounds, events int, refresh bool, dims []catalog.Dimension, bump []*catalog.Kind) float64 {
	tb.Helper()
	drained(tb, topic, time.Minute)
	var spent time.Duration
	for range rounds {
		if len(bump) > 0 {
			mustBumpSource(tb, bump)
		}
		before := syncEvents(tb, topic)
		start := time.Now()
		produceChanges(tb, topic, events, refresh, dims)
		produced := time.Since(start)
		// The group's commits, polled every 20 ms: the figure is at most
		// that much low per round. (Each poll costs the broker about half
		// a millisecond of CPU, on the two cores the measured path shares.)
		err := testutil.PollEvery(5*time.Minute, 20*time.Millisecond, func() error { return lagOf(topic) })
		if err != nil {
			tb.Fatal(err)
		}
		drained(tb, catalog.TopicRetry, 5*time.Minute) // a failed batch counts once it is applied
		spent += time.Since(start)
		tb.Logf("%s: %d events produced in %s, applied in %s (%.0f handed to the retry topic)", topic, events,
			produced.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), syncEvents(tb, topic).retried-before.retried)
	}
	if len(bump) > 0 {
		mustRedisHasSourceVersions(tb, bump)
	}
	return float64(rounds*events) / spent.Seconds()
}

// drained waits until the sync group of topic has committed everything.
func drained(tb testing.TB, topic string, limit time.Duration) {
	tb.Helper()
	if err := testutil.Poll(limit, func() error { return lagOf(topic) }); err != nil {
		tb.Fatal(err)
	}
}

// lagOf is nil when the sync group of topic has committed everything.
func lagOf(topic string) error {
	brokers := []string{topology.Addr(shared.Config().Ports.Kafka)}
	lag, err := kafka.GroupLag(context.Background(), brokers, syncer.GroupFor(topology.SyncGroup, topic), topic)
	if err != nil {
		return err
	}
	if lag != 0 {
		return fmt.Errorf("%s: lag %d", topic, lag)
	}
	return nil
}

// outcomes are the sync service's counts of one topic's events
// (detailpage_sync_events_total).
type outcomes struct{ applied, retried, deadLettered float64 }

// handled counts the events done with, one way or the other.
func (o outcomes) handled() float64 { return o.applied + o.retried + o.deadLettered }

// syncEvents reads the sync service's counts of topic's events.
func syncEvents(tb testing.TB, topic string) outcomes {
	tb.Helper()
	resp, err := http.Get(topology.URL(shared.Config().Ports.Sync) + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	var o outcomes
	for _, m := range fams["detailpage_sync_events_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["topic"] != topic {
			continue
		}
		switch v := m.GetCounter().GetValue(); labels["outcome"] {
		case "applied":
			o.applied += v
		case "retried":
			o.retried += v
		case "dead_lettered":
			o.deadLettered += v
		}
	}
	return o
}

// sourceDB opens the shared topology's source catalog beside the running
// source (WAL: its readers are not disturbed; writers wait their turn).
func sourceDB(tb testing.TB) *sql.DB {
	tb.Helper()
	path := filepath.Join(shared.Config().VarDir, "source", "catalog.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// mustBumpSource gives every record of kinds a new version from the
// catalog-wide sequence (and a stock record a new count), in one
// transaction, without outbox events.
func mustBumpSource(tb testing.TB, kinds []*catalog.Kind) {
	tb.Helper()
	ctx := context.Background()
	tx, err := sourceDB(tb).BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT v FROM version_seq WHERE id = 1`).Scan(&next); err != nil {
		tb.Fatal(err)
	}
	for _, k := range kinds {
		set := `json_set(doc, '$.version', ?1 + id)`
		if k == catalog.KindStock {
			set = `json_set(doc, '$.version', ?1 + id, '$.available', json_extract(doc, '$.available') + 1)`
		}
		if _, err := tx.ExecContext(ctx, `UPDATE `+k.Table+` SET version = ?1 + id, doc = `+set, next); err != nil {
			tb.Fatalf("bump %s: %v", k, err)
		}
		var top int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM `+k.Table).Scan(&top); err != nil {
			tb.Fatal(err)
		}
		next += top
	}
	if _, err := tx.ExecContext(ctx, `UPDATE version_seq SET v = ? WHERE id = 1`, next); err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// mustRedisHasSourceVersions checks that Redis main holds every product's
// bumped dimensions at the source's version and its page at the sum of its
// dimensions' versions (read from the values' prefixes).
func mustRedisHasSourceVersions(tb testing.TB, kinds []*catalog.Kind) {
	tb.Helper()
	ctx := context.Background()
	q := `SELECT p.id, p.version`
	from := ` FROM products p`
	for i, k := range catalog.ProductKinds[1:] {
		q += fmt.Sprintf(` + coalesce(t%d.version, 0)`, i)
		from += fmt.Sprintf(` LEFT JOIN %s t%d ON t%d.id = p.id`, k.Table, i, i)
	}
	for _, k := range kinds {
		q += `, (SELECT version FROM ` + k.Table + ` WHERE id = p.id)`
	}
	rows, err := sourceDB(tb).QueryContext(ctx, q+from+` ORDER BY p.id`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	type want struct {
		id   int64
		page int64
		dims []int64
	}
	var wants []want
	for rows.Next() {
		w := want{dims: make([]int64, len(kinds))}
		dest := []any{&w.id, &w.page}
		for i := range w.dims {
			dest = append(dest, &w.dims[i])
		}
		if err := rows.Scan(dest...); err != nil {
			tb.Fatal(err)
		}
		wants = append(wants, w)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	rdb := redisClient(tb, shared.Config().Ports.RedisMain)
	bad := 0
	for start := 0; start < len(wants); start += 1000 {
		chunk := wants[start:min(start+1000, len(wants))]
		pipe := rdb.Pipeline()
		type check struct {
			key  string
			want int64
			got  interface{ Val() string }
		}
		var checks []check
		for _, w := range chunk {
			key := redisstore.ItemKey(w.id)
			checks = append(checks, check{key, w.page, pipe.GetRange(ctx, key, 0, 40)})
			for i, k := range kinds {
				key := redisstore.DimKey(w.id, k.Dim)
				checks = append(checks, check{key, w.dims[i], pipe.GetRange(ctx, key, 0, 40)})
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatal(err)
		}
		for _, c := range checks {
			if got := redisstore.VersionOf([]byte(c.got.Val())); got != c.want {
				if bad < 5 {
					tb.Errorf("%s: version %d in Redis, want %d (the source's)", c.key, got, c.want)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		tb.Fatalf("%d values in Redis do not carry the source's version", bad)
	}
}

// thousands formats n rounded, with thousands separators: 21,400.
func thousands(n float64) string {
	s := strconv.FormatInt(int64(n+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
