package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// commandSeq makes command names unique even when -count runs a test again.
var commandSeq atomic.Int64

// MustCommand registers a command named after the test (hystrix-go keeps
// circuits in globals, so every test needs its own name) and returns its
// name.
func MustCommand(tb testing.TB, edit func(*resilience.Command)) string {
	tb.Helper()
	c := resilience.Defaults(fmt.Sprintf("test.%s.%d", tb.Name(), commandSeq.Add(1)))
	c.RequestVolumeThreshold = 3
	c.ErrorPercentThreshold = 10
	c.SleepWindow = time.Minute
	if edit != nil {
		edit(&c)
	}
	resilience.Configure(c)
	return c.Name
}

// fakeDependency is an httptest server standing in for another process:
// /ok answers 200, /missing 404, /broken 500, and /hang waits until the
// request's context ends, reporting that on cancelled.
type fakeDependency struct {
	URL       string
	entered   chan struct{} // a /hang request arrived
	cancelled chan struct{} // a /hang request's context ended
	hits      atomic.Int64
}

func MustFakeDependency(tb testing.TB) *fakeDependency {
	tb.Helper()
	f := &fakeDependency{entered: make(chan struct{}, 100), cancelled: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "ok")
		case "/missing":
			http.Error(w, "no such record", http.StatusNotFound)
		case "/broken":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/hang":
			f.entered <- struct{}{}
			<-r.Context().Done()
			f.cancelled <- struct{}{}
		}
	}))
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// call GETs path and maps the answer the way a source client does: 404 is
// a Permanent not-found, other non-2xx answers are failures.
func (f *fakeDependency) call(ctx context.Context, path string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", resilience.Permanent{Err: catalog.ErrNotFound}
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("dependency answered %d", resp.StatusCode)
	}
	return string(b), nil
}

// MustReceive waits for one signal on ch.
func MustReceive(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s did not happen within 10s", what)
	}
}

func TestSuccess(t *testing.T) {
	dep := MustFakeDependency(t)
	name := MustCommand(t, nil)
	fallbackCalled := false
	got, err := resilience.Do(t.Context(), name,
		func(ctx context.Context) (string, error) { return dep.call(ctx, "/ok") },
		func(context.Context, error) (string, error) { fallbackCalled = true; return "", nil })
	if err != nil || got != "ok" || fallbackCalled {
		t.Fatalf("Do = %q, %v (fallback %v); want ok", got, err, fallbackCalled)
	}
}

func TestPermanentErrorsDoNotTripCircuit(t *testing.T) {
	dep := MustFakeDependency(t)
	tests := []struct {
		name        string
		path        string
		wantTrip    bool
		wantErrorIs error
	}{
		{name: "404 is permanent", path: "/missing", wantTrip: false, wantErrorIs: catalog.ErrNotFound},
		{name: "500 is a failure", path: "/broken", wantTrip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := MustCommand(t, nil)
			var fallbacks atomic.Int64
			run := func(ctx context.Context) (string, error) { return dep.call(ctx, tt.path) }
			fallback := func(_ context.Context, err error) (string, error) {
				fallbacks.Add(1)
				return "", fmt.Errorf("fallback: %w", err)
			}
			if !tt.wantTrip {
				for i := range 50 {
					_, err := resilience.Do(t.Context(), name, run, fallback)
					if !errors.Is(err, tt.wantErrorIs) || errors.Is(err, resilience.ErrCircuitOpen) {
						t.Fatalf("call %d: err = %v, want %v and a closed circuit", i, err, tt.wantErrorIs)
					}
				}
				if n := fallbacks.Load(); n != 0 {
					t.Fatalf("fallback ran %d times for permanent errors, want 0", n)
				}
				// A good request still goes through.
				got, err := resilience.Do(t.Context(), name,
					func(ctx context.Context) (string, error) { return dep.call(ctx, "/ok") }, nil)
				if err != nil || got != "ok" {
					t.Fatalf("after 404s: Do = %q, %v; want ok", got, err)
				}
				return
			}
			// Control: the same number of real failures opens the circuit,
			// after which run is not called and the fallback sees why.
			calls := 0
			testutil.Eventually(t, 5*time.Second, func() error {
				calls++
				_, err := resilience.Do(t.Context(), name, run, fallback)
				if !errors.Is(err, resilience.ErrCircuitOpen) {
					return fmt.Errorf("call %d: %v, circuit not open yet", calls, err)
				}
				return nil
			})
			if calls > 50 {
				t.Fatalf("circuit opened only after %d failures", calls)
			}
			hits := dep.hits.Load()
			_, err := resilience.Do(t.Context(), name,
				func(ctx context.Context) (string, error) { return dep.call(ctx, "/ok") }, nil)
			if !errors.Is(err, resilience.ErrCircuitOpen) || !strings.Contains(err.Error(), name) {
				t.Fatalf("open circuit: err = %v, want ErrCircuitOpen naming %s", err, name)
			}
			if dep.hits.Load() != hits {
				t.Fatal("run was called while the circuit was open")
			}
		})
	}
}

