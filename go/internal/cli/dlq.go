package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
)

// runDLQ lists or replays catalog.dlq. Replay puts every valid event back on
// catalog.changes.high (the sync service fetches the current state, so an
// old event is harmless) and leaves malformed ones where they are.
func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stderr, "usage: detailpage dlq list|replay [flags]\n\n  list    print every dead-lettered change event with its reason\n  replay  put the valid ones back on "+catalog.TopicHigh+" (malformed ones stay)\n\nflags:")
		f := newFlags("dlq", stderr)
		f.String("kafka", "DETAILPAGE_KAFKA", "127.0.0.1:9092", "Kafka brokers, comma-separated")
		f.String("group", "DETAILPAGE_DLQ_GROUP", "detailpage-dlq-replay", "consumer group that remembers what was replayed")
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
	group := f.String("group", "DETAILPAGE_DLQ_GROUP", "detailpage-dlq-replay", "consumer group that remembers what was replayed")
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	bl, err := kafka.ParseBrokers(*brokers)
	if err != nil {
		return err
	}
	if action == "list" {
		return listDLQ(ctx, bl, stdout) // reads without a group: listing consumes nothing
	}
	r := kafkago.NewReader(kafka.ReaderConfig(bl, *group, catalog.TopicDLQ))
	defer r.Close()
	w := kafka.NewWriter(bl)
	defer w.Close()
	replayed, skipped := 0, 0
	for {
		lag, err := kafka.GroupLag(ctx, bl, *group, catalog.TopicDLQ)
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

// listDLQ prints every dead-lettered event with its reason.
func listDLQ(ctx context.Context, brokers []string, stdout io.Writer) error {
	conn, err := kafkago.DialContext(ctx, "tcp", brokers[0])
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	parts, err := conn.ReadPartitions(catalog.TopicDLQ)
	conn.Close()
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	n := 0
	for _, p := range parts {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: catalog.TopicDLQ, Partition: p.ID, MaxWait: 200 * time.Millisecond})
		for {
			fctx, cancel := context.WithTimeout(ctx, time.Second)
			m, err := r.ReadMessage(fctx)
			cancel()
			if err != nil {
				break
			}
			reason := ""
			for _, h := range m.Headers {
				if h.Key == "reason" {
					reason = string(h.Value)
				}
			}
			fmt.Fprintf(stdout, "%d/%d\t%s\t%q\treason: %s\n", m.Partition, m.Offset, string(m.Key), truncateBytes(m.Value, 120), reason)
			n++
		}
		r.Close()
	}
	fmt.Fprintf(stdout, "dlq: %d events\n", n)
	return nil
}

func truncateBytes(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
