// Package realtime is the OneServer (seed 004): one aggregating service for
// what must be exact at the moment of purchase — price, stock status,
// promotion and shipping for the shopper's region — which the page loads
// with one request after it renders (docs/realtime.md).
//
// Per part (price, stock) of each product an answer takes, in order:
//   - lru: a local entry (golang-lru/v2) younger than Config.Fresh that no
//     notification on the dp:rt stream has outdated;
//   - live: the source's batch endpoint, through sourceclient's request
//     collapser (commands source.price.batch / source.stock.batch, so
//     concurrent answers share batch calls) under a request cache per
//     answer; an answer waits at most the command's timeout;
//   - lastgood: when live fails, times out or its circuit is open, the
//     newest version of the local entry (however old) and Redis main's
//     realtime and dimension keys (redisstore.Realtime), with its age;
//   - none: nothing anywhere: the part is left out.
//
// Anything but lru and live marks the answer stale. A follower of the dp:rt
// stream (what the source's fast path appends after each write) outdates
// the local entries of changed parts within milliseconds.
package realtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/lograte"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// The resilience commands the service runs. Live reads go through
// sourceclient's collapsers (source.price.lookup, source.stock.lookup),
// whose batch calls are these commands; this process configures them with
// the realtime timeout and its own bulkhead.
const (
	PriceCommand = "source.price.batch"
	StockCommand = "source.stock.batch"
	RedisCommand = "one.redis.read"
	// RedisLookup is the collapser of the Redis reads (its metrics' label).
	RedisLookup = "one.redis.lookup"
)

var partCommands = [numParts]string{PriceCommand, StockCommand}

// MaxIDs is the most ids one GET /api/realtime?ids= may name.
const MaxIDs = 50

// Commands returns the resilience commands the service runs, with their
// default settings.
func Commands() []resilience.Command {
	live := func(name string) resilience.Command {
		return resilience.Command{
			Name: name, Timeout: 500 * time.Millisecond, MaxConcurrent: 16,
			RequestVolumeThreshold: 20, ErrorPercentThreshold: 50, SleepWindow: time.Second, Window: 10 * time.Second,
		}
	}
	return []resilience.Command{
		live(PriceCommand), live(StockCommand),
		{Name: RedisCommand, Timeout: 250 * time.Millisecond, MaxConcurrent: 64,
			RequestVolumeThreshold: 20, ErrorPercentThreshold: 50, SleepWindow: time.Second, Window: 10 * time.Second},
	}
}

// Config is the OneServer's configuration.
type Config struct {
	Listen    string
	SourceURL string
	// Redis is redisstore.Open's spec of Redis main ("": none — no last
	// good values from Redis and no dp:rt follower).
	Redis string
	// Fresh is how long a local entry answers without asking the source.
	Fresh time.Duration
	// CacheSize bounds the local entries (one per product and part).
	CacheSize  int
	AdminToken string
	// Commands overrides settings of the resilience commands (Commands).
	Commands []resilience.Command
}

// Defaults returns the command's defaults.
func Defaults() Config {
	return Config{Listen: "127.0.0.1:9105", SourceURL: "http://127.0.0.1:9101", Redis: "127.0.0.1:6380",
		Fresh: time.Second, CacheSize: 200_000}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("realtime: listen address required")
	case c.SourceURL == "":
		return errors.New("realtime: source URL required")
	case c.Fresh <= 0:
		return errors.New("realtime: --fresh must be positive")
	case c.CacheSize < 2:
		return errors.New("realtime: --cache-size must be at least 2")
	}
	return nil
}

// key names one part of one product in the local cache.
type key struct {
	id   int64
	part int
}

// entry is a local cache entry: the live answer for one part of one
// product (or that the source has no such record), when it came, and the
// follower generation it belongs to.
type entry struct {
	val     value
	missing bool      // the source has no such record
	fetched time.Time // when the source answered
	gen     uint64
	invalid atomic.Bool // a dp:rt notification named a newer version
}