func TestFallbackGetsReason(t *testing.T) {
	dep := MustFakeDependency(t)
	name := MustCommand(t, func(c *resilience.Command) { c.RequestVolumeThreshold = 1000 })
	var reason error
	got, err := resilience.Do(t.Context(), name,
		func(ctx context.Context) (string, error) { return dep.call(ctx, "/broken") },
		func(_ context.Context, err error) (string, error) { reason = err; return "stale copy", nil })
	if err != nil || got != "stale copy" {
		t.Fatalf("Do = %q, %v; want the fallback's value", got, err)
	}
	if reason == nil || !strings.Contains(reason.Error(), "500") {
		t.Fatalf("fallback reason = %v, want the dependency's failure", reason)
	}

	// Without a fallback the failure comes back named after the command.
	_, err = resilience.Do(t.Context(), name,
		func(ctx context.Context) (string, error) { return dep.call(ctx, "/broken") }, nil)
	if err == nil || !strings.HasPrefix(err.Error(), name+": ") {
		t.Fatalf("err = %v, want it prefixed with %s", err, name)
	}
}

func TestTimeoutCancelsRun(t *testing.T) {
	dep := MustFakeDependency(t)
	name := MustCommand(t, func(c *resilience.Command) { c.Timeout = 100 * time.Millisecond })
	var reason error
	start := time.Now()
	_, err := resilience.Do(t.Context(), name,
		func(ctx context.Context) (string, error) { return dep.call(ctx, "/hang") },
		func(_ context.Context, err error) (string, error) { reason = err; return "", err })
	if err == nil {
		t.Fatal("Do succeeded against a hanging dependency")
	}
	if !errors.Is(reason, resilience.ErrTimeout) && !errors.Is(reason, context.DeadlineExceeded) {
		t.Fatalf("fallback reason = %v, want a timeout", reason)
	}
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond {
		t.Fatalf("gave up after %v, before the 100ms timeout", elapsed)
	}
	MustReceive(t, dep.entered, "the request reaching the dependency")
	MustReceive(t, dep.cancelled, "the dependency seeing the request cancelled")
}

func TestCallerCancel(t *testing.T) {
	dep := MustFakeDependency(t)
	tests := []struct {
		name   string
		before bool // cancel before the call, else while it waits
	}{
		{name: "already cancelled", before: true},
		{name: "cancelled while waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := MustCommand(t, func(c *resilience.Command) { c.Timeout = 30 * time.Second })
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.before {
				cancel()
			} else {
				go func() {
					select {
					case <-dep.entered:
						cancel()
					case <-time.After(10 * time.Second):
					}
				}()
			}
			fallbackCalled := false
			_, err := resilience.Do(ctx, name,
				func(ctx context.Context) (string, error) { return dep.call(ctx, "/hang") },
				func(context.Context, error) (string, error) { fallbackCalled = true; return "fallback", nil })
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if fallbackCalled {
				t.Fatal("fallback ran for a caller that went away")
			}
			if !tt.before {
				MustReceive(t, dep.cancelled, "the dependency seeing the request cancelled")
			}
		})
	}
}

func TestMaxConcurrentRejects(t *testing.T) {
	dep := MustFakeDependency(t)
	name := MustCommand(t, func(c *resilience.Command) {
		c.MaxConcurrent = 2
		c.Timeout = 30 * time.Second
		c.RequestVolumeThreshold = 1000
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := resilience.Do(ctx, name, func(ctx context.Context) (string, error) { return dep.call(ctx, "/hang") }, nil)
			done <- err
		}()
	}
	MustReceive(t, dep.entered, "first request in flight")
	MustReceive(t, dep.entered, "second request in flight")

	hits := dep.hits.Load()
	_, err := resilience.Do(t.Context(), name, func(ctx context.Context) (string, error) { return dep.call(ctx, "/ok") }, nil)
	if !errors.Is(err, resilience.ErrRejected) {
		t.Fatalf("third concurrent call: err = %v, want ErrRejected", err)
	}
	if dep.hits.Load() != hits {
		t.Fatal("a rejected call reached the dependency")
	}
	cancel()
	for range 2 {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("in-flight calls did not end after cancel")
		}
	}
}
