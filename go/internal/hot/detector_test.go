package hot

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// sim drives a Detector with a simulated clock: nodes count requests per
// id at given rates and report every interval (each at its own phase),
// and the detector evaluates every 50 ms, as the service's ticker does.
type sim struct {
	tb     testing.TB
	now    time.Time
	d      *Detector
	nodes  []*simNode
	rates  map[int64]float64 // req/s per id, spread evenly over the nodes
	events []Event
	step   time.Duration
	next   time.Time // next evaluation
}

type simNode struct {
	name     string
	interval time.Duration
	next     time.Time
	counted  time.Time // acc holds the requests up to then
	acc      map[int64]float64
}

// count adds the requests up to now at the current rates.
func (s *sim) count(n *simNode) {
	dt := s.now.Sub(n.counted).Seconds()
	n.counted = s.now
	for id, r := range s.rates {
		n.acc[id] += r * dt / float64(len(s.nodes))
	}
}

// set changes id's rate from now on (0: no more requests).
func (s *sim) set(id int64, rate float64) {
	for _, n := range s.nodes {
		s.count(n)
	}
	if rate == 0 {
		delete(s.rates, id)
		return
	}
	s.rates[id] = rate
}

func newSim(tb testing.TB, rule Rule, nodes int, seed uint64) *sim {
	tb.Helper()
	s := &sim{tb: tb, now: time.Unix(1_700_000_000, 0).UTC(), rates: map[int64]float64{}, step: 5 * time.Millisecond}
	d, err := NewDetector(rule, func() time.Time { return s.now }, NewStats(s.now), nil)
	if err != nil {
		tb.Fatal(err)
	}
	d.OnEvent(func(e Event) { s.events = append(s.events, e) })
	s.d = d
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range nodes {
		s.nodes = append(s.nodes, &simNode{
			name: fmt.Sprintf("app%d", i+1), interval: 250 * time.Millisecond,
			next: s.now.Add(time.Duration(r.Int64N(int64(250 * time.Millisecond)))), counted: s.now, acc: map[int64]float64{},
		})
	}
	s.next = s.now
	return s
}

// zipf sets a background of total req/s over n ids, rate ∝ 1/rank.
func (s *sim) zipf(total float64, n int) {
	h := 0.0
	for k := 1; k <= n; k++ {
		h += 1 / float64(k)
	}
	for k := 1; k <= n; k++ {
		s.rates[int64(k)] = total / h / float64(k)
	}
}

// run advances the simulation by d; stop, if not nil, ends it early
// when it returns true (checked after each step).
func (s *sim) run(d time.Duration, stop func() bool) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.now = s.now.Add(s.step)
		for _, n := range s.nodes {
			if !s.now.Before(n.next) {
				s.count(n)
				rep := Report{Node: n.name, Interval: n.interval}
				for id, x := range n.acc {
					if c := math.Floor(x); c >= 1 {
						rep.Counts = append(rep.Counts, IDCount{ID: id, Count: uint64(c)})
						n.acc[id] = x - c
					}
				}
				s.d.Ingest(rep)
				n.next = n.next.Add(n.interval)
			}
		}
		if !s.now.Before(s.next) {
			s.d.Evaluate()
			s.next = s.next.Add(50 * time.Millisecond)
		}
		if stop != nil && stop() {
			return
		}
	}
}

func (s *sim) hot(id int64) bool {
	for _, e := range s.d.Snapshot().Entries {
		if e.ID == id {
			return true
		}
	}
	return false
}

func (s *sim) hotIDs() []int64 {
	var ids []int64
	for _, e := range s.d.Snapshot().Entries {
		ids = append(ids, e.ID)
	}
	slices.Sort(ids)
	return ids
}

// countEvents counts id's entries and leavings.
func (s *sim) countEvents(id int64) (entered, left int) {
	for _, e := range s.events {
		if e.ID == id {
			if e.Entered {
				entered++
			} else {
				left++
			}
		}
	}
	return
}

const surgeID = 9_000_000_000_000_000_01

