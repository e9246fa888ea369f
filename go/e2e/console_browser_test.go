package e2e

// The operator console (issue 14) in a real browser: headless Debian
// Chromium driven by chromedp (testutil.MustBrowser) logs in to the
// shared topology's console and watches and drives the topology through
// the page only; the tests check what the page shows against the
// services themselves. Screenshots go to testutil.ScreenshotDir (the path
// is logged).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/console"
	"github.com/detailpage/detailpage/go/internal/realtime"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// fullShot saves a screenshot of the whole page, scrolled to the top (the
// header sticks to the top of the viewport).
func fullShot(p *testutil.Page, name string) {
	testutil.MustEval[bool](p, `(function () { window.scrollTo(0, 0); return true; })()`)
	p.MustScreenshot(name, true)
}

// waitPage polls a JavaScript expression until it is true and returns
// how long that took; it fails the test after limit, showing what the page
// shows.
func waitPage(tb testing.TB, p *testutil.Page, limit time.Duration, what, expr string) time.Duration {
	tb.Helper()
	start := time.Now()
	err := testutil.PollEvery(limit, 20*time.Millisecond, func() error {
		ok, err := testutil.Eval[bool](p, expr)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err != nil {
		state, _ := testutil.Eval[string](p, `document.body.dataset.view + ", stream " + document.getElementById("conn").dataset.conn +
		  "; results: " + document.getElementById("results").textContent.slice(0, 600)`)
		tb.Fatalf("%s: %v after %s; page: %s; console: %v", what, err, limit, state, p.Console())
	}
	return time.Since(start)
}

// mustLogIn types the admin token into the page's login form and submits
// it; it returns when the form was submitted.
func mustLogIn(tb testing.TB, p *testutil.Page) time.Time {
	tb.Helper()
	p.MustNavigate(consoleURL(shared) + "/")
	waitPage(tb, p, 10*time.Second, "the login form", `document.body.dataset.view === "login"`)
	p.MustType("#login-token", token)
	at := time.Now()
	p.MustClick("#login-submit")
	return at
}

// MustConsolePage opens a tab on the console, logged in, following the
// stream.
func MustConsolePage(tb testing.TB, b *testutil.Browser, vp testutil.Viewport) *testutil.Page {
	tb.Helper()
	p := b.MustPage(tb, vp)
	mustLogIn(tb, p)
	waitPage(tb, p, 10*time.Second, "the live view", `document.body.dataset.view === "app" && document.getElementById("conn").dataset.conn === "live"`)
	return p
}

var circuitStateLine = regexp.MustCompile(`^detailpage_resilience_circuit_state\{command="([^"]+)"\}`)

// serviceCommands lists the resilience commands a Go service has, from its
// own /metrics (one circuit state per command).
func serviceCommands(addr string) ([]string, error) {
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", addr, resp.Status)
	}
	var out []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if m := circuitStateLine.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[1])
		}
	}
	return out, sc.Err()
}

// pageView is what the page shows of the commands and app nodes.
type pageView struct {
	Commands []string
	Links    map[string]map[string]struct{ State, Mode, Forced string }
}

const pageViewJS = `(function () {
  var v = { Commands: [], Links: {} };
  document.querySelectorAll("#command-tiles .tile").forEach(function (t) { v.Commands.push(t.dataset.command); });
  document.querySelectorAll("[data-app]").forEach(function (n) {
    var links = {};
    n.querySelectorAll("tr[data-link]").forEach(function (r) { links[r.dataset.link] = { State: r.dataset.state, Mode: r.dataset.mode, Forced: r.dataset.forced }; });
    v.Links[n.dataset.app] = links;
  });
  return v;
})()`

