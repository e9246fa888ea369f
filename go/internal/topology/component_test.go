package topology

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/detailpage/detailpage/go/internal/testutil"
)

// mustSleeperTopology is a topology of one component running `sleep 60`,
// healthy as soon as it runs (or, with failHealth, never).
func mustSleeperTopology(tb testing.TB, failHealth bool) *Topology {
	tb.Helper()
	cfg := Config{VarDir: tb.TempDir()}
	if err := os.MkdirAll(filepath.Join(cfg.VarDir, "logs"), 0o755); err != nil {
		tb.Fatal(err)
	}
	s := spec{
		name: "sleeper", addr: "127.0.0.1:0", healthWait: time.Second,
		command: func() ([]string, error) { return []string{"sleep", "60"}, nil },
		healthy: func(context.Context) error {
			if failHealth {
				return errors.New("never healthy")
			}
			return nil
		},
	}
	t := &Topology{cfg: cfg, comps: map[string]*Component{}, order: []string{s.name}, exited: make(chan string, 4)}
	t.cfg.Progress = io.Discard
	t.comps[s.name] = newComponent(s, cfg, t.exited)
	return t
}

// Exited starts nothing however often it is called, reports a process that
// dies unasked, and not one that is stopped; once the topology is stopped no
// goroutine of it is left.
func TestExitedOwnsItsGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	topo := mustSleeperTopology(t, false)
	for range 100 {
		topo.Exited()
	}
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := topo.Component("sleeper")
	if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil { // not through Kill: unasked
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		select {
		case name := <-topo.Exited():
			if name != "sleeper" {
				t.Errorf("Exited yielded %q, want sleeper", name)
			}
			return nil
		default:
			return errors.New("the unasked exit is not reported yet")
		}
	})
	b, err := os.ReadFile(c.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "exited unexpectedly: signal: killed") {
		t.Errorf("the log does not say how it exited:\n%s", b)
	}

	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := topo.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if c.Running() {
		t.Fatal("running after Stop")
	}
	select {
	case name := <-topo.Exited():
		t.Errorf("a stopped component was reported as exited: %s", name)
	default:
	}
}

// A component that never gets healthy is killed and Start says why.
func TestStartFailureStopsWhatStarted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	topo := mustSleeperTopology(t, true)
	err := topo.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Fatalf("Start = %v, want not healthy", err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if topo.Component("sleeper").Running() {
			return errors.New("still running after the failed start")
		}
		return nil
	})
	select {
	case name := <-topo.Exited():
		t.Errorf("a component killed by a failed start was reported as exited: %s", name)
	default:
	}
}
