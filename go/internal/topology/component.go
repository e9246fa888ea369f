package topology

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
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

// Component is one process of the topology. Its process runs in its own
// process group, so Kill and Pause reach nginx workers as well as the master.
type Component struct {
	spec       spec
	logPath    string
	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{} // closed when the current process has exited
	stopping   bool
	unexpected chan<- string // the topology's Exited channel: this component's name on an unasked-for exit
}

func newComponent(s spec, cfg Config, unexpected chan<- string) *Component {
	return &Component{
		spec:       s,
		logPath:    filepath.Join(cfg.VarDir, "logs", s.name+".log"),
		unexpected: unexpected,
	}
}

// Name is the component's name.
func (c *Component) Name() string { return c.spec.name }

// Addr is the loopback address it serves on.
func (c *Component) Addr() string { return c.spec.addr }

// LogPath is where its output goes.
func (c *Component) LogPath() string { return c.logPath }

// Running reports whether its process is alive (paused counts as alive).
func (c *Component) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked()
}

func (c *Component) runningLocked() bool {
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.done:
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
	return c.cmd.Process.Pid
}

// Start starts the process and waits until it is healthy.
func (c *Component) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.runningLocked() {
		c.mu.Unlock()
		return fmt.Errorf("topology: %s already running", c.Name())
	}
	argv, err := c.spec.command()
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("topology: %s: %w", c.Name(), err)
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.mu.Unlock()
		return fmt.Errorf("topology: %s: %w", c.Name(), err)
	}
	fmt.Fprintf(logf, "\n==> %s start %s\n", time.Now().Format(time.RFC3339), argv)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), c.spec.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.mu.Unlock()
		return fmt.Errorf("topology: start %s: %w", c.Name(), err)
	}
	done := make(chan struct{})
	c.cmd, c.done, c.stopping = cmd, done, false
	c.mu.Unlock()
	// The one goroutine per process: it ends when the process does, and
	// Stop and Kill wait for it (done).
	go func() {
		werr := cmd.Wait()
		c.mu.Lock()
		expected := c.stopping
		c.mu.Unlock()
		if !expected {
			fmt.Fprintf(logf, "\n==> %s exited unexpectedly: %v\n", time.Now().Format(time.RFC3339), werr)
		}
		logf.Close()
		close(done)
		if !expected {
			select {
			case c.unexpected <- c.Name():
			default: // the channel is full of earlier news; nobody is reading
			}
		}
	}()
	if err := c.WaitHealthy(ctx, c.spec.healthWait); err != nil {
		if kerr := c.Kill(); kerr != nil {
			return errors.Join(err, kerr)
		}
		return err
	}
	return nil
}

// WaitHealthy polls the health check until it passes, the process exits or
// the wait runs out.
func (c *Component) WaitHealthy(ctx context.Context, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	var last error
	for {
		hctx, hcancel := context.WithTimeout(ctx, time.Second)
		last = c.spec.healthy(hctx)
		hcancel()
		if last == nil {
			return nil
		}
		select {
		case <-done:
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
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		c.stopping = true
	}
	return syscall.Kill(-c.cmd.Process.Pid, sig)
}

func (c *Component) wait(d time.Duration) bool {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// Stop asks the process to stop (SIGTERM, after SIGCONT in case it is
// paused) and waits; after 10 s it is killed.
func (c *Component) Stop() error {
	if !c.Running() {
		return nil
	}
	if err := c.signal(syscall.SIGCONT); err != nil {
		if !c.Running() {
			return nil // it exited meanwhile
		}
		return err
	}
	if err := c.signal(syscall.SIGTERM); err != nil {
		if !c.Running() {
			return nil
		}
		return err
	}
	if c.wait(10 * time.Second) {
		return nil
	}
	err := fmt.Errorf("topology: %s did not stop within 10s; killed", c.Name())
	if kerr := c.Kill(); kerr != nil {
		return errors.Join(err, kerr)
	}
	return err
}

// Kill kills the whole process group with SIGKILL and waits for it.
func (c *Component) Kill() error {
	if err := c.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !c.wait(10 * time.Second) {
		return errors.New("topology: " + c.Name() + " survived SIGKILL")
	}
	return nil
}

// Pause freezes the process group (SIGSTOP): it holds its sockets but
// answers nothing, like a hung server.
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
