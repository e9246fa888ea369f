package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/detailpage/detailpage/go/internal/backoff"
)

// spec is how to run one component.
type spec struct {
	name       string
	addr       string
	healthWait time.Duration            // how long Start waits for health
	command    func() ([]string, error) // argv; may write config files first
	env        []string                 // added to the parent's environment
	healthy    func(ctx context.Context) error
}

// State is where a component is in its life.
type State string

// The states of a component.
const (
	StateStopped    State = "stopped"    // never started, or stopped or killed on purpose (Stop, Kill)
	StateStarting   State = "starting"   // Start is waiting for its health check
	StateRunning    State = "running"    // its process passed its health check
	StateBackoff    State = "backoff"    // it exited unasked; the supervisor waits before restarting it
	StateRestarting State = "restarting" // restarted, waiting for its health check
	StateCrashLoop  State = "crash-loop" // restarted too often: left down
	StateExited     State = "exited"     // it exited unasked and is not supervised (SetRestart(false))
)

// Status is a component's state as the CLI and the tests read it.
type Status struct {
	Name     string
	State    State
	Restarts int    // restarts by the supervisor since the last Start
	LastExit string // how the last unasked exit ended ("" if none)
	Pid      int    // 0 when no process runs
	LogPath  string
}

// EventKind says what an Event reports.
type EventKind string

// The kinds of Event.
const (
	EventExited    EventKind = "exited"     // exited unasked; a restart follows after Wait (unless Restart is 0: not supervised)
	EventRestarted EventKind = "restarted"  // restarted and healthy again
	EventCrashLoop EventKind = "crash-loop" // exited once more after too many restarts: left down
)

// Event is news from a component's supervisor.
type Event struct {
	Component string
	Kind      EventKind
	Exit      string        // exited, crash-loop: how the process ended
	Restart   int           // which restart (0 for an unsupervised exit)
	Wait      time.Duration // exited: the backoff before the restart
	Down      time.Duration // restarted: from the exit until healthy again
	LogPath   string
}

// Component is one process of the topology. Its process runs in its own
// process group, so Kill and Pause reach nginx workers as well as the master.
//
// Once started, a component is supervised: when its process exits without
// having been asked to (a crash, a SIGKILL from outside), it is started
// again on the same data and ports after a backoff, and counts as up only
// once its health check passes again. Stop and Kill are the deliberate
// ends: after them nothing restarts until the next Start.
type Component struct {
	spec    spec
	log     *slog.Logger // exits and restarts
	logPath string
	policy  RestartPolicy
	events  chan<- Event // the topology's Events channel; sends never block

	mu       sync.Mutex
	proc     *process // the current (or last) process
	halted   bool     // Stop or Kill was asked: exits are expected, nothing restarts
	restart  bool     // restart on an unasked exit
	state    State
	restarts int
	lastExit string
	cancel   context.CancelFunc // ends the supervisor (its backoff or health wait)
	sup      sync.WaitGroup     // the supervisor goroutine, while one runs
}

// process is one run of a component's command.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, set before done closes
	killed  bool          // killed by the topology itself (a failed health check)
	upSince time.Time     // when it passed its health check
}

func newComponent(s spec, cfg Config, events chan<- Event) *Component {
	p := cfg.Restart
	if p.isZero() {
		p = DefaultRestartPolicy()
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Component{
		log:     log,
		spec:    s,
		logPath: filepath.Join(cfg.VarDir, "logs", s.name+".log"),
		policy:  p,
		events:  events,
		restart: !slices.Contains(cfg.NoRestart, s.name),
		state:   StateStopped,
	}
}

// Name is the component's name.
func (c *Component) Name() string { return c.spec.name }

// Addr is the loopback address it serves on.
func (c *Component) Addr() string { return c.spec.addr }

// LogPath is where its output goes.
func (c *Component) LogPath() string { return c.logPath }

// SetRestart turns the supervisor's restarts of this component on or off
// (Config.NoRestart sets it off from the start). Off, a process that
// exits unasked stays down (StateExited): a test can kill it for good.
func (c *Component) SetRestart(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.restart = on
}

// Status returns the component's state.
func (c *Component) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Name: c.Name(), State: c.state, Restarts: c.restarts, LastExit: c.lastExit, LogPath: c.logPath}
	if c.runningLocked() {
		st.Pid = c.proc.cmd.Process.Pid
	}
	return st
}

// Running reports whether its process is alive (paused counts as alive).
func (c *Component) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked()
}

func (c *Component) runningLocked() bool {
	if c.proc == nil {
		return false
	}
	select {
	case <-c.proc.done:
		return false
	default:
		return true
	}
}

// Pid is the process id, 0 when not running.
func (c *Component) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.runningLocked() {
		return 0
	}
	return c.proc.cmd.Process.Pid
}

