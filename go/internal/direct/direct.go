// Package direct is the direct-data service (数据直连服务): where the app
// tier goes when Redis fails it, and where the dist tier sends pages when
// no app node answers. Lookup order: an in-process size-bounded cache →
// Redis main → a rebuild from the source services (written back to Redis
// main with versioned compare-and-set, so racing the sync service is
// harmless). Below the local cache the lookup is a fallback chain
// (resilience.Chain, ItemChain and ShopChain): fresh (Redis main, else a
// rebuild) → the last good local copy, however old → a clear 503; the
// chain metric counts which link served.
//
// It is the last line before the source databases, so it carries the cache
// protections (docs/protection.md), each of which can be turned off for
// comparison:
//   - penetration: a Bloom filter of the product ids that exist refuses
//     ids that never existed without asking Redis or the source; missing
//     ids get a short-lived negative entry here and in Redis.
//   - avalanche: jittered TTLs; rebuilds run under a concurrency limit
//     beyond which requests fail fast (503) instead of queueing; expired
//     entries are kept as stale copies to serve while they are refreshed.
//   - breakdown: a burst on one id rebuilds it once (single flight); hot
//     entries are refreshed early in the background (XFetch), and an
//     expired one is refreshed once while the others get the stale copy.
package direct

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/page"
	"github.com/detailpage/detailpage/go/internal/pagedoc"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// RebuildCommand is the resilience command every rebuild from the source
// runs as: its MaxConcurrent is the rebuild concurrency limit.
const RebuildCommand = "direct.rebuild"

// The fallback chains of the read path, as counted in
// detailpage_resilience_fallback_chain_served_total{chain, link}: link
// fresh (Redis main, else a rebuild from the source), last_good (the local
// copy, however old; only with Config.Stale), or none (every link failed:
// 503 for a page, a page without its shop for a shop).
const (
	ItemChain = "direct.item"
	ShopChain = "direct.shop"
)

// RedisGetCommand is the resilience command of the service's own reads of
// one page or shop document from Redis main, on the serving path: a short
// timeout, many in flight. (The page builder's MGETs while rebuilding are
// pagedoc's redis.main.read, configured apart.)
const RedisGetCommand = "direct.redis.get"

// Commands returns the resilience commands the service runs with cfg, with
// their default settings: its own, the page builder's and the source
// client's.
func Commands(cfg Config) []resilience.Command {
	cmds := []resilience.Command{{
		Name: RedisGetCommand, Timeout: 200 * time.Millisecond, MaxConcurrent: 256,
		RequestVolumeThreshold: 20, ErrorPercentThreshold: 50, SleepWindow: time.Second,
	}}
	if cfg.RebuildConcurrency > 0 {
		// A bulkhead only: the source calls inside have their own circuits,
		// so this one never opens (rejections count as errors in hystrix).
		cmds = append(cmds, resilience.Command{
			Name: RebuildCommand, Timeout: cfg.LoadTimeout + time.Second, MaxConcurrent: cfg.RebuildConcurrency,
			RequestVolumeThreshold: math.MaxInt32, ErrorPercentThreshold: 100, SleepWindow: time.Second,
		})
	}
	cmds = append(cmds, pagedoc.Commands()...)
	return append(cmds, sourceclient.Commands()...)
}

// Config is the direct-data service's configuration.
type Config struct {
	Listen       string
	Redis        string
	SourceURL    string
	TemplatesDir string
	CacheSize    int           // entries in the local cache
	CacheTTL     time.Duration // local TTL of a found document (jittered ±20%)
	NegativeTTL  time.Duration // local TTL of a "does not exist" answer

	// Bloom refuses ids the filter says never existed (404) without asking
	// Redis or the source; the filter holds BloomCapacity ids at
	// BloomFPRate false positives.
	Bloom         bool
	BloomCapacity uint
	BloomFPRate   float64
	// SingleFlight collapses concurrent lookups of one id into one.
	SingleFlight bool
	// XFetch refreshes entries early, in the background, with probability
	// growing towards their expiry (β = XFetchBeta).
	XFetch     bool
	XFetchBeta float64
	// Stale keeps expired documents: for StaleTTL past its expiry one is
	// served at once while one background refresh runs (also when that
	// refresh fails); after that it is kept (until the cache's size pushes
	// it out) as the last good copy, served when a fresh read fails.
	Stale    bool
	StaleTTL time.Duration
	// RebuildConcurrency bounds concurrent rebuilds from the source; beyond
	// it a request fails fast with 503. 0: no limit.
	RebuildConcurrency int
	// LoadTimeout bounds one lookup below the local cache (Redis + rebuild).
	LoadTimeout time.Duration
	// Commands overrides settings of the resilience commands the service
	// runs (Commands); zero fields keep the default.
	Commands []resilience.Command
}

