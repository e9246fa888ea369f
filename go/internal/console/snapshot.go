package console

import (
	"math"
	"sort"
	"time"
)

// Snapshot is everything the page shows (GET /api/overview, and every
// second on /api/stream). Unknown values are null, never left out.
type Snapshot struct {
	At       time.Time       `json:"at"`
	Commands []CommandStat   `json:"commands"`
	AppNodes []AppNode       `json:"app_nodes"`
	Dist     DistStatus      `json:"dist"`
	Hot      HotStatus       `json:"hot"`
	Pipeline Pipeline        `json:"pipeline"`
	Services []ServiceStatus `json:"services"`
}

// CommandStat is one resilience command across every instance reporting
// it: its rate and errors summed, its latency the worst instance's.
type CommandStat struct {
	Name     string   `json:"name"`
	Services []string `json:"services"`
	Hosts    int      `json:"hosts"`
	Rate     float64  `json:"rate"`      // requests/s over the rolling window (10 s)
	ErrorPct float64  `json:"error_pct"` // errors / requests over the window, %
	P50      *float64 `json:"p50_ms"`
	P99      *float64 `json:"p99_ms"`
	Circuit  string   `json:"circuit"` // closed | open
	InFlight *float64 `json:"in_flight"`
	Limit    *float64 `json:"limit"`
}

// Link is one link of an app node (replica or direct).
type Link struct {
	State     string   `json:"state"` // normal | degraded
	Mode      string   `json:"mode"`  // auto | force-degraded | force-normal
	Failures  float64  `json:"failures"`
	RetryInMS *float64 `json:"retry_in_ms"`
}

// CacheLevel is one level of an app node's answers.
type CacheLevel struct {
	Hits  float64 `json:"hits"`
	Ratio float64 `json:"ratio"`
}

// AppNode is one app node's status.
type AppNode struct {
	Name  string                `json:"name"`
	URL   string                `json:"url"`
	OK    bool                  `json:"ok"`
	Error string                `json:"error"`
	Links map[string]*Link      `json:"links"`
	Cache map[string]CacheLevel `json:"cache"`
}

// NodeState is one node as the dist tier's prober sees it.
type NodeState struct {
	Name  string `json:"name"`
	State string `json:"state"` // up | down | unknown
}

// DistStatus is the dist tier's view of its app nodes and OneServers.
type DistStatus struct {
	OK       bool        `json:"ok"`
	Error    string      `json:"error"`
	Nodes    []NodeState `json:"nodes"`
	OneNodes []NodeState `json:"one_nodes"`
}

// HotID is one id of the hot set.
type HotID struct {
	ID     int64     `json:"id"`
	Rate   float64   `json:"rate"`
	Pinned bool      `json:"pinned"`
	Since  time.Time `json:"since"`
}

// HotStatus is the hot set (the first hot service instance that answers).
type HotStatus struct {
	OK    bool    `json:"ok"`
	Error string  `json:"error"`
	IDs   []HotID `json:"ids"`
}

// Pipeline is the change pipeline's backlog: the source's outbox, the
// sync groups' consumer lag, the dead-letter queue. Null: no instance
// reported it.
type Pipeline struct {
	OutboxBacklog *float64           `json:"outbox_backlog"`
	ConsumerLag   map[string]float64 `json:"consumer_lag"`
	DLQ           *float64           `json:"dlq"`
}

// ServiceStatus is one Go service as the console reaches it.
type ServiceStatus struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	OK     bool   `json:"ok"`     // its /metrics answered
	Stream string `json:"stream"` // connected | retrying
	Error  string `json:"error"`
}

// commandStats turns the instances of every HystrixCommand into the
// page's tiles, with the authoritative circuit state and bulkhead figures
// from the services' /metrics (gauges by command and service) where known.
func commandStats(sets []instanceSet, gauges map[string]map[string]cmdGauges) []CommandStat {
	var out []CommandStat
	for _, s := range sets {
		if s.typ != TypeCommand {
			continue
		}
		cs := CommandStat{Name: s.name, Services: s.hosts, Hosts: len(s.hosts), Circuit: "closed"}
		var reqs, errs float64
		windowS := 10.0
		p50, p99 := -1.0, -1.0
		for _, ev := range s.events {
			reqs += num(ev, "requestCount")
			errs += num(ev, "errorCount")
			if w := num(ev, "propertyValue_metricsRollingStatisticalWindowInMilliseconds"); w > 0 {
				windowS = w / 1000
			}
			if open, _ := ev["isCircuitBreakerOpen"].(bool); open {
				cs.Circuit = "open"
			}
			if lt, ok := ev["latencyTotal"].(map[string]any); ok {
				if v, ok := lt["50"].(float64); ok {
					p50 = max(p50, v)
				}
				if v, ok := lt["99"].(float64); ok {
					p99 = max(p99, v)
				}
			}
		}
		cs.Rate = round1(reqs / windowS)
		if reqs > 0 {
			cs.ErrorPct = round1(errs / reqs * 100)
		}
		if p50 >= 0 {
			cs.P50 = &p50
		}
		if p99 >= 0 {
			cs.P99 = &p99
		}
		// The Prometheus gauges are the breaker's own state (hystrix-go's
		// flag is its reading of the same events): open if any instance's
		// breaker is open or half-open.
		var inFlight, limit float64
		known := false
		for _, h := range s.hosts {
			g, ok := gauges[h][s.name]
			if !ok {
				continue
			}
			known = true
			inFlight += g.inFlight
			limit += g.limit
			if g.state != 0 {
				cs.Circuit = "open"
			}
		}
		if known {
			cs.InFlight, cs.Limit = &inFlight, &limit
		}
		out = append(out, cs)
	}
	sortWorstFirst(out)
	return out
}

// sortWorstFirst orders tiles: open circuits, then error %, then p99.
func sortWorstFirst(cs []CommandStat) {
	p99 := func(c CommandStat) float64 {
		if c.P99 == nil {
			return -1
		}
		return *c.P99
	}
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if (a.Circuit == "open") != (b.Circuit == "open") {
			return a.Circuit == "open"
		}
		if a.ErrorPct != b.ErrorPct {
			return a.ErrorPct > b.ErrorPct
		}
		if p99(a) != p99(b) {
			return p99(a) > p99(b)
		}
		return a.Name < b.Name
	})
}

func num(ev event, k string) float64 {
	v, _ := ev[k].(float64)
	return v
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
