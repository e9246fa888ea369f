package realtime

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Result is what Resolve found for one product.
type Result struct {
	parts [numParts]resolved
	// Missing: the source (now, or a fresh local entry) has neither its
	// price nor its stock: no such product.
	Missing bool
	// seen are the local entries found, however old (last good values).
	seen [numParts]*entry
	// known[p]: the source said there is no record of part p.
	absent [numParts]bool
}

// Level is the level that served part ("price" or "stock") of r.
func (r *Result) Level(part string) string {
	for p, n := range partNames {
		if n == part {
			return r.parts[p].level
		}
	}
	return ""
}

// liveTimeout is the longest an answer waits for the source: the longest
// timeout of the live commands less a reserve (a twentieth, at most 25 ms)
// for what follows a live read that timed out — taking the last good
// values and writing the answer — so that the answer as a whole is not
// later than the command's timeout, even when many time out together.
func liveTimeout() time.Duration {
	t := max(resilience.Settings(PriceCommand).Timeout, resilience.Settings(StockCommand).Timeout)
	return t - min(t/20, 25*time.Millisecond)
}

// Resolve finds the parts of ids (distinct), each through the data path:
// a fresh local entry, else the source (live), else the last good value.
func (s *Service) Resolve(ctx context.Context, ids []int64) []Result {
	res := make([]Result, len(ids))
	now, gen := s.now(), s.gen.Load()
	var need [numParts][]int // indexes into ids of parts to read live
	for i, id := range ids {
		for p := range numParts {
			e, ok := s.cache.Get(key{id, p})
			if !ok {
				need[p] = append(need[p], i)
				continue
			}
			res[i].seen[p] = e
			if !e.fresh(now, gen, s.cfg.Fresh) {
				need[p] = append(need[p], i)
				continue
			}
			if e.missing {
				res[i].absent[p] = true
				res[i].parts[p] = resolved{level: levelNone}
				continue
			}
			res[i].parts[p] = resolved{val: e.val, level: levelLRU, at: e.fetched}
		}
	}
	var early *prefetch
	if len(need[partPrice]) > 0 || len(need[partStock]) > 0 {
		early = s.prefetch(ctx, ids, &need, liveTimeout()/prefetchAfter)
		s.live(ctx, ids, res, &need, gen)
	}
	var fallback []int64
	for i := range res {
		for p := range numParts {
			if res[i].parts[p].level == "" {
				fallback = append(fallback, ids[i])
				break
			}
		}
	}
	if len(fallback) > 0 && ctx.Err() == nil {
		var stored map[int64]map[catalog.Dimension]redisstore.RealtimeValue
		if early.wait() {
			stored = early.stored // the live read was slow: Redis was read meanwhile
		} else {
			stored = s.readStored(ctx, fallback)
		}
		s.lastGood(ids, res, stored)
	} else {
		if early != nil {
			early.cancel() // not needed: a read under way is abandoned
		}
		early.wait()
	}
	for i := range res {
		res[i].Missing = res[i].absent[partPrice] && res[i].absent[partStock]
		for p := range numParts {
			if res[i].parts[p].level == "" {
				res[i].parts[p].level = levelNone
			}
			s.parts[p][res[i].parts[p].level].Inc()
		}
	}
	return res
}

// live reads the needed parts from the source, price and stock at once,
// each through the source client's collapser, and waits at most
// liveTimeout. What it gets is kept in the local cache.
func (s *Service) live(ctx context.Context, ids []int64, res []Result, need *[numParts][]int, gen uint64) {
	ctx, cancel := context.WithTimeout(resilience.WithRequestCache(ctx), liveTimeout())
	defer cancel()
	var got [numParts]map[int64]json.RawMessage
	var errs [numParts]error
	fetch := func(p int) {
		ask := make([]int64, len(need[p]))
		for j, i := range need[p] {
			ask[j] = ids[i]
		}
		got[p], errs[p] = sourceclient.LookupManyRaw(ctx, s.src, partNames[p], ask)
	}
	var wg sync.WaitGroup
	for p := range numParts {
		if len(need[p]) == 0 {
			continue
		}
		if p == numParts-1 || len(need[numParts-1]) == 0 {
			fetch(p) // the last one on this goroutine
			continue
		}
		wg.Go(func() { fetch(p) })
	}
	wg.Wait()
	now := s.now()
	for p := range numParts {
		if errs[p] != nil {
			if len(need[p]) > 0 {
				s.liveErrors.WithLabelValues(partNames[p]).Inc()
				s.log.Debug("realtime: live read failed; serving last good values", "part", partNames[p], "ids", len(need[p]), "error", errs[p])
			}
			continue
		}
		for _, i := range need[p] {
			id := ids[i]
			k := key{id, p}
			raw, ok := got[p][id]
			if !ok {
				e := &entry{missing: true, fetched: now, gen: gen}
				s.keep(k, e)
				res[i].absent[p] = true
				res[i].parts[p] = resolved{level: levelNone}
				continue
			}
			v, err := decodePart(p, id, raw)
			if err != nil {
				if n, ok := s.recordLog.Allow(); ok {
					s.log.Warn("realtime: source record ignored", "part", partNames[p], "id", id, "error", err, "suppressed", n)
				}
				continue // last good
			}
			s.keep(k, &entry{val: v, fetched: now, gen: gen})
			res[i].parts[p] = resolved{val: v, level: levelLive, at: now}
		}
	}
}

