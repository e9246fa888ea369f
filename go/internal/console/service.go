package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/lograte"
)

//go:embed web
var webFS embed.FS

// Service is a running console.
type Service struct {
	cfg  Config
	log  *slog.Logger
	tel  httpapi.Telemetry
	ln   net.Listener
	now  func() time.Time
	auth *auth
	agg  *aggregator
	fol  *follower
	col  *collector

	turbine  *hub // /turbine.stream clients
	overview *hub // /api/stream clients
	latest   atomic.Pointer[Snapshot]
	done     chan struct{} // closed when Run ends: streams end
	doneOnce sync.Once

	encodeLog *lograte.Limiter // a snapshot that cannot be encoded
}

// Open builds the console and binds its listener.
func Open(cfg Config, log *slog.Logger, tel httpapi.Telemetry) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if tel.Registry == nil {
		tel.Registry = prometheus.NewRegistry()
	}
	s := &Service{cfg: cfg, log: log, tel: tel, now: now, turbine: newHub(), overview: newHub(), done: make(chan struct{}),
		encodeLog: lograte.New(1, time.Minute)}
	s.auth = newAuth(cfg.AdminToken, cfg.SessionIdle, now, log)
	// An event older than three of hystrix-go's 1 s ticks is from a
	// frozen source: out of the aggregate.
	s.agg = newAggregator(now, 3*time.Second)
	s.fol = newFollower(s.agg, log, cfg.Timeout)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 8
	s.col = &collector{cfg: cfg, client: &http.Client{Transport: tr}, agg: s.agg, fol: s.fol, now: now}
	tel.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "detailpage_console_sessions", Help: "Live console sessions."},
		func() float64 { return float64(s.auth.sessions.len()) }))
	for kind, h := range map[string]*hub{"turbine": s.turbine, "overview": s.overview} {
		labels := prometheus.Labels{"stream": kind}
		tel.Registry.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "detailpage_console_stream_clients", Help: "Open streams by kind (turbine: /turbine.stream, overview: /api/stream).", ConstLabels: labels},
				func() float64 { return float64(h.count()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "detailpage_console_stream_dropped_total", Help: "Frames a slow stream client did not take in time and lost, by kind.", ConstLabels: labels},
				func() float64 { return float64(h.droppedFrames()) }),
		)
	}
	var err error
	if s.ln, err = httpapi.Listen(cfg.Listen); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is the address the console listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Run follows every service's stream, rebuilds the snapshot every Poll
// and serves until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	bg, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, t := range s.cfg.Services {
		wg.Go(func() { s.fol.run(bg, t) })
	}
	wg.Go(func() { s.loop(bg) })
	wg.Go(func() { s.turbineLoop(bg) })
	// Streams end as soon as the stop begins, so the graceful shutdown
	// does not wait out its grace period for them.
	stopStreams := context.AfterFunc(ctx, func() { s.doneOnce.Do(func() { close(s.done) }) })
	defer stopStreams()
	err := httpapi.Serve(ctx, s.ln, s.Handler(), s.log)
	s.doneOnce.Do(func() { close(s.done) })
	cancel()
	wg.Wait()
	return err
}

// Close releases the listener if Run did not.
func (s *Service) Close() error {
	s.doneOnce.Do(func() { close(s.done) })
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("console: close: %w", err)
	}
	return nil
}

// turbineEvery is the period of /turbine.stream's frames: hystrix-go's own.
const turbineEvery = time.Second

// turbineLoop publishes the aggregated Hystrix events every second, on
// its own: a slow node delays the snapshot, never the stream.
func (s *Service) turbineLoop(ctx context.Context) {
	tick := time.NewTicker(turbineEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if s.turbine.count() > 0 {
				s.turbine.publish(turbineFrame(s.agg.instances()))
			}
		}
	}
}

// loop rebuilds the snapshot and pushes it to /api/stream every Poll.
func (s *Service) loop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	s.refresh(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			s.auth.sessions.sweep()
		case <-tick.C:
			s.refresh(ctx)
		}
	}
}

func (s *Service) refresh(ctx context.Context) {
	snap := s.col.snapshot(ctx)
	s.latest.Store(snap)
	if s.overview.count() > 0 {
		s.overview.publish(s.overviewFrame(snap))
	}
}

