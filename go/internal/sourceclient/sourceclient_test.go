package sourceclient_test

// hystrix-go keeps circuits in globals and sourceclient's command names are
// fixed per service and operation, so these tests do not run in parallel
// and each test that makes a dependency fail uses a service of its own.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/resilience/resiliencetest"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// MustClient returns a client for the source API at base.
func MustClient(tb testing.TB, base string) *sourceclient.Client {
	tb.Helper()
	c, err := sourceclient.New(base)
	if err != nil {
		tb.Fatalf("new client for %s: %v", base, err)
	}
	return c
}

// fakeSource is a batch endpoint that answers like the source service but
// lets a test decide which records exist, in which order they come back,
// and what extra they contain. It records the ids of every request.
type fakeSource struct {
	mu       sync.Mutex
	requests [][]int64
}

// MustFakeSource serves /api/<segment>?ids=... with answer(ids) as the
// items. More than catalog.MaxBatch ids get a 400, as from the real one.
func MustFakeSource(tb testing.TB, answer func(ids []int64) []any) (*fakeSource, string) {
	tb.Helper()
	f := &fakeSource{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids, err := catalog.ParseIDList(r.URL.Query().Get("ids"))
		if err != nil {
			http.Error(w, `{"error":"bad ids"}`, http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, ids)
		f.mu.Unlock()
		items := answer(ids)
		if items == nil {
			items = []any{}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"items": items, "missing": []int64{}})
	}))
	tb.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeSource) seen() [][]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func seq(from, to int64) []int64 {
	var out []int64
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

func sortedKeys[T any](m map[int64]T) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	tests := []struct {
		base string
		ok   bool
	}{
		{"http://127.0.0.1:9101", true},
		{"http://127.0.0.1:9101/", true},
		{"https://source.internal", true},
		{"", false},
		{"127.0.0.1:9101", false},
		{"ftp://127.0.0.1:9101", false},
		{"http://", false},
		{"http://%zz", false},
	}
	for _, tt := range tests {
		t.Run(tt.base, func(t *testing.T) {
			_, err := sourceclient.New(tt.base)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%q) err = %v, want ok=%v", tt.base, err, tt.ok)
			}
		})
	}
}

func TestGetFromSource(t *testing.T) {
	base, _ := testutil.MustSourceServer(t)
	c := MustClient(t, base)
	ctx := t.Context()

	p, err := sourceclient.Get[catalog.Product](ctx, c, "product", 7)
	if err != nil || p.ID != 7 || p.Name == "" || p.Version <= 0 {
		t.Fatalf("Get product 7 = %+v, %v", p, err)
	}
	pr, err := sourceclient.Get[catalog.Price](ctx, c, "price", 7)
	if err != nil || pr.ProductID != 7 || pr.Amount == "" {
		t.Fatalf("Get price 7 = %+v, %v", pr, err)
	}

	// Many lookups of an id that does not exist are business answers, not
	// failures: the circuit stays closed and real records still come back.
	for i := range 40 {
		_, err := sourceclient.Get[catalog.Product](ctx, c, "product", 999)
		if !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("lookup %d of a missing product: err = %v, want ErrNotFound", i, err)
		}
	}
	p, err = sourceclient.Get[catalog.Product](ctx, c, "product", 8)
	if err != nil || p.ID != 8 {
		t.Fatalf("Get product 8 after 40 misses = %+v, %v; want the record", p, err)
	}
}

func TestBatchFromSource(t *testing.T) {
	base, _ := testutil.MustSourceServer(t)
	c := MustClient(t, base)
	ctx := t.Context()

	t.Run("products, some missing", func(t *testing.T) {
		got, err := sourceclient.Batch[catalog.Product](ctx, c, "product", []int64{3, 999, 1, 2, 998})
		if err != nil {
			t.Fatal(err)
		}
		if keys := sortedKeys(got); fmt.Sprint(keys) != "[1 2 3]" {
			t.Fatalf("ids = %v, want [1 2 3]", keys)
		}
		for id, p := range got {
			if p.ID != id {
				t.Fatalf("record under %d is product %d", id, p.ID)
			}
		}
	})
	t.Run("stock, matched by product_id", func(t *testing.T) {
		got, err := sourceclient.Batch[catalog.Stock](ctx, c, "stock", []int64{10, 4, 60})
		if err != nil {
			t.Fatal(err)
		}
		if keys := sortedKeys(got); fmt.Sprint(keys) != "[4 10]" {
			t.Fatalf("ids = %v, want [4 10]", keys)
		}
		for id, s := range got {
			if s.ProductID != id {
				t.Fatalf("record under %d is stock of %d", id, s.ProductID)
			}
		}
	})
	t.Run("more than one batch", func(t *testing.T) {
		got, err := sourceclient.Batch[catalog.Shop](ctx, c, "shop", seq(1, 230))
		if err != nil {
			t.Fatalf("230 ids: %v", err)
		}
		if len(got) != testutil.SourceShops {
			t.Fatalf("got %d shops, want %d", len(got), testutil.SourceShops)
		}
	})
	t.Run("no ids", func(t *testing.T) {
		got, err := sourceclient.Batch[catalog.Shop](ctx, c, "shop", nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("Batch() = %v, %v; want empty", got, err)
		}
	})
}

