package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// Issue 11's acceptance: hot products are detected from the nginx tiers'
// request counts, spread over every app node, served by the dist tier
// itself, and go back to their hashed node by themselves; the page never
// depends on the hot service.

// inHotSet reports whether id is in the topology's hot set (GET /api/hot).
func inHotSet(topo *topology.Topology, id int64) (hotEntry, bool, error) {
	set, err := hotSet(topology.Addr(topo.Config().Ports.Hot))
	if err != nil {
		return hotEntry{}, false, err
	}
	e, ok := set[id]
	return e, ok, nil
}

// adminHotWith sends POST /_admin/hot with the given token ("" for none).
func adminHotWith(topo *topology.Topology, tok string, id int64, action string) (int, string, error) {
	body := fmt.Sprintf(`{"id":%d,"action":%q}`, id, action)
	req, err := http.NewRequest(http.MethodPost, topology.URL(topo.Config().Ports.Hot)+"/_admin/hot", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// hotResult is one page request of a hotLoad.
type hotResult struct {
	id       int64
	at, end  time.Time // scheduled, answered
	status   int       // 0: no answer
	servedBy string
	err      error
}

// hotLoad sends open-loop page requests through the dist tier and keeps
// every answer with its X-Served-By.
type hotLoad struct {
	url     func(int64) string
	client  *http.Client
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []hotResult
}

func newHotLoad(topo *topology.Topology) *hotLoad {
	return &hotLoad{url: itemURL(topo), client: loadgen.NewClient()}
}

// run sends rate requests a second for ids from next until ctx ends.
func (l *hotLoad) run(ctx context.Context, rate int, next func() int64) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		loadgen.Schedule(ctx, rate, time.Hour, func(_ int, at time.Time) {
			r := hotResult{id: next(), at: at}
			resp, err := l.client.Get(l.url(r.id))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil {
					r.status, r.servedBy = resp.StatusCode, resp.Header.Get("X-Served-By")
				}
			}
			r.end, r.err = time.Now(), err
			l.mu.Lock()
			l.results = append(l.results, r)
			l.mu.Unlock()
		})
	}()
}

// wait waits for every run to end (their contexts ended).
func (l *hotLoad) wait() {
	l.wg.Wait()
	l.client.CloseIdleConnections()
}

// snapshot returns the answers so far.
func (l *hotLoad) snapshot() []hotResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// failures lists the answers that were not 200.
func failures(rs []hotResult) []string {
	var out []string
	for _, r := range rs {
		if r.status != http.StatusOK {
			out = append(out, fmt.Sprintf("id %d at %s: status %d (X-Served-By %q) %v", r.id, r.at.Format("15:04:05.000"), r.status, r.servedBy, r.err))
		}
	}
	return out
}

// monitorGets counts GETs of key on a Redis server until stop. MONITOR
// is read over a plain connection: go-redis's Monitor (v9.23) drops the
// connection's stream after the +OK (its pool finds "unread data"), so it
// reports no command at all.
func monitorGets(tb testing.TB, port int, key string) (stop func() int) {
	tb.Helper()
	rdb := redisClient(tb, port)
	conn, err := net.Dial("tcp", topology.Addr(port))
	if err != nil {
		tb.Fatalf("monitor: %v", err)
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		conn.Close()
		tb.Fatalf("monitor: %v", err)
	}
	want := fmt.Sprintf(`"get" "%s"`, strings.ToLower(key))
	var n atomic.Int64
	var marks sync.Map // ECHO marks MONITOR has shown
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return // stop closed the connection
			}
			line = strings.ToLower(strings.TrimSpace(line))
			switch {
			case strings.Contains(line, want):
				n.Add(1)
			case strings.Contains(line, `"echo" "monitor-`):
				marks.Store(line[strings.Index(line, `"monitor-`):], true)
			}
		}
	}()
	// seen sends an ECHO of mark and waits until MONITOR has shown it:
	// then MONITOR is on, and has shown every command sent before it.
	seen := func(mark string) {
		testutil.Eventually(tb, 5*time.Second, func() error {
			if err := rdb.Echo(context.Background(), mark).Err(); err != nil {
				return err
			}
			if _, ok := marks.Load(`"` + mark + `"`); !ok {
				return fmt.Errorf("MONITOR has not shown ECHO %s", mark)
			}
			return nil
		})
	}
	seen("monitor-ready")
	return func() int {
		seen("monitor-end")
		conn.Close()
		<-done
		return int(n.Load())
	}
}