// Acceptance 1: log in with the token; within 3 s the page shows every
// Go service's commands and both app nodes' links.
func TestConsoleBrowserLoginShowsEverything(t *testing.T) {
	want := map[string][]string{} // command -> services that have it
	for _, st := range shared.Statuses() {
		if !slices.Contains(goServices, st.Name) || st.Name == "console" {
			continue
		}
		cmds, err := serviceCommands(shared.Component(st.Name).Addr())
		if err != nil {
			t.Fatalf("%s: %v", st.Name, err)
		}
		for _, c := range cmds {
			want[c] = append(want[c], st.Name)
		}
	}
	if len(want) == 0 {
		t.Fatal("no Go service reports a command")
	}
	services := map[string]bool{}
	for _, ss := range want {
		for _, s := range ss {
			services[s] = true
		}
	}
	// The console itself must know them first: right after the topology
	// started it is still connecting to the services' streams. The 3 s are
	// the page's.
	ready := time.Now()
	mustPoll(t, 30*time.Second, func() error {
		snap, err := overview(shared)
		if err != nil {
			return err
		}
		var missing []string
		for c := range want {
			if !slices.ContainsFunc(snap.Commands, func(x console.CommandStat) bool { return x.Name == c }) {
				missing = append(missing, c)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("the console's /api/overview misses %v", missing)
		}
		return nil
	})
	t.Logf("the console's /api/overview had every command %s after the test started", time.Since(ready).Round(time.Millisecond))
	b := testutil.MustBrowser(t)
	p := b.MustPage(t, testutil.Desktop)
	// Without a session the page shows the login form, and a wrong token
	// is refused.
	p.MustNavigate(consoleURL(shared) + "/")
	waitPage(t, p, 10*time.Second, "the login form", `document.body.dataset.view === "login" && !document.getElementById("login").hidden`)
	p.MustType("#login-token", "not-the-token")
	p.MustClick("#login-submit")
	waitPage(t, p, 5*time.Second, "a wrong token refused", `!document.getElementById("login-error").hidden && document.body.dataset.view === "login"`)
	p.MustScreenshot("login-refused", false)
	testutil.MustEval[bool](p, `(function () { document.getElementById("login-token").value = ""; return true; })()`)

	p.MustType("#login-token", token)
	clicked := time.Now()
	p.MustClick("#login-submit")
	var v pageView
	var live time.Duration
	var lastMissing string
	err := testutil.PollEvery(10*time.Second, 20*time.Millisecond, func() error {
		var err error
		if v, err = testutil.Eval[pageView](p, pageViewJS); err != nil {
			return err
		}
		if live == 0 && len(v.Commands) > 0 {
			live = time.Since(clicked)
		}
		var missing []string
		for c := range want {
			if !slices.Contains(v.Commands, c) {
				missing = append(missing, c)
			}
		}
		for _, node := range []string{topology.App1, topology.App2} {
			for _, link := range []string{"replica", "direct"} {
				l := v.Links[node][link]
				if (l.State != "normal" && l.State != "degraded") || l.Mode == "" || l.Mode == "unknown" {
					missing = append(missing, fmt.Sprintf("%s %s link (%+v)", node, link, l))
				}
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			if m := strings.Join(missing, ", "); m != lastMissing {
				lastMissing = m
				t.Logf("%s: not shown yet: %s", time.Since(clicked).Round(time.Millisecond), m)
			}
			return fmt.Errorf("not shown: %s", lastMissing)
		}
		return nil
	})
	took := time.Since(clicked)
	t.Logf("first snapshot shown %s after the login click", live.Round(time.Millisecond))
	if err != nil {
		t.Fatalf("%v; console: %v", err, p.Console())
	}
	t.Logf("%s after the login click: %d commands of %d services %v (%v) and both app nodes' links shown",
		took.Round(time.Millisecond), len(want), len(services), sortedKeys(services), sortedKeys(want))
	if took > 3*time.Second {
		t.Errorf("shown %s after the login click, want within 3 s", took.Round(time.Millisecond))
	}
	// The token is in no URL and the session cookie is out of the script's
	// reach (HttpOnly).
	if loc := testutil.MustEval[string](p, `location.href + " " + document.cookie`); strings.Contains(loc, token) || strings.Contains(loc, "dp_console") {
		t.Errorf("after login the page has %q", loc)
	}
	fullShot(p, "overview")
	p.MustNoScriptErrors()

	// On a phone: the same, one column, nothing sticking out sideways.
	phone := MustConsolePage(t, b, testutil.Phone)
	waitPage(t, phone, 5*time.Second, "tiles on the phone", fmt.Sprintf(`document.querySelectorAll("#command-tiles .tile").length >= %d`, len(want)))
	type layout struct {
		ScrollWidth, InnerWidth float64
		Out                     []string
	}
	l := testutil.MustEval[layout](phone, `(function () {
	  var w = window.innerWidth, out = [];
	  document.querySelectorAll("main *").forEach(function (e) {
	    var r = e.getBoundingClientRect();
	    if (r.width > 0 && r.height > 0 && (r.left < -0.5 || r.right > w + 0.5)) { out.push(e.tagName.toLowerCase() + "." + e.className); }
	  });
	  return { ScrollWidth: document.scrollingElement.scrollWidth, InnerWidth: w, Out: out.slice(0, 10) };
	})()`)
	if l.ScrollWidth > l.InnerWidth || len(l.Out) > 0 {
		t.Errorf("on a phone the page is wider than the screen (%v > %v): %v", l.ScrollWidth, l.InnerWidth, l.Out)
	}
	phone.MustScreenshot("overview-phone", false)
	phone.MustNoScriptErrors()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tileState is one command tile as the page shows it.
type tileState struct {
	Found    bool
	Circuit  string
	ErrorPct float64
	Rate     float64
	Text     string
}

func tileJS(name string) string {
	return fmt.Sprintf(`(function () {
  var t = Array.from(document.querySelectorAll("#command-tiles .tile")).filter(function (x) { return x.dataset.command === %q; })[0];
  if (!t) { return { Found: false }; }
  return { Found: true, Circuit: t.dataset.circuit, ErrorPct: parseFloat(t.dataset.errorPct) || 0, Rate: parseFloat(t.dataset.rate) || 0,
    Text: t.dataset.command + " " + t.dataset.circuit + ": " + Array.from(t.querySelectorAll(".stats dt")).map(function (dt) { return dt.textContent + " " + dt.nextElementSibling.textContent.trim(); }).join(", ") };
})()`, name)
}

// realtimeTraffic asks the OneServer for 10 ids at a time, rate times a
// second, over ids that are never fresh in its cache, until stop.
func realtimeTraffic(tb testing.TB, rate int) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	base := topology.URL(shared.Config().Ports.One) + "/api/realtime?ids="
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		next := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ids := make([]string, 10)
			for i := range ids {
				ids[i] = strconv.Itoa(1 + next%5000)
				next++
			}
			wg.Go(func() {
				resp, err := client.Get(base + strings.Join(ids, ","))
				if err == nil {
					resp.Body.Close()
				}
			})
		}
	})
	once := sync.OnceFunc(func() { cancel(); wg.Wait() })
	tb.Cleanup(once)
	return once
}

