package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// appStatus is the part of GET /_admin/status the tests read.
type appStatus struct {
	Node  string `json:"node"`
	Links map[string]struct {
		State    string  `json:"state"`
		Mode     string  `json:"mode"`
		Failures int     `json:"failures"`
		RetryAt  float64 `json:"retry_at"`
	} `json:"links"`
	Cache struct {
		Hits map[string]int `json:"hits"`
	} `json:"cache"`
	Below struct {
		RedisReads  int `json:"redis_reads"`
		DirectCalls int `json:"direct_calls"`
	} `json:"below"`
}

// totalHits is the node's answers counted at every level.
func (s appStatus) totalHits() int {
	n := 0
	for _, h := range s.Cache.Hits {
		n += h
	}
	return n
}

func appURL(t *topology.Topology, node string) string {
	return "http://" + t.Component(node).Addr()
}

// admin calls an app node's admin API with the given token.
func admin(tb testing.TB, t *topology.Topology, node, method, path, tok string, body any) (int, []byte) {
	tb.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			tb.Fatalf("%s %s: encode body: %v", method, path, err)
		}
	}
	req, err := http.NewRequest(method, appURL(t, node)+path, bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read: %v", method, path, err)
	}
	return resp.StatusCode, got
}

func MustStatus(tb testing.TB, t *topology.Topology, node string) appStatus {
	tb.Helper()
	code, body := admin(tb, t, node, http.MethodGet, "/_admin/status", token, nil)
	if code != http.StatusOK {
		tb.Fatalf("status of %s: %d %s", node, code, body)
	}
	var st appStatus
	if err := json.Unmarshal(body, &st); err != nil {
		tb.Fatalf("status of %s: %v", node, err)
	}
	return st
}

func MustSetMode(tb testing.TB, t *topology.Topology, node, link, mode string) {
	tb.Helper()
	code, body := admin(tb, t, node, http.MethodPost, "/_admin/degrade", token, map[string]string{"link": link, "mode": mode})
	if code != http.StatusOK {
		tb.Fatalf("set %s %s on %s: %d %s", link, mode, node, code, body)
	}
}

var nextCold = struct {
	sync.Mutex
	id int
}{id: 2000}

// coldIDs returns ids no other test has asked for by name, dropped from
// the shared topology's app nodes: other tests' Zipf loads reach most of
// the catalog, and a restarted node warms up with the hottest pages.
func coldIDs(tb testing.TB, n int) []string {
	tb.Helper()
	nextCold.Lock()
	ids := make([]string, n)
	nums := make([]int, n)
	for i := range ids {
		nextCold.id++
		ids[i], nums[i] = fmt.Sprint(nextCold.id), nextCold.id
	}
	nextCold.Unlock()
	for _, node := range []string{topology.App1, topology.App2} {
		if code, body := admin(tb, shared, node, http.MethodPost, "/_admin/purge", token, map[string]any{"ids": nums}); code != http.StatusOK {
			tb.Fatalf("purge cold ids on %s: %d %s", node, code, body)
		}
	}
	return ids
}

// freshConns is a client that opens a new connection for every request, so
// requests to one node land on all of its workers (reuseport spreads
// connections, not requests).
var freshConns = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// MustReplicaHas waits until the Redis replica holds want under key.
func MustReplicaHas(tb testing.TB, t *topology.Topology, key, want string) {
	tb.Helper()
	rdb := redisClient(tb, t.Config().Ports.RedisReplica)
	testutil.Eventually(tb, 3*time.Second, func() error {
		v, err := rdb.Get(tb.Context(), key).Result()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("replica has no %s yet", key)
		}
		if err != nil {
			return fmt.Errorf("replica GET %s: %w", key, err)
		}
		if v != want {
			return fmt.Errorf("replica has %.40q under %s", v, key)
		}
		return nil
	})
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// switchBound is how long a page may take while a link is being degraded:
// far above the 50 ms Redis timeout and the direct-data call that follows
// (the figures are logged), far below a hung request's 10 s.
const switchBound = 2 * time.Second

