package e2e

// The dist tier's routing of the realtime API (issue 13) to the OneServer
// pool, against real processes: two `detailpage one` nodes and a dist
// nginx started here (reading the shared topology's Redis, source, app
// nodes and direct-data service), so that freezing the OneServers touches
// nothing the other tests use.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// MustStartOneNode starts `detailpage one` on addr over the shared
// topology's source and Redis main.
func MustStartOneNode(tb testing.TB, addr string) *proc {
	tb.Helper()
	c := shared.Config()
	return MustStartProc(tb, "one", "http://"+addr+"/healthz", builtBinary, "one", "--listen", addr,
		"--source", topology.URL(c.Ports.Source), "--redis", topology.Addr(c.Ports.RedisMain))
}

// MustStartRealtimeDist starts a dist nginx of its own with --one one (""
// for none) in front of the shared topology's app nodes, and returns its
// page and admin addresses.
func MustStartRealtimeDist(tb testing.TB, one string) (page, admin string) {
	tb.Helper()
	c := shared.Config()
	ports := testutil.FreePorts(tb, 2)
	page, admin = topology.Addr(ports[0]), topology.Addr(ports[1])
	prefix := filepath.Join(c.VarDir, fmt.Sprintf("distrt-%d", procSeq.Add(1)))
	p := MustStartProc(tb, "distrt", "http://"+page+"/_health", builtBinary, "nginx", "--tier", "dist", "--name", "distrt",
		"--listen", page, "--admin-listen", admin, "--prefix", prefix, "--root", repoRoot(),
		"--replica", topology.Addr(c.Ports.RedisReplica), "--direct", topology.Addr(c.Ports.Direct), "--hot", "",
		"--apps", shared.Component(topology.App1).Addr()+","+shared.Component(topology.App2).Addr(),
		"--source", topology.Addr(c.Ports.Source), "--one", one)
	p.log = filepath.Join(prefix, "logs", "error.log")
	return page, admin
}

// realtimeAnswer is one answer of the realtime API.
type realtimeAnswer struct {
	status       int
	cacheControl []string
	contentType  string
	body         []byte
	took         time.Duration
}

func getRealtime(url string) (realtimeAnswer, error) { return getRealtimeWith(client, url) }

// getRealtimeWith is getRealtime with client c.
func getRealtimeWith(c *http.Client, url string) (realtimeAnswer, error) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return realtimeAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return realtimeAnswer{}, err
	}
	return realtimeAnswer{status: resp.StatusCode, cacheControl: resp.Header.Values("Cache-Control"),
		contentType: resp.Header.Get("Content-Type"), body: b, took: time.Since(start)}, nil
}

// MustGetRealtime GETs url and checks the dist's promises on every
// answer: status want, one Cache-Control: no-store, JSON.
func MustGetRealtime(tb testing.TB, url string, want int) realtimeAnswer {
	tb.Helper()
	a, err := getRealtime(url)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	if a.status != want {
		tb.Fatalf("GET %s = %d %.300s, want %d", url, a.status, a.body, want)
	}
	if len(a.cacheControl) != 1 || a.cacheControl[0] != "no-store" {
		tb.Errorf("GET %s: Cache-Control %q, want exactly one no-store", url, a.cacheControl)
	}
	if !strings.HasPrefix(a.contentType, "application/json") || !json.Valid(a.body) {
		tb.Errorf("GET %s: %s %.200s, want JSON", url, a.contentType, a.body)
	}
	return a
}

// oneNodesStatus reads the dist admin's view of the OneServer nodes.
func oneNodesStatus(admin string) (map[string]distNode, error) {
	var doc struct {
		OneNodes []distNode `json:"one_nodes"`
	}
	if err := getAdminJSON("http://"+admin+"/_admin/status", &doc); err != nil {
		return nil, err
	}
	m := map[string]distNode{}
	for _, n := range doc.OneNodes {
		m[n.Node] = n
	}
	return m, nil
}

func waitOneNodes(tb testing.TB, admin, state string, addrs ...string) {
	tb.Helper()
	testutil.Eventually(tb, 10*time.Second, func() error {
		st, err := oneNodesStatus(admin)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if st[a].State != state {
				return fmt.Errorf("OneServer node %s is %q, want %q (%v)", a, st[a].State, state, st)
			}
		}
		return nil
	})
}

