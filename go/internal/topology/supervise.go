package topology

import (
	"slices"
	"time"

	"github.com/detailpage/detailpage/go/internal/backoff"
)

// RestartPolicy is how the supervisor restarts a component whose process
// exits without having been asked to (a crash, a SIGKILL from outside).
type RestartPolicy struct {
	Backoff    backoff.Policy // the wait before restart n
	ResetAfter time.Duration  // a process healthy this long starts the backoff over
	// A component restarted LoopRestarts times within LoopWindow is in a
	// crash loop when it exits again: it is reported and left down.
	LoopRestarts int
	LoopWindow   time.Duration
}

// DefaultRestartPolicy waits 100 ms before the first restart, doubling up
// to 5 s, starts over after a healthy minute, and gives up on a component
// after 5 restarts within 60 s.
func DefaultRestartPolicy() RestartPolicy {
	return RestartPolicy{
		Backoff:      backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second},
		ResetAfter:   time.Minute,
		LoopRestarts: 5,
		LoopWindow:   time.Minute,
	}
}

func (p RestartPolicy) isZero() bool { return p == RestartPolicy{} }

// restartHistory is one component's restarts: it decides, on the times it
// is given, how long to wait before the next restart or that the component
// is in a crash loop. It does no I/O and keeps no clock.
type restartHistory struct {
	p     RestartPolicy
	b     *backoff.Backoff
	times []time.Time // restarts within the loop window
}

func newRestartHistory(p RestartPolicy) *restartHistory {
	return &restartHistory{p: p, b: p.Backoff.Start()}
}

// exited is called when the process exits unasked at now; upSince is when
// it passed its health check (zero: it never did). It returns the wait
// before the restart, or crashLoop: leave the component down.
func (h *restartHistory) exited(now, upSince time.Time) (wait time.Duration, crashLoop bool) {
	if !upSince.IsZero() && now.Sub(upSince) >= h.p.ResetAfter {
		h.b.Reset()
	}
	h.times = slices.DeleteFunc(h.times, func(t time.Time) bool { return now.Sub(t) >= h.p.LoopWindow })
	if len(h.times) >= h.p.LoopRestarts {
		return 0, true
	}
	h.times = append(h.times, now)
	return h.b.Next(), false
}
