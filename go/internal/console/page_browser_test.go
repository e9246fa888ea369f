package console

// The page (web/) in a real browser against a stand-in for the console's
// API in this process: the login, a saved snapshot with hostile strings
// and nulls rendered, the controls' confirmation and CSRF header, the
// stream going down and coming back, a phone's width. The real server
// and topology are go/e2e/console_browser_test.go's.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp/kb"

	"github.com/detailpage/detailpage/go/internal/testutil"
)

const (
	fakeToken   = "page-test-token"
	fakeSession = "fake-session-id"
	fakeCSRF    = "fake-csrf-token"
)

// pageCSP allows only the console's own origin (and the empty data:
// favicon that keeps the browser from asking for /favicon.ico).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

type fakePost struct {
	Path, CSRF string
	Body       map[string]any
}

// fakeConsole answers the contract's API (docs/console.md) with a fixed
// snapshot and records the controls' requests.
type fakeConsole struct {
	snapshot []byte

	mu      sync.Mutex
	down    bool // the stream answers 503 and open streams end
	posts   []fakePost
	streams int
}

func (f *fakeConsole) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

func (f *fakeConsole) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeConsole) recorded() []fakePost {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakePost(nil), f.posts...)
}

func authed(r *http.Request) bool {
	c, err := r.Cookie("dp_console")
	return err == nil && c.Value == fakeSession
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeConsole) handler(tb testing.TB) http.Handler {
	web := os.DirFS("web")
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(web)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// The strictest policy the page must work under (a violation is
		// a script error the tests see): nothing inline, nothing outside.
		w.Header().Set("Content-Security-Policy", pageCSP)
		http.ServeFileFS(w, r, web, "index.html")
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Token string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Token != fakeToken {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong token"})
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "dp_console", Value: fakeSession, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		writeJSON(w, http.StatusOK, map[string]string{"csrf": fakeCSRF})
	})
	mux.HandleFunc("GET /api/session", func(w http.ResponseWriter, r *http.Request) {
		if !authed(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "no session"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"csrf": fakeCSRF})
	})
	mux.HandleFunc("GET /api/stream", func(w http.ResponseWriter, r *http.Request) {
		if !authed(r) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "no session"})
			return
		}
		if f.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		f.mu.Lock()
		f.streams++
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := fmt.Fprintf(w, "event: overview\ndata: %s\n\n", f.snapshot); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			if f.isDown() {
				return
			}
		}
	})
	for _, path := range []string{"/api/degrade", "/api/hot", "/api/purge"} {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			if !authed(r) {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "no session"})
				return
			}
			if r.Header.Get("X-CSRF-Token") != fakeCSRF {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "csrf token missing or wrong"})
				return
			}
			var body map[string]any
			if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			f.mu.Lock()
			f.posts = append(f.posts, fakePost{Path: path, CSRF: r.Header.Get("X-CSRF-Token"), Body: body})
			f.mu.Unlock()
			writeJSON(w, http.StatusOK, map[string]any{"results": []map[string]any{
				{"target": "app1", "ok": true, "status": 200, "error": ""},
				{"target": "app2", "ok": false, "status": 0, "error": "dial tcp: connection refused <i>x</i>"},
			}})
		})
	}
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "dp_console", Value: "", Path: "/", MaxAge: -1})
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// waitTrue polls a JavaScript expression until it is true.
func waitTrue(tb testing.TB, p *testutil.Page, what, expr string) {
	tb.Helper()
	err := testutil.PollEvery(10*time.Second, 25*time.Millisecond, func() error {
		ok, err := testutil.Eval[bool](p, expr)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("not yet: %s", expr)
		}
		return nil
	})
	if err != nil {
		state, _ := testutil.Eval[string](p, `document.body.dataset.view + " " + document.getElementById("conn").dataset.conn + "; results: " + document.getElementById("results").textContent`)
		tb.Fatalf("%s: %v; page: %s; console: %v", what, err, state, p.Console())
	}
}

func mustFakeConsole(t *testing.T) (*fakeConsole, string) {
	t.Helper()
	snap, err := os.ReadFile("testdata/page_snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, snap); err != nil {
		t.Fatal(err)
	}
	f := &fakeConsole{snapshot: compact.Bytes()}
	srv := httptest.NewServer(f.handler(t))
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// The assets are light, self-contained and build the DOM from data
// without markup: no innerHTML and the like, no outside URL.
func TestPageAssetsSelfContained(t *testing.T) {
	total := 0
	for _, name := range []string{"index.html", "console.js", "console.css"} {
		b, err := os.ReadFile("web/" + name)
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "@import"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("web/%s uses %s", name, bad)
			}
		}
		// Only the SVG namespace may be an absolute URL (it is a name, never fetched).
		for _, m := range regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"')]*`).FindAll(b, -1) {
			if string(m) != "http://www.w3.org/2000/svg" {
				t.Errorf("web/%s names an outside URL: %s", name, m)
			}
		}
	}
	t.Logf("web/: %d bytes (index.html, console.js, console.css)", total)
	if total > 64<<10 {
		t.Errorf("web/ is %d bytes, want it light (under 64 KiB)", total)
	}
}

