// Package source is the source-of-truth side of detailpage: the product,
// shop, description, spec, price, stock and recommendation services over
// one SQLite catalog, their HTTP API (single and batch lookups, edits),
// fault injection for rehearsing failures, request statistics, and the
// outbox relay that publishes every change to Kafka.
package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/microcosm-cc/bluemonday"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/artwork"
	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/seed"
	"github.com/detailpage/detailpage/go/internal/sqlite"
)

// Config is the source service's configuration.
type Config struct {
	Listen       string   // host:port of the HTTP API
	DBPath       string   // SQLite file
	Brokers      []string // Kafka bootstrap brokers for the outbox relay
	AdminToken   string
	SeedProducts int // catalog size loaded on first start
	SeedShops    int
	// Redis is the Open spec (redisstore.Open) of the Redis main that
	// committed price and stock edits are written to at once (the fast
	// path, fastpath.go); empty: no fast path.
	Redis string
	// Commands overrides settings of the resilience commands the service
	// runs (Commands); zero fields keep the default.
	Commands []resilience.Command
}

// Commands returns the resilience commands the source service runs, with
// their default settings.
func Commands() []resilience.Command { return []resilience.Command{relayCommand()} }

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("source: listen address required")
	case c.DBPath == "":
		return errors.New("source: database path required")
	case len(c.Brokers) == 0:
		return errors.New("source: kafka brokers required")
	case c.AdminToken == "":
		return errors.New("source: admin token required (DETAILPAGE_ADMIN_TOKEN)")
	case c.SeedProducts < 1 || c.SeedProducts > 10_000_000:
		return errors.New("source: seed products: want 1 to 10000000")
	case c.SeedShops < 1 || c.SeedShops > c.SeedProducts:
		return errors.New("source: seed shops: want 1 to the number of products")
	}
	return nil
}

// Service is a running source service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	db       *sqlite.DB
	ln       net.Listener
	relay    *Relay
	faults   faults
	stats    map[string]*serviceStats
	sanitize *bluemonday.Policy
	tel      httpapi.Telemetry
	reg      *prometheus.Registry // tel.Registry
	release  func()               // of the commands' configuration
	rt       *redisstore.Store    // the fast path's Redis; nil: off
	fast     *fastPath
	once     sync.Once
}

// Open opens the database, loads the seed catalog on first start and
// binds the listener.
func Open(ctx context.Context, cfg Config, log *slog.Logger, tel httpapi.Telemetry) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	release, err := resilience.ConfigureService(Commands(), cfg.Commands)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	db, err := sqlite.Open(ctx, cfg.DBPath)
	if err != nil {
		release()
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, db: db, stats: map[string]*serviceStats{}, sanitize: bluemonday.UGCPolicy(), tel: tel, reg: tel.Registry, release: release}
	for _, k := range catalog.Kinds {
		s.stats[k.Name] = &serviceStats{}
	}
	if err := s.seedOnce(ctx); err != nil {
		db.Close()
		release()
		return nil, err
	}
	s.relay = NewRelay(db, cfg.Brokers, log)
	s.reg.MustRegister(s.relay.metrics()...)
	if cfg.Redis != "" {
		// Connects lazily: a Redis that is down at start only fails the
		// fast-path writes, never the source.
		if s.rt, err = redisstore.Open(cfg.Redis); err != nil {
			db.Close()
			release()
			return nil, fmt.Errorf("source: fast path: %w", err)
		}
		s.fast = newFastPath(s.rt, log, s.reg)
	}
	if s.ln, err = httpapi.Listen(cfg.Listen); err != nil {
		if s.rt != nil {
			s.rt.Close()
		}
		db.Close()
		release()
		return nil, err
	}
	return s, nil
}

// Addr is the address the API listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