// oneAnswered reads a OneServer node's count of 200 answers.
func oneAnswered(tb testing.TB, addr string) float64 {
	tb.Helper()
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `detailpage_realtime_answers_total{code="200"} `); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	return 0
}

func TestDistRealtimeRouting(t *testing.T) {
	ports := testutil.FreePorts(t, 2)
	one1, one2 := topology.Addr(ports[0]), topology.Addr(ports[1])
	p1, p2 := MustStartOneNode(t, one1), MustStartOneNode(t, one2)
	page, admin := MustStartRealtimeDist(t, one1+","+one2)
	base := "http://" + page
	waitOneNodes(t, admin, "up", one1, one2)

	t.Run("answers", func(t *testing.T) {
		var obj struct {
			ID    int64  `json:"id"`
			Price string `json:"price"`
		}
		if err := json.Unmarshal(MustGetRealtime(t, base+"/api/realtime/7", http.StatusOK).body, &obj); err != nil || obj.ID != 7 || obj.Price == "" {
			t.Errorf("/api/realtime/7: %+v %v", obj, err)
		}
		var batch struct {
			Items   []json.RawMessage `json:"items"`
			Missing []int64           `json:"missing"`
		}
		if err := json.Unmarshal(MustGetRealtime(t, base+"/api/realtime?ids=1,2,3&region=west", http.StatusOK).body, &batch); err != nil || len(batch.Items) != 3 {
			t.Errorf("/api/realtime?ids=1,2,3: %d items, %v", len(batch.Items), err)
		}
		// the OneServer's own refusals pass through, with no-store too
		MustGetRealtime(t, base+"/api/realtime/abc", http.StatusBadRequest)
		MustGetRealtime(t, base+"/api/realtime?ids=", http.StatusBadRequest)
		// the page routing is untouched
		if p := MustGetPage(t, base+"/item/1.html"); p.status != http.StatusOK || (p.servedBy != topology.App1 && p.servedBy != topology.App2) {
			t.Errorf("/item/1.html through this dist: %d from %q", p.status, p.servedBy)
		}
	})

	t.Run("round robin", func(t *testing.T) {
		before1, before2 := oneAnswered(t, one1), oneAnswered(t, one2)
		const n = 40
		for range n {
			MustGetRealtime(t, base+"/api/realtime/5", http.StatusOK)
		}
		d1, d2 := oneAnswered(t, one1)-before1, oneAnswered(t, one2)-before2
		t.Logf("%d requests: %v to %s, %v to %s", n, d1, one1, d2, one2)
		if d1+d2 != n || d1 < n/4 || d2 < n/4 {
			t.Errorf("%d requests went %v / %v to the two OneServers, want about half each", n, d1, d2)
		}
	})

	t.Run("edit seen at once", func(t *testing.T) {
		// The source's fast path writes the edit to Redis before its 200;
		// the OneServer's dp:rt follower drops its local copy.
		const id = 11
		MustGetRealtime(t, base+"/api/realtime/11", http.StatusOK) // warm both the LRU and the connection
		amount := fmt.Sprintf("%d.%02d", 100+time.Now().Unix()%800, time.Now().Nanosecond()%100)
		MustPut(t, fmt.Sprintf("/api/prices/%d", id), catalog.Price{Amount: amount, List: "9999.00", Currency: "CNY"})
		edited := time.Now()
		// the topology's source writes it to Redis main before answering
		rt, err := redisClient(t, shared.Config().Ports.RedisMain).Get(t.Context(), redisstore.RealtimeKey(id, catalog.DimPrice)).Result()
		if err != nil || !strings.Contains(rt, `"amount":"`+amount+`"`) {
			t.Errorf("realtime key after the edit's 200: %.300s, %v; want amount %s", rt, err, amount)
		}
		var took time.Duration
		err = testutil.PollEvery(2*time.Second, 5*time.Millisecond, func() error {
			a, err := getRealtime(fmt.Sprintf("%s/api/realtime/%d", base, id))
			if err != nil {
				return err
			}
			if !strings.Contains(string(a.body), `"price":"`+amount+`"`) {
				return fmt.Errorf("still %.200s", a.body)
			}
			took = time.Since(edited)
			return nil
		})
		if err != nil {
			t.Fatalf("new price %s not seen through the dist: %v", amount, err)
		}
		t.Logf("new price seen through the dist %v after the edit's 200", took)
		if took > 100*time.Millisecond {
			t.Errorf("new price seen %v after the edit's 200, want within 100 ms", took)
		}
	})

	t.Run("one node frozen", func(t *testing.T) {
		if err := p1.signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer p1.signal(syscall.SIGCONT)
		frozenAt := time.Now()
		var slowest time.Duration
		for time.Since(frozenAt) < time.Second {
			a := MustGetRealtime(t, base+"/api/realtime/9", http.StatusOK)
			slowest = max(slowest, a.took)
		}
		waitOneNodes(t, admin, "down", one1)
		t.Logf("while %s froze and was marked down: every answer 200, slowest %v", one1, slowest)
		// a frozen node costs a request at most its read timeout, then the next node answers
		if slowest > 1500*time.Millisecond {
			t.Errorf("slowest answer %v with one OneServer frozen, want under the 1 s read timeout plus a retry", slowest)
		}
		before2 := oneAnswered(t, one2)
		for range 10 {
			if a := MustGetRealtime(t, base+"/api/realtime/9", http.StatusOK); a.took > 500*time.Millisecond {
				t.Errorf("answer took %v with the frozen node marked down", a.took)
			}
		}
		if d := oneAnswered(t, one2) - before2; d != 10 {
			t.Errorf("%v of 10 answers from the healthy node %s", d, one2)
		}
	})

	t.Run("none healthy", func(t *testing.T) {
		waitOneNodes(t, admin, "up", one1, one2) // the frozen one is back
		for _, p := range []*proc{p1, p2} {
			if err := p.signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}
		// Asked at once, before the prober has marked them down: both
		// tries time out (1 s each), and the answer is the same 503.
		a := MustGetRealtime(t, base+"/api/realtime/9", http.StatusServiceUnavailable)
		t.Logf("both frozen, not yet marked down: 503 %s after %v", bytes.TrimSpace(a.body), a.took)
		waitOneNodes(t, admin, "down", one1, one2)
		a = MustGetRealtime(t, base+"/api/realtime/9", http.StatusServiceUnavailable)
		var e struct {
			Error string `json:"error"`
		}
		if err := json.Unmarshal(a.body, &e); err != nil || e.Error != "realtime unavailable" {
			t.Errorf("503 body %s", a.body)
		}
		if a.took > 200*time.Millisecond {
			t.Errorf("503 took %v, want at once (no node is tried)", a.took)
		}
		MustGetRealtime(t, base+"/api/realtime?ids=1,2", http.StatusServiceUnavailable)
		st, err := oneNodesStatus(admin)
		if err != nil {
			t.Fatal(err)
		}
		for _, addr := range []string{one1, one2} {
			if n := st[addr]; n.Healthy || n.LastError == nil {
				t.Errorf("admin status of %s: %+v, want unhealthy with the probe's error", addr, n)
			}
		}
		for _, p := range []*proc{p1, p2} {
			if err := p.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		}
		waitOneNodes(t, admin, "up", one1, one2)
		MustGetRealtime(t, base+"/api/realtime/9", http.StatusOK)
	})
}

// --one "" leaves the realtime API out of the dist: 404.
func TestDistRealtimeOff(t *testing.T) {
	page, admin := MustStartRealtimeDist(t, "")
	a, err := getRealtime("http://" + page + "/api/realtime/7")
	if err != nil {
		t.Fatal(err)
	}
	if a.status != http.StatusNotFound {
		t.Errorf("/api/realtime/7 without OneServers: %d, want 404", a.status)
	}
	var doc map[string]json.RawMessage
	if err := getAdminJSON("http://"+admin+"/_admin/status", &doc); err != nil {
		t.Fatal(err)
	}
	if string(doc["one_nodes"]) != "null" || len(doc["nodes"]) < 3 {
		t.Errorf("admin status without OneServers: one_nodes %s, nodes %s", doc["one_nodes"], doc["nodes"])
	}
}