func (e *entry) fresh(now time.Time, gen uint64, ttl time.Duration) bool {
	return e.gen == gen && !e.invalid.Load() && now.Sub(e.fetched) < ttl
}

// Service is a running OneServer.
type Service struct {
	cfg   Config
	log   *slog.Logger
	tel   httpapi.Telemetry
	src   *sourceclient.Client
	store *redisstore.Store // nil: no Redis
	// lastGoods collapses the Redis reads of concurrent answers.
	lastGoods *resilience.Collapser[int64, map[catalog.Dimension]redisstore.RealtimeValue]
	ln        net.Listener

	cache *lru.Cache[key, *entry]
	// announced keeps the newest version the dp:rt stream named per part,
	// so a live answer that left the source before an edit and lands after
	// its notification is not kept as fresh.
	announced *lru.Cache[key, int64]
	gen       atomic.Uint64 // bumped when the follower lost track: every entry is outdated

	bg        context.Context
	stop      context.CancelFunc
	life      sync.Mutex // guards closed against wg.Go racing Close's wg.Wait
	closed    bool
	wg        sync.WaitGroup
	closeOnce sync.Once
	release   func()

	badLog rate.Sometimes
	// recordLog bounds the lines about records that do not decode (a
	// corrupt value would otherwise log on every answer that reads it).
	recordLog *lograte.Limiter
	now       func() time.Time

	answers    *prometheus.CounterVec
	ok200      prometheus.Counter
	stale      prometheus.Counter
	parts      [numParts]map[string]prometheus.Counter
	lag        prometheus.Gauge
	notes      prometheus.Counter
	resyncs    prometheus.Counter
	liveErrors *prometheus.CounterVec
}

// Open builds the service and binds its listener.
func Open(cfg Config, log *slog.Logger, tel httpapi.Telemetry) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src, err := sourceclient.New(cfg.SourceURL)
	if err != nil {
		return nil, fmt.Errorf("realtime: %w", err)
	}
	if tel.Registry == nil {
		tel.Registry = prometheus.NewRegistry()
	}
	release, err := resilience.ConfigureService(Commands(), cfg.Commands)
	if err != nil {
		return nil, fmt.Errorf("realtime: %w", err)
	}
	s := &Service{cfg: cfg, log: log, tel: tel, src: src, release: release,
		badLog: rate.Sometimes{First: 5, Interval: time.Second}, recordLog: lograte.New(5, time.Second), now: time.Now}
	if s.cache, err = lru.New[key, *entry](cfg.CacheSize); err != nil {
		release()
		return nil, fmt.Errorf("realtime: %w", err)
	}
	s.announced, _ = lru.New[key, int64](65_536)
	if cfg.Redis != "" {
		if s.store, err = redisstore.Open(cfg.Redis); err != nil {
			release()
			return nil, fmt.Errorf("realtime: %w", err)
		}
		s.lastGoods = resilience.NewCollapser(resilience.CollapserConfig{Name: RedisLookup},
			func(ctx context.Context, ids []int64) (map[int64]map[catalog.Dimension]redisstore.RealtimeValue, error) {
				return resilience.Do(ctx, RedisCommand, func(ctx context.Context) (map[int64]map[catalog.Dimension]redisstore.RealtimeValue, error) {
					return s.store.Realtime(ctx, ids)
				}, nil)
			})
	}
	s.metrics()
	s.bg, s.stop = context.WithCancel(context.Background())
	if s.ln, err = httpapi.Listen(cfg.Listen); err != nil {
		s.closeStore()
		release()
		return nil, err
	}
	return s, nil
}

