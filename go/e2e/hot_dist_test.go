package e2e

import (
	"bytes"
	"fmt"
	"github.com/detailpage/detailpage/go/internal/benchrow"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// The dist tier's hot handling (lua/detailpage/hot.lua) against the real
// hot service, app nodes, Redis and sync: a pinned id is answered by the
// dist itself, an edit to it shows through the dist within a second, an
// unpinned id goes back to its hashed node, and a frozen hot service costs
// no page.

// hotAdmin pins or unpins id on the hot service (POST /_admin/hot).
func hotAdmin(t *topology.Topology, id int64, action string) error {
	status, body, err := adminHotWith(t, token, id, action)
	if err != nil {
		return fmt.Errorf("hot %s %d: %w", action, id, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("hot %s %d: %d %.200s", action, id, status, body)
	}
	return nil
}

// MustPin pins id and unpins it when the test ends (an unpin of an id
// that is not pinned is a no-op).
func MustPin(tb testing.TB, t *topology.Topology, id int64) {
	tb.Helper()
	if err := hotAdmin(t, id, "pin"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := hotAdmin(t, id, "unpin"); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
}

// distHot is the hot section of the dist admin's GET /_admin/status.
type distHot struct {
	Enabled bool `json:"enabled"`
	IDs     map[string]struct {
		Copy *struct {
			ItemVersion int64 `json:"item_version"`
			ShopID      int64 `json:"shop_id"`
			ShopVersion int64 `json:"shop_version"`
			Bytes       int   `json:"bytes"`
		} `json:"copy"`
	} `json:"ids"`
	LastPollAgeMS *int64 `json:"last_poll_age_ms"`
	PollErrors    int    `json:"poll_errors"`
	Expired       bool   `json:"expired"`
}

func distHotStatus(t *topology.Topology) (distHot, error) {
	var doc struct {
		Hot distHot `json:"hot"`
	}
	err := getAdminJSON(distAdminURL(t), &doc)
	return doc.Hot, err
}

// servedBy polls the page until it is served by want ("dist" also needs
// X-Cache: hot) and returns how long that took. Every 25 ms: well below
// the hot rule's floor (100 requests/s), so the polling alone never makes
// an id hot.
func servedBy(url, want string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	err := testutil.PollEvery(limit, 25*time.Millisecond, func() error {
		p, err := getPage(url)
		if err != nil {
			return err
		}
		if p.status != http.StatusOK || p.servedBy != want || (want == "dist" && p.cache != "hot") {
			return fmt.Errorf("%s: status %d, X-Served-By %q, X-Cache %q; want %s", url, p.status, p.servedBy, p.cache, want)
		}
		return nil
	})
	return time.Since(start), err
}

func TestHotIDServedByDist(t *testing.T) {
	const id = 4711
	url := pageURL(shared, strconv.Itoa(id))
	owner := MustGetPage(t, url).servedBy
	if owner != "app1" && owner != "app2" {
		t.Fatalf("before the pin: X-Served-By %q, want its hashed app node", owner)
	}

	MustPin(t, shared, id)
	took, err := servedBy(url, "dist", time.Second)
	if err != nil {
		t.Fatalf("pinned id not served by the dist within 1 s: %v", err)
	}
	t.Logf("pinned id served by the dist after %s", took)
	p := MustGetPage(t, url)
	if !strings.HasPrefix(p.body, "<!DOCTYPE html>") || !strings.Contains(p.body, escape(MustProduct(t, shared, id).Name)) {
		t.Fatalf("the dist copy is not the product's page: %.200q", p.body)
	}
	st, err := distHotStatus(shared)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.IDs[strconv.Itoa(id)].Copy; c == nil || c.ItemVersion == 0 || c.Bytes != len(p.body) {
		t.Errorf("dist admin status: hot id %d copy %+v, want its versions and %d bytes", id, c, len(p.body))
	}

	t.Run("edit visible through the dist within 1 s", func(t *testing.T) {
		var visible, copied []time.Duration
		for i := range 5 {
			name := fmt.Sprintf("Hot <edit> %d-%d", i, time.Now().UnixNano())
			MustRename(t, shared, id, name)
			start := time.Now()
			took, err := pageShows(url, escape(name), time.Second)
			if err != nil {
				t.Fatalf("edit %d not visible through the dist within 1 s: %v", i, err)
			}
			visible = append(visible, took)
			// and the dist serves it again, from a copy of the new version
			if _, err := servedBy(url, "dist", time.Second); err != nil {
				t.Fatalf("edit %d: no new dist copy: %v", i, err)
			}
			copied = append(copied, time.Since(start))
			if p := MustGetPage(t, url); !strings.Contains(p.body, escape(name)) {
				t.Fatalf("edit %d: the new dist copy lacks the edit", i)
			}
		}
		t.Logf("edits of the hot id visible through the dist after %v; served from a new dist copy after %v", visible, copied)
	})

	t.Run("unpinned id goes back to its node", func(t *testing.T) {
		if err := hotAdmin(shared, id, "unpin"); err != nil {
			t.Fatal(err)
		}
		// an unpinned id leaves the hot set at once (unless the rule holds
		// for it); the dist learns it on its next poll
		took, err := servedBy(url, owner, 10*time.Second)
		if err != nil {
			t.Fatalf("unpinned id not back on %s: %v", owner, err)
		}
		t.Logf("unpinned id back on its node %s after %s", owner, took)
	})
}

// A frozen hot service (SIGSTOP) costs no page: the dist keeps the last
// hot set for 10 s after the last good poll, then hashes every id, while
// pages keep coming.
func TestHotServicePausedNoErrors(t *testing.T) {
	const id = 4712
	url := pageURL(shared, strconv.Itoa(id))
	owner := MustGetPage(t, url).servedBy
	MustPin(t, shared, id)
	if _, err := servedBy(url, "dist", time.Second); err != nil {
		t.Fatalf("pinned id not served by the dist: %v", err)
	}
	hot := shared.Component(topology.Hot)
	t.Cleanup(func() {
		if err := hot.Resume(); err != nil {
			t.Errorf("resume the hot service: %v", err)
		}
	})

	// open loop: the hot id and its neighbours, through the freeze and
	// past the 10 s the dist keeps the last hot set
	const rate, dur = 200, 13 * time.Second
	next := int64(0)
	ids := func() int64 { next++; return id + next%4 } // 4712..4715, a quarter hot
	done := make(chan loadgen.Report, 1)
	go func() {
		done <- loadgen.Run(t.Context(), loadgen.NewClient(), rate, dur,
			func(id int64) string { return pageURL(shared, strconv.FormatInt(id, 10)) }, ids)
	}()
	if err := hot.Pause(); err != nil {
		t.Fatal(err)
	}
	// after the keep period the id is hashed again
	took, err := servedBy(url, owner, 12*time.Second)
	if err != nil {
		t.Errorf("with the hot service frozen the id never went back to %s: %v", owner, err)
	} else {
		t.Logf("hot service frozen: id back on its node after %s", took)
	}
	rep := <-done
	t.Logf("pages through the freeze: %s", rep.Summary())
	bad := 0
	for _, r := range rep.Results {
		if r.Status != http.StatusOK {
			bad++
			if bad <= 5 {
				t.Errorf("id %d at %s: status %d %v", r.ID, r.At, r.Status, r.Err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d pages not 200 with the hot service frozen", bad, len(rep.Results))
	}
	st, err := distHotStatus(shared)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Expired || st.PollErrors == 0 {
		t.Errorf("dist admin status with the hot service frozen: expired %v, poll errors %d", st.Expired, st.PollErrors)
	}

	if err := hot.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := servedBy(url, "dist", 3*time.Second); err != nil {
		t.Errorf("hot service back: the pinned id is not served by the dist again: %v", err)
	}
}

// A pinned id whose product does not exist answers 404 through the dist,
// never a copy and never a 5xx.
func TestHotIDNotFound(t *testing.T) {
	const id = 987654321987
	url := pageURL(shared, strconv.Itoa(id))
	MustPin(t, shared, id)
	deadline := time.Now().Add(time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		p := MustGetPage(t, url)
		if p.status != http.StatusNotFound || p.servedBy == "dist" {
			t.Fatalf("request %d: status %d, X-Served-By %q; want 404 from an app node", n, p.status, p.servedBy)
		}
		time.Sleep(25 * time.Millisecond) // pacing, not a wait for a condition
	}
}

// While the dist cannot read the invalidation stream (replica frozen) it
// keeps no copies: the hot id goes round robin over both app nodes, which
// answer from their local caches; when the replica is back the dist
// serves it again.
func TestHotIDSpreadWithoutCopy(t *testing.T) {
	const id = 4716
	url := pageURL(shared, strconv.Itoa(id))
	MustGetPage(t, url)
	MustPin(t, shared, id)
	if _, err := servedBy(url, "dist", time.Second); err != nil {
		t.Fatalf("pinned id not served by the dist: %v", err)
	}
	replica := shared.Component(topology.RedisReplica)
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := replica.Resume(); err != nil {
			t.Errorf("resume the replica: %v", err)
		}
	})
	// the stream unread for 3 s: copies dropped; then both nodes answer
	err := testutil.PollEvery(6*time.Second, 25*time.Millisecond, func() error {
		seen := map[string]int{}
		for range 6 {
			p, err := getPage(url)
			if err != nil {
				return err
			}
			if p.status != http.StatusOK {
				return fmt.Errorf("status %d from %s", p.status, p.servedBy)
			}
			seen[p.servedBy]++
		}
		if seen["app1"] == 0 || seen["app2"] == 0 {
			return fmt.Errorf("served by %v, want both app nodes", seen)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("replica frozen: the hot id is not spread over both nodes: %v", err)
	}
	if err := replica.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := servedBy(url, "dist", 3*time.Second); err != nil {
		t.Errorf("replica back: the hot id is not served by the dist again: %v", err)
	}
}

// BenchmarkHotIDVsStatic: requests/s of one hot id answered by the dist
// tier from its own copy, next to plain nginx (same worker count) serving
// the same bytes as a static file, with wrk in alternating rounds (this
// machine's speed drifts); medians, and their ratio (the target: 0.9x).
// scripts/bench.sh takes the same figure on the default ports.
func BenchmarkHotIDVsStatic(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk is not installed")
	}
	const id, rounds = 4730, 3
	url := pageURL(shared, strconv.Itoa(id))
	MustPin(b, shared, id)
	if _, err := servedBy(url, "dist", 3*time.Second); err != nil {
		b.Fatalf("pinned id not served by the dist: %v", err)
	}
	p := MustGetPage(b, url)
	staticURL := mustStaticNginx(b, "/item/"+strconv.Itoa(id)+".html", p.body)
	if got := MustGetPage(b, staticURL); got.body != p.body {
		b.Fatal("the static file is not the hot page's bytes")
	}
	b.ResetTimer()
	var hot, static []float64
	for range rounds {
		hot = append(hot, mustWrk(b, url))
		static = append(static, mustWrk(b, staticURL))
	}
	if p := MustGetPage(b, url); p.servedBy != "dist" || p.cache != "hot" {
		b.Errorf("after the runs: X-Served-By %q, X-Cache %q; want the dist copy", p.servedBy, p.cache)
	}
	median := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	h, st := median(hot), median(static)
	b.Logf("page of %d bytes; hot id through the dist %v req/s, static file %v req/s", len(p.body), hot, static)
	b.ReportMetric(h, "hot-req/s")
	b.ReportMetric(st, "static-req/s")
	b.ReportMetric(h/st, "hot/static")
	benchrow.Record(b, benchrow.Row{What: "hot id at the dist tier / nginx static file (Go bench, e2e ports)", Figure: benchrow.Ratio(h, st), Target: "≥ 0.9×", Met: h/st >= 0.9})
	b.ReportMetric(0, "ns/op")
}

// mustStaticNginx starts a plain nginx with two workers serving body at
// path and returns its URL; it stops when the benchmark ends.
func mustStaticNginx(tb testing.TB, path, body string) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "root", filepath.Dir(path)), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "root", path), []byte(body), 0o644); err != nil {
		tb.Fatal(err)
	}
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log warn;
%[3]s
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000;
    client_body_temp_path %[1]s/tmp;
    proxy_temp_path %[1]s/tmp;
    fastcgi_temp_path %[1]s/tmp;
    uwsgi_temp_path %[1]s/tmp;
    scgi_temp_path %[1]s/tmp;
    server {
        listen %[2]s reuseport;
        root %[1]s/root;
        default_type text/html;
    }
}
`, dir, addr, user)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("nginx", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the static nginx: %v", err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	u := "http://" + addr + path
	testutil.Eventually(tb, 5*time.Second, func() error {
		_, err := getPage(u)
		return err
	})
	return u
}

var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// mustWrk runs wrk -t2 -c64 -d5s on url and returns requests/s; any
// non-2xx answer fails the benchmark.
func mustWrk(tb testing.TB, url string) float64 {
	tb.Helper()
	out, err := exec.Command("wrk", "-t2", "-c64", "-d5s", url).CombinedOutput()
	if err != nil {
		tb.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	if bytes.Contains(out, []byte("Non-2xx")) {
		tb.Fatalf("wrk %s: non-2xx answers\n%s", url, out)
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("wrk %s: no Requests/sec\n%s", url, out)
	}
	rps, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		tb.Fatal(err)
	}
	return rps
}