// Acceptance 2: a source fault (error rate 1.0 on the price service) and
// realtime traffic: within a few seconds the realtime service's price
// command's tile shows the error rate rising and the circuit open; the
// fault cleared, it closes.
func TestConsoleBrowserCircuitOpensAndCloses(t *testing.T) {
	const (
		command = realtime.PriceCommand // source.price.batch, in the OneServer
		within  = 5 * time.Second       // "a few seconds": the console reads the streams every second
		window  = 10 * time.Second      // the commands' rolling statistics window
	)
	b := testutil.MustBrowser(t)
	p := MustConsolePage(t, b, testutil.Desktop)
	stopTraffic := realtimeTraffic(t, 25)
	var before tileState
	mustPoll(t, 15*time.Second, func() error {
		before = testutil.MustEval[tileState](p, tileJS(command))
		if !before.Found || before.Circuit != "closed" || before.Rate == 0 {
			return fmt.Errorf("tile %s before the fault: %+v", command, before)
		}
		return nil
	})
	t.Logf("before the fault: %s", before.Text)

	MustSourceFault(t, shared, `{"service":"price","error_rate":1.0}`)
	faulted := time.Now()
	type step struct {
		at time.Duration
		s  tileState
	}
	var seen []step
	watch := func(limit time.Duration, done func(tileState) bool) time.Duration {
		t.Helper()
		var at time.Duration
		mustPoll(t, limit, func() error {
			s := testutil.MustEval[tileState](p, tileJS(command))
			if n := len(seen); n == 0 || s.ErrorPct != seen[n-1].s.ErrorPct || s.Circuit != seen[n-1].s.Circuit {
				seen = append(seen, step{time.Since(faulted), s})
			}
			if !done(s) {
				return fmt.Errorf("tile %s: %+v", command, s)
			}
			at = time.Since(faulted)
			return nil
		})
		return at
	}
	// Open, with the error rate rising: within a few seconds.
	open := watch(within, func(s tileState) bool { return s.Circuit == "open" && s.ErrorPct > before.ErrorPct })
	fullShot(p, "circuit-open")
	// The error % is over the rolling 10 s window (Hystrix's): it passes
	// 50 % once the errors outnumber the window's successes.
	half := watch(window+within, func(s tileState) bool { return s.Circuit == "open" && s.ErrorPct >= 50 })
	var steps []string
	for _, st := range seen {
		steps = append(steps, fmt.Sprintf("%s %s %.1f%%", st.at.Round(100*time.Millisecond), st.s.Circuit, st.s.ErrorPct))
	}
	t.Logf("after the fault the tile showed the circuit open with the error rate rising at %s, the error rate at 50%% or more at %s (seen: %s)",
		open.Round(time.Millisecond), half.Round(time.Millisecond), strings.Join(steps, " → "))
	fullShot(p, "circuit-open-errors")
	// Worst first: only open circuits come before it.
	ahead := testutil.MustEval[[]string](p, fmt.Sprintf(`(function () {
	  var out = [];
	  for (var t = document.querySelector("#command-tiles .tile"); t && t.dataset.command !== %q; t = t.nextElementSibling) { out.push(t.dataset.command + " " + t.dataset.circuit); }
	  return out;
	})()`, command))
	for _, a := range ahead {
		if !strings.HasSuffix(a, " open") {
			t.Errorf("tile %s comes before the open circuit %s (tiles ahead: %v)", a, command, ahead)
		}
	}

	if code, body, err := adminSource(shared, http.MethodDelete, "/_admin/faults"); err != nil || code != http.StatusOK {
		t.Fatalf("clear the fault: %d %s %v", code, body, err)
	}
	cleared := time.Now()
	var closed time.Duration
	mustPoll(t, within, func() error {
		s := testutil.MustEval[tileState](p, tileJS(command))
		if s.Circuit != "closed" {
			return fmt.Errorf("tile %s: %+v", command, s)
		}
		closed = time.Since(cleared)
		return nil
	})
	t.Logf("the tile showed the circuit closed %s after the fault was cleared", closed.Round(time.Millisecond))
	fullShot(p, "circuit-closed")
	stopTraffic()
	p.MustNoScriptErrors()
}

