// Package hot detects hot products: ids whose request rate surges above
// the rest of the traffic. App nodes (and the dist tier) report batched,
// pre-aggregated counts per id; a sliding Window of bounded Space-Saving
// summaries counts them; a Detector applies the operators' rule on a short
// ticker and after each report, with hysteresis, pins and a bound on the
// set; long-term Stats keep the top ids by hour and by day. Service serves
// it all over HTTP (docs/hot.md).
package hot

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Rule is the hot rule operators set.
type Rule struct {
	// Window is the length of the sliding window; Bucket the length of one
	// of its buckets (Window is a multiple of it).
	Window, Bucket time.Duration
	// An id enters the hot set when its short-term rate (from each node's
	// reports of the last two buckets, see shortRates) is at least Floor
	// req/s and at least Ratio × the baseline: the mean window rate of the
	// TopK busiest ids that are neither hot nor the id itself.
	Floor float64
	Ratio float64
	TopK  int
	// Cooldown: a hot id leaves only once its rates have stayed below the
	// rule for this long.
	Cooldown time.Duration
	// Capacity is the ids each bucket tracks (Space-Saving).
	Capacity int
	// MaxHot bounds the hot set (pinned ids included); the hottest are
	// kept.
	MaxHot int
}

// DefaultRule is the rule with the defaults of the command's flags.
func DefaultRule() Rule {
	return Rule{Window: 2 * time.Second, Bucket: 250 * time.Millisecond, Floor: 100, Ratio: 5, TopK: 50,
		Cooldown: 5 * time.Second, Capacity: 4096, MaxHot: 32}
}

// Validate checks the rule.
func (r Rule) Validate() error {
	switch {
	case r.Bucket <= 0:
		return errors.New("hot: bucket must be positive")
	case r.Window < 2*r.Bucket || r.Window%r.Bucket != 0:
		return fmt.Errorf("hot: window %s must be a multiple of bucket %s, at least two buckets", r.Window, r.Bucket)
	case r.Window/r.Bucket > 1000:
		return fmt.Errorf("hot: window %s holds more than 1000 buckets of %s", r.Window, r.Bucket)
	case !(r.Floor > 0) || r.Floor > 1e12:
		return errors.New("hot: floor must be a positive rate (req/s)")
	case !(r.Ratio > 1) || r.Ratio > 1e6:
		return errors.New("hot: ratio must be above 1")
	case r.TopK < 1 || r.TopK > 10_000:
		return errors.New("hot: top-k must be 1..10000")
	case r.Cooldown < 0:
		return errors.New("hot: cooldown must not be negative")
	case r.Capacity < 16 || r.Capacity > 1<<20:
		return errors.New("hot: capacity must be 16..1048576")
	case r.TopK >= r.Capacity:
		return errors.New("hot: top-k must be below capacity")
	case r.MaxHot < 1 || r.MaxHot > 10_000:
		return errors.New("hot: max-hot must be 1..10000")
	}
	return nil
}

// Report is one node's batch of counts, validated (see ParseReport).
type Report struct {
	Node     string
	Interval time.Duration
	Counts   []IDCount
	Missing  []int64
}

// IDCount is an id and its count.
type IDCount struct {
	ID    int64  `json:"id"`
	Count uint64 `json:"count"`
}

// Entry is one id of the hot set.
type Entry struct {
	ID         int64     `json:"id"`
	Rate       float64   `json:"rate"`        // short-term rate, req/s
	WindowRate float64   `json:"window_rate"` // rate over the window, req/s
	Since      time.Time `json:"since"`
	Pinned     bool      `json:"pinned"`
	Rule       string    `json:"rule"` // "rate" (detected) or "pinned"
}

// Snapshot is the hot set at one evaluation; never modified once
// published.
type Snapshot struct {
	At      time.Time
	Entries []Entry // hottest first
	IDs     []byte  // one decimal id per line
}

// Event is a change of the hot set.
type Event struct {
	ID      int64
	Entered bool // else left
	Reason  string
}

type hotID struct {
	since       time.Time
	pinned      bool // by an operator
	detected    bool // by the rule
	belowSince  time.Time
	rate, wrate float64
}

// Detector applies the Rule to the reported counts. It is safe for
// concurrent use: reports, evaluations and admin calls take one lock;
// readers of the hot set read the last published Snapshot without it.
type Detector struct {
	rule  Rule
	now   func() time.Time
	log   *slog.Logger
	stats *Stats

	mu         sync.Mutex
	win        *Window
	hot        map[int64]*hotID
	suppressed map[int64]time.Time // missing ids: not counted nor admitted until then
	lastEval   time.Time
	events     func(Event)
	evalTime   func(time.Duration)
	snap       atomic.Pointer[Snapshot]

	recent map[string]*nodeReports // each node's reports of the short horizon

	// Scratch, reused between evaluations.
	top   []IDCount
	cands []cand
	short map[int64]float64 // id → short-term rate
}

