package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/detailpage/detailpage/go/internal/pagedoc"
	"github.com/detailpage/detailpage/go/internal/preheat"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// preheatCommands are the resilience commands `detailpage preheat` runs,
// the batch bulkhead admitting at least workers batches at once.
func preheatCommands(workers int) []resilience.Command {
	cmds := preheat.Commands()
	for i := range cmds {
		if cmds[i].Name == preheat.CmdBatch {
			cmds[i].MaxConcurrent = max(cmds[i].MaxConcurrent, workers)
		}
	}
	cmds = append(cmds, sourceclient.Commands()...)
	cmds = append(cmds, resilience.Defaults(sourceclient.CommandName("product", "ids")))
	return append(cmds, pagedoc.Commands()...)
}

// runPreheat is `detailpage preheat`: a one-shot that fills Redis main
// hottest first and pushes the top pages into the app nodes. Several can
// run at once with the same --run: they split the work.
func runPreheat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("preheat", stderr)
	rds := redisFlags(f)
	src := f.String("source", "DETAILPAGE_SOURCE", "http://127.0.0.1:9101", "source services base URL")
	hotList := f.String("hot", "DETAILPAGE_PREHEAT_HOT", "127.0.0.1:9104", "hot services host:port (or base URL), comma-separated, whose hour and day top lists come first (\"\": catalog order only)")
	apps := f.String("apps", "DETAILPAGE_PREHEAT_APPS", "127.0.0.1:8081,127.0.0.1:8082", "app nodes host:port (or base URL), comma-separated, that get the --push-top pages (\"\": no push)")
	size := f.Int("partition-size", "DETAILPAGE_PREHEAT_PARTITION_SIZE", preheat.DefaultPartitionSize, "products per partition (the unit one instance claims with a lease)")
	pushTop := f.Int("push-top", "DETAILPAGE_PREHEAT_PUSH_TOP", 1000, "hottest pages pushed into every app node's local cache (0: none)")
	rateBound := f.EnvFloat("rate", "DETAILPAGE_PREHEAT_RATE", 0, "most products per second this instance preheats (0: no bound)")
	lease := f.Duration("lease", "DETAILPAGE_PREHEAT_LEASE", preheat.DefaultLease, "lease TTL of a partition, renewed at a third of it; a crashed instance's partitions are taken over after it")
	run := f.String("run", "DETAILPAGE_PREHEAT_RUN", preheat.DefaultRun, "run name: instances with the same name share one plan and split it (a finished run's keys stay 10 minutes)")
	workers := f.Int("workers", "DETAILPAGE_PREHEAT_WORKERS", preheat.DefaultWorkers, "partitions this instance works on at once (the preheat.batch bulkhead is raised to at least this)")
	dry := f.EnvBool("dry-run", "DETAILPAGE_PREHEAT_DRY_RUN", false, "print the plan (order, partitions, first ids) and write nothing")
	quiet := f.EnvBool("quiet", "DETAILPAGE_PREHEAT_QUIET", false, "no progress line every second on stderr")
	nice := f.Int("nice", "DETAILPAGE_PREHEAT_NICE", 10, "CPU nice value to run at (0 to 19; 0: unchanged), so that on a busy machine the page path gets the CPU first")
	cmds := commandSettings(f, preheatCommands(0))
	lvl := logLevel(f)
	if err := f.parse(args); err != nil {
		return err
	}
	log, err := newLogger("preheat", *lvl)
	if err != nil {
		return err
	}
	// A one-shot whose live heap is a few batches: collecting four times
	// less often costs a few MB and saves most of the tenth of its CPU the
	// collector took at the default (GOGC=100). An explicit GOGC wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	over, err := cmds()
	if err != nil {
		return err
	}
	release, err := resilience.ConfigureService(preheatCommands(*workers), over)
	if err != nil {
		return err
	}
	defer release()
	if *size < 1 || *pushTop < 0 || *rateBound < 0 || *workers < 1 {
		return fmt.Errorf("preheat: --partition-size and --workers must be at least 1, --push-top and --rate not negative")
	}
	if *nice < 0 || *nice > 19 {
		return fmt.Errorf("preheat: --nice %d: want 0 to 19", *nice)
	}
	if err := lowerPriority(*nice); err != nil {
		log.Warn("preheat: cannot lower the CPU priority; running at the current one", "error", err)
	}
	client, err := sourceclient.New(*src)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	spec := rds()
	store, err := redisstore.Open(spec)
	if err != nil {
		return err
	}
	defer store.Close()
	cfg := preheat.Config{
		Store: store, Source: client, HotURLs: baseURLs(*hotList), AppNodes: baseURLs(*apps),
		AdminToken: os.Getenv(envToken), PartitionSize: *size, PushTop: *pushTop, Rate: *rateBound,
		Lease: *lease, Run: *run, Workers: *workers, Log: log,
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if *dry {
		return preheatDryRun(ctx, cfg, spec, stdout)
	}
	if cfg.PushTop > 0 && len(cfg.AppNodes) > 0 && cfg.AdminToken == "" {
		log.Warn("preheat: no admin token (" + envToken + "): the app nodes will refuse the push")
	}
	sum, err := preheat.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, preheat.ErrRedisUnreachable) {
			return fmt.Errorf("%w (redis %s)", err, spec)
		}
		return err
	}
	fmt.Fprintf(stdout, "preheat %s: %d products in %d partitions by this instance (%d by others), %d Redis values written, %d pages pushed to %d app nodes, took %s (%.0f products/s)\n",
		cfg.Run, sum.Products, sum.Partitions, sum.Skipped, sum.Written, sum.Pushed, len(cfg.AppNodes), sum.Took.Round(time.Millisecond),
		float64(sum.Products)/max(sum.Took.Seconds(), 1e-3))
	return nil
}