// resultJS reports the newest result block of an action: its state and
// each target's ok.
func resultJS(action string) string {
	return fmt.Sprintf(`(function () {
  var r = document.querySelector('#results .result[data-action=%q]');
  if (!r) { return { State: "" }; }
  var targets = {};
  r.querySelectorAll("tr[data-target]").forEach(function (x) { targets[x.dataset.target] = x.dataset.ok === "true"; });
  var text = r.querySelector("h3").textContent + ": " + r.querySelector(".summary").textContent;
  r.querySelectorAll("tr[data-target]").forEach(function (x) { text += "; " + x.dataset.target + " " + Array.from(x.children).slice(1).map(function (c) { return c.textContent; }).join(" ").trim(); });
  return { State: r.dataset.state, Seq: parseInt(r.dataset.seq, 10), Targets: targets, Text: text };
})()`, action)
}

type actionResult struct {
	State   string
	Seq     int
	Targets map[string]bool
	Text    string
}

// mustConfirmAction clicks a control, checks the confirmation dialog,
// confirms, and waits for the result, which must be ok for every target
// in want.
func mustConfirmAction(tb testing.TB, p *testutil.Page, button, action string, want []string, shot string) actionResult {
	tb.Helper()
	prev := testutil.MustEval[actionResult](p, resultJS(action)).Seq
	p.MustClick(button)
	waitPage(tb, p, 5*time.Second, "the confirmation of "+button, `document.getElementById("confirm-dialog").open`)
	if shot != "" {
		p.MustScreenshot(shot, false)
	}
	p.MustClick("#confirm-ok")
	var r actionResult
	mustPoll(tb, 15*time.Second, func() error {
		r = testutil.MustEval[actionResult](p, resultJS(action))
		if r.Seq == prev || r.State == "pending" {
			return fmt.Errorf("no result yet for %s", button)
		}
		return nil
	})
	if r.State != "done" {
		tb.Fatalf("%s: %s", button, r.Text)
	}
	for _, target := range want {
		if ok, found := r.Targets[target]; !found || !ok {
			tb.Fatalf("%s: target %s not ok: %s", button, target, r.Text)
		}
	}
	return r
}

