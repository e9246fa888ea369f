package lograte

import (
	"testing"
	"time"
)

// A burst is let through, the rest of the interval is counted, and the
// next line let through reports the count.
func TestLimiter(t *testing.T) {
	l := New(2, time.Hour)
	for i, want := range []bool{true, true, false, false, false} {
		if _, ok := l.Allow(); ok != want {
			t.Fatalf("line %d: allowed %v, want %v", i, ok, want)
		}
	}
	l.start = l.start.Add(-2 * time.Hour) // the interval is over
	if n, ok := l.Allow(); !ok || n != 3 {
		t.Fatalf("after the interval: allowed %v with %d suppressed, want true with 3", ok, n)
	}
	if n, ok := l.Allow(); !ok || n != 0 {
		t.Fatalf("next line: allowed %v with %d suppressed, want true with 0", ok, n)
	}
}