// TestDetectSurgeFast: a Zipf background over 10,000 ids whose busiest id
// stays under the floor, then a surge on one id at 5× the busiest: the id
// is hot well within a second of the surge's first request, over many
// surges at random phases against the reports; nothing else ever is.
func TestDetectSurgeFast(t *testing.T) {
	const surges = 40
	var lat []time.Duration
	for i := range surges {
		s := newSim(t, DefaultRule(), 3, uint64(i))
		s.zipf(800, 10_000) // busiest id: ~82 req/s, under the floor of 100
		top := s.rates[1]
		s.run(3*time.Second+time.Duration(i)*7*time.Millisecond, nil)
		if ids := s.hotIDs(); len(ids) != 0 {
			t.Fatalf("surge %d: hot before the surge: %v", i, ids)
		}
		s.set(surgeID, 5*top)
		start := s.now
		s.run(2*time.Second, func() bool { return s.hot(surgeID) })
		if !s.hot(surgeID) {
			t.Fatalf("surge %d: not hot after 2 s", i)
		}
		lat = append(lat, s.now.Sub(start))
		if ids := s.hotIDs(); !slices.Equal(ids, []int64{surgeID}) {
			t.Fatalf("surge %d: hot %v, want only the surging id", i, ids)
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("detection latency over %d surges at 5x the busiest id (reports every 250 ms, 3 nodes): min %s p50 %s p99 %s max %s",
		surges, lat[0], p50, p99, lat[len(lat)-1])
	if p99 > 600*time.Millisecond {
		t.Errorf("p99 detection latency %s, want at most 600 ms (a second end to end leaves 400 ms for polling)", p99)
	}
}

// TestHysteresis: after the surge ends the id stays hot at least the
// cooldown, then leaves by itself, once.
func TestHysteresis(t *testing.T) {
	rule := DefaultRule()
	s := newSim(t, rule, 2, 1)
	s.zipf(800, 10_000)
	s.run(2*time.Second, nil)
	s.set(surgeID, 1000)
	s.run(3*time.Second, nil)
	if !s.hot(surgeID) {
		t.Fatal("not hot during the surge")
	}
	s.set(surgeID, 0)
	end := s.now
	s.run(rule.Cooldown, nil)
	if !s.hot(surgeID) {
		t.Fatalf("left %s after the surge ended, before the cooldown %s", s.now.Sub(end), rule.Cooldown)
	}
	s.run(rule.Window+time.Second, func() bool { return !s.hot(surgeID) })
	if s.hot(surgeID) {
		t.Fatalf("still hot %s after the surge ended", s.now.Sub(end))
	}
	t.Logf("left %s after the surge ended (cooldown %s, window %s)", s.now.Sub(end), rule.Cooldown, rule.Window)
	if in, out := s.countEvents(surgeID); in != 1 || out != 1 {
		t.Fatalf("entered %d times, left %d, want once each", in, out)
	}
}

// TestNoFlapping: an id whose rate wobbles around the rule's threshold
// (its short-term rate crosses it every few hundred ms) enters once and
// stays, and leaves once when it really cools down.
func TestNoFlapping(t *testing.T) {
	rule := DefaultRule()
	rule.Cooldown = 2 * time.Second
	s := newSim(t, rule, 2, 3)
	s.zipf(800, 10_000)
	s.run(2*time.Second, nil)
	for i := range 60 {
		// 90 req/s (under the floor) and 150 req/s, alternating every 300 ms.
		s.set(surgeID, []float64{150, 90}[i%2])
		s.run(300*time.Millisecond, nil)
	}
	if in, out := s.countEvents(surgeID); in != 1 || out != 0 {
		t.Fatalf("entered %d times, left %d while wobbling around the threshold; want entered once", in, out)
	}
	s.set(surgeID, 10)
	s.run(rule.Cooldown+rule.Window+time.Second, nil)
	if in, out := s.countEvents(surgeID); in != 1 || out != 1 {
		t.Fatalf("entered %d, left %d; want once each", in, out)
	}
}

// TestBaselineIsTheRestOfTheTraffic: the rule compares an id with the
// other busiest ids, not with a fixed number: the same rate is hot over a
// quiet background and not over a busy one.
func TestBaselineIsTheRestOfTheTraffic(t *testing.T) {
	for _, tt := range []struct {
		name       string
		background float64 // uniform rate of each of 100 ids
		wantHot    bool
	}{
		{"quiet background", 20, true},
		{"busy background", 200, false}, // 400 < 5 × 200
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSim(t, DefaultRule(), 2, 4)
			for id := int64(1); id <= 100; id++ {
				s.set(id, tt.background)
			}
			s.run(2*time.Second, nil)
			s.set(surgeID, 400)
			s.run(2*time.Second, nil)
			if s.hot(surgeID) != tt.wantHot {
				t.Fatalf("hot = %v, want %v (set %v)", s.hot(surgeID), tt.wantHot, s.hotIDs())
			}
		})
	}
}

func TestPins(t *testing.T) {
	s := newSim(t, DefaultRule(), 2, 5)
	s.zipf(800, 10_000)
	s.run(time.Second, nil)
	e := s.d.Pin(77)
	if !e.Pinned || e.Rule != "pinned" || !s.hot(77) {
		t.Fatalf("pin: %+v, hot %v", e, s.hot(77))
	}
	s.run(10*time.Second, nil) // no traffic at all: stays
	if !s.hot(77) {
		t.Fatal("pinned id left")
	}
	s.d.Ingest(Report{Node: "app1", Interval: time.Second, Missing: []int64{77}})
	if !s.hot(77) {
		t.Fatal("pinned id left on a missing report")
	}
	if got := s.d.Pins(); !slices.Equal(got, []int64{77}) {
		t.Fatalf("pins %v", got)
	}
	if _, ok := s.d.Unpin(77); !ok || s.hot(77) {
		t.Fatalf("unpin: ok %v, hot %v", ok, s.hot(77))
	}
	if _, ok := s.d.Unpin(77); ok {
		t.Fatal("unpinned twice")
	}
	// Unpinning a surging id keeps it: the rule holds.
	s.set(surgeID, 1000)
	s.d.Pin(surgeID)
	s.run(time.Second, nil)
	s.d.Unpin(surgeID)
	if !s.hot(surgeID) {
		t.Fatal("a surging id left when unpinned")
	}
}

