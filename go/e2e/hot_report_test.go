package e2e

// Hot-product reporting from the app tier (lua/detailpage/hotcount.lua)
// against real processes: an app nginx node started here with --hot
// pointing at a `detailpage hot` started here too (reading the shared
// topology's replica and direct-data service), so that freezing or killing
// that hot service touches nothing the other tests use.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/detailpage/detailpage/go/internal/benchrow"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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

// hotFloor is the hot rule's floor of the tests' hot service (req/s): a
// test's burst is far above it, background traffic on other ids too low
// to matter.
const hotFloor = 20

// proc is a process a test starts itself, in its own process group (nginx
// workers included), stopped when the test ends.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

var procSeq atomic.Int64

// MustStartProc starts argv with the admin token, its output in a log
// file under the shared topology's var dir, and waits until health answers
// 200.
func MustStartProc(tb testing.TB, name, health string, argv ...string) *proc {
	tb.Helper()
	logPath := filepath.Join(shared.Config().VarDir, fmt.Sprintf("%s-%d.log", name, procSeq.Add(1)))
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "DETAILPAGE_ADMIN_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	tb.Cleanup(p.stop)
	testutil.Eventually(tb, 20*time.Second, func() error {
		select {
		case <-p.done:
			return testutil.StopPolling(fmt.Errorf("%s exited at start: %s", name, tail(logPath)))
		default:
		}
		resp, err := client.Get(health)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", health, resp.Status)
		}
		return nil
	})
	return p
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (p *proc) signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group: SIGTERM (after SIGCONT, should it be
// frozen), SIGKILL after 10 s, then SIGKILL to whatever of the group is
// left (nginx workers outlive a killed master).
func (p *proc) stop() {
	if !p.exited() {
		_ = p.signal(syscall.SIGCONT)
		_ = p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.signal(syscall.SIGKILL)
			<-p.done
		}
	}
	_ = p.signal(syscall.SIGKILL)
}

