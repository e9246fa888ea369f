package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// chaosFullEnv set to "full" runs TestChaos with the whole fault list and
// the durations (make chaos); unset, the short version runs, bounded
// for the e2e suite.
const chaosFullEnv = "DETAILPAGE_CHAOS"

// Issue 10, §5 (the chaos suite): under an open-loop page load through the
// dist tier over ids seen before and a steady stream of edits, each fault in
// turn: a component frozen (SIGSTOP), a component killed (SIGKILL from
// outside; the supervisor restarts it), and the app tier ↔ Redis replica and
// sync/direct ↔ source links made slow, silent, reset or narrow by toxiproxy
// proxies in between (in-process, no daemon). Asserted per fault: 0 non-200
// for ids served before (the dist tier, the front door itself, loses what
// reached it while it was down, and only until it is back); every accepted
// edit is on the page within 30 s of the fault's end; a killed component is
// back (healthy) within 10 s. At the end: no goroutine or Redis connection
// build-up. The table is logged (make chaos; published in docs/reliability.md).
//
// The short version (make test) runs on the small layout (no Sentinel).
// The full one (make chaos) runs twice:
//
//   - on the Sentinel layout (seed 004's two data centres, what make run
//     starts): every component frozen and killed, Redis servers named with
//     the role they have when the fault starts (main or replica: a freeze
//     of main longer than Sentinel's down-after is a failover), the
//     sync/direct ↔ source link's toxics, and Redis main frozen 30 s
//     (promotion, the freeze's edits on the page before the thaw, the old
//     main back as a replica);
//   - on the small layout, the app tier ↔ replica link's toxics: there the
//     app nodes read the replica only at --replica (the proxy); with
//     Sentinels they take the replicas' own addresses from Sentinel and the
//     proxy would carry nothing once Sentinel has answered.
func TestChaos(t *testing.T) {
	if os.Getenv(chaosFullEnv) != "full" {
		r := startChaos(t, false, true, time.Second, 3*time.Second)
		r.run(
			func() *chaosRow { return r.pause(topology.App1) },
			func() *chaosRow { return r.pause(topology.RedisReplica) },
			func() *chaosRow { return r.pause(topology.Source) },
			func() *chaosRow { return r.kill(topology.Sync) },
			func() *chaosRow { return r.toxic(r.replica, chaosLatency) })
		return
	}
	toxics := []chaosToxic{
		chaosLatency,
		{"timeout (held, no data)", "timeout", "timeout", 0},
		{"reset_peer", "reset_peer", "timeout", 0},
		{"bandwidth 16KB/s", "bandwidth", "rate", 16},
	}
	t.Run("sentinel layout", func(t *testing.T) {
		r := startChaos(t, true, false, 2*time.Second, 10*time.Second)
		var faults []func() *chaosRow
		// Redis main and A's replica by role, resolved when the fault starts.
		comps := []func() string{
			func() string { return topology.App1 }, func() string { return topology.App2 },
			r.mainName, r.aReplicaName,
			func() string { return topology.RedisB1 }, func() string { return topology.RedisB2 },
			func() string { return topology.Sentinel1 },
			func() string { return topology.Broker }, func() string { return topology.Source },
			func() string { return topology.Sync }, func() string { return topology.Direct },
			func() string { return topology.Dist }, func() string { return topology.Hot },
			func() string { return topology.One },
		}
		for _, name := range comps {
			faults = append(faults, func() *chaosRow { return r.pause(name()) })
		}
		for _, name := range comps {
			faults = append(faults, func() *chaosRow { return r.kill(name()) })
		}
		for _, tx := range toxics {
			faults = append(faults, func() *chaosRow { return r.toxic(r.source, tx) })
		}
		faults = append(faults, func() *chaosRow { return r.freezeMain(30 * time.Second) })
		r.run(faults...)
	})
	t.Run("small layout, app→replica link", func(t *testing.T) {
		r := startChaos(t, false, true, 2*time.Second, 10*time.Second)
		var faults []func() *chaosRow
		for _, tx := range toxics {
			faults = append(faults, func() *chaosRow { return r.toxic(r.replica, tx) })
		}
		r.run(faults...)
	})
}

