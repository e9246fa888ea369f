// Package preheat fills a cold Redis main, hottest products first, and
// pushes the hottest pages into the app nodes' local caches (seed 000's
// 大规模缓存预热: the course used Storm to count access and ZooKeeper locks
// to split the work; here the hot service's statistics give the order and
// Redis leases split it).
//
// A run has a name. The first instance of a run stores the plan — the
// ordered ids cut into partitions — in Redis (SET NX); later instances of
// the same run read it. Each partition is claimed with a lease (SET NX PX,
// a random token, renewed at a third of its TTL) and a fencing token
// (INCR): every write of the partition goes through the versioned
// compare-and-set script with the fence checked in the same script
// (redisstore.Store.Fenced), so an instance whose lease was taken over
// cannot write after the takeover. A finished partition gets a done
// marker, set only by the fence's holder and only once. A crashed
// instance's partitions are claimed by another once their lease expires.
// See docs/preheat.md.
package preheat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/pagedoc"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Config is one preheat run.
type Config struct {
	Store         *redisstore.Store    // Redis main (writes: versioned CAS, fenced)
	Source        *sourceclient.Client // the source services
	HotURLs       []string             // hot services' base URLs (http://host:port); none: catalog order
	AppNodes      []string             // app nodes' base URLs for pushing the top pages (none: skip)
	AdminToken    string
	PartitionSize int           // ids per partition (default 1000)
	PushTop       int           // hottest N pages pushed to every app node (the command's default 1000; 0 off)
	Rate          float64       // products/s bound (0: unbounded)
	Lease         time.Duration // lease TTL (default 10s), renewed at 1/3
	Run           string        // run name shared by cooperating instances (default "default")
	Only          []int64       // optional: preheat only these ids, in this order
	Progress      io.Writer     // one line per second: done/total, rate, ETA; nil: silent
	Log           *slog.Logger
	// Workers is how many partitions one instance works on at once
	// (default 4).
	Workers int
	// Keep is how long a finished run's keys (plan, done markers, claims)
	// stay in Redis (default 10m): instances of the run that start late
	// find it finished, and an operator can read who did what. A new run
	// with the same name can start after that.
	Keep time.Duration
}

// Summary is what one instance did.
type Summary struct {
	Products   int // products of the partitions this instance completed
	Written    int // Redis values it replaced (documents and dimensions; the others held that version or a newer one)
	Skipped    int // products of the plan completed by other instances
	Partitions int // partitions this instance completed
	Pushed     int // pages pushed into app nodes (summed over nodes)
	Took       time.Duration
}

// Defaults.
const (
	DefaultPartitionSize = 1000
	DefaultLease         = 10 * time.Second
	DefaultRun           = "default"
	DefaultWorkers       = 4
	DefaultKeep          = 10 * time.Minute
	// BatchSize is how many ids one Assembler call gets.
	BatchSize = 100
	// runTTL bounds an unfinished run's keys (every instance crashed).
	runTTL = 24 * time.Hour
)

// Commands of a preheat. Their bulkheads are preheat's own: a preheat
// running inside a service (the sync service on a cold Redis) holds at most
// preheat.batch's MaxConcurrent Assembler calls, so it takes a bounded
// share of the source.* and redis.main.* bulkheads the service's live
// rebuilds use.
const (
	CmdBatch = "preheat.batch" // one Assembler.Products call of BatchSize ids
	CmdRedis = "preheat.redis" // plan, leases, done markers
	CmdHot   = "preheat.hot"   // GET /api/top of a hot service
	CmdPush  = "preheat.push"  // GET /_admin/page/<id> of an app node
)

// Commands returns preheat's resilience commands with their defaults.
func Commands() []resilience.Command {
	b := resilience.Defaults(CmdBatch)
	b.Timeout, b.MaxConcurrent = 15*time.Second, 8
	r := resilience.Defaults(CmdRedis)
	r.Timeout, r.MaxConcurrent = 2*time.Second, 32
	h := resilience.Defaults(CmdHot)
	h.Timeout, h.MaxConcurrent = 3*time.Second, 4
	p := resilience.Defaults(CmdPush)
	p.Timeout, p.MaxConcurrent = 2*time.Second, 64
	return []resilience.Command{b, r, h, p}
}

