package topology

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// mustProcTopology is a topology of one component, "proc", running argv,
// healthy as soon as it runs (or, with failHealth, never).
func mustProcTopology(tb testing.TB, cfg Config, failHealth bool, argv ...string) *Topology {
	tb.Helper()
	cfg.VarDir = tb.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg.VarDir, "logs"), 0o755); err != nil {
		tb.Fatal(err)
	}
	s := spec{
		name: "proc", addr: "127.0.0.1:0", healthWait: time.Second,
		command: func() ([]string, error) { return argv, nil },
		healthy: func(context.Context) error {
			if failHealth {
				return errors.New("never healthy")
			}
			return nil
		},
	}
	t := &Topology{cfg: cfg, comps: map[string]*Component{}, order: []string{s.name}, events: make(chan Event, 64)}
	t.cfg.Progress = io.Discard
	t.comps[s.name] = newComponent(s, cfg, t.events)
	return t
}

func mustSleeperTopology(tb testing.TB, cfg Config, failHealth bool) *Topology {
	return mustProcTopology(tb, cfg, failHealth, "sleep", "60")
}

// nextEvent waits for the next supervisor event.
func nextEvent(tb testing.TB, topo *Topology) Event {
	tb.Helper()
	select {
	case e := <-topo.Events():
		return e
	case <-time.After(10 * time.Second):
		tb.Fatal("no supervisor event within 10 s")
		return Event{}
	}
}

func noEvent(tb testing.TB, topo *Topology, when string) {
	tb.Helper()
	select {
	case e := <-topo.Events():
		tb.Errorf("%s: unexpected event %+v", when, e)
	default:
	}
}

// A process killed from outside is restarted on the same command, counts
// as up again once healthy, and the log says how it ended; once the
// topology is stopped no goroutine of it is left and nothing restarts.
func TestSupervisorRestartsAKilledProcess(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	topo := mustSleeperTopology(t, Config{}, false)
	for range 100 {
		topo.Events() // starts nothing
	}
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := topo.Component("proc")
	first := c.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil { // not through Kill: unasked
		t.Fatal(err)
	}
	e := nextEvent(t, topo)
	if e.Kind != EventExited || e.Restart != 1 || e.Exit != "signal: killed" || e.Wait != 100*time.Millisecond || e.LogPath != c.LogPath() {
		t.Errorf("first event %+v, want exited by signal: killed, restart 1 in 100ms", e)
	}
	e = nextEvent(t, topo)
	if e.Kind != EventRestarted || e.Restart != 1 {
		t.Errorf("second event %+v, want restarted", e)
	}
	st := c.Status()
	if st.State != StateRunning || st.Restarts != 1 || st.LastExit != "signal: killed" || st.Pid == 0 || st.Pid == first {
		t.Errorf("status after the restart %+v (first pid %d)", st, first)
	}
	b, err := os.ReadFile(c.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "exited unexpectedly: signal: killed") || strings.Count(string(b), "start [sleep 60]") != 2 {
		t.Errorf("the log does not show the exit and the restart:\n%s", b)
	}

	if err := topo.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if c.Running() || c.Status().State != StateStopped {
		t.Fatalf("after Stop: %+v", c.Status())
	}
	noEvent(t, topo, "after Stop")
	// and Start supervises again, from a clean count
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st.State != StateRunning || st.Restarts != 0 {
		t.Errorf("after a new Start: %+v", st)
	}
	if err := topo.Stop(); err != nil {
		t.Fatal(err)
	}
}

// Kill and Stop are deliberate: nothing restarts and nothing is reported.
func TestKillIsNotRestarted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	topo := mustSleeperTopology(t, Config{}, false)
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := topo.Component("proc")
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if c.Running() || c.Status().State != StateStopped {
		t.Fatalf("after Kill: %+v", c.Status())
	}
	noEvent(t, topo, "after Kill")
	if err := topo.Stop(); err != nil {
		t.Fatal(err)
	}
}

