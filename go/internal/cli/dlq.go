package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/syncer"
)

// runDLQ lists or replays catalog.dlq. Replay puts every valid event back on
// catalog.changes.high (the sync service fetches the current state, so an
// old event is harmless) and leaves malformed ones where they are.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stderr, "usage: detailpage dlq list|replay [flags]\n\n  list    print every dead-lettered change event with its reason\n  replay  put the valid ones back on "+catalog.TopicHigh+" (malformed ones stay)\n\nflags:")
		f := newFlags("dlq", stderr)
		f.String("kafka", "DETAILPAGE_KAFKA", "127.0.0.1:9092", "Kafka brokers, comma-separated")
		f.String("group", "DETAILPAGE_DLQ_GROUP", syncer.DLQReplayGroup, "consumer group that remembers what was replayed")
		f.Duration("read-timeout", "DETAILPAGE_DLQ_READ_TIMEOUT", 10*time.Second, "list: longest wait for one read from the broker before the listing fails")
		f.PrintDefaults()
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprintln(stderr, "usage: detailpage dlq list|replay [flags] (detailpage dlq --help)")
		return errUsage
	}
	action := args[0]
	f := newFlags("dlq "+action, stderr)
	brokers := f.String("kafka", "DETAILPAGE_KAFKA", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	group := f.String("group", "DETAILPAGE_DLQ_GROUP", syncer.DLQReplayGroup, "consumer group that remembers what was replayed")
	readTimeout := f.Duration("read-timeout", "DETAILPAGE_DLQ_READ_TIMEOUT", 10*time.Second, "list: longest wait for one read from the broker before the listing fails")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	bl, err := kafka.ParseBrokers(*brokers)
	if err != nil {
		return err
	}
	if action == "list" {
		return listDLQ(ctx, bl, *readTimeout, stdout) // reads without a group: listing consumes nothing
	}
	return replayDLQ(ctx, bl, *group, stdout)
}

// replayDLQ puts every valid dead-lettered event back on catalog.changes.high
// and commits it in group, so a second replay does not repeat it.
func replayDLQ(ctx context.Context, bl []string, group string, stdout io.Writer) (err error) {
	r := kafkago.NewReader(kafka.ReaderConfig(bl, group, catalog.TopicDLQ))
	w := kafka.NewWriter(bl)
	defer func() {
		if cerr := errors.Join(r.Close(), w.Close()); cerr != nil {
			err = errors.Join(err, fmt.Errorf("dlq: close: %w", cerr))
		}
	}()
	replayed, skipped := 0, 0
	for {
		lag, err := kafka.GroupLag(ctx, bl, group, catalog.TopicDLQ)
		if err != nil {
			return err
		}
		if lag == 0 {
			break
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := r.FetchMessage(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return fmt.Errorf("dlq: read: %w", err)
		}
		if _, err := catalog.DecodeChange(m.Value); err != nil {
			skipped++
			fmt.Fprintf(stdout, "skip offset %d/%d: %v\n", m.Partition, m.Offset, err)
		} else {
			if err := w.WriteMessages(ctx, kafkago.Message{Topic: catalog.TopicHigh, Key: m.Key, Value: m.Value}); err != nil {
				return fmt.Errorf("dlq: replay: %w", err)
			}
			replayed++
		}
		if err := r.CommitMessages(ctx, m); err != nil {
			return fmt.Errorf("dlq: commit: %w", err)
		}
	}
	fmt.Fprintf(stdout, "dlq: %d events replayed to %s, %d malformed left\n", replayed, catalog.TopicHigh, skipped)
	return nil
}

// listDLQ prints every dead-lettered event with its reason: each partition
// from its first offset to its high-water mark at the start of the listing.
// A read that fails, or waits longer than readTimeout for the broker, is an
// error: a short list is never printed as if it were the whole DLQ.
func listDLQ(ctx context.Context, brokers []string, readTimeout time.Duration, stdout io.Writer) error {
	conn, err := kafkago.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	parts, err := conn.ReadPartitions(catalog.TopicDLQ)
	if cerr := conn.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dlq: partitions of %s: %w", catalog.TopicDLQ, err)
	}
	slices.SortFunc(parts, func(a, b kafkago.Partition) int { return a.ID - b.ID })
	n := 0
	for _, p := range parts {
		k, err := listPartition(ctx, brokers, p.ID, readTimeout, stdout)
		n += k
		if err != nil {
			return fmt.Errorf("dlq: partition %d: %w (%d events listed before the failure)", p.ID, err, n)
		}
	}
	fmt.Fprintf(stdout, "dlq: %d events\n", n)
	return nil
}

// listPartition prints partition's events up to its high-water mark.
func listPartition(ctx context.Context, brokers []string, partition int, readTimeout time.Duration, stdout io.Writer) (int, error) {
	octx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	conn, err := kafkago.DialLeader(octx, "tcp", brokers[0], catalog.TopicDLQ, partition)
	if err != nil {
		return 0, fmt.Errorf("dial leader: %w", err)
	}
	if dl, ok := octx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return 0, fmt.Errorf("offsets: %w", err)
		}
	}
	first, last, err := conn.ReadOffsets()
	if cerr := conn.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("offsets: %w", err)
	}
	if first >= last {
		return 0, nil
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: catalog.TopicDLQ, Partition: partition, MaxWait: 200 * time.Millisecond})
	if err := r.SetOffset(first); err != nil {
		r.Close()
		return 0, fmt.Errorf("seek to %d: %w", first, err)
	}
	n := 0
	for {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		m, err := r.ReadMessage(rctx)
		cancel()
		if err != nil {
			r.Close()
			return n, fmt.Errorf("read offset %d of %d..%d: %w", first+int64(n), first, last-1, err)
		}
		fmt.Fprintf(stdout, "%d/%d\t%s\t%q\treason: %s\n", m.Partition, m.Offset, string(m.Key), truncateBytes(m.Value, 120), dlqReason(m))
		n++
		if m.Offset >= last-1 {
			break
		}
	}
	if err := r.Close(); err != nil {
		return n, fmt.Errorf("close reader: %w", err)
	}
	return n, nil
}

// dlqReason is the reason header of a dead-lettered event.
func dlqReason(m kafkago.Message) string {
	for _, h := range m.Headers {
		if h.Key == "reason" {
			return string(h.Value)
		}
	}
	return ""
}

func truncateBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
