package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/detailpage/detailpage/go/internal/benchrow"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/preheat"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// Issue 12's acceptance 3 and 4: `detailpage preheat` instances split the
// catalog through leases, a SIGKILLed one's partitions are finished by the
// others after its lease expired, and preheat never writes an older
// version over a newer one.

// preheatProc is one `detailpage preheat` process.
type preheatProc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan error
}

// startPreheat starts `detailpage preheat` against topo with extra flags.
func startPreheat(tb testing.TB, topo *topology.Topology, run string, extra ...string) *preheatProc {
	tb.Helper()
	p := topo.Config().Ports
	args := []string{"preheat", "--redis", topology.Addr(p.RedisMain), "--source", topology.URL(p.Source),
		"--hot", topology.Addr(p.Hot), "--apps", topology.Addr(p.App1) + "," + topology.Addr(p.App2), "--run", run}
	pr := &preheatProc{cmd: exec.Command(builtBinary, append(args, extra...)...), done: make(chan error, 1)}
	pr.cmd.Env = append(os.Environ(), "DETAILPAGE_ADMIN_TOKEN="+token)
	pr.cmd.Stdout, pr.cmd.Stderr = &pr.stdout, &pr.stderr
	if err := pr.cmd.Start(); err != nil {
		tb.Fatalf("start detailpage preheat: %v", err)
	}
	go func() { pr.done <- pr.cmd.Wait() }()
	tb.Cleanup(func() {
		if pr.cmd.ProcessState == nil {
			_ = pr.cmd.Process.Kill()
			<-pr.done
		}
	})
	return pr
}

// wait waits for the process to end and returns its error.
func (pr *preheatProc) wait(limit time.Duration) error {
	select {
	case err := <-pr.done:
		return err
	case <-time.After(limit):
		_ = pr.cmd.Process.Kill()
		return fmt.Errorf("still running after %s", limit)
	}
}

// owner is the prefix of the owner ids the process writes (host:pid:).
func (pr *preheatProc) owner() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(pr.cmd.Process.Pid) + ":"
}

// doneMarkers reads every done marker of run's plan (nil where absent).
func doneMarkers(ctx context.Context, rdb *redis.Client, run string, parts int) ([]*preheat.DoneMarker, error) {
	out := make([]*preheat.DoneMarker, parts)
	for i := range parts {
		b, err := rdb.Get(ctx, preheat.DoneKey(run, i)).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var m preheat.DoneMarker
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("done marker %d: %w", i, err)
		}
		out[i] = &m
	}
	return out, nil
}

