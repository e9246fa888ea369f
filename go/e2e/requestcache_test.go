package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// One page aggregation asks each source service for a given id at most
// once (a request cache per aggregation, docs/resilience.md), counted by
// the real source's /_admin/stats:
//   - sync: an edit of a price, whose re-read of Redis finds a segment of
//     the product's split description lost, rebuilds the product from the
//     source without asking for the price again;
//   - direct: a rebuild of a product listed among its own recommendations
//     (the page leaves it out) asks for its base and price once, though
//     both the product and its recommendations need them.
func TestRequestCache(t *testing.T) {
	ctx := t.Context()
	main := redisClient(t, shared.Config().Ports.RedisMain)
	store := redisstore.New(main)

	t.Run("sync re-read after a lost segment", func(t *testing.T) {
		const id = 6271
		marker := fmt.Sprintf("request-cache-%d", time.Now().UnixNano())
		var html strings.Builder
		for html.Len() < 200<<10 {
			html.WriteString("<p>Request cache: one aggregation, one lookup per id.</p>")
		}
		html.WriteString("<p>" + marker + "</p>")
		MustPut(t, fmt.Sprintf("/api/descriptions/%d", id), map[string]string{"html": html.String()})
		MustCaughtUp(t, shared, 30*time.Second)
		segs, err := main.Keys(ctx, redisstore.DimKey(id, catalog.DimDescription)+":*").Result()
		if err != nil || len(segs) < 2 {
			t.Fatalf("segments of the description: %v, %v; want a split value", segs, err)
		}
		if err := main.Del(ctx, segs[0]).Err(); err != nil {
			t.Fatal(err)
		}
		// A rebuild at the same version cannot replace the broken value
		// (the compare-and-set wants a newer one): a newer edit does.
		t.Cleanup(func() {
			MustPut(t, fmt.Sprintf("/api/descriptions/%d", id), map[string]string{"html": "<p>restored</p>"})
			MustCaughtUp(t, shared, 30*time.Second)
			if _, err := store.Get(context.Background(), redisstore.DimKey(id, catalog.DimDescription)); err != nil {
				t.Errorf("description of %d not repaired by a newer edit: %v", id, err)
			}
		})

		MustSourceStats(t, shared, http.MethodDelete)
		amount := fmt.Sprintf("%d.%02d", 1000+time.Now().Unix()%1000, time.Now().Nanosecond()%100)
		MustPut(t, fmt.Sprintf("/api/prices/%d", id), map[string]string{"amount": amount, "currency": "CNY"})
		testutil.Eventually(t, 10*time.Second, func() error {
			doc, err := store.Get(ctx, redisstore.ItemKey(id))
			if err != nil || !strings.Contains(string(doc), `"amount":"`+amount+`"`) || !strings.Contains(string(doc), marker) {
				return fmt.Errorf("page %d in Redis main without the new price and the whole description (%v)", id, err)
			}
			return nil
		})
		MustCaughtUp(t, shared, 30*time.Second)
		st := MustSourceStats(t, shared, http.MethodGet)
		t.Logf("source lookups for one edit: %v", lookupsOf(st))
		// The edit fetched the price; the rebuild needed every dimension,
		// the price again among them.
		for _, k := range catalog.ProductKinds {
			if got := st[k.Name].Lookups; got != 1 {
				t.Errorf("%s: %d lookups, want 1 (once per id per aggregation)", k.Name, got)
			}
		}
		if got := st[catalog.KindShop.Name].Lookups; got != 0 {
			t.Errorf("shop: %d lookups, want 0", got)
		}
	})

	t.Run("direct rebuild of a product recommending itself", func(t *testing.T) {
		const id, other = 6173, 6174
		MustPut(t, fmt.Sprintf("/api/recommendations/%d", id), map[string][]int64{"ids": {id, other}})
		MustCaughtUp(t, shared, 30*time.Second)
		// Redis main loses the product and the other product's base and
		// price: the rebuild needs all of them from the source.
		keys, err := main.Keys(ctx, redisstore.ItemKey(id)+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, redisstore.DimKey(other, catalog.DimBase), redisstore.DimKey(other, catalog.DimPrice))
		if err := main.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}

		MustSourceStats(t, shared, http.MethodDelete)
		resp, err := client.Get(fmt.Sprintf("%s/api/item/%d", topology.URL(shared.Config().Ports.Direct), id))
		if err != nil {
			t.Fatal(err)
		}
		var doc catalog.PageDoc
		decodeErr := json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || decodeErr != nil || resp.Header.Get("X-Cache") != "source" {
			t.Fatalf("direct: %s X-Cache %q (%v), want 200 rebuilt from the source", resp.Status, resp.Header.Get("X-Cache"), decodeErr)
		}
		if len(doc.Recommendations) != 1 || doc.Recommendations[0].ID != other {
			t.Errorf("recommendations %+v, want %d only", doc.Recommendations, other)
		}
		st := MustSourceStats(t, shared, http.MethodGet)
		t.Logf("source lookups for one rebuild: %v", lookupsOf(st))
		want := map[string]int64{"product": 2, "price": 2, "description": 1, "spec": 1, "stock": 1, "recommendation": 1, "shop": 0}
		for name, n := range want {
			if got := st[name].Lookups; got != n {
				t.Errorf("%s: %d lookups, want %d (%d and %d once each)", name, got, n, id, other)
			}
		}
	})
}

// MustPut PUTs body as JSON to the shared topology's source API.
func MustPut(tb testing.TB, path string, body any) {
	tb.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		tb.Fatal(err)
	}
	if status, resp := put(tb, shared, path, b); status != http.StatusOK {
		tb.Fatalf("PUT %s: %d %.200s", path, status, resp)
	}
}

func lookupsOf(st map[string]serviceStats) map[string]int64 {
	out := map[string]int64{}
	for name, s := range st {
		out[name] = s.Lookups
	}
	return out
}