// TestMissing: an id reported missing (404) leaves at once, its counts
// are dropped, and it does not come back while its suppression lasts.
func TestMissing(t *testing.T) {
	rule := DefaultRule()
	s := newSim(t, rule, 2, 6)
	s.zipf(800, 10_000)
	s.set(surgeID, 1000)
	s.run(2*time.Second, nil)
	if !s.hot(surgeID) {
		t.Fatal("not hot")
	}
	s.d.Ingest(Report{Node: "app1", Interval: 250 * time.Millisecond, Missing: []int64{surgeID}})
	if s.hot(surgeID) {
		t.Fatal("still hot after a missing report")
	}
	if c := s.d.win.Count(surgeID); c != 0 {
		t.Fatalf("window still counts %d", c)
	}
	s.run(max(rule.Cooldown, rule.Window)-100*time.Millisecond, nil) // requests go on (404s)
	if s.hot(surgeID) || s.d.win.Count(surgeID) != 0 {
		t.Fatal("came back while suppressed")
	}
	top, _ := s.d.stats.Top(Hour, s.now, 10)
	for _, c := range top {
		if c.ID == surgeID {
			t.Fatal("long-term statistics still count it")
		}
	}
	if _, left := s.countEvents(surgeID); left != 1 {
		t.Fatalf("left %d times", left)
	}
}

// TestMaxHot: more surging ids than --max-hot: the hottest are kept,
// pins included, and a hotter newcomer replaces the coolest.
func TestMaxHot(t *testing.T) {
	rule := DefaultRule()
	rule.MaxHot = 3
	s := newSim(t, rule, 2, 8)
	s.zipf(800, 10_000)
	for i := int64(1); i <= 5; i++ {
		s.set(100_000+i, 300*float64(i)) // 300..1500 req/s
	}
	s.run(3*time.Second, nil)
	if got := s.hotIDs(); !slices.Equal(got, []int64{100_003, 100_004, 100_005}) {
		t.Fatalf("hot %v, want the 3 hottest", got)
	}
	s.d.Pin(55)
	if got := s.hotIDs(); !slices.Equal(got, []int64{55, 100_004, 100_005}) {
		t.Fatalf("hot %v after a pin, want the pin and the 2 hottest", got)
	}
	s.set(100_001, 5000)
	s.run(time.Second, nil)
	if got := s.hotIDs(); !slices.Equal(got, []int64{55, 100_001, 100_005}) {
		t.Fatalf("hot %v, want the newly hottest in", got)
	}
}

// TestFloor: an id far above the rest but under the floor is not hot.
func TestFloor(t *testing.T) {
	s := newSim(t, DefaultRule(), 2, 9)
	for id := int64(1); id <= 50; id++ {
		s.set(id, 1)
	}
	s.set(surgeID, 90)
	s.run(5*time.Second, nil)
	if ids := s.hotIDs(); len(ids) != 0 {
		t.Fatalf("hot %v under the floor", ids)
	}
}

func TestRuleValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Rule)
	}{
		{"window not a multiple of bucket", func(r *Rule) { r.Window = 2100 * time.Millisecond }},
		{"window of one bucket", func(r *Rule) { r.Window = r.Bucket }},
		{"zero bucket", func(r *Rule) { r.Bucket = 0 }},
		{"ratio 1", func(r *Rule) { r.Ratio = 1 }},
		{"ratio NaN", func(r *Rule) { r.Ratio = math.NaN() }},
		{"floor 0", func(r *Rule) { r.Floor = 0 }},
		{"top-k 0", func(r *Rule) { r.TopK = 0 }},
		{"top-k over capacity", func(r *Rule) { r.TopK = 5000 }},
		{"negative cooldown", func(r *Rule) { r.Cooldown = -time.Second }},
		{"tiny capacity", func(r *Rule) { r.Capacity = 1 }},
		{"max-hot 0", func(r *Rule) { r.MaxHot = 0 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := DefaultRule()
			tt.edit(&r)
			if err := r.Validate(); err == nil {
				t.Fatalf("%+v: no error", r)
			}
		})
	}
	if err := DefaultRule().Validate(); err != nil {
		t.Fatal(err)
	}
}
