package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/topology"
)

var client = &http.Client{Timeout: 10 * time.Second}

// escape is the page template's HTML escaping (pongo2's and the Lua
// renderer's): the five characters & < > " '.
var escape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace

type page struct {
	status   int
	body     string
	servedBy string
	cache    string
}

func MustGetPage(tb testing.TB, url string) page {
	tb.Helper()
	p, err := getPage(url)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func pageURL(t *topology.Topology, id string) string {
	return topology.URL(t.Config().Ports.Dist) + "/item/" + id + ".html"
}

// MustProduct reads a product from the source API.
func MustProduct(tb testing.TB, t *topology.Topology, id int64) catalog.Product {
	tb.Helper()
	p, err := getProduct(t, id)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// put sends a PUT to the source API and returns the status and body.
func put(tb testing.TB, t *topology.Topology, path string, body []byte) (int, string) {
	tb.Helper()
	status, b, err := putSource(t, path, body)
	if err != nil {
		tb.Fatal(err)
	}
	return status, b
}

// MustRename edits a product's name through the source API.
func MustRename(tb testing.TB, t *topology.Topology, id int64, name string) {
	tb.Helper()
	p := MustProduct(tb, t, id)
	p.Name = name
	p.ID, p.Version = 0, 0
	body, _ := json.Marshal(p)
	if status, resp := put(tb, t, fmt.Sprintf("/api/products/%d", id), body); status != http.StatusOK {
		tb.Fatalf("PUT product %d: %d %s", id, status, resp)
	}
}

// waitForPage polls the page until it contains want; it returns how long
// that took, or fails after limit. From other goroutines, use pageShows.
func waitForPage(tb testing.TB, url, want string, limit time.Duration) time.Duration {
	tb.Helper()
	took, err := pageShows(url, want, limit)
	if err != nil {
		tb.Fatal(err)
	}
	return took
}

func TestPageShowsProduct(t *testing.T) {
	for _, id := range []int64{1, 2, 777, 9999} {
		t.Run(fmt.Sprint(id), func(t *testing.T) {
			p := MustProduct(t, shared, id)
			got := MustGetPage(t, pageURL(shared, fmt.Sprint(id)))
			if got.status != http.StatusOK {
				t.Fatalf("status %d, want 200", got.status)
			}
			if !strings.Contains(got.body, escape(p.Name)) {
				t.Errorf("page does not show the product name %q", p.Name)
			}
			if got.servedBy != "app1" && got.servedBy != "app2" {
				// A hot id is the dist tier's to answer (the Zipf loads of
				// the hot tests can make id 1 hot for a cool-down).
				if _, hot, err := inHotSet(shared, id); err != nil || !hot || got.servedBy != "dist" || got.cache != "hot" {
					t.Errorf("X-Served-By %q X-Cache %q (hot: %v, %v), want app1 or app2, or the dist's copy of a hot id", got.servedBy, got.cache, hot, err)
				}
			}
			if !strings.HasPrefix(got.body, "<!DOCTYPE html>") {
				t.Errorf("page does not start with the HTML5 doctype")
			}
		})
	}
}

// The sync service fills Redis at first start, so the first view of any
// product is a Redis hit, not a rebuild.
func TestFirstViewIsRedisHit(t *testing.T) {
	for _, id := range []string{"4242", "5151", "8888"} {
		got := MustGetPage(t, pageURL(shared, id))
		if got.status != http.StatusOK || got.cache != "redis" {
			t.Errorf("first view of %s: status %d X-Cache %q, want 200 from redis", id, got.status, got.cache)
		}
		again := MustGetPage(t, pageURL(shared, id))
		if again.cache == "redis" || again.cache == "direct" {
			t.Errorf("second view of %s: X-Cache %q, want a local level (L1 or L2)", id, again.cache)
		}
	}
}

func TestSameIDSameNode(t *testing.T) {
	nodes := map[string]int{}
	for id := 100; id < 160; id++ {
		first := MustGetPage(t, pageURL(shared, fmt.Sprint(id))).servedBy
		for range 3 {
			if got := MustGetPage(t, pageURL(shared, fmt.Sprint(id))).servedBy; got != first {
				t.Fatalf("id %d served by %s then %s", id, first, got)
			}
		}
		nodes[first]++
	}
	if nodes["app1"] == 0 || nodes["app2"] == 0 {
		t.Errorf("ids spread over nodes %v, want both app nodes used", nodes)
	}
}

func TestUnknownAndMalformedIDs(t *testing.T) {
	tests := []struct {
		path       string
		wantStatus int
	}{
		{"/item/99999999.html", 404},
		{"/item/abc.html", 404},
		{"/item/0.html", 404},
		{"/item/000.html", 404},
		{"/item/1234567890123456789.html", 404},
		{"/item/-1.html", 404},
		{"/item/1.5.html", 404},
		{"/item/.html", 404},
		{"/item/1.htm", 404},
		{"/item/%00.html", 400}, // nginx refuses it before any location
		{"/_admin/status", 404}, // no admin on the public port
	}
	base := topology.URL(shared.Config().Ports.Dist)
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			got := MustGetPage(t, base+tc.path)
			if got.status != tc.wantStatus {
				t.Fatalf("status %d, want %d", got.status, tc.wantStatus)
			}
			if got.status == http.StatusNotFound && !strings.Contains(got.body, "Product not found") {
				t.Errorf("404 is not the real 404 page: %.80q", got.body)
			}
		})
	}
}