// TestHotSurge: a surge on one id over Zipf traffic is in the hot set and
// spread within 1 s of its first request, with at most one Redis read per
// app node; when it ends the id goes back to its hashed node within the
// cool-down (5 s) and a few seconds; no answer is anything but 200.
func TestHotSurge(t *testing.T) {
	topo := shared
	const (
		ids        = 10_000
		background = 400 // requests/s, Zipf over ids
		surge      = 400 // requests/s on one id
		surgeID    = 7_777
	)
	// The id's own node, while nothing is hot.
	home := MustGetPage(t, pageURL(topo, fmt.Sprint(surgeID))).servedBy
	if home != topology.App1 && home != topology.App2 {
		t.Fatalf("id %d served by %q before the surge", surgeID, home)
	}
	load := newHotLoad(topo)
	bgCtx, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	load.run(bgCtx, background, loadgen.Zipf(21, ids))
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := len(load.snapshot()); n < 3*background {
			return fmt.Errorf("%d background answers", n)
		}
		return nil
	})
	if _, hot, err := inHotSet(topo, surgeID); err != nil || hot {
		t.Fatalf("id %d hot before its surge (%v)", surgeID, err)
	}
	// The background's busiest id, for the "≥ 5× the next busiest".
	counts := map[int64]int{}
	bg := load.snapshot()
	for _, r := range bg {
		counts[r.id]++
	}
	busiest := 0
	for _, n := range counts {
		busiest = max(busiest, n)
	}
	span := bg[len(bg)-1].at.Sub(bg[0].at).Seconds()
	t.Logf("background: %d requests/s over %d ids; busiest id %.0f requests/s; surge %d requests/s (%.1f×)",
		background, ids, float64(busiest)/span, surge, surge/(float64(busiest)/span))
	if surge < 5*float64(busiest)/span {
		t.Fatalf("the surge is not 5× the busiest background id")
	}

	reads := monitorGets(t, topo.Config().Ports.RedisReplica, fmt.Sprintf("item:{%d}", surgeID))
	surgeCtx, stopSurge := context.WithCancel(context.Background())
	defer stopSurge()
	start := time.Now()
	load.run(surgeCtx, surge, func() int64 { return surgeID })

	var detected time.Duration
	mustPoll(t, 3*time.Second, func() error {
		_, hot, err := inHotSet(topo, surgeID)
		if err != nil || !hot {
			return fmt.Errorf("id %d not hot (%v)", surgeID, err)
		}
		detected = time.Since(start)
		return nil
	})
	// Spread: served by the dist tier itself, or by both app nodes.
	var spread time.Duration
	mustPoll(t, 3*time.Second, func() error {
		by := map[string]time.Time{}
		for _, r := range load.snapshot() {
			if r.id == surgeID && r.at.After(start) && r.status == http.StatusOK {
				if _, seen := by[r.servedBy]; !seen {
					by[r.servedBy] = r.end
				}
			}
		}
		switch {
		case !by["dist"].IsZero():
			spread = by["dist"].Sub(start)
		case !by[topology.App1].IsZero() && !by[topology.App2].IsZero():
			spread = max(by[topology.App1].Sub(start), by[topology.App2].Sub(start))
		default:
			return fmt.Errorf("id %d served only by %v", surgeID, by)
		}
		return nil
	})
	t.Logf("surge on id %d: in /api/hot %s and spread %s after its first request", surgeID, detected.Round(time.Millisecond), spread.Round(time.Millisecond))
	if detected > time.Second || spread > time.Second {
		t.Errorf("detection %s, spread %s: want both within 1 s of the surge start", detected, spread)
	}
	// Two more seconds of surge, then it ends.
	surgeEnd := time.Now().Add(2 * time.Second)
	testutil.Eventually(t, 5*time.Second, func() error {
		if time.Now().Before(surgeEnd) {
			return fmt.Errorf("surge still on")
		}
		return nil
	})
	stopSurge()
	n := reads()
	t.Logf("GETs of item:{%d} on the replica from the surge's start to its end: %d", surgeID, n)
	if n > 2 {
		t.Errorf("the replica had %d GETs of item:{%d} during the spread: want at most one per app node", n, surgeID)
	}
	// Cool-down (5 s) plus a few seconds: back on its hashed node.
	ended := time.Now()
	mustPoll(t, 10*time.Second, func() error {
		if _, hot, err := inHotSet(topo, surgeID); err != nil || hot {
			return fmt.Errorf("id %d still hot (%v)", surgeID, err)
		}
		for range 3 {
			p, err := getPage(pageURL(topo, fmt.Sprint(surgeID)))
			if err != nil {
				return err
			}
			if p.status != http.StatusOK || p.servedBy != home {
				return fmt.Errorf("id %d: %d from %q, want 200 from its node %s", surgeID, p.status, p.servedBy, home)
			}
		}
		return nil
	})
	t.Logf("surge over: id %d back on %s after %s", surgeID, home, time.Since(ended).Round(time.Millisecond))
	stopBackground()
	load.wait()
	rs := load.snapshot()
	if bad := failures(rs); len(bad) > 0 {
		t.Errorf("%d of %d answers were not 200, e.g. %v", len(bad), len(rs), bad[:min(5, len(bad))])
	}
}

