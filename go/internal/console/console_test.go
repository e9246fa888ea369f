package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

const testToken = "console-test-token"

func cmdEvent(name string, reqs, errs float64, open bool, p50, p99, mean float64) event {
	return event{
		"type": TypeCommand, "name": name, "group": name, "currentTime": float64(1000), "reportingHosts": float64(1),
		"requestCount": reqs, "errorCount": errs, "errorPercentage": errs / max(reqs, 1) * 100,
		"isCircuitBreakerOpen": open, "rollingCountSuccess": reqs - errs, "rollingCountFailure": errs,
		"latencyTotal_mean": mean, "latencyTotal": map[string]any{"0": 0.0, "50": p50, "99": p99, "100": p99},
		"propertyValue_metricsRollingStatisticalWindowInMilliseconds": float64(10000),
		"propertyValue_executionIsolationStrategy":                    "THREAD",
		"propertyValue_circuitBreakerForceOpen":                       false,
	}
}

// TestMerge: Turbine's aggregation, which the dashboard undoes by dividing
// by reportingHosts: counts, percentages, means, percentiles and the
// window summed; the newest time; any open circuit shows; text kept.
func TestMerge(t *testing.T) {
	a := cmdEvent("c", 100, 10, false, 2, 8, 3)
	b := cmdEvent("c", 300, 0, true, 4, 20, 5)
	b["currentTime"] = float64(2000)
	m := merge([]event{a, b})
	checks := map[string]any{
		"reportingHosts": 2.0, "requestCount": 400.0, "errorCount": 10.0, "errorPercentage": 10.0,
		"rollingCountSuccess": 390.0, "latencyTotal_mean": 8.0, "currentTime": 2000.0,
		"isCircuitBreakerOpen": true, "propertyValue_circuitBreakerForceOpen": false,
		"propertyValue_metricsRollingStatisticalWindowInMilliseconds": 20000.0,
		"propertyValue_executionIsolationStrategy":                    "THREAD", "name": "c", "type": TypeCommand,
	}
	for k, want := range checks {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	lt := m["latencyTotal"].(map[string]any)
	if lt["50"] != 6.0 || lt["99"] != 28.0 {
		t.Errorf("latencyTotal = %v, want 50: 6, 99: 28 (summed)", lt)
	}
	// The inputs are untouched (they stay the latest per host).
	if a["requestCount"] != 100.0 || a["latencyTotal"].(map[string]any)["50"] != 2.0 {
		t.Errorf("merge changed its input: %v", a)
	}
}

// TestAggregator: same-named commands of two hosts merge; a host that
// drops or goes stale leaves the aggregate.
func TestAggregator(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	agg := newAggregator(clock, 3*time.Second)
	agg.put("sync", cmdEvent("redis.write", 10, 0, false, 1, 2, 1))
	agg.put("sync2", cmdEvent("redis.write", 30, 3, false, 1, 5, 1))
	agg.put("one", cmdEvent("source.price.batch", 5, 0, false, 1, 1, 1))
	if agg.put("x", event{"type": "Other", "name": "n"}) {
		t.Error("an event of an unknown type was accepted")
	}
	sets := agg.instances()
	if len(sets) != 2 || sets[0].name != "redis.write" || strings.Join(sets[0].hosts, ",") != "sync,sync2" {
		t.Fatalf("instances = %+v", sets)
	}
	stats := commandStats(sets, map[string]map[string]cmdGauges{"sync2": {"redis.write": {state: 1, inFlight: 2, limit: 64}}})
	if len(stats) != 2 {
		t.Fatalf("stats = %+v", stats)
	}
	w := stats[0] // the open circuit first
	if w.Name != "redis.write" || w.Hosts != 2 || w.Rate != 4 || w.ErrorPct != 7.5 || *w.P99 != 5 || w.Circuit != "open" || *w.InFlight != 2 || *w.Limit != 64 {
		t.Errorf("redis.write = %+v (p99 %v)", w, *w.P99)
	}
	if stats[1].InFlight != nil || stats[1].Circuit != "closed" {
		t.Errorf("source.price.batch = %+v: want unknown bulkhead, closed", stats[1])
	}

	agg.dropHost("sync2")
	if sets := agg.instances(); sets[0].name != "redis.write" || len(sets[0].hosts) != 1 {
		t.Errorf("after dropping sync2: %+v", sets)
	}
	mu.Lock()
	now = now.Add(4 * time.Second)
	mu.Unlock()
	agg.put("one", cmdEvent("source.price.batch", 5, 0, false, 1, 1, 1))
	if sets := agg.instances(); len(sets) != 1 || sets[0].name != "source.price.batch" {
		t.Errorf("after sync went stale: %+v", sets)
	}
}

func TestSortWorstFirst(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cs := []CommandStat{
		{Name: "a", Circuit: "closed", P99: f(1)},
		{Name: "b", Circuit: "closed", ErrorPct: 5, P99: f(1)},
		{Name: "c", Circuit: "open"},
		{Name: "d", Circuit: "closed", P99: f(9)},
	}
	sortWorstFirst(cs)
	var got []string
	for _, c := range cs {
		got = append(got, c.Name)
	}
	if strings.Join(got, "") != "cbda" {
		t.Errorf("order %v, want c b d a", got)
	}
}

// TestHubSlowClient: a client that never reads loses frames; the others
// and the publisher never wait for it.
func TestHubSlowClient(t *testing.T) {
	h := newHub()
	slow := h.subscribe()
	fast := h.subscribe()
	for i := range 100 {
		h.publish([]byte{byte(i)})
		<-fast
	}
	if len(slow) != cap(slow) || h.dropped != int64(100-cap(slow)) {
		t.Errorf("slow client holds %d frames, dropped %d", len(slow), h.dropped)
	}
}

func newTestService(t *testing.T, cfg Config) (*Service, string) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	cfg.AdminToken = testToken
	if cfg.Poll == 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	cfg.SessionIdle, cfg.Timeout = time.Hour, time.Second
	s, err := Open(cfg, slog.New(slog.DiscardHandler), httpapi.Telemetry{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		s.Close()
	})
	return s, "http://" + s.Addr()
}