var runName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// withDefaults fills zero fields and checks the rest.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Store == nil {
		return cfg, errors.New("preheat: no Redis store")
	}
	if cfg.Source == nil {
		return cfg, errors.New("preheat: no source client")
	}
	if cfg.PartitionSize <= 0 {
		cfg.PartitionSize = DefaultPartitionSize
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Lease < 300*time.Millisecond {
		return cfg, fmt.Errorf("preheat: lease %s: want at least 300ms", cfg.Lease)
	}
	if cfg.Run == "" {
		cfg.Run = DefaultRun
	}
	if !runName.MatchString(cfg.Run) {
		return cfg, fmt.Errorf("preheat: run name %q: want 1 to 64 of A-Z a-z 0-9 . _ -", cfg.Run)
	}
	if cfg.Rate < 0 || cfg.PushTop < 0 || cfg.Workers < 0 {
		return cfg, errors.New("preheat: rate, push-top and workers must not be negative")
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// ActiveKey is there while a preheat run of the whole catalog works on
// Redis main: each instance sets it (its run and owner as the value) every
// ActiveTTL/3 with a TTL of ActiveTTL, from its plan to its last
// partition. The sync service's cold watcher counts such a run as a load
// under way, and waits for it instead of starting a recovery of its own
// that would load the same products from the sources a second time
// (docs/preheat.md). A run bounded by a rate or to some ids (Only) does
// not announce itself: it would hold off the sync service's hottest-first
// recovery of a main that went cold meanwhile, for as long as it runs.
const ActiveKey = "dp:preheat:active"

// announces reports whether a run of cfg sets ActiveKey.
func announces(cfg Config) bool { return len(cfg.Only) == 0 && cfg.Rate == 0 }

// ActiveTTL is ActiveKey's TTL: how long after its last instance stopped
// (or died) a run still counts as under way.
const ActiveTTL = 3 * time.Second

// announce keeps ActiveKey set until ctx ends. A failed write is only
// logged: the run goes on, and the sync service may recover main beside
// it (the compare-and-set keeps the two apart).
func (r *runner) announce(ctx context.Context) {
	t := time.NewTicker(ActiveTTL / 3)
	defer t.Stop()
	for {
		if err := r.cfg.Store.Client().Set(ctx, ActiveKey, r.cfg.Run+" "+r.owner, ActiveTTL).Err(); err != nil && ctx.Err() == nil {
			r.cfg.Log.Debug("preheat: announce the run", "key", ActiveKey, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ErrLeaseLost is why a partition was dropped: its lease expired and
// another instance took it over (its fence moved on).
var ErrLeaseLost = errors.New("preheat: lease lost")

// runner is one instance's state in a run.
type runner struct {
	cfg   Config
	keys  keys
	plan  *Plan
	owner string
	lim   *rate.Limiter
	// recent is shared by the run's batches: a page's recommended
	// products were mostly fetched already as another batch's products.
	recent *pagedoc.Recent

	products, written, partitions atomic.Int64
	inflight                      atomic.Int64 // products of held partitions done so far
	doneParts                     []atomic.Bool
}

// Run preheats until every partition of the run's plan is done (by this
// instance or others), then pushes the top pages into the app nodes. It
// returns an error when Redis main is unreachable, when the source keeps
// failing, or when ctx ends first (the leases it holds are released).
func Run(ctx context.Context, cfg Config) (Summary, error) {
	start := time.Now()
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	if err := ping(ctx, cfg.Store); err != nil {
		return Summary{}, err
	}
	// Fenced writes need one server: refuse a Cluster before any claim.
	if _, err := cfg.Store.Fenced(keysOf(cfg.Run).fence(0), 0); err != nil {
		return Summary{}, fmt.Errorf("preheat: %w", err)
	}
	// The commands' settings, unless the service running us configured
	// them already (then its settings stand).
	if err := resilience.Configure(Commands()...); err == nil {
		defer resilience.Release(names(Commands())...)
	}
	// Each worker holds one batch at a time: more workers than the batch
	// bulkhead admits would fail their batches with "max concurrency".
	if limit := resilience.Settings(CmdBatch).MaxConcurrent; cfg.Workers > limit {
		return Summary{}, fmt.Errorf("preheat: %d workers but %s admits %d batches at once: use at most %d workers, or raise it (--commands '%s:max_concurrent=%d')",
			cfg.Workers, CmdBatch, limit, limit, CmdBatch, cfg.Workers)
	}
	r := &runner{cfg: cfg, keys: keysOf(cfg.Run), owner: ownerID(), recent: pagedoc.NewRecent(pagedoc.DefaultRecentSize, pagedoc.DefaultRecentTTL)}
	r.lim = rate.NewLimiter(rate.Inf, BatchSize)
	if cfg.Rate > 0 {
		// A bucket of one batch, empty at the start: the bound holds from
		// the first batch on.
		r.lim = rate.NewLimiter(rate.Limit(cfg.Rate), BatchSize)
		r.lim.AllowN(time.Now(), BatchSize)
	}
	finished, err := r.finished(ctx)
	if err != nil {
		return Summary{}, err
	}
	if finished {
		cfg.Log.Info("preheat: run finished already, nothing to do", "run", cfg.Run)
		return Summary{Took: time.Since(start)}, nil
	}
	r.plan, err = r.loadOrCreatePlan(ctx)
	if err != nil {
		return Summary{}, err
	}
	cfg.Log.Info("preheat: plan", "run", cfg.Run, "owner", r.owner, "products", r.plan.Total,
		"partitions", len(r.plan.Partitions), "order", r.plan.Order)
	r.doneParts = make([]atomic.Bool, len(r.plan.Partitions))

	progCtx, stopProg := context.WithCancel(ctx)
	var progWG sync.WaitGroup
	if cfg.Progress != nil {
		progWG.Go(func() { r.progress(progCtx, start) })
	}
	if announces(cfg) {
		progWG.Go(func() { r.announce(progCtx) })
	}
	err = r.work(ctx)
	stopProg()
	progWG.Wait()
	sum := Summary{
		Products: int(r.products.Load()), Written: int(r.written.Load()),
		Partitions: int(r.partitions.Load()),
	}
	if err != nil {
		sum.Took = time.Since(start)
		return sum, err
	}
	// The final check: every partition of the plan has its done marker.
	if missing, err := r.undone(ctx); err != nil {
		sum.Took = time.Since(start)
		return sum, err
	} else if len(missing) > 0 {
		sum.Took = time.Since(start)
		return sum, fmt.Errorf("preheat: partitions %v of run %s not done", missing, cfg.Run)
	}
	sum.Skipped = r.plan.Total - sum.Products
	if cfg.PushTop > 0 && len(cfg.AppNodes) > 0 {
		if won, err := r.claimPush(ctx); err != nil {
			cfg.Log.Warn("preheat: claim the push", "error", err)
		} else if won {
			sum.Pushed = r.push(ctx)
		}
	}
	if err := r.finish(ctx); err != nil {
		cfg.Log.Warn("preheat: mark the run finished", "error", err)
	}
	sum.Took = time.Since(start)
	if cfg.Progress != nil {
		r.printLine(cfg.Progress, start, true)
	}
	cfg.Log.Info("preheat: done", "run", cfg.Run, "products", sum.Products, "written", sum.Written,
		"skipped", sum.Skipped, "partitions", sum.Partitions, "pushed", sum.Pushed, "took", sum.Took)
	return sum, nil
}

func names(cmds []resilience.Command) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.Name
	}
	return out
}

// ErrRedisUnreachable is Run's error when Redis main does not answer a
// ping at the start.
var ErrRedisUnreachable = errors.New("preheat: redis main unreachable")

func ping(ctx context.Context, st *redisstore.Store) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := st.Ping(pctx); err != nil {
		return fmt.Errorf("%w: %w", ErrRedisUnreachable, err)
	}
	return nil
}

func ownerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(b)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// work runs cfg.Workers workers until every partition is done.
func (r *runner) work(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for range r.cfg.Workers {
		g.Go(func() error { return r.worker(gctx) })
	}
	err := g.Wait()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("preheat: stopped before the end (%d of %d partitions done): %w", r.countDone(), len(r.plan.Partitions), ctx.Err())
	}
	return err
}

func (r *runner) countDone() int {
	n := 0
	for i := range r.doneParts {
		if r.doneParts[i].Load() {
			n++
		}
	}
	return n
}

// worker claims partitions and preheats them until all are done.
func (r *runner) worker(ctx context.Context) error {
	wait := min(r.cfg.Lease/4, 500*time.Millisecond)
	var retry *backoff.Backoff
	var failingSince time.Time
	for {
		c, all, err := r.claimNext(ctx)
		if err != nil {
			// Redis briefly away (a restart, a failover through Sentinel):
			// retry for a while before failing the run.
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if retry == nil {
				retry, failingSince = claimRetry.Start(), time.Now()
			}
			d := retry.Next()
			if time.Since(failingSince)+d > claimRetryBudget {
				return err
			}
			r.cfg.Log.Warn("preheat: claim failed, retrying", "error", err, "in", d)
			if err := backoff.Sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		retry = nil
		if all {
			return nil
		}
		if c == nil {
			// every open partition is leased by someone: wait for them to
			// finish or for a lease to expire
			if err := backoff.Sleep(ctx, wait); err != nil {
				return err
			}
			continue
		}
		if err := r.partition(ctx, c); err != nil {
			return err
		}
	}
}

// partition preheats one claimed partition. A lost lease drops it (nil
// error: the new holder does it); another failure is returned.
func (r *runner) partition(ctx context.Context, c *claim) error {
	log := r.cfg.Log.With("run", r.cfg.Run, "partition", c.index, "fence", c.fence)
	ids := r.plan.Partitions[c.index]
	fenced, err := r.cfg.Store.Fenced(r.keys.fence(c.index), c.fence)
	if err != nil {
		r.release(c)
		return fmt.Errorf("preheat: %w", err)
	}
	asm := pagedoc.New(r.cfg.Source, fenced)
	asm.Recent = r.recent
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var renewWG sync.WaitGroup
	renewWG.Go(func() { r.renew(pctx, cancel, c) })
	defer renewWG.Wait()
	defer cancel(nil)

	log.Debug("preheat: partition claimed", "products", len(ids))
	done, written := 0, 0
	defer func() { r.inflight.Add(-int64(done)) }()
	for start := 0; start < len(ids); start += BatchSize {
		batch := ids[start:min(start+BatchSize, len(ids))]
		n, err := r.batch(pctx, asm, batch)
		written += n
		r.written.Add(int64(n))
		if err != nil {
			cause := context.Cause(pctx)
			switch {
			case errors.Is(err, redisstore.ErrFenced) || errors.Is(cause, ErrLeaseLost):
				log.Warn("preheat: lease lost, partition dropped", "error", err, "done", done, "of", len(ids))
				return nil
			case ctx.Err() != nil:
				r.release(c)
				return ctx.Err()
			}
			r.release(c)
			return fmt.Errorf("preheat: partition %d: %w", c.index, err)
		}
		done += len(batch)
		r.inflight.Add(int64(len(batch)))
	}
	ok, err := r.markDone(ctx, c, len(ids), written)
	switch {
	case err != nil:
		r.release(c)
		return err
	case !ok:
		log.Warn("preheat: lease lost before the done marker, partition dropped")
		return nil
	}
	r.doneParts[c.index].Store(true)
	r.products.Add(int64(len(ids)))
	r.partitions.Add(1)
	log.Debug("preheat: partition done", "products", len(ids), "written", written)
	return nil
}

// claimRetry is how a worker retries reading done markers and claiming
// when Redis fails, for at most claimRetryBudget.
var claimRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.2}

const claimRetryBudget = 10 * time.Second

// batchRetry is how a failed batch is retried: the source or Redis may be
// briefly overloaded or failing over.
var batchRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second, Jitter: 0.2}

const batchAttempts = 6

// batch writes one batch through the Assembler as command preheat.batch,
// rate-bounded, retried with backoff (the compare-and-set makes a repeat
// harmless). It returns the Redis values written.
func (r *runner) batch(ctx context.Context, asm *pagedoc.Assembler, ids []int64) (int, error) {
	if err := r.lim.WaitN(ctx, len(ids)); err != nil {
		return 0, err
	}
	retry := batchRetry.Start()
	written := 0
	for attempt := 1; ; attempt++ {
		res, err := resilience.Do(ctx, CmdBatch, func(ctx context.Context) (pagedoc.Result, error) {
			// Refresh, not Products: products whose every value in Redis is
			// at the source's version are skipped (a warm main costs one
			// version read each; a cold one is rebuilt without asking the
			// source for versions).
			res, _, err := asm.Refresh(ctx, ids)
			return res, err
		}, nil)
		written += res.Written
		if err == nil || errors.Is(err, redisstore.ErrFenced) || ctx.Err() != nil || attempt == batchAttempts {
			return written, err
		}
		r.cfg.Log.Warn("preheat: batch failed, retrying", "first", ids[0], "ids", len(ids), "attempt", attempt, "error", err)
		if err := backoff.Sleep(ctx, retry.Next()); err != nil {
			return written, err
		}
	}
}
