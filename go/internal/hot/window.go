package hot

import "time"

// Window counts ids over a sliding window of equal buckets: the current
// (partial) bucket and the closed ones before it, each a bounded Summary.
// An aggregate map holds every id's window count (the sum of its lower
// bounds over the buckets), kept up to date on every Add and when a bucket
// expires, so reading a window count is one map lookup. Memory is bounded
// by buckets × capacity ids whatever the number of distinct ids.
//
// A Window is not safe for concurrent use; the clock is the caller's (every
// method takes now).
type Window struct {
	bucket  time.Duration
	buckets []*Summary // ring: bucket number k lives in buckets[k % len]
	epoch   time.Time  // start of bucket number 0
	cur     int64      // number of the current bucket
	first   int64      // number of the first bucket ever (the window is shorter before it fills)
	agg     map[int64]uint64
	total   uint64 // sum of agg
}

// NewWindow returns a window of n buckets of the given length, each
// tracking at most capacity ids, starting at now.
func NewWindow(n int, bucket time.Duration, capacity int, now time.Time) *Window {
	n = max(n, 2)
	w := &Window{bucket: bucket, buckets: make([]*Summary, n), epoch: now, agg: make(map[int64]uint64, n*capacity)}
	for i := range w.buckets {
		w.buckets[i] = NewSummary(capacity)
	}
	return w
}

func (w *Window) slot(k int64) *Summary { return w.buckets[k%int64(len(w.buckets))] }

// Advance moves the window to now: buckets that ended are closed, those
// past the window expire.
func (w *Window) Advance(now time.Time) {
	k := int64(now.Sub(w.epoch) / w.bucket)
	if k <= w.cur {
		return
	}
	n := int64(len(w.buckets))
	if k-w.cur >= n {
		// Everything expired.
		for _, b := range w.buckets {
			b.Reset()
		}
		clear(w.agg)
		w.total = 0
		w.cur, w.first = k, k
		return
	}
	for w.cur < k {
		w.cur++
		b := w.slot(w.cur) // bucket cur-n: expires
		b.Each(func(c Counter) { w.sub(c.ID, c.Lower()) })
		b.Reset()
	}
}

func (w *Window) sub(id int64, n uint64) {
	if n == 0 {
		return
	}
	v := w.agg[id]
	if v <= n {
		delete(w.agg, id)
		w.total -= v
		return
	}
	w.agg[id] = v - n
	w.total -= n
}

// Add counts n occurrences of id in the current bucket (call Advance
// first).
func (w *Window) Add(id int64, n uint64) {
	if n == 0 {
		return
	}
	if ev, lower, ok := w.slot(w.cur).Add(id, n); ok {
		w.sub(ev, lower)
	}
	w.agg[id] += n
	w.total += n
}

// Remove drops every count of id.
func (w *Window) Remove(id int64) {
	for _, b := range w.buckets {
		b.Remove(id)
	}
	w.total -= w.agg[id]
	delete(w.agg, id)
}

// Count is id's window count (a lower bound of its true count).
func (w *Window) Count(id int64) uint64 { return w.agg[id] }

// Total is the sum of all window counts.
func (w *Window) Total() uint64 { return w.total }

// Tracked is the number of ids with a window count.
func (w *Window) Tracked() int { return len(w.agg) }

// Span is how much time the window covers at now: its closed buckets (up
// to len-1 of them; fewer while it fills) and the elapsed part of the
// current one, at least one bucket.
func (w *Window) Span(now time.Time) time.Duration {
	closed := min(w.cur-w.first, int64(len(w.buckets)-1))
	return max(time.Duration(closed)*w.bucket+w.elapsed(now), w.bucket)
}

func (w *Window) elapsed(now time.Time) time.Duration {
	return max(now.Sub(w.epoch.Add(time.Duration(w.cur)*w.bucket)), 0)
}

// Rate is id's window rate at now, per second.
func (w *Window) Rate(id int64, now time.Time) float64 {
	return float64(w.agg[id]) / w.Span(now).Seconds()
}

// EachCount calls fn for every id with a window count.
func (w *Window) EachCount(fn func(id int64, n uint64)) {
	for id, n := range w.agg {
		fn(id, n)
	}
}
