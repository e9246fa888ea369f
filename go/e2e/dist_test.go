package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// distNode is one app node in the dist tier's GET /_admin/status.
type distNode struct {
	Node       string   `json:"node"`
	State      string   `json:"state"`
	Healthy    bool     `json:"healthy"`
	LastProbe  *float64 `json:"last_probe"`
	Failures   int      `json:"failures"`
	Probes     int      `json:"probes"`
	LastError  *string  `json:"last_error"`
	LastProbeA *int     `json:"last_probe_age_ms"`
}

func distAdminURL(t *topology.Topology) string {
	return topology.URL(t.Config().Ports.DistAdmin) + "/_admin/status"
}

// distStatus reads the dist tier's view of the app nodes, by address.
func distStatus(t *topology.Topology) (map[string]distNode, error) {
	var doc struct {
		Nodes []distNode `json:"nodes"`
	}
	if err := getAdminJSON(distAdminURL(t), &doc); err != nil {
		return nil, err
	}
	m := map[string]distNode{}
	for _, n := range doc.Nodes {
		m[n.Node] = n
	}
	return m, nil
}

// waitNodeState polls the dist admin until every named app node has state.
func waitNodeState(tb testing.TB, t *topology.Topology, state string, timeout time.Duration, names ...string) {
	tb.Helper()
	testutil.Eventually(tb, timeout, func() error {
		st, err := distStatus(t)
		if err != nil {
			return err
		}
		for _, name := range names {
			addr := t.Component(name).Addr()
			if got := st[addr].State; got != state {
				return fmt.Errorf("%s (%s) is %q, want %q", name, addr, got, state)
			}
		}
		return nil
	})
}

// MustOwners asks the dist tier for ids 1..n once and returns which app
// node served each.
func MustOwners(tb testing.TB, t *topology.Topology, n int) map[int64]string {
	tb.Helper()
	owners := map[int64]string{}
	for id := int64(1); id <= int64(n); id++ {
		p := MustGetPage(tb, pageURL(t, strconv.FormatInt(id, 10)))
		if p.status != http.StatusOK {
			tb.Fatalf("id %d: status %d", id, p.status)
		}
		owners[id] = p.servedBy
	}
	return owners
}

// latencies summarises results: count, p99 and max, from scheduled time.
func latencies(rs []loadgen.Result) (n int, p99, maxLat time.Duration) {
	r := loadgen.Report{Results: rs}
	lat := r.Latencies()
	return len(lat), loadgen.Percentile(lat, 0.99), loadgen.Percentile(lat, 1)
}

// hungRun is an open-loop page load over ids seen before with a fault
// injected one second in; it returns the results, when the fault started
// and when the dist admin showed every node in down as down (both on the
// load's clock).
func hungRun(tb testing.TB, t *topology.Topology, ids int, down ...string) (rs []loadgen.Result, faultAt, detectedAt time.Duration) {
	tb.Helper()
	const (
		rate = 200
		dur  = 5 * time.Second
	)
	url := func(id int64) string { return pageURL(t, strconv.FormatInt(id, 10)) }
	var next int64
	nextID := func() int64 { next = next%int64(ids) + 1; return next }
	done := make(chan []loadgen.Result, 1)
	start := time.Now()
	go func() { done <- loadgen.Run(tb.Context(), loadgen.NewClient(), rate, dur, url, nextID).Results }()
	time.Sleep(time.Second) // pacing: the fault lands one second into the load, not a wait for a condition
	faultAt = time.Since(start)
	for _, name := range down {
		if err := t.Component(name).Pause(); err != nil {
			tb.Errorf("pause %s: %v", name, err)
		}
	}
	waitNodeState(tb, t, "down", 3*time.Second, down...)
	detectedAt = time.Since(start)
	return <-done, faultAt, detectedAt
}

