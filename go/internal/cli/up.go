package cli

import (
	"context"
	"fmt"
	"io"
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
	ports := topology.DefaultPorts()
	topo, err := topology.New(topology.Config{
		Root: *root, VarDir: *varDir, Binary: bin, Ports: ports, AdminToken: token,
		SeedProducts: *products, SeedShops: *shops, Progress: stdout, NoSentinel: *noSentinel,
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
  admin token  %s
  app admin    curl -H 'Authorization: Bearer %s' %s/_admin/status
  dist admin   curl -H 'Authorization: Bearer %s' %s/_admin/status
  source API   %s/api/products/1
  logs         %s

Press Ctrl-C to stop everything.
`, topology.URL(ports.Dist), token, token, topology.URL(ports.App1), token, topology.URL(ports.DistAdmin),
		topology.URL(ports.Source), filepath.Join(cfg.VarDir, "logs"))
	exited := topo.Exited()
	for {
		select {
		case <-ctx.Done():
			return nil
		case name := <-exited:
			fmt.Fprintf(stderr, "detailpage: %s exited unexpectedly; see %s\n", name, topo.Component(name).LogPath())
		}
	}
}
