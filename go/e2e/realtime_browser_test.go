package e2e

// The product page's realtime update (issue 13) in a real browser: headless
// Debian Chromium driven by chromedp (testutil.MustBrowser) loads pages
// through the shared topology's dist tier, whose /api/realtime goes to the
// topology's OneServer (component one). Screenshots go to
// testutil.ScreenshotDir (the path is logged).

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// distURL is the shared topology's dist tier.
func distURL() string { return topology.URL(shared.Config().Ports.Dist) }

// rtRecorder records, in the page, each change of main#item's
// data-rt-state with its time in ms since the navigation started.
const rtRecorder = `window.__rt = [];
new MutationObserver(function (records) {
  for (var i = 0; i < records.length; i++) {
    var t = records[i].target;
    if (t.id === "item") { window.__rt.push({ state: t.getAttribute("data-rt-state"), at: performance.now() }); }
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-rt-state"] });`

type rtChange struct {
	State string  `json:"state"`
	At    float64 `json:"at"`
}

// MustRealtimePage opens a tab with the recorder installed.
func MustRealtimePage(tb testing.TB, b *testutil.Browser, vp testutil.Viewport) *testutil.Page {
	tb.Helper()
	p := b.MustPage(tb, vp)
	if err := p.AddScriptOnNewDocument(rtRecorder); err != nil {
		tb.Fatalf("install the state recorder: %v", err)
	}
	return p
}

// waitRTState waits for data-rt-state want and returns when the page got
// there, in ms since its navigation started.
func waitRTState(tb testing.TB, p *testutil.Page, want string) float64 {
	tb.Helper()
	var at float64
	err := testutil.PollEvery(10*time.Second, 10*time.Millisecond, func() error {
		changes, err := testutil.Eval[[]rtChange](p, `window.__rt || []`)
		if err != nil {
			return err
		}
		for _, c := range changes {
			if c.State == want {
				at = c.At
				return nil
			}
		}
		state, _ := testutil.Eval[string](p, `document.getElementById("item").getAttribute("data-rt-state")`)
		return fmt.Errorf("data-rt-state %q (changes %v), want %q", state, changes, want)
	})
	if err != nil {
		tb.Fatalf("%v; console: %v", err, p.Console())
	}
	return at
}

func hookText(tb testing.TB, p *testutil.Page, hook string) string {
	tb.Helper()
	return testutil.MustEval[string](p, fmt.Sprintf(`document.querySelector('[data-rt=%q]').textContent`, hook))
}

var cachedPriceRE = regexp.MustCompile(`<span class="amt" data-rt="price">([0-9.]+)</span>`)

// MustCachedPrice reads the price the page copy was rendered with.
func MustCachedPrice(tb testing.TB, url string) string {
	tb.Helper()
	pg := MustGetPage(tb, url)
	m := cachedPriceRE.FindStringSubmatch(pg.body)
	if pg.status != http.StatusOK || m == nil {
		tb.Fatalf("GET %s: %d, no cached price in the page", url, pg.status)
	}
	return m[1]
}

// mustOnlyRealtimeFailed fails the test if a request other than the
// realtime one (or the browser's own favicon request) failed.
func mustOnlyRealtimeFailed(tb testing.TB, p *testutil.Page) {
	tb.Helper()
	for _, e := range p.NetworkErrors() {
		if !strings.Contains(e.URL, "/api/realtime/") && !strings.HasSuffix(e.URL, "/favicon.ico") {
			tb.Errorf("a request of the page failed: %v", e)
		}
	}
}

// layoutReport is what mustLayoutIntact measures.
type layoutReport struct {
	ScrollWidth float64 `json:"scrollWidth"`
	InnerWidth  float64 `json:"innerWidth"`
	Overflowing []string
	Buy         struct{ Visible, InView bool }
}