type tileView struct {
	Name, Circuit, ErrorPct, Error, Latency, Bulkhead, Where string
	Points                                                   int
}

type linkView struct {
	Node, Link, State, Mode, Forced, Failures, Retry string
}

func TestPageRendersSnapshotAndControls(t *testing.T) {
	f, base := mustFakeConsole(t)
	b := testutil.MustBrowser(t)
	p := b.MustPage(t, testutil.Desktop)
	p.MustNavigate(base + "/")

	// No session: the login form.
	waitTrue(t, p, "login form shown", `document.body.dataset.view === "login" && !document.getElementById("login").hidden`)
	p.MustType("#login-token", "wrong")
	p.MustClick("#login-submit")
	waitTrue(t, p, "wrong token refused", `!document.getElementById("login-error").hidden && document.getElementById("login-error").textContent === "Wrong token."`)
	p.MustScreenshot("login-wrong-token", false)
	clearInput(t, p, "login-token")
	p.MustType("#login-token", fakeToken)
	p.MustClick("#login-submit")
	waitTrue(t, p, "the live view", `document.body.dataset.view === "app" && document.getElementById("conn").dataset.conn === "live" && document.querySelectorAll("#command-tiles .tile").length === 5`)
	if v := testutil.MustEval[string](p, `document.getElementById("login-token").value`); v != "" {
		t.Errorf("the token stays in the form after login: %q", v)
	}

	// Commands: worst first, hostile names as text, nulls as dashes.
	tiles := testutil.MustEval[[]tileView](p, `Array.from(document.querySelectorAll("#command-tiles .tile")).map(function (t) {
	  function f(n) { return t.querySelector('[data-field="' + n + '"]').textContent; }
	  return { Name: t.dataset.command, Circuit: t.dataset.circuit, ErrorPct: t.dataset.errorPct, Error: f("error"),
	    Latency: f("latency"), Bulkhead: f("bulkhead"), Where: f("where"),
	    Points: t.querySelector("polyline.rate").getAttribute("points").split(" ").filter(Boolean).length };
	})`)
	wantOrder := []string{"source.price.batch", "source.product.lookup", `<img src=x onerror="window.__pwned=1">`, "one.redis.read", "hot.unknown.numbers"}
	for i, tv := range tiles {
		if tv.Name != wantOrder[i] {
			t.Errorf("tile %d is %q, want %q (worst first)", i, tv.Name, wantOrder[i])
		}
		if tv.Points < 1 {
			t.Errorf("tile %q has no sparkline points", tv.Name)
		}
	}
	if tiles[0].Circuit != "open" || tiles[0].Error != "100 %" || tiles[0].ErrorPct != "100" {
		t.Errorf("open circuit tile: %+v", tiles[0])
	}
	if tiles[1].Bulkhead != "16 / 16" || tiles[1].Where != "direct, sync, sync2 · 3 hosts" || tiles[1].Latency != "2.50 / 41.0 ms" {
		t.Errorf("full bulkhead tile: %+v", tiles[1])
	}
	if tiles[4].Error != "—" || tiles[4].Latency != "— / — ms" || tiles[4].Bulkhead != "— / —" {
		t.Errorf("nulls shown as %+v, want dashes", tiles[4])
	}
	if n := testutil.MustEval[int](p, `document.querySelectorAll("main img, main script, main b, main i").length`); n != 0 {
		t.Errorf("%d elements made from data: markup was interpreted", n)
	}
	if pwned := testutil.MustEval[bool](p, `window.__pwned !== undefined`); pwned {
		t.Error("a script from the data ran")
	}

	// App nodes: forced state, retry, an unreachable node.
	links := testutil.MustEval[[]linkView](p, `Array.from(document.querySelectorAll("[data-app] tr[data-link]")).map(function (r) {
	  function f(n) { return r.querySelector('[data-field="' + n + '"]').textContent; }
	  return { Node: r.closest("[data-app]").dataset.app, Link: r.dataset.link, State: r.dataset.state, Mode: r.dataset.mode,
	    Forced: r.dataset.forced, Failures: f("failures"), Retry: f("retry") };
	})`)
	want := []linkView{
		{"app1", "replica", "degraded", "force-degraded", "true", "0", "—"},
		{"app1", "direct", "normal", "auto", "false", "2", "in 1.5 s"},
		{"app2", "replica", "unknown", "unknown", "false", "—", "—"},
		{"app2", "direct", "unknown", "unknown", "false", "—", "—"},
	}
	if fmt.Sprint(links) != fmt.Sprint(want) {
		t.Errorf("links:\n got %+v\nwant %+v", links, want)
	}
	if got := testutil.MustEval[string](p, `document.querySelector('[data-app="app2"] [data-field="error"]').textContent`); !strings.Contains(got, "<script>window.__pwned=2</script>") {
		t.Errorf("app2's error shown as %q, want the text as is", got)
	}
	if got := testutil.MustEval[string](p, `document.querySelector('[data-app="app1"] tr[data-level="L1"] [data-field="ratio"]').textContent`); got != "50.0 %" {
		t.Errorf("app1 L1 ratio %q, want 50.0 %%", got)
	}
	// Dist, hot, pipeline, services.
	type rest struct{ Dist, One, Hot, Backlog, DLQ, Lag, Services string }
	r := testutil.MustEval[rest](p, `(function () {
	  function list(sel, f) { return Array.from(document.querySelectorAll(sel)).map(f).join(" "); }
	  return { Dist: list("[data-dist-node]", function (e) { return e.dataset.distNode + "=" + e.dataset.state; }),
	    One: list("[data-one-node]", function (e) { return e.dataset.oneNode + "=" + e.dataset.state; }),
	    Hot: list("[data-hot-id]", function (e) { return e.dataset.hotId + ":" + e.dataset.pinned + ":" + e.querySelector("button").textContent; }),
	    Backlog: document.getElementById("outbox-backlog").textContent, DLQ: document.getElementById("dlq").textContent,
	    Lag: list("[data-group]", function (e) { return e.dataset.group + "=" + e.dataset.value; }),
	    Services: list("[data-service]", function (e) { return e.dataset.service + "=" + e.dataset.state; }) };
	})()`)
	wantRest := rest{Dist: "127.0.0.1:8081=up 127.0.0.1:8082=down", One: "127.0.0.1:9105=up", Hot: "7:false:Pin 42:true:Unpin",
		Backlog: "3", DLQ: "1", Lag: "detailpage-preheat=0 detailpage-sync=17", Services: "sync=up direct=down"}
	if r != wantRest {
		t.Errorf("panels:\n got %+v\nwant %+v", r, wantRest)
	}
	p.MustScreenshot("overview-desktop", true)

	// A control asks first: cancel sends nothing.
	p.MustClick("#degrade-replica-force-degraded")
	waitTrue(t, p, "the confirmation", `document.getElementById("confirm-dialog").open`)
	if txt := testutil.MustEval[string](p, `document.getElementById("confirm-text").textContent`); txt != "Force-degrade the replica link on every app node?" {
		t.Errorf("confirmation %q", txt)
	}
	p.MustScreenshot("confirm-degrade", false)
	p.MustClick("#confirm-cancel")
	waitTrue(t, p, "the dialog closed", `!document.getElementById("confirm-dialog").open`)
	// Escape cancels too.
	p.MustClick("#degrade-direct-force-normal")
	waitTrue(t, p, "the confirmation", `document.getElementById("confirm-dialog").open`)
	p.MustType("#confirm-cancel", kb.Escape)
	waitTrue(t, p, "the dialog closed by Escape", `!document.getElementById("confirm-dialog").open`)
	if posts := f.recorded(); len(posts) != 0 {
		t.Fatalf("cancel sent %v", posts)
	}
	// Confirmed: sent with the CSRF token, every target's result shown.
	p.MustClick("#degrade-replica-force-degraded")
	waitTrue(t, p, "the confirmation", `document.getElementById("confirm-dialog").open`)
	p.MustClick("#confirm-ok")
	waitTrue(t, p, "the degrade result", `(function () { var r = document.querySelector('#results .result[data-action="degrade"]');
	  return !!r && r.dataset.state === "done" && r.querySelectorAll("tr[data-target]").length === 2; })()`)
	if got := testutil.MustEval[string](p, `document.querySelector('#results .result tr[data-target="app2"] .why').textContent`); got != "dial tcp: connection refused <i>x</i>" {
		t.Errorf("app2's result error shown as %q", got)
	}
	// Hot: the row's button, the pin form (both actions), purge.
	p.MustClick(`[data-hot-id="7"] button`)
	p.MustClick("#confirm-ok")
	p.MustType("#pin-id", "42")
	p.MustClick("#unpin-submit")
	p.MustClick("#confirm-ok")
	p.MustType("#purge-ids", "5, 6 5")
	p.MustClick("#purge-submit")
	waitTrue(t, p, "the purge confirmation", `document.getElementById("confirm-dialog").open && document.getElementById("confirm-text").textContent.indexOf("Purge 2 products (5, 6)") === 0`)
	p.MustClick("#confirm-ok")
	waitTrue(t, p, "four results", `document.querySelectorAll('#results .result[data-state="done"]').length === 4`)
	p.MustScreenshot("results", true)
	var sent []string
	for _, post := range f.recorded() {
		if post.CSRF != fakeCSRF {
			t.Errorf("%s sent CSRF %q", post.Path, post.CSRF)
		}
		body, _ := json.Marshal(post.Body)
		sent = append(sent, post.Path+" "+string(body))
	}
	wantSent := []string{
		`/api/degrade {"link":"replica","mode":"force-degraded"}`,
		`/api/hot {"action":"pin","id":7}`,
		`/api/hot {"action":"unpin","id":42}`,
		`/api/purge {"ids":[5,6]}`,
	}
	if strings.Join(sent, "\n") != strings.Join(wantSent, "\n") {
		t.Errorf("sent:\n%s\nwant:\n%s", strings.Join(sent, "\n"), strings.Join(wantSent, "\n"))
	}
	// A bad id is refused in the page.
	clearInput(t, p, "purge-ids")
	p.MustType("#purge-ids", "5 x")
	p.MustClick("#purge-submit")
	waitTrue(t, p, "a bad id refused", `!document.getElementById("form-error").hidden && !document.getElementById("confirm-dialog").open`)

	// The stream goes down: the page says so, then comes back by itself.
	f.setDown(true)
	waitTrue(t, p, "disconnected shown", `document.getElementById("conn").dataset.conn === "disconnected" && document.getElementById("conn").textContent === "disconnected"`)
	p.MustScreenshot("disconnected", false)
	f.setDown(false)
	waitTrue(t, p, "live again", `document.getElementById("conn").dataset.conn === "live"`)

	// Logged out: the login form, and the stream closed.
	p.MustClick("#logout")
	waitTrue(t, p, "the login form after logout", `document.body.dataset.view === "login"`)
	p.MustNoScriptErrors()
	for _, e := range p.NetworkErrors() {
		// The stream's 503s and the 401s before login are expected.
		if !strings.Contains(e.URL, "/api/stream") && !strings.Contains(e.URL, "/api/session") && !strings.Contains(e.URL, "/login") {
			t.Errorf("a request of the page failed: %v", e)
		}
	}
}