// Start starts the process, waits until it is healthy and supervises it
// from then on.
func (c *Component) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.runningLocked() {
		c.mu.Unlock()
		return fmt.Errorf("topology: %s already running", c.Name())
	}
	switch c.state {
	case StateStopped, StateCrashLoop, StateExited:
	default: // its process just ended and the supervisor is on it
		c.mu.Unlock()
		return fmt.Errorf("topology: %s is being restarted by its supervisor (%s)", c.Name(), c.state)
	}
	c.halted, c.state, c.restarts, c.lastExit = false, StateStarting, 0, ""
	c.mu.Unlock()
	// An earlier supervisor (its component crash-looped or exited
	// unsupervised) has ended or is about to: nothing of it may overlap.
	c.sup.Wait()

	p, err := c.startProcess(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.state = StateStopped
		return err
	}
	if c.halted { // Stop or Kill came during the start
		c.state = StateStopped
		return fmt.Errorf("topology: %s stopped while starting", c.Name())
	}
	c.state = StateRunning
	if c.cancel != nil {
		c.cancel() // the last supervisor's, which has ended
	}
	sctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.sup.Add(1)
	go c.supervise(sctx, p)
	return nil
}

var errHalted = errors.New("stopped on purpose")

// startProcess runs the command and waits for the health check. On a
// failed health check it kills what it started and waits for it.
func (c *Component) startProcess(ctx context.Context) (*process, error) {
	c.mu.Lock()
	if c.halted {
		c.mu.Unlock()
		return nil, fmt.Errorf("topology: %s: %w", c.Name(), errHalted)
	}
	argv, err := c.spec.command()
	if err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("topology: %s: %w", c.Name(), err)
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("topology: %s: %w", c.Name(), err)
	}
	fmt.Fprintf(logf, "\n==> %s start %s\n", time.Now().Format(time.RFC3339), argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), c.spec.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.mu.Unlock()
		return nil, fmt.Errorf("topology: start %s: %w", c.Name(), err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	c.proc = p
	c.mu.Unlock()
	// The one goroutine per process: it ends when the process does.
	go func() {
		werr := cmd.Wait()
		// The rest of its process group goes too: nginx workers outlive a
		// killed master and would keep its port from the restart. (The group
		// id cannot be reused while a member lives; an empty group is ESRCH.)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		c.mu.Lock()
		expected := c.halted || p.killed
		c.mu.Unlock()
		if !expected {
			fmt.Fprintf(logf, "\n==> %s exited unexpectedly: %v\n", time.Now().Format(time.RFC3339), exitStatus(werr))
		}
		logf.Close()
		p.err = werr
		close(p.done)
	}()
	if err := c.waitHealthy(ctx, p, c.spec.healthWait); err != nil {
		c.mu.Lock()
		p.killed = true
		c.mu.Unlock()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			return nil, errors.Join(err, errors.New("topology: "+c.Name()+" survived SIGKILL"))
		}
		return nil, err
	}
	c.mu.Lock()
	p.upSince = time.Now()
	c.mu.Unlock()
	return p, nil
}

// exitStatus says how a process ended, for logs.
func exitStatus(werr error) string {
	if werr == nil {
		return "exit status 0"
	}
	return werr.Error()
}

// supervise runs while the component is started: it waits for its
// process to end and, if nobody asked for that, restarts it after the
// backoff, until the component crash-loops or ctx ends (Stop, Kill).
func (c *Component) supervise(ctx context.Context, p *process) {
	defer c.sup.Done()
	hist := newRestartHistory(c.policy)
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
		}
		exitedAt := time.Now()
		c.mu.Lock()
		if c.halted {
			c.mu.Unlock()
			return
		}
		exit := exitStatus(p.err)
		c.lastExit = exit
		if !c.restart {
			c.state = StateExited
			c.mu.Unlock()
			c.log.Warn("topology: component exited unexpectedly; not restarted (supervision off for it)",
				"component", c.Name(), "status", exit, "log", c.logPath)
			c.emit(Event{Component: c.Name(), Kind: EventExited, Exit: exit, LogPath: c.logPath})
			return
		}
		wait, loop := hist.exited(exitedAt, p.upSince)
		if loop {
			c.state = StateCrashLoop
			n := c.restarts
			c.mu.Unlock()
			c.log.Error("topology: component is in a crash loop; left down, the rest keep running",
				"component", c.Name(), "status", exit, "restarts", n, "within", c.policy.LoopWindow, "log", c.logPath)
			c.emit(Event{Component: c.Name(), Kind: EventCrashLoop, Exit: exit, Restart: n, LogPath: c.logPath})
			return
		}
		c.restarts++
		n := c.restarts
		c.state = StateBackoff
		c.mu.Unlock()
		c.log.Warn("topology: component exited unexpectedly; restarting",
			"component", c.Name(), "status", exit, "restart", n, "in", wait, "log", c.logPath)
		c.emit(Event{Component: c.Name(), Kind: EventExited, Exit: exit, Restart: n, Wait: wait, LogPath: c.logPath})
		if backoff.Sleep(ctx, wait) != nil {
			return
		}
		c.mu.Lock()
		c.state = StateRestarting
		c.mu.Unlock()
		np, err := c.startProcess(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, errHalted) {
				return
			}
			c.log.Warn("topology: restart failed", "component", c.Name(), "restart", n, "err", err, "log", c.logPath)
			// a restart that never got healthy counts as one more exit
			done := make(chan struct{})
			close(done)
			p = &process{done: done, err: err}
			continue
		}
		c.mu.Lock()
		if c.halted {
			c.mu.Unlock()
			return
		}
		c.state = StateRunning
		c.mu.Unlock()
		down := time.Since(exitedAt)
		c.log.Info("topology: component restarted and healthy", "component", c.Name(), "restart", n, "down", down.Round(time.Millisecond))
		c.emit(Event{Component: c.Name(), Kind: EventRestarted, Restart: n, Down: down, LogPath: c.logPath})
		p = np
	}
}

