// Package resilience puts every call to another process behind a named
// Hystrix command (github.com/afex/hystrix-go): a timeout that cancels the
// call's context, a concurrency bound, a circuit breaker and a fallback.
//
// Business outcomes (a record that does not exist, a rejected input) are
// not dependency failures: they pass through without tripping the circuit.
package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afex/hystrix-go/hystrix"
)

// Command is the configuration of one dependency operation.
type Command struct {
	Name                   string
	Timeout                time.Duration
	MaxConcurrent          int
	RequestVolumeThreshold int
	ErrorPercentThreshold  int
	SleepWindow            time.Duration
}

// Configure registers commands with hystrix-go.
func Configure(cmds ...Command) {
	timeoutsMu.Lock()
	defer timeoutsMu.Unlock()
	for _, c := range cmds {
		timeouts[c.Name] = c.Timeout
		hystrix.ConfigureCommand(c.Name, hystrix.CommandConfig{
			Timeout:                int(c.Timeout.Milliseconds()),
			MaxConcurrentRequests:  c.MaxConcurrent,
			RequestVolumeThreshold: c.RequestVolumeThreshold,
			ErrorPercentThreshold:  c.ErrorPercentThreshold,
			SleepWindow:            int(c.SleepWindow.Milliseconds()),
		})
	}
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
	}
}

// Permanent marks an error as a business outcome, not a dependency failure:
// it does not count against the circuit and skips the fallback.
type Permanent struct{ Err error }

func (p Permanent) Error() string { return p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }

// Errors from the command layer itself.
var (
	ErrCircuitOpen = hystrix.ErrCircuitOpen
	ErrRejected    = hystrix.ErrMaxConcurrency
	ErrTimeout     = hystrix.ErrTimeout
)

// Do runs run as command name. run gets a context that is cancelled at the
// command's timeout, so the call underneath is aborted rather than left
// running. On failure, fallback (if not nil) gets the reason.
func Do[T any](ctx context.Context, name string, run func(context.Context) (T, error), fallback func(context.Context, error) (T, error)) (T, error) {
	type result struct {
		v    T
		perm error
	}
	var res atomic.Pointer[result] // run may outlive DoC on timeout
	timeout := timeoutOf(name)
	err := hystrix.DoC(ctx, name, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		v, err := run(rctx)
		var p Permanent
		if errors.As(err, &p) {
			res.Store(&result{perm: p.Err})
			return nil
		}
		if err != nil {
			return err
		}
		res.Store(&result{v: v})
		return nil
	}, nil)
	var zero T
	if err == nil {
		r := res.Load()
		return r.v, r.perm
	}
	if ctx.Err() != nil {
		return zero, ctx.Err()
	}
	if fallback != nil {
		return fallback(ctx, err)
	}
	return zero, fmt.Errorf("%s: %w", name, err)
}

var (
	timeoutsMu sync.RWMutex
	timeouts   = map[string]time.Duration{}
)

func timeoutOf(name string) time.Duration {
	timeoutsMu.RLock()
	defer timeoutsMu.RUnlock()
	if t, ok := timeouts[name]; ok {
		return t
	}
	return time.Duration(hystrix.DefaultTimeout) * time.Millisecond
}
