package hot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/detailpage/detailpage/go/internal/httpapi"
)

const testToken = "test-token"

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// MustService opens a service on 127.0.0.1:0 with cfg's non-zero fields
// over the defaults, and its HTTP handler; closed at the end of the test.
func MustService(tb testing.TB, edit func(*Config)) (*Service, http.Handler, *logBuffer) {
	tb.Helper()
	cfg := Defaults()
	cfg.Listen, cfg.AdminToken = "127.0.0.1:0", testToken
	if edit != nil {
		edit(&cfg)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	s, err := Open(cfg, log, httpapi.Telemetry{Registry: prometheus.NewRegistry()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s, s.Handler(), logs
}

func do(h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func bigCounts(n int) string {
	var b strings.Builder
	b.WriteString(`{"node":"app1","interval_ms":250,"counts":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%d":1`, i+1)
	}
	b.WriteString(`}}`)
	return b.String()
}

func bigMissing(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"%d"`, i+1)
	}
	return `{"node":"app1","interval_ms":250,"counts":{},"missing":[` + strings.Join(ids, ",") + `]}`
}

func TestReportValidation(t *testing.T) {
	s, h, logs := MustService(t, nil)
	tests := []struct {
		name, body, want string
	}{
		{"empty body", ``, "empty body"},
		{"not JSON", `counts=1`, "bad JSON"},
		{"array", `[]`, "wrong type"},
		{"unknown field", `{"node":"app1","interval_ms":250,"counts":{"7":1},"extra":1}`, "unknown field"},
		{"no node", `{"interval_ms":250,"counts":{"7":1}}`, "node required"},
		{"empty node", `{"node":"","interval_ms":250,"counts":{"7":1}}`, "node must be"},
		{"node with a space", `{"node":"app 1","interval_ms":250,"counts":{"7":1}}`, "node must be"},
		{"node too long", `{"node":"` + strings.Repeat("a", 65) + `","interval_ms":250,"counts":{"7":1}}`, "node must be"},
		{"node a number", `{"node":1,"interval_ms":250,"counts":{"7":1}}`, "wrong type"},
		{"no interval", `{"node":"app1","counts":{"7":1}}`, "interval_ms required"},
		{"interval 0", `{"node":"app1","interval_ms":0,"counts":{"7":1}}`, "positive integer"},
		{"interval too long", `{"node":"app1","interval_ms":60001,"counts":{"7":1}}`, "interval_ms must be"},
		{"interval a string", `{"node":"app1","interval_ms":"250","counts":{"7":1}}`, "positive integer"},
		{"counts an array", `{"node":"app1","interval_ms":250,"counts":[7]}`, "wrong type"},
		{"negative count", `{"node":"app1","interval_ms":250,"counts":{"7":-3}}`, "positive integer"},
		{"zero count", `{"node":"app1","interval_ms":250,"counts":{"7":0}}`, "positive integer"},
		{"fractional count", `{"node":"app1","interval_ms":250,"counts":{"7":1.5}}`, "positive integer"},
		{"exponent count", `{"node":"app1","interval_ms":250,"counts":{"7":1e3}}`, "positive integer"},
		{"string count", `{"node":"app1","interval_ms":250,"counts":{"7":"3"}}`, "positive integer"},
		{"null count", `{"node":"app1","interval_ms":250,"counts":{"7":null}}`, "positive integer"},
		{"huge count", `{"node":"app1","interval_ms":250,"counts":{"7":1000000001}}`, "over 1000000000"},
		{"count overflowing", `{"node":"app1","interval_ms":250,"counts":{"7":99999999999999999999999}}`, "positive integer"},
		{"non-numeric id", `{"node":"app1","interval_ms":250,"counts":{"abc":1}}`, "bad id"},
		{"id 0", `{"node":"app1","interval_ms":250,"counts":{"0":1}}`, "bad id"},
		{"negative id", `{"node":"app1","interval_ms":250,"counts":{"-7":1}}`, "bad id"},
		{"id with leading zero", `{"node":"app1","interval_ms":250,"counts":{"07":1}}`, "bad id"},
		{"id of 19 digits", `{"node":"app1","interval_ms":250,"counts":{"1234567890123456789":1}}`, "bad id"},
		{"huge batch", bigCounts(MaxCounts + 1), "at most 20000"},
		{"too many missing", bigMissing(MaxMissing + 1), "at most 1000"},
		{"missing a number", `{"node":"app1","interval_ms":250,"counts":{},"missing":[9]}`, "wrong type"},
		{"bad missing id", `{"node":"app1","interval_ms":250,"counts":{},"missing":["x9"]}`, "bad id"},
		{"trailing data", `{"node":"app1","interval_ms":250,"counts":{"7":1}} {}`, "after the JSON"},
		{"body over 4 MB", `{"node":"app1","interval_ms":250,"counts":{},"missing":["` + strings.Repeat("1", MaxReportBytes) + `"]}`, "body over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(h, "POST", "/api/report", testToken, tt.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", rec.Code, rec.Body)
			}
			var out struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || !strings.Contains(out.Error, tt.want) {
				t.Fatalf("body %s, want an error mentioning %q", rec.Body, tt.want)
			}
		})
	}
	if got := testutil.ToFloat64(s.reports.WithLabelValues("rejected")); got != float64(len(tests)) {
		t.Errorf("rejected reports metric %v, want %d", got, len(tests))
	}
	// One log line each, up to the limiter's burst; the rest are counted.
	if n := strings.Count(logs.String(), "report rejected"); n < 1 || n > 5 {
		t.Errorf("%d log lines for %d bad reports in a burst, want 1..5", n, len(tests))
	}
	if ids := s.det.Snapshot().Entries; len(ids) != 0 || s.det.Tracked() != 0 {
		t.Errorf("bad reports counted: hot %v, tracked %d", ids, s.det.Tracked())
	}

	t.Run("wrong token", func(t *testing.T) {
		for _, tok := range []string{"", "nope"} {
			if rec := do(h, "POST", "/api/report", tok, `{"node":"app1","interval_ms":250,"counts":{"7":1}}`); rec.Code != http.StatusUnauthorized {
				t.Fatalf("token %q: status %d, want 401", tok, rec.Code)
			}
		}
	})
	t.Run("good report", func(t *testing.T) {
		body := `{"node":"app1.local:8081","interval_ms":250,"counts":{"7":120,"12":3,"999999999999999999":1000000000},"missing":["9"]}`
		if rec := do(h, "POST", "/api/report", testToken, body); rec.Code != http.StatusNoContent {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if rec := do(h, "POST", "/api/report", testToken, bigCounts(MaxCounts)); rec.Code != http.StatusNoContent {
			t.Fatalf("a batch of %d: status %d: %s", MaxCounts, rec.Code, rec.Body)
		}
		if got := testutil.ToFloat64(s.reports.WithLabelValues("accepted")); got != 2 {
			t.Fatalf("accepted %v", got)
		}
	})
}

func TestHotAPI(t *testing.T) {
	_, h, _ := MustService(t, nil)
	rec := do(h, "GET", "/api/hot/ids", "", "")
	if rec.Code != 200 || rec.Body.Len() != 0 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("empty set: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if rec := do(h, "GET", "/api/hot", "", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"hot":[]`) {
		t.Fatalf("empty set: %d %s", rec.Code, rec.Body)
	}
	// A surge well above the floor, from an empty background.
	for range 3 {
		if rec := do(h, "POST", "/api/report", testToken, `{"node":"app1","interval_ms":250,"counts":{"900000000000000001":300,"5":2}}`); rec.Code != 204 {
			t.Fatalf("report: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := do(h, "GET", "/api/hot/ids", "", ""); rec.Body.String() != "900000000000000001\n" {
		t.Fatalf("ids %q", rec.Body)
	}
	var got struct {
		Hot []struct {
			ID     int64
			Rate   float64
			Since  time.Time
			Pinned bool
		}
	}
	rec = do(h, "GET", "/api/hot", "", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Hot) != 1 ||
		got.Hot[0].ID != 900000000000000001 || got.Hot[0].Rate < 100 || got.Hot[0].Since.IsZero() || got.Hot[0].Pinned {
		t.Fatalf("hot: %s (%v)", rec.Body, err)
	}

	t.Run("pin and unpin", func(t *testing.T) {
		for _, tok := range []string{"", "nope"} {
			if rec := do(h, "POST", "/_admin/hot", tok, `{"id":7,"action":"pin"}`); rec.Code != 401 {
				t.Fatalf("token %q: %d, want 401", tok, rec.Code)
			}
		}
		for _, body := range []string{`{"id":7,"action":"pin"}`, `{"id":"8","action":"pin"}`} {
			if rec := do(h, "POST", "/_admin/hot", testToken, body); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"pinned":true`) {
				t.Fatalf("%s: %d %s", body, rec.Code, rec.Body)
			}
		}
		if rec := do(h, "GET", "/api/hot/ids", "", ""); rec.Body.String() != "900000000000000001\n7\n8\n" {
			t.Fatalf("ids %q", rec.Body)
		}
		if rec := do(h, "POST", "/_admin/hot", testToken, `{"id":7,"action":"unpin"}`); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"pinned":false`) {
			t.Fatalf("unpin: %d %s", rec.Code, rec.Body)
		}
		if rec := do(h, "GET", "/api/hot/ids", "", ""); rec.Body.String() != "900000000000000001\n8\n" {
			t.Fatalf("ids %q", rec.Body)
		}
		for _, body := range []string{`{"id":0,"action":"pin"}`, `{"id":-1,"action":"pin"}`, `{"id":1.5,"action":"pin"}`, `{"id":"x","action":"pin"}`,
			`{"id":7,"action":"boil"}`, `{"id":7}`, `{"id":7,"action":"pin","x":1}`, `{}`, ``} {
			if rec := do(h, "POST", "/_admin/hot", testToken, body); rec.Code != 400 {
				t.Fatalf("%s: %d, want 400", body, rec.Code)
			}
		}
	})

	t.Run("top", func(t *testing.T) {
		rec := do(h, "GET", "/api/top?period=hour&limit=1", "", "")
		var top struct {
			Period string
			Since  time.Time
			Top    []IDCount
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &top); err != nil || top.Period != "hour" || len(top.Top) != 1 ||
			top.Top[0] != (IDCount{ID: 900000000000000001, Count: 900}) || top.Since.IsZero() {
			t.Fatalf("top: %s (%v)", rec.Body, err)
		}
		for _, q := range []string{"period=week", "period=day&limit=0", "limit=x", "limit=100000"} {
			if rec := do(h, "GET", "/api/top?"+q, "", ""); rec.Code != 400 {
				t.Fatalf("%s: %d, want 400", q, rec.Code)
			}
		}
	})

	for _, p := range []string{"/healthz", "/metrics"} {
		if rec := do(h, "GET", p, "", ""); rec.Code != 200 {
			t.Fatalf("%s: %d", p, rec.Code)
		}
	}
	if rec := do(h, "GET", "/metrics", "", ""); !strings.Contains(rec.Body.String(), "detailpage_hot_set_size 2") {
		t.Fatalf("metrics: %s", rec.Body)
	}
}

// TestStateRoundTrip: pins and long-term statistics survive a restart; a
// corrupt state file is logged and ignored.
func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hot", "state.json")
	s1, h1, _ := MustService(t, func(c *Config) { c.State = path })
	do(h1, "POST", "/api/report", testToken, `{"node":"app1","interval_ms":250,"counts":{"7":50,"8":20}}`)
	do(h1, "POST", "/_admin/hot", testToken, `{"id":42,"action":"pin"}`)
	if err := s1.SaveState(); err != nil {
		t.Fatal(err)
	}
	wantTop := do(h1, "GET", "/api/top?period=day", "", "").Body.String()
	s1.Close()

	_, h2, _ := MustService(t, func(c *Config) { c.State = path })
	if got := do(h2, "GET", "/api/hot/ids", "", "").Body.String(); got != "42\n" {
		t.Fatalf("pins after restart %q", got)
	}
	if got := do(h2, "GET", "/api/top?period=day", "", "").Body.String(); got != wantTop {
		t.Fatalf("top after restart %s, want %s", got, wantTop)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("state dir holds %d files, want the state file only (no temp files left)", len(entries))
	}

	for name, content := range map[string]string{
		"garbage":     "{not json",
		"old version": `{"version":99}`,
		"bad pin":     `{"version":1,"pins":[-4]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, h, logs := MustService(t, func(c *Config) { c.State = path })
			if !strings.Contains(logs.String(), "state file ignored") {
				t.Fatalf("no log line for a corrupt state file: %s", logs)
			}
			if got := do(h, "GET", "/api/hot/ids", "", "").Body.String(); got != "" {
				t.Fatalf("hot %q from a corrupt state", got)
			}
		})
	}
}

// TestStatsPeriods: the top of the period in progress and the previous
// one merge; older periods are frozen and kept 24 hours / 7 days.
func TestStatsPeriods(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	st := NewStats(t0)
	st.add(t0, []IDCount{{ID: 1, Count: 10}, {ID: 2, Count: 5}}, nil)
	st.add(t0.Add(time.Hour), []IDCount{{ID: 2, Count: 10}, {ID: 3, Count: 1}}, nil)
	top, since := st.Top(Hour, t0.Add(time.Hour), 10)
	want := []IDCount{{ID: 2, Count: 15}, {ID: 1, Count: 10}, {ID: 3, Count: 1}}
	if fmt.Sprint(top) != fmt.Sprint(want) || !since.Equal(t0.Truncate(time.Hour)) {
		t.Fatalf("hour top %v since %s, want %v since %s", top, since, want, t0.Truncate(time.Hour))
	}
	// Two hours on, the first hour is no longer "previous".
	top, _ = st.Top(Hour, t0.Add(2*time.Hour), 10)
	if fmt.Sprint(top) != fmt.Sprint([]IDCount{{ID: 2, Count: 10}, {ID: 3, Count: 1}}) {
		t.Fatalf("hour top two hours on: %v", top)
	}
	if top, _ := st.Top(Day, t0.Add(2*time.Hour), 1); fmt.Sprint(top) != fmt.Sprint([]IDCount{{ID: 2, Count: 15}}) {
		t.Fatalf("day top %v", top)
	}
	st.Top(Hour, t0.Add(30*time.Hour), 1)
	st.Top(Day, t0.Add(30*time.Hour), 1)
	if n := len(st.hour.closed); n != 0 {
		t.Fatalf("%d closed hours kept after 30 hours, want none older than 24", n)
	}
	if n := len(st.day.closed); n != 1 {
		t.Fatalf("%d closed days, want 1", n)
	}
}

// TestTickerEvaluates: with no more reports, the service's ticker alone
// moves a cooled id out of the hot set, after the cooldown (simulated
// time, testing/synctest).
func TestTickerEvaluates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Defaults()
		d, err := NewDetector(cfg.Rule, time.Now, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		s := &Service{cfg: cfg, det: d, stats: NewStats(time.Now()), log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { s.loop(ctx); close(done) }()
		start := time.Now()
		for range 4 {
			d.Ingest(Report{Node: "app1", Interval: 250 * time.Millisecond, Counts: []IDCount{{ID: 7, Count: 200}}})
			time.Sleep(250 * time.Millisecond) // simulated time: the report period
		}
		if len(d.Snapshot().Entries) != 1 {
			t.Fatalf("not hot after a second at 800 req/s: %+v", d.Snapshot().Entries)
		}
		last := time.Now()
		for len(d.Snapshot().Entries) != 0 && time.Since(start) < time.Minute {
			time.Sleep(cfg.EvalEvery)
		}
		gone := time.Since(last)
		if gone < cfg.Rule.Cooldown || gone > cfg.Rule.Cooldown+cfg.Rule.Window+time.Second {
			t.Fatalf("left %s after the last report; want after the cooldown %s, within the window after it", gone, cfg.Rule.Cooldown)
		}
		t.Logf("left %s after the last report (cooldown %s)", gone, cfg.Rule.Cooldown)
		cancel()
		<-done
	})
}
