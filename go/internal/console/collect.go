package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxStatusBytes bounds a node's or service's answer the console reads.
const maxStatusBytes = 8 << 20

// Metrics the snapshot reads from the services' /metrics.
const (
	metricCircuitState = "detailpage_resilience_circuit_state"
	metricInFlight     = "detailpage_resilience_bulkhead_in_flight"
	metricLimit        = "detailpage_resilience_bulkhead_limit"
	metricOutbox       = "detailpage_outbox_backlog"
	metricLag          = "detailpage_sync_consumer_lag"
	metricDLQ          = "detailpage_sync_dlq_pending"
)

type cmdGauges struct{ state, inFlight, limit float64 }

// collector builds snapshots: it asks every node and service at once,
// each request bounded by the configured timeout.
type collector struct {
	cfg    Config
	client *http.Client
	agg    *aggregator
	fol    *follower
	now    func() time.Time
}

// getJSON GETs url (with the bearer token when auth) into v.
func (c *collector) getJSON(ctx context.Context, url string, auth bool, v any) error {
	body, err := c.get(ctx, url, auth)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}

func (c *collector) get(ctx context.Context, url string, auth bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+c.cfg.AdminToken)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return body, nil
}

// snapshot asks everything at once and builds the snapshot.
func (c *collector) snapshot(ctx context.Context) *Snapshot {
	s := &Snapshot{
		At:       c.now().UTC(),
		AppNodes: make([]AppNode, len(c.cfg.Apps)),
		Services: make([]ServiceStatus, len(c.cfg.Services)),
		Pipeline: Pipeline{ConsumerLag: map[string]float64{}},
	}
	metrics := make([]map[string]*dto.MetricFamily, len(c.cfg.Services))
	var wg sync.WaitGroup
	for i, t := range c.cfg.Apps {
		wg.Go(func() { s.AppNodes[i] = c.appNode(ctx, t) })
	}
	for i, t := range c.cfg.Services {
		wg.Go(func() {
			st := ServiceStatus{Name: t.Name, URL: t.URL, Stream: "retrying"}
			fams, err := c.metrics(ctx, t.URL)
			if err != nil {
				st.Error = err.Error()
			} else {
				st.OK, metrics[i] = true, fams
			}
			if ss := c.fol.state(t.Name); ss.Connected {
				st.Stream = "connected"
			} else if st.Error == "" {
				st.Error = "hystrix stream: " + ss.Error
			}
			s.Services[i] = st
		})
	}
	wg.Go(func() { s.Dist = c.dist(ctx) })
	wg.Go(func() { s.Hot = c.hot(ctx) })
	wg.Wait()

	gauges := map[string]map[string]cmdGauges{}
	for i, fams := range metrics {
		if fams == nil {
			continue
		}
		name := c.cfg.Services[i].Name
		gauges[name] = commandGauges(fams)
		if v, ok := gaugeMax(fams[metricOutbox]); ok {
			s.Pipeline.OutboxBacklog = maxPtr(s.Pipeline.OutboxBacklog, v)
		}
		if v, ok := gaugeMax(fams[metricDLQ]); ok {
			s.Pipeline.DLQ = maxPtr(s.Pipeline.DLQ, v)
		}
		if f := fams[metricLag]; f != nil {
			// Every sync instance reports its groups' lag (the same
			// committed offsets): the largest reading counts.
			for _, m := range f.GetMetric() {
				if v := m.GetGauge().GetValue(); finite(v) {
					g := label(m, "group")
					s.Pipeline.ConsumerLag[g] = max(s.Pipeline.ConsumerLag[g], v)
				}
			}
		}
	}
	s.Commands = commandStats(c.agg.instances(), gauges)
	if s.Commands == nil {
		s.Commands = []CommandStat{}
	}
	return s
}

func maxPtr(p *float64, v float64) *float64 {
	if p != nil && *p >= v {
		return p
	}
	return &v
}

func (c *collector) metrics(ctx context.Context, base string) (map[string]*dto.MetricFamily, error) {
	body, err := c.get(ctx, base+"/metrics", false)
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s/metrics: %w", base, err)
	}
	return fams, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// finite is false for NaN and ±Inf: a reading the snapshot skips (a