const layoutJS = `(function () {
  var w = window.innerWidth, out = [];
  var boxes = document.querySelectorAll("main#item *");
  for (var i = 0; i < boxes.length; i++) {
    var el = boxes[i], r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || el.closest(".gallery .pick")) { continue; }
    if (r.left < -0.5 || r.right > w + 0.5) { out.push(el.tagName.toLowerCase() + "." + el.className + " [" + Math.round(r.left) + "," + Math.round(r.right) + "]"); }
  }
  var buy = document.querySelector('[data-rt="buy"] button') || document.querySelector('.actions .btn:not([hidden])');
  var br = buy ? buy.getBoundingClientRect() : null;
  return { scrollWidth: document.scrollingElement.scrollWidth, innerWidth: w, Overflowing: out.slice(0, 10),
    Buy: { Visible: !!br && br.width > 0 && br.height > 0 && getComputedStyle(buy).visibility === "visible",
           InView: !!br && br.left >= 0 && br.right <= w } };
})()`

// mustLayoutIntact checks that nothing sticks out sideways (no horizontal
// scrolling, no element of the page past the viewport's edges) and that
// the buy box is shown.
func mustLayoutIntact(tb testing.TB, p *testutil.Page) {
	tb.Helper()
	l := testutil.MustEval[layoutReport](p, layoutJS)
	if l.ScrollWidth > l.InnerWidth {
		tb.Errorf("horizontal scrolling: scrollWidth %v > innerWidth %v", l.ScrollWidth, l.InnerWidth)
	}
	if len(l.Overflowing) > 0 {
		tb.Errorf("elements past the viewport's edges (width %v): %v", l.InnerWidth, l.Overflowing)
	}
	if !l.Buy.Visible || !l.Buy.InView {
		tb.Errorf("the buy box is not shown: %+v", l.Buy)
	}
}

