package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// protectedConfig is what a protection test changes in its own topology.
type protectedConfig struct {
	products   int
	l1, l2     time.Duration
	directArgs []string
}

// MustStartProtected starts a topology of its own for one test and stops
// it when the test ends.
func MustStartProtected(tb testing.TB, pc protectedConfig) *topology.Topology {
	tb.Helper()
	topo, err := startTopologyOpts(topology.Config{
		SeedProducts: pc.products, SeedShops: 50,
		AppL1TTL: pc.l1, AppL2TTL: pc.l2, DirectArgs: pc.directArgs,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		topo.Stop()
		os.RemoveAll(topo.Config().VarDir)
	})
	return topo
}

// sourceStats is GET (or, resetting first, DELETE) /_admin/stats of the
// source service, per service.
type serviceStats struct {
	Requests    int64 `json:"requests"`
	Lookups     int64 `json:"lookups"`
	Missing     int64 `json:"missing"`
	InFlight    int64 `json:"in_flight"`
	MaxInFlight int64 `json:"max_in_flight"`
}

func MustSourceStats(tb testing.TB, topo *topology.Topology, method string) map[string]serviceStats {
	tb.Helper()
	req, _ := http.NewRequest(method, topology.URL(topo.Config().Ports.Source)+"/_admin/stats", nil)
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
	resp, err := client.Get(topology.URL(topo.Config().Ports.Direct) + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

func MustBloomReady(tb testing.TB, topo *topology.Topology) {
	tb.Helper()
	Eventually(tb, 30*time.Second, func() error {
		if directMetric(tb, topo, "detailpage_direct_bloom_ready") != 1 {
			return fmt.Errorf("the direct-data service's Bloom filter is not ready")
		}
		return nil
	})
}

// load sends rate requests a second for d, open loop, to url(id) for ids
// from next, and returns every result.
func load(tb testing.TB, rate int, d time.Duration, url func(int64) string, next func() int64) []loadgen.Result {
	tb.Helper()
	c := loadgen.NewClient()
	defer c.CloseIdleConnections()
	start := time.Now()
	results := loadgen.Run(c, rate, d, url, next)
	if took := time.Since(start); took > d+d/5+time.Second {
		tb.Logf("load: %d requests took %s, want about %s: this machine could not keep the rate", len(results), took, d)
	}
	return results
}

// summary is a short human line about a load run.
func summary(rs []loadgen.Result) string {
	statuses, caches := map[int]int{}, map[string]int{}
	lat := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		statuses[r.Status]++
		caches[r.Cache]++
		lat = append(lat, r.Latency)
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		return "no requests"
	}
	p := func(q float64) time.Duration { return lat[int(float64(len(lat)-1)*q)].Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d requests; status %v; X-Cache %v; latency p50 %s p90 %s p99 %s max %s",
		len(rs), statuses, caches, p(0.5), p(0.9), p(0.99), lat[len(lat)-1].Round(10*time.Microsecond))
}

func itemURL(topo *topology.Topology) func(int64) string {
	base := topology.URL(topo.Config().Ports.Dist) + "/item/"
	return func(id int64) string { return base + strconv.FormatInt(id, 10) + ".html" }
}
