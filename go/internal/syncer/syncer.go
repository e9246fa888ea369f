// Package syncer is the sync (cache) service: it consumes change events
// from Kafka, fetches the changed products and shops from the source
// services and writes them to Redis main with versioned compare-and-set.
//
// Edits (catalog.changes.high) and bulk refreshes (catalog.changes.low) have
// their own readers in their own consumer groups, so a refresh backlog never
// queues in front of an edit. A batch that fails goes to catalog.retry with
// its attempt count and the time it is due again (exponential backoff);
// after MaxAttempts it goes to catalog.dlq, as do malformed events, with the
// reason. Offsets are committed only after the Redis writes succeeded or the
// events were handed to the retry topic: delivery is at least once, and
// versioned writes make repeats harmless.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/pagedoc"
	"github.com/detailpage/detailpage/go/internal/preheat"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Config is the sync service's configuration.
type Config struct {
	Listen    string
	Brokers   []string
	Redis     string // Redis main (or Cluster seed addresses), comma-separated
	SourceURL string
	Group     string        // Kafka consumer group name shared by all sync instances
	BatchSize int           // most events handled in one round
	BatchWait time.Duration // how long to gather a batch after its first event (the dedupe window)
	// BatchIdle ends a batch of edits (catalog.changes.high) early: once
	// the reader has caught up with the topic and no event came for this
	// long (fetchBatch). 0: edits gather for BatchWait like refreshes.
	BatchIdle   time.Duration
	MaxAttempts int           // tries before an event goes to the DLQ
	RetryBase   time.Duration // first retry delay; doubles each attempt
	RetryMax    time.Duration // longest retry delay
	Pipeline    int           // batches of one topic in hand at once
	// ColdCheck is how often Redis main is checked for being cold (cold.go);
	// 0 turns the check and the recovery off.
	ColdCheck  time.Duration
	HotURLs    []string // hot services' base URLs: the recovery's top list (none: catalog order)
	AdminToken string   // the source's admin API (queue a full refresh, outbox stats)
	// Commands overrides settings of the resilience commands the service
	// runs (Commands); zero fields keep the default.
	Commands []resilience.Command
}

// Commands returns the resilience commands the sync service runs, with
// their default settings: its own, the page builder's, the source
// client's and the preheat's (a cold main's recovery, cold.go).
func Commands() []resilience.Command {
	kp := resilience.Defaults(CmdKafkaProduce)
	kp.Timeout = 10 * time.Second // the writer's own retries against a restarting broker
	cmds := append([]resilience.Command{kp}, pagedoc.Commands()...)
	cmds = append(cmds, sourceclient.Commands()...)
	return append(cmds, preheat.Commands()...)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("sync: listen address required")
	case len(c.Brokers) == 0:
		return errors.New("sync: kafka brokers required")
	case c.Redis == "":
		return errors.New("sync: redis address required")
	case c.SourceURL == "":
		return errors.New("sync: source URL required")
	case c.Group == "":
		return errors.New("sync: consumer group required")
	case c.BatchSize < 1 || c.BatchSize > 10_000:
		return errors.New("sync: batch size: want 1 to 10000")
	case c.BatchWait <= 0 || c.BatchWait > 10*time.Second:
		return errors.New("sync: batch wait: want more than 0 and at most 10s")
	case c.BatchIdle < 0 || c.BatchIdle > c.BatchWait:
		return errors.New("sync: batch idle: want 0 (off) to the batch wait")
	case c.MaxAttempts < 1 || c.MaxAttempts > 100:
		return errors.New("sync: max attempts: want 1 to 100")
	case c.RetryBase <= 0 || c.RetryMax < c.RetryBase:
		return errors.New("sync: retry delays: want 0 < base <= max")
	case c.Pipeline < 1 || c.Pipeline > 16:
		return errors.New("sync: pipeline: want 1 to 16 batches")
	case c.ColdCheck < 0 || c.ColdCheck > time.Minute:
		return errors.New("sync: cold check: want 0 (off) to 1m")
	case c.ColdCheck > 0 && c.AdminToken == "":
		return errors.New("sync: the cold check needs the admin token (DETAILPAGE_ADMIN_TOKEN) for the source's admin API; --cold-check 0 turns it off")
	}
	for _, u := range c.HotURLs {
		if err := validURL(u); err != nil {
			return fmt.Errorf("sync: hot service %q: %w", u, err)
		}
	}
	return nil
}