// Acceptance 1: a price edited while the sync service is frozen (so the
// page copy keeps the old price) is in /api/realtime through the dist
// within 100 ms of the edit's 200, and the page in the browser shows it
// after load; a region change re-fetches the shipping.
func TestRealtimeBrowserEditShownLive(t *testing.T) {
	b := testutil.MustBrowser(t)
	id := coldIDs(t, 1)[0]
	url := pageURL(shared, id)
	old := MustCachedPrice(t, url)

	sync := shared.Component(topology.Sync)
	if err := sync.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sync.Resume(); err != nil {
			t.Errorf("resume the sync service: %v", err)
		}
	})

	// A new price under 99.00 (so each region's fee shows) with a list
	// price above it (so there is a promotion), unlike the old one.
	amount := fmt.Sprintf("%d.%02d", 10+time.Now().Unix()%80, time.Now().Nanosecond()%100)
	if amount == old {
		amount = "9.99"
	}
	MustPut(t, "/api/prices/"+id, catalog.Price{Amount: amount, List: "199.00", Currency: "CNY"})
	edited := time.Now()
	var took time.Duration
	err := testutil.PollEvery(2*time.Second, 5*time.Millisecond, func() error {
		a, err := getRealtime(distURL() + "/api/realtime/" + id)
		if err != nil {
			return err
		}
		if a.status != http.StatusOK || !strings.Contains(string(a.body), `"price":"`+amount+`"`) {
			return fmt.Errorf("%d %.300s", a.status, a.body)
		}
		took = time.Since(edited)
		return nil
	})
	if err != nil {
		t.Fatalf("new price %s not in /api/realtime/%s through the dist: %v", amount, id, err)
	}
	t.Logf("new price %s in /api/realtime through the dist %v after the edit's 200", amount, took.Round(100*time.Microsecond))
	if took > 100*time.Millisecond {
		t.Errorf("new price seen %v after the edit's 200, want within 100 ms", took)
	}
	if cached := MustCachedPrice(t, url); cached != old {
		t.Fatalf("the page copy shows %s, want the old %s (the sync service is frozen)", cached, old)
	}

	// Before: the cached render, as a browser shows it when the realtime
	// request cannot be made.
	before := MustRealtimePage(t, b, testutil.Desktop)
	if err := before.BlockURLs("*://*:*/api/realtime/*"); err != nil {
		t.Fatal(err)
	}
	before.MustNavigate(url)
	waitRTState(t, before, "failed")
	if got := hookText(t, before, "price"); got != old {
		t.Errorf("before: price %q, want the cached %s", got, old)
	}
	before.MustScreenshot("before-cached", false)
	before.MustNoScriptErrors()

	// After: the same page with the realtime update.
	after := MustRealtimePage(t, b, testutil.Desktop)
	after.MustNavigate(url)
	liveAt := waitRTState(t, after, "live")
	t.Logf("page live %.0f ms after its navigation started (price %s → %s)", liveAt, old, amount)
	if got := hookText(t, after, "price"); got != amount {
		t.Errorf("after: price %q, want the new %s", got, amount)
	}
	if got := hookText(t, after, "promotion"); !strings.Contains(got, "Save") {
		t.Errorf("after: promotion %q, want the discount from list 199.00", got)
	}
	if got := hookText(t, after, "list"); got != "¥199.00" {
		t.Errorf("after: list price %q, want ¥199.00", got)
	}
	after.MustScreenshot("after-live", false)

	t.Run("region change re-fetches shipping", func(t *testing.T) {
		want := map[string]string{
			"east":   "运费 Shipping ¥6.00 · 满 ¥99.00 包邮 Free over ¥99.00 · 预计 1 天送达 Arrives in 1 day",
			"remote": "运费 Shipping ¥20.00 · 预计 5 天送达 Arrives in 5 days",
			"west":   "运费 Shipping ¥12.00 · 满 ¥199.00 包邮 Free over ¥199.00 · 预计 3 天送达 Arrives in 3 days",
		}
		if got := hookText(t, after, "shipping"); got != want["east"] {
			t.Errorf("shipping %q for the default region, want %q", got, want["east"])
		}
		for _, region := range []string{"remote", "west"} {
			after.MustSelect(`[data-rt="region"]`, region)
			testutil.Eventually(t, 5*time.Second, func() error {
				if got := hookText(t, after, "shipping"); got != want[region] {
					return fmt.Errorf("shipping %q after choosing %s, want %q", got, region, want[region])
				}
				return nil
			})
		}
		after.MustScreenshot("after-region-west", false)
	})
	after.MustNoScriptErrors()
	mustOnlyRealtimeFailed(t, after)
}