// One app node hung (SIGSTOP: the kernel still accepts its connections)
// under open-loop load: once the dist tier's prober marks it down its ids
// are served by the other node with no wait, and requests caught in flight
// wait at most a short timeout. After SIGCONT the ids move back.
func TestHungAppNodeShortWait(t *testing.T) {
	const ids = 200
	app1 := shared.Component(topology.App1)
	t.Cleanup(func() {
		if err := app1.Resume(); err != nil {
			t.Errorf("resume app1: %v", err)
		}
	})
	waitNodeState(t, shared, "up", 5*time.Second, topology.App1, topology.App2)

	owners := MustOwners(t, shared, ids)
	var mine []int64 // app1's ids
	for id, node := range owners {
		if node == topology.App1 {
			mine = append(mine, id)
		}
	}
	if len(mine) == 0 || len(mine) == ids {
		t.Fatalf("app1 serves %d of %d ids: want both nodes to own some", len(mine), ids)
	}

	rs, faultAt, detectedAt := hungRun(t, shared, ids, topology.App1)
	t.Logf("app1 hung at +%s, marked down by the dist tier at +%s (%s later)",
		faultAt.Round(time.Millisecond), detectedAt.Round(time.Millisecond), (detectedAt - faultAt).Round(time.Millisecond))
	t.Logf("whole run: %s", loadgen.Report{Rate: 200, Results: rs}.Summary())

	var before, window, after []loadgen.Result
	for _, r := range rs {
		if r.Status != http.StatusOK {
			t.Errorf("request for id %d at +%s: status %d, want 200", r.ID, r.At.Round(time.Millisecond), r.Status)
		}
		switch {
		case r.At < faultAt:
			before = append(before, r)
		case r.At < detectedAt:
			window = append(window, r)
		default:
			after = append(after, r)
		}
	}
	n, p99, maxLat := latencies(before)
	t.Logf("before the hang:           %d requests, p99 %s, max %s", n, p99, maxLat)
	n, p99, maxLat = latencies(window)
	t.Logf("hung, not yet marked down: %d requests, p99 %s, max %s", n, p99, maxLat)
	// A request sent to the hung node waits the read timeout (200 ms) and
	// goes to the other node. The bound is ~300 ms; on a machine
	// shared with other test runs allow scheduling noise on top.
	if maxLat > 500*time.Millisecond {
		t.Errorf("a request caught by the hang took %s, want about 300 ms at most", maxLat)
	}
	n, p99, maxLat = latencies(after)
	t.Logf("after it was marked down:  %d requests, p99 %s, max %s", n, p99, maxLat)
	if n < 100 {
		t.Fatalf("only %d requests after the node was marked down", n)
	}
	if p99 >= 100*time.Millisecond {
		t.Errorf("p99 %s after the node was marked down, want under 100 ms", p99)
	}
	if maxLat > 400*time.Millisecond {
		t.Errorf("max %s after the node was marked down, want about 300 ms at most", maxLat)
	}

	// While app1 is down its ids are app2's; the others never moved.
	for _, id := range []int64{mine[0], mine[len(mine)/2], mine[len(mine)-1]} {
		if p := MustGetPage(t, pageURL(shared, strconv.FormatInt(id, 10))); p.status != http.StatusOK || p.servedBy != topology.App2 {
			t.Errorf("app1's id %d while app1 is hung: status %d from %q, want 200 from app2", id, p.status, p.servedBy)
		}
	}
	for id, node := range owners {
		if node != topology.App2 || id%10 != 0 {
			continue
		}
		if p := MustGetPage(t, pageURL(shared, strconv.FormatInt(id, 10))); p.servedBy != topology.App2 {
			t.Errorf("app2's id %d moved to %q while app1 was hung", id, p.servedBy)
		}
	}
	st, err := distStatus(shared)
	if err != nil {
		t.Fatal(err)
	}
	if s := st[app1.Addr()]; s.Healthy || s.Failures < 1 || s.LastError == nil || s.LastProbe == nil {
		t.Errorf("dist admin status of the hung app1: %+v, want unhealthy with failures, a last error and a last probe", s)
	} else {
		t.Logf("dist admin status of app1: state %s, %d failures, last error %q", s.State, s.Failures, *s.LastError)
	}

	// SIGCONT: the ids go back to app1.
	if err := app1.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, id := range mine {
			if p := MustGetPage(t, pageURL(shared, strconv.FormatInt(id, 10))); p.servedBy != topology.App1 {
				return fmt.Errorf("id %d served by %q, want app1 again", id, p.servedBy)
			}
		}
		return nil
	})
	t.Logf("app1's %d ids back on app1 %s after SIGCONT", len(mine), time.Since(resumed).Round(time.Millisecond))
}

