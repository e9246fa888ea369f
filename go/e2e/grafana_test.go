package e2e

// The Grafana dashboard in docs/grafana/detailpage.json queries only
// metrics the Go services expose: every metric name in every panel's
// PromQL (and the template variables' queries) is found in a live
// /metrics of the shared topology's Go services.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/detailpage/detailpage/go/internal/topology"
)

// goServices are the topology's components that are Go services with a
// /metrics (whichever of them the topology runs).
var goServices = []string{topology.Source, topology.Sync, topology.Sync2, topology.Direct, topology.Hot, topology.One, "console"}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Title   string `json:"title"`
	Type    string `json:"type"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// promQuery is one PromQL expression of the dashboard and where it is.
type promQuery struct{ where, expr string }

func mustDashboard(tb testing.TB) (grafanaDashboard, []promQuery) {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "docs", "grafana", "detailpage.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		tb.Fatalf("docs/grafana/detailpage.json: %v", err)
	}
	var qs []promQuery
	var walk func([]grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				qs = append(qs, promQuery{fmt.Sprintf("panel %q %s", p.Title, t.RefID), t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil { // the object form; older dashboards use a string
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				tb.Fatalf("variable %s: query %s", v.Name, v.Query)
			}
		}
		qs = append(qs, promQuery{"variable $" + v.Name, q.Query})
	}
	return d, qs
}

var (
	promStrings   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promLabelList = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promNotNames  = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true,
		"group_right": true, "offset": true, "bool": true, "and": true, "or": true, "unless": true, "atan2": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true}
)

// promMetricNames returns the metric names a PromQL expression (or a
// Grafana label_values(metric, label) query) selects. A tokenizer rather
// than Prometheus's parser: that parser would bring the whole Prometheus
// server module in as a dependency for one test, and the dashboard's
// queries use a small part of the language (no @, no subqueries) — the
// test below pins what this reads.
func promMetricNames(expr string) []string {
	if m := regexp.MustCompile(`^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,`).FindStringSubmatch(expr); m != nil {
		return []string{m[1]}
	}
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promLabelList.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		switch {
		case promNotNames[name], strings.HasPrefix(rest, "("): // a keyword, a function
		case loc[0] > 0 && (s[loc[0]-1] == '$' || s[loc[0]-1] == '.' || (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9')): // $var, 1e-9
		default:
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

func TestPromMetricNames(t *testing.T) {
	for _, c := range []struct{ expr, want string }{
		{`rate(a_total[5m])`, "a_total"},
		{`sum by (command, le) (rate(b_bucket{x=~"a|b", y!="c{d}"}[$__rate_interval]))`, "b_bucket"},
		{`100 * sum(rate(a{o="x"}[1m])) / clamp_min(sum(rate(b[1m])), 1e-9)`, "a b"},
		{`histogram_quantile(0.99, sum without (pod) (rate(h_bucket[1m]))) > bool 0.5 and on (job) up`, "h_bucket up"},
		{`label_values(process_cpu_seconds_total, job)`, "process_cpu_seconds_total"},
		{`max(x) offset 5m or vector(0)`, "x"},
		{`g{job=~"$job"}`, "g"},
	} {
		if got := strings.Join(promMetricNames(c.expr), " "); got != c.want {
			t.Errorf("%s: %q, want %q", c.expr, got, c.want)
		}
	}
}

// scrapeNames returns the sample names in a Prometheus text exposition.
func scrapeNames(url string) (map[string]bool, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return nil, fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names, sc.Err()
}

func TestGrafanaDashboardMetricsExist(t *testing.T) {
	d, queries := mustDashboard(t)
	if d.UID == "" || d.Title == "" || len(queries) == 0 {
		t.Fatalf("dashboard %q (uid %q) with %d queries", d.Title, d.UID, len(queries))
	}
	// Grafana imports it: unique panel ids, every panel placed on the
	// 24-column grid, every query panel on the $datasource variable.
	ids := map[int]string{}
	for _, p := range d.Panels {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		if g := p.GridPos; g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if len(p.Targets) > 0 && (p.Datasource == nil || p.Datasource.UID != "${datasource}") {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
	}
	// A little traffic first, so that the metrics with labels the services
	// create on first use (lookups by level, answers by code, parts by
	// level, ...) are there: pages through the dist tier, the direct-data
	// service's API, the realtime API.
	direct := topology.URL(shared.Config().Ports.Direct)
	for _, id := range coldIDs(t, 3) {
		MustGetPage(t, pageURL(shared, id))
		if got := MustGetPage(t, direct+"/api/item/"+id); got.status != http.StatusOK {
			t.Fatalf("direct-data /api/item/%s: %d", id, got.status)
		}
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := getRealtime(realtimeURL(shared, n, "")); err != nil {
			t.Fatal(err)
		}
	}

	live := map[string][]string{} // metric name -> services exposing it
	var scraped []string
	for _, st := range shared.Statuses() {
		if !slices.Contains(goServices, st.Name) {
			continue
		}
		url := "http://" + shared.Component(st.Name).Addr() + "/metrics"
		names, err := scrapeNames(url)
		if err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
		scraped = append(scraped, st.Name)
		for n := range names {
			live[n] = append(live[n], st.Name)
		}
	}
	t.Logf("scraped /metrics of %v: %d sample names", scraped, len(live))
	if len(scraped) < 5 {
		t.Fatalf("scraped only %v", scraped)
	}
	used := map[string]bool{}
	for _, q := range queries {
		names := promMetricNames(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", q.where, q.expr)
		}
		for _, n := range names {
			used[n] = true
			if len(live[n]) == 0 {
				t.Errorf("%s: metric %s is in no live /metrics (%s)", q.where, n, q.expr)
			}
		}
	}
	list := make([]string, 0, len(used))
	for n := range used {
		list = append(list, fmt.Sprintf("%s (%s)", n, strings.Join(live[n], ",")))
	}
	sort.Strings(list)
	t.Logf("%d queries over %d metrics, each found: %s", len(queries), len(used), strings.Join(list, " "))
}