// Defaults returns a configuration with every protection on.
func Defaults() Config {
	return Config{
		Listen: "127.0.0.1:9103", Redis: "127.0.0.1:6380", SourceURL: "http://127.0.0.1:9101", TemplatesDir: "templates",
		CacheSize: 50_000, CacheTTL: 2 * time.Second, NegativeTTL: 5 * time.Second,
		Bloom: true, BloomCapacity: DefaultBloomCapacity, BloomFPRate: DefaultBloomFPRate,
		SingleFlight: true, XFetch: true, XFetchBeta: 1, Stale: true, StaleTTL: time.Hour,
		RebuildConcurrency: 32, LoadTimeout: 3 * time.Second,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("direct: listen address required")
	case c.Redis == "":
		return errors.New("direct: redis address required")
	case c.SourceURL == "":
		return errors.New("direct: source URL required")
	case c.TemplatesDir == "":
		return errors.New("direct: templates dir required")
	case c.CacheSize < 1:
		return errors.New("direct: cache size must be at least 1")
	case c.CacheTTL <= 0 || c.NegativeTTL <= 0:
		return errors.New("direct: cache TTLs must be positive")
	case c.Bloom && (c.BloomCapacity == 0 || c.BloomFPRate <= 0 || c.BloomFPRate >= 1):
		return errors.New("direct: bloom filter needs a capacity and a false-positive rate in (0, 1)")
	case c.XFetch && (c.XFetchBeta <= 0 || math.IsInf(c.XFetchBeta, 0) || math.IsNaN(c.XFetchBeta)):
		return errors.New("direct: xfetch beta must be a positive number")
	case c.Stale && c.StaleTTL <= 0:
		return errors.New("direct: stale TTL must be positive")
	case c.RebuildConcurrency < 0:
		return errors.New("direct: rebuild concurrency must be 0 (no limit) or more")
	case c.LoadTimeout <= 0:
		return errors.New("direct: load timeout must be positive")
	}
	return nil
}

// Service is a running direct-data service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	store    *redisstore.Store
	src      *sourceclient.Client
	asm      *pagedoc.Assembler
	renderer *page.Renderer
	ln       net.Listener
	tel      httpapi.Telemetry
	reg      *prometheus.Registry // tel.Registry
	items    *expirable.LRU[int64, *entry]
	shops    *expirable.LRU[int64, *entry]
	filter   *idFilter // nil: Bloom protection off
	flight   singleflight.Group

	refreshing sync.Map // int64 → struct{}: ids with a background refresh running
	bg         context.Context
	stop       context.CancelFunc
	life       sync.Mutex // guards closed against wg.Add racing Close's wg.Wait
	closed     bool
	wg         sync.WaitGroup
	closeOnce  sync.Once
	release    func() // of the commands' configuration

	// Injectable for tests.
	now  func() time.Time
	rand func() float64

	served     *prometheus.CounterVec
	refreshes  *prometheus.CounterVec
	rejected   prometheus.Counter
	bloomReady prometheus.Gauge
}