// Acceptance 1: a frozen replica is degraded after the threshold, pages
// keep answering from direct without waiting on it, and the link comes back
// by itself.
func TestReplicaFrozenDegradesAndRecovers(t *testing.T) {
	const node = topology.App1
	replica := shared.Component(topology.RedisReplica)
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := replica.Resume(); err != nil {
			t.Errorf("resume the replica: %v", err)
		}
	})

	var took []time.Duration
	var caches []string
	for _, id := range coldIDs(t, 20) {
		start := time.Now()
		got := MustGetPage(t, appURL(shared, node)+"/item/"+id+".html")
		took = append(took, time.Since(start))
		if got.status != http.StatusOK {
			t.Fatalf("id %s with the replica frozen: status %d", id, got.status)
		}
		caches = append(caches, got.cache)
	}
	t.Logf("during the switch: p50 %s, p99 %s, max %s over %d requests",
		percentile(took, 0.5), percentile(took, 0.99), percentile(took, 1), len(took))
	for i, d := range took {
		if d > switchBound {
			t.Errorf("request %d took %s during the switch (X-Cache %s), want under %s", i, d, caches[i], switchBound)
		}
	}
	if st := MustStatus(t, shared, node); st.Links["replica"].State != "degraded" {
		t.Fatalf("replica link %+v after 20 failed reads, want degraded", st.Links["replica"])
	}
	if last := caches[len(caches)-1]; last != "direct" {
		t.Errorf("X-Cache %q while degraded, want direct", last)
	}

	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	// The link comes back when the probe after the 5 s retry period succeeds.
	testutil.Eventually(t, 15*time.Second, func() error {
		id := coldIDs(t, 1)[0]
		got := MustGetPage(t, appURL(shared, node)+"/item/"+id+".html")
		if got.status != http.StatusOK || got.cache != "redis" {
			return fmt.Errorf("id %s: %d X-Cache %q", id, got.status, got.cache)
		}
		return nil
	})
	t.Logf("pages from Redis again %s after the replica came back", time.Since(back).Round(10*time.Millisecond))
	if st := MustStatus(t, shared, node); st.Links["replica"].State != "normal" {
		t.Errorf("replica link %+v after recovery, want normal", st.Links["replica"])
	}
}

// Acceptance 3: force-degraded needs the token and reaches every worker.
func TestForceDegradedNeedsTokenAndReachesAllWorkers(t *testing.T) {
	const node = topology.App2
	for _, tok := range []string{"", "wrong-token"} {
		code, _ := admin(t, shared, node, http.MethodPost, "/_admin/degrade", tok, map[string]string{"link": "replica", "mode": "force-degraded"})
		if code != http.StatusUnauthorized {
			t.Errorf("degrade with token %q: %d, want 401", tok, code)
		}
		if code, _ := admin(t, shared, node, http.MethodGet, "/_admin/status", tok, nil); code != http.StatusUnauthorized {
			t.Errorf("status with token %q: %d, want 401", tok, code)
		}
	}
	if st := MustStatus(t, shared, node); st.Links["replica"].Mode != "auto" {
		t.Fatalf("an unauthorized call changed the mode to %q", st.Links["replica"].Mode)
	}
	bad := []map[string]string{{"link": "replica", "mode": "sometimes"}, {"link": "kafka", "mode": "auto"}}
	for _, b := range bad {
		if code, _ := admin(t, shared, node, http.MethodPost, "/_admin/degrade", token, b); code != http.StatusBadRequest {
			t.Errorf("degrade %v: %d, want 400", b, code)
		}
	}

	MustSetMode(t, shared, node, "replica", "force-degraded")
	t.Cleanup(func() { MustSetMode(t, shared, node, "replica", "auto") })
	// 40 cold pages over new connections land on both workers (see
	// mustWarmAllWorkers).
	for _, id := range coldIDs(t, 40) {
		got, err := getPageWith(freshConns, appURL(shared, node)+"/item/"+id+".html")
		if err != nil {
			t.Fatal(err)
		}
		if got.status != http.StatusOK || got.cache != "direct" {
			t.Fatalf("id %s with replica force-degraded: %d X-Cache %q, want 200 from direct", id, got.status, got.cache)
		}
	}
	MustSetMode(t, shared, node, "replica", "auto")
	if got := MustGetPage(t, appURL(shared, node)+"/item/"+coldIDs(t, 1)[0]+".html"); got.cache != "redis" {
		t.Errorf("back to auto: X-Cache %q, want redis", got.cache)
	}
}

