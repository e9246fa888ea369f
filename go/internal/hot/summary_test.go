package hot

import (
	"math/rand/v2"
	"testing"
	"time"
)

// checkHeap fails unless s's heap and index agree and the heap is ordered.
func checkHeap(tb testing.TB, s *Summary) {
	tb.Helper()
	if len(s.index) != len(s.slots) || len(s.heap) != len(s.slots) || len(s.slots) > s.capacity {
		tb.Fatalf("index %d, slots %d, heap %d, capacity %d", len(s.index), len(s.slots), len(s.heap), s.capacity)
	}
	for i, sl := range s.slots {
		if j, ok := s.index[sl.ID]; !ok || int(j) != i {
			tb.Fatalf("slot %d = id %d, index says %d (%v)", i, sl.ID, j, ok)
		}
		if s.heap[sl.pos] != int32(i) {
			tb.Fatalf("slot %d at heap %d, which holds %d", i, sl.pos, s.heap[sl.pos])
		}
		if sl.Err > sl.Count {
			tb.Fatalf("id %d: err %d > count %d", sl.ID, sl.Err, sl.Count)
		}
	}
	for p := 1; p < len(s.heap); p++ {
		if s.slots[s.heap[(p-1)/2]].Count > s.slots[s.heap[p]].Count {
			tb.Fatalf("heap order broken at %d", p)
		}
	}
}

func TestSummaryBoundedMemory(t *testing.T) {
	s := NewSummary(100)
	for id := int64(1); id <= 1_000_000; id++ {
		s.Add(id, 1+uint64(id%7))
	}
	checkHeap(t, s)
	if s.Len() != 100 {
		t.Fatalf("tracks %d ids, capacity 100", s.Len())
	}
}

// TestSummaryErrorBounds feeds a weighted Zipf stream and checks the
// Space-Saving guarantees against exact counts: for every tracked id
// Count-Err ≤ true ≤ Count, every id whose true count exceeds N/capacity
// is tracked, and an id not tracked occurred at most Min times.
func TestSummaryErrorBounds(t *testing.T) {
	for _, capacity := range []int{16, 256, 4096} {
		r := rand.New(rand.NewPCG(1, uint64(capacity)))
		z := rand.NewZipf(r, 1.1, 1, 1_000_000)
		s := NewSummary(capacity)
		exact := map[int64]uint64{}
		var total uint64
		for range 300_000 {
			id := int64(z.Uint64()) + 1
			n := 1 + r.Uint64N(5)
			s.Add(id, n)
			exact[id] += n
			total += n
		}
		checkHeap(t, s)
		s.Each(func(c Counter) {
			if tr := exact[c.ID]; c.Lower() > tr || tr > c.Count {
				t.Fatalf("cap %d id %d: lower %d, true %d, count %d", capacity, c.ID, c.Lower(), tr, c.Count)
			}
		})
		for id, n := range exact {
			if _, ok := s.Get(id); !ok {
				if n > total/uint64(capacity) {
					t.Fatalf("cap %d: id %d with %d of %d (> N/cap) not tracked", capacity, id, n, total)
				}
				if n > s.Min() {
					t.Fatalf("cap %d: id %d not tracked with %d > min %d", capacity, id, n, s.Min())
				}
			}
		}
		// The top of a skewed stream is exact enough to rank.
		top := s.Top(5)
		if len(top) != 5 || top[0].ID != 1 {
			t.Fatalf("cap %d: top %v, want id 1 first", capacity, top)
		}
	}
}

// TestSummaryRandomOps mixes adds and removes and checks the structure
// after each.
func TestSummaryRandomOps(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	s := NewSummary(32)
	for range 20_000 {
		id := int64(r.IntN(100)) + 1
		if r.IntN(4) == 0 {
			s.Remove(id)
		} else {
			s.Add(id, 1+r.Uint64N(9))
		}
		checkHeap(t, s)
	}
}

