package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// Redis failover with seed 004's two data centres (main and replica in A,
// two replicas in B, three Sentinels): one topology of its own, with page
// traffic over ids served before and a steady stream of edits throughout.
//
//  1. main is SIGKILLed for good right after a burst of edits: A's replica
//     is promoted, every accepted edit reaches the page, pages keep serving.
//  2. the new main (A's former replica) is frozen for 30 s: with A's
//     servers gone, one of B's replicas is promoted, edits land before the
//     thaw, and after SIGCONT the frozen server rejoins as a replica with
//     no version regression.
//  3. the main killed in 1 is started again: it comes back as a replica.
func TestRedisFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a topology with Sentinels and waits for failovers")
	}
	topo := MustFailoverTopology(t, topology.Config{SeedProducts: 300, SeedShops: 20})
	f := newFailoverRig(t, topo)
	defer f.stop()

	// Before any fault the app nodes read data centre A's replica.
	mustRead(t, topo, "10 "+topo.Component(topology.RedisReplica).Addr())

	t.Run("main killed for good after a burst of edits", func(t *testing.T) {
		f.burst(t, 20, 201)
		m := f.fault(t, func() error { return topo.Component(topology.RedisMain).Kill() })
		if m.newMain != topo.Component(topology.RedisReplica).Addr() {
			t.Errorf("promoted %s, want data centre A's replica %s", m.newMain, topo.Component(topology.RedisReplica).Addr())
		}
		f.mustEditsOnPage(t, 30*time.Second)
		// A's replica is main now and A has no other: the app nodes read B's.
		// (sorted by address within a priority, as detailpage.sentinel does)
		b1, b2 := topo.Config().Ports.RedisB1, topo.Config().Ports.RedisB2
		if b2 < b1 {
			b1, b2 = b2, b1
		}
		mustRead(t, topo, "100 "+topology.Addr(b1)+",100 "+topology.Addr(b2))
		// The sync service saw a new main and re-applied what it wrote lately
		// (repair.go): writes main took but never passed to its replica.
		testutil.Eventually(t, 10*time.Second, func() error {
			log := MustReadFile(t, topo.Component(topology.Sync).LogPath())
			if !strings.Contains(log, "re-applied recent changes on the new redis main") {
				var lines []string
				for _, l := range strings.Split(log, "\n") {
					if strings.Contains(l, "run id") || strings.Contains(l, "run_id") {
						lines = append(lines, l)
					}
				}
				return fmt.Errorf("the sync service has not repaired after the change of main; its run id lines:\n%s", strings.Join(lines, "\n"))
			}
			return nil
		})
	})

	t.Run("main frozen 30 s rejoins as a replica after the thaw", func(t *testing.T) {
		frozen := topo.Component(topology.RedisReplica) // main since the subtest above
		f.burst(t, 20, 221)
		m := f.fault(t, frozen.Pause)
		if m.newMain != topo.Component(topology.RedisB1).Addr() && m.newMain != topo.Component(topology.RedisB2).Addr() {
			t.Errorf("promoted %s, want one of data centre B's replicas (A has no server left)", m.newMain)
		}
		// Edits made during the freeze reach the page before the thaw.
		f.mustEditsOnPage(t, 20*time.Second)
		if left := 30*time.Second - time.Since(m.at); left > 0 {
			time.Sleep(left) // the fault's length, not synchronisation
		}
		if err := frozen.Resume(); err != nil {
			t.Fatal(err)
		}
		thawed := time.Now()
		rdb := redis.NewClient(&redis.Options{Addr: frozen.Addr()})
		defer rdb.Close()
		testutil.Eventually(t, 30*time.Second, func() error {
			info, err := rdb.Info(context.Background(), "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up") {
				return fmt.Errorf("thawed server not a replica in sync yet: %.120s", info)
			}
			return nil
		})
		t.Logf("after the thaw the old main is a replica in sync after %s", time.Since(thawed).Round(time.Millisecond))
		// It is A's again: the app nodes read it first.
		mustRead(t, topo, "10 "+frozen.Addr())
		f.mustEditsOnPage(t, 30*time.Second) // no version regression
	})

	t.Run("the killed main restarted comes back as a replica", func(t *testing.T) {
		// The topology starts it in the role the Sentinels recorded: a
		// replica of the current main, never a second main.
		MustStart(t, topo, topology.RedisMain)
		rdb := redis.NewClient(&redis.Options{Addr: topo.Component(topology.RedisMain).Addr()})
		defer rdb.Close()
		info, err := rdb.Info(context.Background(), "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_link_status:up") {
			t.Fatalf("restarted old main is not a replica in sync: %.200s", info)
		}
		f.mustEditsOnPage(t, 30*time.Second) // no version regression
	})

	if n := f.healthFailed.Load(); n > 0 {
		t.Errorf("%d of %d health checks of sync and direct failed during the failovers", n, f.healthChecks.Load())
	} else {
		t.Logf("%d health checks of sync and direct, all 200", f.healthChecks.Load())
	}
	if n := f.failed.Load(); n > 0 {
		t.Errorf("%d of %d page requests for ids served before were not 200 (first: %v)", n, f.requests.Load(), f.firstFailure.Load())
	} else {
		t.Logf("%d page requests, all 200", f.requests.Load())
	}
}