// Acceptance 3: force-degrade the replica link from the page: every app
// node serves from direct (X-Cache through each node's own port) and the
// page shows the forced state; back to auto, pages come from Redis again.
func TestConsoleBrowserForceDegradeReplica(t *testing.T) {
	nodes := []string{topology.App1, topology.App2}
	t.Cleanup(func() { // whatever happens, the shared topology's nodes go back to auto
		for _, node := range nodes {
			if code, body := admin(t, shared, node, http.MethodPost, "/_admin/degrade", token, map[string]string{"link": "replica", "mode": "auto"}); code != http.StatusOK {
				t.Errorf("restore auto on %s: %d %s", node, code, body)
			}
		}
	})
	b := testutil.MustBrowser(t)
	p := MustConsolePage(t, b, testutil.Desktop)
	waitPage(t, p, 10*time.Second, "both app nodes' replica link in auto", `document.querySelectorAll('[data-app] tr[data-link="replica"][data-mode="auto"]').length === 2`)

	r := mustConfirmAction(t, p, "#degrade-replica-force-degraded", "degrade", nodes, "confirm-force-degrade")
	t.Logf("force-degraded: %s", r.Text)
	for _, node := range nodes {
		if st := MustStatus(t, shared, node); st.Links["replica"].Mode != "force-degraded" {
			t.Fatalf("%s: replica mode %q after the page's force-degrade", node, st.Links["replica"].Mode)
		}
		// New connections, so that both workers of the node answer.
		for _, id := range coldIDs(t, 10) {
			got, err := getPageWith(freshConns, appURL(shared, node)+"/item/"+id+".html")
			if err != nil {
				t.Fatal(err)
			}
			if got.status != http.StatusOK || got.cache != "direct" {
				t.Fatalf("%s id %s with replica force-degraded: %d X-Cache %q, want 200 from direct", node, id, got.status, got.cache)
			}
		}
	}
	took := waitPage(t, p, 5*time.Second, "the forced state shown",
		`document.querySelectorAll('[data-app] tr[data-link="replica"][data-mode="force-degraded"][data-forced="true"][data-state="degraded"]').length === 2`)
	t.Logf("every app node served X-Cache direct; the page showed the forced state (within %s of the pages' check)", took.Round(time.Millisecond))
	fullShot(p, "replica-force-degraded")

	r = mustConfirmAction(t, p, "#degrade-replica-auto", "degrade", nodes, "")
	t.Logf("back to auto: %s", r.Text)
	waitPage(t, p, 5*time.Second, "auto shown", `document.querySelectorAll('[data-app] tr[data-link="replica"][data-mode="auto"][data-forced="false"]').length === 2`)
	for _, node := range nodes {
		if got := MustGetPage(t, appURL(shared, node)+"/item/"+coldIDs(t, 1)[0]+".html"); got.cache != "redis" {
			t.Errorf("%s back to auto: X-Cache %q, want redis", node, got.cache)
		}
	}
	p.MustNoScriptErrors()
}

type hotRow struct {
	Found  bool
	Pinned bool
	Rate   string
}

func hotRowJS(id int64) string {
	return fmt.Sprintf(`(function () {
  var r = document.querySelector('[data-hot-id="%d"]');
  if (!r) { return { Found: false }; }
  return { Found: true, Pinned: r.dataset.pinned === "true", Rate: r.querySelector('[data-field="rate"]').textContent };
})()`, id)
}

// mustHotPinned waits until the hot service says id is pinned (or not).
func mustHotPinned(tb testing.TB, id int64, pinned bool) {
	tb.Helper()
	mustPoll(tb, 5*time.Second, func() error {
		e, in, err := inHotSet(shared, id)
		if err != nil {
			return err
		}
		if (in && e.Pinned) != pinned {
			return fmt.Errorf("id %d: in the hot set %v, pinned %v; want pinned %v", id, in, e.Pinned, pinned)
		}
		return nil
	})
}

