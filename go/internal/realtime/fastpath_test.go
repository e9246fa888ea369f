package realtime

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/source"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// MustFastPathOne is a OneServer over a source service whose fast path
// writes committed price and stock edits to the same real Redis.
func MustFastPathOne(tb testing.TB, fresh time.Duration) *harness {
	tb.Helper()
	rds := testutil.MustRedis(tb)
	svc, err := source.Open(tb.Context(), source.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(tb.TempDir(), "catalog.db"), Brokers: []string{testutil.MustKafka(tb)},
		AdminToken: testutil.SourceToken, SeedProducts: testutil.SourceProducts, SeedShops: testutil.SourceShops, Redis: rds,
	}, slog.New(slog.DiscardHandler), httpapi.Telemetry{Registry: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { svc.Close() })
	srv := httptest.NewServer(svc.Handler())
	tb.Cleanup(srv.Close)
	cfg := Defaults()
	cfg.Listen, cfg.SourceURL, cfg.Redis, cfg.Fresh = "127.0.0.1:0", srv.URL, rds, fresh
	return MustOneWith(tb, cfg)
}

// TestEditThroughSourceFastPath is acceptance 1 at the OneServer: a price
// edit's 200 from the source, then the OneServer answers the new price
// within 100 ms although its local entry would stay fresh for an hour
// (the fast path's dp:rt entry outdates it).
func TestEditThroughSourceFastPath(t *testing.T) {
	h := MustFastPathOne(t, time.Hour)
	for _, tc := range []struct {
		id     int64
		amount string
	}{{11, "1234.50"}, {12, "88.00"}, {11, "1300.00"}} {
		h.MustObject(t, "/api/realtime/"+itoa(tc.id)) // fresh in the local cache
		p := MustSourceJSON[catalog.Price](t, h, "/api/prices/"+itoa(tc.id))
		p.Amount = tc.amount
		h.MustSourceCall(t, http.MethodPut, "/api/prices/"+itoa(tc.id), p)
		edited := time.Now()
		var seen time.Duration
		err := testutil.PollEvery(2*time.Second, time.Millisecond, func() error {
			if o := h.MustObject(t, "/api/realtime/"+itoa(tc.id)); o.Price != tc.amount || o.Stale {
				return errorf("price %s stale %v, want %s", o.Price, o.Stale, tc.amount)
			}
			seen = time.Since(edited)
			return nil
		})
		if err != nil {
			t.Fatalf("id %d: %v", tc.id, err)
		}
		t.Logf("id %d: new price %s answered %s after the edit's 200", tc.id, tc.amount, seen.Round(100*time.Microsecond))
		if seen > 100*time.Millisecond {
			t.Errorf("id %d: new price after %s, want within 100ms", tc.id, seen)
		}
	}
}
