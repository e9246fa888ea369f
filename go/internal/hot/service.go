package hot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/lograte"
)

// Config is the hot service's configuration.
type Config struct {
	Listen string
	// State is the file holding pins and long-term statistics ("" = none).
	State      string
	Rule       Rule
	AdminToken string
	// EvalEvery is the period of the evaluation ticker (default 50 ms);
	// SaveEvery that of the state file's writes (default 30 s).
	EvalEvery, SaveEvery time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Defaults returns the configuration with the command's defaults.
func Defaults() Config {
	return Config{Listen: "127.0.0.1:9104", Rule: DefaultRule(), EvalEvery: 50 * time.Millisecond, SaveEvery: 30 * time.Second}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("hot: listen address required")
	case c.EvalEvery <= 0 || c.SaveEvery <= 0:
		return errors.New("hot: evaluation and save periods must be positive")
	}
	return c.Rule.Validate()
}

// Service is a running hot service.
type Service struct {
	cfg   Config
	log   *slog.Logger
	tel   httpapi.Telemetry
	ln    net.Listener
	now   func() time.Time
	det   *Detector
	stats *Stats

	rejectLog *lograte.Limiter
	saveMu    sync.Mutex // one state write at a time

	reports  *prometheus.CounterVec
	requests prometheus.Counter
	events   *prometheus.CounterVec
	evalDur  prometheus.Histogram
}

// Open builds the service, loads its state file and binds its listener.
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
	s := &Service{cfg: cfg, log: log, tel: tel, now: now, stats: NewStats(now()), rejectLog: lograte.New(5, time.Second)}
	det, err := NewDetector(cfg.Rule, now, s.stats, log)
	if err != nil {
		return nil, err
	}
	s.det = det
	s.reports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_hot_reports_total", Help: "Count reports received, by result (accepted, rejected: 400).",
	}, []string{"result"})
	s.requests = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "detailpage_hot_reported_requests_total", Help: "Page requests covered by accepted reports (sum of their counts).",
	})
	s.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_hot_events_total", Help: "Changes of the hot set (entered, left).",
	}, []string{"event"})
	s.evalDur = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "detailpage_hot_evaluation_seconds", Help: "Time one evaluation of the hot rule takes.",
		Buckets: []float64{1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1},
	})
	tel.Registry.MustRegister(s.reports, s.requests, s.events, s.evalDur,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "detailpage_hot_set_size", Help: "Ids in the hot set (pinned included)."},
			func() float64 { return float64(len(s.det.Snapshot().Entries)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "detailpage_hot_ids_tracked", Help: "Ids with a count in the sliding window (bounded by buckets × capacity)."},
			func() float64 { return float64(s.det.Tracked()) }),
	)
	for _, r := range []string{"accepted", "rejected"} {
		s.reports.WithLabelValues(r)
	}
	det.OnEvent(func(e Event) {
		if e.Entered {
			s.events.WithLabelValues("entered").Inc()
			log.Info("hot: id entered", "id", e.ID, "reason", e.Reason)
		} else {
			s.events.WithLabelValues("left").Inc()
			log.Info("hot: id left", "id", e.ID, "reason", e.Reason)
		}
	})
	det.OnEval(func(d time.Duration) { s.evalDur.Observe(d.Seconds()) })
	s.loadState()
	if s.ln, err = httpapi.Listen(cfg.Listen); err != nil {
		return nil, err
	}
	return s, nil
}

// Detector is the service's detector (for tests and benchmarks).
func (s *Service) Detector() *Detector { return s.det }

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

func (s *Service) loadState() {
	if s.cfg.State == "" {
		return
	}
	st, err := ReadState(s.cfg.State)
	switch {
	case errors.Is(err, ErrNoState):
		return
	case err != nil:
		s.log.Warn("hot: state file ignored", "error", err)
		return
	}
	s.stats.load(st.Hour, st.Day, s.now())
	for _, id := range st.Pins {
		s.det.Pin(id)
	}
	s.log.Info("hot: state loaded", "file", s.cfg.State, "saved", st.Saved, "pins", len(st.Pins))
}

// SaveState writes the state file now (a no-op without one).
func (s *Service) SaveState() error {
	if s.cfg.State == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	st := State{Version: stateVersion, Saved: s.now().UTC(), Pins: s.det.Pins()}
	st.Hour, st.Day = s.stats.state()
	return WriteState(s.cfg.State, st)
}

