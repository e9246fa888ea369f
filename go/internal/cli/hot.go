package cli

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/detailpage/detailpage/go/internal/hot"
	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

func runHot(ctx context.Context, args []string, _, stderr io.Writer) error {
	f := newFlags("hot", stderr)
	def := hot.Defaults()
	r := def.Rule
	listen := f.String("listen", "DETAILPAGE_HOT_LISTEN", def.Listen, "address of the hot API (reports, hot set, pins, top ids)")
	state := f.String("state", "DETAILPAGE_HOT_STATE", "var/hot/state.json", "file keeping pins and long-term statistics across restarts (\"\": none)")
	window := f.Duration("window", "DETAILPAGE_HOT_WINDOW", r.Window, "sliding window of the counts (a multiple of --bucket)")
	bucket := f.Duration("bucket", "DETAILPAGE_HOT_BUCKET", r.Bucket, "length of one bucket of the window")
	floor := f.EnvFloat("floor", "DETAILPAGE_HOT_FLOOR", r.Floor, "least short-term rate (req/s) of a hot id")
	ratio := f.EnvFloat("ratio", "DETAILPAGE_HOT_RATIO", r.Ratio, "a hot id's short-term rate is at least this many times the mean window rate of the --top-k busiest other ids (above 1)")
	topK := f.Int("top-k", "DETAILPAGE_HOT_TOP_K", r.TopK, "busiest ids (not hot) whose mean rate is the baseline of the rule")
	cooldown := f.Duration("cooldown", "DETAILPAGE_HOT_COOLDOWN", r.Cooldown, "a hot id leaves once its rates stayed below the rule this long")
	capacity := f.Int("capacity", "DETAILPAGE_HOT_CAPACITY", r.Capacity, "candidate ids tracked per bucket (Space-Saving; bounds memory whatever the id count)")
	maxHot := f.Int("max-hot", "DETAILPAGE_HOT_MAX_HOT", r.MaxHot, "most ids in the hot set, pinned included (the hottest are kept)")
	lvl := logLevel(f)
	none := func() ([]resilience.Command, error) { return nil, nil }
	return serve(ctx, "hot", f, args, lvl, none, func(log *slog.Logger, _ []resilience.Command, tel httpapi.Telemetry) (service, error) {
		cfg := def
		cfg.Listen, cfg.State, cfg.AdminToken = *listen, *state, os.Getenv(envToken)
		cfg.Rule = hot.Rule{Window: *window, Bucket: *bucket, Floor: *floor, Ratio: *ratio, TopK: *topK,
			Cooldown: *cooldown, Capacity: *capacity, MaxHot: *maxHot}
		return hot.Open(cfg, log, tel)
	})
}
