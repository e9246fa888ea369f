package syncer

import (
	"context"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	tu "github.com/detailpage/detailpage/go/internal/testutil"
)

// fetchBatch on the edit topic, against the embedded broker: a burst the
// broker already holds goes as one batch, and a lone edit goes once the
// topic is idle rather than after the whole window.
func TestFetchBatchEndsWhenTopicIdle(t *testing.T) {
	broker := tu.MustKafka(t)
	w := kafka.NewWriter([]string{broker})
	defer w.Close()
	produce := func(from, n int) {
		t.Helper()
		msgs := make([]kafkago.Message, n)
		for i := range msgs {
			id := strconv.Itoa(from + i)
			msgs[i] = kafkago.Message{Topic: catalog.TopicHigh, Key: []byte("product:" + id), Value: []byte(`{"entity":"product","id":` + id + `}`)}
		}
		if err := w.WriteMessages(t.Context(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	r := kafkago.NewReader(kafka.ReaderConfig([]string{broker}, "batch-test", catalog.TopicHigh))
	defer r.Close()
	const window, idle = 10 * time.Second, 500 * time.Millisecond
	s := &Service{cfg: Config{BatchSize: 500, BatchWait: window}}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	produce(1, 50) // on every partition, before the reader has joined
	var got []kafkago.Message
	for len(got) < 50 { // the first fetch may come before every partition is assigned
		msgs, err := s.fetchBatch(ctx, r, idle)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, msgs...)
	}
	if len(got) != 50 {
		t.Fatalf("got %d events, want the 50 produced", len(got))
	}

	// Once joined and caught up: a burst is one batch.
	produce(100, 40)
	msgs, err := s.fetchBatch(ctx, r, idle)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 40 {
		t.Errorf("a burst of 40 edits came in a batch of %d, want one batch", len(msgs))
	}

	// A lone edit goes without waiting out the window.
	produced := make(chan time.Time, 1)
	go func() {
		produce(200, 1)
		produced <- time.Now()
	}()
	msgs, err = s.fetchBatch(ctx, r, idle)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(<-produced)
	if len(msgs) != 1 {
		t.Errorf("got %d events, want the 1 produced", len(msgs))
	}
	if took >= window/2 {
		t.Errorf("a lone edit's batch went %v after it was produced: it waited for the %v window", took, window)
	}
}