func do(t *testing.T, method, url, body string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestAuth: the access rules of acceptance 5, in process: 401 without a
// session or bearer; login sets an HttpOnly SameSite=Strict cookie; a
// state-changing request needs the CSRF token with a session (403, the
// handler does not run) and not with a bearer token; wrong tokens 401.
func TestAuth(t *testing.T) {
	var degrades sync.Map
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			w.WriteHeader(401)
			return
		}
		if r.URL.Path == "/_admin/degrade" {
			b, _ := io.ReadAll(r.Body)
			degrades.Store(string(b), true)
		}
		io.WriteString(w, `{}`)
	}))
	defer app.Close()
	_, base := newTestService(t, Config{Apps: []Target{{"app1", app.URL}}, Hot: []Target{{"hot", app.URL}}})

	for _, p := range []string{"/api/overview", "/api/session", "/api/stream", "/turbine.stream"} {
		if r := do(t, "GET", base+p, "", nil); r.StatusCode != 401 {
			t.Errorf("GET %s without a session: %d, want 401", p, r.StatusCode)
		}
		if r := do(t, "GET", base+p, "", map[string]string{"Authorization": "Bearer nope"}); r.StatusCode != 401 {
			t.Errorf("GET %s with a wrong bearer: %d, want 401", p, r.StatusCode)
		}
	}
	for _, p := range []string{"/api/degrade", "/api/hot", "/api/purge", "/logout"} {
		if r := do(t, "POST", base+p, `{}`, nil); r.StatusCode != 401 {
			t.Errorf("POST %s without a session: %d, want 401", p, r.StatusCode)
		}
	}
	if r := do(t, "GET", base+"/", "", nil); r.StatusCode != 200 {
		t.Errorf("GET / = %d, want 200 (public)", r.StatusCode)
	}
	if r := do(t, "POST", base+"/login", `{"token":"wrong"}`, map[string]string{"Content-Type": "application/json"}); r.StatusCode != 401 {
		t.Errorf("login with a wrong token: %d", r.StatusCode)
	}
	// A form login: 303 to / with the cookie.
	r := do(t, "POST", base+"/login", "token="+testToken, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.StatusCode != 303 || r.Header.Get("Location") != "/" {
		t.Errorf("form login: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = do(t, "POST", base+"/login", `{"token":"`+testToken+`"}`, map[string]string{"Content-Type": "application/json"})
	if r.StatusCode != 200 {
		t.Fatalf("json login: %d", r.StatusCode)
	}
	var login struct{ CSRF string }
	json.NewDecoder(r.Body).Decode(&login)
	setCookie := r.Header.Get("Set-Cookie")
	for _, want := range []string{CookieName + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("Set-Cookie %q lacks %q", setCookie, want)
		}
	}
	if strings.Contains(setCookie, testToken) || login.CSRF == "" {
		t.Errorf("Set-Cookie %q / csrf %q", setCookie, login.CSRF)
	}
	cookie := strings.SplitN(setCookie, ";", 2)[0]
	sess := map[string]string{"Cookie": cookie}
	if r := do(t, "GET", base+"/api/session", "", sess); r.StatusCode != 200 {
		t.Errorf("GET /api/session with the session: %d", r.StatusCode)
	}
	body := `{"link":"replica","mode":"force-degraded"}`
	if r := do(t, "POST", base+"/api/degrade", body, sess); r.StatusCode != 403 {
		t.Errorf("POST /api/degrade without CSRF: %d, want 403", r.StatusCode)
	}
	if r := do(t, "POST", base+"/api/degrade", body, map[string]string{"Cookie": cookie, CSRFHeader: "wrong"}); r.StatusCode != 403 {
		t.Errorf("POST /api/degrade with a wrong CSRF token: %d, want 403", r.StatusCode)
	}
	if _, ok := degrades.Load(body); ok {
		t.Fatal("a refused request reached the app node")
	}
	if r := do(t, "POST", base+"/api/degrade", body, map[string]string{"Cookie": cookie, CSRFHeader: login.CSRF}); r.StatusCode != 200 {
		t.Errorf("POST /api/degrade with session and CSRF: %d", r.StatusCode)
	}
	if _, ok := degrades.Load(body); !ok {
		t.Error("the degrade did not reach the app node")
	}
	auto := `{"link":"replica","mode":"auto"}`
	r = do(t, "POST", base+"/api/degrade", auto, map[string]string{"Authorization": "Bearer " + testToken})
	var res struct{ Results []Result }
	json.NewDecoder(r.Body).Decode(&res)
	if r.StatusCode != 200 || len(res.Results) != 1 || !res.Results[0].OK || res.Results[0].Target != "app1" {
		t.Errorf("POST /api/degrade with bearer: %d %+v", r.StatusCode, res)
	}
	// Bad input: 400, nothing sent.
	bearer := map[string]string{"Authorization": "Bearer " + testToken}
	for path, bad := range map[string]string{
		"/api/degrade": `{"link":"replica","mode":"off"}`, "/api/hot": `{"id":0,"action":"pin"}`,
		"/api/purge": `{"ids":[]}`, "/api/purge ": `{"ids":[1],"x":1}`,
	} {
		if r := do(t, "POST", base+strings.TrimSpace(path), bad, bearer); r.StatusCode != 400 {
			t.Errorf("POST %s %s: %d, want 400", path, bad, r.StatusCode)
		}
	}
	// Logout needs the CSRF token too; after it the session is gone.
	if r := do(t, "POST", base+"/logout", "", sess); r.StatusCode != 403 {
		t.Errorf("logout without CSRF: %d", r.StatusCode)
	}
	if r := do(t, "POST", base+"/logout", "", map[string]string{"Cookie": cookie, CSRFHeader: login.CSRF}); r.StatusCode != 204 {
		t.Errorf("logout: %d", r.StatusCode)
	}
	if r := do(t, "GET", base+"/api/session", "", sess); r.StatusCode != 401 {
		t.Errorf("session after logout: %d, want 401", r.StatusCode)
	}
}

// TestSessionIdle: a session unused longer than SessionIdle is gone.
func TestSessionIdle(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSessions(time.Hour, func() time.Time { return now })
	id, _, err := s.create()
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Minute)
	if _, ok := s.get(id); !ok {
		t.Fatal("session gone before its idle time")
	}
	now = now.Add(61 * time.Minute)
	if _, ok := s.get(id); ok {
		t.Fatal("session alive after an hour unused")
	}
}

