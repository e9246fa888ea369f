package source_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

const (
	token        = testutil.SourceToken
	seedProducts = testutil.SourceProducts
	seedShops    = testutil.SourceShops
)

// response is one HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// errorText returns the "error" member of a JSON error body.
func (r response) errorText() string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error
}

// MustDo sends one request (auth is the bearer token, "" for none) and
// returns the answer.
func MustDo(tb testing.TB, method, url, auth string, body []byte) response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(tb.Context(), method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// MustStatus sends a request and fails unless it is answered with want.
func MustStatus(tb testing.TB, want int, method, url, auth string, body []byte) response {
	tb.Helper()
	r := MustDo(tb, method, url, auth, body)
	if r.Status != want {
		tb.Fatalf("%s %s = %d %s, want %d", method, url, r.Status, r.Body, want)
	}
	return r
}

// stats is GET /_admin/stats.
type stats struct {
	Services map[string]struct {
		Requests    int64 `json:"requests"`
		Lookups     int64 `json:"lookups"`
		Missing     int64 `json:"missing"`
		Edits       int64 `json:"edits"`
		Failed      int64 `json:"failed"`
		InFlight    int64 `json:"in_flight"`
		MaxInFlight int64 `json:"max_in_flight"`
	} `json:"services"`
	OutboxPending int64 `json:"outbox_pending"`
}

func MustStats(tb testing.TB, base string) stats {
	tb.Helper()
	r := MustStatus(tb, http.StatusOK, http.MethodGet, base+"/_admin/stats", token, nil)
	var s stats
	if err := json.Unmarshal(r.Body, &s); err != nil {
		tb.Fatalf("stats %s: %v", r.Body, err)
	}
	return s
}

func mustDecode[T any](tb testing.TB, b []byte) T {
	tb.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		tb.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func TestGetSingle(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	tests := []struct {
		path   string
		status int
		wantID string // "id" or "product_id" member expected in a 200
	}{
		{"/api/products/1", 200, "id"},
		{"/api/products/50", 200, "id"},
		{"/api/products/007", 200, "id"},
		{"/api/shops/5", 200, "id"},
		{"/api/descriptions/2", 200, "product_id"},
		{"/api/specs/2", 200, "product_id"},
		{"/api/prices/2", 200, "product_id"},
		{"/api/stock/2", 200, "product_id"},
		{"/api/recommendations/2", 200, "product_id"},
		{"/api/products/51", 404, ""},
		{"/api/shops/6", 404, ""},
		{"/api/prices/999999999999999999", 404, ""},
		{"/api/products/abc", 400, ""},
		{"/api/products/0", 400, ""},
		{"/api/products/-1", 400, ""},
		{"/api/products/1.5", 400, ""},
		{"/api/products/1234567890123456789", 400, ""},
		{"/api/products/%201", 400, ""},
		{"/api/widgets/1", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := MustStatus(t, tt.status, http.MethodGet, base+tt.path, "", nil)
			if tt.status != 200 {
				if r.errorText() == "" {
					t.Fatalf("%d without a JSON error reason: %s", r.Status, r.Body)
				}
				if tt.status == 400 && !strings.Contains(r.errorText(), "id") {
					t.Fatalf("400 reason %q does not name the id", r.errorText())
				}
				return
			}
			m := mustDecode[map[string]json.RawMessage](t, r.Body)
			if !strings.HasPrefix(string(r.Body), `{"version":`) {
				t.Fatalf("record does not start with its version: %.80s", r.Body)
			}
			if _, ok := m[tt.wantID]; !ok {
				t.Fatalf("record has no %q: %.200s", tt.wantID, r.Body)
			}
		})
	}
}

func TestGetBatch(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	type batch struct {
		Items   []json.RawMessage `json:"items"`
		Missing []int64           `json:"missing"`
	}
	ids := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprint(i + 1)
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		name        string
		query       string
		status      int
		wantItems   []int64
		wantMissing []int64
	}{
		{name: "order kept, missing listed", query: "ids=3,999,1,998,2", status: 200, wantItems: []int64{3, 1, 2}, wantMissing: []int64{999, 998}},
		{name: "duplicates once", query: "ids=4,4,4", status: 200, wantItems: []int64{4}, wantMissing: []int64{}},
		{name: "all missing", query: "ids=51,52", status: 200, wantItems: []int64{}, wantMissing: []int64{51, 52}},
		{name: "100 ids", query: "ids=" + ids(100), status: 200},
		{name: "101 ids", query: "ids=" + ids(101), status: 400},
		{name: "bad id", query: "ids=1,x", status: 400},
		{name: "zero id", query: "ids=0", status: 400},
		{name: "empty", query: "ids=", status: 400},
		{name: "no query", query: "", status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := MustStatus(t, tt.status, http.MethodGet, base+"/api/products?"+tt.query, "", nil)
			if tt.status != 200 {
				if r.errorText() == "" {
					t.Fatalf("400 without a reason: %s", r.Body)
				}
				return
			}
			b := mustDecode[batch](t, r.Body)
			if tt.wantItems == nil {
				if len(b.Items) != 50 || len(b.Missing) != 50 {
					t.Fatalf("got %d items, %d missing; want 50 and 50", len(b.Items), len(b.Missing))
				}
				return
			}
			var got []int64
			for _, it := range b.Items {
				got = append(got, mustDecode[catalog.Product](t, it).ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantItems) || fmt.Sprint(b.Missing) != fmt.Sprint(tt.wantMissing) {
				t.Fatalf("items %v missing %v; want items %v missing %v", got, b.Missing, tt.wantItems, tt.wantMissing)
			}
			if b.Missing == nil || b.Items == nil {
				t.Fatalf("lists must be [] not null: %s", r.Body)
			}
		})
	}
}

