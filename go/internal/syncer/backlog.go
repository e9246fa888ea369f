package syncer

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
)

// DLQReplayGroup is the consumer group `detailpage dlq replay` commits the
// replayed dead letters in: what it has not committed is the DLQ's
// pending size.
const DLQReplayGroup = "detailpage-dlq-replay"

// backlogEvery is how often the consumer lag and the DLQ size are read
// from the broker.
const backlogEvery = 2 * time.Second

// backlog is the pipeline's backlog as the broker reports it: each sync
// group's lag (end offsets minus committed offsets over its topic) and the
// dead letters not replayed yet. Every sync instance reports the same
// figures (they share the groups).
type backlog struct {
	lag *prometheus.GaugeVec
	dlq prometheus.Gauge
}

func newBacklog() backlog {
	return backlog{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "detailpage_sync_consumer_lag", Help: "Change events the sync consumer group has not committed yet, by group (read from the broker every 2 s).",
		}, []string{"group"}),
		dlq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "detailpage_sync_dlq_pending", Help: "Dead-lettered change events in " + catalog.TopicDLQ + " not replayed yet (`detailpage dlq replay`'s group).",
		}),
	}
}

func (b backlog) collectors() []prometheus.Collector { return []prometheus.Collector{b.lag, b.dlq} }

// watchBacklog reads the backlog every backlogEvery until ctx is done. A
// failed reading keeps the last figure (the log says why, once per
// failure streak).
func (s *Service) watchBacklog(ctx context.Context) {
	t := time.NewTicker(backlogEvery)
	defer t.Stop()
	failing := false
	for {
		err := s.readBacklog(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.log.Warn("sync: reading the consumer lag failed; the figures keep their last value", "error", err)
			failing = true
		case err == nil && failing:
			s.log.Info("sync: consumer lag readable again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) readBacklog(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, backlogEvery)
	defer cancel()
	for _, topic := range []string{catalog.TopicHigh, catalog.TopicLow, catalog.TopicRetry} {
		g := GroupFor(s.cfg.Group, topic)
		n, err := kafka.GroupLag(ctx, s.cfg.Brokers, g, topic)
		if err != nil {
			return err
		}
		s.backlog.lag.WithLabelValues(g).Set(float64(n))
	}
	n, err := kafka.GroupLag(ctx, s.cfg.Brokers, DLQReplayGroup, catalog.TopicDLQ)
	if err != nil {
		return err
	}
	s.backlog.dlq.Set(float64(n))
	return nil
}
