package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// Issue 10, acceptance 1 (supervision): under an open-loop page load
// through the dist tier over ids seen before and a steady stream of edits,
// each component in turn is SIGKILLed from outside, as a crash would end
// it. The supervisor brings each back (healthy) within 10 s; the pages of
// every component but the dist tier itself keep coming (0 non-200); the
// dist tier's own loss drops the connections it had, and only until it is
// back; every accepted edit is on the page within 30 s of the fault.
func TestSupervisorHealsEveryKill(t *testing.T) {
	topo := MustTopology(t, topology.Config{SeedProducts: 300, SeedShops: 20})
	const (
		pageIDs  = 100 // the load's ids, all seen before it starts
		editIDs  = 30  // the edits' ids (a subset)
		rate     = 100 // page requests a second
		observed = 2 * time.Second
	)
	for id := range int64(pageIDs) {
		if got := MustGetPage(t, pageURL(topo, fmt.Sprint(id+1))); got.status != http.StatusOK {
			t.Fatalf("id %d before the load: status %d", id+1, got.status)
		}
	}
	ed := newSupEditor(t, topo, editIDs)
	ld := startSteadyLoad(topo, rate, pageIDs)
	stopEdits := ed.start(100 * time.Millisecond)
	stopped := false
	stopAll := func() {
		if !stopped {
			stopped = true
			stopEdits()
			ld.stop()
		}
	}
	t.Cleanup(stopAll)

	var phases []*supPhase
	base := &supPhase{name: "(no fault)", start: time.Now()}
	select { // a baseline of observed length: a duration, not a synchronisation
	case <-time.After(observed):
	case <-t.Context().Done():
	}
	base.end = time.Now()
	phases = append(phases, base)
	for _, name := range []string{topology.App1, topology.App2, topology.RedisReplica, topology.RedisMain,
		topology.Broker, topology.Source, topology.Sync, topology.Direct, topology.Dist} {
		ph := killAndHeal(t, topo, ed, name, observed)
		phases = append(phases, ph)
		if t.Failed() && ph.backIn == 0 {
			break // it did not come back: the rest would only repeat that
		}
	}
	stopAll()

	t.Logf("%-14s %8s %8s %8s %8s %9s %8s %8s", "fault", "requests", "non-200", "p99", "max", "back in", "products", "missing")
	for _, ph := range phases {
		rs := ld.between(ph.start, ph.end)
		var bad []supResult
		var lat []time.Duration
		for _, r := range rs {
			lat = append(lat, r.latency)
			if r.status != http.StatusOK {
				bad = append(bad, r)
			}
		}
		slices.Sort(lat)
		back := "-"
		if ph.backIn > 0 {
			back = ph.backIn.Round(time.Millisecond).String()
		}
		t.Logf("%-14s %8d %8d %8s %8s %9s %8d %8d", ph.name, len(rs), len(bad),
			loadgen.Percentile(lat, 0.99).Round(time.Millisecond), loadgen.Percentile(lat, 1).Round(time.Millisecond),
			back, ph.edits, ph.missing)
		if ph.name == topology.Dist {
			// The connections in flight and those tried while it was down
			// fail; once it is back (healthy), none may.
			var after []supResult
			for _, r := range bad {
				if !r.at.Before(ph.backAt) {
					after = append(after, r)
				}
			}
			if len(after) > 0 {
				t.Errorf("dist: %d of %d requests scheduled after it was back failed, e.g. %s", len(after), len(bad), after[0])
			}
			continue
		}
		if len(bad) > 0 {
			t.Errorf("%s: %d of %d page requests failed, e.g. %s", ph.name, len(bad), len(rs), bad[0])
		}
	}
	t.Logf("edits: %d accepted, %d refused or failed (while the source was down)", ed.count(true), ed.count(false))
}

// supPhase is one fault of TestSupervisorHealsEveryKill.
type supPhase struct {
	name            string
	start, end      time.Time // the page requests that ended in [start, end) are this phase's
	faultAt, backAt time.Time
	backIn          time.Duration
	edits, missing  int // accepted edits checked, and those missing from the page
}

