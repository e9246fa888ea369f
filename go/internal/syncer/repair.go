package syncer

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Repair after a change of Redis main.
//
// Redis replicates asynchronously and appends to its AOF once a second: a
// replica promoted by Sentinel may lack main's last writes, and a main that
// restarts from its own disk may lack up to a second of them (a replica
// that resyncs from it inherits the gap). Nobody would write those pages
// again, so a page could stay at an older version. The sync service closes
// the window: it remembers which ids it applied recently (a bounded ring),
// watches main's run id (INFO server, through the same client, so through
// Sentinel when configured), and when the run id changes it rebuilds every
// id applied within RepairWindow from the source services, through the
// same versioned compare-and-set: a page that kept its newest version is
// left alone, one that lost it is rewritten.

// RepairWindow is how far back the ids re-applied after a change of main go.
const RepairWindow = 2 * time.Minute

// recentCap bounds the ring of recently applied ids.
const recentCap = 50_000

// mainWatchInterval is how often main's run id is read.
const mainWatchInterval = 500 * time.Millisecond

// repairChunk is the most ids rebuilt in one call.
const repairChunk = 500

type recentEntry struct {
	shop bool
	id   int64
	at   time.Time
}

// recentIDs is a bounded ring of the ids applied lately, oldest first.
type recentIDs struct {
	mu   sync.Mutex
	buf  []recentEntry
	next int // where the next entry goes once buf is full
	cap  int
}

func newRecentIDs(capacity int) *recentIDs { return &recentIDs{cap: capacity} }

func (r *recentIDs) add(shop bool, at time.Time, ids ...int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		e := recentEntry{shop: shop, id: id, at: at}
		if len(r.buf) < r.cap {
			r.buf = append(r.buf, e)
			continue
		}
		r.buf[r.next] = e
		r.next = (r.next + 1) % r.cap
	}
}

// since returns the distinct product and shop ids applied at or after t.
func (r *recentIDs) since(t time.Time) (products, shops []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seenP, seenS := map[int64]bool{}, map[int64]bool{}
	for _, e := range r.buf {
		if e.at.Before(t) {
			continue
		}
		if e.shop && !seenS[e.id] {
			seenS[e.id] = true
			shops = append(shops, e.id)
		} else if !e.shop && !seenP[e.id] {
			seenP[e.id] = true
			products = append(products, e.id)
		}
	}
	slices.Sort(products)
	slices.Sort(shops)
	return products, shops
}

// baselineRunID reads main's run id before the service writes anything,
// so that a change right after the start is noticed too; it gives up after
// a few seconds (main down at start: the first run id read later is the
// baseline).
func (s *Service) baselineRunID(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		id, err := s.store.RunID(ctx)
		if err == nil {
			s.log.Info("redis main", "run_id", id)
			return id
		}
		select {
		case <-ctx.Done():
			s.log.Warn("cannot read redis main's run id at start", "error", err)
			return ""
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// watchMain reads main's run id every mainWatchInterval and repairs after
// each change from runID (the baseline; "" when unknown: the first read
// is). A repair that fails is tried again at the next tick, from the same
// point in time.
func (s *Service) watchMain(ctx context.Context, runID string) {
	t := time.NewTicker(mainWatchInterval)
	defer t.Stop()
	var pending time.Time // start of the window still to repair; zero: none
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		id, err := s.store.RunID(rctx)
		cancel()
		if err != nil {
			// main unreachable (failing over): keep the last run id
			if failures++; failures == 1 && ctx.Err() == nil {
				s.log.Warn("cannot read redis main's run id", "error", err)
			}
			continue
		}
		failures = 0
		if runID == "" {
			s.log.Info("redis main", "run_id", id)
		} else if id != runID {
			s.log.Warn("redis main changed (new run id); re-applying recent changes", "old_run_id", runID, "run_id", id, "window", RepairWindow.String())
			pending = time.Now().Add(-RepairWindow)
			s.kickCold() // the new main may be empty (cold.go)
		}
		runID = id
		if pending.IsZero() {
			continue
		}
		if err := s.repair(ctx, pending); err != nil {
			s.log.Warn("repair after a change of redis main failed; trying again", "error", err)
			continue
		}
		pending = time.Time{}
	}
}

// repair rebuilds every id applied since t.
func (s *Service) repair(ctx context.Context, t time.Time) error {
	start := time.Now()
	products, shops := s.recent.since(t)
	for c := range slices.Chunk(shops, repairChunk) {
		if _, err := s.asm.Shops(ctx, c); err != nil {
			return err
		}
	}
	for c := range slices.Chunk(products, repairChunk) {
		// Refresh, not Products: a product whose every value on the new
		// main is at the source's version is left alone (pagedoc.Refresh).
		if _, _, err := s.asm.Refresh(ctx, c); err != nil {
			return err
		}
	}
	s.m.repaired.Add(float64(len(products) + len(shops)))
	s.log.Info("re-applied recent changes on the new redis main", "products", len(products), "shops", len(shops), "took", time.Since(start).String())
	return nil
}
