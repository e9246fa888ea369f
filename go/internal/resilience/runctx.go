package resilience

import (
	"context"
	"sync"
	"time"
)

// runCtx is the context run gets: its parent's values and cancellation plus
// the command's deadline. It is context.WithTimeout made lazy: the done
// channel, the timer and the watch on the parent are only set up when run
// asks for Done (an HTTP or Redis client does, at once), so a run that never
// blocks pays one allocation instead of context.WithTimeout's four and its
// timer. Err is exact either way: before Done is asked for it reads the
// parent and the clock.
type runCtx struct {
	parent   context.Context
	deadline time.Time

	mu         sync.Mutex
	done       chan struct{}
	err        error
	timer      *time.Timer
	stopParent func() bool
	finished   bool
}

func (c *runCtx) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *runCtx) Value(key any) any { return c.parent.Value(key) }

func (c *runCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	if err := c.errLocked(); err != nil {
		close(c.done)
		return c.done
	}
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.end(context.DeadlineExceeded) })
	if c.parent.Done() != nil {
		c.stopParent = context.AfterFunc(c.parent, func() { c.end(c.parent.Err()) })
	}
	return c.done
}

func (c *runCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.err // set when done was closed
	}
	return c.errLocked()
}

// errLocked computes and latches the error while nobody holds the done
// channel.
func (c *runCtx) errLocked() error {
	if c.err != nil {
		return c.err
	}
	switch {
	case c.finished:
		c.err = context.Canceled
	case c.parent.Err() != nil:
		c.err = c.parent.Err()
	case !time.Now().Before(c.deadline):
		c.err = context.DeadlineExceeded
	}
	return c.err
}

// end closes done with err, once.
func (c *runCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
	}
}

// finish is called when run has returned: like the cancel func of
// context.WithTimeout, it releases the timer and the parent watch and
// cancels what run may have left behind.
func (c *runCtx) finish() {
	c.mu.Lock()
	c.finished = true
	timer, stop := c.timer, c.stopParent
	if c.err == nil {
		c.err = context.Canceled
		if c.done != nil {
			close(c.done)
		}
	}
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if stop != nil {
		stop()
	}
}

func (c *runCtx) String() string { return "resilience.runCtx" }
