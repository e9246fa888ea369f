package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/detailpage/detailpage/go/internal/topology"
)

func runUp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("up", stderr)
	root := f.String("root", "DETAILPAGE_ROOT", ".", "repository root holding lua/, nginx/ and templates/")
	varDir := f.String("var", "DETAILPAGE_VAR", "var", "directory for data and logs (kept between runs)")
	products := f.Int("seed-products", "DETAILPAGE_SEED_PRODUCTS", 10_000, "products seeded on the first start")
	shops := f.Int("seed-shops", "DETAILPAGE_SEED_SHOPS", 250, "shops seeded on the first start")
	noSentinel := f.Bool("no-sentinel", false, "the small Redis layout: main and one replica, no Sentinel and no failover")
	if err := f.parse(args); err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	token := os.Getenv(envToken)
	if token == "" {
		if token, err = topology.LoadOrCreateToken(*varDir); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	}
	// The terminal gets one line per supervisor event (below); the
	// structured record of the same events goes to a log file.
	if err := os.MkdirAll(filepath.Join(*varDir, "logs"), 0o755); err != nil {
		return err
	}
	supLog, err := os.OpenFile(filepath.Join(*varDir, "logs", "supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer supLog.Close()
	ports := topology.DefaultPorts()
	topo, err := topology.New(topology.Config{
		Root: *root, VarDir: *varDir, Binary: bin, Ports: ports, AdminToken: token,
		SeedProducts: *products, SeedShops: *shops, Progress: stdout, NoSentinel: *noSentinel,
		Log: slog.New(slog.NewJSONHandler(supLog, nil)),
	})
	if err != nil {
		return err
	}
	cfg := topo.Config()
	fmt.Fprintf(stdout, "detailpage: starting the topology (data and logs in %s)\n", cfg.VarDir)
	if err := topo.Start(ctx); err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stdout, "detailpage: stopping")
		if err := topo.Stop(); err != nil {
			fmt.Fprintf(stderr, "detailpage: %v\n", err)
		}
		fmt.Fprintln(stdout, "detailpage: stopped")
	}()
	if err := topo.WaitWarm(ctx, 5*time.Minute); err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while warming: a normal stop
		}
		return err
	}
	fmt.Fprintf(stdout, `
detailpage is up.

  page         %s/item/1.html
  console      %s/   (log in with the admin token)
  admin token  %s
  app admin    curl -H 'Authorization: Bearer %s' %s/_admin/status
  dist admin   curl -H 'Authorization: Bearer %s' %s/_admin/status
  source API   %s/api/products/1
  hot set      %s/api/hot
  realtime     %s/api/realtime/1   (price and stock the page's script shows)
  logs         %s

Press Ctrl-C to stop everything.
`, topology.URL(ports.Dist), topology.URL(ports.Console), token, token, topology.URL(ports.App1), token, topology.URL(ports.DistAdmin),
		topology.URL(ports.Source), topology.URL(ports.Hot), topology.URL(ports.Dist), filepath.Join(cfg.VarDir, "logs"))
	events := topo.Events()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	warm := true // WaitWarm saw the marker
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-events:
			fmt.Fprintln(stderr, "detailpage: "+describeEvent(e))
		case <-check.C:
			warm = reportWarm(ctx, topo, warm, stderr)
		}
	}
}

// reportWarm prints when Redis main loses its warm marker (a cold main:
// the sync service recovers it) and when it has it again; it returns
// whether main is marked warm now.
func reportWarm(ctx context.Context, topo *topology.Topology, was bool, w io.Writer) bool {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	marked, _, err := topo.MainWarm(cctx)
	switch {
	case err != nil:
		return was // main unreachable: the supervisor's lines say why
	case was && !marked:
		fmt.Fprintf(w, "detailpage: redis main is cold (warm marker dp:warm gone): the sync service preheats the hottest products and queues a full refresh; see %s\n",
			topo.Component(topology.Sync).LogPath())
	case !was && marked:
		fmt.Fprintln(w, "detailpage: redis main is warm again: catalog loaded")
	}
	return marked
}

// describeEvent is one line for the person watching `detailpage up`; a
// crash loop stands out.
func describeEvent(e topology.Event) string {
	switch e.Kind {
	case topology.EventExited:
		if e.Restart == 0 {
			return fmt.Sprintf("%s exited unexpectedly (%s) and is not supervised: it stays down; see %s", e.Component, e.Exit, e.LogPath)
		}
		return fmt.Sprintf("%s exited unexpectedly (%s); restart %d in %s; see %s", e.Component, e.Exit, e.Restart, e.Wait, e.LogPath)
	case topology.EventRestarted:
		return fmt.Sprintf("%s restarted (restart %d) and healthy again after %s down", e.Component, e.Restart, e.Down.Round(time.Millisecond))
	case topology.EventCrashLoop:
		return fmt.Sprintf(`
*** CRASH LOOP: %s exited again (%s) after %d restarts within a minute.
*** It is left down; the rest keep running. Read %s,
*** fix the cause and run detailpage up again.`, e.Component, e.Exit, e.Restart, e.LogPath)
	default:
		return fmt.Sprintf("%s: %s", e.Component, e.Kind)
	}
}