// A component the supervisor is told not to restart stays down after a
// crash, and that is reported.
func TestNoRestartLeavesItDown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	topo := mustSleeperTopology(t, Config{NoRestart: []string{"proc"}}, false)
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := topo.Component("proc")
	if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, topo); e.Kind != EventExited || e.Restart != 0 {
		t.Errorf("event %+v, want exited, no restart", e)
	}
	if st := c.Status(); st.State != StateExited || st.Restarts != 0 || c.Running() {
		t.Errorf("status %+v, want exited and down", st)
	}
	// SetRestart turns it back on for the next Start.
	c.SetRestart(true)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, topo); e.Kind != EventExited || e.Restart != 1 {
		t.Errorf("event %+v, want exited, restart 1", e)
	}
	if err := topo.Stop(); err != nil {
		t.Fatal(err)
	}
}

// A process that keeps exiting is restarted LoopRestarts times, then left
// down in a crash loop; Stop still ends everything.
func TestCrashLoopLeftDown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	fast := DefaultRestartPolicy()
	fast.Backoff = backoff.Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}
	topo := mustProcTopology(t, Config{Restart: fast}, false, "sh", "-c", "sleep 0.05; exit 3")
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := topo.Component("proc")
	var last Event
	for last.Kind != EventCrashLoop {
		last = nextEvent(t, topo)
	}
	if last.Restart != 5 || last.Exit != "exit status 3" {
		t.Errorf("crash-loop event %+v, want after 5 restarts, exit status 3", last)
	}
	if st := c.Status(); st.State != StateCrashLoop || st.Restarts != 5 || c.Running() {
		t.Errorf("status %+v, want crash-loop after 5 restarts, down", st)
	}
	if err := topo.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := c.Status(); st.State != StateStopped {
		t.Errorf("after Stop: %+v", st)
	}
}

// Stop during the backoff ends the wait at once: no restart follows, and
// no goroutine is left.
func TestStopDuringBackoff(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	slow := DefaultRestartPolicy()
	slow.Backoff = backoff.Policy{Base: time.Hour, Max: time.Hour}
	topo := mustProcTopology(t, Config{Restart: slow}, false, "sh", "-c", "sleep 0.05; exit 3")
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := topo.Component("proc")
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := c.Status(); st.State != StateBackoff {
			return fmt.Errorf("state %s, want backoff", st.State)
		}
		return nil
	})
	if err := c.Start(t.Context()); err == nil || !strings.Contains(err.Error(), "being restarted") {
		t.Errorf("Start during the backoff = %v, want refused", err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- topo.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop waited for the backoff")
	}
	if st := c.Status(); st.State != StateStopped || c.Running() {
		t.Errorf("after Stop: %+v", st)
	}
}

// The rest of a dead leader's process group goes with it, as nginx
// workers must when their master is killed, so the restart can bind.
func TestExitKillsTheProcessGroup(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	topo := mustProcTopology(t, Config{}, false, "sh", "-c", "sleep 60 & echo $! > "+pidFile+"; exec sleep 61")
	if err := topo.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	var child int
	testutil.Eventually(t, 10*time.Second, func() error {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return err
		}
		child, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err
	})
	c := topo.Component("proc")
	if err := syscall.Kill(c.Pid(), syscall.SIGKILL); err != nil { // the leader only
		t.Fatal(err)
	}
	if e := nextEvent(t, topo); e.Kind != EventExited {
		t.Fatalf("event %+v", e)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if alive(child) {
			return fmt.Errorf("the leader's child %d outlived it", child)
		}
		return nil
	})
	if err := topo.Stop(); err != nil {
		t.Fatal(err)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// A component that never gets healthy is killed and Start says why.
func TestStartFailureStopsWhatStarted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	topo := mustSleeperTopology(t, Config{}, true)
	err := topo.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), "not healthy") {
		t.Fatalf("Start = %v, want not healthy", err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if topo.Component("proc").Running() {
			return errors.New("still running after the failed start")
		}
		return nil
	})
	noEvent(t, topo, "after a failed start")
}
