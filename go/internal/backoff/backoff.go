// Package backoff is the one retry delay of the project: exponential from
// a base, doubling each attempt up to a cap, with optional jitter, and a
// sleep that ends early when its context does.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: the delay before retry n (1-based) is
// Base·2^(n-1), at most Max, then shortened by up to Jitter of itself
// (0: exact delays; 0.2: each delay is 80–100% of the exponential one), so
// processes that failed together do not retry together. Jitter only ever
// shortens, so Max stays the longest wait.
type Policy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter float64
}

// Delay returns the delay before retry attempt (1-based; below 1 counts
// as 1).
func (p Policy) Delay(attempt int) time.Duration {
	d := p.Base
	if d <= 0 {
		return 0
	}
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter > 0 {
		d -= time.Duration(float64(d) * min(p.Jitter, 1) * rand.Float64())
	}
	return d
}

// Backoff is the state of one retry loop over a Policy. The zero value is
// not usable; start one with Policy.Start.
type Backoff struct {
	p       Policy
	attempt int
}

// Start returns a retry loop whose first delay is the policy's first.
func (p Policy) Start() *Backoff { return &Backoff{p: p} }

// Next returns the delay before the next retry and counts it.
func (b *Backoff) Next() time.Duration {
	b.attempt++
	return b.p.Delay(b.attempt)
}

// Reset starts over from the first delay, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Sleep waits d, or until ctx is done: then it returns ctx.Err() at once.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
