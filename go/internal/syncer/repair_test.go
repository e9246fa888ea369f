package syncer

import (
	"slices"
	"testing"
	"time"
)

func TestRecentIDsSinceAndBound(t *testing.T) {
	r := newRecentIDs(4)
	t0 := time.Unix(1000, 0)
	r.add(false, t0, 1, 2)
	r.add(true, t0.Add(time.Second), 7)
	r.add(false, t0.Add(2*time.Second), 2, 3)
	p, s := r.since(t0.Add(time.Second))
	if !slices.Equal(p, []int64{2, 3}) || !slices.Equal(s, []int64{7}) {
		t.Fatalf("since t0+1s: products %v shops %v, want [2 3] [7]", p, s)
	}
	// the ring holds 4 entries: id 1 (the oldest) is gone
	r.add(false, t0.Add(3*time.Second), 9)
	p, _ = r.since(t0)
	if !slices.Equal(p, []int64{2, 3, 9}) {
		t.Fatalf("after overflow: products %v, want [2 3 9]", p)
	}
}
