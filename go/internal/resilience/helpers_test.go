package resilience_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// commandSeq makes command names unique even when -count runs a test again:
// hystrix-go keeps circuits in globals, and so do commands.
var commandSeq atomic.Int64

// MustCommand configures a command named after the test and returns its
// name. Its circuit trips after 3 calls at 10% errors and sleeps a minute,
// unless edit says otherwise.
func MustCommand(tb testing.TB, edit func(*resilience.Command)) string {
	tb.Helper()
	c := resilience.Defaults(fmt.Sprintf("test.%s.%d", tb.Name(), commandSeq.Add(1)))
	c.RequestVolumeThreshold = 3
	c.ErrorPercentThreshold = 10
	c.SleepWindow = time.Minute
	if edit != nil {
		edit(&c)
	}
	if err := resilience.Configure(c); err != nil {
		tb.Fatal(err)
	}
	return c.Name
}

// MustRegistry returns a Prometheus registry with the package's collectors.
func MustRegistry(tb testing.TB) *prometheus.Registry {
	tb.Helper()
	reg := prometheus.NewRegistry()
	if err := resilience.Register(reg); err != nil {
		tb.Fatalf("register resilience metrics: %v", err)
	}
	return reg
}

// metric finds the sample of family name whose labels include want.
func metric(tb testing.TB, reg *prometheus.Registry, name string, want map[string]string) *dto.Metric {
	tb.Helper()
	fams, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for k, v := range want {
				found := false
				for _, l := range m.GetLabel() {
					if l.GetName() == k && l.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// Outcomes returns detailpage_resilience_command_total of command by
// outcome (absent outcomes are 0).
func Outcomes(tb testing.TB, reg *prometheus.Registry, command string) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for _, oc := range []string{"success", "failure", "timeout", "short_circuited", "rejected", "panic",
		"bad_request", "cancelled", "fallback_success", "fallback_failure", "fallback_rejected"} {
		if m := metric(tb, reg, "detailpage_resilience_command_total", map[string]string{"command": command, "outcome": oc}); m != nil {
			if n := int(m.GetCounter().GetValue()); n > 0 {
				out[oc] = n
			}
		}
	}
	return out
}

// BatchSizes returns the collapser's batch count and the sum of their sizes.
func BatchSizes(tb testing.TB, reg *prometheus.Registry, collapser string) (count uint64, sum float64) {
	tb.Helper()
	m := metric(tb, reg, "detailpage_resilience_collapser_batch_size", map[string]string{"collapser": collapser})
	if m == nil {
		return 0, 0
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// source is a real source service (testutil.MustSourceServer) with its
// admin API at hand.
type source struct {
	URL string
}

// MustSource starts a source service in-process.
func MustSource(tb testing.TB) *source {
	tb.Helper()
	base, _ := testutil.MustSourceServer(tb)
	return &source{URL: base}
}

func (s *source) admin(tb testing.TB, method, path, body string) []byte {
	tb.Helper()
	req, err := http.NewRequest(method, s.URL+path, bytes.NewBufferString(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testutil.SourceToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return b
}

// MustFault injects a fault, e.g. {"service":"product","latency_ms":2000}.
func (s *source) MustFault(tb testing.TB, fault string) {
	tb.Helper()
	s.admin(tb, http.MethodPost, "/_admin/faults", fault)
	tb.Cleanup(func() { s.admin(tb, http.MethodDelete, "/_admin/faults", "") })
}

type serviceStats struct {
	Requests    int64 `json:"requests"`
	InFlight    int64 `json:"in_flight"`
	MaxInFlight int64 `json:"max_in_flight"`
}

// Stats returns the source's request counters of service.
func (s *source) Stats(tb testing.TB, service string) serviceStats {
	tb.Helper()
	var st struct {
		Services map[string]serviceStats `json:"services"`
	}
	if err := json.Unmarshal(s.admin(tb, http.MethodGet, "/_admin/stats", ""), &st); err != nil {
		tb.Fatalf("decode stats: %v", err)
	}
	return st.Services[service]
}

// ResetStats zeroes the source's counters.
func (s *source) ResetStats(tb testing.TB) {
	tb.Helper()
	s.admin(tb, http.MethodDelete, "/_admin/stats", "")
}

// MustHTTPClient returns a client with its own connection pool, closed
// when the test ends (so no keep-alive goroutine outlives it).
func MustHTTPClient(tb testing.TB) *http.Client {
	tb.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 100
	c := &http.Client{Transport: tr}
	tb.Cleanup(c.CloseIdleConnections)
	return c
}

// httpGet is a dependency call: GET url, non-200 is an error.
func httpGet(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("dependency answered %d: %s", resp.StatusCode, b)
	}
	return string(b), nil
}
