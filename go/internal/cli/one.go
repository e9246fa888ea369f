package cli

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/realtime"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// runOne runs the OneServer (docs/realtime.md).
func runOne(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("one", stderr)
	def := realtime.Defaults()
	listen := f.String("listen", "DETAILPAGE_LISTEN", def.Listen, "address of the realtime API (GET /api/realtime/<id>, /api/realtime?ids=, /api/regions)")
	src := f.String("source", "DETAILPAGE_SOURCE", def.SourceURL, "source services base URL (price and stock batch endpoints)")
	rds := redisFlags(f)
	fresh := f.Duration("fresh", "DETAILPAGE_ONE_FRESH", def.Fresh, "how long a local entry answers without asking the source (a dp:rt notification outdates it at once)")
	size := f.Int("cache-size", "DETAILPAGE_ONE_CACHE_SIZE", def.CacheSize, "local entries kept (one per product and part: price, stock); the oldest used go first")
	cmds := commandSettings(f, realtime.Commands())
	lvl := logLevel(f)
	return serve(ctx, "one", f, args, lvl, cmds, func(log *slog.Logger, settings []resilience.Command, tel httpapi.Telemetry) (service, error) {
		return realtime.Open(realtime.Config{
			Listen: *listen, SourceURL: *src, Redis: rds(), Fresh: *fresh, CacheSize: *size,
			AdminToken: os.Getenv(envToken), Commands: settings,
		}, log, tel)
	})
}
