package direct

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/redisstore"
)

// Bloom filter defaults: sized for 10M product ids at 1% false positives
// (about 96M bits = 12 MB, 7 hash functions).
const (
	DefaultBloomCapacity = 10_000_000
	DefaultBloomFPRate   = 0.01
)

// idFilter is a Bloom filter of the product ids that exist, safe for
// concurrent use. Until the first full load from the source it is not
// ready and refuses nothing: a half-built filter would turn real products
// into 404s.
type idFilter struct {
	mu    sync.RWMutex
	f     *bloom.BloomFilter
	ready atomic.Bool
	added atomic.Int64 // Add calls, an upper bound on the ids it holds
}

func newIDFilter(capacity uint, fpRate float64) *idFilter {
	return &idFilter{f: bloom.NewWithEstimates(capacity, fpRate)}
}

func idKey(id int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return b[:]
}

// Add records that id exists.
func (f *idFilter) Add(id int64) {
	k := idKey(id)
	f.mu.RLock()
	known := f.f.Test(k)
	f.mu.RUnlock()
	if known {
		return
	}
	f.mu.Lock()
	f.f.Add(k)
	f.mu.Unlock()
	f.added.Add(1)
}

// MayContain reports whether id may exist: false means it certainly does
// not (once the filter is ready).
func (f *idFilter) MayContain(id int64) bool {
	if !f.ready.Load() {
		return true
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.f.Test(idKey(id))
}

// Bits and hash functions of the filter (for tests and metrics).
func (f *idFilter) params() (m, k uint) { return f.f.Cap(), f.f.K() }

// loadIDs fills the filter from the source's id listing
// (GET /api/products/ids, in pages) and marks it ready. Ids learnt meanwhile
// (rebuilds, the invalidation stream) are added as they come. It retries
// until ctx ends.
func (s *Service) loadIDs(ctx context.Context) {
	start := time.Now()
	retry := loadRetry.Start()
	for ctx.Err() == nil {
		n, err := s.listIDs(ctx)
		if err == nil {
			s.filter.ready.Store(true)
			s.bloomReady.Set(1)
			m, k := s.filter.params()
			s.log.Info("bloom filter ready", "ids", n, "bits", m, "hashes", k, "took", time.Since(start).Round(time.Millisecond))
			return
		}
		d := retry.Next()
		s.log.Warn("bloom filter: loading ids from the source failed; retrying", "error", err, "in", d)
		_ = backoff.Sleep(ctx, d) // ctx done: the loop ends
	}
}

// loadRetry is the backoff between failed loads of the id listing.
var loadRetry = backoff.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// streamRetry is the wait after the invalidation stream failed to answer.
const streamRetry = time.Second

// idPage is how many ids one page of the listing carries.
const idPage = 20_000

func (s *Service) listIDs(ctx context.Context) (int, error) {
	found := 0
	for after := int64(0); ; {
		ids, next, err := s.src.ProductIDs(ctx, after, idPage)
		if err != nil {
			return found, fmt.Errorf("bloom: ids after %d: %w", after, err)
		}
		for _, id := range ids {
			s.filter.Add(id)
		}
		found += len(ids)
		if next == 0 {
			return found, nil
		}
		after = next
	}
}

// followInvalidations reads the invalidation stream on Redis main (what
// the sync service and rebuilds append after writing a new version): every
// product named there exists, so the filter learns products created after
// it was built, and local copies of what changed are dropped.
func (s *Service) followInvalidations(ctx context.Context) {
	last := "$"
	for ctx.Err() == nil {
		res, err := s.store.Client().XRead(ctx, &redis.XReadArgs{
			Streams: []string{redisstore.InvalidationStream, last}, Count: 512, Block: time.Second,
		}).Result()
		if err == redis.Nil {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Debug("invalidation stream unavailable", "error", err)
				_ = backoff.Sleep(ctx, streamRetry) // ctx done: the loop ends
			}
			continue
		}
		for _, st := range res {
			for _, msg := range st.Messages {
				last = msg.ID
				ids, _ := msg.Values["ids"].(string)
				s.applyInvalidation(ids)
			}
		}
	}
}

// applyInvalidation handles one stream entry: "p:<id>:<version>,s:<id>:<version>,…".
func (s *Service) applyInvalidation(ids string) {
	for part := range strings.SplitSeq(ids, ",") {
		kind, rest, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		idStr, vStr, _ := strings.Cut(rest, ":")
		id, err := strconv.ParseInt(idStr, 10, 64)
		if err != nil {
			continue
		}
		version, _ := strconv.ParseInt(vStr, 10, 64)
		switch kind {
		case "p":
			if s.filter != nil {
				s.filter.Add(id)
			}
			dropOlder(s.items, id, version)
		case "s":
			dropOlder(s.shops, id, version)
		}
	}
}

// dropOlder removes the local copy of id if it is older than version (a
// copy this service just rebuilt and wrote is kept).
func dropOlder(c *expirable.LRU[int64, *entry], id, version int64) {
	if e, ok := c.Peek(id); ok && e.version < version {
		c.Remove(id)
	}
}
