package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

func TestStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, http.StatusOK},
		{"validation", &catalog.ValidationError{Reason: "name: required"}, http.StatusBadRequest},
		{"wrapped validation", fmt.Errorf("edit product 1: %w", &catalog.ValidationError{Reason: "x"}), http.StatusBadRequest},
		{"bad id", func() error { _, err := catalog.ParseID("x1"); return err }(), http.StatusBadRequest},
		{"bad id list", func() error { _, err := catalog.ParseIDList("1,,2"); return err }(), http.StatusBadRequest},
		{"not found", catalog.ErrNotFound, http.StatusNotFound},
		{"wrapped not found", fmt.Errorf("product 7: %w", catalog.ErrNotFound), http.StatusNotFound},
		{"not found through Permanent", resilience.Permanent{Err: catalog.ErrNotFound}, http.StatusNotFound},
		{"unavailable", fmt.Errorf("rebuild: %w", catalog.ErrUnavailable), http.StatusServiceUnavailable},
		{"circuit open", &resilience.Error{Command: "source.product.get", Reason: resilience.ErrCircuitOpen}, http.StatusServiceUnavailable},
		{"command failed", fmt.Errorf("get: %w", &resilience.Error{Command: "redis.main.read", Err: errors.New("EOF")}), http.StatusServiceUnavailable},
		{"deadline", fmt.Errorf("load: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{"cancelled", context.Canceled, http.StatusServiceUnavailable},
		{"anything else", errors.New("disk I/O error"), http.StatusInternalServerError},
		// Only the type decides, never the words in the message.
		{"says down, is not typed", errors.New("service down"), http.StatusInternalServerError},
		{"says not found, is not typed", errors.New("not found"), http.StatusInternalServerError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := httpapi.Status(tc.err); got != tc.want {
				t.Fatalf("Status(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

// serve runs one request through an engine whose GET /x answers with h.
func serve(t *testing.T, h gin.HandlerFunc) *httptest.ResponseRecorder {
	t.Helper()
	e := httpapi.NewEngine(slog.New(slog.DiscardHandler), httpapi.Telemetry{}, func(context.Context) error { return nil })
	e.GET("/x", h)
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	return w
}

func TestError(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		message    string
		retryAfter string
	}{
		{"bad input says why", &catalog.ValidationError{Reason: "limit: want 1 to 10"}, 400, "limit: want 1 to 10", ""},
		{"not found says what", fmt.Errorf("product 7: %w", catalog.ErrNotFound), 404, "product 7: not found", ""},
		{"unavailable asks to retry", fmt.Errorf("rebuild limit reached: %w", catalog.ErrUnavailable), 503, "rebuild limit reached: temporarily unavailable", httpapi.RetryAfter},
		{"internal hides the cause", errors.New("open /var/secret.db: permission denied"), 500, "internal error", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := serve(t, func(c *gin.Context) { httpapi.Error(c, tc.err) })
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			var body struct{ Error string }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if body.Error != tc.message {
				t.Fatalf("error %q, want %q", body.Error, tc.message)
			}
			if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tc.retryAfter)
			}
		})
	}
}

func TestErrorPage(t *testing.T) {
	page := func(status int) []byte { return fmt.Appendf(nil, "<p>page %d</p>", status) }
	for _, tc := range []struct {
		err    error
		status int
	}{
		{catalog.ErrNotFound, 404},
		{catalog.ErrUnavailable, 503},
	} {
		w := serve(t, func(c *gin.Context) { httpapi.ErrorPage(c, tc.err, page) })
		if w.Code != tc.status || w.Body.String() != fmt.Sprintf("<p>page %d</p>", tc.status) {
			t.Fatalf("%v: %d %q, want %d and its page", tc.err, w.Code, w.Body, tc.status)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
}