// Open builds the service and binds its listener.
func Open(cfg Config, log *slog.Logger, tel httpapi.Telemetry) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src, err := sourceclient.New(cfg.SourceURL)
	if err != nil {
		return nil, err
	}
	renderer, err := page.New(cfg.TemplatesDir)
	if err != nil {
		return nil, err
	}
	release, err := resilience.ConfigureService(Commands(cfg), cfg.Commands)
	if err != nil {
		return nil, fmt.Errorf("direct: %w", err)
	}
	store, err := redisstore.Open(cfg.Redis)
	if err != nil {
		release()
		return nil, err
	}
	// With stale copies on, entries leave the local caches only by size
	// (expiry is checked on read): an expired one is the stale copy, and
	// later the last good copy. Without, they go at their longest TTL.
	itemsTTL, shopsTTL := jittered(max(cfg.CacheTTL, cfg.NegativeTTL), 1), jittered(cfg.CacheTTL, 1)
	if cfg.Stale {
		itemsTTL, shopsTTL = 0, 0 // no expiry
	}
	s := &Service{
		cfg: cfg, log: log, store: store, src: src, asm: pagedoc.New(src, store), renderer: renderer, release: release,
		tel: tel, reg: tel.Registry,
		items: expirable.NewLRU[int64, *entry](cfg.CacheSize, nil, itemsTTL),
		shops: expirable.NewLRU[int64, *entry](cfg.CacheSize/10+1, nil, shopsTTL),
		now:   time.Now, rand: rand.Float64,
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detailpage_direct_lookups_total", Help: "Page document lookups by the level that answered (bloom: refused by the filter, rejected: over the rebuild limit, last_good: the local copy after a failed fresh read).",
		}, []string{"level"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detailpage_direct_refreshes_total", Help: "Background refreshes of local entries by reason (early: XFetch, stale: expired entry served stale).",
		}, []string{"reason"}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "detailpage_direct_rebuilds_rejected_total", Help: "Rebuilds refused because the rebuild concurrency limit was reached.",
		}),
		bloomReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "detailpage_direct_bloom_ready", Help: "1 once the Bloom filter of product ids is loaded and refusing unknown ids.",
		}),
	}
	s.bg, s.stop = context.WithCancel(context.Background())
	s.reg.MustRegister(s.served, s.refreshes, s.rejected, s.bloomReady)
	if cfg.Bloom {
		s.filter = newIDFilter(cfg.BloomCapacity, cfg.BloomFPRate)
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "detailpage_direct_bloom_ids", Help: "Product ids added to the Bloom filter.",
		}, func() float64 { return float64(s.filter.added.Load()) }))
	}
	if s.ln, err = httpapi.Listen(cfg.Listen); err != nil {
		store.Close()
		release()
		return nil, err
	}
	return s, nil
}

// Run serves until ctx is done. The Bloom filter loads from the source in
// the background meanwhile; until it is ready it refuses nothing.
func (s *Service) Run(ctx context.Context) error {
	s.Start(ctx)
	return httpapi.Serve(ctx, s.ln, s.Handler(), s.log)
}

// Start runs the background work without serving (Run does both): the
// Bloom filter load and the invalidation stream follower.
func (s *Service) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(s.bg, cancel) // Close ends it too
	if s.filter != nil {
		s.background(func() { s.loadIDs(ctx) })
	}
	s.background(func() { s.followInvalidations(ctx) })
}

// background runs fn in a goroutine Close waits for; false once closed.
func (s *Service) background(fn func()) bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return false
	}
	s.wg.Go(fn)
	return true
}

// Close stops background work and releases the Redis client.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.life.Lock()
		s.closed = true
		s.life.Unlock()
		s.stop()
		s.wg.Wait()
		err = s.store.Close()
		s.release()
	})
	return err
}

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	e := httpapi.NewEngine(s.log, s.tel, func(context.Context) error { return nil })
	e.GET("/api/item/:id", s.getItemJSON)
	e.GET("/item/:file", s.getItemHTML)
	return e
}

// errMissing is a lookup's answer for an id that does not exist.
var errMissing = fmt.Errorf("product: %w", catalog.ErrNotFound)

// errRejected is the answer beyond the rebuild concurrency limit.
var errRejected = fmt.Errorf("rebuild limit reached: %w", catalog.ErrUnavailable)

// errNoCopy is the last good link's answer when it has nothing.
var errNoCopy = errors.New("no last good copy")

