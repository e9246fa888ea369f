package syncer

import (
	"testing"

	kafkago "github.com/segmentio/kafka-go"
)

func TestRetryHeaders(t *testing.T) {
	msg := func(h ...string) kafkago.Message {
		var m kafkago.Message
		for i := 0; i+1 < len(h); i += 2 {
			m.Headers = append(m.Headers, kafkago.Header{Key: h[i], Value: []byte(h[i+1])})
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		m       kafkago.Message
		due     int64
		attempt int
		ok      bool
	}{
		{"written by toRetry", msg(hdrAttempt, "3", hdrDue, "1700000000000"), 1700000000000, 3, true},
		{"no headers", msg(), 0, 0, false},
		{"attempt not a number", msg(hdrAttempt, "x", hdrDue, "1"), 0, 0, false},
		{"attempt zero", msg(hdrAttempt, "0", hdrDue, "1"), 0, 0, false},
		{"due missing", msg(hdrAttempt, "2"), 0, 0, false},
		{"due not a number", msg(hdrAttempt, "2", hdrDue, "soon"), 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			due, attempt, err := retryHeaders(tc.m)
			if (err == nil) != tc.ok || due != tc.due || attempt != tc.attempt {
				t.Errorf("retryHeaders = %d, %d, %v; want %d, %d, ok %v", due, attempt, err, tc.due, tc.attempt, tc.ok)
			}
		})
	}
}