// GET /api/products/versions answers each product's dimension versions in
// the order its dims list names them, and the ids that are not products.
func TestProductVersions(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	type versions struct {
		Dims    []catalog.Dimension `json:"dims"`
		Items   [][]int64           `json:"items"`
		Missing []int64             `json:"missing"`
	}
	got := mustDecode[versions](t, MustStatus(t, 200, http.MethodGet, base+"/api/products/versions?ids=3,999,1", "", nil).Body)
	if fmt.Sprint(got.Dims) != fmt.Sprint(catalog.ProductDimensions) || fmt.Sprint(got.Missing) != "[999]" || len(got.Items) != 2 {
		t.Fatalf("versions: %+v", got)
	}
	for i, id := range []int64{3, 1} {
		it := got.Items[i]
		if it[0] != id || len(it) != 1+len(catalog.ProductDimensions) {
			t.Fatalf("item %d: %v, want product %d first", i, it, id)
		}
		for j, k := range catalog.ProductKinds {
			r := MustStatus(t, 200, http.MethodGet, fmt.Sprintf("%s/api/%s/%d", base, k.Segment, id), "", nil)
			if v := mustDecode[struct{ Version int64 }](t, r.Body).Version; it[1+j] != v {
				t.Errorf("product %d %s: version %d, the record has %d", id, k.Dim, it[1+j], v)
			}
		}
	}
	for _, q := range []string{"", "ids=", "ids=x", "ids=0"} {
		MustStatus(t, 400, http.MethodGet, base+"/api/products/versions?"+q, "", nil)
	}
}