func TestSummaryRemoveLoadReset(t *testing.T) {
	s := NewSummary(8)
	for id := int64(1); id <= 20; id++ {
		s.Add(id, uint64(id))
	}
	checkHeap(t, s)
	top := s.Top(-1)
	if top[0].ID != 20 {
		t.Fatalf("top %v", top)
	}
	lower, ok := s.Remove(20)
	if !ok || lower != top[0].Lower() {
		t.Fatalf("remove 20: %d %v", lower, ok)
	}
	if _, ok := s.Remove(20); ok {
		t.Fatal("removed twice")
	}
	checkHeap(t, s)
	if s.Lower(20) != 0 {
		t.Fatal("20 still counted")
	}
	saved := s.Top(-1)
	u := NewSummary(4)
	u.Load(append(saved, Counter{ID: 99, Count: 0}, Counter{ID: 98, Count: 1, Err: 5}, saved[0]))
	checkHeap(t, u)
	if u.Len() != 4 || u.Top(1)[0] != saved[0] {
		t.Fatalf("load kept %v, want the 4 highest of %v", u.Top(-1), saved)
	}
	s.Reset()
	if s.Len() != 0 || s.Min() != 0 {
		t.Fatal("reset left ids")
	}
}

// checkWindow fails unless w's aggregate is the sum of its buckets' lower
// bounds.
func checkWindow(tb testing.TB, w *Window) {
	tb.Helper()
	sum := map[int64]uint64{}
	var total uint64
	for _, b := range w.buckets {
		checkHeap(tb, b)
		b.Each(func(c Counter) {
			if l := c.Lower(); l > 0 {
				sum[c.ID] += l
				total += l
			}
		})
	}
	if len(sum) != len(w.agg) || total != w.total {
		tb.Fatalf("aggregate has %d ids (total %d), buckets %d (total %d)", len(w.agg), w.total, len(sum), total)
	}
	for id, n := range sum {
		if w.agg[id] != n {
			tb.Fatalf("id %d: aggregate %d, buckets %d", id, w.agg[id], n)
		}
	}
}

func TestWindowSlidesAndExpires(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	w := NewWindow(8, 250*time.Millisecond, 64, t0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	w.Advance(at(0))
	w.Add(7, 100)
	if got := w.Span(at(100)); got != 250*time.Millisecond {
		t.Fatalf("span of a new window %s, want one bucket", got)
	}
	w.Advance(at(300))
	w.Add(7, 50)
	w.Add(8, 10)
	checkWindow(t, w)
	if w.Count(7) != 150 || w.Span(at(300)) != 300*time.Millisecond {
		t.Fatalf("count %d, span %s", w.Count(7), w.Span(at(300)))
	}
	w.Advance(at(2000)) // bucket 8: bucket 0 expires
	checkWindow(t, w)
	if w.Count(7) != 50 || w.Span(at(2000)) != 1750*time.Millisecond {
		t.Fatalf("count %d span %s after the first bucket expired", w.Count(7), w.Span(at(2000)))
	}
	w.Remove(8)
	checkWindow(t, w)
	w.Advance(at(10_000)) // everything expired
	checkWindow(t, w)
	if w.Tracked() != 0 || w.Total() != 0 {
		t.Fatalf("tracked %d total %d after the window passed", w.Tracked(), w.Total())
	}
}

func TestWindowBoundedWithManyIDs(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	w := NewWindow(8, 250*time.Millisecond, 128, t0)
	r := rand.New(rand.NewPCG(2, 3))
	for step := range 40 {
		now := t0.Add(time.Duration(step) * 100 * time.Millisecond)
		w.Advance(now)
		for range 5000 {
			w.Add(int64(r.Uint64N(10_000_000))+1, 1+r.Uint64N(3))
		}
		w.Add(42, 500) // one heavy id survives every bucket
		checkWindow(t, w)
		if w.Tracked() > 8*128 {
			t.Fatalf("tracks %d ids, bound %d", w.Tracked(), 8*128)
		}
	}
	if w.Count(42) < 500*8 {
		t.Fatalf("heavy id counted %d, want at least %d", w.Count(42), 500*8)
	}
}
