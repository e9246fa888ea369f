package e2e

import (
	"encoding/json"
	"fmt"
	"github.com/detailpage/detailpage/go/internal/benchrow"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/realtime"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// rtAnswer is one product's answer of the realtime service (docs/realtime.md).
type rtAnswer struct {
	ID       int64  `json:"id"`
	Price    string `json:"price"`
	Currency string `json:"currency"`
	Stock    *struct {
		Status   string `json:"status"`
		Quantity int64  `json:"quantity"`
	} `json:"stock"`
	Shipping *struct {
		Region  string `json:"region"`
		Fee     string `json:"fee"`
		EtaDays int    `json:"eta_days"`
	} `json:"shipping"`
	Versions   map[string]int64 `json:"versions"`
	Stale      bool             `json:"stale"`
	StaleParts []string         `json:"stale_parts"`
	AgeMS      map[string]int64 `json:"age_ms"`
}

// decode reads one product's answer from a 200 of /api/realtime/<id>.
func (r realtimeAnswer) decode() (rtAnswer, error) {
	var a rtAnswer
	if r.status != http.StatusOK {
		return a, fmt.Errorf("status %d: %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		return a, fmt.Errorf("decode %s: %w", r.body, err)
	}
	return a, nil
}

// realtimeURL is /api/realtime/<id> through the dist tier.
func realtimeURL(topo *topology.Topology, id int64, query string) string {
	u := topology.URL(topo.Config().Ports.Dist) + "/api/realtime/" + strconv.FormatInt(id, 10)
	if query != "" {
		u += "?" + query
	}
	return u
}

// MustSourceFault injects a fault into a source service until the test
// ends.
func MustSourceFault(tb testing.TB, topo *topology.Topology, body string) {
	tb.Helper()
	faults := topology.URL(topo.Config().Ports.Source) + "/_admin/faults"
	do := func(method, body string) error {
		req, err := http.NewRequest(method, faults, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s", method, faults, resp.Status)
		}
		return nil
	}
	if err := do(http.MethodPost, body); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := do(http.MethodDelete, ""); err != nil {
			tb.Errorf("clear source faults: %v", err)
		}
	})
}

// The realtime API through the dist tier: one id, several, the headers,
// and bad input answered 400 (or 404 for an unknown id) with a reason.
func TestRealtimeAPI(t *testing.T) {
	dist := topology.URL(shared.Config().Ports.Dist)
	r, err := getRealtime(realtimeURL(shared, 12, "region=west"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.decode()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.cacheControl, []string{"no-store"}) {
		t.Errorf("Cache-Control %q, want no-store", r.cacheControl)
	}
	p := MustProduct(t, shared, 12)
	if a.ID != 12 || a.Price == "" || a.Stock == nil || a.Shipping == nil || a.Shipping.Region != "west" || a.Stale {
		t.Errorf("answer for product 12 (%s): %s", p.Name, r.body)
	}

	r, err = getRealtime(dist + "/api/realtime?ids=12,13,12,999999999999")
	if err != nil {
		t.Fatal(err)
	}
	var many struct {
		Items   []rtAnswer `json:"items"`
		Missing []int64    `json:"missing"`
	}
	if r.status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &many); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, it := range many.Items {
		ids = append(ids, it.ID)
	}
	if !slices.Equal(ids, []int64{12, 13}) || !slices.Equal(many.Missing, []int64{999999999999}) {
		t.Errorf("batch 12,13,12,999999999999: items %v, missing %v; want [12 13] and [999999999999]", ids, many.Missing)
	}

	tooMany := make([]string, 51)
	for i := range tooMany {
		tooMany[i] = strconv.Itoa(i + 1)
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/api/realtime/0", http.StatusBadRequest},
		{"/api/realtime/abc", http.StatusBadRequest},
		{"/api/realtime/1234567890123456789", http.StatusBadRequest},
		{"/api/realtime/12?region=%3Cscript%3E", http.StatusBadRequest},
		{"/api/realtime?ids=", http.StatusBadRequest},
		{"/api/realtime?ids=1,,2", http.StatusBadRequest},
		{"/api/realtime?ids=" + strings.Join(tooMany, ","), http.StatusBadRequest},
		{"/api/realtime/999999999999", http.StatusNotFound},
	} {
		r, err := getRealtime(dist + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error string `json:"error"`
		}
		if r.status != tt.want || json.Unmarshal(r.body, &e) != nil || e.Error == "" {
			t.Errorf("GET %s: %d %s; want %d with a JSON reason", tt.path, r.status, r.body, tt.want)
		}
		if strings.Contains(string(r.body), "<script>") {
			t.Errorf("GET %s: the answer echoes the input unescaped: %s", tt.path, r.body)
		}
	}
}

