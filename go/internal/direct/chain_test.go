package direct

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// sourceDown takes every source service down (up again when the test ends).
func (h *harness) sourceDown(tb testing.TB) {
	tb.Helper()
	for _, k := range catalog.Kinds {
		h.admin(tb, http.MethodPost, "/_admin/faults", `{"service":"`+k.Name+`","down":true}`)
	}
	tb.Cleanup(func() { h.admin(tb, http.MethodDelete, "/_admin/faults", "") })
}

func (h *harness) admin(tb testing.TB, method, path, body string) {
	tb.Helper()
	req, _ := http.NewRequest(method, h.src+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testutil.SourceToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s: %s", method, path, resp.Status)
	}
}

// The read path below the local cache is a fallback chain: fresh (Redis
// main, else a rebuild) → the last good local copy, however old → 503. A
// product Redis says is gone is not brought back by an older copy.
func TestItemFallbackChain(t *testing.T) {
	h := MustService(t, nil)
	const id, never = 31, 32
	old, level, err := h.svc.Item(t.Context(), id)
	if err != nil || level != "source" {
		t.Fatalf("first lookup: level %q err %v", level, err)
	}
	// Far past expiry and the stale window, with Redis main and the source
	// both without it: the last good copy serves.
	h.clock.advance(h.svc.cfg.StaleTTL + time.Hour)
	rdb := h.svc.store.Client()
	if err := rdb.Del(t.Context(), redisstore.ItemKey(id), redisstore.ItemKey(never)).Err(); err != nil {
		t.Fatal(err)
	}
	h.sourceDown(t)
	doc, level, err := h.svc.Item(t.Context(), id)
	if err != nil || level != "last_good" || !bytes.Equal(doc, old) {
		t.Fatalf("source down: level %q err %v, want the last good copy", level, err)
	}
	if n := counterValue(t, h.svc.served.WithLabelValues("last_good")); n != 1 {
		t.Errorf("lookups served by last_good = %v, want 1", n)
	}
	// No copy: a clear 503.
	_, level, err = h.svc.Item(t.Context(), never)
	if !errors.Is(err, catalog.ErrUnavailable) || httpapi.Status(err) != http.StatusServiceUnavailable {
		t.Errorf("no copy: level %q err %v, want unavailable (503)", level, err)
	}
	if !strings.Contains(err.Error(), "last_good: no last good copy") {
		t.Errorf("error %q does not say why each link failed", err)
	}
	// Gone at the source (Redis holds its negative marker): not found,
	// though an older copy exists.
	if err := rdb.Set(t.Context(), redisstore.ItemKey(id), catalog.MissingJSON, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, level, err := h.svc.Item(t.Context(), id); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("gone: level %q err %v, want not found", level, err)
	}
}

// Without stale copies there is no last good link: a failed fresh read
// is a 503.
func TestItemNoLastGoodWithoutStale(t *testing.T) {
	h := MustService(t, func(c *Config) { c.Stale = false })
	const id = 33
	if _, _, err := h.svc.Item(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	h.clock.advance(time.Hour)
	if err := h.svc.store.Client().Del(t.Context(), redisstore.ItemKey(id)).Err(); err != nil {
		t.Fatal(err)
	}
	h.sourceDown(t)
	if _, level, err := h.svc.Item(t.Context(), id); !errors.Is(err, catalog.ErrUnavailable) {
		t.Errorf("level %q err %v, want unavailable", level, err)
	}
}