func (s *Service) seedOnce(ctx context.Context) error {
	done, err := s.db.Seeded(ctx)
	if err != nil || done {
		return err
	}
	n, shops := int64(s.cfg.SeedProducts), int64(s.cfg.SeedShops)
	s.log.Info("seeding catalog (first start)", "products", n, "shops", shops)
	shopList := make([]catalog.Shop, 0, shops)
	for id := int64(1); id <= shops; id++ {
		shopList = append(shopList, seed.Shop(id))
	}
	products := func(yield func(sqlite.ProductRecords) bool) {
		for id := int64(1); id <= n; id++ {
			b := seed.Item(id, shops, n)
			b.Desc.HTML = s.sanitize.Sanitize(b.Desc.HTML)
			if !yield(b.Records()) {
				return
			}
		}
	}
	err = s.db.BulkLoad(ctx, shopList, products, func(done int) {
		s.log.Info("seeding catalog", "done", done, "of", n)
	})
	if err != nil {
		return err
	}
	s.log.Info("catalog seeded; a full refresh is queued for the sync service", "products", n, "shops", shops)
	return nil
}

// Run serves the API and runs the outbox relay until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.relay.Run(ctx) })
	err := httpapi.Serve(ctx, s.ln, s.Handler(), s.log)
	cancel()
	wg.Wait()
	return err
}

// Close releases the listener (if Run never took it) and the database.
func (s *Service) Close() error {
	var err error
	s.once.Do(func() {
		s.ln.Close() // already closed by Run's server: the error is expected
		err = s.db.Close()
		if s.rt != nil {
			s.rt.Close()
		}
		s.release()
	})
	return err
}

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	e := httpapi.NewEngine(s.log, s.tel, func(ctx context.Context) error {
		_, err := s.db.Count(ctx, catalog.KindShop)
		return err
	})
	api := e.Group("/api")
	api.GET("/products/ids", s.productIDs)
	api.GET("/products/versions", s.productVersions)
	for _, k := range catalog.Kinds {
		api.GET("/"+k.Segment, s.batch(k))
		api.GET("/"+k.Segment+"/:id", s.get(k))
		api.PUT("/"+k.Segment+"/:id", s.put(k))
	}
	admin := e.Group("/_admin", httpapi.RequireToken(s.cfg.AdminToken))
	admin.GET("/faults", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"faults": s.faults.list()}) })
	admin.POST("/faults", s.postFault)
	admin.DELETE("/faults", func(c *gin.Context) {
		s.faults.clear()
		s.log.Info("faults cleared")
		c.JSON(http.StatusOK, gin.H{"faults": []Fault{}})
	})
	admin.GET("/stats", s.getStats)
	admin.DELETE("/stats", func(c *gin.Context) {
		for _, st := range s.stats {
			st.reset()
		}
		s.getStats(c)
	})
	admin.POST("/refresh", s.postRefresh)
	img := gin.WrapH(artwork.Handler())
	e.GET("/img/*path", img)
	e.HEAD("/img/*path", img)
	return e
}

// begin counts a request to service and applies its injected fault; it
// returns a release func, or writes the failure and returns nil.
func (s *Service) begin(c *gin.Context, service string) func() {
	st := s.stats[service]
	st.Requests.Add(1)
	st.enter()
	if err := s.faults.apply(c.Request.Context(), service); err != nil {
		st.leave()
		st.Failed.Add(1)
		httpapi.Error(c, err)
		return nil
	}
	return st.leave
}