// killAndHeal SIGKILLs the component's process (the leader of its group
// only, as a crash would: an nginx master leaves its workers behind), waits
// for its supervisor to have it healthy again, checks every accepted edit
// is on the page within 30 s of the fault and observes the load a while
// longer.
func killAndHeal(t *testing.T, topo *topology.Topology, ed *supEditor, name string, observed time.Duration) *supPhase {
	c := topo.Component(name)
	before := c.Status()
	if before.State != topology.StateRunning || before.Pid == 0 {
		t.Fatalf("%s before its fault: %+v", name, before)
	}
	ph := &supPhase{name: name, start: time.Now()}
	ph.faultAt = time.Now()
	if err := syscall.Kill(before.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", name, err)
	}
	err := waitRestarted(c, before)
	if err != nil {
		t.Errorf("%s did not come back: %v", name, err)
		ph.end = time.Now()
		return ph
	}
	ph.backAt = time.Now()
	ph.backIn = ph.backAt.Sub(ph.faultAt)
	t.Logf("%s: SIGKILLed, back (healthy) in %s", name, ph.backIn.Round(time.Millisecond))
	if ph.backIn > 10*time.Second {
		t.Errorf("%s took %s to come back, want ≤ 10 s", name, ph.backIn.Round(time.Millisecond))
	}
	var slowest time.Duration
	ph.edits, ph.missing, slowest = ed.check(t, ph.faultAt.Add(30*time.Second))
	t.Logf("%s: %d products' last accepted edits on the page %s after the fault (the slowest)", name, ph.edits, slowest.Round(time.Millisecond))
	if wait := time.Until(ph.backAt.Add(observed)); wait > 0 {
		select { // watch the load a while after the recovery: a duration, not a synchronisation
		case <-time.After(wait):
		case <-t.Context().Done():
		}
	}
	ph.end = time.Now()
	return ph
}

// supResult is one page request of the steady load.
type supResult struct {
	id      int64
	at      time.Time // when it was due
	end     time.Time // when it ended (its phase is the one it ended in)
	status  int       // 0: transport error
	latency time.Duration
	err     error
}

func (r supResult) String() string {
	return fmt.Sprintf("id %d due %s: status %d after %s (%v)", r.id, r.at.Format("15:04:05.000"), r.status, r.latency.Round(time.Millisecond), r.err)
}

// steadyLoad is an open-loop page load (loadgen.Schedule) through the dist
// tier that runs until stopped; its results are split by when they were due.
type steadyLoad struct {
	cancel  context.CancelFunc
	done    chan struct{}
	client  *http.Client
	mu      sync.Mutex
	results []supResult
}

func startSteadyLoad(topo *topology.Topology, rate, ids int) *steadyLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &steadyLoad{cancel: cancel, done: make(chan struct{}), client: loadgen.NewClient()}
	url := itemURL(topo)
	next := loadgen.Zipf(11, ids)
	go func() {
		defer close(l.done)
		loadgen.Schedule(ctx, rate, time.Hour, func(_ int, at time.Time) {
			// each request runs to its end (the client's 5 s timeout): a
			// stop must not count as a failure
			r := supResult{id: next(), at: at}
			resp, err := l.client.Get(url(r.id))
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil {
					r.status = resp.StatusCode
				}
			}
			r.end = time.Now()
			r.err, r.latency = err, r.end.Sub(at)
			l.mu.Lock()
			l.results = append(l.results, r)
			l.mu.Unlock()
		})
	}()
	return l
}

// stop ends the schedule and waits for the requests in flight.
func (l *steadyLoad) stop() {
	l.cancel()
	<-l.done
	l.client.CloseIdleConnections()
}

// between returns the requests that ended in [from, to): one in flight
// when a fault strikes counts in that fault's phase.
func (l *steadyLoad) between(from, to time.Time) []supResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	var rs []supResult
	for _, r := range l.results {
		if !r.end.Before(from) && r.end.Before(to) {
			rs = append(rs, r)
		}
	}
	return rs
}

