// Package kafka adapts github.com/segmentio/kafka-go to detailpage: one
// place that decides how we produce (acks from all replicas, keyed by id,
// short batches) and consume (consumer groups, explicit commits).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// ParseBrokers splits a comma-separated broker list and checks each entry
// is host:port.
func ParseBrokers(s string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(s, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			return nil, fmt.Errorf("kafka: broker %q: want host:port", b)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return nil, fmt.Errorf("kafka: broker %q: bad port", b)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("kafka: no brokers given")
	}
	return out, nil
}

// NewWriter returns a producer that waits for every in-sync replica to
// acknowledge a write, so a returned WriteMessages means the change is safe.
// Messages with the same key go to the same partition (murmur2, as Java
// clients do), which keeps changes of one id in order.
//
// Every caller writes synchronously and hands over its whole batch in one
// WriteMessages call (the outbox relay up to 500 rows; the sync service a
// batch's retries), and that call puts all of a partition's messages into
// one produce batch before its timer can fire. Waiting for more messages
// would only delay the edit in hand: BatchTimeout is minimal (kafka-go
// reads 0 as 1 s), not the 2 ms it was, which every edit paid on its way
// through the relay.
func NewWriter(brokers []string) *kafkago.Writer {
	return &kafkago.Writer{
		Addr:         kafkago.TCP(brokers...),
		Balancer:     &kafkago.Murmur2Balancer{},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: writerBatchTimeout,
		BatchSize:    500,
		WriteTimeout: 5 * time.Second,
		ReadTimeout:  5 * time.Second,
		MaxAttempts:  3,
	}
}

// writerBatchTimeout is how long a produce batch waits for more messages
// (NewWriter).
const writerBatchTimeout = 50 * time.Microsecond

// ReaderConfig returns a consumer-group reader configuration with explicit
// commits (CommitInterval 0: CommitMessages commits synchronously).
//
// Fetch waits: with MinBytes 1 the broker answers a fetch as soon as one
// message is there, so MaxWait bounds only an empty fetch and costs an
// edit nothing. kafka-go asks the broker to wait 3/4 of MaxWait and gives
// up on the connection at MaxWait; an answer later than that (a busy
// machine) is an error that closes the connection and sleeps
// ReadBackoffMin before dialling again, and meanwhile that partition's
// edits wait. At 100 ms (a 25 ms margin) this happened about ten times a
// minute per topic on the loaded two-core machine, each costing the edits
// of one partition 50 ms or more. Hence a longer MaxWait (a 125 ms
// margin, and fewer empty fetches), a per-message read deadline that a
// stalled scheduler does not hit, and a short first backoff.
func ReaderConfig(brokers []string, group, topic string) kafkago.ReaderConfig {
	return kafkago.ReaderConfig{
		Brokers:           brokers,
		GroupID:           group,
		Topic:             topic,
		MinBytes:          1,
		MaxBytes:          8 << 20,
		MaxWait:           500 * time.Millisecond,
		ReadBatchTimeout:  time.Second,
		HeartbeatInterval: time.Second,
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  6 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		StartOffset:       kafkago.FirstOffset,
		CommitInterval:    0,
		MaxAttempts:       3,
		ReadBackoffMin:    5 * time.Millisecond, // grows with the square of the attempt, to ReadBackoffMax
		ReadBackoffMax:    500 * time.Millisecond,
	}
}

// GroupLag returns how many messages of topics the consumer group has not
// committed yet (end offset minus committed offset, summed over partitions).
func GroupLag(ctx context.Context, brokers []string, group string, topics ...string) (int64, error) {
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 5 * time.Second}
	meta, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return 0, fmt.Errorf("kafka: metadata: %w", err)
	}
	parts := map[string][]int{}
	ends := map[string][]kafkago.OffsetRequest{}
	for _, t := range meta.Topics {
		if t.Error != nil {
			return 0, fmt.Errorf("kafka: topic %s: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			parts[t.Name] = append(parts[t.Name], p.ID)
			ends[t.Name] = append(ends[t.Name], kafkago.FirstOffsetOf(p.ID), kafkago.LastOffsetOf(p.ID))
		}
	}
	lo, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: ends})
	if err != nil {
		return 0, fmt.Errorf("kafka: list offsets: %w", err)
	}
	of, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: parts})
	if err != nil {
		return 0, fmt.Errorf("kafka: offset fetch: %w", err)
	}
	committed := map[string]map[int]int64{}
	for topic, ps := range of.Topics {
		committed[topic] = map[int]int64{}
		for _, p := range ps {
			committed[topic][p.Partition] = p.CommittedOffset
		}
	}
	var lag int64
	for topic, ps := range lo.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return 0, fmt.Errorf("kafka: offsets %s/%d: %w", topic, p.Partition, p.Error)
			}
			c := committed[topic][p.Partition]
			if c < 0 { // nothing committed yet: everything retained is lag
				c = max(p.FirstOffset, 0)
			}
			lag += max(0, p.LastOffset-c)
		}
	}
	return lag, nil
}