func TestPutProduct(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	before := mustDecode[catalog.Product](t, MustStatus(t, 200, http.MethodGet, base+"/api/products/7", "", nil).Body)
	pending := MustStats(t, base).OutboxPending

	edit := before
	edit.Name = "新名字 New name"
	edit.ShopID = 2
	edit.Images = []catalog.Image{{URL: "https://cdn.example.com/7.jpg", Alt: "new"}}
	body, _ := json.Marshal(edit)
	r := MustStatus(t, http.StatusOK, http.MethodPut, base+"/api/products/7", "", body)
	stored := mustDecode[catalog.Product](t, r.Body)
	if stored.Version <= before.Version || stored.Name != edit.Name || stored.ID != 7 {
		t.Fatalf("PUT answered %+v; want the new name with a version above %d", stored, before.Version)
	}

	got := mustDecode[catalog.Product](t, MustStatus(t, 200, http.MethodGet, base+"/api/products/7", "", nil).Body)
	if got.Name != edit.Name || got.Version != stored.Version || got.ShopID != 2 || len(got.Images) != 1 {
		t.Fatalf("GET after PUT = %+v, want %+v", got, stored)
	}
	if p := MustStats(t, base).OutboxPending; p != pending+1 {
		t.Fatalf("outbox pending = %d, want %d (one change event)", p, pending+1)
	}

	// The id comes from the URL, whatever the body says.
	edit.ID, edit.Version = 8, 1<<40
	body, _ = json.Marshal(edit)
	stored = mustDecode[catalog.Product](t, MustStatus(t, http.StatusOK, http.MethodPut, base+"/api/products/7", "", body).Body)
	if stored.ID != 7 || stored.Version >= 1<<40 {
		t.Fatalf("PUT took id/version from the body: %+v", stored)
	}
}

func TestPutRejected(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	url := base + "/api/products/3"
	before := MustStatus(t, 200, http.MethodGet, url, "", nil).Body
	pending := MustStats(t, base).OutboxPending
	good := `{"shop_id":1,"name":"ok","images":[{"url":"/img/a.svg","alt":""}]}`

	tests := []struct {
		name   string
		url    string
		body   string
		status int
		reason string
	}{
		{name: "not JSON", body: `name=foo`, status: 400, reason: "body"},
		{name: "empty body", body: ``, status: 400, reason: "body"},
		{name: "unknown field", body: `{"shop_id":1,"name":"x","colour":"red"}`, status: 400, reason: "unknown field"},
		{name: "trailing object", body: good + good, status: 400, reason: "trailing"},
		{name: "trailing word", body: good + ` x`, status: 400, reason: "trailing"},
		{name: "trailing brace", body: good + `}`, status: 400, reason: "trailing"},
		{name: "trailing bracket", body: good + `]`, status: 400, reason: "trailing"},
		{name: "wrong type", body: `{"shop_id":"1","name":"x"}`, status: 400, reason: "shop_id"},
		{name: "array", body: `[` + good + `]`, status: 400, reason: "body"},
		{name: "null", body: `null`, status: 400, reason: "shop_id"},
		{name: "empty name", body: `{"shop_id":1,"name":""}`, status: 400, reason: "name"},
		{name: "javascript image", body: `{"shop_id":1,"name":"x","images":[{"url":"javascript:alert(1)","alt":""}]}`, status: 400, reason: "images[0].url"},
		{name: "unknown shop", body: `{"shop_id":99,"name":"x"}`, status: 400, reason: "shop 99"},
		{name: "bad id in URL", url: base + "/api/products/x", body: good, status: 400, reason: "id"},
		{name: "3 MB body", body: `{"shop_id":1,"name":"` + strings.Repeat("a", 3<<20) + `"}`, status: 400, reason: "larger than"},
		{name: "description of unknown product", url: base + "/api/descriptions/51", body: `{"html":"<p>x</p>"}`, status: 404, reason: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := url
			if tt.url != "" {
				u = tt.url
			}
			r := MustStatus(t, tt.status, http.MethodPut, u, "", []byte(tt.body))
			if !strings.Contains(r.errorText(), tt.reason) {
				t.Fatalf("reason %q does not mention %q", r.errorText(), tt.reason)
			}
			if after := MustStatus(t, 200, http.MethodGet, url, "", nil).Body; !bytes.Equal(after, before) {
				t.Fatalf("product changed:\nbefore %s\nafter  %s", before, after)
			}
			if p := MustStats(t, base).OutboxPending; p != pending {
				t.Fatalf("outbox pending = %d, want %d (no change event)", p, pending)
			}
		})
	}
}