// Service is a running sync service.
type Service struct {
	cfg      Config
	log      *slog.Logger
	store    *redisstore.Store
	src      *sourceclient.Client
	asm      *pagedoc.Assembler
	producer *kafkago.Writer // retry and DLQ
	ln       net.Listener
	tel      httpapi.Telemetry
	m        metrics
	backlog  backlog       // consumer lag and DLQ size (backlog.go)
	release  func()        // of the commands' configuration
	recent   *recentIDs    // applied lately: re-applied when main changes (repair.go)
	coldKick chan struct{} // check main for being cold at once (cold.go)
}

type metrics struct {
	events    *prometheus.CounterVec
	batch     *prometheus.HistogramVec
	lag       *prometheus.HistogramVec
	duplicate *prometheus.CounterVec
	unchanged *prometheus.CounterVec
	repaired  prometheus.Counter
	cold      prometheus.Counter
	warm      prometheus.Gauge
	preheated prometheus.Counter
}

// Open connects the clients and binds the listener.
func Open(cfg Config, log *slog.Logger, tel httpapi.Telemetry) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src, err := sourceclient.New(cfg.SourceURL)
	if err != nil {
		return nil, err
	}
	release, err := resilience.ConfigureService(Commands(), cfg.Commands)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	store, err := redisstore.Open(cfg.Redis)
	if err != nil {
		release()
		return nil, err
	}
	s := &Service{
		release: release,
		cfg:     cfg, log: log, store: store, src: src, asm: pagedoc.New(src, store),
		coldKick: make(chan struct{}, 1),
		producer: kafka.NewWriter(cfg.Brokers),
		tel:      tel,
		recent:   newRecentIDs(recentCap),
		backlog:  newBacklog(),
		m: metrics{
			events: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "detailpage_sync_events_total", Help: "Change events handled, by topic and outcome (applied, retried, dead_lettered).",
			}, []string{"topic", "outcome"}),
			batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name: "detailpage_sync_batch_ids", Help: "Distinct ids per handled batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 14),
			}, []string{"topic"}),
			lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name: "detailpage_sync_change_to_redis_seconds", Help: "From the edit at the source to its page in Redis main.",
				Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
			}, []string{"topic"}),
			duplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "detailpage_sync_deduplicated_total", Help: "Events dropped because the same id was already in the batch.",
			}, []string{"topic"}),
			unchanged: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "detailpage_sync_unchanged_total", Help: "Products of full rebuilds skipped because Redis held every value at the source's version.",
			}, []string{"topic"}),
			repaired: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "detailpage_sync_repaired_total", Help: "Ids re-applied after Redis main changed (failover or restart).",
			}),
			cold: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "detailpage_sync_redis_cold_total", Help: "Times Redis main was found cold (warm marker gone or DBSIZE far below the catalog).",
			}),
			warm: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "detailpage_sync_redis_warm", Help: "1 while Redis main carries the warm marker (catalog loaded), 0 while cold or loading.",
			}),
			preheated: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "detailpage_sync_cold_preheated_total", Help: "Products preheated after a cold Redis main was found (hottest first).",
			}),
		},
	}
	s.tel.Registry.MustRegister(s.m.events, s.m.batch, s.m.lag, s.m.duplicate, s.m.unchanged, s.m.repaired, s.m.cold, s.m.warm, s.m.preheated)
	s.tel.Registry.MustRegister(s.backlog.collectors()...)
	if s.ln, err = httpapi.Listen(cfg.Listen); err != nil {
		store.Close()
		s.producer.Close()
		release()
		return nil, err
	}
	return s, nil
}