var chaosLatency = chaosToxic{"latency 500ms", "latency", "latency", 500}

// startChaos starts a topology (with Sentinels or the small layout), with
// the sync/direct → source link through a toxiproxy proxy and, if
// viaReplica, the app nodes' replica too; serves the load's ids once, then
// starts the load and the edits and records a baseline row.
func startChaos(t *testing.T, sentinel, viaReplica bool, observe, hold time.Duration) *chaosRun {
	ports, err := topology.FreePorts()
	if err != nil {
		t.Fatal(err)
	}
	tox := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	sourceLink := startProxy(t, tox, "sync/direct→source", topology.Addr(ports.Source))
	cfg := topology.Config{Ports: ports, SeedProducts: 300, SeedShops: 20, Via: topology.Via{Source: sourceLink.Listen}}
	r := &chaosRun{t: t, observe: observe, hold: hold}
	if viaReplica {
		replicaLink := startProxy(t, tox, "app→replica", topology.Addr(ports.RedisReplica))
		cfg.Via.Replica = replicaLink.Listen
		r.replica = chaosLink{name: "app→replica", proxy: replicaLink, probe: func(ctx context.Context) error {
			rdb := redis.NewClient(&redis.Options{Addr: replicaLink.Listen, MaxRetries: -1, DialTimeout: time.Second})
			defer rdb.Close()
			return rdb.Ping(ctx).Err()
		}}
	}
	r.source = chaosLink{name: "sync/direct→source", proxy: sourceLink, probe: func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+sourceLink.Listen+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("source through its proxy: %s", resp.Status)
		}
		return nil
	}}
	if sentinel {
		r.topo = MustFailoverTopology(t, cfg)
		// Sentinel1 is the one the faults freeze and kill: ask another.
		r.sentinel = redis.NewSentinelClient(&redis.Options{Addr: r.topo.Component(topology.Sentinel2).Addr()})
		t.Cleanup(func() { r.sentinel.Close() })
	} else {
		r.topo = MustTopology(t, cfg)
	}

	const (
		pageIDs = 100 // the load's ids, all served before it starts
		editIDs = 30  // the edits' ids (a subset)
		rate    = 100 // page requests a second
	)
	for id := range int64(pageIDs) {
		if got := MustGetPage(t, pageURL(r.topo, fmt.Sprint(id+1))); got.status != http.StatusOK {
			t.Fatalf("id %d before the load: status %d", id+1, got.status)
		}
	}
	r.ed = newSupEditor(t, r.topo, editIDs)
	r.ld = startSteadyLoad(r.topo, rate, pageIDs)
	stopEdits := r.ed.start(200 * time.Millisecond)
	stopped := false
	r.stopAll = func() {
		if !stopped {
			stopped = true
			stopEdits()
			r.ld.stop()
		}
	}
	t.Cleanup(r.stopAll)

	base := &chaosRow{fault: "(no fault)", start: time.Now()}
	wait(t, 2*time.Second) // a baseline of that length
	base.end, base.accepted = time.Now(), r.ed.count(true)
	r.rows = append(r.rows, base)
	r.before = r.footprint()
	return r
}

// run injects the faults in turn, then checks the last edits, the
// footprint and every row's page requests, and logs the table.
func (r *chaosRun) run(faults ...func() *chaosRow) {
	t := r.t
	for _, f := range faults {
		row := f()
		r.rows = append(r.rows, row)
		if t.Failed() && row.backAt.IsZero() && row.kind != "toxic" {
			break // it did not come back: the rest would only repeat that
		}
	}
	// the edits accepted while the last fault's load was watched
	r.ed.check(t, time.Now().Add(30*time.Second))
	after := r.settled(r.before)
	r.stopAll()

	t.Log("\n" + r.table())
	t.Logf("edits: %d accepted, %d refused or failed; footprint before %v, after %v", r.ed.count(true), r.ed.count(false), r.before, after)
	r.assertPages()
}