func TestPutDescriptionSanitized(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	html := `<p onclick="steal()">安全 <b>safe</b></p><script>alert(1)</script>` +
		`<a href="javascript:alert(2)">link</a><img src="x" onerror="alert(3)"><iframe src="//evil"></iframe>`
	body, _ := json.Marshal(catalog.Description{HTML: html})
	put := mustDecode[catalog.Description](t, MustStatus(t, 200, http.MethodPut, base+"/api/descriptions/4", "", body).Body)
	got := mustDecode[catalog.Description](t, MustStatus(t, 200, http.MethodGet, base+"/api/descriptions/4", "", nil).Body)
	if got.HTML != put.HTML {
		t.Fatalf("GET %q != PUT answer %q", got.HTML, put.HTML)
	}
	for _, bad := range []string{"<script", "alert(1)", "onclick", "javascript:", "onerror", "<iframe"} {
		if strings.Contains(got.HTML, bad) {
			t.Errorf("stored HTML keeps %q: %s", bad, got.HTML)
		}
	}
	if !strings.Contains(got.HTML, "<b>safe</b>") || !strings.Contains(got.HTML, "安全") {
		t.Errorf("sanitizing dropped harmless content: %s", got.HTML)
	}
}

func TestAdminRequiresToken(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	MustStatus(t, 200, http.MethodGet, base+"/api/products/1", "", nil)
	before := MustStats(t, base)

	tests := []struct {
		name   string
		method string
		path   string
		body   string
	}{
		{"inject fault", http.MethodPost, "/_admin/faults", `{"service":"product","down":true}`},
		{"clear faults", http.MethodDelete, "/_admin/faults", ``},
		{"list faults", http.MethodGet, "/_admin/faults", ``},
		{"stats", http.MethodGet, "/_admin/stats", ``},
		{"reset stats", http.MethodDelete, "/_admin/stats", ``},
		{"refresh", http.MethodPost, "/_admin/refresh", ``},
	}
	auths := []struct {
		name   string
		header string
	}{
		{"no token", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer tt"},
		{"no bearer scheme", "t"},
		{"basic auth", "Basic dDp0"},
		{"empty bearer", "Bearer "},
	}
	for _, tt := range tests {
		for _, a := range auths {
			t.Run(tt.name+"/"+a.name, func(t *testing.T) {
				var body io.Reader
				if tt.body != "" {
					body = strings.NewReader(tt.body)
				}
				req, _ := http.NewRequestWithContext(t.Context(), tt.method, base+tt.path, body)
				if a.header != "" {
					req.Header.Set("Authorization", a.header)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 without WWW-Authenticate")
				}
			})
		}
	}

	// Nothing changed: no fault, stats not reset, no refresh queued.
	MustStatus(t, 200, http.MethodGet, base+"/api/products/1", "", nil)
	after := MustStats(t, base)
	if after.OutboxPending != before.OutboxPending {
		t.Fatalf("outbox pending %d -> %d: an unauthenticated refresh ran", before.OutboxPending, after.OutboxPending)
	}
	if got := after.Services["product"].Requests; got != before.Services["product"].Requests+1 {
		t.Fatalf("product requests = %d, want %d: stats were reset", got, before.Services["product"].Requests+1)
	}
	faults := MustStatus(t, 200, http.MethodGet, base+"/_admin/faults", token, nil)
	if !strings.Contains(string(faults.Body), `"faults":[]`) {
		t.Fatalf("faults = %s, want none", faults.Body)
	}

	// And the right token works.
	r := MustStatus(t, http.StatusAccepted, http.MethodPost, base+"/_admin/refresh", token, nil)
	if q := mustDecode[struct{ Queued int }](t, r.Body).Queued; q != seedProducts+seedShops {
		t.Fatalf("refresh queued %d, want %d", q, seedProducts+seedShops)
	}
	if p := MustStats(t, base).OutboxPending; p != before.OutboxPending+seedProducts+seedShops {
		t.Fatalf("outbox pending = %d after refresh, want %d", p, before.OutboxPending+seedProducts+seedShops)
	}
}

// A refresh may leave products out (a cold main's recovery preheats them);
// a bad body is a 400 that queues nothing.
func TestRefreshSkipsProducts(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	before := MustStats(t, base).OutboxPending
	for _, bad := range []string{`{"skip_products":[0]}`, `{"skip_products":["x"]}`, `{"skip":[1]}`, `[1,2]`, `{"skip_products":[1]} {}`} {
		MustStatus(t, http.StatusBadRequest, http.MethodPost, base+"/_admin/refresh", token, []byte(bad))
	}
	if p := MustStats(t, base).OutboxPending; p != before {
		t.Fatalf("outbox pending %d -> %d after refused refreshes", before, p)
	}
	r := MustStatus(t, http.StatusAccepted, http.MethodPost, base+"/_admin/refresh", token, []byte(`{"skip_products":[3,1,3,999999]}`))
	if q := mustDecode[struct{ Queued int }](t, r.Body).Queued; q != seedProducts+seedShops-2 {
		t.Fatalf("refresh skipping products 1 and 3 queued %d, want %d", q, seedProducts+seedShops-2)
	}
}

func TestFaultDown(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	MustStatus(t, 200, http.MethodPost, base+"/_admin/faults", token, []byte(`{"service":"product","down":true}`))

	r := MustStatus(t, http.StatusServiceUnavailable, http.MethodGet, base+"/api/products/1", "", nil)
	if got := r.Header.Get("Retry-After"); got == "" {
		t.Errorf("503 without Retry-After")
	}
	if !strings.Contains(r.errorText(), "service down") {
		t.Errorf("503 reason %q, want it to say the service is down", r.errorText())
	}
	MustStatus(t, http.StatusServiceUnavailable, http.MethodGet, base+"/api/products?ids=1,2", "", nil)
	MustStatus(t, http.StatusOK, http.MethodGet, base+"/api/shops/1", "", nil)
	MustStatus(t, http.StatusOK, http.MethodGet, base+"/api/prices/1", "", nil)
	list := MustStatus(t, 200, http.MethodGet, base+"/_admin/faults", token, nil)
	if !strings.Contains(string(list.Body), `"service":"product"`) {
		t.Fatalf("faults = %s, want the product fault listed", list.Body)
	}
	if f := MustStats(t, base).Services["product"].Failed; f != 2 {
		t.Fatalf("product failed = %d, want 2", f)
	}

	MustStatus(t, 200, http.MethodDelete, base+"/_admin/faults", token, nil)
	MustStatus(t, http.StatusOK, http.MethodGet, base+"/api/products/1", "", nil)
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	const latency = 300 * time.Millisecond
	MustStatus(t, 200, http.MethodPost, base+"/_admin/faults", token,
		fmt.Appendf(nil, `{"service":"price","latency_ms":%d}`, latency.Milliseconds()))

	type result struct {
		status  int
		elapsed time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		resp, err := http.Get(base + "/api/prices/1")
		if err != nil {
			done <- result{status: -1}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, time.Since(start)}
	}()
	// While it waits, the request is visibly in flight.
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := MustStats(t, base).Services["price"].InFlight; n != 1 {
			return fmt.Errorf("price in_flight = %d, want 1", n)
		}
		return nil
	})
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("slow request did not finish")
	}
	if r.status != 200 || r.elapsed < latency {
		t.Fatalf("request = %d after %v, want 200 after at least %v", r.status, r.elapsed, latency)
	}
	if n := MustStats(t, base).Services["price"].InFlight; n != 0 {
		t.Fatalf("in_flight = %d after the request, want 0", n)
	}

	// A caller that gives up does not leave the request waiting out the
	// injected latency.
	MustStatus(t, 200, http.MethodPost, base+"/_admin/faults", token, []byte(`{"service":"price","latency_ms":60000}`))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/prices/1", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("request answered %d, want it cut off by the caller", resp.StatusCode)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := MustStats(t, base).Services["price"].InFlight; n != 0 {
			return fmt.Errorf("price in_flight = %d after the caller left, want 0", n)
		}
		return nil
	})
}