// Acceptance 4: a surging id appears in the hot set panel with its rate;
// pin and unpin work from the page (the row's button and the form).
func TestConsoleBrowserHotSet(t *testing.T) {
	const (
		surgeID = 7_312
		formID  = 7_313
		surge   = 250 // requests/s through the dist tier (the hot rule's floor is 100)
	)
	t.Cleanup(func() {
		for _, id := range []int64{surgeID, formID} {
			if code, body, err := adminHotWith(shared, token, id, "unpin"); err != nil || code != http.StatusOK {
				t.Errorf("unpin %d: %d %s %v", id, code, body, err)
			}
		}
	})
	b := testutil.MustBrowser(t)
	p := MustConsolePage(t, b, testutil.Desktop)

	load := newHotLoad(shared)
	ctx, stopSurge := context.WithCancel(context.Background())
	defer stopSurge()
	start := time.Now()
	load.run(ctx, surge, func() int64 { return surgeID })
	var row hotRow
	mustPoll(t, 10*time.Second, func() error {
		row = testutil.MustEval[hotRow](p, hotRowJS(surgeID))
		if !row.Found {
			return fmt.Errorf("id %d not in the hot panel", surgeID)
		}
		return nil
	})
	t.Logf("surge of %d requests/s on id %d: in the page's hot panel %s after its first request, at %s requests/s",
		surge, surgeID, time.Since(start).Round(time.Millisecond), row.Rate)
	fullShot(p, "hot-surge")

	mustConfirmAction(t, p, fmt.Sprintf(`[data-hot-id="%d"] button[data-hot-action="pin"]`, surgeID), "hot", nil, "confirm-pin")
	mustHotPinned(t, surgeID, true)
	waitPage(t, p, 5*time.Second, "the pinned id shown", fmt.Sprintf(`document.querySelector('[data-hot-id="%d"][data-pinned="true"]') !== null`, surgeID))
	fullShot(p, "hot-pinned")
	stopSurge()
	load.wait()
	if f := failures(load.snapshot()); len(f) > 0 {
		t.Errorf("%d of %d surge requests failed, e.g. %s", len(f), len(load.snapshot()), f[0])
	}
	mustConfirmAction(t, p, fmt.Sprintf(`[data-hot-id="%d"] button[data-hot-action="unpin"]`, surgeID), "hot", nil, "")
	mustHotPinned(t, surgeID, false)
	waitPage(t, p, 10*time.Second, "the unpinned id shown", fmt.Sprintf(`document.querySelector('[data-hot-id="%d"][data-pinned="true"]') === null`, surgeID))

	// The form: pin an id nobody asks for, then unpin it.
	p.MustType("#pin-id", strconv.Itoa(formID))
	mustConfirmAction(t, p, "#pin-submit", "hot", nil, "")
	mustHotPinned(t, formID, true)
	waitPage(t, p, 5*time.Second, "the form's pin shown", fmt.Sprintf(`document.querySelector('[data-hot-id="%d"][data-pinned="true"]') !== null`, formID))
	mustConfirmAction(t, p, "#unpin-submit", "hot", nil, "")
	mustHotPinned(t, formID, false)
	waitPage(t, p, 10*time.Second, "the form's unpin shown", fmt.Sprintf(`document.querySelector('[data-hot-id="%d"]') === null`, formID))
	p.MustNoScriptErrors()
}

// processCPU is the CPU time of every thread of pid in nanoseconds, from
// /proc/<pid>/task/*/schedstat (the scheduler's own count, in ns: the
// process collector's utime + stime move in 10 ms ticks, too coarse for
// ten seconds of a quiet process).
func processCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("schedstat of %d/%s: %q", pid, task.Name(), b)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, err
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// measureConsoleCPU measures the console's CPU time over d, by the scheduler
// (ns) and by its process_cpu_seconds_total.
func measureConsoleCPU(tb testing.TB, d time.Duration) (sched, metric time.Duration) {
	tb.Helper()
	pid := shared.Component(topology.Console).Pid()
	s0, err := processCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	m0, start := consoleCPU(tb, shared), time.Now()
	select { // a measuring interval, not a synchronization
	case <-time.After(d):
	case <-tb.Context().Done():
		tb.Fatal("the test ended while measuring")
	}
	s1, err := processCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	m1, took := consoleCPU(tb, shared), time.Since(start)
	if pid != shared.Component(topology.Console).Pid() {
		tb.Fatal("the console restarted while measuring")
	}
	scale := d.Seconds() / took.Seconds()
	return time.Duration(float64(s1-s0) * scale), time.Duration((m1 - m0) * scale * float64(time.Second))
}

