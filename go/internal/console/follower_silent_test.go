package console

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// TestFollowerSilentTarget: a target that takes the TCP connection and
// never answers is not "connected", and is asked again once the first
// watchdog period passes.
func TestFollowerSilentTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() { // ends when ln closes
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never written to
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})

	agg := newAggregator(time.Now, 3*time.Second)
	f := newFollower(agg, slog.New(slog.DiscardHandler), time.Second)
	f.firstIdle = 300 * time.Millisecond
	f.policy = backoff.Policy{Base: 10 * time.Millisecond, Max: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.run(ctx, Target{Name: "silent", URL: "http://" + ln.Addr().String()}) }()
	defer func() { cancel(); <-done }()

	var sawConnected bool
	testutil.Eventually(t, 10*time.Second, func() error {
		if f.state("silent").Connected {
			sawConnected = true
		}
		mu.Lock()
		n := len(conns)
		mu.Unlock()
		if n < 3 {
			return fmt.Errorf("%d connections so far, want 3: %w", n, errNotYet)
		}
		return nil
	})
	if sawConnected {
		t.Error("a target that never answered was shown connected")
	}
	st := f.state("silent")
	if st.Connected || !strings.Contains(st.Error, "no answer within 300ms") {
		t.Errorf("state %+v, want not connected, error naming the wait", st)
	}
}

// TestFollowerNoCommandService: a service that answers (headers) and has
// no command to report is connected, and asked again every first
// watchdog period without ever showing as retrying.
func TestFollowerNoCommandService(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked++
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer src.Close()
	f := newFollower(newAggregator(time.Now, 3*time.Second), slog.New(slog.DiscardHandler), time.Second)
	f.firstIdle = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.run(ctx, Target{Name: "quiet", URL: src.URL}) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 5*time.Second, func() error {
		if !f.state("quiet").Connected {
			return errNotYet
		}
		return nil
	})
	retrying := false
	testutil.Eventually(t, 10*time.Second, func() error {
		if !f.state("quiet").Connected {
			retrying = true
		}
		mu.Lock()
		n := asked
		mu.Unlock()
		if n < 4 {
			return fmt.Errorf("asked %d times, want 4: %w", n, errNotYet)
		}
		return nil
	})
	if retrying {
		t.Errorf("a service that answers with no command showed as retrying: %+v", f.state("quiet"))
	}
}