// Acceptance 3: the price service slow (2 s) under 500 concurrent realtime
// requests: every answer comes within the command's timeout plus a little,
// 200 with stale: true and the last good price, and the requests the price
// service sees at once stay bounded by the command's bulkhead.
func TestRealtimeSlowPriceService(t *testing.T) {
	const concurrent = 500
	one := topology.URL(shared.Config().Ports.One)
	ids := make([]int64, 20)
	strs := make([]string, len(ids))
	for i := range ids {
		ids[i] = int64(7101 + i)
		strs[i] = strconv.FormatInt(ids[i], 10)
	}
	// The last good prices: a live answer before the fault.
	lastGood := map[int64]string{}
	testutil.Eventually(t, 5*time.Second, func() error {
		r, err := getRealtime(one + "/api/realtime?ids=" + strings.Join(strs, ","))
		if err != nil {
			return err
		}
		var many struct {
			Items []rtAnswer `json:"items"`
		}
		if err := json.Unmarshal(r.body, &many); err != nil || r.status != http.StatusOK {
			return fmt.Errorf("batch: %d %s", r.status, r.body)
		}
		for _, a := range many.Items {
			if a.Stale || a.Price == "" {
				return fmt.Errorf("id %d not live: %+v", a.ID, a)
			}
			lastGood[a.ID] = a.Price
		}
		if len(lastGood) != len(ids) {
			return fmt.Errorf("%d of %d ids answered", len(lastGood), len(ids))
		}
		return nil
	})
	// The burst's connections are open before it, on both hops (this
	// client's to the dist, the dist's pool to the OneServer), as a
	// browser's keep-alive connection to the edge is: what is timed is
	// answering, not 500 TCP handshakes at once on two cores.
	burst := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrent, MaxIdleConns: concurrent}, Timeout: 10 * time.Second}
	t.Cleanup(burst.CloseIdleConnections)
	var warm sync.WaitGroup
	for i := range concurrent {
		warm.Go(func() {
			if _, err := getRealtimeWith(burst, realtimeURL(shared, ids[i%len(ids)], "")); err != nil {
				t.Errorf("opening connection %d: %v", i, err)
			}
		})
	}
	warm.Wait()
	timeout := commandTimeout(t, rtPriceCommand)
	limit := bulkheadLimit(t, rtPriceCommand)
	MustSourceFault(t, shared, `{"service":"price","latency_ms":2000}`)
	adminSource(shared, http.MethodDelete, "/_admin/stats")
	// The cached entries go out of date (--fresh); then an answer needs
	// the price service, which is slow: stale.
	testutil.Eventually(t, 10*time.Second, func() error {
		a, err := getRealtimeAnswer(one + "/api/realtime/" + strs[0])
		if err != nil {
			return err
		}
		if !a.Stale {
			return fmt.Errorf("id %s still fresh", strs[0])
		}
		return nil
	})

	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		took  []time.Duration
		fails []string
	)
	for i := range concurrent {
		id := ids[i%len(ids)]
		wg.Go(func() {
			<-start
			r, err := getRealtimeWith(burst, realtimeURL(shared, id, ""))
			a, aerr := r.decode()
			mu.Lock()
			defer mu.Unlock()
			took = append(took, r.took)
			switch {
			case err != nil:
				fails = append(fails, err.Error())
			case aerr != nil:
				fails = append(fails, aerr.Error())
			case !a.Stale || a.Price != lastGood[id] || !slices.Contains(a.StaleParts, "price"):
				fails = append(fails, fmt.Sprintf("id %d: %s (want stale price %s)", id, r.body, lastGood[id]))
			case r.took > timeout+rtSlack:
				fails = append(fails, fmt.Sprintf("id %d: %s, over %s + %s", id, r.took.Round(time.Millisecond), timeout, rtSlack))
			}
		})
	}
	close(start)
	wg.Wait()
	slices.Sort(took)
	t.Logf("%d concurrent answers with the price service slow: p50 %s, p99 %s, max %s (command timeout %s)", len(took),
		loadgen.Percentile(took, 0.5).Round(time.Millisecond), loadgen.Percentile(took, 0.99).Round(time.Millisecond),
		took[len(took)-1].Round(time.Millisecond), timeout)
	if len(fails) > 0 {
		t.Errorf("%d of %d answers wrong, e.g. %s", len(fails), concurrent, strings.Join(fails[:min(5, len(fails))], "; "))
	}
	st := MustSourceStats(t, shared, "GET")["price"]
	t.Logf("price service: %d requests, at most %d at once (bulkhead %d)", st.Requests, st.MaxInFlight, limit)
	if st.MaxInFlight > int64(limit) {
		t.Errorf("price service had %d requests in flight at once, over the command's bulkhead of %d", st.MaxInFlight, limit)
	}
}