func TestFaultErrorRate(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	MustStatus(t, 200, http.MethodPost, base+"/_admin/faults", token, []byte(`{"service":"stock","error_rate":1}`))
	for range 5 {
		MustStatus(t, http.StatusInternalServerError, http.MethodGet, base+"/api/stock/1", "", nil)
	}
	MustStatus(t, http.StatusOK, http.MethodGet, base+"/api/products/1", "", nil)
	if f := MustStats(t, base).Services["stock"].Failed; f != 5 {
		t.Fatalf("stock failed = %d, want 5", f)
	}
	MustStatus(t, 200, http.MethodPost, base+"/_admin/faults", token, []byte(`{"service":"stock","error_rate":0}`))
	MustStatus(t, http.StatusOK, http.MethodGet, base+"/api/stock/1", "", nil)
}

func TestFaultRejected(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	tests := []struct {
		name, body, reason string
	}{
		{"unknown service", `{"service":"payments","down":true}`, "service"},
		{"no service", `{"down":true}`, "service"},
		{"plural service", `{"service":"products","down":true}`, "service"},
		{"negative latency", `{"service":"product","latency_ms":-1}`, "latency_ms"},
		{"latency too long", `{"service":"product","latency_ms":60001}`, "latency_ms"},
		{"error rate above 1", `{"service":"product","error_rate":1.5}`, "error_rate"},
		{"negative error rate", `{"service":"product","error_rate":-0.1}`, "error_rate"},
		{"wrong type", `{"service":"product","down":"yes"}`, "body"},
		{"unknown field", `{"service":"product","down":true,"forever":true}`, "body"},
		{"not JSON", `down`, "body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := MustStatus(t, 400, http.MethodPost, base+"/_admin/faults", token, []byte(tt.body))
			if !strings.Contains(r.errorText(), tt.reason) {
				t.Fatalf("reason %q does not mention %q", r.errorText(), tt.reason)
			}
		})
	}
	list := MustStatus(t, 200, http.MethodGet, base+"/_admin/faults", token, nil)
	if !strings.Contains(string(list.Body), `"faults":[]`) {
		t.Fatalf("faults = %s, want none after rejected posts", list.Body)
	}
	MustStatus(t, http.StatusOK, http.MethodGet, base+"/api/products/1", "", nil)
}