func (s *Service) get(kind *catalog.Kind) gin.HandlerFunc {
	service := kind.Name
	return func(c *gin.Context) {
		id, err := catalog.ParseID(c.Param("id"))
		if err != nil {
			httpapi.Error(c, err)
			return
		}
		release := s.begin(c, service)
		if release == nil {
			return
		}
		defer release()
		s.stats[service].Lookups.Add(1)
		doc, err := s.db.Get(c.Request.Context(), kind, id)
		if err != nil {
			if errors.Is(err, catalog.ErrNotFound) {
				s.stats[service].Missing.Add(1)
			}
			httpapi.Error(c, fmt.Errorf("%s %d: %w", service, id, err))
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", doc)
	}
}

// A batch lookup answers {"items":[...],"missing":[...]}: the records found,
// in the order asked, and the ids that do not exist. Callers match by id.

func (s *Service) batch(kind *catalog.Kind) gin.HandlerFunc {
	service := kind.Name
	return func(c *gin.Context) {
		ids, err := catalog.ParseIDList(c.Query("ids"))
		if err != nil {
			httpapi.Error(c, err)
			return
		}
		release := s.begin(c, service)
		if release == nil {
			return
		}
		defer release()
		docs, err := s.db.GetMany(c.Request.Context(), kind, ids)
		if err != nil {
			httpapi.Error(c, err)
			return
		}
		// Written by hand: the stored documents are valid JSON already, and
		// re-encoding them was most of this endpoint's CPU.
		size := 32
		for _, d := range docs {
			size += len(d) + 1
		}
		out := append(make([]byte, 0, size), `{"items":[`...)
		missing := 0
		first := true
		for _, id := range ids {
			if d, ok := docs[id]; ok {
				if !first {
					out = append(out, ',')
				}
				out, first = append(out, d...), false
			}
		}
		out = append(out, `],"missing":[`...)
		for _, id := range ids {
			if _, ok := docs[id]; !ok {
				if missing > 0 {
					out = append(out, ',')
				}
				out = strconv.AppendInt(out, id, 10)
				missing++
			}
		}
		out = append(out, "]}"...)
		st := s.stats[service]
		st.Lookups.Add(int64(len(ids)))
		st.Missing.Add(int64(missing))
		c.Data(http.StatusOK, "application/json; charset=utf-8", out)
	}
}

// maxIDPage bounds one page of the product id listing.
const maxIDPage = 100_000

// productIDs lists product ids in pages: GET /api/products/ids?after=0&limit=10000
// answers {"ids":[...],"next":N}; next is 0 on the last page. The
// direct-data service builds its Bloom filter of existing ids from it.
func (s *Service) productIDs(c *gin.Context) {
	after, err := strconv.ParseInt(c.DefaultQuery("after", "0"), 10, 64)
	if err != nil || after < 0 {
		httpapi.Error(c, badInput("after: want a non-negative id"))
		return
	}
	limit, err := strconv.Atoi(c.DefaultQuery("limit", "10000"))
	if err != nil || limit < 1 || limit > maxIDPage {
		httpapi.Error(c, badInput("limit: want 1 to %d", maxIDPage))
		return
	}
	ids, err := s.db.ProductIDs(c.Request.Context(), after, limit)
	if err != nil {
		httpapi.Error(c, err)
		return
	}
	next := int64(0)
	if len(ids) == limit {
		next = ids[len(ids)-1]
	}
	c.JSON(http.StatusOK, gin.H{"ids": ids, "next": next})
}

// productVersions answers GET /api/products/versions?ids=1,2,3 (at most
// catalog.MaxBatch ids) with the version of each dimension of each product
// that exists, read from the version columns without the documents:
//
//	{"dims":["base","desc",...],"items":[[1,v_base,v_desc,...],...],"missing":[3]}
//
// 0 stands for a dimension the product has none of. The sync service
// compares them with what Redis holds and skips the products of a bulk
// refresh that did not change (docs/sync.md). It goes through the product
// service's faults and request count.
func (s *Service) productVersions(c *gin.Context) {
	ids, err := catalog.ParseIDList(c.Query("ids"))
	if err != nil {
		httpapi.Error(c, err)
		return
	}
	release := s.begin(c, catalog.KindProduct.Name)
	if release == nil {
		return
	}
	defer release()
	vs, err := s.db.ProductVersions(c.Request.Context(), ids)
	if err != nil {
		httpapi.Error(c, err)
		return
	}
	out := append(make([]byte, 0, 64+len(ids)*64), `{"dims":[`...)
	for i, d := range catalog.ProductDimensions {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, string(d))
	}
	out = append(out, `],"items":[`...)
	first := true
	for _, id := range ids {
		v, ok := vs[id]
		if !ok {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, '[')
		out = strconv.AppendInt(out, id, 10)
		for _, n := range v {
			out = append(out, ',')
			out = strconv.AppendInt(out, n, 10)
		}
		out = append(out, ']')
	}
	out = append(out, `],"missing":[`...)
	first = true
	for _, id := range ids {
		if _, ok := vs[id]; !ok {
			if !first {
				out = append(out, ',')
			}
			first = false
			out = strconv.AppendInt(out, id, 10)
		}
	}
	out = append(out, "]}"...)
	c.Data(http.StatusOK, "application/json; charset=utf-8", out)
}

// maxEditBody bounds an edit's body: the largest record is a description.
const maxEditBody = 2 << 20

