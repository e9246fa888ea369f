package testutil

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/source"
)

// Size and admin token of the catalog MustSourceService seeds.
const (
	SourceProducts = 50
	SourceShops    = 5
	SourceToken    = "t"
)

// MustSourceService opens a source service on a new SQLite file in a
// temporary directory, seeded with SourceProducts products and SourceShops
// shops, with a MustKafka broker for its outbox relay, and closes it when
// the test ends. Nothing is served and the relay does not run until the
// test calls Run; it returns the service and the broker's address.
func MustSourceService(tb testing.TB) (*source.Service, string) {
	tb.Helper()
	broker := MustKafka(tb)
	svc, err := source.Open(tb.Context(), source.Config{
		Listen:       "127.0.0.1:0",
		DBPath:       filepath.Join(tb.TempDir(), "catalog.db"),
		Brokers:      []string{broker},
		AdminToken:   SourceToken,
		SeedProducts: SourceProducts,
		SeedShops:    SourceShops,
	}, slog.New(slog.DiscardHandler), httpapi.Telemetry{Registry: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatalf("testutil: open source service: %v", err)
	}
	tb.Cleanup(func() { svc.Close() })
	return svc, broker
}

// MustSourceServer serves a MustSourceService's API in-process with
// httptest and returns its base URL ("http://127.0.0.1:port").
func MustSourceServer(tb testing.TB) (string, *source.Service) {
	tb.Helper()
	svc, _ := MustSourceService(tb)
	srv := httptest.NewServer(svc.Handler())
	tb.Cleanup(srv.Close)
	return srv.URL, svc
}

// MustSourceStats resets (DELETE) or reads (GET) the request counters of
// the source service at base, per service and counter ("lookups",
// "missing", "in_flight", ...).
func MustSourceStats(tb testing.TB, base, method string) map[string]map[string]int64 {
	tb.Helper()
	req, err := http.NewRequest(method, base+"/_admin/stats", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+SourceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("testutil: source stats: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Services map[string]map[string]int64 `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("testutil: source stats: %s %v", resp.Status, err)
	}
	return body.Services
}
