package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/detailpage/detailpage/go/internal/catalog"
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

// CachedMany is Cached for keys fetched together (a batch call). A key the
// request cache holds, or that another caller of the same request is
// fetching, is taken from it; the others are fetched with one call of
// fetch, which returns the values it found by key. A key fetch does not
// return is kept as not found (catalog.ErrNotFound in a Permanent), so a
// later Cached of it gets that error at once; not-found keys, now or kept,
// are left out of the result. An error of fetch is returned and kept for
// the keys it asked for, unless the caller gave up (as in Cached). name
// gives each key's cache key, as for Cached. Without a request cache in ctx
// it just calls fetch.
func CachedMany[K comparable, V any](ctx context.Context, keys []K, name func(K) string, fetch func(context.Context, []K) (map[K]V, error)) (map[K]V, error) {
	rc, ok := ctx.Value(requestCacheKey{}).(*requestCache)
	if !ok {
		return fetch(ctx, keys)
	}
	out := make(map[K]V, len(keys))
	seen := make(map[K]bool, len(keys))
	var pending []K
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			pending = append(pending, k)
		}
	}
	for len(pending) > 0 {
		var own, wait []K
		var ownE, waitE []*cacheEntry
		rc.mu.Lock()
		for _, k := range pending {
			e, hit := rc.m[name(k)]
			if hit {
				wait, waitE = append(wait, k), append(waitE, e)
				continue
			}
			e = &cacheEntry{done: make(chan struct{})}
			rc.m[name(k)] = e
			own, ownE = append(own, k), append(ownE, e)
		}
		rc.mu.Unlock()
		// Fetch what this caller claimed before waiting for others, so two
		// callers that each wait for the other's keys cannot deadlock.
		if len(own) > 0 {
			requestCacheMiss.Add(float64(len(own)))
			got, err := fetch(ctx, own)
			abandoned := err != nil && ctx.Err() != nil
			for i, k := range own {
				e := ownE[i]
				switch v, found := got[k]; {
				case err != nil:
					e.err = err
				case found:
					e.v = v
					out[k] = v
				default:
					e.err = Permanent{Err: fmt.Errorf("%s: %w", name(k), catalog.ErrNotFound)}
				}
				if abandoned {
					e.abandoned = true
					rc.mu.Lock()
					if rc.m[name(k)] == e {
						delete(rc.m, name(k))
					}
					rc.mu.Unlock()
				}
				close(e.done)
			}
			if err != nil {
				return nil, err
			}
		}
		pending = nil
		for i, k := range wait {
			e := waitE[i]
			select {
			case <-e.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if e.abandoned {
				pending = append(pending, k) // its fetcher gave up: ask again
				continue
			}
			requestCacheHit.Inc()
			if errors.Is(e.err, catalog.ErrNotFound) {
				continue
			}
			if e.err != nil {
				return nil, e.err
			}
			v, ok := e.v.(V)
			if !ok {
				var zero V
				return nil, fmt.Errorf("resilience: request cache key %q holds a %T, not a %T", name(k), e.v, zero)
			}
			out[k] = v
		}
	}
	return out, nil
}