func TestEditVisibleWithin3s(t *testing.T) {
	const id = 321
	name := fmt.Sprintf("限量版 <Edition> \"%d\" & more", time.Now().UnixNano())
	url := pageURL(shared, fmt.Sprint(id))
	MustGetPage(t, url) // cached locally before the edit
	MustRename(t, shared, id, name)
	took := waitForPage(t, url, escape(name), 3*time.Second)
	t.Logf("edit visible on the page after %s", took)
	if got := MustGetPage(t, url); strings.Contains(got.body, "<Edition>") {
		t.Errorf("the page shows the name unescaped")
	}
}

func TestMalformedEditChangesNothing(t *testing.T) {
	const id = 654
	before := MustProduct(t, shared, id)
	bodies := map[string]string{
		"not json":      `{"name":`,
		"unknown field": `{"name":"x","shop_id":1,"colour":"red"}`,
		"empty name":    `{"name":"","shop_id":1}`,
		"bad image":     `{"name":"x","shop_id":1,"images":[{"url":"javascript:alert(1)","alt":""}]}`,
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			status, resp := put(t, shared, fmt.Sprintf("/api/products/%d", id), []byte(body))
			if status != http.StatusBadRequest || !strings.Contains(resp, "error") {
				t.Fatalf("status %d body %s, want 400 with a reason", status, resp)
			}
		})
	}
	if after := MustProduct(t, shared, id); after.Version != before.Version || after.Name != before.Name {
		t.Errorf("a rejected edit changed the product: version %d → %d", before.Version, after.Version)
	}
}

// With both app nodes down the dist tier renders pages through the
// direct-data service.
func TestAppNodesDownServedByDirect(t *testing.T) {
	t.Cleanup(func() {
		MustStart(t, shared, topology.App1)
		MustStart(t, shared, topology.App2)
	})
	for _, name := range []string{topology.App1, topology.App2} {
		if err := shared.Component(name).Kill(); err != nil {
			t.Fatal(err)
		}
	}
	p := MustProduct(t, shared, 31)
	got := MustGetPage(t, pageURL(shared, "31"))
	if got.status != http.StatusOK || got.servedBy != "direct" {
		t.Fatalf("status %d X-Served-By %q, want 200 from direct", got.status, got.servedBy)
	}
	if !strings.Contains(got.body, escape(p.Name)) {
		t.Errorf("direct page does not show the product name")
	}
	if miss := MustGetPage(t, pageURL(shared, "99999998")); miss.status != http.StatusNotFound {
		t.Errorf("unknown id through direct: status %d, want 404", miss.status)
	}
}

// A frozen Redis replica costs a bounded wait: pages keep coming, through
// the direct-data service.
func TestReplicaPausedPagesStillServed(t *testing.T) {
	ids := coldIDs(t, 3)
	replica := shared.Component(topology.RedisReplica)
	if err := replica.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Resume() })
	for _, id := range ids {
		start := time.Now()
		got := MustGetPage(t, pageURL(shared, id))
		if got.status != http.StatusOK {
			t.Fatalf("id %s with the replica paused: status %d", id, got.status)
		}
		if got.cache != "direct" {
			t.Errorf("id %s: X-Cache %q, want direct", id, got.cache)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("id %s took %s with the replica paused", id, d)
		}
	}
}