// Item returns the page document of id and the level that answered:
// local, stale, redis, source, last_good, or bloom (refused by the filter).
func (s *Service) Item(ctx context.Context, id int64) ([]byte, string, error) {
	now := s.now()
	e, cached := s.items.Get(id)
	if cached {
		switch {
		case now.Before(e.expires):
			if s.cfg.XFetch && e.doc != nil && xfetch(now, e.expires, e.delta, s.cfg.XFetchBeta, s.rand()) {
				s.refresh(id, e, "early")
			}
			s.served.WithLabelValues("local").Inc()
			if e.doc == nil {
				return nil, "local", errMissing
			}
			return e.doc, "local", nil
		case s.cfg.Stale && e.doc != nil && now.Before(e.expires.Add(s.cfg.StaleTTL)):
			s.refresh(id, e, "stale")
			s.served.WithLabelValues("stale").Inc()
			return e.doc, "stale", nil
		}
	}
	if s.filter != nil && !s.filter.MayContain(id) {
		s.served.WithLabelValues("bloom").Inc()
		return nil, "bloom", errMissing
	}
	level := "waiting" // unless a link runs: the caller left first
	links := []resilience.Link[[]byte]{{Name: "fresh", Get: func(ctx context.Context) ([]byte, error) {
		r, err := s.load(ctx, id)
		level = r.level
		if errors.Is(err, catalog.ErrNotFound) {
			return nil, resilience.Permanent{Err: err} // gone: no older copy may bring it back
		}
		return r.doc, err
	}}}
	if s.cfg.Stale {
		links = append(links, resilience.Link[[]byte]{Name: "last_good", Get: func(context.Context) ([]byte, error) {
			if !cached || e.doc == nil {
				return nil, errNoCopy
			}
			level = "last_good"
			return e.doc, nil
		}})
	}
	doc, _, err := resilience.Chain(ctx, ItemChain, links...)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) && !errors.Is(err, catalog.ErrUnavailable) && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", catalog.ErrUnavailable, err)
	}
	s.served.WithLabelValues(level).Inc()
	return doc, level, err
}

type lookupResult struct {
	doc   []byte
	level string
}

// load looks id up below the local cache — once per id at a time when
// single flight is on — and caches the answer. The lookup runs on the
// service's context, so a caller that gives up does not fail the others
// waiting on the same flight.
func (s *Service) load(ctx context.Context, id int64) (lookupResult, error) {
	if !s.cfg.SingleFlight {
		return s.loadOnce(id)
	}
	ch := s.flight.DoChan(strconv.FormatInt(id, 10), func() (any, error) { return s.loadOnce(id) })
	select {
	case res := <-ch:
		r, _ := res.Val.(lookupResult)
		return r, res.Err
	case <-ctx.Done():
		return lookupResult{level: "waiting"}, ctx.Err()
	}
}

func (s *Service) loadOnce(id int64) (lookupResult, error) {
	ctx, cancel := context.WithTimeout(s.bg, s.cfg.LoadTimeout)
	defer cancel()
	start := time.Now() // δ is a real duration, whatever clock expiries use
	doc, level, err := s.lookup(ctx, id)
	delta, now := time.Since(start), s.now()
	switch {
	case err == nil:
		s.items.Add(id, &entry{doc: doc, version: docVersion(doc), expires: now.Add(jittered(s.cfg.CacheTTL, s.rand())), delta: delta})
		if s.filter != nil {
			s.filter.Add(id)
		}
	case errors.Is(err, catalog.ErrNotFound):
		s.items.Add(id, &entry{expires: now.Add(jittered(s.cfg.NegativeTTL, s.rand()))})
	}
	return lookupResult{doc, level}, err
}

// refresh reloads id in the background unless a refresh of it is already
// running or the last one failed moments ago: one refresh per id.
func (s *Service) refresh(id int64, e *entry, reason string) {
	if s.now().UnixNano() < e.retryAt.Load() {
		return
	}
	if _, running := s.refreshing.LoadOrStore(id, struct{}{}); running {
		return
	}
	started := s.background(func() {
		defer s.refreshing.Delete(id)
		if _, err := s.load(s.bg, id); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			e.retryAt.Store(s.now().Add(refreshRetry).UnixNano())
			s.log.Debug("background refresh failed; serving the stale copy", "id", id, "error", err)
		}
	})
	if !started {
		s.refreshing.Delete(id)
		return
	}
	s.refreshes.WithLabelValues(reason).Inc()
}