// mustRead waits until both app nodes read the servers prefix first (their
// /_admin/status "reads": "prio host:port,...", from Sentinel).
func mustRead(t *testing.T, topo *topology.Topology, prefix string) {
	t.Helper()
	for _, node := range []string{topology.App1, topology.App2} {
		testutil.Eventually(t, 15*time.Second, func() error {
			status, body := admin(t, topo, node, http.MethodGet, "/_admin/status", token, nil)
			var st struct {
				Reads struct{ Source, Servers string }
			}
			if status != http.StatusOK || json.Unmarshal(body, &st) != nil {
				return fmt.Errorf("%s: status %d %.200s", node, status, body)
			}
			if st.Reads.Source != "sentinel" || !strings.HasPrefix(st.Reads.Servers, prefix) {
				return fmt.Errorf("%s reads %q from %s, want %q first", node, st.Reads.Servers, st.Reads.Source, prefix)
			}
			return nil
		})
	}
}

// MustFailoverTopology starts a topology with Sentinels (the default
// layout, which the rest of the suite does not use) for one test.
func MustFailoverTopology(tb testing.TB, cfg topology.Config) *topology.Topology {
	tb.Helper()
	cfg.NoSentinel = false
	topo, err := startLayout(cfg)
	if err != nil {
		tb.Fatalf("start a topology with Sentinels: %v", err)
	}
	tb.Cleanup(func() {
		if err := stopTopology(topo); err != nil {
			tb.Errorf("stop the test's topology: %v", err)
		}
	})
	return topo
}

// failoverRig keeps page traffic and an edit stream going, and remembers
// the last accepted name of every edited product.
type failoverRig struct {
	topo         *topology.Topology
	sentinel     *redis.SentinelClient
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	requests     atomic.Int64
	failed       atomic.Int64
	healthChecks atomic.Int64
	healthFailed atomic.Int64 // the services' /healthz answers other than 200
	firstFailure atomic.Value
	mu           sync.Mutex
	last         map[int64]string // id → last accepted name
	seq          atomic.Int64
}

const servedIDs = 100 // ids 1..100: served before the faults, then read in a loop

func newFailoverRig(t *testing.T, topo *topology.Topology) *failoverRig {
	f := &failoverRig{topo: topo, last: map[int64]string{}}
	f.sentinel = redis.NewSentinelClient(&redis.Options{Addr: topo.Component(topology.Sentinel1).Addr()})
	for id := 1; id <= servedIDs; id++ {
		if p := MustGetPage(t, pageURL(topo, fmt.Sprint(id))); p.status != http.StatusOK {
			t.Fatalf("id %d: status %d before any fault", id, p.status)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for w := range 4 { // page readers over the served ids
		f.wg.Go(func() {
			for i := w; ctx.Err() == nil; i += 4 {
				url := pageURL(topo, fmt.Sprint(1+i%servedIDs))
				p, err := getPage(url)
				f.requests.Add(1)
				if err != nil || p.status != http.StatusOK {
					if f.failed.Add(1) == 1 {
						f.firstFailure.Store(fmt.Sprintf("%s: status %d, %v", url, p.status, err))
					}
				}
				time.Sleep(5 * time.Millisecond) // pace the load, not synchronisation
			}
		})
	}
	f.wg.Go(func() { // the Go services' health checks must not flap through a failover
		for ctx.Err() == nil {
			for _, name := range []string{topology.Sync, topology.Direct} {
				resp, err := client.Get("http://" + topo.Component(name).Addr() + "/healthz")
				f.healthChecks.Add(1)
				if err != nil || resp.StatusCode != http.StatusOK {
					f.healthFailed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
			time.Sleep(100 * time.Millisecond) // the probe rate, not synchronisation
		}
	})
	f.wg.Go(func() { // an edit every 200 ms over ids 101..200
		for i := 0; ctx.Err() == nil; i++ {
			if err := f.edit(int64(101 + i%100)); err != nil {
				t.Errorf("edit stream: %v", err)
				return
			}
			time.Sleep(200 * time.Millisecond) // the edit rate, not synchronisation
		}
	})
	return f
}

func (f *failoverRig) stop() {
	f.cancel()
	f.wg.Wait()
	f.sentinel.Close()
}

// edit renames product id; the source must accept it whatever is down.
func (f *failoverRig) edit(id int64) error {
	p, err := getProduct(f.topo, id)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("Failover edit %d-%d", id, f.seq.Add(1))
	p.Name, p.ID, p.Version = name, 0, 0
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	status, resp, err := putSource(f.topo, fmt.Sprintf("/api/products/%d", id), body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("rename %d: status %d %.200s", id, status, resp)
	}
	f.mu.Lock()
	f.last[id] = name
	f.mu.Unlock()
	return nil
}

// burst makes n edits at once on ids first..first+n-1.
func (f *failoverRig) burst(t *testing.T, n int, first int64) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := f.edit(first + int64(i)); err != nil {
				t.Errorf("burst: %v", err)
			}
		})
	}
	wg.Wait()
}

