package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// mustDeadLetter writes n events with a reason to catalog.dlq, spread over
// its partitions.
func mustDeadLetter(tb testing.TB, addr string, n int) {
	tb.Helper()
	w := kafka.NewWriter([]string{addr})
	defer w.Close()
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		msgs[i] = kafkago.Message{
			Topic:   catalog.TopicDLQ,
			Key:     fmt.Appendf(nil, "product:%d", i),
			Value:   fmt.Appendf(nil, `{"entity":"product","id":%d}`, i),
			Headers: []kafkago.Header{{Key: "reason", Value: fmt.Appendf(nil, "reason %d", i)}},
		}
	}
	if err := w.WriteMessages(tb.Context(), msgs...); err != nil {
		tb.Fatalf("write the DLQ: %v", err)
	}
}

// Every event of every partition is listed, up to the high-water mark.
func TestDLQListReadsEveryPartitionToTheEnd(t *testing.T) {
	addr := testutil.MustKafka(t)
	const n = 1200
	mustDeadLetter(t, addr, n)
	var out, errb bytes.Buffer
	if err := runDLQ(t.Context(), []string{"list", "--kafka", addr}, &out, &errb); err != nil {
		t.Fatalf("dlq list: %v\n%s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != fmt.Sprintf("dlq: %d events", n) {
		t.Errorf("summary %q, want %d events", last, n)
	}
	seen := map[string]bool{}
	parts := map[string]bool{}
	for _, l := range lines[:len(lines)-1] {
		f := strings.Split(l, "\t")
		if len(f) != 4 || !strings.HasPrefix(f[3], "reason: reason ") {
			t.Fatalf("line %q: want partition/offset, key, value, reason", l)
		}
		seen[f[1]] = true
		parts[strings.Split(f[0], "/")[0]] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct events listed, want %d", len(seen), n)
	}
	if len(parts) != testutil.KafkaPartitions {
		t.Errorf("events from %d partitions, want %d", len(parts), testutil.KafkaPartitions)
	}
}

// An empty DLQ is a listing of nothing, not an error.
func TestDLQListEmpty(t *testing.T) {
	addr := testutil.MustKafka(t)
	var out, errb bytes.Buffer
	if err := runDLQ(t.Context(), []string{"list", "--kafka", addr}, &out, &errb); err != nil {
		t.Fatalf("dlq list: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != "dlq: 0 events" {
		t.Errorf("output %q, want dlq: 0 events", got)
	}
}

// A broker that fails or stalls mid-listing makes the listing fail (exit
// status 1), never a short list that looks complete.
func TestDLQListFailsWhenTheBrokerFailsMidRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fetch func() (kmsg.Response, error, bool)
	}{
		{"connection closed", func() (kmsg.Response, error, bool) { return nil, errors.New("injected: broker fails"), true }},
		{"no answer", func() (kmsg.Response, error, bool) { return nil, nil, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster, addr := testutil.MustKafkaCluster(t)
			mustDeadLetter(t, addr, 400)
			var fetches atomic.Int64
			cluster.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
				cluster.KeepControl()
				if fetches.Add(1) == 1 {
					return nil, nil, false // the first fetch is answered
				}
				return tc.fetch()
			})
			var out, errb bytes.Buffer
			err := runDLQ(t.Context(), []string{"list", "--kafka", addr, "--read-timeout", "2s"}, &out, &errb)
			if err == nil {
				t.Fatalf("dlq list succeeded with a failing broker:\n%s", out.String())
			}
			t.Logf("dlq list: %v", err)
			if strings.Contains(out.String(), "dlq: ") {
				t.Errorf("a failed listing printed a total:\n%s", out.String())
			}
			if fetches.Load() < 2 {
				t.Errorf("%d fetches: the failure was not mid-read", fetches.Load())
			}
			if code := Main([]string{"dlq", "list", "--kafka", addr, "--read-timeout", "1s"}); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
		})
	}
}

// Replay puts the valid events back on catalog.changes.high, leaves the
// malformed ones, and a second replay repeats nothing.
func TestDLQReplay(t *testing.T) {
	addr := testutil.MustKafka(t)
	w := kafka.NewWriter([]string{addr})
	defer w.Close()
	msgs := []kafkago.Message{
		{Topic: catalog.TopicDLQ, Key: []byte("product:1"), Value: []byte(`{"entity":"product","id":1}`)},
		{Topic: catalog.TopicDLQ, Key: []byte("product:2"), Value: []byte(`{"entity":"product","id":2}`)},
		{Topic: catalog.TopicDLQ, Key: []byte("bad"), Value: []byte(`{"entity":`)},
	}
	if err := w.WriteMessages(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"dlq: 2 events replayed to " + catalog.TopicHigh + ", 1 malformed left", "dlq: 0 events replayed to " + catalog.TopicHigh + ", 0 malformed left"} {
		var out, errb bytes.Buffer
		if err := runDLQ(t.Context(), []string{"replay", "--kafka", addr, "--group", "test-replay"}, &out, &errb); err != nil {
			t.Fatalf("replay %d: %v\n%s", i+1, err, errb.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if got := lines[len(lines)-1]; got != want {
			t.Errorf("replay %d: %q, want %q", i+1, got, want)
		}
	}
	var onHigh int64
	for p := range testutil.KafkaPartitions {
		conn, err := kafkago.DialLeader(t.Context(), "tcp", addr, catalog.TopicHigh, p)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := conn.ReadOffsets()
		if cerr := conn.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		onHigh += last - first
	}
	if onHigh != 2 {
		t.Errorf("%d events on %s after two replays, want the 2 valid ones once", onHigh, catalog.TopicHigh)
	}
}
