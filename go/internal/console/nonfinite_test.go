package console

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/testutil"
)

// nonFiniteMetrics has a NaN, +Inf and -Inf reading in every family the
// snapshot reads, next to finite ones.
const nonFiniteMetrics = `# TYPE detailpage_resilience_circuit_state gauge
detailpage_resilience_circuit_state{command="a"} NaN
detailpage_resilience_circuit_state{command="b"} 1
# TYPE detailpage_resilience_bulkhead_in_flight gauge
detailpage_resilience_bulkhead_in_flight{command="a"} +Inf
detailpage_resilience_bulkhead_in_flight{command="b"} 2
# TYPE detailpage_resilience_bulkhead_limit gauge
detailpage_resilience_bulkhead_limit{command="a"} 16
detailpage_resilience_bulkhead_limit{command="b"} -Inf
# TYPE detailpage_outbox_backlog gauge
detailpage_outbox_backlog{x="1"} +Inf
detailpage_outbox_backlog{x="2"} 7
# TYPE detailpage_sync_consumer_lag gauge
detailpage_sync_consumer_lag{group="g1"} NaN
detailpage_sync_consumer_lag{group="g2"} +Inf
detailpage_sync_consumer_lag{group="g3"} 3
# TYPE detailpage_sync_dlq_pending gauge
detailpage_sync_dlq_pending -Inf
`

// TestSnapshotSkipsNonFinite: NaN and ±Inf in a service's /metrics are
// skipped (unknown), and the snapshot encodes.
func TestSnapshotSkipsNonFinite(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, nonFiniteMetrics)
	}))
	defer svc.Close()
	now := func() time.Time { return time.Unix(1000, 0) }
	cfg := Config{Services: []Target{{"svc", svc.URL}}, Timeout: time.Second}
	agg := newAggregator(now, 3*time.Second)
	agg.put("svc", cmdEvent("a", 10, 0, false, 1, 2, 1))
	agg.put("svc", cmdEvent("b", 10, 0, false, 1, 2, 1))
	col := &collector{cfg: cfg, client: svc.Client(), agg: agg, fol: newFollower(agg, slog.New(slog.DiscardHandler), time.Second), now: now}
	snap := col.snapshot(context.Background())
	if _, err := json.Marshal(snap); err != nil {
		t.Fatalf("snapshot does not encode: %v", err)
	}
	if !snap.Services[0].OK {
		t.Fatalf("service: %+v", snap.Services[0])
	}
	p := snap.Pipeline
	if p.OutboxBacklog == nil || *p.OutboxBacklog != 7 || p.DLQ != nil {
		t.Errorf("outbox %v, dlq %v: want 7 and null", p.OutboxBacklog, p.DLQ)
	}
	if len(p.ConsumerLag) != 1 || p.ConsumerLag["g3"] != 3 {
		t.Errorf("consumer lag %v, want only g3: 3", p.ConsumerLag)
	}
	if len(snap.Commands) != 2 {
		t.Fatalf("commands %+v, want a and b", snap.Commands)
	}
	for _, c := range snap.Commands {
		switch c.Name {
		case "a": // state unknown (closed), in flight unknown (0), limit 16
			if c.Circuit != "closed" || *c.InFlight != 0 || *c.Limit != 16 {
				t.Errorf("a = %+v (in flight %v, limit %v)", c, *c.InFlight, *c.Limit)
			}
		case "b":
			if c.Circuit != "open" || *c.InFlight != 2 || *c.Limit != 0 {
				t.Errorf("b = %+v (in flight %v, limit %v)", c, *c.InFlight, *c.Limit)
			}
		}
	}
}

// TestOverviewNotEncodable: a snapshot that cannot be encoded answers a
// 500 JSON error, not a 200 with an empty body.
func TestOverviewNotEncodable(t *testing.T) {
	s, base := newTestService(t, Config{Poll: time.Hour})
	testutil.Eventually(t, 5*time.Second, func() error {
		if s.latest.Load() == nil {
			return errNotYet
		}
		return nil
	})
	s.latest.Store(&Snapshot{Commands: []CommandStat{{Name: "x", Rate: math.Inf(1)}}})
	r := do(t, "GET", base+"/api/overview", "", map[string]string{"Authorization": "Bearer " + testToken})
	var body struct{ Error string }
	err := json.NewDecoder(r.Body).Decode(&body)
	if r.StatusCode != 500 || err != nil || body.Error == "" {
		t.Errorf("GET /api/overview of an unencodable snapshot: %d, %+v (%v); want 500 with an error", r.StatusCode, body, err)
	}
	if frame := s.overviewFrame(s.latest.Load()); string(frame) != ": snapshot not encodable\n\n" {
		t.Errorf("stream frame %q", frame)
	}
}