// encodeSnapshot is snap as JSON. The snapshot skips what JSON cannot
// carry (NaN, ±Inf); should encoding fail all the same, it is logged
// (at most once a minute) and the caller answers an error.
func (s *Service) encodeSnapshot(snap *Snapshot) ([]byte, error) {
	data, err := json.Marshal(snap)
	if err != nil {
		err = fmt.Errorf("console: encode snapshot: %w", err)
		if n, ok := s.encodeLog.Allow(); ok {
			s.log.Error("console: snapshot not encodable", "error", err, "suppressed", n)
		}
		return nil, err
	}
	return data, nil
}

func (s *Service) overviewFrame(snap *Snapshot) []byte {
	data, err := s.encodeSnapshot(snap)
	if err != nil {
		return []byte(": snapshot not encodable\n\n")
	}
	var b bytes.Buffer
	b.Grow(len(data) + 32)
	b.WriteString("event: overview\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	return b.Bytes()
}

// Snapshot returns the latest snapshot, building one if there is none yet.
func (s *Service) Snapshot(ctx context.Context) *Snapshot {
	if snap := s.latest.Load(); snap != nil {
		return snap
	}
	snap := s.col.snapshot(ctx)
	s.latest.CompareAndSwap(nil, snap)
	return snap
}

// pagePolicy is the Content-Security-Policy of the page and its assets:
// only the console's own origin (and the empty data: favicon that keeps
// the browser from asking for /favicon.ico); nothing inline. The page is
// built for it (page_browser_test.go serves the page under it).
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Handler returns the console's HTTP API and page.
func (s *Service) Handler() http.Handler {
	e := httpapi.NewEngine(s.log, s.tel, func(context.Context) error { return nil })
	e.Use(func(c *gin.Context) {
		c.Header("X-Content-Type-Options", "nosniff")
		c.Header("X-Frame-Options", "DENY") // no clickjacking of the controls
		c.Header("Referrer-Policy", "no-referrer")
	})
	web, _ := fs.Sub(webFS, "web") // the embedded directory exists: cannot fail
	static := http.FileServerFS(web)
	index, err := fs.ReadFile(web, "index.html")
	if err != nil {
		index = []byte("<!doctype html><title>detailpage console</title><p>the page is missing from this build")
	}
	page := func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		c.Header("Content-Security-Policy", pagePolicy)
		c.Data(http.StatusOK, "text/html; charset=utf-8", index)
	}
	e.GET("/", page)
	e.HEAD("/", page)
	e.GET("/assets/*file", func(c *gin.Context) {
		c.Header("Cache-Control", "no-cache")
		c.Header("Content-Security-Policy", pagePolicy)
		file := c.Param("file")
		// Files only: http.FileServer would list a directory.
		if strings.HasSuffix(file, "/") {
			c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "not found"})
			return
		}
		name := strings.TrimPrefix(path.Clean(file), "/")
		if name == "" {
			name = "." // the directory itself
		}
		if fi, err := fs.Stat(web, name); err == nil && fi.IsDir() {
			c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "not found"})
			return
		}
		r := c.Request.Clone(c.Request.Context())
		r.URL.Path = file
		static.ServeHTTP(c.Writer, r)
	})
	e.POST("/login", s.auth.login)
	req := s.auth.require
	e.POST("/logout", req, s.auth.logout)
	api := e.Group("/api", req)
	api.GET("/session", s.auth.session)
	api.GET("/overview", func(c *gin.Context) {
		data, err := s.encodeSnapshot(s.Snapshot(c.Request.Context()))
		if err != nil {
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "snapshot not encodable"})
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", data)
	})
	api.GET("/stream", func(c *gin.Context) {
		serveSSE(c.Writer, c.Request, s.done, s.overview, s.overviewFrame(s.Snapshot(c.Request.Context())), s.streamAlive(c))
	})
	apps := func() []Target { return s.cfg.Apps }
	hots := func() []Target { return s.cfg.Hot }
	api.POST("/degrade", control[degradeRequest](s, apps, "/_admin/degrade"))
	api.POST("/hot", control[hotRequest](s, hots, "/_admin/hot"))
	api.POST("/purge", control[purgeRequest](s, apps, "/_admin/purge"))
	e.GET("/turbine.stream", req, func(c *gin.Context) {
		serveSSE(c.Writer, c.Request, s.done, s.turbine, nil, s.streamAlive(c))
	})
	return e
}

// streamAlive is what an open stream checks before each frame: a stream
// opened with a session ends when the session does (logout, idle); one
// opened with the bearer token has nothing to check (nil).
func (s *Service) streamAlive(c *gin.Context) func() bool {
	id := c.GetString(keySession)
	if id == "" {
		return nil
	}
	return func() bool { return s.auth.sessions.alive(id) }
}