// emit passes news on without ever blocking the supervisor.
func (c *Component) emit(e Event) {
	if c.events == nil {
		return
	}
	select {
	case c.events <- e:
	default: // the channel is full of earlier news; nobody is reading
	}
}

// WaitHealthy polls the health check until it passes, the process exits or
// the wait runs out.
func (c *Component) WaitHealthy(ctx context.Context, wait time.Duration) error {
	c.mu.Lock()
	p := c.proc
	c.mu.Unlock()
	if p == nil {
		return fmt.Errorf("topology: %s was never started", c.Name())
	}
	return c.waitHealthy(ctx, p, wait)
}

func (c *Component) waitHealthy(ctx context.Context, p *process, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var last error
	for {
		hctx, hcancel := context.WithTimeout(ctx, time.Second)
		last = c.spec.healthy(hctx)
		hcancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("topology: %s exited during start (see %s)", c.Name(), c.logPath)
		case <-ctx.Done():
			return fmt.Errorf("topology: %s not healthy after %s: %v (see %s)", c.Name(), wait, last, c.logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// signal sends sig to the component's process group.
func (c *Component) signal(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.runningLocked() {
		return fmt.Errorf("topology: %s is not running", c.Name())
	}
	return syscall.Kill(-c.proc.cmd.Process.Pid, sig)
}

// halt marks the component stopped on purpose and ends its supervisor's
// backoff or health wait; it returns the current process, if any runs.
func (c *Component) halt() *process {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.halted = true
	if c.cancel != nil {
		c.cancel()
	}
	if !c.runningLocked() {
		return nil
	}
	return c.proc
}

// settle waits for the supervisor to end and records the component as
// stopped.
func (c *Component) settle() {
	c.sup.Wait()
	c.mu.Lock()
	c.state = StateStopped
	c.mu.Unlock()
}

func waitProcess(p *process, d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop asks the process to stop (SIGTERM, after SIGCONT in case it is
// paused) and waits; after 10 s it is killed. A stopped component is not
// restarted; a component waiting in backoff simply stays down.
func (c *Component) Stop() error {
	p := c.halt()
	defer c.settle()
	if p == nil {
		return nil
	}
	pgid := -p.cmd.Process.Pid
	if err := syscall.Kill(pgid, syscall.SIGCONT); err != nil && !waitProcess(p, 0) {
		return fmt.Errorf("topology: stop %s: %w", c.Name(), err)
	}
	if err := syscall.Kill(pgid, syscall.SIGTERM); err != nil && !waitProcess(p, 0) {
		return fmt.Errorf("topology: stop %s: %w", c.Name(), err)
	}
	if waitProcess(p, 10*time.Second) {
		return nil
	}
	err := fmt.Errorf("topology: %s did not stop within 10s; killed", c.Name())
	if kerr := kill(c.Name(), p); kerr != nil {
		return errors.Join(err, kerr)
	}
	return err
}

// Kill kills the whole process group with SIGKILL and waits for it. Like
// Stop it is deliberate: the supervisor does not restart the component.
// (To test the supervisor, signal the process from outside instead.)
func (c *Component) Kill() error {
	p := c.halt()
	defer c.settle()
	if p == nil {
		return nil // down already (maybe in backoff): it stays down
	}
	return kill(c.Name(), p)
}

func kill(name string, p *process) error {
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !waitProcess(p, 0) {
		return fmt.Errorf("topology: kill %s: %w", name, err)
	}
	if !waitProcess(p, 10*time.Second) {
		return errors.New("topology: " + name + " survived SIGKILL")
	}
	return nil
}

// Pause freezes the process group (SIGSTOP): it holds its sockets but
// answers nothing, like a hung server. The supervisor leaves a paused
// process alone (it has not exited).
func (c *Component) Pause() error { return c.signal(syscall.SIGSTOP) }

// Resume continues a paused process group (SIGCONT).
func (c *Component) Resume() error { return c.signal(syscall.SIGCONT) }

// Restart stops the component and starts it again on the same data.
func (c *Component) Restart(ctx context.Context) error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.Start(ctx)
}
