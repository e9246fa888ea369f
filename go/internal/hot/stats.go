package hot

import (
	"slices"
	"sync"
	"time"
)

// Stats keeps long-term access statistics: the top ids by hour (the last
// 24 hours) and by day (the last 7 days). The period in progress is a
// bounded Space-Saving summary; a closed one is frozen into its top
// FrozenTop ids, sorted. Safe for concurrent use.
type Stats struct {
	mu   sync.Mutex
	hour *period
	day  *period
}

// Long-term statistics bounds.
const (
	// StatsCapacity is the ids the summary of a period in progress tracks.
	StatsCapacity = 16_384
	// FrozenTop is the ids kept of a closed period.
	FrozenTop = 1000
)

// Periods of the long-term statistics.
const (
	Hour = "hour"
	Day  = "day"
)

type period struct {
	length time.Duration
	keep   int // closed periods kept
	start  time.Time
	cur    *Summary
	closed []Frozen // oldest first
}

// Frozen is a closed period's top ids.
type Frozen struct {
	Start time.Time `json:"start"`
	Top   []IDCount `json:"top"`
}

// NewStats returns empty statistics starting at now.
func NewStats(now time.Time) *Stats {
	return &Stats{
		hour: &period{length: time.Hour, keep: 24, start: now.Truncate(time.Hour), cur: NewSummary(StatsCapacity)},
		day:  &period{length: 24 * time.Hour, keep: 7, start: now.Truncate(24 * time.Hour), cur: NewSummary(StatsCapacity)},
	}
}

// roll closes the period in progress if now is past it.
func (p *period) roll(now time.Time) {
	if now.Before(p.start.Add(p.length)) {
		return
	}
	if p.cur.Len() > 0 {
		p.closed = append(p.closed, Frozen{Start: p.start, Top: toIDCounts(p.cur.Top(FrozenTop))})
	}
	p.cur.Reset()
	p.start = now.Truncate(p.length)
	// Keep closed periods that started within the last keep periods.
	oldest := p.start.Add(-time.Duration(p.keep) * p.length)
	i := 0
	for i < len(p.closed) && p.closed[i].Start.Before(oldest) {
		i++
	}
	p.closed = slices.Delete(p.closed, 0, i)
}

func toIDCounts(cs []Counter) []IDCount {
	out := make([]IDCount, len(cs))
	for i, c := range cs {
		out[i] = IDCount{ID: c.ID, Count: c.Lower()}
	}
	return out
}

func (s *Stats) add(now time.Time, counts []IDCount, skip map[int64]time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range []*period{s.hour, s.day} {
		p.roll(now)
		for _, c := range counts {
			if _, ok := skip[c.ID]; !ok {
				p.cur.Add(c.ID, c.Count)
			}
		}
	}
}

func (s *Stats) remove(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hour.cur.Remove(id)
	s.day.cur.Remove(id)
}

// Top returns the top ids of the period in progress and the one before it
// merged (by their lower bounds), at most limit of them, and when that
// span began.
func (s *Stats) Top(name string, now time.Time, limit int) ([]IDCount, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.hour
	if name == Day {
		p = s.day
	}
	p.roll(now)
	merged := make(map[int64]uint64, p.cur.Len()+FrozenTop)
	p.cur.Each(func(c Counter) {
		if l := c.Lower(); l > 0 {
			merged[c.ID] += l
		}
	})
	since := p.start
	if n := len(p.closed); n > 0 && p.closed[n-1].Start.Equal(p.start.Add(-p.length)) {
		prev := p.closed[n-1]
		since = prev.Start
		for _, c := range prev.Top {
			merged[c.ID] += c.Count
		}
	}
	out := make([]IDCount, 0, len(merged))
	for id, n := range merged {
		out = append(out, IDCount{ID: id, Count: n})
	}
	sortIDCounts(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, since
}

func sortIDCounts(cs []IDCount) {
	slices.SortFunc(cs, func(a, b IDCount) int {
		switch {
		case a.Count > b.Count:
			return -1
		case a.Count < b.Count:
			return 1
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}

// periodState is a period as the state file holds it.
type periodState struct {
	Start   time.Time `json:"start"`
	Current []Counter `json:"current"`
	Closed  []Frozen  `json:"closed"`
}

func (p *period) state() periodState {
	cur := make([]Counter, 0, p.cur.Len())
	p.cur.Each(func(c Counter) { cur = append(cur, c) })
	slices.SortFunc(cur, func(a, b Counter) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return periodState{Start: p.start, Current: cur, Closed: slices.Clone(p.closed)}
}

func (p *period) load(st periodState, now time.Time) {
	p.start = st.Start.Truncate(p.length)
	p.cur.Load(st.Current)
	p.closed = nil
	for _, f := range st.Closed {
		if !f.Start.Before(p.start) || (len(p.closed) > 0 && !f.Start.After(p.closed[len(p.closed)-1].Start)) {
			continue // out of order: not ours
		}
		top := f.Top
		if len(top) > FrozenTop {
			top = top[:FrozenTop]
		}
		p.closed = append(p.closed, Frozen{Start: f.Start, Top: slices.Clone(top)})
	}
	p.roll(now)
}