// rtPriceCommand is the realtime service's command around the price
// service.
const rtPriceCommand = realtime.PriceCommand

// rtSlack is what an answer may take beyond the command timeout when the
// dependency is slow: the fallback's Redis read and the two hops (dist,
// OneServer) on a busy two-core machine with 500 connections opening.
const rtSlack = 100 * time.Millisecond

func getRealtimeAnswer(url string) (rtAnswer, error) {
	r, err := getRealtime(url)
	if err != nil {
		return rtAnswer{}, err
	}
	return r.decode()
}

// BenchmarkRealtime: GET /api/realtime?ids= with 10 warm ids straight to
// the OneServer: the most answers/s (wrk, closed loop), then the latency at
// half the target rate, open loop from each request's scheduled time (target:
// ≥ 20,000/s and p99 ≤ 10 ms).
func BenchmarkRealtime(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Skip("wrk is not installed")
	}
	url := topology.URL(shared.Config().Ports.One) + "/api/realtime?ids=21,22,23,24,25,26,27,28,29,30"
	r, err := getRealtime(url)
	if err != nil {
		b.Fatal(err)
	}
	var many struct {
		Items []rtAnswer `json:"items"`
	}
	if err := json.Unmarshal(r.body, &many); err != nil || r.status != http.StatusOK || len(many.Items) != 10 {
		b.Fatalf("warm-up: %d %s", r.status, r.body)
	}
	b.ResetTimer()
	rps := mustWrk(b, url)
	// Half the target rate (20,000/s): half the measured rate (~27,000/s)
	// is more than the Go load generator sends on time on these two cores
	// beside the OneServer (most requests late, the p99 then its own).
	const rate = 10_000
	rep := loadgen.Run(b.Context(), loadgen.NewClient(), rate, 10*time.Second, func(int64) string { return url }, func() int64 { return 0 })
	lat := rep.Latencies()
	b.Logf("realtime, 10 warm ids: %.0f answers/s closed loop; at %d/s open loop: %s", rps, rate, rep.Summary())
	b.ReportMetric(rps, "answers/s")
	rp99 := loadgen.Percentile(lat, 0.99)
	benchrow.Record(b, benchrow.Row{What: "realtime, 10 warm ids, OneServer alone", Figure: fmt.Sprintf("%.0f answers/s", rps), Target: "≥ 20,000 answers/s", Met: rps >= 20_000})
	benchrow.Record(b, benchrow.Row{What: fmt.Sprintf("realtime p99 at %d answers/s open loop", rate), Figure: fmt.Sprintf("%.2f ms (%d late)", float64(rp99.Microseconds())/1000, rep.Late()), Target: "≤ 10 ms", Met: rp99 <= 10*time.Millisecond})
	b.ReportMetric(float64(loadgen.Percentile(lat, 0.99).Microseconds())/1000, "p99-ms@half")
	b.ReportMetric(0, "ns/op")
}

// rtCommand is the realtime service's command name with its default
// settings (the topology starts it without --commands).
func rtCommand(tb testing.TB, name string) resilience.Command {
	tb.Helper()
	for _, c := range realtime.Commands() {
		if c.Name == name {
			return c
		}
	}
	tb.Fatalf("the realtime service has no command %q", name)
	return resilience.Command{}
}

func commandTimeout(tb testing.TB, name string) time.Duration { return rtCommand(tb, name).Timeout }

func bulkheadLimit(tb testing.TB, name string) int { return rtCommand(tb, name).MaxConcurrent }
