package resilience

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// shareWithin: calls of a command with the same parent context that start
// within it of the first share one run context, whose deadline is the
// first's start + shareWithin + Timeout: at most shareWithin late for any
// of them, never early.
const shareWithin = 100 * time.Microsecond

// runCtx is the context run gets: its parent's values and cancellation plus
// the command's deadline. It is context.WithTimeout made lazy and shared:
//
//   - the done channel, the timer and the watch on the parent are only set
//     up when a run asks for Done (an HTTP or Redis client does, at once);
//     before that, Err reads the parent and the clock;
//   - calls that start within shareWithin of each other with the same
//     parent (the same context, not an equal one) share it, so a command
//     called in a loop allocates one per shareWithin, not one per call;
//   - it is cancelled (context.Canceled) when the last call sharing it has
//     returned and no other may join, which releases its timer and parent
//     watch, as the cancel func of context.WithTimeout does.
//
// It is never reused for another parent or deadline: a context that
// outlives its run (net/http cancels a request's child context from its
// read loop after the response is read) sees the same one. A pool of them
// would not be safe for that reason (the race detector shows it in
// TestRequestCache).
type runCtx struct {
	parent   context.Context
	deadline time.Time
	timeout  time.Duration
	from     int64        // monoNow: calls that start in [from, until) may join
	until    int64        //
	users    atomic.Int32 // calls running with it; -1 once cancelled

	mu         sync.Mutex
	done       chan struct{}
	err        error
	timer      *time.Timer
	stopParent func() bool
	cancelled  bool
}

// runCtxFor returns the run context of a call of c starting at start: the
// shared one if it can join it, else a new one that later calls may join.
func (c *command) runCtxFor(parent context.Context, start int64, timeout time.Duration) *runCtx {
	if r := c.shared.Load(); r != nil && start >= r.from && start < r.until &&
		r.timeout == timeout && sameContext(r.parent, parent) && r.join() {
		return r
	}
	r := &runCtx{
		parent:   parent,
		deadline: clockBase.Add(time.Duration(start) + shareWithin + timeout),
		timeout:  timeout,
		from:     start,
		until:    start + int64(shareWithin),
	}
	r.users.Store(1)
	if old := c.shared.Swap(r); old != nil && old.users.CompareAndSwap(0, -1) {
		old.cancel()
	}
	return r
}

// sameContext reports whether a and b are the same context: the same
// dynamic type and the same pointer (for a value that is not a pointer,
// the same copy). Unlike ==, it never panics on an incomparable type.
func sameContext(a, b context.Context) bool {
	type iface struct{ typ, data unsafe.Pointer }
	return *(*iface)(unsafe.Pointer(&a)) == *(*iface)(unsafe.Pointer(&b))
}

func (r *runCtx) join() bool {
	for {
		n := r.users.Load()
		if n < 0 {
			return false
		}
		if r.users.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// leave is called when a run has returned at end: the last one out of a
// context no call may join any more cancels it.
func (r *runCtx) leave(c *command, end int64) {
	if r.users.Add(-1) == 0 && (end >= r.until || c.shared.Load() != r) && r.users.CompareAndSwap(0, -1) {
		r.cancel()
	}
}

// forget drops c's shared run context once no call may join it, so that it
// does not keep its parent (and the parent's values) alive. The feeder
// calls it on its passes.
func (c *command) forget(now int64) {
	if r := c.shared.Load(); r != nil && now >= r.until {
		c.shared.CompareAndSwap(r, nil)
	}
}

func (r *runCtx) Deadline() (time.Time, bool) {
	if d, ok := r.parent.Deadline(); ok && d.Before(r.deadline) {
		return d, true
	}
	return r.deadline, true
}

func (r *runCtx) Value(key any) any { return r.parent.Value(key) }

func (r *runCtx) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return r.done
	}
	r.done = make(chan struct{})
	if err := r.errLocked(); err != nil {
		close(r.done)
		return r.done
	}
	parentDone := r.parent.Done()
	// A caller's deadline at or before the command's ends the parent
	// first: the watch on the parent is enough, no timer.
	if d, ok := r.parent.Deadline(); !ok || parentDone == nil || d.After(r.deadline) {
		r.timer = time.AfterFunc(time.Until(r.deadline), func() { r.end(context.DeadlineExceeded) })
	}
	if parentDone != nil {
		r.stopParent = context.AfterFunc(r.parent, func() { r.end(r.parent.Err()) })
	}
	return r.done
}

func (r *runCtx) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return r.err // set when done was closed
	}
	return r.errLocked()
}

// errLocked computes and latches the error while nobody holds the done
// channel.
func (r *runCtx) errLocked() error {
	if r.err != nil {
		return r.err
	}
	switch {
	case r.cancelled:
		r.err = context.Canceled
	case r.parent.Err() != nil:
		r.err = r.parent.Err()
	case !time.Now().Before(r.deadline):
		r.err = context.DeadlineExceeded
	}
	return r.err
}

// end closes done with err, once.
func (r *runCtx) end(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
		if r.done != nil {
			close(r.done)
		}
	}
}

// cancel is the cancel func of context.WithTimeout: it releases the timer
// and the parent watch and cancels what the runs may have left behind.
func (r *runCtx) cancel() {
	r.mu.Lock()
	r.cancelled = true
	timer, stop := r.timer, r.stopParent
	if r.err == nil {
		r.err = context.Canceled
		if r.done != nil {
			close(r.done)
		}
	}
	r.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if stop != nil {
		stop()
	}
}

func (r *runCtx) String() string { return "resilience.runCtx" }
