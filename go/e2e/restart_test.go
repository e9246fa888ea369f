package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/topology"
)

// Stop the whole topology and start it again on the same data dir: an edit
// made before the stop is still on the page.
func TestRestartKeepsEdits(t *testing.T) {
	topo := MustTopology(t, topology.Config{SeedProducts: 300, SeedShops: 20})
	const id = 7
	name := "重启之后仍在 Still here after a restart " + time.Now().Format(time.RFC3339Nano)
	MustRename(t, topo, id, name)
	waitForPage(t, pageURL(topo, "7"), escape(name), 3*time.Second)

	if err := topo.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, name := range []string{"redis-main", "source", "dist"} {
		if topo.Component(name).Running() {
			t.Fatalf("%s still running after Stop", name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := topo.Start(ctx); err != nil {
		t.Fatalf("start again: %v", err)
	}
	if got := MustProduct(t, topo, id); got.Name != name {
		t.Fatalf("source lost the edit: name %q", got.Name)
	}
	waitForPage(t, pageURL(topo, "7"), escape(name), 3*time.Second)
}