func TestBatchMatchesShuffledAnswersByID(t *testing.T) {
	exists := func(id int64) bool { return id%3 != 0 }
	_, base := MustFakeSource(t, func(ids []int64) []any {
		var items []any
		for _, id := range ids {
			if exists(id) {
				items = append(items, catalog.Price{Version: id, ProductID: id, Amount: strconv.FormatInt(id, 10) + ".00", Currency: "CNY"})
			}
		}
		rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		return items
	})
	c := MustClient(t, base)
	for _, ids := range [][]int64{seq(1, 30), {9, 8, 7, 6, 5}, {3, 6, 9}, seq(1, 100)} {
		t.Run(fmt.Sprint(len(ids), "ids"), func(t *testing.T) {
			got, err := sourceclient.Batch[catalog.Price](t.Context(), c, "price", ids)
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for _, id := range ids {
				if exists(id) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			if keys := sortedKeys(got); fmt.Sprint(keys) != fmt.Sprint(want) {
				t.Fatalf("ids = %v, want %v", keys, want)
			}
			for id, p := range got {
				if p.ProductID != id || p.Amount != strconv.FormatInt(id, 10)+".00" {
					t.Fatalf("record under %d is %+v", id, p)
				}
			}
		})
	}
}

func TestBatchRefusesUnaskedIDs(t *testing.T) {
	tests := []struct {
		name  string
		extra any
	}{
		{"an id not asked for", catalog.Spec{Version: 1, ProductID: 777}},
		{"a record without an id", map[string]any{"version": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, base := MustFakeSource(t, func(ids []int64) []any {
				items := []any{tt.extra}
				for _, id := range ids {
					items = append(items, catalog.Spec{Version: 1, ProductID: id})
				}
				return items
			})
			got, err := sourceclient.Batch[catalog.Spec](t.Context(), MustClient(t, base), "spec", []int64{1, 2})
			if err == nil {
				t.Fatalf("Batch = %v, want an error", got)
			}
			if got != nil {
				t.Fatalf("Batch returned records %v with its error", got)
			}
		})
	}
}

func TestBatchSplitsIntoChunks(t *testing.T) {
	fake, base := MustFakeSource(t, func(ids []int64) []any {
		items := make([]any, len(ids))
		for i, id := range ids {
			items[i] = catalog.Recommendations{Version: 1, ProductID: id, IDs: []int64{}}
		}
		return items
	})
	c := MustClient(t, base)
	tests := []struct {
		n          int64
		wantChunks []int
	}{
		{1, []int{1}},
		{100, []int{100}},
		{101, []int{100, 1}},
		{250, []int{100, 100, 50}},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(tt.n, 10), func(t *testing.T) {
			before := len(fake.seen())
			ids := seq(1, tt.n)
			got, err := sourceclient.Batch[catalog.Recommendations](t.Context(), c, "recommendation", ids)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != tt.n {
				t.Fatalf("got %d records, want %d", len(got), tt.n)
			}
			reqs := fake.seen()[before:]
			var sizes []int
			var all []int64
			for _, r := range reqs {
				sizes = append(sizes, len(r))
				all = append(all, r...)
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tt.wantChunks) {
				t.Fatalf("request sizes = %v, want %v", sizes, tt.wantChunks)
			}
			slices.Sort(all)
			if !slices.Equal(all, ids) {
				t.Fatalf("ids requested %v, want each of 1..%d once", all, tt.n)
			}
		})
	}
}

func TestStatusErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/1"):
			http.Error(w, `{"error":"bad"}`, http.StatusBadRequest)
		case strings.HasSuffix(r.URL.Path, "/2"):
			http.Error(w, `{"error":"boom"}`, http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, "/3"):
			w.Write([]byte(`not json`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c := MustClient(t, srv.URL)
	tests := []struct {
		id         int64
		wantStatus int
		notFound   bool
	}{
		{id: 1, wantStatus: 400},
		{id: 2, wantStatus: 500},
		{id: 3},
		{id: 4, notFound: true},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(tt.id, 10), func(t *testing.T) {
			_, err := sourceclient.Get[catalog.Description](t.Context(), c, "description", tt.id)
			if err == nil {
				t.Fatal("Get succeeded, want an error")
			}
			var se *sourceclient.StatusError
			switch {
			case tt.notFound:
				if !errors.Is(err, catalog.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			case tt.wantStatus != 0:
				if !errors.As(err, &se) || se.Status != tt.wantStatus {
					t.Fatalf("err = %v, want a StatusError %d", err, tt.wantStatus)
				}
			default:
				if !strings.Contains(err.Error(), "decode") {
					t.Fatalf("err = %v, want a decode error", err)
				}
			}
		})
	}
}

func TestTimeoutCancelsRequest(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
		cancelled <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	c := MustClient(t, srv.URL)
	cmd := resilience.Defaults(sourceclient.CommandName("stock", "get"))
	cmd.Timeout = 150 * time.Millisecond
	resiliencetest.MustConfigure(t, cmd)

	_, err := sourceclient.Get[catalog.Stock](t.Context(), c, "stock", 1)
	if !errors.Is(err, resilience.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	for what, ch := range map[string]chan struct{}{"request arrived": entered, "request cancelled": cancelled} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not within 10s", what)
		}
	}
}