// The console's CPU cost while streaming to 5 open browser tabs, against
// the same console with no page open (it polls the services either way).
func TestConsoleBrowserCPUWithFiveTabs(t *testing.T) {
	const (
		tabs   = 5
		period = 10 * time.Second
	)
	idle, idleMetric := measureConsoleCPU(t, period)
	b := testutil.MustBrowser(t)
	pages := make([]*testutil.Page, tabs)
	for i := range pages {
		pages[i] = MustConsolePage(t, b, testutil.Desktop)
	}
	streaming, streamingMetric := measureConsoleCPU(t, period)
	for i, p := range pages {
		if conn := testutil.MustEval[string](p, `document.getElementById("conn").dataset.conn`); conn != "live" {
			t.Errorf("tab %d: stream %s at the end of the measurement", i+1, conn)
		}
		p.MustNoScriptErrors()
	}
	perSec := func(d time.Duration) string {
		return fmt.Sprintf("%.2f ms/s (%.3f%% of a core)", float64(d.Microseconds())/1000/period.Seconds(), 100*d.Seconds()/period.Seconds())
	}
	t.Logf("console CPU over %s (scheduler, ns): %s with no page open, %s streaming to %d browser tabs: %s per tab",
		period, perSec(idle), perSec(streaming), tabs, perSec((streaming-idle)/tabs))
	t.Logf("the same by process_cpu_seconds_total (10 ms ticks): %s with none, %s with %d tabs", perSec(idleMetric), perSec(streamingMetric), tabs)
	b2, _ := json.Marshal(map[string]any{"period_seconds": period.Seconds(), "tabs": tabs,
		"idle_cpu_seconds": idle.Seconds(), "tabs_cpu_seconds": streaming.Seconds()})
	t.Logf("console CPU (JSON): %s", b2)
}

// The stream down: a frozen console (SIGSTOP) makes the page say
// disconnected within its 5 s watchdog, and it goes live again by itself
// when the console resumes; a restarted console has forgotten the
// session, so the page reconnects to the login form.
func TestConsoleBrowserStreamDown(t *testing.T) {
	c := shared.Component(topology.Console)
	b := testutil.MustBrowser(t)
	p := MustConsolePage(t, b, testutil.Desktop)

	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			if err := c.Resume(); err != nil {
				t.Errorf("resume the console: %v", err)
			}
		}
		MustStart(t, shared, topology.Console)
	})
	took := waitPage(t, p, 8*time.Second, "disconnected shown", `document.getElementById("conn").dataset.conn === "disconnected" && document.getElementById("conn").textContent === "disconnected"`)
	t.Logf("console frozen: the page said disconnected after %s", took.Round(time.Millisecond))
	p.MustScreenshot("stream-frozen", false)
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	took = waitPage(t, p, 15*time.Second, "live again", `document.getElementById("conn").dataset.conn === "live" && document.body.dataset.view === "app"`)
	t.Logf("console resumed: the page was live again after %s", took.Round(time.Millisecond))

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	took = waitPage(t, p, 8*time.Second, "disconnected shown", `document.getElementById("conn").dataset.conn === "disconnected"`)
	t.Logf("console stopped: the page said disconnected after %s", took.Round(time.Millisecond))
	MustStart(t, shared, topology.Console)
	took = waitPage(t, p, 15*time.Second, "the login form after a restart", `document.body.dataset.view === "login"`)
	t.Logf("console restarted: the page showed the login form after %s (sessions are in memory)", took.Round(time.Millisecond))
	p.MustType("#login-token", token)
	p.MustClick("#login-submit")
	waitPage(t, p, 10*time.Second, "live after logging in again", `document.getElementById("conn").dataset.conn === "live"`)
	for _, e := range p.ScriptErrors() {
		t.Errorf("script error: %v", e)
	}
}