// nodeReports are one node's recent reports, oldest first.
type nodeReports struct {
	reps []recentReport
}

// recentReport is a report as the short-term rate reads it: when it
// arrived, the time it covers and its counts, sorted by id.
type recentReport struct {
	at       time.Time
	interval time.Duration
	counts   []IDCount
}

// maxNodes bounds the nodes whose recent reports are kept (beyond it the
// node heard from longest ago is forgotten; its counts still go into the
// window).
const maxNodes = 64

// maxRecentReports bounds the reports kept per node for the short-term
// rate.
const maxRecentReports = 4

type cand struct {
	id          int64
	rate, wrate float64
}

// maxSuppressed bounds the ids remembered as missing.
const maxSuppressed = 100_000

// NewDetector returns a detector applying rule, reading time from now
// (nil: time.Now). stats, if not nil, is fed every report.
func NewDetector(rule Rule, now func() time.Time, stats *Stats, log *slog.Logger) (*Detector, error) {
	if err := rule.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Detector{
		rule: rule, now: now, log: log, stats: stats,
		win:        NewWindow(int(rule.Window/rule.Bucket), rule.Bucket, rule.Capacity, now()),
		hot:        map[int64]*hotID{},
		suppressed: map[int64]time.Time{},
		recent:     map[string]*nodeReports{},
		short:      map[int64]float64{},
		events:     func(Event) {}, evalTime: func(time.Duration) {},
	}
	d.snap.Store(&Snapshot{At: now()})
	return d, nil
}

// Rule returns the detector's rule.
func (d *Detector) Rule() Rule { return d.rule }

// OnEvent sets a function called (under the detector's lock) for every
// change of the hot set; OnEval one called with each evaluation's
// duration. Set them before use.
func (d *Detector) OnEvent(fn func(Event))        { d.events = fn }
func (d *Detector) OnEval(fn func(time.Duration)) { d.evalTime = fn }

// Snapshot returns the hot set as last evaluated.
func (d *Detector) Snapshot() *Snapshot { return d.snap.Load() }

// Tracked is the number of ids with a count in the window.
func (d *Detector) Tracked() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.win.Tracked()
}

// evalAfterReport is the least time between two evaluations that reports
// trigger (the ticker evaluates anyway).
const evalAfterReport = 10 * time.Millisecond

// Ingest adds a report: missing ids leave the hot set at once (unless
// pinned) and their counts are dropped; counts go into the window and the
// long-term statistics. The rule is then evaluated, unless it was less
// than 10 ms ago and no id left.
func (d *Detector) Ingest(r Report) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	d.win.Advance(now)
	changed := false
	for _, id := range r.Missing {
		changed = d.dropMissing(id, now) || changed
	}
	for _, c := range r.Counts {
		if _, gone := d.suppressed[c.ID]; gone {
			continue
		}
		d.win.Add(c.ID, c.Count)
	}
	d.remember(r, now)
	if d.stats != nil {
		d.stats.add(now, r.Counts, d.suppressed)
	}
	if changed || now.Sub(d.lastEval) >= evalAfterReport {
		d.evaluate(now)
	}
}

// remember keeps r for the short-term rate.
func (d *Detector) remember(r Report, now time.Time) {
	if len(r.Counts) == 0 || r.Interval <= 0 {
		return
	}
	n, ok := d.recent[r.Node]
	if !ok {
		if len(d.recent) >= maxNodes {
			var stalest string
			var at time.Time
			for name, o := range d.recent {
				if last := o.last(); stalest == "" || last.Before(at) {
					stalest, at = name, last
				}
			}
			delete(d.recent, stalest)
		}
		n = &nodeReports{}
		d.recent[r.Node] = n
	}
	counts := slices.Clone(r.Counts)
	slices.SortFunc(counts, func(a, b IDCount) int { return cmp.Compare(a.ID, b.ID) })
	n.reps = append(n.reps, recentReport{at: now, interval: r.Interval, counts: counts})
	n.prune(now, d.rule.Bucket)
}

func (n *nodeReports) last() time.Time {
	if len(n.reps) == 0 {
		return time.Time{}
	}
	return n.reps[len(n.reps)-1].at
}