// On a phone the page fits the width: nothing sticks out sideways.
func TestPagePhoneLayout(t *testing.T) {
	_, base := mustFakeConsole(t)
	b := testutil.MustBrowser(t)
	p := b.MustPage(t, testutil.Phone)
	p.MustNavigate(base + "/")
	waitTrue(t, p, "login form shown", `document.body.dataset.view === "login"`)
	p.MustType("#login-token", fakeToken)
	p.MustClick("#login-submit")
	waitTrue(t, p, "the live view", `document.querySelectorAll("#command-tiles .tile").length === 5`)
	type layout struct {
		ScrollWidth, InnerWidth float64
		Out                     []string
	}
	l := testutil.MustEval[layout](p, `(function () {
	  var w = window.innerWidth, out = [];
	  document.querySelectorAll("main *").forEach(function (e) {
	    var r = e.getBoundingClientRect();
	    if (r.width === 0 || r.height === 0) { return; }
	    if (r.left < -0.5 || r.right > w + 0.5) { out.push(e.tagName.toLowerCase() + "." + e.className + " [" + Math.round(r.left) + "," + Math.round(r.right) + "]"); }
	  });
	  return { ScrollWidth: document.scrollingElement.scrollWidth, InnerWidth: w, Out: out.slice(0, 10) };
	})()`)
	if l.ScrollWidth > l.InnerWidth || len(l.Out) > 0 {
		t.Errorf("the page is wider than the phone (%v > %v): %v", l.ScrollWidth, l.InnerWidth, l.Out)
	}
	p.MustScreenshot("overview-phone", true)
	p.MustNoScriptErrors()
}

// clearInput empties the input with the given id.
func clearInput(tb testing.TB, p *testutil.Page, id string) {
	tb.Helper()
	testutil.MustEval[bool](p, fmt.Sprintf(`(function () { document.getElementById(%q).value = ""; return true; })()`, id))
}