// TestFollowerReconnects: a source whose stream breaks is dropped from the
// aggregate and followed again with backoff; the turbine stream goes on.
func TestFollowerReconnects(t *testing.T) {
	var mu sync.Mutex
	up := true
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := up
		mu.Unlock()
		if !ok {
			w.WriteHeader(503)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		b, _ := json.Marshal(cmdEvent("x.cmd", 10, 0, false, 1, 2, 1))
		for {
			mu.Lock()
			ok := up
			mu.Unlock()
			if !ok {
				return // the stream ends: the follower reconnects, and gets 503s
			}
			w.Write([]byte("data:" + string(b) + "\n\n"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(src.Close) // after the console stopped (cleanups run last first): its stream holds a handler
	s, base := newTestService(t, Config{Services: []Target{{"svc", src.URL}}})
	testutil.Eventually(t, 5*time.Second, func() error {
		if sets := s.agg.instances(); len(sets) != 1 {
			return errNotYet
		}
		return nil
	})
	mu.Lock()
	up = false
	mu.Unlock()
	testutil.Eventually(t, 5*time.Second, func() error {
		if s.fol.state("svc").Connected || len(s.agg.instances()) != 0 {
			return errNotYet
		}
		return nil
	})
	mu.Lock()
	up = true
	mu.Unlock()
	// The turbine stream carries the command again.
	resp := do(t, "GET", base+"/turbine.stream", "", map[string]string{"Authorization": "Bearer " + testToken})
	sc := bufio.NewScanner(resp.Body)
	deadline := time.Now().Add(10 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if strings.HasPrefix(sc.Text(), "data: ") && strings.Contains(sc.Text(), `"x.cmd"`) {
			return
		}
	}
	t.Fatal("the turbine stream never carried the reconnected source's command")
}

var errNotYet = &notYet{}

type notYet struct{}

func (*notYet) Error() string { return "not yet" }
