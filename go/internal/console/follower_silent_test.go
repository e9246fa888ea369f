package console

import (
	"context"
	"fmt"
	"log/slog"
	"net"
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