// chaosRun is one TestChaos: the topology, its load and edits, and a row
// per fault.
type chaosRun struct {
	t             *testing.T
	topo          *topology.Topology
	ld            *steadyLoad
	ed            *supEditor
	observe, hold time.Duration // the load watched after each fault; a freeze's or toxic's length
	rows          []*chaosRow
	replica       chaosLink             // app→replica through a proxy (small layout only)
	source        chaosLink             // sync/direct→source through a proxy
	sentinel      *redis.SentinelClient // nil on the small layout
	before        footprint
	stopAll       func() // stops the edits and the load (once)
}

// chaosRow is one fault and what the load and the edits saw.
type chaosRow struct {
	fault      string
	kind       string    // pause, kill, toxic
	frontDoor  bool      // the dist tier itself: what reached it while down is lost
	start, end time.Time // the page requests that ended in [start, end) are this row's
	faultEnd   time.Time // the freeze or toxic lifted, or the killed process gone
	backAt     time.Time // the component (or link) healthy again
	backIn     time.Duration
	accepted   int           // edits the source accepted during the row
	missing    int           // accepted edits not on the page within 30 s of the fault's end
	edited     time.Duration // from the fault's end until every accepted edit was on the page
}

// chaosLink is a link that goes through a toxiproxy proxy, and how to see
// it work end to end.
type chaosLink struct {
	name  string
	proxy *toxiproxy.Proxy
	probe func(context.Context) error
}

// chaosToxic is a toxiproxy toxic with its one attribute (ms, or KB/s for
// bandwidth), on the downstream (the answers).
type chaosToxic struct {
	name, typ, attr string
	value           int
}

// json is the toxic as toxiproxy's API takes it.
func (tx chaosToxic) json(name string) string {
	b, err := json.Marshal(map[string]any{"name": name, "type": tx.typ, "attributes": map[string]int{tx.attr: tx.value}})
	if err != nil {
		panic(err) // maps of strings and ints always marshal
	}
	return string(b)
}

// startProxy starts a toxiproxy proxy on a free loopback port in front of
// upstream; it stops when the test ends (after the topology: cleanups run
// last first).
func startProxy(t *testing.T, srv *toxiproxy.ApiServer, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("proxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return p
}

// wait lets d pass (a duration the test observes, not a synchronisation).
func wait(t *testing.T, d time.Duration) {
	select {
	case <-time.After(d):
	case <-t.Context().Done():
	}
}

// pause freezes a component for r.hold and measures how long after SIGCONT
// it is healthy.
func (r *chaosRun) pause(name string) *chaosRow {
	c := r.topo.Component(name)
	row := r.begin(fmt.Sprintf("SIGSTOP %s %s", r.label(name), r.hold), "pause", name)
	if err := c.Pause(); err != nil {
		r.t.Errorf("pause %s: %v", name, err)
		return r.finish(row)
	}
	wait(r.t, r.hold)
	if err := c.Resume(); err != nil {
		r.t.Fatalf("resume %s: %v", name, err)
	}
	row.faultEnd = time.Now()
	if err := c.WaitHealthy(r.t.Context(), 10*time.Second); err != nil {
		r.t.Errorf("%s not healthy within 10 s of SIGCONT: %v", name, err)
		return r.finish(row)
	}
	row.backAt = time.Now()
	row.backIn = row.backAt.Sub(row.faultEnd)
	return r.finish(row)
}

// kill SIGKILLs the component's process (the leader of its group only, as
// a crash would) and waits for its supervisor to have it healthy again.
func (r *chaosRun) kill(name string) *chaosRow {
	c := r.topo.Component(name)
	st := c.Status()
	row := r.begin("SIGKILL "+r.label(name), "kill", name)
	if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
		r.t.Fatalf("kill %s: %v", name, err)
	}
	faultAt := time.Now()
	row.faultEnd = faultAt
	err := waitRestarted(c, st)
	if err != nil {
		r.t.Errorf("%s did not come back: %v", name, err)
		return r.finish(row)
	}
	row.backAt = time.Now()
	row.backIn = row.backAt.Sub(faultAt)
	if row.backIn > 10*time.Second {
		r.t.Errorf("%s took %s to come back, want ≤ 10 s", name, row.backIn.Round(time.Millisecond))
	}
	return r.finish(row)
}