func (s *Service) metrics() {
	s.answers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_realtime_answers_total", Help: "Realtime API answers by HTTP status.",
	}, []string{"code"})
	s.stale = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "detailpage_realtime_stale_objects_total", Help: "Product objects answered with stale: true (a part from a fallback or missing).",
	})
	parts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_realtime_parts_total", Help: "Parts of answered products by the level that served them (lru, live, lastgood, none).",
	}, []string{"part", "level"})
	for p := range numParts {
		s.parts[p] = map[string]prometheus.Counter{}
		for _, l := range []string{levelLRU, levelLive, levelLastGood, levelNone} {
			s.parts[p][l] = parts.WithLabelValues(partNames[p], l)
		}
	}
	s.lag = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "detailpage_realtime_follower_lag_seconds", Help: "Time from the dp:rt entry last applied being written to its being applied.",
	})
	s.notes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "detailpage_realtime_follower_entries_total", Help: "dp:rt stream entries applied to the local cache.",
	})
	s.resyncs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "detailpage_realtime_follower_resyncs_total", Help: "Times the follower lost the stream (error, reconnect) and outdated every local entry.",
	})
	s.liveErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_realtime_live_failures_total", Help: "Live source reads that failed (the parts went to the last good value), by part.",
	}, []string{"part"})
	for _, code := range []string{"200", "400", "404"} {
		s.answers.WithLabelValues(code)
	}
	s.ok200 = s.answers.WithLabelValues("200")
	s.tel.Registry.MustRegister(s.answers, s.stale, parts, s.lag, s.notes, s.resyncs, s.liveErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "detailpage_realtime_cache_entries", Help: "Entries in the local cache (one per product and part)."},
			func() float64 { return float64(s.cache.Len()) }))
}

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done, following the dp:rt stream meanwhile.
func (s *Service) Run(ctx context.Context) error {
	s.Start(ctx)
	return httpapi.Serve(ctx, s.ln, s.Handler(), s.log)
}

// Start runs the background work without serving (Run does both): the
// dp:rt follower, when there is Redis.
func (s *Service) Start(ctx context.Context) {
	if s.store == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(s.bg, cancel) // Close ends it too
	s.background(func() {
		defer cancel()
		s.follow(ctx)
	})
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

// Close stops the follower, releases the listener (if Run did not), the
// Redis client and the commands' configuration.
func (s *Service) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.life.Lock()
		s.closed = true
		s.life.Unlock()
		s.stop()
		s.wg.Wait()
		if cerr := s.ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("realtime: close: %w", cerr)
		}
		if cerr := s.closeStore(); cerr != nil && err == nil {
			err = cerr
		}
		s.src.CloseIdleConnections()
		s.release()
	})
	return err
}

func (s *Service) closeStore() error {
	if s.store == nil {
		return nil
	}
	if err := s.store.Close(); err != nil {
		return fmt.Errorf("realtime: close redis: %w", err)
	}
	return nil
}

// Purge drops every local entry.
func (s *Service) Purge() { s.cache.Purge() }

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	e := httpapi.NewEngine(s.log, s.tel, func(context.Context) error { return nil })
	// /api/realtime/ is a bad id, not a redirect to the batch endpoint.
	e.RedirectTrailingSlash = false
	e.Use(noStore) // every answer, a 404 of an unknown path too
	api := e.Group("/api")
	api.GET("/realtime", s.getMany)
	api.GET("/realtime/", func(c *gin.Context) { s.bad(c, invalid("id: empty (want /api/realtime/<id>)")) })
	api.GET("/realtime/:id", s.getOne)
	api.GET("/regions", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"regions": regionTable()}) })
	admin := e.Group("/_admin", httpapi.RequireToken(s.cfg.AdminToken))
	admin.DELETE("/cache", func(c *gin.Context) {
		n := s.cache.Len()
		s.Purge()
		s.log.Info("realtime: local cache purged", "entries", n)
		c.JSON(http.StatusOK, gin.H{"purged": n})
	})
	return e
}

// noStore marks every answer, errors included, as not cacheable.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

// bad answers a 400 with the reason, logging (rate-limited) the input.
func (s *Service) bad(c *gin.Context, err error) {
	s.answers.WithLabelValues("400").Inc()
	s.badLog.Do(func() {
		s.log.Warn("realtime: bad request", "remote", c.ClientIP(), "query", truncate(c.Request.URL.RequestURI(), 200), "error", err)
	})
	httpapi.Error(c, err)
}

