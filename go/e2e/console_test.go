package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/console"
	"github.com/detailpage/detailpage/go/internal/syncer"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// The operator console (issue 14, docs/console.md), through its HTTP API:
// acceptance 5 (access rules), 6 (/turbine.stream as the Hystrix
// dashboard reads it, across two sync instances) and 3 (force-degrade
// the replica link on every app node). The page itself is tested in a
// browser by console_browser_test.go.

func consoleURL(t *topology.Topology) string { return topology.URL(t.Config().Ports.Console) }

// consoleDo sends one request to the console; hdr adds headers.
func consoleDo(tb testing.TB, t *topology.Topology, method, path, body string, hdr map[string]string) (int, http.Header, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, consoleURL(t)+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20)) // streams: what came before the deadline
	if err != nil && !errors.Is(err, context.DeadlineExceeded) && resp.StatusCode == http.StatusOK && !strings.HasSuffix(path, "stream") {
		tb.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

var bearer = map[string]string{"Authorization": "Bearer " + token}

// MustConsoleLogin logs in with JSON and returns the session cookie
// ("name=value") and its CSRF token.
func MustConsoleLogin(tb testing.TB, t *topology.Topology) (cookie, csrf string) {
	tb.Helper()
	code, hdr, body := consoleDo(tb, t, http.MethodPost, "/login", `{"token":"`+token+`"}`, nil)
	if code != http.StatusOK {
		tb.Fatalf("login: %d %s", code, body)
	}
	var in struct{ CSRF string }
	if err := json.Unmarshal(body, &in); err != nil || in.CSRF == "" {
		tb.Fatalf("login: %s: %v", body, err)
	}
	sc := hdr.Get("Set-Cookie")
	for _, want := range []string{console.CookieName + "=", "HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, want) {
			tb.Errorf("login: Set-Cookie %q lacks %q", sc, want)
		}
	}
	return strings.SplitN(sc, ";", 2)[0], in.CSRF
}

// MustOverview reads the console's snapshot with the bearer token.
func MustOverview(tb testing.TB, t *topology.Topology) console.Snapshot {
	tb.Helper()
	snap, err := overview(t)
	if err != nil {
		tb.Fatal(err)
	}
	return snap
}

func overview(t *topology.Topology) (console.Snapshot, error) {
	var snap console.Snapshot
	return snap, getAdminJSON(consoleURL(t)+"/api/overview", &snap)
}

