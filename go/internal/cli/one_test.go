package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/testutil"
)

// TestOneFlags: bad flags and environment values stop `detailpage one`
// with an error naming what is wrong, before anything listens.
func TestOneFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"fresh 0", []string{"--fresh", "0s"}, nil, "--fresh must be positive"},
		{"cache size 1", []string{"--cache-size", "1"}, nil, "--cache-size must be at least 2"},
		{"bad source", []string{"--source", "ftp://x"}, nil, "want http://host:port"},
		{"unknown command", []string{"--commands", "source.product.batch:timeout=1s"}, nil, "not a command of this service"},
		{"bad command field", []string{"--commands", "source.price.batch:timeout=-1s"}, nil, "timeout"},
		{"bad env", nil, map[string]string{"DETAILPAGE_ONE_FRESH": "soon"}, "DETAILPAGE_ONE_FRESH"},
		{"env over default", nil, map[string]string{"DETAILPAGE_ONE_CACHE_SIZE": "0"}, "--cache-size must be at least 2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			args := append([]string{"--listen", "127.0.0.1:0", "--redis", ""}, tt.args...)
			err := runOne(context.Background(), args, &stderr, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestOneStops: `detailpage one` serves until its context ends (SIGTERM
// or SIGINT in Main), then returns nil: the server shut down, the
// follower stopped, Redis closed.
func TestOneStops(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- runOne(ctx, []string{"--listen", addr, "--redis", testutil.MustRedis(t), "--source", "http://127.0.0.1:1", "--log-level", "error"}, &stderr, &stderr)
	}()
	testutil.Eventually(t, 5*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/api/realtime/1")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runOne: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runOne did not return within 5s of its context ending")
	}
}