// GroupFor is the consumer group that reads topic: the configured group
// name with the topic's role appended. One group per topic: a reader joining
// or leaving one topic does not stop the others for a rebalance.
func GroupFor(group, topic string) string {
	switch topic {
	case catalog.TopicHigh:
		return group + ".high"
	case catalog.TopicLow:
		return group + ".low"
	case catalog.TopicRetry:
		return group + ".retry"
	}
	return group + "." + topic
}

// Run consumes until ctx is done, then drains: the batch in hand finishes
// and its offsets are committed.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	runID := s.baselineRunID(ctx) // before the first write (repair.go)
	wg.Go(func() { s.watchMain(ctx, runID) })
	if s.cfg.ColdCheck > 0 {
		wg.Go(func() { s.watchCold(ctx) })
	}
	for _, topic := range []string{catalog.TopicHigh, catalog.TopicLow} {
		wg.Go(func() { s.consume(ctx, topic) })
	}
	wg.Go(func() { s.consumeRetries(ctx) })
	wg.Go(func() { s.watchBacklog(ctx) })
	e := httpapi.NewEngine(s.log, s.tel, s.store.Health)
	err := httpapi.Serve(ctx, s.ln, e, s.log)
	cancel()
	wg.Wait()
	return err
}

// Close releases the clients.
func (s *Service) Close() error {
	defer s.release()
	return errors.Join(s.producer.Close(), s.store.Close())
}

// CmdKafkaProduce is the command of the sync service's writes to Kafka (the
// retry topic and the DLQ).
const CmdKafkaProduce = "kafka.produce"

// produce writes msgs to Kafka as command kafka.produce.
func (s *Service) produce(ctx context.Context, msgs ...kafkago.Message) error {
	_, err := resilience.Do(ctx, CmdKafkaProduce, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.producer.WriteMessages(ctx, msgs...)
	}, nil)
	return err
}

func (s *Service) reader(topic string) *kafkago.Reader {
	return kafkago.NewReader(kafka.ReaderConfig(s.cfg.Brokers, GroupFor(s.cfg.Group, topic), topic))
}

// consume handles one change topic. Up to Pipeline batches are handled at
// once (fetching from the source, writing Redis); their offsets are
// committed strictly in the order they were read, so a crash never commits
// past a batch that was not done. A failed batch goes to the retry topic;
// only if that fails too is the batch retried here, uncommitted.
func (s *Service) consume(ctx context.Context, topic string) {
	r := s.reader(topic)
	defer r.Close()
	log := s.log.With("topic", topic)
	var idle time.Duration // bulk refresh: gather for the whole window
	if topic == catalog.TopicHigh {
		idle = s.cfg.BatchIdle // edits: no window while the topic is idle
	}
	type job struct {
		msgs []kafkago.Message
		done chan bool // true: handled, commit it
	}
	jobs := make(chan *job, s.cfg.Pipeline)
	inHand := make(chan struct{}, s.cfg.Pipeline) // batches being handled
	var committer sync.WaitGroup
	committer.Go(func() {
		ok := true
		for j := range jobs {
			handled := <-j.done
			ok = ok && handled // after an unhandled batch, commit nothing more
			if !ok {
				continue
			}
			if err := commit(ctx, r, j.msgs...); err != nil {
				log.Warn("commit failed; the batch will be handled again", "error", err)
			}
		}
	})
	defer func() {
		close(jobs)
		committer.Wait()
	}()
	for ctx.Err() == nil {
		msgs, err := s.fetchBatch(ctx, r, idle)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("fetch failed", "error", err)
				_ = backoff.Sleep(ctx, failPause) // ctx done: the loop ends
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		j := &job{msgs: msgs, done: make(chan bool, 1)}
		inHand <- struct{}{} // blocks while Pipeline batches are in hand
		go func() {
			defer func() { <-inHand }()
			j.done <- s.handleOrRetry(ctx, topic, msgs, log)
		}()
		jobs <- j
	}
}