// Acceptance 5: without a session or bearer token every API and stream
// answers 401; with a session but without the CSRF token a state-changing
// request answers 403 and changes nothing. The token appears in no log
// line of the console.
func TestConsoleAccess(t *testing.T) {
	topo := shared
	gets := []string{"/api/overview", "/api/session", "/api/stream", "/turbine.stream"}
	posts := map[string]string{
		"/api/degrade": `{"link":"replica","mode":"force-degraded"}`,
		"/api/hot":     `{"id":77,"action":"pin"}`,
		"/api/purge":   `{"ids":[1]}`,
		"/logout":      ``,
	}
	for _, hdr := range []map[string]string{nil, {"Authorization": "Bearer wrong-token"}, {"Cookie": console.CookieName + "=not-a-session"}} {
		for _, p := range gets {
			if code, _, body := consoleDo(t, topo, http.MethodGet, p, "", hdr); code != http.StatusUnauthorized {
				t.Errorf("GET %s with %v: %d %s, want 401", p, hdr, code, body)
			}
		}
		for p, body := range posts {
			if code, _, b := consoleDo(t, topo, http.MethodPost, p, body, hdr); code != http.StatusUnauthorized {
				t.Errorf("POST %s with %v: %d %s, want 401", p, hdr, code, b)
			}
		}
	}
	if code, _, body := consoleDo(t, topo, http.MethodPost, "/login", `{"token":"wrong-token"}`, nil); code != http.StatusUnauthorized {
		t.Errorf("login with a wrong token: %d %s", code, body)
	}
	// The page itself is public (it shows the login form).
	if code, _, _ := consoleDo(t, topo, http.MethodGet, "/", "", nil); code != http.StatusOK {
		t.Errorf("GET /: %d", code)
	}

	cookie, csrf := MustConsoleLogin(t, topo)
	sess := map[string]string{"Cookie": cookie}
	if code, _, body := consoleDo(t, topo, http.MethodGet, "/api/session", "", sess); code != http.StatusOK || !strings.Contains(string(body), csrf) {
		t.Errorf("GET /api/session with the session: %d %s", code, body)
	}
	if code, _, _ := consoleDo(t, topo, http.MethodGet, "/api/overview", "", sess); code != http.StatusOK {
		t.Errorf("GET /api/overview with the session: %d", code)
	}
	for _, hdr := range []map[string]string{sess, {"Cookie": cookie, console.CSRFHeader: "wrong"}} {
		for p, body := range posts {
			if code, _, b := consoleDo(t, topo, http.MethodPost, p, body, hdr); code != http.StatusForbidden {
				t.Errorf("POST %s with the session, CSRF %q: %d %s, want 403", p, hdr[console.CSRFHeader], code, b)
			}
		}
	}
	// Nothing changed: both app nodes' replica links on auto, id 77 not
	// pinned, the session still alive (logout was refused).
	for _, node := range []string{topology.App1, topology.App2} {
		if m := MustStatus(t, topo, node).Links["replica"].Mode; m != "auto" {
			t.Errorf("%s: replica link mode %q after refused requests, want auto", node, m)
		}
	}
	var hot struct {
		Hot []struct {
			ID     int64
			Pinned bool
		}
	}
	if err := getAdminJSON(topology.URL(topo.Config().Ports.Hot)+"/api/hot", &hot); err != nil {
		t.Fatal(err)
	}
	for _, e := range hot.Hot {
		if e.ID == 77 && e.Pinned {
			t.Error("id 77 pinned by a refused request")
		}
	}
	if code, _, _ := consoleDo(t, topo, http.MethodGet, "/api/session", "", sess); code != http.StatusOK {
		t.Errorf("session gone after a refused logout: %d", code)
	}
	// Logout with the CSRF token ends the session.
	if code, _, b := consoleDo(t, topo, http.MethodPost, "/logout", "", map[string]string{"Cookie": cookie, console.CSRFHeader: csrf}); code != http.StatusNoContent {
		t.Errorf("logout: %d %s", code, b)
	}
	if code, _, _ := consoleDo(t, topo, http.MethodGet, "/api/session", "", sess); code != http.StatusUnauthorized {
		t.Errorf("session after logout: %d, want 401", code)
	}
	if log := MustReadFile(t, topo.Component(topology.Console).LogPath()); strings.Contains(log, token) {
		t.Error("the admin token appears in the console's log")
	}
}