// Acceptance 4: concurrent first requests for one id cost one Redis read at
// most per node, and every one of them gets the page. Issue 16: a waiter
// that looked while the lock holder had released the lock but not yet
// stored the page answered 503; many rounds of the stampede, each on a new
// cold id, give that window many chances (lua/spec/app_spec.lua forces it).
func TestDogPileOneReadPerNode(t *testing.T) {
	const rounds, perRound = 50, 200
	nodes := []string{topology.App1, topology.App2}
	tr := &http.Transport{MaxIdleConnsPerHost: perRound}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for round := range rounds {
		id := coldIDs(t, 1)[0]
		before := map[string]appStatus{}
		for _, n := range nodes {
			before[n] = MustStatus(t, shared, n)
		}
		var wg sync.WaitGroup
		got := make([]page, perRound)
		errs := make([]error, perRound)
		for i := range perRound {
			url := appURL(shared, nodes[i%2]) + "/item/" + id + ".html"
			wg.Go(func() { got[i], errs[i] = getPageWith(c, url) })
		}
		wg.Wait()
		for i := range perRound {
			if errs[i] != nil {
				t.Fatalf("round %d (id %s), request %d: %v", round, id, i, errs[i])
			}
			if got[i].status != http.StatusOK {
				t.Fatalf("round %d (id %s), request %d to %s: status %d, X-Cache %q", round, id, i, nodes[i%2], got[i].status, got[i].cache)
			}
		}
		for _, n := range nodes {
			after := MustStatus(t, shared, n)
			reads := after.Below.RedisReads - before[n].Below.RedisReads
			calls := after.Below.DirectCalls - before[n].Below.DirectCalls
			if reads > 1 || calls > 1 {
				t.Errorf("round %d (id %s), %s: %d Redis reads and %d direct calls for %d concurrent requests, want at most 1 each",
					round, id, n, reads, calls, perRound/2)
			}
		}
	}
	t.Logf("%d rounds of %d concurrent requests on a cold id: all 200", rounds, perRound)
}

// Acceptance 5: both nodes hold a page in L1 (10-minute TTL); an edit shows
// on both soon after (the figure is logged; BenchmarkEditToPage measures it).
func TestEditDropsL1OnBothNodes(t *testing.T) {
	const id = 4321
	nodes := []string{topology.App1, topology.App2}
	for _, n := range nodes {
		url := appURL(shared, n) + fmt.Sprintf("/item/%d.html", id)
		seenL1 := false
		for range 20 {
			got := MustGetPage(t, url)
			if got.status != http.StatusOK {
				t.Fatalf("%s: item %d: status %d", n, id, got.status)
			}
			if got.cache == "L1" {
				seenL1 = true
			}
		}
		if !seenL1 {
			t.Fatalf("%s never served item %d from L1", n, id)
		}
	}
	name := fmt.Sprintf("改名 Renamed %d", time.Now().UnixNano())
	MustRename(t, shared, id, name)
	start := time.Now()
	shown := map[string]time.Duration{}
	testutil.Eventually(t, 5*time.Second, func() error {
		for _, n := range nodes {
			if _, ok := shown[n]; ok {
				continue
			}
			got := MustGetPage(t, appURL(shared, n)+fmt.Sprintf("/item/%d.html", id))
			if got.status == http.StatusOK && strings.Contains(got.body, escape(name)) {
				shown[n] = time.Since(start)
			}
		}
		if len(shown) < len(nodes) {
			return fmt.Errorf("the edit shows on %d of %d nodes", len(shown), len(nodes))
		}
		return nil
	})
	for _, n := range nodes {
		t.Logf("%s shows the edit after %s", n, shown[n].Round(time.Millisecond))
	}
}

// A value in Redis that is not JSON is a miss (logged), not a page.
func TestGarbageInRedisIsAMiss(t *testing.T) {
	id := coldIDs(t, 1)[0]
	rdb := redisClient(t, shared.Config().Ports.RedisMain)
	if err := rdb.Set(t.Context(), "item:{"+id+"}", "not json {", 0).Err(); err != nil {
		t.Fatal(err)
	}
	MustReplicaHas(t, shared, "item:{"+id+"}", "not json {")
	got := MustGetPage(t, pageURL(shared, id))
	if got.status != http.StatusOK || strings.Contains(got.body, "not json") {
		t.Fatalf("status %d, X-Cache %s: want the page rebuilt", got.status, got.cache)
	}
	if got.cache != "direct" {
		t.Errorf("X-Cache %q, want direct (the garbage is a miss)", got.cache)
	}
}