func TestStatsCountLookups(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	MustStatus(t, 200, http.MethodGet, base+"/api/shops/1", "", nil)
	reset := mustDecode[stats](t, MustStatus(t, 200, http.MethodDelete, base+"/_admin/stats", token, nil).Body)
	if reset.Services["shop"].Requests != 0 {
		t.Fatalf("stats not reset: %+v", reset.Services["shop"])
	}

	// A batch of 10 with 3 ids that do not exist.
	MustStatus(t, 200, http.MethodGet, base+"/api/products?ids=1,2,3,4,5,6,7,900,901,902", "", nil)
	MustStatus(t, 404, http.MethodGet, base+"/api/products/903", "", nil)
	MustStatus(t, 200, http.MethodGet, base+"/api/shops/1", "", nil)
	MustStatus(t, 200, http.MethodGet, base+"/api/prices?ids=1,2,2", "", nil)
	MustStatus(t, 400, http.MethodGet, base+"/api/prices/abc", "", nil)

	s := MustStats(t, base)
	tests := []struct {
		service                    string
		requests, lookups, missing int64
	}{
		{"product", 2, 11, 4},
		{"shop", 1, 1, 0},
		{"price", 1, 2, 0},
		{"stock", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			got := s.Services[tt.service]
			if got.Requests != tt.requests || got.Lookups != tt.lookups || got.Missing != tt.missing {
				t.Fatalf("%s stats = %+v, want requests %d lookups %d missing %d", tt.service, got, tt.requests, tt.lookups, tt.missing)
			}
		})
	}
	if len(s.Services) != 7 {
		t.Fatalf("stats list %d services, want 7", len(s.Services))
	}
}

