package resilience

import (
	"context"
	"errors"
	"fmt"
)

// Link is one way to get a value in a fallback chain: fresh data (usually
// a Do), a last good copy, a safe default.
type Link[T any] struct {
	Name string
	Get  func(context.Context) (T, error)
}

// Served says which link of a chain served and why the links before it did
// not (nil when the first one served).
type Served struct {
	Chain  string
	Link   string // "" when no link answered
	Reason error
}

// Degraded reports whether a link other than the first one served.
func (s Served) Degraded() bool { return s.Reason != nil }

// Chain tries links in order and returns the first value one gives, with
// which link served and why the ones before it failed, and counts the link
// in detailpage_resilience_fallback_chain_served_total{chain, link}.
//
// A business answer stops the chain: a link that returns a Permanent error
// (e.g. the product no longer exists) makes Chain return it, because a
// last good copy must not resurrect what the source says is gone; that
// link answered, so it is the one counted and named in Served. The
// caller's context ending stops the chain too, and counts nothing (the
// caller left; no link failed). When every link fails, the error joins all
// their errors and the link counted is "none".
func Chain[T any](ctx context.Context, chain string, links ...Link[T]) (T, Served, error) {
	var zero T
	served := Served{Chain: chain}
	var reasons []error
	for _, l := range links {
		if err := ctx.Err(); err != nil {
			return zero, served, err
		}
		v, err := l.Get(ctx)
		if err == nil {
			served.Link = l.Name
			served.Reason = errors.Join(reasons...)
			chainServed.WithLabelValues(chain, l.Name).Inc()
			return v, served, nil
		}
		if isPermanent(err) {
			served.Link = l.Name
			served.Reason = errors.Join(reasons...)
			chainServed.WithLabelValues(chain, l.Name).Inc()
			return zero, served, err
		}
		if ctx.Err() != nil {
			return zero, served, ctx.Err()
		}
		reasons = append(reasons, fmt.Errorf("%s: %w", l.Name, err))
	}
	served.Reason = errors.Join(reasons...)
	chainServed.WithLabelValues(chain, "none").Inc()
	if served.Reason == nil {
		served.Reason = fmt.Errorf("%s: no links", chain)
	}
	return zero, served, fmt.Errorf("%s: every link failed: %w", chain, served.Reason)
}