// prune drops reports older than the node's short horizon (two buckets,
// or two of its report intervals if longer) and all but its last
// maxRecentReports. (Each report carries the time it covers, so dropping
// some keeps the rate right.)
func (n *nodeReports) prune(now time.Time, bucket time.Duration) {
	i := max(len(n.reps)-maxRecentReports, 0)
	for i < len(n.reps) {
		r := n.reps[i]
		if now.Sub(r.at) < max(2*bucket, 2*r.interval) {
			break
		}
		i++
	}
	n.reps = slices.Delete(n.reps, 0, i)
}

// shortRates fills d.short with every recently reported id's short-term
// rate: for each node, the counts of its reports of the short horizon
// divided by the time those reports cover (the sum of their intervals),
// summed over the nodes. Reports arrive in bursts (one per node every
// interval); dividing by the time the reports cover, not by the time they
// arrived in, keeps the estimate from doubling when two of a node's
// reports land in a short span.
func (d *Detector) shortRates(now time.Time) {
	clear(d.short)
	for name, n := range d.recent {
		n.prune(now, d.rule.Bucket)
		if len(n.reps) == 0 {
			delete(d.recent, name)
			continue
		}
		var covered time.Duration
		for _, r := range n.reps {
			covered += r.interval
		}
		per := 1 / covered.Seconds()
		for _, r := range n.reps {
			for _, c := range r.counts {
				d.short[c.ID] += float64(c.Count) * per
			}
		}
	}
	for id := range d.suppressed {
		delete(d.short, id)
	}
}

// dropMissing forgets a missing id; true if it left the hot set.
func (d *Detector) dropMissing(id int64, now time.Time) bool {
	d.win.Remove(id)
	if d.stats != nil {
		d.stats.remove(id)
	}
	if len(d.suppressed) < maxSuppressed {
		d.suppressed[id] = now.Add(max(d.rule.Cooldown, d.rule.Window))
	}
	if h, ok := d.hot[id]; ok && !h.pinned {
		d.leave(id, "missing")
		return true
	}
	return false
}

// Evaluate applies the rule now (the service calls it on a ticker).
func (d *Detector) Evaluate() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.evaluate(d.now())
}

func (d *Detector) enter(id int64, h *hotID, reason string) {
	d.hot[id] = h
	d.events(Event{ID: id, Entered: true, Reason: reason})
}

func (d *Detector) leave(id int64, reason string) {
	delete(d.hot, id)
	d.events(Event{ID: id, Entered: false, Reason: reason})
}

