// Package resilience puts every call to another process behind a named
// Hystrix-style command: a bulkhead that bounds in-flight work, a timeout
// that cancels the call's context, a circuit breaker, a fallback with its
// own concurrency bound, panic recovery, and metrics for Prometheus and the
// Hystrix dashboard. Beside commands it offers a request collapser
// (Collapser), a per-request memo (WithRequestCache, Cached, CachedMany;
// every page aggregation in pagedoc runs under one) and fallback chains
// that record which link served (Chain; the direct-data service's read
// path is one).
//
// # What is ours and what is hystrix-go's
//
// github.com/afex/hystrix-go gives the dashboard stream (/hystrix.stream,
// hystrix.StreamHandler, compatible with the Hystrix dashboard and Turbine)
// and its per-command rolling metrics. Its execution path (hystrix.Do/GoC)
// is not used, because of the defects its open issues describe:
//
//   - the concurrency ticket is returned when the timeout fires while run
//     keeps running, so MaxConcurrentRequests does not bound in-flight work
//     and timed-out work piles up; run's context is not cancelled at the
//     timeout either;
//   - every call starts two goroutines (about 5–7 µs and 23 allocations);
//   - a panic in run kills the process (run runs on a goroutine of its own);
//   - any success reported while the circuit is open closes it, not just the
//     probe's; the breaker reads metrics that a Monitor goroutine updates
//     asynchronously, and its rolling windows read the wall clock, so its
//     state cannot be driven deterministically in a test;
//   - per-circuit Monitor goroutines never stop (goroutine "leaks").
//
// So the execution path is ours: a semaphore bulkhead whose slot is held
// until run actually returns, run called on the caller's goroutine with a
// context that is cancelled at the command's timeout, a circuit breaker
// state machine (closed → open → half-open with exactly one probe) over a
// rolling window read through time.Now (so testing/synctest drives it), and
// a separate bound for fallbacks. Every outcome is still reported to
// hystrix-go's circuit of the same name with CircuitBreaker.ReportEvent, so
// the dashboard stream shows real counts, latencies and error percentages.
// Reporting costs the caller a few atomic adds (see metrics.go): the
// outcome count, which Prometheus reads too, the duration histogram, and a
// ring of latency samples; a feeder passes the counts to hystrix-go in bulk
// every 10 ms, so the stream's counts are exact at any rate, and its
// latencies are every call's up to 512 per pass and command (beyond, the
// dropped samples are counted in detailpage_resilience_stream_dropped_total).
// The "circuit open" flag the stream
// shows is hystrix-go's own reading of the same events with the same
// thresholds; the authoritative state is the Prometheus gauge
// detailpage_resilience_circuit_state.
//
// # Outcomes
//
// A run that returns nil is a success; one that returns Permanent{err} is a
// business answer (a record that does not exist, a rejected input): it is
// returned as it is (errors.Is and errors.As see through Permanent, and an
// outer command or a Chain still knows it for a business answer), counts as
// a healthy answer and skips the fallback. A run
// that returns another error is a failure, one that ends after the timeout
// a timeout, one that panics a panic; the three count against the circuit.
// A caller whose own context ends is told ctx.Err() and nothing is counted
// against the dependency; no fallback runs for a caller that went away.
// Rejections (bulkhead full) count against the circuit as in Netflix
// Hystrix; short-circuited calls do not.
//
// run must honour its context: the caller waits for run to return (that is
// what makes the bulkhead a real bound), and run's context is cancelled at
// the timeout, so an HTTP or Redis call underneath returns at once. Calls
// of a command with the same parent context that start within 100 µs of
// each other share one run context (runctx.go): its deadline is at most
// 100 µs after a call's own, never before.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	metricCollector "github.com/afex/hystrix-go/hystrix/metric_collector"
)

// Command is the configuration of one dependency operation, e.g.
// source.product.batch or redis.main.write. Zero fields take the value of
// Defaults.
type Command struct {
	Name string
	// Timeout bounds one run; run's context is cancelled when it passes.
	Timeout time.Duration
	// MaxConcurrent bounds runs in flight; more are rejected at once.
	MaxConcurrent int
	// FallbackMaxConcurrent bounds fallbacks in flight (0: MaxConcurrent).
	FallbackMaxConcurrent int
	// RequestVolumeThreshold is the least number of calls in the rolling
	// window before the error percentage can open the circuit.
	RequestVolumeThreshold int
	// ErrorPercentThreshold opens the circuit when failures, timeouts,
	// panics and rejections reach this share (1–100) of the window's calls.
	ErrorPercentThreshold int
	// SleepWindow is how long an open circuit short-circuits before it lets
	// one probe through.
	SleepWindow time.Duration
	// Window is the rolling window of the error percentage (10 buckets).
	Window time.Duration
}

