package resilience_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/afex/hystrix-go/hystrix"

	"github.com/detailpage/detailpage/go/internal/benchrow"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// The overhead of one command over calling run directly, next to a bare
// hystrix-go Do. run is the same trivial function in all three.

var sink int

//go:noinline
func work(context.Context) (int, error) { return 42, nil }

func BenchmarkDirect(b *testing.B) {
	ctx := context.Background()
	run := work
	b.ReportAllocs()
	for b.Loop() {
		v, err := run(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}

// BenchmarkCommand is the success path of one command: issue 15's row
// "resilience command overhead". ns/op is the loop's wall time over b.N;
// allocs/op counts every allocation of the process during the loop
// (runtime.MemStats, so the dashboard feed's and hystrix-go's too), as
// -benchmem does: the whole number, with the fraction beside it.
func BenchmarkCommand(b *testing.B) {
	ctx := context.Background()
	name := MustCommand(b, nil)
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		v, err := resilience.Do(ctx, name, work, nil)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
	resilience.FlushStream() // what the loop left for the dashboard feed counts too
	runtime.ReadMemStats(&after)
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	mallocs := after.Mallocs - before.Mallocs
	allocs := mallocs / uint64(b.N)
	benchrow.Record(b, benchrow.Row{
		What:   "resilience command overhead",
		Figure: fmt.Sprintf("%.0f ns/op, %d allocs/op (%.4f)", ns, allocs, float64(mallocs)/float64(b.N)),
		Target: "≤ 150 ns/op, 0 allocs",
		Met:    ns <= 150 && allocs == 0,
	})
}

func BenchmarkCommandWithFallback(b *testing.B) {
	ctx := context.Background()
	name := MustCommand(b, nil)
	fallback := func(context.Context, error) (int, error) { return 0, nil }
	b.ReportAllocs()
	for b.Loop() {
		v, err := resilience.Do(ctx, name, work, fallback)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}

func BenchmarkCommandParallel(b *testing.B) {
	name := MustCommand(b, func(c *resilience.Command) { c.MaxConcurrent = 1 << 20 })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := resilience.Do(ctx, name, work, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkHystrixDo(b *testing.B) {
	name := MustCommand(b, nil) + ".hystrix"
	hystrix.ConfigureCommand(name, hystrix.CommandConfig{Timeout: 1000, MaxConcurrentRequests: 100000})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var v int
		err := hystrix.DoC(ctx, name, func(ctx context.Context) (err error) {
			v, err = work(ctx)
			return err
		}, nil)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
}