// Acceptance 2: with the replica and the direct-data service both down,
// pages seen before are served stale and the others get the 503 page; the
// error log shows nothing but the expected link failures.
func TestReplicaAndDirectDownServesStale(t *testing.T) {
	topo := MustTopology(t, topology.Config{SeedProducts: 300, SeedShops: 20, AppL1TTL: time.Second, AppL2TTL: time.Second})
	seen := []string{"11", "12", "13", "14"}
	for _, id := range seen {
		if got := MustGetPage(t, pageURL(topo, id)); got.status != http.StatusOK {
			t.Fatalf("id %s: %d", id, got.status)
		}
	}
	if err := topo.Component(topology.Direct).Kill(); err != nil {
		t.Fatal(err)
	}
	if err := topo.Component(topology.RedisReplica).Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Component(topology.RedisReplica).Resume(); err != nil {
			t.Errorf("resume the replica: %v", err)
		}
	})
	// Let every local copy pass its 1 s (±20%) TTL.
	testutil.Eventually(t, 5*time.Second, func() error {
		got := MustGetPage(t, pageURL(topo, seen[0]))
		if got.cache != "stale" {
			return fmt.Errorf("X-Cache %q", got.cache)
		}
		return nil
	})
	for _, id := range seen {
		got := MustGetPage(t, pageURL(topo, id))
		if got.status != http.StatusOK || got.cache != "stale" {
			t.Errorf("seen id %s: %d X-Cache %q, want 200 stale", id, got.status, got.cache)
		}
	}
	for _, id := range []string{"101", "102", "103"} {
		got := MustGetPage(t, pageURL(topo, id))
		if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "Temporarily unavailable") {
			t.Errorf("unseen id %s: %d, want the 503 page", id, got.status)
		}
	}
	expected := regexp.MustCompile(`\[(warn|notice|info)\]|connect\(\) failed|upstream timed out|no live upstreams|while connecting to upstream`)
	for _, n := range []string{topology.App1, topology.App2, topology.Dist} {
		log := MustReadFile(t, filepath.Join(topo.Config().VarDir, n, "logs", "error.log"))
		if n != topology.Dist && !strings.Contains(log, "[app] ") {
			t.Errorf("%s error.log has no line of app.lua: the link failures above must be logged (wrong file?)", n)
		}
		for _, line := range strings.Split(log, "\n") {
			if line != "" && !expected.MatchString(line) {
				t.Errorf("%s error.log: unexpected %q", n, line)
			}
		}
	}
}

// A document the template cannot render (an object where it expects a
// string's parent) falls back to the next level and ends in the 503 page,
// never a 500 with a Lua trace.
func TestRenderErrorIsNever500(t *testing.T) {
	id := coldIDs(t, 1)[0]
	doc := `{"version":999999999,"id":` + id + `,"shop_id":1,"name":"x","price":"not an object","stock":{},"images":[],"category":[],"specs":[],"recommendations":[]}`
	if err := redisClient(t, shared.Config().Ports.RedisMain).Set(t.Context(), "item:{"+id+"}", doc, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Put the real page back: later tests' Zipf loads reach this id, and a
	// broken document left behind answers them 503 (as it should).
	t.Cleanup(func() { restoreProduct(t, id) })
	MustReplicaHas(t, shared, "item:{"+id+"}", doc)
	// Both renderers refuse the document and nothing older exists: the 503 page.
	got := MustGetPage(t, pageURL(shared, id))
	if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "Temporarily unavailable") {
		t.Fatalf("status %d, want the 503 page", got.status)
	}
	if strings.Contains(got.body, "stack traceback") || strings.Contains(got.body, ".lua:") {
		t.Errorf("the response shows a Lua trace")
	}
}

