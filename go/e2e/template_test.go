package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// An empty JSON list where the template expects an object fails in pongo2
// ("can't access a field by name on type slice"), so it must fail in the
// Lua renderer of nginx too (issue 9: Lua used to render a full page from
// these, since lua-cjson decodes [] and {} alike): with no older copy, the
// 503 page from both renderers, never a page only one of them would draw.
func TestRenderEmptyListWhereObjectIs503(t *testing.T) {
	docs := map[string]string{
		"item is []":       `[]`,
		"an image is []":   `{"version":999999999,"id":ID,"shop_id":0,"name":"x","images":[[]],"category":[],"specs":[],"recommendations":[]}`,
		"a spec row is []": `{"version":999999999,"id":ID,"shop_id":0,"name":"x","images":[],"specs":[{"name":"g","items":[[]]}]}`,
	}
	ids := coldIDs(t, len(docs))
	i := 0
	for name, doc := range docs {
		id := ids[i]
		i++
		t.Run(name, func(t *testing.T) {
			doc := strings.ReplaceAll(doc, "ID", id)
			t.Cleanup(func() { restoreProduct(t, id) })
			if err := redisClient(t, shared.Config().Ports.RedisMain).Set(t.Context(), "item:{"+id+"}", doc, 0).Err(); err != nil {
				t.Fatal(err)
			}
			MustReplicaHas(t, shared, "item:{"+id+"}", doc)
			got := MustGetPage(t, pageURL(shared, id))
			if got.status != http.StatusServiceUnavailable || !strings.Contains(got.body, "Temporarily unavailable") {
				t.Fatalf("status %d, X-Cache %q: want the 503 page (both renderers refuse the document)", got.status, got.cache)
			}
		})
	}
}

// restoreProduct puts back the real page document of id after a test wrote
// a broken one into Redis: the key goes, the direct-data service rebuilds
// it from the source (writing it back to main), and the app nodes drop
// their copies. Later tests (the warm-up's top pages) read it again.
func restoreProduct(tb testing.TB, id string) {
	tb.Helper()
	key := "item:{" + id + "}"
	if err := redisClient(tb, shared.Config().Ports.RedisMain).Del(context.Background(), key).Err(); err != nil {
		tb.Fatal(err)
	}
	url := topology.URL(shared.Config().Ports.Direct) + "/api/item/" + id
	testutil.Eventually(tb, 10*time.Second, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"version":999999999`) || strings.TrimSpace(string(b)) == "[]" {
			return fmt.Errorf("direct-data %s: %d %.100s", id, resp.StatusCode, b)
		}
		return nil
	})
	n, _ := strconv.Atoi(id)
	for _, node := range []string{topology.App1, topology.App2} {
		if code, body := admin(tb, shared, node, http.MethodPost, "/_admin/purge", token, map[string]any{"ids": []int{n}}); code != http.StatusOK {
			tb.Fatalf("purge %s on %s: %d %s", id, node, code, body)
		}
	}
}
