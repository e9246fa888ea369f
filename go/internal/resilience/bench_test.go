package resilience_test

import (
	"context"
	"testing"

	"github.com/afex/hystrix-go/hystrix"

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

func BenchmarkCommand(b *testing.B) {
	ctx := context.Background()
	name := MustCommand(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		v, err := resilience.Do(ctx, name, work, nil)
		if err != nil {
			b.Fatal(err)
		}
		sink += v
	}
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
