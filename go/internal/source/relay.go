package source

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sqlite"
)

// relayBatch is how many outbox rows one publish carries.
const relayBatch = 500

// cmdPublish is the command of the relay's writes to Kafka.
const cmdPublish = "kafka.produce.outbox"

// relayCommand is the setting of cmdPublish.
func relayCommand() resilience.Command {
	c := resilience.Defaults(cmdPublish)
	c.Timeout, c.MaxConcurrent = 15*time.Second, 1 // one relay; the writer retries a restarting broker itself
	return c
}

// Relay publishes the outbox to Kafka. A row is marked sent only after the
// broker acknowledged it (acks from all in-sync replicas), so a crash or a
// broker outage delays changes but never loses one. Rows go out in outbox
// order and rows of one id share a partition, so each id's changes stay in
// order.
type Relay struct {
	db     *sqlite.DB
	w      *kafkago.Writer
	log    *slog.Logger
	wake   chan struct{}
	sent   prometheus.Counter
	failed prometheus.Counter
}

// NewRelay returns a relay from db to the brokers.
func NewRelay(db *sqlite.DB, brokers []string, log *slog.Logger) *Relay {
	return &Relay{
		db:   db,
		w:    kafka.NewWriter(brokers),
		log:  log.With("component", "relay"),
		wake: make(chan struct{}, 1),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "detailpage_outbox_published_total", Help: "Outbox rows acknowledged by the broker.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "detailpage_outbox_publish_failures_total", Help: "Failed attempts to publish an outbox batch.",
		}),
	}
}

func (r *Relay) metrics() []prometheus.Collector {
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "detailpage_outbox_backlog", Help: "Outbox rows waiting for the broker (read at scrape time; NaN when the count failed).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := r.db.OutboxPending(ctx)
		if err != nil {
			r.log.Debug("outbox backlog: count failed", "error", err)
			return math.NaN()
		}
		return float64(n)
	})
	return []prometheus.Collector{r.sent, r.failed, backlog}
}

// Notify wakes the relay after a new outbox row was committed.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// relayRetry is the backoff between failed publishes.
var relayRetry = backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// Run publishes until ctx is done, then closes the producer.
func (r *Relay) Run(ctx context.Context) {
	defer r.w.Close()
	retry := relayRetry.Start()
	idle := time.NewTicker(250 * time.Millisecond) // catches rows written by another process
	defer idle.Stop()
	for ctx.Err() == nil {
		n, err := r.publishOnce(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.failed.Inc()
			d := retry.Next()
			r.log.Warn("publish failed; changes stay in the outbox", "error", err, "retry_in", d.String())
			_ = backoff.Sleep(ctx, d) // ctx done: the loop ends
		case n == relayBatch:
			retry.Reset() // more waiting: go on at once
		case err == nil:
			retry.Reset()
			select {
			case <-ctx.Done():
			case <-r.wake:
			case <-idle.C:
			}
		}
	}
}

func (r *Relay) publishOnce(ctx context.Context) (int, error) {
	rows, err := r.db.Unsent(ctx, relayBatch)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	msgs := make([]kafkago.Message, len(rows))
	for i, row := range rows {
		msgs[i] = kafkago.Message{Topic: row.Topic, Key: []byte(row.Key), Value: row.Payload}
	}
	_, err = resilience.Do(ctx, cmdPublish, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, r.w.WriteMessages(ctx, msgs...)
	}, nil)
	sent := make([]int64, 0, len(rows))
	var werrs kafkago.WriteErrors
	switch {
	case err == nil:
		for _, row := range rows {
			sent = append(sent, row.Seq)
		}
	case errors.As(err, &werrs):
		for i, row := range rows {
			if werrs[i] == nil {
				sent = append(sent, row.Seq)
			}
		}
	}
	if markErr := r.db.MarkSent(context.WithoutCancel(ctx), sent); markErr != nil {
		return 0, markErr // sent again later: consumers are idempotent by version
	}
	r.sent.Add(float64(len(sent)))
	if err != nil {
		return len(sent), err
	}
	return len(rows), nil
}