// Both app nodes hung: the dist tier answers through the direct-data
// service, each request within about half a second, at once once the
// prober has marked them down.
func TestBothAppNodesHungServedByDirect(t *testing.T) {
	const ids = 100
	apps := []string{topology.App1, topology.App2}
	t.Cleanup(func() {
		for _, name := range apps {
			if err := shared.Component(name).Resume(); err != nil {
				t.Errorf("resume %s: %v", name, err)
			}
		}
	})
	waitNodeState(t, shared, "up", 5*time.Second, apps...)
	MustOwners(t, shared, ids) // ids seen before

	rs, faultAt, detectedAt := hungRun(t, shared, ids, apps...)
	t.Logf("app1 and app2 hung at +%s, marked down at +%s (%s later)",
		faultAt.Round(time.Millisecond), detectedAt.Round(time.Millisecond), (detectedAt - faultAt).Round(time.Millisecond))
	t.Logf("whole run: %s", loadgen.Report{Rate: 200, Results: rs}.Summary())
	var window, after []loadgen.Result
	for _, r := range rs {
		if r.Status != http.StatusOK {
			t.Errorf("request for id %d at +%s: status %d, want 200", r.ID, r.At.Round(time.Millisecond), r.Status)
		}
		switch {
		case r.At < faultAt:
		case r.At < detectedAt:
			window = append(window, r)
		default:
			after = append(after, r)
			if r.Cache != "direct" {
				t.Errorf("id %d after both nodes were marked down: X-Cache %q, want direct", r.ID, r.Cache)
			}
		}
	}
	n, p99, maxLat := latencies(window)
	t.Logf("hung, not yet marked down: %d requests, p99 %s, max %s", n, p99, maxLat)
	// two read timeouts (200 ms each), then the direct-data service
	if maxLat > 600*time.Millisecond {
		t.Errorf("a request caught by the hang took %s, want about 500 ms at most", maxLat)
	}
	n, p99, maxLat = latencies(after)
	t.Logf("after they were marked down: %d requests, p99 %s, max %s", n, p99, maxLat)
	if maxLat > 500*time.Millisecond {
		t.Errorf("max %s with both nodes marked down, want at most about 500 ms", maxLat)
	}
	if p := MustGetPage(t, pageURL(shared, "7")); p.status != http.StatusOK || p.servedBy != "direct" {
		t.Errorf("with both app nodes hung: status %d X-Served-By %q, want 200 from direct", p.status, p.servedBy)
	}

	for _, name := range apps {
		if err := shared.Component(name).Resume(); err != nil {
			t.Fatal(err)
		}
	}
	waitNodeState(t, shared, "up", 10*time.Second, apps...)
	if p := MustGetPage(t, pageURL(shared, "7")); p.servedBy != topology.App1 && p.servedBy != topology.App2 {
		t.Errorf("after SIGCONT: X-Served-By %q, want an app node", p.servedBy)
	}
}

