package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
	Below struct {
		RedisReads  int `json:"redis_reads"`
		DirectCalls int `json:"direct_calls"`
	} `json:"below"`
}

func appURL(t *topology.Topology, node string) string {
	return "http://" + t.Component(node).Addr()
}

// admin calls an app node's admin API with the given token.
func admin(tb testing.TB, t *topology.Topology, node, method, path, tok string, body any) (int, []byte) {
	tb.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, appURL(t, node)+path, rd)
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
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
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

// coldIDs returns ids no other test has asked for.
func coldIDs(n int) []string {
	nextCold.Lock()
	defer nextCold.Unlock()
	ids := make([]string, n)
	for i := range ids {
		nextCold.id++
		ids[i] = fmt.Sprint(nextCold.id)
	}
	return ids
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// Acceptance 1: a frozen replica is degraded after the threshold, pages
// keep answering fast from direct, and the link comes back by itself.
func TestReplicaFrozenDegradesAndRecovers(t *testing.T) {
	const node = topology.App1
	replica := shared.Component(topology.RedisReplica)
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Resume() })

	var took []time.Duration
	var caches []string
	for _, id := range coldIDs(20) {
		start := time.Now()
		got := MustGetPage(t, appURL(shared, node)+"/item/"+id+".html")
		took = append(took, time.Since(start))
		if got.status != http.StatusOK {
			t.Fatalf("id %s with the replica frozen: status %d", id, got.status)
		}
		caches = append(caches, got.cache)
	}
	for i, d := range took {
		if d > 300*time.Millisecond {
			t.Errorf("request %d took %s during the switch (X-Cache %s)", i, d, caches[i])
		}
	}
	t.Logf("during the switch: p50 %s, p99 %s, max %s over %d requests",
		percentile(took, 0.5), percentile(took, 0.99), percentile(took, 1), len(took))
	if st := MustStatus(t, shared, node); st.Links["replica"].State != "degraded" {
		t.Fatalf("replica link %+v after 20 failed reads, want degraded", st.Links["replica"])
	}
	if last := caches[len(caches)-1]; last != "direct" {
		t.Errorf("X-Cache %q while degraded, want direct", last)
	}

	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		id := coldIDs(1)[0]
		got := MustGetPage(t, appURL(shared, node)+"/item/"+id+".html")
		if got.status == http.StatusOK && got.cache == "redis" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pages still come from %q 15 s after the replica came back", got.cache)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
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
	// 40 cold pages over keepalive and fresh connections land on both workers.
	for _, id := range coldIDs(40) {
		got := MustGetPage(t, appURL(shared, node)+"/item/"+id+".html")
		if got.status != http.StatusOK || got.cache != "direct" {
			t.Fatalf("id %s with replica force-degraded: %d X-Cache %q, want 200 from direct", id, got.status, got.cache)
		}
	}
	MustSetMode(t, shared, node, "replica", "auto")
	if got := MustGetPage(t, appURL(shared, node)+"/item/"+coldIDs(1)[0]+".html"); got.cache != "redis" {
		t.Errorf("back to auto: X-Cache %q, want redis", got.cache)
	}
}

// Acceptance 4: a thousand concurrent first requests for one id cost one
// Redis read at most per node.
func TestDogPileOneReadPerNode(t *testing.T) {
	id := coldIDs(1)[0]
	before := map[string]appStatus{}
	for _, n := range []string{topology.App1, topology.App2} {
		before[n] = MustStatus(t, shared, n)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1000}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	codes := make([]int, 1000)
	for i := range codes {
		node := topology.App1
		if i%2 == 1 {
			node = topology.App2
		}
		wg.Go(func() {
			resp, err := c.Get(appURL(shared, node) + "/item/" + id + ".html")
			if err != nil {
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusOK {
			t.Fatalf("request %d: status %d", i, code)
		}
	}
	for _, n := range []string{topology.App1, topology.App2} {
		after := MustStatus(t, shared, n)
		reads := after.Below.RedisReads - before[n].Below.RedisReads
		calls := after.Below.DirectCalls - before[n].Below.DirectCalls
		t.Logf("%s: %d Redis reads, %d direct calls for 500 concurrent requests", n, reads, calls)
		if reads > 1 || calls > 1 {
			t.Errorf("%s: %d Redis reads and %d direct calls, want at most 1 each", n, reads, calls)
		}
	}
}

// Acceptance 5: both nodes hold a page in L1 (10-minute TTL); an edit shows
// on both within a second.
func TestEditDropsL1OnBothNodesWithinASecond(t *testing.T) {
	const id = 4321
	for _, n := range []string{topology.App1, topology.App2} {
		url := appURL(shared, n) + fmt.Sprintf("/item/%d.html", id)
		seenL1 := false
		for range 20 {
			if MustGetPage(t, url).cache == "L1" {
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
	var wg sync.WaitGroup
	for _, n := range []string{topology.App1, topology.App2} {
		wg.Go(func() {
			took := waitForPage(t, appURL(shared, n)+fmt.Sprintf("/item/%d.html", id), escape(name), 3*time.Second)
			t.Logf("%s shows the edit after %s", n, took)
		})
	}
	wg.Wait()
	if d := time.Since(start); d > time.Second {
		t.Errorf("edit took %s to show on both nodes, want under 1 s", d)
	}
}

// A value in Redis that is not JSON is a miss (logged), not a page.
func TestGarbageInRedisIsAMiss(t *testing.T) {
	id := coldIDs(1)[0]
	rdb := redisClient(t, shared.Config().Ports.RedisMain)
	if err := rdb.Set(t.Context(), "item:{"+id+"}", "not json {", 0).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*time.Second, func() error {
		v, _ := redisClient(t, shared.Config().Ports.RedisReplica).Get(t.Context(), "item:{"+id+"}").Result()
		if v != "not json {" {
			return fmt.Errorf("replica has %q", v)
		}
		return nil
	})
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
	t.Cleanup(func() { topo.Component(topology.RedisReplica).Resume() })
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
	id := coldIDs(1)[0]
	doc := `{"version":999999999,"id":` + id + `,"shop_id":1,"name":"x","price":"not an object","stock":{},"images":[],"category":[],"specs":[],"recommendations":[]}`
	if err := redisClient(t, shared.Config().Ports.RedisMain).Set(t.Context(), "item:{"+id+"}", doc, 0).Err(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 3*time.Second, func() error {
		v, _ := redisClient(t, shared.Config().Ports.RedisReplica).Get(t.Context(), "item:{"+id+"}").Result()
		if v != doc {
			return fmt.Errorf("replica does not have the document yet")
		}
		return nil
	})
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
	id := coldIDs(1)[0]
	url := appURL(shared, node) + "/item/" + id + ".html"
	for range 10 { // into L1 of both workers and L2
		MustGetPage(t, url)
	}
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
	n, _ := strconv.Atoi(id)
	if code, body := admin(t, shared, node, http.MethodPost, "/_admin/purge", token, map[string]any{"ids": []int{n}}); code != http.StatusOK {
		t.Fatalf("purge: %d %s", code, body)
	}
	// With a 10-minute local TTL, only the purge sends the page below the
	// node again (every worker drops its L1 copy when its follower runs).
	testutil.Eventually(t, 2*time.Second, func() error {
		if got := MustGetPage(t, url).cache; got != "redis" {
			return fmt.Errorf("X-Cache %q after the purge", got)
		}
		return nil
	})
	if after := MustStatus(t, shared, node).Below.RedisReads; after <= before {
		t.Errorf("Redis reads %d → %d: the purged page was not fetched again", before, after)
	}
}