// keep stores a live entry, outdated at once if the dp:rt stream already
// named a newer version of the part.
func (s *Service) keep(k key, e *entry) {
	if v, ok := s.announced.Peek(k); ok && v > e.val.version {
		e.invalid.Store(true)
	}
	s.cache.Add(k, e)
}

// prefetchAfter: a live read still running after this fraction of its
// timeout is slow (a healthy one answers in a few ms), and the last good
// values are read from Redis beside it. Early enough that the Redis read
// has most of the timeout — one.redis.read's own — under load, when 500
// answers time out together on a busy machine.
const prefetchAfter = 5

// prefetch is the last good values read from Redis while a slow live read
// is still running, so an answer whose live read times out has them at
// once instead of reading Redis after the timeout.
type prefetch struct {
	timer  *time.Timer
	cancel context.CancelFunc
	done   chan struct{}
	stored map[int64]map[catalog.Dimension]redisstore.RealtimeValue
}

// prefetch reads from Redis the ids of need after d, unless wait is
// called first. nil without Redis.
func (s *Service) prefetch(ctx context.Context, ids []int64, need *[numParts][]int, d time.Duration) *prefetch {
	if s.store == nil {
		return nil
	}
	var ask []int64
	for p := range numParts {
		for _, i := range need[p] {
			if !slices.Contains(ask, ids[i]) {
				ask = append(ask, ids[i])
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &prefetch{done: make(chan struct{}), cancel: cancel}
	f.timer = time.AfterFunc(d, func() {
		defer close(f.done)
		f.stored = s.readStored(ctx, ask)
	})
	return f
}

// wait stops the prefetch if it has not started (false), or waits for
// it to end (true: stored holds what it read). Call it once.
func (f *prefetch) wait() bool {
	if f == nil {
		return false
	}
	defer f.cancel()
	if f.timer.Stop() {
		return false
	}
	<-f.done
	return true
}

// readStored reads the last good values of ids from Redis main (nil
// without Redis or when it fails), through a collapser: the reads of
// concurrent answers (a burst of answers whose live reads time out
// together) go out as one pipelined read of up to 100 ids, command
// one.redis.read.
func (s *Service) readStored(ctx context.Context, ids []int64) map[int64]map[catalog.Dimension]redisstore.RealtimeValue {
	if s.store == nil {
		return nil
	}
	stored, err := s.lastGoods.GetMany(ctx, ids)
	if err != nil && ctx.Err() == nil {
		s.log.Debug("realtime: redis last good values unavailable", "ids", len(ids), "error", err)
	}
	return stored
}

// lastGood fills the parts live could not give: the newest version of the
// local entry, however old, and Redis main's values (stored).
func (s *Service) lastGood(ids []int64, res []Result, stored map[int64]map[catalog.Dimension]redisstore.RealtimeValue) {
	for i, id := range ids {
		for p := range numParts {
			r := &res[i].parts[p]
			if r.level != "" {
				continue
			}
			if e := res[i].seen[p]; e != nil && !e.missing {
				*r = resolved{val: e.val, level: levelLastGood, at: e.fetched}
			}
			rv, ok := stored[id][partDims[p]]
			if !ok || (r.level != "" && rv.Version <= r.val.version) {
				continue
			}
			v, err := decodePart(p, id, rv.Record)
			if err != nil {
				if n, ok := s.recordLog.Allow(); ok {
					s.log.Warn("realtime: redis value ignored", "part", partNames[p], "id", id, "error", err, "suppressed", n)
				}
				continue
			}
			*r = resolved{val: v, level: levelLastGood, at: rv.At}
		}
	}
}