// kill SIGKILLs the process group and waits for the process.
func (p *proc) kill(tb testing.TB) {
	tb.Helper()
	if err := p.signal(syscall.SIGKILL); err != nil {
		tb.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// MustStartHot starts `detailpage hot` on addr with the tests' low floor.
func MustStartHot(tb testing.TB, addr string) *proc {
	tb.Helper()
	return MustStartProc(tb, "hot", "http://"+addr+"/healthz", builtBinary, "hot",
		"--listen", addr, "--state", "", "--floor", strconv.Itoa(hotFloor), "--window", "2s", "--cooldown", "5s")
}

// MustStartAppNode starts an app nginx node of its own with --hot hot ("":
// reporting off), reading the shared topology's replica and direct-data
// service, and returns its base URL and the process.
func MustStartAppNode(tb testing.TB, name, hot string) (string, *proc) {
	tb.Helper()
	addr := topology.Addr(testutil.FreePort(tb))
	prefix := filepath.Join(shared.Config().VarDir, fmt.Sprintf("%s-%d", name, procSeq.Add(1)))
	return "http://" + addr, MustStartAppNodeAt(tb, name, addr, prefix, hot)
}

// MustStartAppNodeAt is MustStartAppNode on a given address and prefix
// (the same node started again).
func MustStartAppNodeAt(tb testing.TB, name, addr, prefix, hot string) *proc {
	tb.Helper()
	c := shared.Config()
	p := MustStartProc(tb, name, "http://"+addr+"/_health", builtBinary, "nginx", "--tier", "app", "--name", name,
		"--listen", addr, "--prefix", prefix, "--root", repoRoot(),
		"--replica", topology.Addr(c.Ports.RedisReplica), "--direct", topology.Addr(c.Ports.Direct), "--hot", hot)
	p.log = filepath.Join(prefix, "logs", "error.log")
	return p
}

type hotEntry struct {
	ID     int64   `json:"id"`
	Rate   float64 `json:"rate"`
	Pinned bool    `json:"pinned"`
}

// hotSet reads GET /api/hot of the hot service at addr.
func hotSet(addr string) (map[int64]hotEntry, error) {
	resp, err := client.Get("http://" + addr + "/api/hot")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/hot: %s %s", resp.Status, b)
	}
	var doc struct {
		Hot []hotEntry `json:"hot"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("GET /api/hot: %w", err)
	}
	out := make(map[int64]hotEntry, len(doc.Hot))
	for _, e := range doc.Hot {
		out[e.ID] = e
	}
	return out, nil
}

// hotReporting is the hot_reporting part of an app node's /_admin/status.
type hotReporting struct {
	Enabled   bool `json:"enabled"`
	Reports   int  `json:"reports"`
	Instances []struct {
		Instance string `json:"instance"`
		Failing  bool   `json:"failing"`
		Sent     int    `json:"sent"`
		Failed   int    `json:"failed"`
		Skipped  int    `json:"skipped"`
	} `json:"instances"`
}

func nodeReporting(base string) (hotReporting, error) {
	var st struct {
		Hot hotReporting `json:"hot_reporting"`
	}
	err := getAdminJSON(base+"/_admin/status", &st)
	return st.Hot, err
}

// waitReporting waits until the node's one hot instance is (or is not)
// failing.
func waitReporting(tb testing.TB, base string, failing bool, limit time.Duration) {
	tb.Helper()
	testutil.Eventually(tb, limit, func() error {
		st, err := nodeReporting(base)
		if err != nil {
			return err
		}
		if !st.Enabled || len(st.Instances) != 1 {
			return testutil.StopPolling(fmt.Errorf("reporting %+v: want one instance", st))
		}
		if st.Instances[0].Failing != failing {
			return fmt.Errorf("instance %+v: want failing=%v", st.Instances[0], failing)
		}
		return nil
	})
}

// hammer requests url (with the admin token) in a loop on one connection
// until stop is closed, and returns the statuses seen.
func hammer(url string, stop <-chan struct{}) (map[int]int, error) {
	statuses := map[int]int{}
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	for {
		select {
		case <-stop:
			return statuses, nil
		default:
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return statuses, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := c.Do(req)
		if err != nil {
			return statuses, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses[resp.StatusCode]++
	}
}

// Page views on an app node reach the hot service: a burst on one id makes
// it hot there, while as many /_admin/page calls for another id, in the
// same windows, are not counted.
func TestHotReportCountsPages(t *testing.T) {
	hotAddr := topology.Addr(testutil.FreePort(t))
	MustStartHot(t, hotAddr)
	base, _ := MustStartAppNode(t, "hotapp", hotAddr)
	ids := coldIDs(t, 2)
	viewed, warmed := ids[0], ids[1]
	wantID, _ := strconv.ParseInt(viewed, 10, 64)
	warmedID, _ := strconv.ParseInt(warmed, 10, 64)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var viewStatuses, adminStatuses map[int]int
	var viewErr, adminErr error
	first := time.Now()
	wg.Go(func() { viewStatuses, viewErr = hammer(base+"/item/"+viewed+".html", stop) })
	wg.Go(func() { adminStatuses, adminErr = hammer(base+"/_admin/page/"+warmed, stop) })
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()

	var detected time.Duration
	testutil.Eventually(t, 10*time.Second, func() error {
		set, err := hotSet(hotAddr)
		if err != nil {
			return err
		}
		if _, ok := set[wantID]; !ok {
			return fmt.Errorf("%s not hot yet: hot set %v", viewed, set)
		}
		detected = time.Since(first)
		return nil
	})
	// Both bursts keep going for another second (four report intervals):
	// the warmed id, at the same rate, must not turn up.
	deadline := time.Now().Add(time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ; time.Now().Before(deadline); <-tick.C {
		set, err := hotSet(hotAddr)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := set[warmedID]; ok {
			t.Fatalf("/_admin/page/%s was counted: hot with rate %.1f", warmed, e.Rate)
		}
		if _, ok := set[wantID]; !ok {
			t.Fatalf("%s left the hot set during its burst", viewed)
		}
	}
	halt()
	if viewErr != nil || adminErr != nil {
		t.Fatalf("bursts: %v %v", viewErr, adminErr)
	}
	if len(viewStatuses) != 1 || viewStatuses[http.StatusOK] == 0 || len(adminStatuses) != 1 || adminStatuses[http.StatusOK] == 0 {
		t.Fatalf("statuses: pages %v, /_admin/page %v; want only 200", viewStatuses, adminStatuses)
	}
	t.Logf("hot %s after %s (%d page views; %d /_admin/page calls for %s, not counted)",
		viewed, detected.Round(time.Millisecond), viewStatuses[http.StatusOK], adminStatuses[http.StatusOK], warmed)
}

// The topology's app nodes report to its hot service.
func TestTopologyAppNodesReport(t *testing.T) {
	want := topology.Addr(shared.Config().Ports.Hot)
	for _, node := range []string{topology.App1, topology.App2} {
		base := appURL(shared, node)
		MustGetPage(t, base+"/item/"+coldIDs(t, 1)[0]+".html")
		testutil.Eventually(t, 5*time.Second, func() error {
			st, err := nodeReporting(base)
			if err != nil {
				return err
			}
			if !st.Enabled || len(st.Instances) != 1 || st.Instances[0].Instance != want {
				return testutil.StopPolling(fmt.Errorf("%s reports %+v, want to %s", node, st, want))
			}
			if st.Instances[0].Sent == 0 || st.Instances[0].Failing {
				return fmt.Errorf("%s: %+v, want reports sent", node, st.Instances[0])
			}
			return nil
		})
	}
}

// GET /_admin/page/<id> needs the token, answers through the levels like
// the page, and tells the versions the page was built from.
func TestAdminPageVersions(t *testing.T) {
	base := appURL(shared, topology.App1)
	id := coldIDs(t, 1)[0]
	get := func(path, tok string) (*http.Response, string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	for _, tok := range []string{"", "wrong-token"} {
		if resp, _ := get("/_admin/page/"+id, tok); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("token %q: %s, want 401", tok, resp.Status)
		}
	}
	for _, bad := range []string{"0", "07", "abc", "1234567890123456789", "7/x"} {
		if resp, body := get("/_admin/page/"+bad, token); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/_admin/page/%s: %s %.100s, want 400", bad, resp.Status, body)
		}
	}

	n, _ := strconv.ParseInt(id, 10, 64)
	p := MustProduct(t, shared, n)
	resp, body := get("/_admin/page/"+id, token)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, escape(p.Name)) {
		t.Fatalf("/_admin/page/%s: %s, want 200 with the product's name", id, resp.Status)
	}
	if got := resp.Header.Get("X-Cache"); got != "redis" {
		t.Errorf("first /_admin/page/%s: X-Cache %q, want redis (a cold id)", id, got)
	}
	rdb := redisClient(t, shared.Config().Ports.RedisReplica)
	var item struct {
		Version int64 `json:"version"`
		ShopID  int64 `json:"shop_id"`
	}
	raw, err := rdb.Get(t.Context(), "item:{"+id+"}").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &item); err != nil {
		t.Fatal(err)
	}
	var shop struct {
		Version int64 `json:"version"`
	}
	raw, err = rdb.Get(t.Context(), fmt.Sprintf("shop:{s%d}", item.ShopID)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &shop); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"X-Item-Version": strconv.FormatInt(item.Version, 10),
		"X-Shop-Id":      strconv.FormatInt(item.ShopID, 10),
		"X-Shop-Version": strconv.FormatInt(shop.Version, 10),
		"X-Served-By":    topology.App1,
	}
	for h, v := range want {
		if got := resp.Header.Get(h); got != v {
			t.Errorf("%s: %q, want %q", h, got, v)
		}
	}
	// The node keeps what it fetched: the page itself is now a local hit,
	// without version headers.
	page := MustGetPage(t, base+"/item/"+id+".html")
	if page.status != http.StatusOK || (page.cache != "L1" && page.cache != "L2") || page.body != body {
		t.Errorf("page after /_admin/page: %d X-Cache %q (same body: %v), want the same page from L1 or L2",
			page.status, page.cache, page.body == body)
	}
	missing := strconv.Itoa(benchProducts + 50_000)
	if resp, _ := get("/_admin/page/"+missing, token); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/_admin/page/%s (no such product): %s, want 404", missing, resp.Status)
	}
}

var (
	failingLine = regexp.MustCompile(`\[hotcount\] hot service \S+ is failing`)
	recoverLine = regexp.MustCompile(`\[hotcount\] hot service \S+ answers reports again`)
)

// With its hot service frozen (SIGSTOP) and then killed, an app node keeps
// answering every page at once; reporting logs the failure once and the
// recovery once, and counts reach the service again when it is back.
func TestHotServiceDownPagesUnaffected(t *testing.T) {
	hotAddr := topology.Addr(testutil.FreePort(t))
	hot := MustStartHot(t, hotAddr)
	base, app := MustStartAppNode(t, "hotapp", hotAddr)
	waitReporting(t, base, false, 5*time.Second)

	// Zipf traffic over the catalog for the whole test, open loop.
	const rate = 300
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var rep loadgen.Report
	var traffic sync.WaitGroup
	c := loadgen.NewClient()
	defer c.CloseIdleConnections()
	traffic.Go(func() {
		rep = loadgen.Run(ctx, c, rate, time.Minute, func(id int64) string { return fmt.Sprintf("%s/item/%d.html", base, id) },
			loadgen.Zipf(11, benchProducts))
	})
	type phase struct {
		name       string
		start, end time.Time
	}
	var phases []phase
	mark := func(name string) {
		now := time.Now()
		if len(phases) > 0 {
			phases[len(phases)-1].end = now
		}
		phases = append(phases, phase{name: name, start: now})
	}
	// Every report goes out: the node reports a second, the service is up.
	testutil.Eventually(t, 5*time.Second, func() error {
		st, err := nodeReporting(base)
		if err != nil {
			return err
		}
		if st.Instances[0].Sent < 4 {
			return fmt.Errorf("reports sent so far: %+v", st.Instances[0])
		}
		return nil
	})
	mark("hot service up")
	wait(t, 2*time.Second)

	mark("hot service frozen (SIGSTOP)")
	if err := hot.signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitReporting(t, base, true, 5*time.Second)
	wait(t, 3*time.Second)
	if err := hot.signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	mark("hot service resumed")
	waitReporting(t, base, false, 5*time.Second)
	wait(t, time.Second)

	mark("hot service killed (SIGKILL)")
	hot.kill(t)
	waitReporting(t, base, true, 5*time.Second)
	wait(t, 3*time.Second)

	mark("hot service restarted")
	MustStartHot(t, hotAddr)
	waitReporting(t, base, false, 5*time.Second)
	// Counts reach the new instance: the background traffic's busiest id
	// is far above the floor.
	testutil.Eventually(t, 5*time.Second, func() error {
		set, err := hotSet(hotAddr)
		if err != nil {
			return err
		}
		if len(set) == 0 {
			return errors.New("nothing hot yet on the restarted hot service")
		}
		return nil
	})
	mark("end")
	cancel()
	traffic.Wait()

	if len(rep.Results) < rate*5 {
		t.Fatalf("only %d requests ran", len(rep.Results))
	}
	for _, ph := range phases[:len(phases)-1] {
		var lat []time.Duration
		statuses := map[int]int{}
		for _, r := range rep.Results {
			at := rep.Start.Add(r.At)
			if at.Before(ph.start) || !at.Before(ph.end) || errors.Is(r.Err, context.Canceled) {
				continue
			}
			lat = append(lat, r.Latency)
			statuses[r.Status]++
		}
		slices.Sort(lat)
		p50, p99 := loadgen.Percentile(lat, 0.5), loadgen.Percentile(lat, 0.99)
		t.Logf("%-30s %5d pages, status %v, latency p50 %s p99 %s max %s", ph.name, len(lat), statuses,
			p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), loadgen.Percentile(lat, 1).Round(10*time.Microsecond))
		if len(statuses) != 1 || statuses[http.StatusOK] == 0 {
			t.Errorf("%s: statuses %v, want only 200", ph.name, statuses)
		}
		// A page that waited on a report would take the report's 200 ms
		// timeout (and during the freeze every page would).
		if p99 >= 200*time.Millisecond {
			t.Errorf("%s: p99 %s, want pages unaffected (below the report's 200 ms timeout)", ph.name, p99)
		}
	}
	logs := MustReadFile(t, app.log)
	if n := len(failingLine.FindAllString(logs, -1)); n != 2 {
		t.Errorf("%d \"is failing\" lines in the node's log, want 2 (freeze, kill):\n%s", n, strings.Join(failingLine.FindAllString(logs, -1), "\n"))
	}
	if n := len(recoverLine.FindAllString(logs, -1)); n != 2 {
		t.Errorf("%d \"answers reports again\" lines in the node's log, want 2 (resume, restart)", n)
	}
}

// mustGroupCPU is the CPU time (user and system) used so far by the
// processes of process group pgid: an nginx node's master and workers.
// Their CPU per request is a steadier figure than requests/s on a machine
// other work shares.
func mustGroupCPU(tb testing.TB, pgid int) time.Duration {
	tb.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		tb.Fatal(err)
	}
	var ticks int64
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process has gone
		}
		// pid (comm) state ppid pgrp ... utime(14) stime(15): comm may hold
		// spaces, so count the fields after its closing parenthesis.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		s, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("%s: utime %q stime %q", path, f[11], f[12])
		}
		ticks += u + s
	}
	if ticks == 0 {
		tb.Fatalf("no process in group %d", pgid)
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// Linux (every architecture Go supports).
const clockTicks = 100

// BenchmarkHotReportingCost: requests/s of an app node's L1 hit with hot
// reporting on (to a hot service of its own) and off (--hot ""), measured
// with wrk in alternating rounds. The same node (address, prefix, config
// but for --hot) is started afresh for each run: two nodes side by side
// differ by several percent on this shared machine whatever they run
// (worker placement), which a restart per run turns into noise that the
// medians over the rounds absorb. The order flips every round (the
// machine's speed drifts). The target: reporting costs at most 3%
// (on/off ≥ 0.97). Next to requests/s, the node's CPU time per request
// (master and workers; steadier when other work shares the machine).
// BENCH_ROUNDS (default 8), BENCH_DURATION (3s), BENCH_CONNECTIONS (64),
// BENCH_THREADS (2) as in scripts/bench.sh.
func BenchmarkHotReportingCost(b *testing.B) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		b.Skip("wrk is not installed (scripts/install-deps.sh --test)")
	}
	env := func(name, def string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return def
	}
	rounds, err := strconv.Atoi(env("BENCH_ROUNDS", "8"))
	if err != nil || rounds < 1 {
		b.Fatalf("BENCH_ROUNDS=%q: want a positive integer", os.Getenv("BENCH_ROUNDS"))
	}
	args := []string{"-t" + env("BENCH_THREADS", "2"), "-c" + env("BENCH_CONNECTIONS", "64"), "-d" + env("BENCH_DURATION", "3s")}

	hotAddr := topology.Addr(testutil.FreePort(b))
	MustStartHot(b, hotAddr)
	addr := topology.Addr(testutil.FreePort(b))
	prefix := filepath.Join(shared.Config().VarDir, fmt.Sprintf("hotbench-%d", procSeq.Add(1)))
	id := coldIDs(b, 1)[0]
	url := "http://" + addr + "/item/" + id + ".html"
	variants := []struct{ name, hot string }{{"on", hotAddr}, {"off", ""}}

	rps, cpu := map[string][]float64{}, map[string][]float64{}
	var ratios, cpuRatios []float64
	rpsLine := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reqLine := regexp.MustCompile(`(\d+) requests in`)
	var sent int
	for r := range rounds {
		got, per := map[string]float64{}, map[string]float64{}
		for i := range variants {
			v := variants[(i+r)%2] // on first in even rounds, off first in odd ones
			node := MustStartAppNodeAt(b, "hotbench", addr, prefix, v.hot)
			mustWarmAllWorkers(b, url)
			before := mustGroupCPU(b, node.cmd.Process.Pid)
			out, err := exec.CommandContext(b.Context(), wrk, append(args, url)...).CombinedOutput()
			if err != nil {
				b.Fatalf("wrk %s: %v\n%s", url, err, out)
			}
			used := mustGroupCPU(b, node.cmd.Process.Pid) - before
			if v.name == "on" {
				// The comparison means something only if the node reported.
				st, err := nodeReporting("http://" + addr)
				if err != nil {
					b.Fatal(err)
				}
				if !st.Enabled || len(st.Instances) != 1 || st.Instances[0].Sent == 0 || st.Instances[0].Failed > 0 {
					b.Fatalf("the reporting node's reports: %+v, want all sent", st)
				}
				sent = st.Instances[0].Sent
			}
			node.stop()
			if strings.Contains(string(out), "Non-2xx") {
				b.Fatalf("wrk %s: answers other than 2xx\n%s", url, out)
			}
			m, q := rpsLine.FindSubmatch(out), reqLine.FindSubmatch(out)
			if m == nil || q == nil {
				b.Fatalf("wrk %s: no Requests/sec or request count in\n%s", url, out)
			}
			got[v.name], _ = strconv.ParseFloat(string(m[1]), 64)
			reqs, _ := strconv.ParseFloat(string(q[1]), 64)
			per[v.name] = used.Seconds() * 1e6 / reqs
			rps[v.name] = append(rps[v.name], got[v.name])
			cpu[v.name] = append(cpu[v.name], per[v.name])
		}
		ratios = append(ratios, got["on"]/got["off"])
		cpuRatios = append(cpuRatios, per["on"]/per["off"])
		b.Logf("round %d: on %.0f req/s %.2f CPU-µs/req, off %.0f req/s %.2f CPU-µs/req; on/off %.3f req/s, %.3f CPU/req",
			r+1, got["on"], per["on"], got["off"], per["off"], got["on"]/got["off"], per["on"]/per["off"])
	}
	set, err := hotSet(hotAddr)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := strconv.ParseInt(id, 10, 64)
	if _, ok := set[n]; !ok {
		b.Errorf("the benchmarked id %s is not hot on the reporting node's hot service: %v", id, set)
	}
	median := func(xs []float64) float64 {
		s := slices.Clone(xs)
		slices.Sort(s)
		if len(s)%2 == 1 {
			return s[len(s)/2]
		}
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	b.Logf("L1 hit, hot reporting on: median %.0f req/s %.0f; off: median %.0f req/s %.0f; on/off per round %.3f",
		median(rps["on"]), rps["on"], median(rps["off"]), rps["off"], ratios)
	b.Logf("nginx CPU per request, on: median %.2f µs %.2f; off: median %.2f µs %.2f; on/off per round %.3f",
		median(cpu["on"]), cpu["on"], median(cpu["off"]), cpu["off"], cpuRatios)
	b.ReportMetric(median(rps["on"]), "on-req/s")
	b.ReportMetric(median(rps["off"]), "off-req/s")
	b.ReportMetric(median(ratios), "on/off-req/s")
	benchrow.Record(b, benchrow.Row{What: "hot reporting on / off, app node L1 req/s", Figure: fmt.Sprintf("%.3f", median(ratios)), Target: "≥ 0.97", Met: median(ratios) >= 0.97})
	benchrow.Record(b, benchrow.Row{What: "hot reporting on / off, nginx CPU per request", Figure: fmt.Sprintf("%.3f", median(cpuRatios)), Target: "≤ 1.03", Met: median(cpuRatios) <= 1.03})
	b.ReportMetric(median(cpu["on"]), "on-cpu-µs/req")
	b.ReportMetric(median(cpu["off"]), "off-cpu-µs/req")
	b.ReportMetric(median(cpuRatios), "on/off-cpu/req")
	b.ReportMetric(float64(sent), "reports-last-run")
	b.ReportMetric(0, "ns/op")
}