// POST /_admin/purge drops a page from every worker of the node, needs the
// token, and refuses bad ids.
func TestPurgeDropsLocalCopies(t *testing.T) {
	const node = topology.App1
	id := coldIDs(t, 1)[0]
	url := appURL(shared, node) + "/item/" + id + ".html"
	mustWarmAllWorkers(t, url)
	if code, _ := admin(t, shared, node, http.MethodPost, "/_admin/purge", "", map[string]any{"ids": []string{id}}); code != http.StatusUnauthorized {
		t.Fatalf("purge without token: %d, want 401", code)
	}
	if got := MustGetPage(t, url).cache; got != "L1" && got != "L2" {
		t.Fatalf("an unauthorized purge dropped the page (X-Cache %q)", got)
	}
	for _, bad := range []any{map[string]any{"ids": []int{}}, map[string]any{"ids": []any{"x"}}, map[string]any{"ids": []int{-1}}, map[string]any{}} {
		if code, body := admin(t, shared, node, http.MethodPost, "/_admin/purge", token, bad); code != http.StatusBadRequest {
			t.Errorf("purge %v: %d %s, want 400", bad, code, body)
		}
	}
	before := MustStatus(t, shared, node).Below.RedisReads
	n, err := strconv.Atoi(id)
	if err != nil {
		t.Fatal(err)
	}
	code, body := admin(t, shared, node, http.MethodPost, "/_admin/purge", token, map[string]any{"ids": []int{n}})
	var ans struct {
		Purged         int `json:"purged"`
		WorkersPending int `json:"workers_pending"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &ans) != nil || ans.Purged != 1 || ans.WorkersPending != 0 {
		t.Fatalf("purge: %d %s, want 200 with every worker done", code, body)
	}
	// With a 10-minute local TTL, only the purge sends the page below the
	// node again; the purge answered once every worker had dropped its L1
	// copy, so the very next request, whichever worker takes it, goes below.
	if got := MustGetPage(t, url).cache; got != "redis" {
		t.Errorf("X-Cache %q right after the purge's answer, want redis", got)
	}
	if after := MustStatus(t, shared, node).Below.RedisReads; after <= before {
		t.Errorf("Redis reads %d → %d: the purged page was not fetched again", before, after)
	}
}

// mustWarmAllWorkers asks for a page over 20 new connections, which reach
// every worker of the node (reuseport spreads connections; all 20 on one of
// two workers has odds of 2^-19), so each holds it in L1.
func mustWarmAllWorkers(tb testing.TB, url string) {
	tb.Helper()
	for i := range 20 {
		got, err := getPageWith(freshConns, url)
		if err != nil {
			tb.Fatal(err)
		}
		if got.status != http.StatusOK {
			tb.Fatalf("warming %s, request %d: status %d", url, i, got.status)
		}
	}
}

// Issue 9 §4: purges and hit counts need nothing from the replica, so they
// work while it is down. The page is edited while the replica is frozen:
// no invalidation can reach the node, every worker keeps the old page in L1
// (10-minute TTL), and only the purge can make them fetch the new one (from
// the direct-data service).
func TestPurgeAndHitCountsWithReplicaDown(t *testing.T) {
	const node = topology.App2
	id := coldIDs(t, 1)[0]
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	url := appURL(shared, node) + "/item/" + id + ".html"
	mustWarmAllWorkers(t, url)

	replica := shared.Component(topology.RedisReplica)
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := replica.Resume(); err != nil {
			t.Errorf("resume the replica: %v", err)
		}
	})
	name := fmt.Sprintf("Purged while the replica is down %d", time.Now().UnixNano())
	MustRename(t, shared, n, name)
	// The direct-data service sees the edit (its cache lives 2 s).
	testutil.Eventually(t, 15*time.Second, func() error {
		resp, err := client.Get(topology.URL(shared.Config().Ports.Direct) + "/api/item/" + id + "?with=shop")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var env struct {
			Item struct {
				Name string `json:"name"`
			} `json:"item"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			return fmt.Errorf("direct: %s: %w", resp.Status, err)
		}
		if env.Item.Name != name {
			return fmt.Errorf("direct still has %q", env.Item.Name)
		}
		return nil
	})
	if got := MustGetPage(t, url); got.status != http.StatusOK || strings.Contains(got.body, escape(name)) {
		t.Fatalf("before the purge: status %d, X-Cache %q, new name shown %v: want the old page from a local copy",
			got.status, got.cache, strings.Contains(got.body, escape(name)))
	}

	// Over one kept-alive connection: /_admin/status adds the hit counts of
	// the worker that answers it; the others' must come from their timers.
	hitsBefore := MustStatus(t, shared, node).totalHits()
	if code, body := admin(t, shared, node, http.MethodPost, "/_admin/purge", token, map[string]any{"ids": []int64{n}}); code != http.StatusOK {
		t.Fatalf("purge: %d %s", code, body)
	}
	start := time.Now()
	requests := 0
	testutil.Eventually(t, 10*time.Second, func() error {
		for i := range 20 {
			got, err := getPageWith(freshConns, url)
			if err != nil {
				return err
			}
			requests++
			if got.status != http.StatusOK || !strings.Contains(got.body, escape(name)) {
				return fmt.Errorf("request %d after the purge: status %d, X-Cache %q, without the new name", i, got.status, got.cache)
			}
		}
		return nil
	})
	t.Logf("every worker shows the new page %s after the purge", time.Since(start).Round(time.Millisecond))
	testutil.Eventually(t, 5*time.Second, func() error {
		if got := MustStatus(t, shared, node).totalHits() - hitsBefore; got < requests {
			return fmt.Errorf("hit counts moved by %d for %d answered requests", got, requests)
		}
		return nil
	})
}