// redisServers are the Redis components of the Sentinel layout.
var redisServers = []string{topology.RedisMain, topology.RedisReplica, topology.RedisB1, topology.RedisB2}

// mainAddr is Redis main's address as the Sentinels name it now.
func (r *chaosRun) mainAddr(ctx context.Context) (string, error) {
	a, err := r.sentinel.GetMasterAddrByName(ctx, topology.MasterName).Result()
	if err != nil {
		return "", fmt.Errorf("chaos: ask sentinel for main: %w", err)
	}
	return a[0] + ":" + a[1], nil
}

// mainName is the Redis component that is main now.
func (r *chaosRun) mainName() string {
	r.t.Helper()
	addr, err := r.mainAddr(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	for _, name := range redisServers {
		if r.topo.Component(name).Addr() == addr {
			return name
		}
	}
	r.t.Fatalf("main %s is none of the topology's Redis servers", addr)
	return ""
}

// aReplicaName is data centre A's server that is not main now (A's
// replica), or redis-replica if main is in B.
func (r *chaosRun) aReplicaName() string {
	if r.mainName() == topology.RedisReplica {
		return topology.RedisMain
	}
	return topology.RedisReplica
}

// label is a component's name in the table; with Sentinels a Redis server
// also says whether it is main or a replica when its fault starts (the
// components keep their names across failovers, not their roles).
func (r *chaosRun) label(name string) string {
	if r.sentinel == nil || !slices.Contains(redisServers, name) {
		return name
	}
	if r.mainName() == name {
		return name + " (main)"
	}
	return name + " (replica)"
}

// freezeMain freezes Redis main for hold, longer than Sentinel's
// down-after, and asserts: another server is promoted within 10 s; an edit
// made after the promotion and every edit accepted in all but the last
// 3 s of the freeze are on the page before the old main thaws; after SIGCONT the old main is a
// replica of the new one, in sync; and (finish) every accepted edit is on
// the page, none gone back to an older version. It logs the times.
func (r *chaosRun) freezeMain(hold time.Duration) *chaosRow {
	t, ctx := r.t, r.t.Context()
	oldAddr, err := r.mainAddr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name := r.mainName()
	c := r.topo.Component(name)
	row := r.begin(fmt.Sprintf("Redis main frozen %s (%s)", hold, name), "pause", name)
	before := r.ed.count(true)
	if err := c.Pause(); err != nil {
		t.Errorf("pause %s: %v", name, err)
		return r.finish(row)
	}
	at := time.Now()
	thaw := func() {
		wait(t, time.Until(at.Add(hold)))
		if err := c.Resume(); err != nil {
			t.Fatalf("resume %s: %v", name, err)
		}
		row.faultEnd = time.Now()
	}
	var detected, promoted time.Duration
	var newMain string
	err = testutil.PollEvery(20*time.Second, 20*time.Millisecond, func() error {
		if detected == 0 {
			st, err := r.sentinel.Master(ctx, topology.MasterName).Result()
			if err == nil && (strings.Contains(st["flags"], "s_down") || st["ip"]+":"+st["port"] != oldAddr) {
				detected = time.Since(at)
			}
		}
		a, err := r.mainAddr(ctx)
		if err != nil {
			return err
		}
		if a == oldAddr {
			return fmt.Errorf("main still %s", oldAddr)
		}
		newMain, promoted = a, time.Since(at)
		return nil
	})
	if err != nil {
		t.Errorf("%s frozen: no promotion within 20 s: %v", name, err)
		thaw()
		return r.finish(row)
	}
	if promoted > 10*time.Second {
		t.Errorf("%s frozen: %s promoted after %s, want ≤ 10 s", name, newMain, promoted.Round(time.Millisecond))
	}
	// The first write after the promotion: an edit made now, on the page.
	var firstEdit time.Duration
	if k, ok := r.ed.edit(1); !ok {
		t.Errorf("%s frozen: the source refused an edit after the promotion", name)
	} else if err := r.ed.shows(1, k, at.Add(hold)); err != nil {
		t.Errorf("%s frozen: the edit made after the promotion is not on the page before the thaw: %v", name, err)
	} else {
		firstEdit = time.Since(at)
	}
	// Every edit accepted so far (those of the freeze among them) is on
	// the page before the thaw: check reports what is not by then. Once
	// right after the promotion, and again 3 s before the thaw for the
	// edits of the rest of the freeze (the last 3 s: finish, after it).
	_, missing, _ := r.ed.check(t, at.Add(hold))
	during, beforeThaw := r.ed.count(true)-before, time.Until(at.Add(hold))
	t.Logf("Redis main %s frozen: detected after %s, %s promoted after %s, first edit after the promotion on the page %s after the freeze began; "+
		"the %d edits accepted during the freeze so far on the page %s before the thaw (%d missing)",
		name, detected.Round(time.Millisecond), newMain, promoted.Round(time.Millisecond), firstEdit.Round(time.Millisecond),
		during, beforeThaw.Round(time.Millisecond), missing)
	wait(t, time.Until(at.Add(hold-3*time.Second)))
	_, missing, _ = r.ed.check(t, at.Add(hold))
	during, beforeThaw = r.ed.count(true)-before, time.Until(at.Add(hold))
	if during == 0 {
		t.Errorf("%s frozen: no edit accepted during the freeze", name)
	}
	t.Logf("Redis main %s frozen: the %d edits accepted in the first %s of the freeze on the page %s before the thaw (%d missing)",
		name, during, hold-3*time.Second, beforeThaw.Round(time.Millisecond), missing)
	thaw()
	// The old main comes back as a replica of the new one, in sync.
	rdb := redis.NewClient(&redis.Options{Addr: c.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	_, newPort, _ := strings.Cut(newMain, ":")
	err = testutil.PollEvery(30*time.Second, 50*time.Millisecond, func() error {
		info, err := rdb.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		port, _ := infoInt(info, "master_port")
		if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up") || strconv.Itoa(port) != newPort {
			return fmt.Errorf("%s not a replica of %s in sync yet: %.160s", name, newMain, info)
		}
		return nil
	})
	if err != nil {
		t.Errorf("after the thaw: %v", err)
		return r.finish(row)
	}
	row.backAt = time.Now()
	row.backIn = row.backAt.Sub(row.faultEnd)
	if a, err := r.mainAddr(ctx); err != nil || a != newMain {
		t.Errorf("after the thaw main is %s (%v), want %s still", a, err, newMain)
	}
	t.Logf("Redis main %s thawed: a replica of %s in sync %s after SIGCONT", name, newMain, row.backIn.Round(time.Millisecond))
	return r.finish(row)
}

// shows waits until product id's page shows try k's name or a newer try's.
func (e *supEditor) shows(id int64, k int, deadline time.Time) error {
	url := pageURL(e.t, fmt.Sprint(id))
	return testutil.PollEvery(time.Until(deadline), 20*time.Millisecond, func() error {
		e.mu.Lock()
		names := make([]string, 0, len(e.tries[id])-k)
		for _, tr := range e.tries[id][k:] {
			names = append(names, escape(tr.name))
		}
		e.mu.Unlock()
		p, err := getPage(url)
		if err != nil {
			return err
		}
		if p.status != http.StatusOK || !slices.ContainsFunc(names, func(n string) bool { return strings.Contains(p.body, n) }) {
			return fmt.Errorf("product %d: the page (status %d) does not show %q or a newer name", id, p.status, names[0])
		}
		return nil
	})
}

// toxic puts tx on link for r.hold, then measures how long after its
// removal the link works end to end.
func (r *chaosRun) toxic(link chaosLink, tx chaosToxic) *chaosRow {
	row := r.begin(tx.name+" "+link.name, "toxic", "")
	const name = "chaos"
	if _, err := link.proxy.Toxics.AddToxicJson(strings.NewReader(tx.json(name))); err != nil {
		r.t.Fatalf("toxic %s on %s: %v", tx.name, link.name, err)
	}
	wait(r.t, r.hold)
	if err := link.proxy.Toxics.RemoveToxic(r.t.Context(), name); err != nil {
		r.t.Fatalf("remove toxic %s from %s: %v", tx.name, link.name, err)
	}
	row.faultEnd = time.Now()
	err := testutil.PollEvery(10*time.Second, 20*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(r.t.Context(), time.Second)
		defer cancel()
		return link.probe(ctx)
	})
	if err != nil {
		r.t.Errorf("%s does not work within 10 s of the toxic's end: %v", link.name, err)
		return r.finish(row)
	}
	row.backAt = time.Now()
	row.backIn = row.backAt.Sub(row.faultEnd)
	return r.finish(row)
}

// begin starts a row; the component must be running and healthy.
func (r *chaosRun) begin(fault, kind, comp string) *chaosRow {
	if comp != "" {
		if st := r.topo.Component(comp).Status(); st.State != topology.StateRunning || st.Pid == 0 {
			r.t.Fatalf("%s before its fault: %+v", comp, st)
		}
	}
	r.t.Logf("fault: %s", fault)
	return &chaosRow{fault: fault, kind: kind, frontDoor: comp == topology.Dist, start: time.Now(), accepted: -r.ed.count(true)}
}

// finish checks every edit accepted so far is on the page within 30 s of
// the fault's end, then watches the load for r.observe more.
func (r *chaosRun) finish(row *chaosRow) *chaosRow {
	if row.faultEnd.IsZero() {
		row.faultEnd = time.Now()
	}
	_, row.missing, row.edited = r.ed.check(r.t, row.faultEnd.Add(30*time.Second))
	from := row.backAt
	if from.IsZero() {
		from = row.faultEnd
	}
	wait(r.t, time.Until(from.Add(r.observe)))
	// edits accepted from here on are the next check's (or the last one's)
	row.accepted += r.ed.count(true)
	row.end = time.Now()
	return row
}

// assertPages checks each row's page requests: none may fail, except that
// the front door loses what reached it while it was frozen or dead; once it
// is back, nothing may fail.
func (r *chaosRun) assertPages() {
	for _, row := range r.rows {
		var bad, after []supResult
		for _, x := range r.ld.between(row.start, row.end) {
			if x.status == http.StatusOK {
				continue
			}
			bad = append(bad, x)
			if !row.backAt.IsZero() && !x.at.Before(row.backAt) {
				after = append(after, x)
			}
		}
		switch {
		case row.frontDoor && len(bad) > 0:
			r.t.Logf("%s: %d requests lost at the front door while it was down (expected), e.g. %s", row.fault, len(bad), bad[0])
			if len(after) > 0 {
				r.t.Errorf("%s: %d requests due after it was back failed, e.g. %s", row.fault, len(after), after[0])
			}
		case len(bad) > 0:
			r.t.Errorf("%s: %d page requests failed, e.g. %s", row.fault, len(bad), bad[0])
		}
	}
}

// table renders the rows as a Markdown table.
func (r *chaosRun) table() string {
	var b strings.Builder
	fmt.Fprintln(&b, "| fault | requests | non-200 | p99 | max | back in | edits accepted | edits missing | edits on page after |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range r.rows {
		rs := r.ld.between(row.start, row.end)
		lat := make([]time.Duration, 0, len(rs))
		bad := 0
		for _, x := range rs {
			lat = append(lat, x.latency)
			if x.status != http.StatusOK {
				bad++
			}
		}
		slices.Sort(lat)
		back := "–"
		if !row.backAt.IsZero() {
			back = fmt.Sprintf("%.2f s", row.backIn.Seconds())
		}
		nonOK := strconv.Itoa(bad)
		if row.frontDoor && bad > 0 {
			nonOK += " (front door)"
		}
		edited := "–"
		if row.kind != "" {
			edited = fmt.Sprintf("%.2f s", row.edited.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d | %d | %s |\n", row.fault, len(rs), nonOK,
			loadgen.Percentile(lat, 0.99).Round(time.Millisecond), loadgen.Percentile(lat, 1).Round(time.Millisecond),
			back, row.accepted, row.missing, edited)
	}
	return b.String()
}

// footprint is what would build up if faults leaked: the Go services'
// goroutines and the clients connected to each Redis.
type footprint map[string]int

// footprint reads the goroutines of every Go service that serves /metrics
// and the connected clients of both Redis nodes.
func (r *chaosRun) footprint() footprint {
	r.t.Helper()
	p := r.topo.Config().Ports
	fp := footprint{}
	for name, port := range map[string]int{topology.Source: p.Source, topology.Sync: p.Sync, topology.Direct: p.Direct} {
		n, err := goroutines(topology.URL(port) + "/metrics")
		if err != nil {
			r.t.Fatalf("%s: %v", name, err)
		}
		fp[name+" goroutines"] = n
	}
	for name, port := range map[string]int{topology.RedisMain: p.RedisMain, topology.RedisReplica: p.RedisReplica} {
		rdb := redis.NewClient(&redis.Options{Addr: topology.Addr(port)})
		info, err := rdb.Info(r.t.Context(), "clients").Result()
		rdb.Close()
		if err != nil {
			r.t.Fatalf("%s: INFO clients: %v", name, err)
		}
		n, err := infoInt(info, "connected_clients")
		if err != nil {
			r.t.Fatalf("%s: %v", name, err)
		}
		fp[name+" clients"] = n
	}
	return fp
}

// settled waits until nothing in the footprint has built up over before:
// at most twice as much plus 20 (a generous margin: restarts and pools
// change the counts; a leak per request or per fault grows past it). It
// returns the last footprint read.
func (r *chaosRun) settled(before footprint) footprint {
	var last footprint
	err := testutil.PollEvery(30*time.Second, 500*time.Millisecond, func() error {
		last = r.footprint()
		var over []string
		for k, n := range last {
			if n > 2*before[k]+20 {
				over = append(over, fmt.Sprintf("%s %d (before %d)", k, n, before[k]))
			}
		}
		if len(over) > 0 {
			return fmt.Errorf("built up after the faults: %s", strings.Join(over, ", "))
		}
		return nil
	})
	if err != nil {
		r.t.Error(err)
	}
	return last
}

// goroutines reads go_goroutines from a Prometheus /metrics page.
func goroutines(url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, fmt.Errorf("goroutines: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("goroutines: %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("goroutines: %w", err)
			}
			return int(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("goroutines: %w", err)
	}
	return 0, fmt.Errorf("goroutines: no go_goroutines at %s", url)
}

// infoInt reads an integer field of a Redis INFO reply.
func infoInt(info, field string) (int, error) {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, fmt.Errorf("redis info: no %s", field)
}