// Run serves until ctx is done, evaluating the rule on a ticker and
// saving the state file periodically and once more at the end.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	bg, cancel := context.WithCancel(ctx)
	wg.Go(func() { s.loop(bg) })
	err := httpapi.Serve(ctx, s.ln, s.Handler(), s.log)
	cancel()
	wg.Wait()
	if serr := s.SaveState(); serr != nil {
		s.log.Error("hot: save state", "error", serr)
	}
	return err
}

func (s *Service) loop(ctx context.Context) {
	eval := time.NewTicker(s.cfg.EvalEvery)
	defer eval.Stop()
	save := time.NewTicker(s.cfg.SaveEvery)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-eval.C:
			s.det.Tick(s.cfg.EvalEvery / 2)
		case <-save.C:
			if err := s.SaveState(); err != nil {
				s.log.Error("hot: save state", "error", err)
			}
		}
	}
}

// Close releases the listener if Run did not.
func (s *Service) Close() error {
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("hot: close: %w", err)
	}
	return nil
}

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	e := httpapi.NewEngine(s.log, s.tel, func(context.Context) error { return nil })
	auth := httpapi.RequireToken(s.cfg.AdminToken)
	e.POST("/api/report", auth, s.postReport)
	e.GET("/api/hot", s.getHot)
	e.GET("/api/hot/ids", s.getHotIDs)
	e.GET("/api/top", s.getTop)
	e.POST("/_admin/hot", auth, s.postAdmin)
	return e
}

func (s *Service) postReport(c *gin.Context) {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, MaxReportBytes)
	rep, err := ParseReport(body)
	if err != nil {
		s.reports.WithLabelValues("rejected").Inc()
		if n, ok := s.rejectLog.Allow(); ok {
			s.log.Warn("hot: report rejected", "remote", c.ClientIP(), "error", err, "suppressed", n)
		}
		httpapi.Error(c, err)
		return
	}
	s.det.Ingest(rep)
	s.reports.WithLabelValues("accepted").Inc()
	var n uint64
	for _, ic := range rep.Counts {
		n += ic.Count
	}
	s.requests.Add(float64(n))
	c.Status(http.StatusNoContent)
}

func (s *Service) getHot(c *gin.Context) {
	snap := s.det.Snapshot()
	entries := snap.Entries
	if entries == nil {
		entries = []Entry{}
	}
	c.JSON(http.StatusOK, gin.H{"hot": entries, "at": snap.At.UTC()})
}

func (s *Service) getHotIDs(c *gin.Context) {
	c.Data(http.StatusOK, "text/plain; charset=utf-8", s.det.Snapshot().IDs)
}

func (s *Service) getTop(c *gin.Context) {
	p := c.DefaultQuery("period", Hour)
	if p != Hour && p != Day {
		httpapi.Error(c, invalid(`top: period must be "hour" or "day"`))
		return
	}
	limit := 100
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > StatsCapacity {
			httpapi.Error(c, invalid("top: limit must be 1..%d", StatsCapacity))
			return
		}
		limit = n
	}
	top, since := s.stats.Top(p, s.now(), limit)
	c.JSON(http.StatusOK, gin.H{"period": p, "since": since.UTC(), "top": top})
}

func (s *Service) postAdmin(c *gin.Context) {
	id, action, err := parseAdmin(http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10))
	if err != nil {
		s.log.Warn("hot: admin request rejected", "remote", c.ClientIP(), "error", err)
		httpapi.Error(c, err)
		return
	}
	var e Entry
	if action == "pin" {
		e = s.det.Pin(id)
	} else {
		e, _ = s.det.Unpin(id)
	}
	s.log.Info("hot: admin "+action, "id", id)
	// On disk before the answer: a pin the operator saw succeed survives
	// a crash right after it.
	if err := s.SaveState(); err != nil {
		s.log.Error("hot: save state", "error", err)
	}
	_, hot := s.snapshotHas(id)
	c.JSON(http.StatusOK, gin.H{"id": id, "action": action, "pinned": e.Pinned, "hot": hot, "entry": e})
}

func (s *Service) snapshotHas(id int64) (Entry, bool) {
	for _, e := range s.det.Snapshot().Entries {
		if e.ID == id {
			return e, true
		}
	}
	return Entry{}, false
}
