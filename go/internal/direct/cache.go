package direct

import (
	"bytes"
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// entry is one value of the local cache. An entry outlives its expiry by
// the stale period: a hot id that expires is refreshed once in the
// background while every request gets the stale copy.
type entry struct {
	doc     []byte        // nil: the product does not exist
	version int64         // the document's version (0 when unknown)
	expires time.Time     // jittered
	delta   time.Duration // how long computing doc took: XFetch's δ
	retryAt atomic.Int64  // unix nanoseconds: no refresh before this (one just failed)
}

// jittered returns ttl ±20%, so entries cached together do not expire
// together.
func jittered(ttl time.Duration, r float64) time.Duration {
	return time.Duration(float64(ttl) * (0.8 + 0.4*r))
}

// xfetch is the probabilistic early expiration of Vattani, Chierichetti
// and Lowenstein ("Optimal Probabilistic Cache Stampede Prevention", VLDB
// 2015): refresh now if now − δ·β·ln(r) ≥ expiry, with r uniform in (0, 1].
// δ is how long the value took to compute; β > 1 favours earlier refreshes.
// An entry read often draws r often, so a hot entry is refreshed shortly
// before it expires and never misses, while a cold one just expires. r is
// passed in, so tests can pin it.
func xfetch(now, expires time.Time, delta time.Duration, beta, r float64) bool {
	if r <= 0 {
		r = math.SmallestNonzeroFloat64
	}
	gap := -float64(delta) * beta * math.Log(r) // ≥ 0
	return !now.Add(time.Duration(gap)).Before(expires)
}

// docVersion reads the version from a document's `{"version":N` prefix
// (every value we store starts with it); 0 when absent.
func docVersion(doc []byte) int64 {
	rest, ok := bytes.CutPrefix(doc, []byte(`{"version":`))
	if !ok {
		return 0
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	v, _ := strconv.ParseInt(string(rest[:end]), 10, 64)
	return v
}