// TestHotAdminNeedsToken: pin without the token, or with a wrong one, is
// refused (401) and changes nothing.
func TestHotAdminNeedsToken(t *testing.T) {
	const id = 4_321
	for _, tok := range []string{"", "wrong-" + token} {
		status, body, err := adminHotWith(shared, tok, id, "pin")
		if err != nil || status != http.StatusUnauthorized {
			t.Errorf("pin with token %q: %d %s %v, want 401", tok, status, body, err)
		}
	}
	if _, hot, err := inHotSet(shared, id); err != nil || hot {
		t.Fatalf("id %d hot after refused pins (%v)", id, err)
	}
}

// TestHotServiceKilled: the hot service SIGKILLed under load on a pinned
// id and Zipf traffic: every answer is 200; the supervisor restarts it and
// it has the pin back from its state file.
func TestHotServiceKilled(t *testing.T) {
	const id = 2_468
	MustPin(t, shared, id)
	load := newHotLoad(shared)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	load.run(ctx, 300, loadgen.Zipf(22, 10_000))
	load.run(ctx, 300, func() int64 { return id })
	waitAnswers := func(n int) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() error {
			if got := len(load.snapshot()); got < n {
				return fmt.Errorf("%d answers, want %d", got, n)
			}
			return nil
		})
	}
	waitAnswers(600)
	hot := shared.Component(topology.Hot)
	before := hot.Status()
	if err := syscall.Kill(before.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitAnswers(len(load.snapshot()) + 1800) // ~3 s; the supervisor restarts it meanwhile
	if err := waitRestarted(hot, before); err != nil {
		t.Fatal(err)
	}
	stop()
	load.wait()
	rs := load.snapshot()
	if bad := failures(rs); len(bad) > 0 {
		t.Errorf("%d of %d answers were not 200 with the hot service killed, e.g. %v", len(bad), len(rs), bad[:min(5, len(bad))])
	}
	testutil.Eventually(t, 15*time.Second, func() error {
		e, ok, err := inHotSet(shared, id)
		if err != nil || !ok || !e.Pinned {
			return fmt.Errorf("after the restart: %+v in set %v (%v)", e, ok, err)
		}
		return nil
	})
}

// mustPoll checks fn every 10 ms until it passes; after limit it fails the
// test with fn's last error. For deadlines of a second, where Eventually's
// growing interval would be too coarse.
func mustPoll(tb testing.TB, limit time.Duration, fn func() error) {
	tb.Helper()
	if err := testutil.PollEvery(limit, 10*time.Millisecond, fn); err != nil {
		tb.Fatalf("after %s: %v", limit, err)
	}
}
