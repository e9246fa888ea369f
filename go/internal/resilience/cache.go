package resilience

import (
	"context"
	"fmt"
	"sync"
)

// The request cache is Hystrix's request-scoped memo: within one request
// (one page aggregation, one handled batch of changes) the same key is
// fetched once, however many parts of the code ask for it and whether they
// ask one after another or at the same time.

type requestCacheKey struct{}

type requestCache struct {
	mu sync.Mutex
	m  map[string]*cacheEntry
}

type cacheEntry struct {
	done      chan struct{}
	v         any
	err       error
	abandoned bool // the caller that ran fn gave up: not an answer
}

// WithRequestCache returns a context carrying a new, empty request cache.
// Everything called with it (or a context derived from it) shares it;
// it goes away with the request.
func WithRequestCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestCacheKey{}, &requestCache{m: map[string]*cacheEntry{}})
}

// HasRequestCache reports whether ctx carries a request cache.
func HasRequestCache(ctx context.Context) bool {
	_, ok := ctx.Value(requestCacheKey{}).(*requestCache)
	return ok
}

// Cached returns fn's result for key, calling fn at most once per request
// cache: later and concurrent callers with the same key get the first
// call's value or error. Without a request cache in ctx it just calls fn.
// An error that came from the first caller giving up (its context ended)
// is not kept: the next caller calls fn again. A key must name what it caches and
// its type (e.g. "source/shop/7"): a cached value of another type than T
// is an error.
func Cached[T any](ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	rc, ok := ctx.Value(requestCacheKey{}).(*requestCache)
	if !ok {
		return fn(ctx)
	}
	var zero T
	for {
		rc.mu.Lock()
		e, hit := rc.m[key]
		if !hit {
			e = &cacheEntry{done: make(chan struct{})}
			rc.m[key] = e
		}
		rc.mu.Unlock()
		if !hit {
			requestCacheMiss.Inc()
			v, err := fn(ctx)
			e.v, e.err = v, err
			if err != nil && ctx.Err() != nil {
				e.abandoned = true
				rc.mu.Lock()
				if rc.m[key] == e {
					delete(rc.m, key)
				}
				rc.mu.Unlock()
			}
			close(e.done)
			return v, err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		if e.abandoned {
			continue // the first caller gave up; this one asks again
		}
		requestCacheHit.Inc()
		if e.err != nil {
			return zero, e.err
		}
		v, ok := e.v.(T)
		if !ok {
			return zero, fmt.Errorf("resilience: request cache key %q holds a %T, not a %T", key, e.v, zero)
		}
		return v, nil
	}
}
