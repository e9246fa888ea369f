package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/httpapi"
)

// TestHystrixStreamHeadersAtOnce: /hystrix.stream answers its headers at
// once, before any event (hystrix-go sends them with its first event, and
// a process with no command never sends one).
func TestHystrixStreamHeadersAtOnce(t *testing.T) {
	silent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(httpapi.NewEngine(slog.New(slog.DiscardHandler), httpapi.Telemetry{Stream: silent}, func(context.Context) error { return nil }))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/hystrix.stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no headers from a stream with no event: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("%d %q, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
