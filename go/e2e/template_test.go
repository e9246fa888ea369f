package e2e

import (
	"net/http"
	"strings"
	"testing"
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