func (d *Detector) evaluate(now time.Time) {
	start := time.Now()
	d.lastEval = now
	d.win.Advance(now)
	for id, until := range d.suppressed {
		if !now.Before(until) {
			delete(d.suppressed, id)
		}
	}
	span := d.win.Span(now).Seconds()
	d.shortRates(now)
	k := d.rule.TopK

	// The TopK+1 busiest ids over the window that are not hot (one more,
	// so that an id among them can be left out of its own baseline).
	d.top = d.topNotHot(d.top[:0], k+1)
	var sumK uint64 // the first k of them
	for i, c := range d.top {
		if i < k {
			sumK += c.Count
		}
	}
	baseline := func(id int64) float64 {
		n, sum := min(len(d.top), k), sumK
		for i, c := range d.top {
			if c.ID == id {
				if i < k {
					sum -= c.Count
					if len(d.top) > k {
						sum += d.top[k].Count
					} else {
						n--
					}
				}
				break
			}
		}
		if n == 0 {
			return 0
		}
		return float64(sum) / float64(n) / span
	}
	meets := func(rate, base float64) bool { return rate >= d.rule.Floor && rate >= d.rule.Ratio*base }

	// Hot ids: leave after Cooldown below the rule by both rates.
	for id, h := range d.hot {
		h.rate = d.short[id]
		h.wrate = float64(d.win.Count(id)) / span
		if h.pinned {
			continue
		}
		base := baseline(id)
		if meets(h.wrate, base) || meets(h.rate, base) {
			h.belowSince = time.Time{}
			continue
		}
		if h.belowSince.IsZero() {
			h.belowSince = now
		}
		if now.Sub(h.belowSince) >= d.rule.Cooldown {
			d.leave(id, "cooled down")
		}
	}

	// Pins may have filled the set: the coolest detected ids make room.
	for len(d.hot) > d.rule.MaxHot {
		id, ok := d.coolest()
		if !ok {
			break
		}
		d.leave(id, "replaced by a pinned id")
	}

	// Candidates: recently reported ids whose short-term rate meets the
	// rule.
	d.cands = d.cands[:0]
	for id, rate := range d.short {
		if rate < d.rule.Floor {
			continue
		}
		if _, isHot := d.hot[id]; isHot {
			continue
		}
		if meets(rate, baseline(id)) {
			d.cands = append(d.cands, cand{id: id, rate: rate, wrate: float64(d.win.Count(id)) / span})
		}
	}
	slices.SortFunc(d.cands, func(a, b cand) int {
		if c := cmp.Compare(b.rate, a.rate); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for _, c := range d.cands {
		if len(d.hot) >= d.rule.MaxHot {
			// Full: the candidate replaces the coolest detected id, if
			// hotter.
			coolest, found := d.coolest()
			if !found || d.hot[coolest].rate >= c.rate {
				break // candidates are sorted: none further is hotter
			}
			d.leave(coolest, "replaced by a hotter id")
		}
		d.enter(c.id, &hotID{since: now, detected: true, rate: c.rate, wrate: c.wrate}, "rate")
	}
	d.publish(now)
	d.evalTime(time.Since(start))
}

// coolest is the detected (not pinned) hot id with the lowest short-term
// rate.
func (d *Detector) coolest() (int64, bool) {
	var coolest int64
	var rate float64
	found := false
	for id, h := range d.hot {
		if h.pinned {
			continue
		}
		if !found || h.rate < rate || (h.rate == rate && id > coolest) {
			coolest, rate, found = id, h.rate, true
		}
	}
	return coolest, found
}

// topNotHot appends to dst the n ids with the highest window count that
// are not hot, highest first.
func (d *Detector) topNotHot(dst []IDCount, n int) []IDCount {
	// A min-heap of n on dst.
	less := func(i, j int) bool {
		if dst[i].Count != dst[j].Count {
			return dst[i].Count < dst[j].Count
		}
		return dst[i].ID > dst[j].ID
	}
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(dst) {
				return
			}
			m := l
			if r := l + 1; r < len(dst) && less(r, l) {
				m = r
			}
			if !less(m, i) {
				return
			}
			dst[i], dst[m] = dst[m], dst[i]
			i = m
		}
	}
	d.win.EachCount(func(id int64, c uint64) {
		if _, isHot := d.hot[id]; isHot {
			return
		}
		if len(dst) < n {
			dst = append(dst, IDCount{ID: id, Count: c})
			for i := len(dst) - 1; i > 0; {
				p := (i - 1) / 2
				if !less(i, p) {
					break
				}
				dst[i], dst[p] = dst[p], dst[i]
				i = p
			}
			return
		}
		if c < dst[0].Count || (c == dst[0].Count && id > dst[0].ID) {
			return
		}
		dst[0] = IDCount{ID: id, Count: c}
		down(0)
	})
	slices.SortFunc(dst, func(a, b IDCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return dst
}

func (d *Detector) publish(now time.Time) {
	s := &Snapshot{At: now, Entries: make([]Entry, 0, len(d.hot))}
	for id, h := range d.hot {
		rule := "rate"
		if h.pinned {
			rule = "pinned"
		}
		s.Entries = append(s.Entries, Entry{ID: id, Rate: round1(h.rate), WindowRate: round1(h.wrate), Since: h.since, Pinned: h.pinned, Rule: rule})
	}
	slices.SortFunc(s.Entries, func(a, b Entry) int {
		if c := cmp.Compare(b.Rate, a.Rate); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	var b strings.Builder
	for _, e := range s.Entries {
		b.WriteString(strconv.FormatInt(e.ID, 10))
		b.WriteByte('\n')
	}
	s.IDs = []byte(b.String())
	d.snap.Store(s)
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// Pin makes id hot until Unpin, whatever its rate.
func (d *Detector) Pin(id int64) Entry {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	h, ok := d.hot[id]
	if !ok {
		h = &hotID{since: now}
		d.enter(id, h, "pinned")
	}
	h.pinned, h.belowSince = true, time.Time{}
	d.evaluate(now)
	return d.entry(id)
}

// Unpin ends a pin: the id leaves the hot set, and comes back at once if
// the rule holds for it.
func (d *Detector) Unpin(id int64) (Entry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.hot[id]
	if !ok || !h.pinned {
		return Entry{ID: id}, false
	}
	d.leave(id, "unpinned")
	d.evaluate(d.now())
	return d.entry(id), true
}

// Pins returns the pinned ids, ascending.
func (d *Detector) Pins() []int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int64
	for id, h := range d.hot {
		if h.pinned {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// entry is id's entry in the last snapshot, or a bare entry if not hot.
func (d *Detector) entry(id int64) Entry {
	for _, e := range d.snap.Load().Entries {
		if e.ID == id {
			return e
		}
	}
	return Entry{ID: id}
}
