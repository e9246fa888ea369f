// Package direct is the direct-data service (数据直连服务): where the app
// tier goes when Redis fails it, and where the dist tier sends pages when
// no app node answers. Lookup order: an in-process size-bounded cache →
// Redis main → a rebuild from the source services (written back to Redis
// main with versioned compare-and-set, so racing the sync service is
// harmless). A burst of requests for one id rebuilds it once.
package direct

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/page"
	"github.com/detailpage/detailpage/go/internal/pagedoc"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/server"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Config is the direct-data service's configuration.
type Config struct {
	Listen       string
	Redis        string
	SourceURL    string
	TemplatesDir string
	CacheSize    int           // entries in the local cache
	CacheTTL     time.Duration // local TTL of a found document (jittered ±20%)
	NegativeTTL  time.Duration // local TTL of a "does not exist" answer
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
	}
	return nil
}

// Service is a running direct-data service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	store    *redisstore.Store
	asm      *pagedoc.Assembler
	renderer *page.Renderer
	ln       net.Listener
	reg      *prometheus.Registry
	items    *expirable.LRU[int64, []byte] // nil value: does not exist
	shops    *expirable.LRU[int64, []byte]
	flight   singleflight.Group
	served   *prometheus.CounterVec
}

// Open builds the service and binds its listener.
func Open(cfg Config, log *slog.Logger) (*Service, error) {
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
	store, err := redisstore.Open(cfg.Redis)
	if err != nil {
		return nil, err
	}
	resilience.Configure(resilience.Command{
		Name: "redis.main.read", Timeout: 200 * time.Millisecond, MaxConcurrent: 256,
		RequestVolumeThreshold: 20, ErrorPercentThreshold: 50, SleepWindow: time.Second,
	})
	s := &Service{
		cfg: cfg, log: log, store: store, asm: pagedoc.New(src, store), renderer: renderer,
		reg: server.NewRegistry(),
		// The LRU's own TTL is the upper bound; each entry's jittered
		// expiry is checked on read (see cached).
		items: expirable.NewLRU[int64, []byte](cfg.CacheSize, nil, cfg.CacheTTL*2),
		shops: expirable.NewLRU[int64, []byte](cfg.CacheSize/10+1, nil, cfg.CacheTTL*2),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detailpage_direct_lookups_total", Help: "Page document lookups by the level that answered.",
		}, []string{"level"}),
	}
	s.reg.MustRegister(s.served)
	if s.ln, err = server.Listen(cfg.Listen); err != nil {
		store.Close()
		return nil, err
	}
	return s, nil
}

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	return server.Serve(ctx, s.ln, s.Handler(), s.log)
}

// Close releases the Redis client.
func (s *Service) Close() error { return s.store.Close() }

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	e := server.NewEngine(s.log, s.reg, func(context.Context) error { return nil })
	e.GET("/api/item/:id", s.getItemJSON)
	e.GET("/item/:file", s.getItemHTML)
	return e
}

// envelope stamps a cached value with its own jittered expiry, so entries
// cached together do not expire together.
func (s *Service) envelope(v []byte, ttl time.Duration) []byte {
	jitter := time.Duration(float64(ttl) * (0.8 + 0.4*rand.Float64()))
	exp := time.Now().Add(jitter).UnixMilli()
	return append(strconv.AppendInt(nil, exp, 10), append([]byte{'|'}, v...)...)
}

func cached(c *expirable.LRU[int64, []byte], id int64) (value []byte, ok bool) {
	raw, ok := c.Get(id)
	if !ok {
		return nil, false
	}
	expStr, v, _ := bytes.Cut(raw, []byte{'|'})
	exp, _ := strconv.ParseInt(string(expStr), 10, 64)
	if time.Now().UnixMilli() > exp {
		c.Remove(id)
		return nil, false
	}
	return v, true
}

// errMissing is a lookup's answer for an id that does not exist.
var errMissing = fmt.Errorf("product: %w", catalog.ErrNotFound)