// Acceptance 3: three instances on one catalog, one SIGKILLed half way:
// every product preheated, each partition completed once, the killed
// instance's partitions finished by the others after its lease expired.
func TestPreheatInstancesSplitAndSurviveAKill(t *testing.T) {
	ctx := t.Context()
	rdb := redisClient(t, shared.Config().Ports.RedisMain)
	products := shared.Config().SeedProducts
	// Drop the page documents of every fifth product: preheat must bring
	// them back (the rest it finds at their version already).
	var dropped []int64
	pipe := rdb.Pipeline()
	for id := int64(5); id <= int64(products); id += 5 {
		dropped = append(dropped, id)
		pipe.Del(ctx, redisstore.ItemKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("e2e-split-%d", time.Now().UnixNano())
	const lease = 2 * time.Second
	flags := []string{"--partition-size", "200", "--lease", lease.String(), "--rate", "700", "--workers", "2", "--push-top", "50"}
	procs := make([]*preheatProc, 3)
	for i := range procs {
		procs[i] = startPreheat(t, shared, run, flags...)
	}
	var plan *preheat.Plan
	testutil.Eventually(t, 30*time.Second, func() (err error) {
		plan, err = preheat.ReadPlan(ctx, rdb, run)
		if err == nil && plan == nil {
			err = errors.New("no plan yet")
		}
		return err
	})
	if plan.Total != products {
		t.Fatalf("plan has %d products, the catalog %d", plan.Total, products)
	}
	parts := len(plan.Partitions)
	// SIGKILL instance 0 half way (half the partitions done), while it
	// holds partitions.
	killed := procs[0]
	testutil.Eventually(t, 60*time.Second, func() error {
		ms, err := doneMarkers(ctx, rdb, run, parts)
		if err != nil {
			return err
		}
		n := 0
		for _, m := range ms {
			if m != nil {
				n++
			}
		}
		if n < parts/2 {
			return fmt.Errorf("%d of %d partitions done", n, parts)
		}
		held, err := heldBy(ctx, rdb, run, parts, killed.owner())
		if err != nil {
			return err
		}
		if len(held) == 0 {
			return errors.New("instance 0 holds no partition right now")
		}
		return nil
	})
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	<-killed.done
	heldAtKill, err := heldBy(ctx, rdb, run, parts, killed.owner())
	if err != nil {
		t.Fatal(err)
	}
	for i, pr := range procs[1:] {
		if err := pr.wait(2 * time.Minute); err != nil {
			t.Fatalf("instance %d: %v\nstdout: %s\nstderr: %s", i+1, err, pr.stdout.String(), lastBytes(pr.stderr.String(), 3000))
		}
		t.Logf("instance %d: %s", i+1, strings.TrimSpace(pr.stdout.String()))
		if !strings.Contains(pr.stderr.String(), fmt.Sprintf("/%d products (", products)) || !strings.Contains(pr.stderr.String(), "ETA") {
			t.Errorf("instance %d printed no progress line:\n%s", i+1, lastBytes(pr.stderr.String(), 2000))
		}
	}
	// Each partition completed once: one done marker each, whose products
	// add up to the plan; fences say who held it last.
	ms, err := doneMarkers(ctx, rdb, run, parts)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0
	for i, m := range ms {
		if m == nil {
			t.Errorf("partition %d has no done marker", i)
			continue
		}
		sum += m.Products
		if m.Products != len(plan.Partitions[i]) {
			t.Errorf("partition %d: done marker counts %d products, the plan %d", i, m.Products, len(plan.Partitions[i]))
		}
	}
	if sum != products {
		t.Errorf("done markers cover %d products, want %d", sum, products)
	}
	// The killed instance's partitions were finished by the others, after
	// its lease expired, with a newer fence.
	if len(heldAtKill) == 0 {
		t.Fatal("the killed instance held no partition when killed")
	}
	for _, i := range heldAtKill {
		m := ms[i]
		if m == nil {
			continue
		}
		claims, err := rdb.LRange(ctx, preheat.ClaimsKey(run, i), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(m.Owner, killed.owner()) {
			t.Errorf("partition %d: done by the killed instance (%+v)", i, m)
		}
		if len(claims) < 2 || m.Fence < 2 {
			t.Errorf("partition %d held by the killed instance: claims %v, done with fence %d", i, claims, m.Fence)
		}
		if m.At.Before(killedAt.Add(lease - 500*time.Millisecond)) {
			t.Errorf("partition %d finished %s after the kill, before its lease (%s) could expire", i, m.At.Sub(killedAt), lease)
		}
	}
	t.Logf("killed instance held partitions %v; %d partitions of %d products", heldAtKill, parts, products)
	// Every product preheated: the dropped documents are back.
	for _, id := range dropped {
		if n, err := rdb.Exists(ctx, redisstore.ItemKey(id)).Result(); err != nil || n != 1 {
			t.Fatalf("product %d not preheated (%d, %v)", id, n, err)
		}
	}
	// One instance pushed the top 50 pages into both app nodes.
	pushed := 0
	for _, pr := range procs[1:] {
		var n int
		out := pr.stdout.String()
		if i := strings.Index(out, "Redis values written, "); i >= 0 {
			fmt.Sscanf(out[i+len("Redis values written, "):], "%d pages pushed", &n)
		}
		pushed += n
	}
	if pushed != 100 {
		t.Errorf("pages pushed: %d, want 50 into each of 2 app nodes", pushed)
	}
}

// heldBy lists the partitions whose current lease claim is owner's: the
// last entry of the claim history, a lease present, and no done marker.
func heldBy(ctx context.Context, rdb *redis.Client, run string, parts int, owner string) ([]int, error) {
	var held []int
	prefix := preheat.KeyPrefix(run)
	for i := range parts {
		last, err := rdb.LIndex(ctx, preheat.ClaimsKey(run, i), -1).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(last, owner) {
			continue
		}
		lease, _ := rdb.Exists(ctx, prefix+"lease:"+strconv.Itoa(i)).Result()
		done, _ := rdb.Exists(ctx, preheat.DoneKey(run, i)).Result()
		if lease == 1 && done == 0 {
			held = append(held, i)
		}
	}
	return held, nil
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Acceptance 4: preheat racing edits never leaves an older version: after
// a preheat of the whole catalog with edits all along, every edited
// product's page document in Redis is the source's newest.
func TestPreheatNeverOverwritesEdits(t *testing.T) {
	ctx := t.Context()
	rdb := redisClient(t, shared.Config().Ports.RedisMain)
	// The first 2,000 products lose their documents and dimensions, so
	// preheat really writes them while they are being edited.
	const raced = 2000
	pipe := rdb.Pipeline()
	for id := int64(1); id <= raced; id++ {
		pipe.Del(ctx, redisstore.ItemKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("e2e-race-%d", time.Now().UnixNano())
	pr := startPreheat(t, shared, run, "--hot", "", "--partition-size", "250", "--rate", "2500", "--push-top", "0")
	// The preheat runs at nice 10 (--nice's default), every thread of it.
	testutil.Eventually(t, 5*time.Second, func() error { return niceOf(pr.cmd.Process.Pid, 10) })
	ed := &editor{t: shared}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := ed.edit(1+r.Int64N(raced), r); err != nil {
					t.Errorf("edit: %v", err)
					return
				}
			}
		})
	}
	err := pr.wait(2 * time.Minute)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("preheat: %v\nstderr: %s", err, lastBytes(pr.stderr.String(), 3000))
	}
	t.Logf("preheat: %s; %d edits meanwhile", strings.TrimSpace(pr.stdout.String()), ed.n.Load())
	if len(ed.touched) == 0 {
		t.Fatal("no edit ran during the preheat")
	}
	MustCaughtUp(t, shared, time.Minute)
	var ids []int64
	for id := range ed.touched {
		ids = append(ids, id)
	}
	MustMatchSource(t, shared, ids)
	for id := int64(1); id <= raced; id++ {
		if n, err := rdb.Exists(ctx, redisstore.ItemKey(id)).Result(); err != nil || n != 1 {
			t.Fatalf("product %d not preheated (%d, %v)", id, n, err)
		}
	}
}

// BenchmarkPreheat: `detailpage preheat` over the whole shared catalog
// with the source warm (a first run reads every record once), reported as
// products/s, while pages are asked through the dist tier at 500/s open
// loop (Zipf); page p99 idle and during the preheat. The order is the
// command's default, hottest first by the hot service's top lists (which
// the page load fills); no pages are pushed. "current": Redis
// holds every document already (the compare-and-set refuses them); "cold":
// every item:{*} key deleted first, so every document and dimension is
// written (the run announced on main just before, so that the sync
// service waits for it instead of recovering beside it);
// "cold-rate-1000": the same with --rate 1000. PREHEAT_WORKERS
// sets --workers; PREHEAT_INPROCESS=1 runs preheat.Run in this process
// instead (for -cpuprofile).
func BenchmarkPreheat(b *testing.B) {
	ctx := b.Context()
	p := shared.Config().Ports
	workers := 4
	if v, err := strconv.Atoi(os.Getenv("PREHEAT_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	inProcess := os.Getenv("PREHEAT_INPROCESS") == "1"
	var st *redisstore.Store
	var src *sourceclient.Client
	if inProcess {
		var err error
		if st, err = redisstore.Open(topology.Addr(p.RedisMain)); err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		if src, err = sourceclient.New(topology.URL(p.Source)); err != nil {
			b.Fatal(err)
		}
		defer src.CloseIdleConnections()
	}
	// preheatOnce runs one preheat of the catalog and returns products and
	// how long it took.
	var preheatCPU time.Duration
	preheatOnce := func(b *testing.B, name string, rate int) (products int, took time.Duration) {
		run := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
		if inProcess {
			sum, err := preheat.Run(ctx, preheat.Config{Store: st, Source: src, Run: run, Workers: workers, Rate: float64(rate),
				Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			return sum.Products, sum.Took
		}
		pr := startPreheat(b, shared, run, "--push-top", "0", "--quiet", "--workers", strconv.Itoa(workers),
			"--rate", strconv.Itoa(rate))
		if err := pr.wait(5 * time.Minute); err != nil {
			b.Fatalf("preheat: %v\n%s", err, lastBytes(pr.stderr.String(), 3000))
		}
		preheatCPU = pr.cmd.ProcessState.UserTime() + pr.cmd.ProcessState.SystemTime()
		out := pr.stdout.String()
		if _, err := fmt.Sscanf(out[strings.Index(out, ": ")+2:], "%d products", &products); err != nil {
			b.Fatalf("summary %q: %v", out, err)
		}
		d := out[strings.Index(out, "took ")+5:]
		dur, err := time.ParseDuration(d[:strings.Index(d, " ")])
		if err != nil {
			b.Fatalf("summary %q: %v", out, err)
		}
		return products, dur
	}
	preheatOnce(b, "bench-warm", 0) // the source warm
	const pageRate = 500
	c := loadgen.NewClient()
	defer c.CloseIdleConnections()
	p99 := func(rep loadgen.Report, until time.Duration) time.Duration {
		var lat []time.Duration
		for _, r := range rep.Results {
			if r.At <= until {
				lat = append(lat, r.Latency)
			}
		}
		slices.Sort(lat)
		return loadgen.Percentile(lat, 0.99)
	}
	idle := loadgen.Run(ctx, c, pageRate, 5*time.Second, itemURL(shared), loadgen.Zipf(7, benchProducts))
	idleP99 := p99(idle, time.Hour)
	b.Logf("idle pages: %s", idle.Summary())
	for _, tc := range []struct {
		name string
		cold bool
		rate int
	}{{"current", false, 0}, {"cold", true, 0}, {"cold-rate-1000", true, 1000}} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.cold {
				rdb := redisClient(b, p.RedisMain)
				// The run announced before the keys go, as a preheat
				// started before the sync service's next cold check
				// would be: the sync waits for it rather than recovering
				// beside it (loading every product a second time).
				if err := rdb.Set(ctx, preheat.ActiveKey, "bench", preheat.ActiveTTL).Err(); err != nil {
					b.Fatal(err)
				}
				iter := rdb.Scan(ctx, 0, "item:{*", 1000).Iterator()
				var batch []string
				for iter.Next(ctx) {
					if batch = append(batch, iter.Val()); len(batch) == 1000 {
						rdb.Unlink(ctx, batch...)
						batch = batch[:0]
					}
				}
				if len(batch) > 0 {
					rdb.Unlink(ctx, batch...)
				}
				if err := iter.Err(); err != nil {
					b.Fatal(err)
				}
			}
			d := 8 * time.Second
			if tc.rate > 0 {
				d = time.Duration(float64(benchProducts)/float64(tc.rate)*float64(time.Second)) + time.Second
			}
			var pages loadgen.Report
			var wg sync.WaitGroup
			wg.Go(func() {
				pages = loadgen.Run(ctx, c, pageRate, d, itemURL(shared), loadgen.Zipf(9, benchProducts))
			})
			comps := []string{topology.Source, topology.RedisMain, topology.Sync, topology.Direct}
			before := cpuOf(comps...)
			b.ResetTimer()
			products, took := preheatOnce(b, "bench", tc.rate)
			b.StopTimer()
			after := cpuOf(comps...)
			var cpu []string
			for _, n := range comps {
				cpu = append(cpu, fmt.Sprintf("%s %s", n, (after[n]-before[n]).Round(10*time.Millisecond)))
			}
			if !inProcess {
				cpu = append(cpu, fmt.Sprintf("preheat %s", preheatCPU.Round(10*time.Millisecond)))
			}
			b.Logf("CPU used during the preheat: %s", strings.Join(cpu, ", "))
			wg.Wait()
			rate := float64(products) / took.Seconds()
			during := p99(pages, took)
			b.ReportMetric(rate, "products/s")
			b.ReportMetric(float64(idleP99.Microseconds())/1000, "p99-idle-ms")
			b.ReportMetric(float64(during.Microseconds())/1000, "p99-during-ms")
			if tc.rate == 0 { // the figures are for an unbounded preheat
				benchrow.Record(b, benchrow.Row{What: "preheat (" + tc.name + " Redis) into Redis", Figure: fmt.Sprintf("%.0f products/s", rate), Target: "≥ 20,000 products/s", Met: rate >= 20_000})
				benchrow.Record(b, benchrow.Row{What: "page p99 during preheat (" + tc.name + ") / idle", Figure: fmt.Sprintf("%s (%.1f / %.1f ms)", benchrow.Ratio(float64(during), float64(idleP99)), float64(during.Microseconds())/1000, float64(idleP99.Microseconds())/1000), Target: "≤ 2×", Met: during <= 2*idleP99})
			}
			b.ReportMetric(0, "ns/op")
			b.Logf("%s: %d products in %s (%.0f/s), %d workers, in process %v; pages idle p99 %s, during %s; %s",
				tc.name, products, took.Round(time.Millisecond), rate, workers, inProcess, idleP99, during, pages.Summary())
		})
	}
}

// cpuOf is the CPU time (user+system) the shared topology's components
// named have used so far, by name (/proc/<pid>/stat; Linux).
func cpuOf(names ...string) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, n := range names {
		f, err := statFields(fmt.Sprintf("/proc/%d/stat", shared.Component(n).Pid()))
		if err != nil || len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		out[n] = time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ 100
	}
	return out
}

// --dry-run prints the plan and writes nothing; an unreachable Redis is a
// clear error and a non-zero exit.
func TestPreheatDryRunAndNoRedis(t *testing.T) {
	ctx := t.Context()
	rdb := redisClient(t, shared.Config().Ports.RedisMain)
	run := fmt.Sprintf("e2e-dry-%d", time.Now().UnixNano())
	pr := startPreheat(t, shared, run, "--dry-run", "--partition-size", "300")
	if err := pr.wait(time.Minute); err != nil {
		t.Fatalf("dry run: %v\n%s", err, pr.stderr.String())
	}
	out := pr.stdout.String()
	products := shared.Config().SeedProducts
	for _, want := range []string{"nothing written", "order: ", fmt.Sprintf("products: %d in %d partitions of up to 300", products, (products+299)/300), "partition 0: 300 ids: ", "push: the first 1000 pages into "} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if keys := rdb.Keys(ctx, preheat.KeyPrefix(run)+"*").Val(); len(keys) != 0 {
		t.Errorf("dry run wrote %v", keys)
	}

	pr = startPreheat(t, shared, run, "--redis", "127.0.0.1:1")
	err := pr.wait(time.Minute)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(pr.stderr.String(), "redis main unreachable") {
		t.Errorf("unreachable Redis: %v\n%s", err, pr.stderr.String())
	}
}

// TestEditsDuringPreheat: a preheat of the whole catalog (rate unbounded,
// from the source like every refresh) does not hold edits back: each edit
// made while it runs is on the page through the dist tier within the
// suite's edit bound (3 s, TestEditVisibleWithin3s), as when idle; the
// times of both are logged (the latency figures are benchmarks').
func TestEditsDuringPreheat(t *testing.T) {
	const base = int64(6_100) // ids no other edit test uses
	rename := func(i int64) time.Duration {
		t.Helper()
		id := base + i
		name := fmt.Sprintf("Preheat edit %d-%d", id, time.Now().UnixNano())
		MustRename(t, shared, id, name)
		return waitForPage(t, pageURL(shared, strconv.FormatInt(id, 10)), name, 3*time.Second)
	}
	var idle, during []time.Duration
	for i := range int64(5) {
		idle = append(idle, rename(i))
	}
	run := fmt.Sprintf("e2e-edits-%d", time.Now().UnixNano())
	pr := startPreheat(t, shared, run, "--hot", "", "--push-top", "0")
	var result error
	finished := false
	for i := int64(5); ; i++ {
		select {
		case result = <-pr.done:
			finished = true
		default:
		}
		if finished {
			break
		}
		during = append(during, rename(i))
	}
	if result != nil {
		t.Fatalf("preheat: %v\nstderr: %s", result, lastBytes(pr.stderr.String(), 3000))
	}
	if len(during) == 0 {
		t.Fatal("the preheat ended before an edit ran during it")
	}
	slices.Sort(idle)
	slices.Sort(during)
	t.Logf("edit → page through the dist: idle p50 %s max %s (%d edits); during the preheat (%s) p50 %s max %s (%d edits)",
		loadgen.Percentile(idle, 0.5).Round(time.Millisecond), idle[len(idle)-1].Round(time.Millisecond), len(idle),
		strings.TrimSpace(pr.stdout.String()),
		loadgen.Percentile(during, 0.5).Round(time.Millisecond), during[len(during)-1].Round(time.Millisecond), len(during))
}

// niceOf checks that every thread of process pid runs at nice
// (/proc/<pid>/task/*/stat, field 19).
func niceOf(pid, nice int) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		f, err := statFields(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue // the thread ended
		}
		if len(f) < 17 || f[16] != strconv.Itoa(nice) {
			return fmt.Errorf("thread %s of %d: stat fields %q, want nice %d", t.Name(), pid, f, nice)
		}
	}
	return nil
}

// statFields reads a /proc stat file and returns its fields from the
// third on (after the command name, which may hold spaces): f[11] is
// utime, f[12] stime, f[16] the nice value.
func statFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndex(s, ")")+2:]), nil
}