// failoverTimes are what one fault cost.
type failoverTimes struct {
	at        time.Time // the fault
	newMain   string
	detected  time.Duration // until a Sentinel flags main down
	promoted  time.Duration // until the Sentinels name another main
	firstEdit time.Duration // until an edit made after the fault is on the page
}

// fault runs inject against main and measures detection, promotion and
// the first edit on the page after it.
func (f *failoverRig) fault(t *testing.T, inject func() error) failoverTimes {
	ctx := context.Background()
	old, err := f.sentinel.GetMasterAddrByName(ctx, topology.MasterName).Result()
	if err != nil {
		t.Fatal(err)
	}
	oldAddr := old[0] + ":" + old[1]
	m := failoverTimes{at: time.Now()}
	if err := inject(); err != nil {
		t.Fatal(err)
	}
	err = testutil.PollEvery(20*time.Second, 20*time.Millisecond, func() error {
		if m.detected == 0 {
			st, err := f.sentinel.Master(ctx, topology.MasterName).Result()
			if err == nil && (strings.Contains(st["flags"], "s_down") || st["ip"]+":"+st["port"] != oldAddr) {
				m.detected = time.Since(m.at)
			}
		}
		addr, err := f.sentinel.GetMasterAddrByName(ctx, topology.MasterName).Result()
		if err != nil {
			return err
		}
		if a := addr[0] + ":" + addr[1]; a != oldAddr {
			m.newMain, m.promoted = a, time.Since(m.at)
			return nil
		}
		return fmt.Errorf("main still %s", oldAddr)
	})
	if err != nil {
		t.Fatalf("no promotion: %v", err)
	}
	// The first edit made after the fault that reaches the page.
	id := int64(300)
	if err := f.edit(id); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	want := f.last[id]
	f.mu.Unlock()
	if _, err := pageShows(pageURL(f.topo, fmt.Sprint(id)), want, 20*time.Second); err != nil {
		t.Fatalf("no edit on the page after the failover: %v", err)
	}
	m.firstEdit = time.Since(m.at)
	t.Logf("failover: main %s lost; detected after %s, %s promoted after %s, first edit on the page after %s",
		oldAddr, m.detected.Round(time.Millisecond), m.newMain, m.promoted.Round(time.Millisecond), m.firstEdit.Round(time.Millisecond))
	return m
}

// mustEditsOnPage checks that every product's page shows its last accepted
// name within limit (the edit stream goes on meanwhile: the last accepted
// name is read again on every round).
func (f *failoverRig) mustEditsOnPage(t *testing.T, limit time.Duration) {
	var ids []int64
	start := time.Now()
	err := testutil.PollEvery(limit, 200*time.Millisecond, func() error {
		f.mu.Lock()
		want := make(map[int64]string, len(f.last))
		for id, name := range f.last {
			want[id] = name
		}
		f.mu.Unlock()
		ids = ids[:0]
		for id := range want {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		var missing []string
		for _, id := range ids {
			p, err := getPage(pageURL(f.topo, fmt.Sprint(id)))
			if err != nil || p.status != http.StatusOK || !strings.Contains(p.body, want[id]) {
				missing = append(missing, fmt.Sprint(id))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d edited products do not show their last accepted edit: %s", len(missing), len(ids), strings.Join(missing, ","))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("all %d edited products show their last accepted edit (checked in %s)", len(ids), time.Since(start).Round(time.Millisecond))
}