// Defaults returns a command with the settings most source calls want.
func Defaults(name string) Command {
	return Command{
		Name:                   name,
		Timeout:                time.Second,
		MaxConcurrent:          32,
		RequestVolumeThreshold: 20,
		ErrorPercentThreshold:  50,
		SleepWindow:            2 * time.Second,
		Window:                 10 * time.Second,
	}
}

// Validate reports a setting out of range. Zero values are valid: they
// mean "the default".
func (c Command) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("resilience: command name is empty")
	case c.Timeout < 0, c.SleepWindow < 0, c.Window < 0:
		return fmt.Errorf("resilience: %s: durations must not be negative", c.Name)
	case c.MaxConcurrent < 0, c.FallbackMaxConcurrent < 0, c.RequestVolumeThreshold < 0:
		return fmt.Errorf("resilience: %s: limits must not be negative", c.Name)
	case c.ErrorPercentThreshold < 0 || c.ErrorPercentThreshold > 100:
		return fmt.Errorf("resilience: %s: error percent threshold: want 1 to 100", c.Name)
	}
	return nil
}

// withDefaults fills zero fields from Defaults.
func (c Command) withDefaults() Command {
	d := Defaults(c.Name)
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = d.MaxConcurrent
	}
	if c.FallbackMaxConcurrent <= 0 {
		c.FallbackMaxConcurrent = c.MaxConcurrent
	}
	if c.RequestVolumeThreshold <= 0 {
		c.RequestVolumeThreshold = d.RequestVolumeThreshold
	}
	if c.ErrorPercentThreshold <= 0 || c.ErrorPercentThreshold > 100 {
		c.ErrorPercentThreshold = d.ErrorPercentThreshold
	}
	if c.SleepWindow <= 0 {
		c.SleepWindow = d.SleepWindow
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	return c
}

// Configure validates cmds and makes each the one configuration of its
// name. A service calls it once at start with the settings of every command
// it runs (from its flags and environment). A name has one configuration:
// configuring it again with other settings is an error, the same settings
// again are not (two holders, see Release). Nothing is applied unless every
// command is valid and free of conflicts. A command already in use keeps its
// circuit state and in-flight count; the settings apply to its next call. A
// name never configured runs with Defaults.
func Configure(cmds ...Command) error {
	return commands.configure(cmds)
}

// Release ends one holder's configuration of each name (a service calls it
// when it closes, for the names it configured). When the last holder has
// released a name, the command keeps running with its settings, and the
// next Configure may set it anew.
func Release(names ...string) {
	commands.release(names)
}

// Settings returns the settings command name runs with.
func Settings(name string) Command { return *commands.get(name).settings.Load() }

// CircuitState returns the state of command name's circuit: StateClosed,
// StateOpen or StateHalfOpen.
func CircuitState(name string) int { return int(commands.get(name).breaker.state.Load()) }

// Permanent marks an error as a business outcome, not a dependency failure:
// it does not count against the circuit and skips the fallback.
type Permanent struct{ Err error }

func (p Permanent) Error() string { return p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }

// Reasons a command did not return run's result. They come wrapped in an
// *Error naming the command: test with errors.Is.
var (
	ErrCircuitOpen      = errors.New("circuit open")
	ErrRejected         = errors.New("max concurrency")
	ErrTimeout          = errors.New("timeout")
	ErrPanic            = errors.New("panic")
	ErrFallbackRejected = errors.New("fallback max concurrency")
)

// Error is why a command failed: Reason is one of the Err* values above
// (nil for a plain failure of run) and Err the underlying error, if any.
type Error struct {
	Command string
	Reason  error
	Err     error
}