// The overview shows every Go service's commands, both app nodes' links
// and caches, the dist tier's nodes and the pipeline's figures.
func TestConsoleOverview(t *testing.T) {
	topo := shared
	testutil.Eventually(t, 15*time.Second, func() error {
		snap, err := overview(topo)
		if err != nil {
			return err
		}
		for _, s := range snap.Services {
			if !s.OK || s.Stream != "connected" {
				return fmt.Errorf("service %+v", s)
			}
		}
		if len(snap.AppNodes) != 2 {
			return fmt.Errorf("app nodes %+v", snap.AppNodes)
		}
		for _, n := range snap.AppNodes {
			if !n.OK || n.Links["replica"] == nil || n.Links["direct"] == nil || len(n.Cache) == 0 {
				return fmt.Errorf("app node %+v", n)
			}
		}
		if !snap.Dist.OK || len(snap.Dist.Nodes) != 2 {
			return fmt.Errorf("dist %+v", snap.Dist)
		}
		if !snap.Hot.OK {
			return fmt.Errorf("hot %+v", snap.Hot)
		}
		if snap.Pipeline.OutboxBacklog == nil || snap.Pipeline.DLQ == nil || len(snap.Pipeline.ConsumerLag) == 0 {
			return fmt.Errorf("pipeline %+v", snap.Pipeline)
		}
		services := map[string]bool{}
		for _, c := range snap.Commands {
			for _, s := range c.Services {
				services[s] = true
			}
			if c.Circuit != "open" && c.Circuit != "closed" {
				return fmt.Errorf("command %+v", c)
			}
		}
		for _, want := range []string{"source", "sync", "direct", "one"} {
			if !services[want] {
				return fmt.Errorf("no command of %s in %d commands", want, len(snap.Commands))
			}
		}
		return nil
	})
	// The raw JSON has every field of the contract, null where unknown.
	_, _, body := consoleDo(t, topo, http.MethodGet, "/api/overview", "", bearer)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"at", "commands", "app_nodes", "dist", "hot", "pipeline", "services"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("overview lacks %q", k)
		}
	}
	t.Logf("overview (%d bytes), commands aside: app_nodes %s dist %s hot %s pipeline %s", len(body), raw["app_nodes"], raw["dist"], raw["hot"], raw["pipeline"])
	// /api/stream sends a snapshot at once as event "overview".
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	frames := MustSSE(t, ctx, consoleURL(topo)+"/api/stream")
	f := <-frames
	if f.event != "overview" || !json.Valid([]byte(f.data)) {
		t.Errorf("first frame of /api/stream: event %q, %d bytes of data", f.event, len(f.data))
	}
}

// consoleCPU is the console process's CPU seconds so far (its
// process_cpu_seconds_total).
func consoleCPU(tb testing.TB, t *topology.Topology) float64 {
	tb.Helper()
	resp, err := client.Get(consoleURL(t) + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	tb.Fatal("no process_cpu_seconds_total in the console's /metrics")
	return 0
}

type sseFrame struct{ event, data string }

// MustSSE opens an SSE stream with the bearer token and returns its frames
// until ctx ends.
func MustSSE(tb testing.TB, ctx context.Context, url string) <-chan sseFrame {
	tb.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		tb.Fatalf("GET %s: %s %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseFrame, 1024)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if f.data != "" {
					select {
					case out <- f:
					case <-ctx.Done():
						return
					}
				}
				f = sseFrame{}
			case strings.HasPrefix(line, "event:"):
				f.event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				f.data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
			}
		}
	}()
	return out
}

// The fields the Hystrix dashboard reads (hystrixCommand.js validateData,
// which throws on any missing one, and hystrixThreadPool.js).
var (
	dashboardCommandFields = []string{
		"reportingHosts", "type", "name", "group", "isCircuitBreakerOpen", "errorPercentage", "errorCount", "requestCount",
		"rollingCountCollapsedRequests", "rollingCountExceptionsThrown", "rollingCountFailure", "rollingCountFallbackFailure",
		"rollingCountFallbackRejection", "rollingCountFallbackSuccess", "rollingCountResponsesFromCache",
		"rollingCountSemaphoreRejected", "rollingCountShortCircuited", "rollingCountSuccess", "rollingCountThreadPoolRejected",
		"rollingCountTimeout", "rollingCountBadRequests", "currentConcurrentExecutionCount", "latencyExecute_mean", "latencyExecute",
		"latencyTotal_mean", "latencyTotal", "propertyValue_circuitBreakerRequestVolumeThreshold",
		"propertyValue_circuitBreakerSleepWindowInMilliseconds", "propertyValue_circuitBreakerErrorThresholdPercentage",
		"propertyValue_circuitBreakerForceOpen", "propertyValue_executionIsolationStrategy",
		"propertyValue_executionIsolationThreadTimeoutInMilliseconds", "propertyValue_executionIsolationThreadInterruptOnTimeout",
		"propertyValue_executionIsolationSemaphoreMaxConcurrentRequests", "propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests",
		"propertyValue_requestCacheEnabled", "propertyValue_requestLogEnabled", "propertyValue_metricsRollingStatisticalWindowInMilliseconds",
	}
	dashboardPoolFields = []string{
		"reportingHosts", "type", "name", "currentActiveCount", "currentCompletedTaskCount", "currentCorePoolSize",
		"currentLargestPoolSize", "currentMaximumPoolSize", "currentPoolSize", "currentQueueSize", "currentTaskCount",
		"rollingCountThreadsExecuted", "rollingMaxActiveThreads", "propertyValue_queueSizeRejectionThreshold",
		"propertyValue_metricsRollingStatisticalWindowInMilliseconds",
	}
	dashboardFlags = map[string]bool{"isCircuitBreakerOpen": true, "propertyValue_circuitBreakerForceOpen": true,
		"propertyValue_executionIsolationThreadInterruptOnTimeout": true, "propertyValue_requestCacheEnabled": true,
		"propertyValue_requestLogEnabled": true}
	percentiles = []string{"0", "25", "50", "75", "90", "95", "99", "99.5", "100"}
)

