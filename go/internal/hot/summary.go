package hot

import (
	"cmp"
	"slices"
)

// Summary is a Space-Saving summary (Metwally, Agrawal, El Abbadi 2005)
// with weighted increments: it tracks at most Capacity ids, whatever the
// number of distinct ids added, in a map from id to a slot of a min-heap
// ordered by estimated count. An id not tracked that arrives when the
// summary is full takes the place of the id with the smallest estimate m:
// its estimate becomes m+n and its error m. For every tracked id,
// Count-Err ≤ true count ≤ Count; the lower bound Count-Err is what the
// hot rule and the statistics use, so an id is never called hot on counts
// it might not have had.
//
// Written by hand: the Go libraries at hand (dgryski/go-topk's filtered
// Space-Saving, segmentio/topk and keilerkonzept/topk's HeavyKeeper) key
// by string (an allocation per update), and none offers removal of an id
// (a product that answered 404 leaves at once), the error of each
// estimate, or a reset that keeps its memory for the next bucket.
//
// A Summary is not safe for concurrent use.
type Summary struct {
	capacity int
	index    map[int64]int32 // id → position in heap
	heap     []Counter
}

// Counter is one tracked id: its estimated Count and the Err by which
// Count may exceed the true count.
type Counter struct {
	ID    int64  `json:"id"`
	Count uint64 `json:"count"`
	Err   uint64 `json:"err,omitempty"`
}

// Lower is the guaranteed lower bound of the id's true count.
func (c Counter) Lower() uint64 { return c.Count - c.Err }

// NewSummary returns an empty summary tracking at most capacity ids
// (at least 1).
func NewSummary(capacity int) *Summary {
	capacity = max(capacity, 1)
	return &Summary{capacity: capacity, index: make(map[int64]int32, capacity), heap: make([]Counter, 0, capacity)}
}

// Capacity is the most ids the summary tracks.
func (s *Summary) Capacity() int { return s.capacity }

// Len is the number of ids tracked.
func (s *Summary) Len() int { return len(s.heap) }

// Add adds n occurrences of id; id's lower bound grows by n. When id took
// the place of another id, Add returns that id and the lower bound it had.
func (s *Summary) Add(id int64, n uint64) (evicted int64, evictedLower uint64, ok bool) {
	if n == 0 {
		return 0, 0, false
	}
	if i, found := s.index[id]; found {
		s.heap[i].Count += n
		s.down(int(i))
		return 0, 0, false
	}
	if len(s.heap) < s.capacity {
		s.heap = append(s.heap, Counter{ID: id, Count: n})
		i := len(s.heap) - 1
		s.index[id] = int32(i)
		s.up(i)
		return 0, 0, false
	}
	m := s.heap[0]
	delete(s.index, m.ID)
	s.heap[0] = Counter{ID: id, Count: m.Count + n, Err: m.Count}
	s.index[id] = 0
	s.down(0)
	return m.ID, m.Lower(), true
}

// Get returns id's counter, if tracked.
func (s *Summary) Get(id int64) (Counter, bool) {
	i, ok := s.index[id]
	if !ok {
		return Counter{}, false
	}
	return s.heap[i], true
}

// Lower is id's guaranteed lower bound: 0 when not tracked.
func (s *Summary) Lower(id int64) uint64 {
	if i, ok := s.index[id]; ok {
		return s.heap[i].Lower()
	}
	return 0
}

// Min is the smallest estimate tracked when the summary is full (an id
// not tracked occurred at most that often), else 0.
func (s *Summary) Min() uint64 {
	if len(s.heap) < s.capacity {
		return 0
	}
	return s.heap[0].Count
}

// Remove forgets id; it returns the lower bound it had.
func (s *Summary) Remove(id int64) (uint64, bool) {
	i, ok := s.index[id]
	if !ok {
		return 0, false
	}
	lower := s.heap[i].Lower()
	delete(s.index, id)
	last := len(s.heap) - 1
	if int(i) != last {
		s.heap[i] = s.heap[last]
		s.index[s.heap[i].ID] = i
	}
	s.heap = s.heap[:last]
	if int(i) < len(s.heap) {
		s.down(int(i))
		s.up(int(i))
	}
	return lower, true
}

// Each calls fn for every tracked id, in no order.
func (s *Summary) Each(fn func(Counter)) {
	for _, c := range s.heap {
		fn(c)
	}
}

// Top returns at most limit counters (all with limit < 0), highest lower
// bound first (ties by id), leaving out lower bounds of 0.
func (s *Summary) Top(limit int) []Counter {
	out := make([]Counter, 0, len(s.heap))
	for _, c := range s.heap {
		if c.Lower() > 0 {
			out = append(out, c)
		}
	}
	sortCounters(out)
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Reset forgets every id, keeping the memory.
func (s *Summary) Reset() {
	clear(s.index)
	s.heap = s.heap[:0]
}

// Load replaces the summary's content with cs (at most Capacity of them,
// the highest estimates kept).
func (s *Summary) Load(cs []Counter) {
	s.Reset()
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b Counter) int { return cmp.Compare(b.Count, a.Count) })
	for _, c := range cs {
		if len(s.heap) == s.capacity {
			break
		}
		if _, dup := s.index[c.ID]; dup || c.Count == 0 || c.Err > c.Count {
			continue
		}
		s.heap = append(s.heap, c)
		s.index[c.ID] = int32(len(s.heap) - 1)
		s.up(len(s.heap) - 1)
	}
}

func sortCounters(cs []Counter) {
	slices.SortFunc(cs, func(a, b Counter) int {
		if c := cmp.Compare(b.Lower(), a.Lower()); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

func (s *Summary) less(i, j int) bool { return s.heap[i].Count < s.heap[j].Count }

func (s *Summary) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.index[s.heap[i].ID] = int32(i)
	s.index[s.heap[j].ID] = int32(j)
}

func (s *Summary) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.swap(i, p)
		i = p
	}
}

func (s *Summary) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s.swap(i, m)
		i = m
	}
}