func TestCallerCancel(t *testing.T) {
	entered := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c := MustClient(t, srv.URL)
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"get", func(ctx context.Context) error {
			_, err := sourceclient.Get[catalog.Shop](ctx, c, "shop", 1)
			return err
		}},
		{"batch", func(ctx context.Context) error {
			_, err := sourceclient.Batch[catalog.Shop](ctx, c, "shop", []int64{1, 2})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/already cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := tt.call(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
		t.Run(tt.name+"/cancelled while waiting", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() {
				select {
				case <-entered:
					cancel()
				case <-time.After(10 * time.Second):
				}
			}()
			if err := tt.call(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
	}
}

func TestLookupCollapsesAndMatchesByID(t *testing.T) {
	exists := func(id int64) bool { return id%4 != 0 }
	fake, base := MustFakeSource(t, func(ids []int64) []any {
		var items []any
		for _, id := range ids {
			if exists(id) {
				items = append(items, catalog.Price{Version: id, ProductID: id, Amount: strconv.FormatInt(id, 10) + ".00", Currency: "CNY"})
			}
		}
		rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
		return items
	})
	c := MustClient(t, base)
	t.Cleanup(c.CloseIdleConnections)
	tests := []struct {
		name string
		call func(ctx context.Context, ids []int64) (map[int64]catalog.Price, error)
	}{
		{"Lookup", func(ctx context.Context, ids []int64) (map[int64]catalog.Price, error) {
			out := map[int64]catalog.Price{}
			for _, id := range ids {
				p, err := sourceclient.Lookup[catalog.Price](ctx, c, "price", id)
				if errors.Is(err, catalog.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				out[id] = p
			}
			return out, nil
		}},
		{"LookupMany", func(ctx context.Context, ids []int64) (map[int64]catalog.Price, error) {
			return sourceclient.LookupMany[catalog.Price](ctx, c, "price", ids)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fake.seen())
			const callers = 50
			var wg sync.WaitGroup
			for i := range callers {
				ids := []int64{int64(i%20 + 1), int64(i%7 + 30), 250}
				wg.Go(func() {
					got, err := tt.call(t.Context(), ids)
					if err != nil {
						t.Error(err)
						return
					}
					for _, id := range ids {
						p, ok := got[id]
						if ok != exists(id) || (ok && (p.ProductID != id || p.Amount != strconv.FormatInt(id, 10)+".00")) {
							t.Errorf("id %d: got %+v (found %v)", id, p, ok)
						}
					}
				})
			}
			wg.Wait()
			if n := len(fake.seen()) - before; n == 0 || n >= callers {
				t.Fatalf("%d batch calls for %d callers: want fewer than one per caller", n, callers)
			}
		})
	}
}

// BenchmarkPageFetch fetches the six per-product dimensions of one page,
// as the direct-data service's rebuild of one id does, from many
// goroutines at once against the real source service, with Batch (one call
// per dimension per page) and with LookupMany (through the collapsers),
// and reports source calls per page.
func BenchmarkPageFetch(b *testing.B) {
	base, _ := testutil.MustSourceServer(b)
	c := MustClient(b, base)
	b.Cleanup(c.CloseIdleConnections)
	dims := []string{"product", "description", "spec", "price", "stock", "recommendation"}
	tests := []struct {
		name  string
		fetch func(ctx context.Context, service string, ids []int64) error
	}{
		{"Batch", func(ctx context.Context, service string, ids []int64) error {
			_, err := sourceclient.Batch[json.RawMessage](ctx, c, service, ids)
			return err
		}},
		{"LookupMany", func(ctx context.Context, service string, ids []int64) error {
			_, err := sourceclient.LookupMany[json.RawMessage](ctx, c, service, ids)
			return err
		}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			for _, d := range dims {
				cmd := resilience.Defaults(sourceclient.CommandName(d, "batch"))
				cmd.MaxConcurrent = 1024
				resiliencetest.MustConfigure(b, cmd)
			}
			before := sourceRequests(b, base)
			var pages atomic.Int64
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					id := rand.Int64N(testutil.SourceProducts) + 1
					for _, d := range dims {
						if err := tt.fetch(ctx, d, []int64{id}); err != nil {
							b.Error(err)
							return
						}
					}
					pages.Add(1)
				}
			})
			b.ReportMetric(float64(sourceRequests(b, base)-before)/float64(pages.Load()), "source-calls/page")
		})
	}
}

func sourceRequests(tb testing.TB, base string) int64 {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/_admin/stats", nil)
	req.Header.Set("Authorization", "Bearer "+testutil.SourceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Services map[string]struct {
			Requests int64 `json:"requests"`
		} `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, s := range st.Services {
		n += s.Requests
	}
	return n
}