// checkDashboardEvent checks one event of /turbine.stream the way the
// Hystrix dashboard reads it: every field present with its type, and the
// dashboard's per-host arithmetic (a division by reportingHosts) finite.
func checkDashboardEvent(ev map[string]any) error {
	typ, _ := ev["type"].(string)
	fields := dashboardCommandFields
	switch typ {
	case console.TypeCommand:
	case console.TypeThreadPool:
		fields = dashboardPoolFields
	default:
		return fmt.Errorf("type %q", typ)
	}
	for _, f := range fields {
		v, ok := ev[f]
		if !ok || v == nil {
			return fmt.Errorf("%s %v: no %s", typ, ev["name"], f)
		}
		switch {
		case f == "type" || f == "name" || f == "group" || f == "propertyValue_executionIsolationStrategy":
			if _, ok := v.(string); !ok {
				return fmt.Errorf("%s %v: %s = %v, want text", typ, ev["name"], f, v)
			}
		case f == "latencyExecute" || f == "latencyTotal":
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("%s %v: %s = %v, want percentiles", typ, ev["name"], f, v)
			}
			for _, p := range percentiles {
				if _, ok := m[p].(float64); !ok {
					return fmt.Errorf("%s %v: %s has no percentile %s", typ, ev["name"], f, p)
				}
			}
		case dashboardFlags[f]:
			if _, ok := v.(bool); !ok {
				return fmt.Errorf("%s %v: %s = %v, want a flag", typ, ev["name"], f, v)
			}
		default:
			if _, ok := v.(float64); !ok {
				return fmt.Errorf("%s %v: %s = %v, want a number", typ, ev["name"], f, v)
			}
		}
	}
	hosts := ev["reportingHosts"].(float64)
	window := ev["propertyValue_metricsRollingStatisticalWindowInMilliseconds"].(float64) / hosts // convertAvg
	if hosts < 1 || window <= 0 {
		return fmt.Errorf("%s %v: reportingHosts %v, per-host window %v ms", typ, ev["name"], hosts, window)
	}
	return nil
}