func (s *Service) put(kind *catalog.Kind) gin.HandlerFunc {
	service := kind.Name
	return func(c *gin.Context) {
		id, err := catalog.ParseID(c.Param("id"))
		if err != nil {
			httpapi.Error(c, err)
			return
		}
		rec, err := s.decodeEdit(kind, http.MaxBytesReader(c.Writer, c.Request.Body, maxEditBody))
		if err != nil {
			httpapi.Error(c, err)
			return
		}
		release := s.begin(c, service)
		if release == nil {
			return
		}
		defer release()
		doc, err := s.db.Put(c.Request.Context(), kind, id, rec)
		if err != nil {
			httpapi.Error(c, err)
			return
		}
		s.stats[service].Edits.Add(1)
		s.relay.Notify()
		attrs := []any{"service", service, "id", id}
		if s.fast != nil && hasRealtime(kind) {
			attrs = append(attrs, "fast_path", s.fast.write(c.Request.Context(), id, kind.Dim, doc))
		}
		s.log.Info("edit stored", attrs...)
		c.Data(http.StatusOK, "application/json; charset=utf-8", doc)
	}
}

// decodeEdit parses a full JSON record strictly (unknown fields, trailing
// data and wrong types are errors) and validates it.
func (s *Service) decodeEdit(kind *catalog.Kind, body io.Reader) (catalog.Record, error) {
	rec := kind.New()
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, badInput("body larger than %d bytes", maxEditBody)
		}
		return nil, badInput("body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) { // dec.More misses a stray } or ]
		return nil, badInput("body: trailing data after the JSON object")
	}
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if d, ok := rec.(*catalog.Description); ok {
		d.HTML = s.sanitize.Sanitize(d.HTML)
	}
	return rec, nil
}

func (s *Service) postFault(c *gin.Context) {
	var f Fault
	dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		httpapi.Error(c, badInput("body: %v", err))
		return
	}
	if err := f.validate(); err != nil {
		httpapi.Error(c, err)
		return
	}
	s.faults.set(f)
	s.log.Warn("fault injected", "service", f.Service, "latency_ms", f.LatencyMS, "error_rate", f.ErrorRate, "down", f.Down)
	c.JSON(http.StatusOK, gin.H{"faults": s.faults.list()})
}

// badInput is a request the API refuses: httpapi answers it 400.
func badInput(format string, args ...any) error {
	return &catalog.ValidationError{Reason: fmt.Sprintf(format, args...)}
}

func (s *Service) getStats(c *gin.Context) {
	pending, err := s.db.OutboxPending(c.Request.Context())
	if err != nil {
		httpapi.Error(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"services": s.stats, "outbox_pending": pending})
}

// maxRefreshSkip bounds the products a refresh may leave out.
const maxRefreshSkip = 100_000

// postRefresh queues a refresh of every shop and product. An optional body
// {"skip_products":[7,3]} leaves those products out (a cold Redis main's
// recovery preheats its hottest products itself and refreshes the rest).
func (s *Service) postRefresh(c *gin.Context) {
	skip, err := parseRefresh(http.MaxBytesReader(c.Writer, c.Request.Body, 4<<20))
	if err != nil {
		s.log.Warn("refresh request rejected", "error", err)
		httpapi.Error(c, err)
		return
	}
	n, err := s.db.EnqueueRefreshExcept(c.Request.Context(), skip)
	if err != nil {
		httpapi.Error(c, err)
		return
	}
	s.relay.Notify()
	s.log.Info("full refresh queued", "events", n, "skipped_products", len(skip))
	c.JSON(http.StatusAccepted, gin.H{"queued": n})
}

// parseRefresh reads a refresh request's optional body: the products to
// leave out.
func parseRefresh(body io.Reader) (map[int64]bool, error) {
	var req struct {
		SkipProducts []int64 `json:"skip_products"`
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // no body: everything
		}
		return nil, badInput("refresh body: want {\"skip_products\":[ids]}: %v", err)
	}
	if dec.More() {
		return nil, badInput("refresh body: one JSON object")
	}
	if len(req.SkipProducts) > maxRefreshSkip {
		return nil, badInput("skip_products: at most %d ids", maxRefreshSkip)
	}
	skip := make(map[int64]bool, len(req.SkipProducts))
	for i, id := range req.SkipProducts {
		if id < 1 {
			return nil, badInput("skip_products[%d]: want a positive id", i)
		}
		skip[id] = true
	}
	return skip, nil
}
