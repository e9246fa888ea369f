// Package syncer is the sync (cache) service: it consumes change events
// from Kafka, fetches the changed products and shops from the source
// services and writes them to Redis main with versioned compare-and-set.
//
// Edits (catalog.changes.high) and bulk refreshes (catalog.changes.low) have
// their own readers, so a refresh backlog never queues in front of an edit.
// Offsets are committed only after the Redis writes succeeded: delivery is
// at least once, and versioned writes make repeats harmless.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/pagedoc"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/server"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Config is the sync service's configuration.
type Config struct {
	Listen    string
	Brokers   []string
	Redis     string // Redis main (or Cluster seed addresses), comma-separated
	SourceURL string
	Group     string        // Kafka consumer group shared by all sync instances
	BatchSize int           // most events handled in one round
	BatchWait time.Duration // how long to gather a batch after its first event
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
	}
	return nil
}

// Service is a running sync service.
type Service struct {
	cfg    Config
	log    *slog.Logger
	store  *redisstore.Store
	asm    *pagedoc.Assembler
	dlq    *kafkago.Writer
	ln     net.Listener
	reg    *prometheus.Registry
	events *prometheus.CounterVec
	batch  *prometheus.HistogramVec
}

// Open connects the clients and binds the listener.
func Open(cfg Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src, err := sourceclient.New(cfg.SourceURL)
	if err != nil {
		return nil, err
	}
	store, err := redisstore.Open(cfg.Redis)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, log: log, store: store, asm: pagedoc.New(src, store),
		dlq: kafka.NewWriter(cfg.Brokers),
		reg: server.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "detailpage_sync_events_total", Help: "Change events handled, by topic and outcome.",
		}, []string{"topic", "outcome"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "detailpage_sync_batch_ids", Help: "Distinct ids per handled batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"topic"}),
	}
	s.reg.MustRegister(s.events, s.batch)
	if s.ln, err = server.Listen(cfg.Listen); err != nil {
		store.Close()
		return nil, err
	}
	return s, nil
}

// Addr is the address the service listens on.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Run consumes until ctx is done, then drains: the batch in hand finishes
// and its offsets are committed.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, topic := range []string{catalog.TopicHigh, catalog.TopicLow} {
		wg.Go(func() { s.consume(ctx, topic) })
	}
	e := server.NewEngine(s.log, s.reg, s.store.Ping)
	err := server.Serve(ctx, s.ln, e, s.log)
	cancel()
	wg.Wait()
	return err
}

// Close releases the clients.
func (s *Service) Close() error {
	return errors.Join(s.dlq.Close(), s.store.Close())
}

func (s *Service) consume(ctx context.Context, topic string) {
	// One consumer group per topic: a reader joining or leaving one topic
	// does not stop the other topic's consumption for a rebalance.
	r := kafkago.NewReader(kafka.ReaderConfig(s.cfg.Brokers, GroupFor(s.cfg.Group, topic), topic))
	defer r.Close()
	log := s.log.With("topic", topic)
	for ctx.Err() == nil {
		msgs, err := s.fetchBatch(ctx, r)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("fetch failed", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		// Handle until it succeeds: the offsets stay uncommitted meanwhile,
		// so a crash here replays the batch rather than losing it.
		backoff := 100 * time.Millisecond
		for {
			err := s.handle(context.WithoutCancel(ctx), topic, msgs)
			if err == nil {
				break
			}
			log.Warn("batch failed; retrying", "events", len(msgs), "error", err, "retry_in", backoff.String())
			if !sleep(ctx, backoff) {
				return // not committed: the group replays it
			}
			backoff = min(backoff*2, 5*time.Second)
		}
		if err := r.CommitMessages(context.WithoutCancel(ctx), msgs...); err != nil {
			log.Warn("commit failed; the batch will be handled again", "error", err)
		}
	}
}

// GroupFor is the consumer group that reads topic: the configured group
// name with the topic's priority appended.
func GroupFor(group, topic string) string {
	switch topic {
	case catalog.TopicHigh:
		return group + ".high"
	case catalog.TopicLow:
		return group + ".low"
	}
	return group + "." + topic
}

// fetchBatch waits for one message, then gathers more for up to BatchWait.
func (s *Service) fetchBatch(ctx context.Context, r *kafkago.Reader) ([]kafkago.Message, error) {
	first, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := []kafkago.Message{first}
	gctx, cancel := context.WithTimeout(ctx, s.cfg.BatchWait)
	defer cancel()
	for len(msgs) < s.cfg.BatchSize {
		m, err := r.FetchMessage(gctx)
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// handle applies one batch: invalid events go to the DLQ, the rest are
// deduplicated by entity and id and rebuilt in batches.
func (s *Service) handle(ctx context.Context, topic string, msgs []kafkago.Message) error {
	var products, shops []int64
	seenP, seenS := map[int64]bool{}, map[int64]bool{}
	var poison []kafkago.Message
	for _, m := range msgs {
		c, err := catalog.DecodeChange(m.Value)
		if err != nil {
			s.log.Warn("malformed change event; sent to the DLQ", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "error", err)
			poison = append(poison, kafkago.Message{
				Topic: catalog.TopicDLQ, Key: m.Key, Value: m.Value,
				Headers: []kafkago.Header{{Key: "reason", Value: []byte(err.Error())}, {Key: "source_topic", Value: []byte(m.Topic)}},
			})
			continue
		}
		switch c.Entity {
		case catalog.EntityProduct:
			if !seenP[c.ID] {
				seenP[c.ID] = true
				products = append(products, c.ID)
			}
		case catalog.EntityShop:
			if !seenS[c.ID] {
				seenS[c.ID] = true
				shops = append(shops, c.ID)
			}
		}
	}
	if len(poison) > 0 {
		if err := s.dlq.WriteMessages(ctx, poison...); err != nil {
			return fmt.Errorf("sync: dead-letter: %w", err)
		}
		s.events.WithLabelValues(topic, "dead_lettered").Add(float64(len(poison)))
	}
	s.batch.WithLabelValues(topic).Observe(float64(len(products) + len(shops)))
	if len(shops) > 0 {
		if _, err := s.asm.Shops(ctx, shops); err != nil {
			return err
		}
	}
	if len(products) > 0 {
		if _, err := s.asm.Products(ctx, products); err != nil {
			return err
		}
	}
	s.events.WithLabelValues(topic, "applied").Add(float64(len(msgs) - len(poison)))
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