// Acceptance 6: /turbine.stream parsed as the Hystrix dashboard would:
// every event has the fields the dashboard reads, and the commands of the
// two sync instances are aggregated (reportingHosts 2, the summed window
// the dashboard divides back to 10 s). A sync instance that stops is
// dropped from the aggregate, the stream goes on, and it is back once the
// instance is.
func TestConsoleTurbineTwoSyncInstances(t *testing.T) {
	topo := MustTopology(t, topology.Config{SyncInstances: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cpu0, wall0 := consoleCPU(t, topo), time.Now()
	defer func() {
		if t.Failed() {
			return
		}
		cpu := consoleCPU(t, topo) - cpu0
		wall := time.Since(wall0)
		t.Logf("console CPU while following 6 services' streams, polling 6 /metrics, 2 app nodes, dist and hot every second and streaming to one client: %.2f s in %s (%.1f%% of one core)",
			cpu, wall.Round(time.Second), 100*cpu/wall.Seconds())
	}()
	frames := MustSSE(t, ctx, consoleURL(topo)+"/turbine.stream")

	// hosts reads events until the sync-only command kafka.produce shows
	// want reporting hosts; every event on the way must satisfy the
	// dashboard.
	hosts := func(want float64, within time.Duration) map[string]any {
		t.Helper()
		deadline := time.After(within)
		seen := 0
		for {
			select {
			case <-deadline:
				t.Fatalf("no %s with reportingHosts %v within %s (%d events read)", syncer.CmdKafkaProduce, want, within, seen)
			case f, ok := <-frames:
				if !ok {
					t.Fatal("/turbine.stream ended")
				}
				var ev map[string]any
				dec := json.NewDecoder(bytes.NewReader([]byte(f.data)))
				if err := dec.Decode(&ev); err != nil {
					t.Fatalf("event %q: %v", f.data, err)
				}
				seen++
				if err := checkDashboardEvent(ev); err != nil {
					t.Fatal(err)
				}
				if ev["type"] == console.TypeCommand && ev["name"] == syncer.CmdKafkaProduce && ev["reportingHosts"] == want {
					return ev
				}
			}
		}
	}
	ev := hosts(2, 15*time.Second)
	if w := ev["propertyValue_metricsRollingStatisticalWindowInMilliseconds"].(float64); w != 20000 {
		t.Errorf("%s: summed window %v ms, want 20000 (two instances of 10 s)", syncer.CmdKafkaProduce, w)
	}
	if g := ev["group"]; g != syncer.CmdKafkaProduce {
		t.Errorf("group %v", g)
	}

	// Stop sync2: its commands leave the aggregate, the stream goes on.
	stopped := time.Now()
	if err := topo.Component(topology.Sync2).Stop(); err != nil {
		t.Fatal(err)
	}
	hosts(1, 15*time.Second)
	t.Logf("sync2 stopping: out of the aggregate %s after the stop began", time.Since(stopped).Round(10*time.Millisecond))
	testutil.Eventually(t, 10*time.Second, func() error {
		snap, err := overview(topo)
		if err != nil {
			return err
		}
		for _, s := range snap.Services {
			if s.Name == "sync2" && s.Stream == "retrying" && !s.OK {
				return nil
			}
		}
		return fmt.Errorf("services %+v", snap.Services)
	})
	MustStart(t, topo, topology.Sync2)
	back := time.Now()
	hosts(2, 30*time.Second)
	t.Logf("sync2 back: in the aggregate again after %s", time.Since(back).Round(10*time.Millisecond))
}

// Acceptance 3 through the API: force-degrade the replica link on every
// app node at once; each node then serves from direct (X-Cache), the
// overview shows the forced state; back to auto, pages from Redis again.
func TestConsoleForceDegradeEveryNode(t *testing.T) {
	topo := shared
	nodes := []string{topology.App1, topology.App2}
	cookie, csrf := MustConsoleLogin(t, topo)
	sess := map[string]string{"Cookie": cookie, console.CSRFHeader: csrf}
	set := func(mode string) {
		t.Helper()
		code, _, body := consoleDo(t, topo, http.MethodPost, "/api/degrade", `{"link":"replica","mode":"`+mode+`"}`, sess)
		var res struct{ Results []console.Result }
		if err := json.Unmarshal(body, &res); err != nil || code != http.StatusOK || len(res.Results) != len(nodes) {
			t.Fatalf("degrade %s: %d %s", mode, code, body)
		}
		for i, r := range res.Results {
			if r.Target != nodes[i] || !r.OK || r.Status != http.StatusOK || r.Error != "" {
				t.Errorf("degrade %s: result %+v", mode, r)
			}
		}
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			MustSetMode(t, topo, n, "replica", "auto")
		}
	})
	set("force-degraded")
	for _, n := range nodes {
		for _, id := range coldIDs(t, 10) {
			got, err := getPageWith(freshConns, appURL(topo, n)+"/item/"+id+".html")
			if err != nil {
				t.Fatal(err)
			}
			if got.status != http.StatusOK || got.cache != "direct" {
				t.Fatalf("%s id %s with replica force-degraded from the console: %d X-Cache %q, want 200 from direct", n, id, got.status, got.cache)
			}
		}
	}
	linkIs := func(mode, state string) error {
		snap, err := overview(topo)
		if err != nil {
			return err
		}
		for _, n := range snap.AppNodes {
			l := n.Links["replica"]
			if l == nil || l.Mode != mode || l.State != state {
				return fmt.Errorf("%s replica link %+v, want %s/%s", n.Name, l, mode, state)
			}
		}
		return nil
	}
	testutil.Eventually(t, 5*time.Second, func() error { return linkIs("force-degraded", "degraded") })
	set("auto")
	testutil.Eventually(t, 5*time.Second, func() error { return linkIs("auto", "normal") })
	for _, n := range nodes {
		if got := MustGetPage(t, appURL(topo, n)+"/item/"+coldIDs(t, 1)[0]+".html"); got.cache != "redis" {
			t.Errorf("%s back to auto: X-Cache %q, want redis", n, got.cache)
		}
	}
}