// count that failed; JSON cannot carry them either).
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// gaugeMax is the largest value of a gauge family (any labels);
// non-finite readings are unknown.
func gaugeMax(f *dto.MetricFamily) (float64, bool) {
	v, ok := 0.0, false
	for _, m := range f.GetMetric() {
		x := m.GetGauge().GetValue()
		if !finite(x) {
			continue
		}
		if !ok || x > v {
			v, ok = x, true
		}
	}
	return v, ok
}

func commandGauges(fams map[string]*dto.MetricFamily) map[string]cmdGauges {
	out := map[string]cmdGauges{}
	set := func(fam string, apply func(*cmdGauges, float64)) {
		for _, m := range fams[fam].GetMetric() {
			v := m.GetGauge().GetValue()
			if !finite(v) {
				continue // unknown: left out
			}
			cmd := label(m, "command")
			g := out[cmd]
			apply(&g, v)
			out[cmd] = g
		}
	}
	set(metricCircuitState, func(g *cmdGauges, v float64) { g.state = v })
	set(metricInFlight, func(g *cmdGauges, v float64) { g.inFlight = v })
	set(metricLimit, func(g *cmdGauges, v float64) { g.limit = v })
	return out
}

// appStatus is what the console reads of an app node's /_admin/status.
type appStatus struct {
	Links map[string]struct {
		State    string  `json:"state"`
		Mode     string  `json:"mode"`
		Failures float64 `json:"failures"`
		RetryAt  float64 `json:"retry_at"` // unix seconds; 0: none
	} `json:"links"`
	Cache struct {
		Hits map[string]float64 `json:"hits"`
	} `json:"cache"`
}

func (c *collector) appNode(ctx context.Context, t Target) AppNode {
	n := AppNode{Name: t.Name, URL: t.URL, Links: map[string]*Link{"replica": nil, "direct": nil}, Cache: map[string]CacheLevel{}}
	var st appStatus
	if err := c.getJSON(ctx, t.URL+"/_admin/status", true, &st); err != nil {
		n.Error = err.Error()
		return n
	}
	n.OK = true
	now := float64(c.now().UnixNano()) / 1e9
	for name, l := range st.Links {
		link := &Link{State: l.State, Mode: l.Mode, Failures: l.Failures}
		if l.RetryAt > 0 && l.State == "degraded" {
			ms := max(0, (l.RetryAt-now)*1000)
			ms = float64(int64(ms))
			link.RetryInMS = &ms
		}
		n.Links[name] = link
	}
	var total float64
	for _, h := range st.Cache.Hits {
		total += h
	}
	for level, h := range st.Cache.Hits {
		cl := CacheLevel{Hits: h}
		if total > 0 {
			cl.Ratio = round3(h / total)
		}
		n.Cache[level] = cl
	}
	return n
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func (c *collector) dist(ctx context.Context) DistStatus {
	d := DistStatus{Nodes: []NodeState{}, OneNodes: []NodeState{}}
	if c.cfg.DistAdmin == "" {
		d.Error = "no dist admin configured"
		return d
	}
	var st struct {
		Nodes    []struct{ Node, State string } `json:"nodes"`
		OneNodes []struct{ Node, State string } `json:"one_nodes"`
	}
	if err := c.getJSON(ctx, c.cfg.DistAdmin+"/_admin/status", true, &st); err != nil {
		d.Error = err.Error()
		return d
	}
	d.OK = true
	for _, n := range st.Nodes {
		d.Nodes = append(d.Nodes, NodeState{Name: n.Node, State: n.State})
	}
	for _, n := range st.OneNodes {
		d.OneNodes = append(d.OneNodes, NodeState{Name: n.Node, State: n.State})
	}
	return d
}

// hot reads the hot set from the first instance that answers (every
// instance detects from the same reports).
func (c *collector) hot(ctx context.Context) HotStatus {
	h := HotStatus{IDs: []HotID{}}
	if len(c.cfg.Hot) == 0 {
		h.Error = "no hot service configured"
		return h
	}
	var errs []string
	for _, t := range c.cfg.Hot {
		var st struct {
			Hot []HotID `json:"hot"`
		}
		if err := c.getJSON(ctx, t.URL+"/api/hot", false, &st); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		h.OK = true
		if st.Hot != nil {
			h.IDs = st.Hot
		}
		sort.SliceStable(h.IDs, func(i, j int) bool { return h.IDs[i].Rate > h.IDs[j].Rate })
		return h
	}
	h.Error = fmt.Sprint(errs)
	return h
}
