// Package resiliencetest holds test helpers for code that runs resilience
// commands.
package resiliencetest

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/detailpage/detailpage/go/internal/resilience"
)

// MustConfigure configures cmds for the test (resilience.Configure, which
// fails the test on an invalid or conflicting setting) and releases them
// when it ends, so a later test may configure the names anew.
func MustConfigure(tb testing.TB, cmds ...resilience.Command) {
	tb.Helper()
	if err := resilience.Configure(cmds...); err != nil {
		tb.Fatalf("configure commands: %v", err)
	}
	tb.Cleanup(func() {
		for _, c := range cmds {
			resilience.Release(c.Name)
		}
	})
}

// LeakOptions are the goleak options for a process that uses resilience:
// hystrix-go starts two goroutines per command name that never end (its
// metric monitors, bounded by the number of names, not of calls) and the
// dashboard stream's loop; resilience has one feeder of the dashboard per
// process, parked while there are no calls.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/afex/hystrix-go/hystrix.(*metricExchange).Monitor"),
		goleak.IgnoreAnyFunction("github.com/afex/hystrix-go/hystrix.(*poolMetrics).Monitor"),
		goleak.IgnoreAnyFunction("github.com/afex/hystrix-go/hystrix.(*StreamHandler).loop"),
		goleak.IgnoreAnyFunction("github.com/detailpage/detailpage/go/internal/resilience.feedStream"),
	}
}

// VerifyNoLeaks checks, when the test ends and after every cleanup
// registered after this call has run, that no goroutine started since the
// call is still running. Call it first in a test.
func VerifyNoLeaks(tb testing.TB) {
	tb.Helper()
	opts := append(LeakOptions(), goleak.IgnoreCurrent())
	tb.Cleanup(func() {
		if err := goleak.Find(opts...); err != nil {
			tb.Errorf("goroutines left behind: %v", err)
		}
	})
}
