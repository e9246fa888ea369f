// Package lograte bounds log lines about outside input: a flood of bad
// requests or reports must not flood the log, and the lines let through say
// how many were left out.
//
// golang.org/x/time/rate's Sometimes (used where the count does not
// matter) lets lines through but cannot say how many it dropped; this is
// the same idea with the count.
package lograte

import (
	"sync"
	"time"
)

// Limiter lets through at most burst log lines per interval and counts the
// others. Safe for concurrent use.
type Limiter struct {
	mu         sync.Mutex
	burst      int
	interval   time.Duration
	start      time.Time
	n          int
	suppressed int
}

// New returns a Limiter of burst lines per interval.
func New(burst int, interval time.Duration) *Limiter {
	return &Limiter{burst: burst, interval: interval}
}

// Allow reports whether a line may be logged now and how many were
// suppressed since the last one that was.
func (l *Limiter) Allow() (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.start) >= l.interval {
		l.start, l.n = now, 0
	}
	if l.n >= l.burst {
		l.suppressed++
		return 0, false
	}
	l.n++
	n := l.suppressed
	l.suppressed = 0
	return n, true
}