func invalid(format string, args ...any) error {
	return &catalog.ValidationError{Reason: fmt.Sprintf(format, args...)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// parseRegion reads the optional region parameter.
func parseRegion(c *gin.Context) (*Region, error) {
	code, ok := c.GetQuery("region")
	if !ok {
		return DefaultRegion, nil
	}
	r, ok := regionByCode(code)
	if !ok {
		return nil, invalid("region %q: want one of %s", truncate(code, 40), RegionCodes())
	}
	return r, nil
}

// parseIDs parses "1,2,3": 1 to MaxIDs ids, duplicates answered once, in
// the order first named.
func parseIDs(q string) ([]int64, error) {
	if strings.TrimSpace(q) == "" {
		return nil, invalid("ids: empty list (want 1 to %d ids)", MaxIDs)
	}
	n := strings.Count(q, ",") + 1
	if n > MaxIDs {
		return nil, invalid("ids: %d ids, at most %d", n, MaxIDs)
	}
	ids := make([]int64, 0, n)
	for part := range strings.SplitSeq(q, ",") {
		id, err := catalog.ParseID(strings.TrimSpace(part))
		if err != nil {
			return nil, invalid("ids: %v", err)
		}
		dup := false
		for _, x := range ids {
			if x == id {
				dup = true
				break
			}
		}
		if !dup {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

var errNoSuchProduct = errors.New("no such product")

func (s *Service) getOne(c *gin.Context) {
	id, err := catalog.ParseID(c.Param("id"))
	if err != nil {
		s.bad(c, err)
		return
	}
	r, err := parseRegion(c)
	if err != nil {
		s.bad(c, err)
		return
	}
	res := s.Resolve(c.Request.Context(), []int64{id})
	if res[0].Missing {
		s.answers.WithLabelValues("404").Inc()
		httpapi.Error(c, fmt.Errorf("product %d: %w: %w", id, errNoSuchProduct, catalog.ErrNotFound))
		return
	}
	o := buildObject(id, &res[0].parts, r, s.now())
	s.count(&o)
	bp := bufPool.Get().(*[]byte)
	b := appendObject((*bp)[:0], &o)
	s.ok(c, b)
	*bp = b
	bufPool.Put(bp)
}

const contentJSON = "application/json; charset=utf-8"

func (s *Service) ok(c *gin.Context, body []byte) {
	s.ok200.Inc()
	c.Data(http.StatusOK, contentJSON, body)
}

// ManyAnswer is the answer of GET /api/realtime?ids= (for clients and
// tests; the service writes it with appendObject).
type ManyAnswer struct {
	Items   []Object `json:"items"`
	Missing []int64  `json:"missing"`
}

func (s *Service) getMany(c *gin.Context) {
	q, ok := c.GetQuery("ids")
	if !ok {
		s.bad(c, invalid("ids: required (GET /api/realtime?ids=1,2,3 or /api/realtime/<id>)"))
		return
	}
	ids, err := parseIDs(q)
	if err != nil {
		s.bad(c, err)
		return
	}
	r, err := parseRegion(c)
	if err != nil {
		s.bad(c, err)
		return
	}
	res := s.Resolve(c.Request.Context(), ids)
	now := s.now()
	bp := bufPool.Get().(*[]byte)
	b := append((*bp)[:0], `{"items":[`...)
	first := true
	for i, id := range ids {
		if res[i].Missing {
			continue
		}
		o := buildObject(id, &res[i].parts, r, now)
		s.count(&o)
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendObject(b, &o)
	}
	b = append(b, `],"missing":[`...)
	first = true
	for i, id := range ids {
		if res[i].Missing {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = strconv.AppendInt(b, id, 10)
		}
	}
	b = append(b, `]}`...)
	s.ok(c, b)
	*bp = b
	bufPool.Put(bp)
}

func (s *Service) count(o *Object) {
	if o.Stale {
		s.stale.Inc()
	}
}