// handleOrRetry handles a batch, or hands it to the retry topic; it
// reports whether the batch may be committed.
func (s *Service) handleOrRetry(ctx context.Context, topic string, msgs []kafkago.Message, log *slog.Logger) bool {
	dctx := context.WithoutCancel(ctx) // a started batch finishes on shutdown
	retry := localRetry.Start()
	for {
		err := s.handle(dctx, topic, msgs)
		if err == nil {
			return true
		}
		log.Warn("batch failed; handing it to the retry topic", "events", len(msgs), "error", err)
		rerr := s.toRetry(dctx, valid(msgs), 1, err) // malformed ones are in the DLQ already
		if rerr == nil {
			s.m.events.WithLabelValues(topic, "retried").Add(float64(len(msgs)))
			return true
		}
		d := retry.Next()
		log.Warn("retry topic unavailable; retrying the batch here", "error", rerr, "retry_in", d.String())
		if backoff.Sleep(ctx, d) != nil {
			return false // not committed: the group replays it
		}
	}
}

// localRetry is the backoff of a batch retried here because the retry
// topic is unavailable.
var localRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// failPause is the wait after a failed fetch or hand-off to the retry topic.
const failPause = time.Second

// fetchBatch waits for one message, then gathers more, for at most
// BatchWait and BatchSize messages: the window in which repeated changes
// of one id are merged.
//
// With idle > 0 (the edit topic) the batch also goes as soon as the topic
// is idle: the last message gathered was the newest of its partition when
// the broker sent it (Offset+1 reached its HighWaterMark) and no other
// message arrives within idle. An edit then waits for no window, while a
// burst the broker reported behind it still gathers into one batch. With
// idle 0 (bulk refresh) a batch gathers for the whole window: large
// batches, which is what makes a refresh fast.
func (s *Service) fetchBatch(ctx context.Context, r *kafkago.Reader, idle time.Duration) ([]kafkago.Message, error) {
	first, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := []kafkago.Message{first}
	gctx, cancel := context.WithTimeout(ctx, s.cfg.BatchWait)
	defer cancel()
	for len(msgs) < s.cfg.BatchSize {
		m, err := fetchNext(gctx, r, idle > 0 && caughtUp(msgs[len(msgs)-1]), idle)
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// fetchNext fetches one message within ctx, or within idle when short.
func fetchNext(ctx context.Context, r *kafkago.Reader, short bool, idle time.Duration) (kafkago.Message, error) {
	if !short {
		return r.FetchMessage(ctx)
	}
	ictx, cancel := context.WithTimeout(ctx, idle)
	defer cancel()
	return r.FetchMessage(ictx)
}

// caughtUp reports whether m was the newest message of its partition when
// the broker sent it.
func caughtUp(m kafkago.Message) bool {
	return m.Offset+1 >= m.HighWaterMark
}

// plan is one batch after decoding and deduplication.
type plan struct {
	full    []int64                       // products to rebuild from every dimension
	partial map[int64][]catalog.Dimension // products with only some dimensions changed
	shops   []int64
	oldest  map[int64]int64 // id → earliest change time (unix ms), for the lag metric
	poison  []kafkago.Message
	dups    int
}

func planBatch(msgs []kafkago.Message, log *slog.Logger) plan {
	p := plan{partial: map[int64][]catalog.Dimension{}, oldest: map[int64]int64{}}
	full := map[int64]bool{}
	seenShop := map[int64]bool{}
	for _, m := range msgs {
		c, err := catalog.DecodeChange(m.Value)
		if err != nil {
			log.Warn("malformed change event; sent to the DLQ", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", err)
			p.poison = append(p.poison, deadLetter(m, err.Error()))
			continue
		}
		switch c.Entity {
		case catalog.EntityShop:
			if seenShop[c.ID] {
				p.dups++
				continue
			}
			seenShop[c.ID] = true
			p.shops = append(p.shops, c.ID)
		case catalog.EntityProduct:
			if t, ok := p.oldest[c.ID]; !ok || c.TS < t {
				p.oldest[c.ID] = c.TS
			}
			if full[c.ID] {
				p.dups++
				continue
			}
			if c.Refresh || len(c.Dims) == 0 {
				full[c.ID] = true
				if _, ok := p.partial[c.ID]; ok {
					delete(p.partial, c.ID)
					p.dups++
				}
				p.full = append(p.full, c.ID)
				continue
			}
			dims, seen := p.partial[c.ID]
			if seen {
				p.dups++
			}
			for _, d := range c.Dims {
				if !slices.Contains(dims, d) {
					dims = append(dims, d)
				}
			}
			p.partial[c.ID] = dims
		}
	}
	return p
}

// handle applies one batch: invalid events go to the DLQ, the rest are
// deduplicated by entity and id and fetched in batches.
func (s *Service) handle(ctx context.Context, topic string, msgs []kafkago.Message) error {
	p := planBatch(msgs, s.log)
	if len(p.poison) > 0 {
		if err := s.produce(ctx, p.poison...); err != nil {
			return fmt.Errorf("sync: dead-letter: %w", err)
		}
		s.m.events.WithLabelValues(topic, "dead_lettered").Add(float64(len(p.poison)))
	}
	s.m.duplicate.WithLabelValues(topic).Add(float64(p.dups))
	s.m.batch.WithLabelValues(topic).Observe(float64(len(p.full) + len(p.partial) + len(p.shops)))
	if len(p.shops) > 0 {
		if _, err := s.asm.Shops(ctx, p.shops); err != nil {
			return err
		}
	}
	if len(p.full) > 0 {
		// Refresh, not Products: the products of a bulk refresh whose every
		// value in Redis is at the source's version are skipped.
		_, unchanged, err := s.asm.Refresh(ctx, p.full)
		if err != nil {
			return err
		}
		s.m.unchanged.WithLabelValues(topic).Add(float64(unchanged))
	}
	if len(p.partial) > 0 {
		if _, err := s.asm.Apply(ctx, p.partial); err != nil {
			return err
		}
	}
	applied := time.Now()
	s.recent.add(true, applied, p.shops...)
	s.recent.add(false, applied, p.full...)
	for id := range p.partial {
		s.recent.add(false, applied, id)
	}
	now := applied.UnixMilli()
	for _, ts := range p.oldest {
		if ts > 0 {
			s.m.lag.WithLabelValues(topic).Observe(float64(now-ts) / 1000)
		}
	}
	s.m.events.WithLabelValues(topic, "applied").Add(float64(len(msgs) - len(p.poison)))
	return nil
}

// valid drops the events that do not decode (handle dead-letters those).
func valid(msgs []kafkago.Message) []kafkago.Message {
	out := make([]kafkago.Message, 0, len(msgs))
	for _, m := range msgs {
		if _, err := catalog.DecodeChange(m.Value); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// Headers of a retried event.
const (
	hdrAttempt = "attempt"
	hdrDue     = "due_ms"
	hdrReason  = "reason"
	hdrTopic   = "source_topic"
)

func header(m kafkago.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// retryHeaders reads when a retried event is due (Unix ms) and how many
// attempts it has had; both headers must be there and be numbers.
func retryHeaders(m kafkago.Message) (due int64, attempt int, err error) {
	due, err = strconv.ParseInt(header(m, hdrDue), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("sync: retry event header %s: %w", hdrDue, err)
	}
	attempt, err = strconv.Atoi(header(m, hdrAttempt))
	if err != nil || attempt < 1 {
		return 0, 0, fmt.Errorf("sync: retry event header %s=%q: want an attempt count ≥ 1", hdrAttempt, header(m, hdrAttempt))
	}
	return due, attempt, nil
}

func deadLetter(m kafkago.Message, reason string) kafkago.Message {
	src := header(m, hdrTopic)
	if src == "" {
		src = m.Topic
	}
	return kafkago.Message{
		Topic: catalog.TopicDLQ, Key: m.Key, Value: m.Value,
		Headers: []kafkago.Header{{Key: hdrReason, Value: []byte(reason)}, {Key: hdrTopic, Value: []byte(src)}, {Key: hdrAttempt, Value: []byte(header(m, hdrAttempt))}},
	}
}

// delay is the backoff before attempt n (1-based).
func (s *Service) delay(attempt int) time.Duration {
	return backoff.Policy{Base: s.cfg.RetryBase, Max: s.cfg.RetryMax}.Delay(attempt)
}

// toRetry hands msgs to the retry topic after their attempt-th failed try,
// or to the DLQ when that was the MaxAttempts-th. The value (with the original change
// time) is kept as it is.
func (s *Service) toRetry(ctx context.Context, msgs []kafkago.Message, attempt int, cause error) error {
	out := make([]kafkago.Message, 0, len(msgs))
	due := time.Now().Add(s.delay(attempt)).UnixMilli()
	for _, m := range msgs {
		if attempt >= s.cfg.MaxAttempts {
			out = append(out, deadLetter(m, fmt.Sprintf("gave up after %d attempts: %v", attempt, cause)))
			continue
		}
		src := header(m, hdrTopic)
		if src == "" {
			src = m.Topic
		}
		out = append(out, kafkago.Message{
			Topic: catalog.TopicRetry, Key: m.Key, Value: m.Value,
			Headers: []kafkago.Header{
				{Key: hdrAttempt, Value: []byte(strconv.Itoa(attempt))},
				{Key: hdrDue, Value: []byte(strconv.FormatInt(due, 10))},
				{Key: hdrReason, Value: []byte(cause.Error())},
				{Key: hdrTopic, Value: []byte(src)},
			},
		})
	}
	return s.produce(ctx, out...)
}

// consumeRetries handles catalog.retry: each event waits until it is due,
// is tried again, and on failure goes back with one more attempt.
func (s *Service) consumeRetries(ctx context.Context) {
	r := s.reader(catalog.TopicRetry)
	defer r.Close()
	log := s.log.With("topic", catalog.TopicRetry)
	for ctx.Err() == nil {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("fetch failed", "error", err)
				_ = backoff.Sleep(ctx, failPause) // ctx done: the loop ends
			}
			continue
		}
		due, attempt, err := retryHeaders(m)
		if err != nil {
			// Not written by toRetry (produced by hand, or damaged): its
			// attempt count is unknown, so it goes to the DLQ, not round again.
			log.Error("malformed retry event: dead-lettered", "key", string(m.Key), "offset", m.Offset, "error", err)
			for {
				perr := s.produce(context.WithoutCancel(ctx), deadLetter(m, err.Error()))
				if perr == nil {
					break
				}
				log.Warn("dead-letter failed; trying again", "error", perr)
				if backoff.Sleep(ctx, time.Second) != nil {
					return
				}
			}
			s.m.events.WithLabelValues(catalog.TopicRetry, "dead_lettered").Inc()
			if err := commit(ctx, r, m); err != nil {
				log.Warn("commit failed; the event will be handled again", "error", err)
			}
			continue
		}
		if wait := time.Until(time.UnixMilli(due)); wait > 0 && backoff.Sleep(ctx, wait) != nil {
			return // uncommitted: handled after the restart
		}
		dctx := context.WithoutCancel(ctx)
		if err := s.handle(dctx, catalog.TopicRetry, []kafkago.Message{m}); err != nil {
			log.Warn("retry failed", "attempt", attempt, "key", string(m.Key), "error", err)
			for s.toRetry(dctx, []kafkago.Message{m}, attempt+1, err) != nil {
				if backoff.Sleep(ctx, failPause) != nil {
					return
				}
			}
			outcome := "retried"
			if attempt+1 >= s.cfg.MaxAttempts {
				outcome = "dead_lettered"
			}
			s.m.events.WithLabelValues(catalog.TopicRetry, outcome).Inc()
		}
		if err := commit(ctx, r, m); err != nil {
			log.Warn("commit failed; the event will be handled again", "error", err)
		}
	}
}

// commit commits offsets even while shutting down, but not forever: with
// the broker gone a commit never answers, and a lost commit only means the
// events are handled again (at least once).
func commit(ctx context.Context, r *kafkago.Reader, msgs ...kafkago.Message) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return r.CommitMessages(cctx, msgs...)
}
