package resilience

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// CollapserConfig configures a request collapser.
type CollapserConfig struct {
	// Name labels the collapser's metrics, e.g. source.product.lookup.
	Name string
	// Window is how long the first lookup of a batch waits for others
	// (default 2ms).
	Window time.Duration
	// MaxBatch sends a batch at once when it holds this many distinct keys
	// (default catalog.MaxBatch, 100).
	MaxBatch int
}

// Collapser turns concurrent single-key lookups into batch calls, like
// Hystrix's request collapser: lookups arriving within Window of the first
// of a batch, up to MaxBatch distinct keys, go out as one call of the batch
// function, which is expected to run through a command (resilience.Do).
// A lookup of a key that a batch already sent is asking for waits for that
// batch instead of asking again.
//
// Results reach callers by key, never by position: the batch function
// returns a map keyed by the id inside each record, and a key it does not
// return is catalog.ErrNotFound for that caller. Each caller's context is
// honoured: a caller that gives up gets ctx.Err() at once and the batch
// goes on for the others; the batch call itself is cancelled only when
// every caller waiting for it has given up. A failed batch call fails each
// of its callers with its error.
type Collapser[K comparable, V any] struct {
	cfg     CollapserConfig
	batch   func(context.Context, []K) (map[K]V, error)
	lookups counter
	sizes   observer

	mu       sync.Mutex
	pending  *pendingBatch[K, V]
	inflight map[K]*pendingBatch[K, V] // keys of batches sent and not answered yet
}

type pendingBatch[K comparable, V any] struct {
	keys    []K
	index   map[K]struct{}
	waiters int // guarded by the collapser's mu
	ctx     context.Context
	cancel  context.CancelFunc
	timer   *time.Timer
	done    chan struct{}
	results map[K]V // read-only once done is closed
	err     error
}

// NewCollapser returns a collapser that calls batch for the keys of each
// batch.
func NewCollapser[K comparable, V any](cfg CollapserConfig, batch func(ctx context.Context, keys []K) (map[K]V, error)) *Collapser[K, V] {
	if cfg.Window <= 0 {
		cfg.Window = 2 * time.Millisecond
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = catalog.MaxBatch
	}
	return &Collapser[K, V]{
		cfg: cfg, batch: batch, inflight: map[K]*pendingBatch[K, V]{},
		lookups: collapserLookups.WithLabelValues(cfg.Name),
		sizes:   collapserBatchSize.WithLabelValues(cfg.Name),
	}
}

// Get returns the value of key, fetched in a batch with other concurrent
// lookups; catalog.ErrNotFound (in a Permanent) when the batch did not
// return it.
func (c *Collapser[K, V]) Get(ctx context.Context, key K) (V, error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	c.lookups.Inc()
	b := c.join(key)
	select {
	case <-b.done:
	case <-ctx.Done():
		c.leave(b)
		return zero, ctx.Err()
	}
	if b.err != nil {
		return zero, b.err
	}
	v, ok := b.results[key]
	if !ok {
		return zero, Permanent{Err: fmt.Errorf("%s %v: %w", c.cfg.Name, key, catalog.ErrNotFound)}
	}
	return v, nil
}

// GetMany looks keys up through the collapser, joining them to the
// batches being formed, and returns those that exist. It fails if a batch
// call fails.
func (c *Collapser[K, V]) GetMany(ctx context.Context, keys []K) (map[K]V, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.lookups.Add(float64(len(keys)))
	joined := make([]*pendingBatch[K, V], len(keys))
	for i, k := range keys {
		joined[i] = c.join(k)
	}
	out := make(map[K]V, len(keys))
	for i, b := range joined {
		select {
		case <-b.done:
		case <-ctx.Done():
			for _, b := range joined[i:] {
				c.leave(b)
			}
			return nil, ctx.Err()
		}
		if b.err != nil {
			for _, b := range joined[i+1:] {
				c.leave(b)
			}
			return nil, b.err
		}
		if v, ok := b.results[keys[i]]; ok {
			out[keys[i]] = v
		}
	}
	return out, nil
}

// join adds key to the batch being formed, or to a batch already sent
// that asks for it, and returns that batch.
func (c *Collapser[K, V]) join(key K) *pendingBatch[K, V] {
	c.mu.Lock()
	if b, ok := c.inflight[key]; ok && b.ctx.Err() == nil {
		b.waiters++
		c.mu.Unlock()
		return b
	}
	b := c.pending
	if b == nil || b.ctx.Err() != nil { // a batch everyone left is not joined
		b = c.newBatch()
	}
	if _, dup := b.index[key]; !dup {
		b.index[key] = struct{}{}
		b.keys = append(b.keys, key)
	}
	b.waiters++
	full := len(b.keys) >= c.cfg.MaxBatch
	if full {
		c.sendLocked(b)
		b.timer.Stop()
	}
	c.mu.Unlock()
	if full {
		go c.run(b)
	}
	return b
}

// sendLocked detaches b from pending: from now on lookups of its keys join
// it in flight.
func (c *Collapser[K, V]) sendLocked(b *pendingBatch[K, V]) {
	c.pending = nil
	for _, k := range b.keys {
		c.inflight[k] = b
	}
}

func (c *Collapser[K, V]) newBatch() *pendingBatch[K, V] {
	ctx, cancel := context.WithCancel(context.Background())
	b := &pendingBatch[K, V]{index: map[K]struct{}{}, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	b.timer = time.AfterFunc(c.cfg.Window, func() { c.flush(b) })
	c.pending = b
	return b
}

// leave is a caller giving up on b; the last one cancels b's call.
func (c *Collapser[K, V]) leave(b *pendingBatch[K, V]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b.waiters--
	if b.waiters == 0 {
		b.cancel()
	}
}

// flush sends b when its window ends, unless it was sent because it filled.
func (c *Collapser[K, V]) flush(b *pendingBatch[K, V]) {
	c.mu.Lock()
	if c.pending != b {
		c.mu.Unlock()
		return
	}
	c.sendLocked(b)
	c.mu.Unlock()
	c.run(b)
}

func (c *Collapser[K, V]) run(b *pendingBatch[K, V]) {
	// The batch leaves inflight before its waiters are woken: a caller
	// that got this answer and looks the key up again (after an edit, say)
	// must start a new call, not join the finished one.
	defer func() {
		if r := recover(); r != nil {
			b.results, b.err = nil, &Error{Command: c.cfg.Name, Reason: ErrPanic, Err: &PanicError{Value: r, Stack: debug.Stack()}}
		}
		c.mu.Lock()
		for _, k := range b.keys {
			if c.inflight[k] == b {
				delete(c.inflight, k)
			}
		}
		c.mu.Unlock()
		close(b.done)
		b.cancel()
	}()
	if b.ctx.Err() == nil {
		c.sizes.Observe(float64(len(b.keys)))
	}
	b.results, b.err = c.batch(b.ctx, b.keys)
}