// Acceptance 2: with the OneServer down the page still shows the cached
// price and stock, says "failed" at once, reports no script error, and
// its layout holds.
func TestRealtimeBrowserOneServerDown(t *testing.T) {
	b := testutil.MustBrowser(t)
	id := coldIDs(t, 1)[0]
	url := pageURL(shared, id)
	pg := MustGetPage(t, url)
	m := cachedPriceRE.FindStringSubmatch(pg.body)
	stock := regexp.MustCompile(`data-rt="stock">([^<]*)</p>`).FindStringSubmatch(pg.body)
	if pg.status != http.StatusOK || m == nil || stock == nil {
		t.Fatalf("GET %s: %d, no cached price or stock", url, pg.status)
	}
	one := shared.Component(topology.One)
	t.Cleanup(func() { // back for the tests after this one, and in the dist's pool
		MustStart(t, shared, topology.One)
		testutil.Eventually(t, 15*time.Second, func() error {
			a, err := getRealtime(distURL() + "/api/realtime/1")
			if err != nil {
				return err
			}
			if a.status != http.StatusOK {
				return fmt.Errorf("/api/realtime/1 through the dist: %d %.200s", a.status, a.body)
			}
			return nil
		})
	})
	mustShowCached := func(t *testing.T, p *testutil.Page) {
		t.Helper()
		if got := hookText(t, p, "price"); got != m[1] {
			t.Errorf("price %q, want the cached %s", got, m[1])
		}
		if got := hookText(t, p, "stock"); got != stock[1] {
			t.Errorf("stock %q, want the cached %q", got, stock[1])
		}
		for _, hook := range []string{"promotion", "shipping", "ship"} {
			if !testutil.MustEval[bool](p, fmt.Sprintf(`document.querySelector('[data-rt=%q]').hidden`, hook)) {
				t.Errorf("%s shown without an answer", hook)
			}
		}
		mustLayoutIntact(t, p)
		p.MustNoScriptErrors()
		mustOnlyRealtimeFailed(t, p)
	}

	// Frozen (SIGSTOP): the connection is accepted and nothing comes back
	// (until the dist's prober marks the node down): the script gives up
	// at 1.5 s.
	t.Run("frozen", func(t *testing.T) {
		if err := one.Pause(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := one.Resume(); err != nil {
				t.Errorf("resume the OneServer: %v", err)
			}
		}()
		p := MustRealtimePage(t, b, testutil.Desktop)
		p.MustNavigate(url)
		failedAt := waitRTState(t, p, "failed")
		t.Logf("data-rt-state failed %.0f ms after the navigation started", failedAt)
		if failedAt > 1500+500 {
			t.Errorf("failed after %.0f ms, want the script's 1.5 s timeout (+0.5 s slack)", failedAt)
		}
		mustShowCached(t, p)
	})

	if err := one.Kill(); err != nil {
		t.Fatal(err)
	}
	for _, vp := range []struct {
		name string
		vp   testutil.Viewport
	}{{"desktop", testutil.Desktop}, {"phone", testutil.Phone}} {
		t.Run(vp.name, func(t *testing.T) {
			p := MustRealtimePage(t, b, vp.vp)
			p.MustNavigate(url)
			failedAt := waitRTState(t, p, "failed")
			t.Logf("data-rt-state failed %.0f ms after the navigation started", failedAt)
			if failedAt > 1500+500 {
				t.Errorf("failed after %.0f ms, want well within the script's 1.5 s timeout (+0.5 s slack)", failedAt)
			}
			mustShowCached(t, p)
			p.MustScreenshot("oneserver-down-"+vp.name, false)
			t.Logf("the browser's own network lines: %v", p.NetworkErrors())
		})
	}
}

// Acceptance 4: on a phone (390x844, mobile emulation) the updated page
// has no horizontal scrolling and its price is in the first screen.
func TestRealtimeBrowserPhone(t *testing.T) {
	b := testutil.MustBrowser(t)
	for _, id := range append(coldIDs(t, 2), "1", "777", "1234", "3333", "5678", "8080", "9999") {
		t.Run(id, func(t *testing.T) {
			p := MustRealtimePage(t, b, testutil.Phone)
			p.MustNavigate(pageURL(shared, id))
			waitRTState(t, p, "live")
			if w := testutil.MustEval[float64](p, `window.innerWidth`); w != float64(testutil.Phone.Width) {
				t.Fatalf("innerWidth %v, want the phone's %d", w, testutil.Phone.Width)
			}
			mustLayoutIntact(t, p)
			r := testutil.MustEval[struct{ Top, Bottom, Left, Right, H float64 }](p,
				`(function () { var r = document.querySelector('[data-rt="price"]').getBoundingClientRect(); return { Top: r.top, Bottom: r.bottom, Left: r.left, Right: r.right, H: window.innerHeight }; })()`)
			t.Logf("price box at top %.0f, bottom %.0f of a %.0f px high screen", r.Top, r.Bottom, r.H)
			if r.Top < 0 || r.Bottom > r.H || r.Left < 0 || r.Right > float64(testutil.Phone.Width) || r.Bottom-r.Top <= 0 {
				t.Errorf("price box %+v not within the first screen", r)
			}
			p.MustScreenshot("phone-"+id, false)
			p.MustNoScriptErrors()
			mustOnlyRealtimeFailed(t, p)
		})
	}
}