// The other controls through the API: pin and unpin a hot id on every hot
// service instance (the overview shows it), purge ids on every app node.
func TestConsolePinAndPurge(t *testing.T) {
	topo := shared
	const id = 6143 // used by no other test: a pinned id is warmed on every node
	control := func(path, body string, targets ...string) {
		t.Helper()
		code, _, b := consoleDo(t, topo, http.MethodPost, path, body, bearer)
		var res struct{ Results []console.Result }
		if err := json.Unmarshal(b, &res); err != nil || code != http.StatusOK || len(res.Results) != len(targets) {
			t.Fatalf("POST %s %s: %d %s", path, body, code, b)
		}
		for i, r := range res.Results {
			if r.Target != targets[i] || !r.OK {
				t.Errorf("POST %s %s: result %+v, want %s ok", path, body, r, targets[i])
			}
		}
	}
	pinned := func(want bool) func() error {
		return func() error {
			snap, err := overview(topo)
			if err != nil {
				return err
			}
			for _, e := range snap.Hot.IDs {
				if e.ID == id && e.Pinned {
					if want {
						return nil
					}
					return fmt.Errorf("id %d still pinned", id)
				}
			}
			if want {
				return fmt.Errorf("id %d not pinned in %+v", id, snap.Hot)
			}
			return nil
		}
	}
	t.Cleanup(func() {
		consoleDo(t, topo, http.MethodPost, "/api/hot", fmt.Sprintf(`{"id":%d,"action":"unpin"}`, id), bearer)
	})
	control("/api/hot", fmt.Sprintf(`{"id":%d,"action":"pin"}`, id), "hot")
	testutil.Eventually(t, 5*time.Second, pinned(true))
	control("/api/hot", fmt.Sprintf(`{"id":%d,"action":"unpin"}`, id), "hot")
	testutil.Eventually(t, 5*time.Second, pinned(false))
	control("/api/purge", `{"ids":[1,2,3]}`, topology.App1, topology.App2)
	if code, _, b := consoleDo(t, topo, http.MethodPost, "/api/purge", `{"ids":[0]}`, bearer); code != http.StatusBadRequest {
		t.Errorf("purge id 0: %d %s, want 400", code, b)
	}
}