func (e *Error) Error() string {
	switch {
	case e.Reason == nil:
		return e.Command + ": " + e.Err.Error()
	case e.Err == nil:
		return e.Command + ": " + e.Reason.Error()
	}
	return e.Command + ": " + e.Reason.Error() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() []error {
	if e.Reason == nil {
		return []error{e.Err}
	}
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// PanicError is a panic in run or a fallback, recovered.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string { return fmt.Sprintf("panic: %v", p.Value) }
func (p *PanicError) Unwrap() error { return ErrPanic }

// Do runs run as command name and returns its result. run gets a context
// that is cancelled at the command's timeout. When the circuit is open, the
// bulkhead is full, or run fails, times out or panics, fallback (if not
// nil) gets the reason and its result is returned; without a fallback the
// reason is returned as an *Error. A caller whose ctx ends gets ctx.Err().
func Do[T any](ctx context.Context, name string, run func(context.Context) (T, error), fallback func(context.Context, error) (T, error)) (T, error) {
	var zero T
	c := commands.get(name)
	if err := ctx.Err(); err != nil {
		c.counts[countCancelledEarly].Add(1)
		return zero, err
	}
	s := c.settings.Load()
	start := monoNow()
	probe, ok := c.breaker.allow(start, s)
	if !ok {
		return finish(ctx, c, s, outcomeShortCircuited, 0, &Error{Command: name, Reason: ErrCircuitOpen}, fallback)
	}
	if n := c.inFlight.Add(1); n > int64(s.MaxConcurrent) {
		c.inFlight.Add(-1)
		c.breaker.result(probe, outcomeRejected, start, s)
		return finish(ctx, c, s, outcomeRejected, 0, &Error{Command: name, Reason: ErrRejected}, fallback)
	}
	rctx := c.runCtxFor(ctx, start, s.Timeout)
	v, err := call(rctx, run)
	end := monoNow()
	took := time.Duration(end - start)
	rctx.leave(c, end)
	c.inFlight.Add(-1)
	c.latency.observe(took)

	var oc outcome
	var reason error
	switch {
	case isPanic(err):
		oc, reason = outcomePanic, &Error{Command: name, Reason: ErrPanic, Err: err}
	case err == nil && took < s.Timeout:
		oc = outcomeSuccess
	case err != nil && ctx.Err() != nil:
		// The caller went away: not the dependency's fault.
		c.breaker.result(probe, outcomeCancelled, end, s)
		c.count(outcomeCancelled)
		c.report(took)
		return zero, ctx.Err()
	case took >= s.Timeout:
		oc, reason = outcomeTimeout, &Error{Command: name, Reason: ErrTimeout, Err: orDeadline(err)}
	case isPermanent(err):
		oc = outcomeBadRequest
	default:
		oc, reason = outcomeFailure, &Error{Command: name, Err: err}
	}
	c.breaker.result(probe, oc, end, s)
	switch oc {
	case outcomeSuccess:
		c.count(oc)
		c.report(took)
		return v, nil
	case outcomeBadRequest:
		c.count(oc)
		c.report(took)
		return zero, err
	}
	return finish(ctx, c, s, oc, took, reason, fallback)
}

// clockBase is the origin of monoNow.
var clockBase = time.Now()

// monoNow is the time in nanoseconds since clockBase: one read of the
// monotonic clock (time.Now reads the wall clock too). In a
// testing/synctest bubble it is the bubble's clock, as time.Now is.
func monoNow() int64 { return int64(time.Since(clockBase)) }

func orDeadline(err error) error {
	if err == nil {
		return context.DeadlineExceeded
	}
	return err
}

// call runs run, turning a panic into a *PanicError.
func call[T any](ctx context.Context, run func(context.Context) (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return run(ctx)
}

func isPermanent(err error) bool {
	var p Permanent
	return errors.As(err, &p)
}

func isPanic(err error) bool {
	if err == nil {
		return false
	}
	_, ok := err.(*PanicError)
	return ok
}

// finish counts a call that did not produce run's result and runs the
// fallback, within its own concurrency bound.
func finish[T any](ctx context.Context, c *command, s *Command, oc outcome, took time.Duration, reason error, fallback func(context.Context, error) (T, error)) (T, error) {
	c.count(oc)
	var zero T
	if fallback == nil {
		c.report(took)
		return zero, reason
	}
	if n := c.fallbackInFlight.Add(1); n > int64(s.FallbackMaxConcurrent) {
		c.fallbackInFlight.Add(-1)
		c.count(outcomeFallbackRejected)
		c.report(took)
		return zero, &Error{Command: c.name, Reason: ErrFallbackRejected, Err: reason}
	}
	v, err := call(ctx, func(ctx context.Context) (T, error) { return fallback(ctx, reason) })
	c.fallbackInFlight.Add(-1)
	if err != nil {
		c.count(outcomeFallbackFailure)
		c.report(took)
		if isPanic(err) {
			return zero, &Error{Command: c.name, Reason: ErrPanic, Err: err}
		}
		return v, err
	}
	c.count(outcomeFallbackSuccess)
	c.report(took)
	return v, nil
}

// command is the state of one named command.
type command struct {
	name             string
	settings         atomic.Pointer[Command]
	inFlight         atomic.Int64
	fallbackInFlight atomic.Int64
	breaker          breaker
	circuit          *hystrix.CircuitBreaker
	latency          durations // for Prometheus (commandCollector)
	holders          int       // Configure calls not released yet; guarded by registry.mu

	// Outcome counts (for Prometheus and the dashboard feed), latency
	// samples, hystrix-go's collector, and the counts passed on to it so
	// far (feedMu): metrics.go.
	shared    atomic.Pointer[runCtx] // the run context calls may join (runctx.go)
	counts    [numCounts]atomic.Uint64
	samples   sampleRing
	collector *metricCollector.DefaultMetricCollector
	fed       [numCounts]uint64
}

// registry holds the commands: lock-free reads of a copy-on-write map.
type registry struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*command]
}

var commands = newRegistry()

func newRegistry() *registry {
	r := &registry{}
	m := map[string]*command{}
	r.m.Store(&m)
	return r
}

// get returns command name, creating it with Defaults if it does not exist.
func (r *registry) get(name string) *command {
	if c, ok := (*r.m.Load())[name]; ok {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.getLocked(Defaults(name))
}

func (r *registry) configure(cmds []Command) error {
	want := make(map[string]Command, len(cmds))
	var errs []error
	for _, c := range cmds {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		s := c.withDefaults()
		if prev, ok := want[s.Name]; ok && prev != s {
			errs = append(errs, fmt.Errorf("resilience: %s: configured twice differently: %s", s.Name, diff(prev, s)))
		}
		want[s.Name] = s
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := *r.m.Load()
	for name, s := range want {
		if c, ok := m[name]; ok && c.holders > 0 {
			if cur := *c.settings.Load(); cur != s {
				errs = append(errs, fmt.Errorf("resilience: %s: configured twice differently: %s", name, diff(cur, s)))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, s := range want {
		c := r.getLocked(s)
		if c.holders == 0 {
			c.settings.Store(&s)
			configureHystrix(s)
		}
		c.holders++
	}
	return nil
}

func (r *registry) release(names []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, name := range names {
		if c, ok := (*r.m.Load())[name]; ok && c.holders > 0 {
			c.holders--
		}
	}
}

// diff names the settings that differ between a and b.
func diff(a, b Command) string {
	var d []string
	for _, f := range settingFields {
		if va, vb := f.get(&a), f.get(&b); va != vb {
			d = append(d, fmt.Sprintf("%s %v, then %v", f.name, va, vb))
		}
	}
	return strings.Join(d, "; ")
}

// getLocked returns command s.Name, creating it with settings s if it does
// not exist. r.mu is held.
func (r *registry) getLocked(s Command) *command {
	old := *r.m.Load()
	if c, ok := old[s.Name]; ok {
		return c
	}
	c := newCommand(s)
	m := make(map[string]*command, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[s.Name] = c
	r.m.Store(&m)
	return c
}

func newCommand(s Command) *command {
	c := &command{name: s.Name}
	c.settings.Store(&s)
	c.breaker.lastError.Store(math.MinInt64 / 2) // long before any call
	// hystrix-go sizes a circuit's pool from the settings at its creation.
	configureHystrix(s)
	c.circuit, _, _ = hystrix.GetCircuit(s.Name)
	c.collector = hystrixCollector(c.circuit)
	startFeeder()
	return c
}

func configureHystrix(s Command) {
	hystrix.ConfigureCommand(s.Name, hystrix.CommandConfig{
		Timeout:                max(1, int(s.Timeout.Milliseconds())),
		MaxConcurrentRequests:  s.MaxConcurrent,
		RequestVolumeThreshold: s.RequestVolumeThreshold,
		ErrorPercentThreshold:  s.ErrorPercentThreshold,
		SleepWindow:            max(1, int(s.SleepWindow.Milliseconds())),
	})
}

func (c *command) count(oc outcome) { c.counts[oc].Add(1) }