// refreshRetry is how long a stale entry is served before another refresh
// is tried after one failed.
const refreshRetry = time.Second

// lookup reads Redis main, then rebuilds from the source services.
func (s *Service) lookup(ctx context.Context, id int64) ([]byte, string, error) {
	doc, err := resilience.Do(ctx, RedisGetCommand, func(ctx context.Context) ([]byte, error) {
		return s.store.Get(ctx, redisstore.ItemKey(id))
	}, func(context.Context, error) ([]byte, error) { return nil, nil }) // Redis down: rebuild
	if err != nil {
		return nil, "redis", err
	}
	if doc != nil && !json.Valid(doc) {
		s.log.Warn("ignoring a value that is not JSON; rebuilding", "key", redisstore.ItemKey(id))
		doc = nil
	}
	if doc != nil {
		if isMissing(doc) {
			return nil, "redis", errMissing
		}
		return doc, "redis", nil
	}
	res, err := rebuild(ctx, s, func(ctx context.Context) (pagedoc.Result, error) {
		return s.asm.Products(ctx, []int64{id})
	})
	if errors.Is(err, errRejected) {
		return nil, "rejected", err
	}
	if err != nil {
		return nil, "source", fmt.Errorf("%w: %v", catalog.ErrUnavailable, err)
	}
	if d, ok := res.Docs[id]; ok {
		return d, "source", nil
	}
	return nil, "source", errMissing
}

// rebuild runs a rebuild from the source under the rebuild concurrency
// limit: beyond it, errRejected at once rather than a queue.
func rebuild(ctx context.Context, s *Service, run func(context.Context) (pagedoc.Result, error)) (pagedoc.Result, error) {
	once := func(ctx context.Context) (pagedoc.Result, error) {
		res, err := run(ctx)
		if err != nil && res.Docs != nil {
			// The rebuild read the source but Redis main refused the write
			// (it is down): serve it anyway. The versioned write makes the
			// lost write harmless; the sync service or the next rebuild
			// writes it when main is back.
			s.log.Debug("rebuild not written back to Redis", "error", err)
			return res, nil
		}
		return res, err
	}
	if s.cfg.RebuildConcurrency == 0 {
		return once(ctx)
	}
	res, err := resilience.Do(ctx, RebuildCommand, once, nil)
	if errors.Is(err, resilience.ErrRejected) {
		s.rejected.Inc()
		return res, errRejected
	}
	return res, err
}

func isMissing(doc []byte) bool {
	return bytes.HasPrefix(doc, catalog.MissingJSON[:len(catalog.MissingJSON)-1])
}

// errNoShop is the fresh link's answer for a shop that does not exist.
var errNoShop = fmt.Errorf("shop: %w", catalog.ErrNotFound)

// Shop returns the shop document (nil when unavailable: the page copes).
// Below the local cache it is the ShopChain: fresh (Redis main, else the
// source) → the last good local copy, however old → nil.
func (s *Service) Shop(ctx context.Context, id int64) []byte {
	e, ok := s.shops.Get(id)
	if ok && s.now().Before(e.expires) {
		return e.doc
	}
	links := []resilience.Link[[]byte]{{Name: "fresh", Get: func(ctx context.Context) ([]byte, error) {
		return s.loadShop(ctx, id)
	}}}
	if s.cfg.Stale {
		links = append(links, resilience.Link[[]byte]{Name: "last_good", Get: func(context.Context) ([]byte, error) {
			if !ok || e.doc == nil {
				return nil, errNoCopy
			}
			return e.doc, nil
		}})
	}
	doc, _, err := resilience.Chain(ctx, ShopChain, links...)
	switch {
	case err == nil:
		return doc
	case errors.Is(err, catalog.ErrNotFound) || ctx.Err() != nil:
		s.log.Debug("page rendered without its shop", "shop", id, "error", err)
	default:
		s.log.Warn("shop unavailable; page rendered without it", "shop", id, "error", err)
	}
	return nil
}