// supEditor renames products through the source API, one at a time, and
// remembers every name it tried per product, in order, and which the
// source accepted (200).
type supEditor struct {
	t        *topology.Topology
	products map[int64]catalog.Product
	mu       sync.Mutex
	tries    map[int64][]supTry
	n        int
}

type supTry struct {
	name     string
	accepted bool
}

func newSupEditor(tb testing.TB, topo *topology.Topology, ids int) *supEditor {
	e := &supEditor{t: topo, products: map[int64]catalog.Product{}, tries: map[int64][]supTry{}}
	for id := range int64(ids) {
		e.products[id+1] = MustProduct(tb, topo, id+1)
	}
	return e
}

// start edits a random product every interval until the returned stop.
func (e *supEditor) start(interval time.Duration) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		r := rand.New(rand.NewPCG(10, uint64(time.Now().UnixNano())))
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				e.edit(1 + r.Int64N(int64(len(e.products))))
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// edit renames product id; the name is recorded before the PUT, so that a
// page showing it, accepted or not, counts as at least as new as the
// edits before it. It returns the try's index in e.tries[id] and whether
// the source accepted it.
func (e *supEditor) edit(id int64) (try int, accepted bool) {
	p := e.products[id]
	e.mu.Lock()
	e.n++
	p.Name = fmt.Sprintf("监督 supervised %d-%d#", id, e.n)
	e.tries[id] = append(e.tries[id], supTry{name: p.Name})
	k := len(e.tries[id]) - 1
	e.mu.Unlock()
	p.ID, p.Version = 0, 0
	body, err := json.Marshal(p)
	if err != nil {
		panic(err) // a catalog.Product always marshals
	}
	status, _, err := putSource(e.t, fmt.Sprintf("/api/products/%d", id), body)
	if err == nil && status == http.StatusOK {
		e.mu.Lock()
		e.tries[id][k].accepted = true
		e.mu.Unlock()
		return k, true
	}
	return k, false
}

func (e *supEditor) count(accepted bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ts := range e.tries {
		for _, tr := range ts {
			if tr.accepted == accepted {
				n++
			}
		}
	}
	return n
}

// check waits until every product's page shows its last accepted name or
// a newer try, and reports (with t.Errorf) those that do not by deadline.
// It returns how many products it checked, how many were missing and when,
// after deadline-30s, the slowest showed.
func (e *supEditor) check(t *testing.T, deadline time.Time) (checked, missing int, slowest time.Duration) {
	faultAt := deadline.Add(-30 * time.Second)
	e.mu.Lock()
	last := map[int64]int{}
	for id, ts := range e.tries {
		for k := len(ts) - 1; k >= 0; k-- {
			if ts[k].accepted {
				last[id] = k
				break
			}
		}
	}
	e.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for id, k := range last {
		wg.Go(func() {
			err := e.shows(id, k, deadline)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			slowest = max(slowest, time.Since(faultAt))
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d of %d accepted edits missing from the page 30 s after the fault: %v", len(errs), len(last), errors.Join(errs...))
	}
	return len(last), len(errs), slowest
}

// waitRestarted waits (up to 30 s) until the supervisor has c running and
// healthy again in a new process, one restart after before; a crash loop
// or a component left down ends the wait at once.
func waitRestarted(c *topology.Component, before topology.Status) error {
	return testutil.PollEvery(30*time.Second, 10*time.Millisecond, func() error {
		st := c.Status()
		switch {
		case st.State == topology.StateRunning && st.Restarts == before.Restarts+1 && st.Pid != before.Pid:
			return nil
		case st.State == topology.StateCrashLoop || st.State == topology.StateExited:
			return testutil.StopPolling(fmt.Errorf("%s is %s: %s (see %s)", c.Name(), st.State, st.LastExit, st.LogPath))
		}
		return fmt.Errorf("%s is %s after %d restarts", c.Name(), st.State, st.Restarts)
	})
}
