package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// serviceStats is one source service's counters in /_admin/stats.
type serviceStats struct {
	Requests    int64 `json:"requests"`
	Lookups     int64 `json:"lookups"`
	Missing     int64 `json:"missing"`
	InFlight    int64 `json:"in_flight"`
	MaxInFlight int64 `json:"max_in_flight"`
}

// MustSourceStats is GET (or, resetting first, DELETE) /_admin/stats of the
// source service, per service.
func MustSourceStats(tb testing.TB, topo *topology.Topology, method string) map[string]serviceStats {
	tb.Helper()
	req, err := http.NewRequest(method, topology.URL(topo.Config().Ports.Source)+"/_admin/stats", nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Services map[string]serviceStats `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("source stats: %s %v", resp.Status, err)
	}
	return body.Services
}

func totalLookups(st map[string]serviceStats) (lookups, missing int64) {
	for _, s := range st {
		lookups += s.Lookups
		missing += s.Missing
	}
	return lookups, missing
}

// directMetric reads one sample of the direct-data service's /metrics
// ("name" or `name{label="v"}`); 0 when absent.
func directMetric(tb testing.TB, topo *topology.Topology, sample string) float64 {
	tb.Helper()
	v, err := readDirectMetric(topo, sample)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func readDirectMetric(topo *topology.Topology, sample string) (float64, error) {
	resp, err := client.Get(topology.URL(topo.Config().Ports.Direct) + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("direct metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("direct metric %s: %w", sample, err)
			}
			return f, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("direct metrics: %w", err)
	}
	return 0, nil
}

func MustBloomReady(tb testing.TB, topo *topology.Topology) {
	tb.Helper()
	testutil.Eventually(tb, 30*time.Second, func() error {
		v, err := readDirectMetric(topo, "detailpage_direct_bloom_ready")
		if err != nil {
			return err
		}
		if v != 1 {
			return fmt.Errorf("the direct-data service's Bloom filter is not ready")
		}
		return nil
	})
}

// load sends rate requests a second for d, open loop, to url(id) for ids
// from next (loadgen.Run), logs how many could not be sent on time, and
// returns every result.
func load(tb testing.TB, rate int, d time.Duration, url func(int64) string, next func() int64) loadgen.Report {
	tb.Helper()
	c := loadgen.NewClient()
	defer c.CloseIdleConnections()
	rep := loadgen.Run(tb.Context(), c, rate, d, url, next)
	if late := rep.Late(); late > 0 {
		tb.Logf("load: %d of %d requests left over %s behind schedule: this machine could not keep the rate", late, len(rep.Results), loadgen.LateAfter)
	}
	return rep
}

func itemURL(topo *topology.Topology) func(int64) string {
	base := topology.URL(topo.Config().Ports.Dist) + "/item/"
	return func(id int64) string { return base + strconv.FormatInt(id, 10) + ".html" }
}