// loadShop reads a shop from Redis main, else rebuilds it from the source,
// once per id at a time, and caches it; errNoShop (Permanent) when the
// source does not have it. The read runs on the service's context, so a
// caller that gives up does not fail the others waiting on the flight.
func (s *Service) loadShop(ctx context.Context, id int64) ([]byte, error) {
	ch := s.flight.DoChan("s"+strconv.FormatInt(id, 10), func() (any, error) {
		ctx, cancel := context.WithTimeout(s.bg, s.cfg.LoadTimeout)
		defer cancel()
		doc, err := resilience.Do(ctx, RedisGetCommand, func(ctx context.Context) ([]byte, error) {
			return s.store.Get(ctx, redisstore.ShopKey(id))
		}, func(context.Context, error) ([]byte, error) { return nil, nil })
		if err == nil && doc == nil {
			var res pagedoc.Result
			res, err = rebuild(ctx, s, func(ctx context.Context) (pagedoc.Result, error) {
				return s.asm.Shops(ctx, []int64{id})
			})
			doc = res.Docs[id]
			if err == nil && doc == nil {
				err = resilience.Permanent{Err: errNoShop}
			}
		}
		if err == nil {
			s.shops.Add(id, &entry{doc: doc, version: docVersion(doc), expires: s.now().Add(jittered(s.cfg.CacheTTL, s.rand()))})
		}
		return doc, err
	})
	select {
	case res := <-ch:
		b, _ := res.Val.([]byte)
		return b, res.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Service) getItemJSON(c *gin.Context) {
	id, err := catalog.ParseID(c.Param("id"))
	if err != nil {
		httpapi.Error(c, err)
		return
	}
	doc, level, err := s.Item(c.Request.Context(), id)
	c.Header("X-Cache", level)
	if err != nil {
		httpapi.Error(c, err)
		return
	}
	if c.Query("with") != "shop" {
		c.Data(http.StatusOK, "application/json; charset=utf-8", doc)
		return
	}
	// The app tier asks for both at once: one round trip on its fallback path.
	var head struct {
		ShopID int64 `json:"shop_id"`
	}
	shop := []byte("null")
	if json.Unmarshal(doc, &head) == nil && head.ShopID > 0 {
		if b := s.Shop(c.Request.Context(), head.ShopID); b != nil {
			shop = b
		}
	}
	c.JSON(http.StatusOK, gin.H{"item": json.RawMessage(doc), "shop": json.RawMessage(shop)})
}

func (s *Service) getItemHTML(c *gin.Context) {
	c.Header("X-Served-By", "direct")
	c.Header("Content-Type", "text/html; charset=utf-8")
	name, ok := strings.CutSuffix(c.Param("file"), ".html")
	id, err := catalog.ParseID(name)
	if !ok || err != nil {
		// A page URL that names no product is a page that does not exist.
		httpapi.ErrorPage(c, fmt.Errorf("page %q: %w", c.Param("file"), catalog.ErrNotFound), s.errorPage)
		return
	}
	doc, _, err := s.Item(c.Request.Context(), id)
	c.Header("X-Cache", "direct")
	if err != nil {
		httpapi.ErrorPage(c, err, s.errorPage)
		return
	}
	var head struct {
		ShopID int64 `json:"shop_id"`
	}
	var shop []byte
	if json.Unmarshal(doc, &head) == nil && head.ShopID > 0 {
		shop = s.Shop(c.Request.Context(), head.ShopID)
	}
	var buf bytes.Buffer
	if err := s.renderer.RenderItem(&buf, doc, shop); err != nil {
		// A page is never a 500: a document this template cannot render is
		// served as the "try again" page, like a dependency that is down.
		s.log.Error("render failed", "id", id, "error", err)
		httpapi.ErrorPage(c, fmt.Errorf("render %d: %w: %w", id, catalog.ErrUnavailable, err), s.errorPage)
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}

// errorPage is the HTML page of an error status: the 404 page, or the
// "try again" page for anything else.
func (s *Service) errorPage(status int) []byte {
	if status == http.StatusNotFound {
		return s.renderer.NotFound()
	}
	return s.renderer.Unavailable()
}