// A slow page is not a hung node: a page the app tier takes longer than
// the dist tier's 200 ms try to build (rebuilt from a slow source) stays
// on its node, which answers health probes meanwhile, instead of moving
// to the other node or the direct-data service. (With Redis down that
// node is the one holding the stale copy.)
func TestSlowPageStaysOnItsNode(t *testing.T) {
	id := coldIDs(t, 1)[0]
	key := "item:{" + id + "}"
	main := redisClient(t, shared.Config().Ports.RedisMain)
	replica := redisClient(t, shared.Config().Ports.RedisReplica)
	if err := main.Del(t.Context(), key).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*time.Second, func() error {
		if n := replica.Exists(t.Context(), key).Val(); n != 0 {
			return fmt.Errorf("the replica still has %s", key)
		}
		return nil
	})
	faults := topology.URL(shared.Config().Ports.Source) + "/_admin/faults"
	sourceAdmin := func(method, body string) {
		t.Helper()
		req, err := http.NewRequest(method, faults, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %s", method, faults, resp.Status)
		}
	}
	sourceAdmin(http.MethodPost, `{"service":"product","latency_ms":400}`)
	t.Cleanup(func() { sourceAdmin(http.MethodDelete, "") })

	start := time.Now()
	slow := MustGetPage(t, pageURL(shared, id))
	took := time.Since(start)
	sourceAdmin(http.MethodDelete, "")
	t.Logf("slow page: %s, status %d from %s (X-Cache %s)", took.Round(time.Millisecond), slow.status, slow.servedBy, slow.cache)
	if slow.status != http.StatusOK {
		t.Fatalf("status %d, want 200", slow.status)
	}
	if took < 300*time.Millisecond {
		t.Fatalf("the page took %s: the source's 400 ms latency did not make it slow, nothing tested", took)
	}
	owner := MustGetPage(t, pageURL(shared, id)).servedBy
	if slow.servedBy != owner {
		t.Errorf("the slow page came from %q, its node is %q: a slow page moved as if its node were hung", slow.servedBy, owner)
	}
}

// The dist admin port answers only with the token; the public port has no
// admin at all.
func TestDistAdminNeedsToken(t *testing.T) {
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"wrong token", "Bearer not-" + token, http.StatusUnauthorized},
		{"not bearer", token, http.StatusUnauthorized},
		{"token", "Bearer " + token, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, distAdminURL(shared), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	st, err := distStatus(shared)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{topology.App1, topology.App2} {
		if _, ok := st[shared.Component(name).Addr()]; !ok {
			t.Errorf("dist admin status lists no %s (%s): %v", name, shared.Component(name).Addr(), st)
		}
	}
	req, err := http.NewRequest(http.MethodGet, topology.URL(shared.Config().Ports.Dist)+"/_admin/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("admin on the public port: status %d, want 404", resp.StatusCode)
	}
}

// Started as root, every nginx node's workers run as the unprivileged
// user; only the master keeps root (to bind and reopen logs). Their temp
// and log dirs belong to that user alone.
func TestNginxWorkersUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: nginx runs as this user and has no user to switch to")
	}
	out, err := exec.Command("ps", "-eo", "pgid=,user:32=,args=").Output()
	if err != nil {
		t.Fatalf("ps: %v", err)
	}
	for _, name := range []string{topology.App1, topology.App2, topology.Dist} {
		pgid := strconv.Itoa(shared.Component(name).Pid())
		var workers, master int
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != pgid {
				continue
			}
			args := strings.Join(f[2:], " ")
			switch {
			case strings.Contains(args, "worker process"):
				workers++
				if f[1] != "www-data" {
					t.Errorf("%s: worker runs as %s: %s", name, f[1], line)
				}
			case strings.Contains(args, "master process"):
				master++
			}
		}
		t.Logf("%s: master and %d workers (process group %s), workers as www-data", name, workers, pgid)
		if master != 1 || workers == 0 {
			t.Errorf("%s: %d masters and %d workers in process group %s, want one master and workers:\n%s", name, master, workers, pgid, out)
		}
		for _, d := range []string{"tmp", "logs"} {
			path := filepath.Join(shared.Config().VarDir, name, d)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != 0o700 || st.Uid == 0 {
				t.Errorf("%s: mode %s owner %d, want 0700 owned by the worker user", path, fi.Mode().Perm(), st.Uid)
			}
		}
	}
}