// TestRunPublishesOutbox runs the whole service (API and outbox relay)
// against the kfake broker: an edit reaches catalog.changes.high with its
// entity, id and version, and the outbox drains.
func TestRunPublishesOutbox(t *testing.T) {
	t.Parallel()
	svc, broker := testutil.MustSourceService(t)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = svc.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if runErr != nil {
			t.Errorf("Run: %v", runErr)
		}
	})
	base := "http://" + svc.Addr()
	testutil.Eventually(t, 5*time.Second, func() error {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})

	// The seed's refresh events drain first.
	testutil.Eventually(t, 15*time.Second, func() error {
		if p := MustStats(t, base).OutboxPending; p != 0 {
			return fmt.Errorf("outbox pending = %d", p)
		}
		return nil
	})

	body := []byte(`{"available":3}`)
	put := mustDecode[catalog.Stock](t, MustStatus(t, 200, http.MethodPut, base+"/api/stock/9", "", body).Body)

	key := []byte("product:9")
	partition := (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: key}, 0, 1, 2, 3)
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   []string{broker},
		Topic:     catalog.TopicHigh,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  1 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	rctx, rcancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer rcancel()
	var change catalog.Change
	for {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("no message for %s on %s partition %d: %v", key, catalog.TopicHigh, partition, err)
		}
		if !bytes.Equal(m.Key, key) {
			continue
		}
		if change, err = catalog.DecodeChange(m.Value); err != nil {
			t.Fatalf("bad change event %s: %v", m.Value, err)
		}
		break
	}
	if change.Entity != catalog.EntityProduct || change.ID != 9 || change.Version != put.Version ||
		len(change.Dims) != 1 || change.Dims[0] != catalog.DimStock || change.Refresh {
		t.Fatalf("change = %+v, want product 9 version %d dims [stock]", change, put.Version)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if p := MustStats(t, base).OutboxPending; p != 0 {
			return fmt.Errorf("outbox pending = %d after publish", p)
		}
		return nil
	})

	// Shutdown is clean: Run returns once ctx ends.
	cancel()
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		t.Fatalf("Run: %v", runErr)
	}
}

// The id listing pages through every product once, in order.
func TestProductIDListing(t *testing.T) {
	t.Parallel()
	base, _ := testutil.MustSourceServer(t)
	type page struct {
		IDs  []int64 `json:"ids"`
		Next int64   `json:"next"`
	}
	var all []int64
	after := int64(0)
	for range 10 {
		r := MustStatus(t, 200, "GET", fmt.Sprintf("%s/api/products/ids?after=%d&limit=15", base, after), "", nil)
		p := mustDecode[page](t, r.Body)
		all = append(all, p.IDs...)
		if p.Next == 0 {
			break
		}
		after = p.Next
	}
	if len(all) != 50 || all[0] != 1 || all[49] != 50 {
		t.Fatalf("listing gave %d ids (%v…), want 1..50", len(all), all[:min(3, len(all))])
	}
	for _, bad := range []string{"after=-1", "after=x", "limit=0", "limit=100001", "limit=abc"} {
		MustStatus(t, 400, "GET", base+"/api/products/ids?"+bad, "", nil)
	}
}
