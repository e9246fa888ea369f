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
	index    map[int64]int32 // id → slot; written only when an id comes or goes
	slots    []slot          // the tracked ids, densely packed
	heap     []int32         // slot numbers, a min-heap by estimated count
}

// slot is a tracked id and its position in the heap (so that moving it in
// the heap writes no map).
type slot struct {
	Counter
	pos int32
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
	return &Summary{capacity: capacity, index: make(map[int64]int32, capacity),
		slots: make([]slot, 0, capacity), heap: make([]int32, 0, capacity)}
}

// Capacity is the most ids the summary tracks.
func (s *Summary) Capacity() int { return s.capacity }

// Len is the number of ids tracked.
func (s *Summary) Len() int { return len(s.slots) }

// Add adds n occurrences of id; id's lower bound grows by n. When id took
// the place of another id, Add returns that id and the lower bound it had.
func (s *Summary) Add(id int64, n uint64) (evicted int64, evictedLower uint64, ok bool) {
	if n == 0 {
		return 0, 0, false
	}
	if i, found := s.index[id]; found {
		s.slots[i].Count += n
		s.down(int(s.slots[i].pos))
		return 0, 0, false
	}
	if len(s.slots) < s.capacity {
		i := int32(len(s.slots))
		s.slots = append(s.slots, slot{Counter: Counter{ID: id, Count: n}, pos: int32(len(s.heap))})
		s.heap = append(s.heap, i)
		s.index[id] = i
		s.up(len(s.heap) - 1)
		return 0, 0, false
	}
	i := s.heap[0]
	m := s.slots[i].Counter
	delete(s.index, m.ID)
	s.slots[i].Counter = Counter{ID: id, Count: m.Count + n, Err: m.Count}
	s.index[id] = i
	s.down(0)
	return m.ID, m.Lower(), true
}

// Get returns id's counter, if tracked.
func (s *Summary) Get(id int64) (Counter, bool) {
	i, ok := s.index[id]
	if !ok {
		return Counter{}, false
	}
	return s.slots[i].Counter, true
}

// Lower is id's guaranteed lower bound: 0 when not tracked.
func (s *Summary) Lower(id int64) uint64 {
	if i, ok := s.index[id]; ok {
		return s.slots[i].Lower()
	}
	return 0
}

// Min is the smallest estimate tracked when the summary is full (an id
// not tracked occurred at most that often), else 0.
func (s *Summary) Min() uint64 {
	if len(s.slots) < s.capacity {
		return 0
	}
	return s.slots[s.heap[0]].Count
}

// Remove forgets id; it returns the lower bound it had.
func (s *Summary) Remove(id int64) (uint64, bool) {
	i, ok := s.index[id]
	if !ok {
		return 0, false
	}
	lower := s.slots[i].Lower()
	delete(s.index, id)
	// Out of the heap: the heap's last element takes its place.
	pos, lastPos := int(s.slots[i].pos), len(s.heap)-1
	if pos != lastPos {
		s.heap[pos] = s.heap[lastPos]
		s.slots[s.heap[pos]].pos = int32(pos)
	}
	s.heap = s.heap[:lastPos]
	if pos < len(s.heap) {
		s.down(pos)
		s.up(pos)
	}
	// Out of the slots: the last slot moves into its place.
	if last := int32(len(s.slots) - 1); i != last {
		s.slots[i] = s.slots[last]
		s.index[s.slots[i].ID] = i
		s.heap[s.slots[i].pos] = i
	}
	s.slots = s.slots[:len(s.slots)-1]
	return lower, true
}

// Each calls fn for every tracked id, in no order.
func (s *Summary) Each(fn func(Counter)) {
	for i := range s.slots {
		fn(s.slots[i].Counter)
	}
}

// Top returns at most limit counters (all with limit < 0), highest lower
// bound first (ties by id), leaving out lower bounds of 0.
func (s *Summary) Top(limit int) []Counter {
	out := make([]Counter, 0, len(s.slots))
	for _, sl := range s.slots {
		if sl.Lower() > 0 {
			out = append(out, sl.Counter)
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
	s.slots, s.heap = s.slots[:0], s.heap[:0]
}

// Load replaces the summary's content with cs (at most Capacity of them,
// the highest estimates kept).
func (s *Summary) Load(cs []Counter) {
	s.Reset()
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b Counter) int { return cmp.Compare(b.Count, a.Count) })
	for _, c := range cs {
		if len(s.slots) == s.capacity {
			break
		}
		if _, dup := s.index[c.ID]; dup || c.Count == 0 || c.Err > c.Count {
			continue
		}
		i := int32(len(s.slots))
		s.slots = append(s.slots, slot{Counter: c, pos: int32(len(s.heap))})
		s.heap = append(s.heap, i)
		s.index[c.ID] = i
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

func (s *Summary) less(i, j int) bool { return s.slots[s.heap[i]].Count < s.slots[s.heap[j]].Count }

func (s *Summary) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.slots[s.heap[i]].pos = int32(i)
	s.slots[s.heap[j]].pos = int32(j)
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