// Item returns the page document of id and the level that answered.
func (s *Service) Item(ctx context.Context, id int64) ([]byte, string, error) {
	if v, ok := cached(s.items, id); ok {
		s.served.WithLabelValues("local").Inc()
		if len(v) == 0 {
			return nil, "local", errMissing
		}
		return v, "local", nil
	}
	v, err, _ := s.flight.Do(strconv.FormatInt(id, 10), func() (any, error) {
		doc, level, err := s.lookup(ctx, id)
		if err == nil {
			s.items.Add(id, s.envelope(doc, s.cfg.CacheTTL))
		} else if errors.Is(err, catalog.ErrNotFound) {
			s.items.Add(id, s.envelope(nil, s.cfg.NegativeTTL))
		}
		s.served.WithLabelValues(level).Inc()
		return lookupResult{doc, level}, err
	})
	r, _ := v.(lookupResult)
	return r.doc, r.level, err
}

type lookupResult struct {
	doc   []byte
	level string
}

// lookup reads Redis main, then rebuilds from the source services.
func (s *Service) lookup(ctx context.Context, id int64) ([]byte, string, error) {
	doc, err := resilience.Do(ctx, "redis.main.read", func(ctx context.Context) ([]byte, error) {
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
	res, err := s.asm.Products(ctx, []int64{id})
	if err != nil {
		// The rebuild read the source but Redis refused the write: serve it anyway.
		if res.Docs != nil {
			return res.Docs[id], "source", nil
		}
		return nil, "source", fmt.Errorf("%w: %v", server.ErrUnavailable, err)
	}
	if d, ok := res.Docs[id]; ok {
		return d, "source", nil
	}
	return nil, "source", errMissing
}

func isMissing(doc []byte) bool {
	return bytes.HasPrefix(doc, catalog.MissingJSON[:len(catalog.MissingJSON)-1])
}

// Shop returns the shop document (nil when unavailable: the page copes).
func (s *Service) Shop(ctx context.Context, id int64) []byte {
	if v, ok := cached(s.shops, id); ok {
		return v
	}
	v, err, _ := s.flight.Do("s"+strconv.FormatInt(id, 10), func() (any, error) {
		doc, err := resilience.Do(ctx, "redis.main.read", func(ctx context.Context) ([]byte, error) {
			return s.store.Get(ctx, redisstore.ShopKey(id))
		}, func(context.Context, error) ([]byte, error) { return nil, nil })
		if err == nil && doc == nil {
			res, rerr := s.asm.Shops(ctx, []int64{id})
			doc, err = res.Docs[id], rerr
		}
		if err == nil && doc != nil {
			s.shops.Add(id, s.envelope(doc, s.cfg.CacheTTL))
		}
		return doc, err
	})
	if err != nil {
		s.log.Warn("shop unavailable; page rendered without it", "shop", id, "error", err)
		return nil
	}
	b, _ := v.([]byte)
	return b
}

func (s *Service) getItemJSON(c *gin.Context) {
	id, err := catalog.ParseID(c.Param("id"))
	if err != nil {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		return
	}
	doc, level, err := s.Item(c.Request.Context(), id)
	c.Header("X-Cache", level)
	if err != nil {
		server.Error(c, s.log, err)
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
		c.Data(http.StatusNotFound, "text/html; charset=utf-8", s.renderer.NotFound())
		return
	}
	doc, level, err := s.Item(c.Request.Context(), id)
	c.Header("X-Cache", "direct")
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		c.Data(http.StatusNotFound, "text/html; charset=utf-8", s.renderer.NotFound())
		return
	case err != nil:
		s.log.Warn("page unavailable", "id", id, "level", level, "error", err)
		c.Header("Retry-After", "2")
		c.Data(http.StatusServiceUnavailable, "text/html; charset=utf-8", s.renderer.Unavailable())
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
		s.log.Error("render failed", "id", id, "error", err)
		c.Data(http.StatusServiceUnavailable, "text/html; charset=utf-8", s.renderer.Unavailable())
		return
	}
	c.Data(http.StatusOK, "text/html; charset=utf-8", buf.Bytes())
}