// preheatDryRun prints what a run would do: the plan stored for the run if
// there is one, else the one it would make.
func preheatDryRun(ctx context.Context, cfg preheat.Config, spec string, w io.Writer) error {
	var plan *preheat.Plan
	var where string
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := cfg.Store.Ping(pctx)
	cancel()
	if err == nil {
		if plan, err = preheat.ReadPlan(ctx, cfg.Store.Client(), cfg.Run); err != nil {
			return err
		}
		where = "stored in Redis for this run (instances starting now follow it)"
	} else {
		fmt.Fprintf(w, "note: redis %s unreachable (%v): a real run would fail\n", spec, err)
	}
	if plan == nil {
		if plan, err = preheat.BuildPlan(ctx, cfg); err != nil {
			return err
		}
		where = "new (no run of this name in Redis)"
	}
	fmt.Fprintf(w, "preheat dry run: run %q, nothing written\n", cfg.Run)
	fmt.Fprintf(w, "plan: %s\n", where)
	fmt.Fprintf(w, "order: %s\n", plan.Order)
	fmt.Fprintf(w, "products: %d in %d partitions of up to %d, written in batches of %d through the versioned compare-and-set\n",
		plan.Total, len(plan.Partitions), plan.PartitionSize, preheat.BatchSize)
	const shown, firstIDs = 5, 10
	for i, p := range plan.Partitions {
		if i == shown {
			fmt.Fprintf(w, "  … %d more partitions\n", len(plan.Partitions)-shown)
			break
		}
		ids := make([]string, 0, firstIDs)
		for _, id := range p[:min(firstIDs, len(p))] {
			ids = append(ids, fmt.Sprint(id))
		}
		more := ""
		if len(p) > firstIDs {
			more = " …"
		}
		fmt.Fprintf(w, "  partition %d: %d ids: %s%s\n", i, len(p), strings.Join(ids, " "), more)
	}
	rateS := "unbounded"
	if cfg.Rate > 0 {
		rateS = fmt.Sprintf("%.0f products/s", cfg.Rate)
	}
	fmt.Fprintf(w, "rate: %s; lease %s; workers %d\n", rateS, cfg.Lease, cfg.Workers)
	if cfg.PushTop > 0 && len(cfg.AppNodes) > 0 {
		fmt.Fprintf(w, "push: the first %d pages into %s\n", min(cfg.PushTop, plan.Total), strings.Join(cfg.AppNodes, ", "))
	} else {
		fmt.Fprintln(w, "push: none")
	}
	return nil
}

// baseURLs turns "host:port,http://host:port" into base URLs.
func baseURLs(list string) []string {
	var out []string
	for _, a := range splitList(list) {
		if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
			a = "http://" + a
		}
		out = append(out, strings.TrimRight(a, "/"))
	}
	return out
}
