package page

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/artwork"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// The page's inline script (templates/item.html) in a real Chromium: the
// page rendered by pongo2 (byte-identical to the Lua renderer's, see the
// parity test) is served from an httptest server on loopback, whose
// /api/realtime/<id> answers as each case needs, including the failures
// the real system cannot produce on demand (a 2.5 s answer, a broken body).
// go/e2e/realtime_browser_test.go runs the same page against the real
// OneServer through the dist tier.

const scriptItemID = 7

const scriptDoc = `{"item":{"version":40,"id":7,"shop_id":3,"name":"测试手机 Test phone 12GB+256GB","subtitle":"限时优惠","brand":"品牌 Brand",
"category":["手机通讯","手机"],"images":[{"url":"/img/p/7/0.svg","alt":"正面"},{"url":"/img/p/7/1.svg","alt":"背面"}],
"price":{"amount":"5999.00","list":"6499.00","currency":"CNY","symbol":"¥"},
"stock":{"available":230,"status":"in_stock","label":"有货 In stock"},
"description_html":"<p>描述 Description</p>","specs":[{"name":"主体 Main","items":[{"name":"品牌","value":"Brand"}]}],
"recommendations":[{"id":8,"name":"另一个 Other","price":"99.00","image":"/img/p/8/0.svg"}],"updated_at":"2026-11-23 10:00:00"},
"shop":{"id":3,"name":"官方旗舰店 Official store","logo":"/img/s/3.svg","location":"深圳","rating":"4.9","service_score":"4.8","followers":1200,"opened_year":2015,"badges":["自营"]}}`

// liveAnswer is a OneServer answer for scriptItemID (RT_SPEC's object).
func liveAnswer(price, region string, stale bool) string {
	fee, free, eta := map[string]string{"east": "6.00", "west": "12.00", "remote": "20.00"}[region], `"free_over":"99.00",`, map[string]int{"east": 1, "west": 3, "remote": 5}[region]
	if region == "remote" {
		free = ""
	}
	staleParts := ""
	if stale {
		staleParts = `,"stale_parts":["stock"],"age_ms":{"stock":4000}`
	}
	return fmt.Sprintf(`{"id":%d,"price":%q,"list_price":"6999.00","currency":"CNY",
"stock":{"status":"low","quantity":3},
"promotion":{"type":"discount","label":"直降 ¥1000.00 Save ¥1000.00","save":"1000.00"},
"shipping":{"region":%q,"fee":%q,%s"eta_days":%d},
"versions":{"price":12,"stock":14},"version":14,"stale":%t%s}`, scriptItemID, price, region, fee, free, eta, stale, staleParts)
}

// scriptSite serves the page, the pictures and a scripted /api/realtime.
type scriptSite struct {
	srv *httptest.Server

	mu       sync.Mutex
	answer   func(w http.ResponseWriter, r *http.Request)
	requests []string // the realtime URLs asked for
}

func newScriptSite(t *testing.T) *scriptSite {
	t.Helper()
	r, err := New(templatesDir)
	if err != nil {
		t.Fatal(err)
	}
	item, shop := splitDoc(t, scriptDoc)
	var html bytes.Buffer
	if err := r.RenderItem(&html, item, shop); err != nil {
		t.Fatal(err)
	}
	s := &scriptSite{}
	mux := http.NewServeMux()
	mux.Handle("/img/", artwork.Handler())
	mux.HandleFunc(fmt.Sprintf("/item/%d.html", scriptItemID), func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html.Bytes())
	})
	mux.HandleFunc("/api/realtime/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.URL.RequestURI())
		answer := s.answer
		s.mu.Unlock()
		w.Header().Set("Cache-Control", "no-store")
		if answer == nil {
			http.Error(w, `{"error":"realtime unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		answer(w, r)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func splitDoc(t *testing.T, doc string) (item, shop []byte) {
	t.Helper()
	path := t.TempDir() + "/doc.json"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return MustReadCorpusDoc(t, path)
}

func (s *scriptSite) setAnswer(f func(w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	s.answer = f
	s.mu.Unlock()
}

func (s *scriptSite) realtimeRequests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

func (s *scriptSite) pageURL() string { return fmt.Sprintf("%s/item/%d.html", s.srv.URL, scriptItemID) }

func jsonAnswer(body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}
}

// waitState waits until main#item's data-rt-state is want and returns how
// long after the call that was.
func waitState(t *testing.T, p *testutil.Page, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	err := testutil.PollEvery(limit, 10*time.Millisecond, func() error {
		s, err := testutil.Eval[string](p, `document.getElementById("item").getAttribute("data-rt-state")`)
		if err != nil {
			return err
		}
		if s != want {
			return fmt.Errorf("data-rt-state %q, want %q", s, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v (console: %v)", err, p.Console())
	}
	return time.Since(start)
}

func text(t *testing.T, p *testutil.Page, hook string) string {
	t.Helper()
	return testutil.MustEval[string](p, fmt.Sprintf(`document.querySelector('[data-rt=%q]').textContent`, hook))
}

func hidden(t *testing.T, p *testutil.Page, hook string) bool {
	t.Helper()
	return testutil.MustEval[bool](p, fmt.Sprintf(`document.querySelector('[data-rt=%q]').hidden`, hook))
}

// The cached values a failed update must leave alone.
func mustShowCached(t *testing.T, p *testutil.Page) {
	t.Helper()
	if got := text(t, p, "price"); got != "5999.00" {
		t.Errorf("price %q, want the cached 5999.00", got)
	}
	if got := text(t, p, "list"); got != "¥6499.00" {
		t.Errorf("list price %q, want the cached ¥6499.00", got)
	}
	if got := text(t, p, "stock"); got != "有货 In stock" {
		t.Errorf("stock %q, want the cached label", got)
	}
	if !hidden(t, p, "promotion") || !hidden(t, p, "shipping") || !hidden(t, p, "ship") {
		t.Errorf("promotion, shipping or the region choice shown without an answer")
	}
	if hidden(t, p, "buy") {
		t.Errorf("buy button hidden")
	}
}

func TestScriptUpdatesInPlace(t *testing.T) {
	b := testutil.MustBrowser(t)
	site := newScriptSite(t)
	site.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(liveAnswer("4999.00", r.URL.Query().Get("region"), false))(w, r)
	})
	p := b.MustPage(t, testutil.Desktop)
	p.MustNavigate(site.pageURL())
	waitState(t, p, "live", 5*time.Second)
	for hook, want := range map[string]string{
		"price":     "4999.00",
		"list":      "¥6999.00",
		"currency":  "CNY",
		"stock":     "仅剩 3 件 Only 3 left",
		"promotion": "直降 ¥1000.00 Save ¥1000.00",
		"shipping":  "运费 Shipping ¥6.00 · 满 ¥99.00 包邮 Free over ¥99.00 · 预计 1 天送达 Arrives in 1 day",
	} {
		if got := text(t, p, hook); got != want {
			t.Errorf("%s: %q, want %q", hook, got, want)
		}
		if hidden(t, p, hook) {
			t.Errorf("%s is hidden", hook)
		}
	}
	if cls := testutil.MustEval[string](p, `document.querySelector('[data-rt="stock"]').className`); cls != "stock stock-low_stock" {
		t.Errorf("stock class %q", cls)
	}
	if got := site.realtimeRequests(); len(got) != 1 || got[0] != fmt.Sprintf("/api/realtime/%d?region=east", scriptItemID) {
		t.Errorf("realtime requests %v, want one for region east", got)
	}
	p.MustScreenshot("desktop-live", false)

	// A region change re-fetches; the choice is remembered across loads.
	site.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(liveAnswer("4999.00", r.URL.Query().Get("region"), false))(w, r)
	})
	p.MustSelect(`[data-rt="region"]`, "remote")
	testutil.Eventually(t, 5*time.Second, func() error {
		if got := text(t, p, "shipping"); got != "运费 Shipping ¥20.00 · 预计 5 天送达 Arrives in 5 days" {
			return fmt.Errorf("shipping %q after choosing remote", got)
		}
		return nil
	})
	// A region change that fails hides the shipping of the region before.
	site.setAnswer(nil)
	p.MustSelect(`[data-rt="region"]`, "west")
	waitState(t, p, "failed", 5*time.Second)
	if !hidden(t, p, "shipping") {
		t.Errorf("shipping %q still shown after a failed change to west", text(t, p, "shipping"))
	}
	if got := text(t, p, "price"); got != "4999.00" {
		t.Errorf("price %q after a failed region change, want the last answer's 4999.00", got)
	}
	site.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(liveAnswer("4999.00", r.URL.Query().Get("region"), false))(w, r)
	})
	p.MustSelect(`[data-rt="region"]`, "remote")
	waitState(t, p, "live", 5*time.Second)

	p.MustNavigate(site.pageURL())
	waitState(t, p, "live", 5*time.Second)
	if got := testutil.MustEval[string](p, `document.querySelector('[data-rt="region"]').value`); got != "remote" {
		t.Errorf("region after reload %q, want the remembered remote", got)
	}
	reqs := site.realtimeRequests()
	if last := reqs[len(reqs)-1]; !strings.HasSuffix(last, "region=remote") {
		t.Errorf("last realtime request %q, want region=remote", last)
	}
	p.MustNoScriptErrors()
}

func TestScriptStaleAnswer(t *testing.T) {
	b := testutil.MustBrowser(t)
	site := newScriptSite(t)
	site.setAnswer(jsonAnswer(liveAnswer("4999.00", "east", true)))
	p := b.MustPage(t, testutil.Desktop)
	p.MustNavigate(site.pageURL())
	waitState(t, p, "stale", 5*time.Second)
	if got := text(t, p, "price"); got != "4999.00" {
		t.Errorf("price %q, want the answer's 4999.00", got)
	}
	p.MustNoScriptErrors()
}

// Every failure leaves the cached page as it was, says "failed", and
// writes nothing to the console but the browser's own line about a
// failed request.
func TestScriptFailuresKeepCachedPage(t *testing.T) {
	b := testutil.MustBrowser(t)
	site := newScriptSite(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	cases := []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request)
		within time.Duration // from the load event
	}{
		{"503", nil, time.Second},
		{"404", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
		}, time.Second},
		{"not JSON", jsonAnswer(`<html>oops`), time.Second},
		{"truncated JSON", jsonAnswer(`{"id":7,"price":"1.00"`), time.Second},
		{"another item", jsonAnswer(strings.Replace(liveAnswer("1.00", "east", false), `"id":7`, `"id":8`, 1)), time.Second},
		{"an id this one is a prefix of", jsonAnswer(strings.Replace(liveAnswer("1.00", "east", false), `"id":7`, `"id":77`, 1)), time.Second},
		{"null", jsonAnswer(`null`), time.Second},
		{"wrong types", jsonAnswer(`{"id":7,"price":5,"stock":"x","promotion":[],"shipping":7,"stale":false}`), -1},
		{"slow (2.5 s)", func(w http.ResponseWriter, r *http.Request) {
			select { // held past the script's 1.5 s abort
			case <-time.After(2500 * time.Millisecond):
			case <-r.Context().Done():
			case <-release:
			}
			jsonAnswer(liveAnswer("1.00", "east", false))(w, r)
		}, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			site.setAnswer(c.answer)
			p := b.MustPage(t, testutil.Desktop)
			start := time.Now()
			p.MustNavigate(site.pageURL())
			if c.within < 0 { // a well-formed answer with nothing usable: the page keeps its values
				waitState(t, p, "live", 5*time.Second)
			} else {
				waitState(t, p, "failed", 5*time.Second)
				if took := time.Since(start); took > c.within+time.Second {
					t.Errorf("failed after %v, want within %v of the load (+1 s slack)", took, c.within)
				}
			}
			mustShowCached(t, p)
			p.MustNoScriptErrors()
			for _, e := range p.NetworkErrors() {
				if !strings.Contains(e.URL, "/api/realtime/") && !strings.HasSuffix(e.URL, "/favicon.ico") { // the browser asks for a favicon by itself
					t.Errorf("a request other than the realtime one failed: %v", e)
				}
			}
		})
	}
}

// Storage that throws (blocked cookies/site data) costs the remembered
// region only.
func TestScriptStorageThrows(t *testing.T) {
	b := testutil.MustBrowser(t)
	site := newScriptSite(t)
	site.setAnswer(func(w http.ResponseWriter, r *http.Request) {
		jsonAnswer(liveAnswer("4999.00", r.URL.Query().Get("region"), false))(w, r)
	})
	p := b.MustPage(t, testutil.Desktop)
	if err := p.AddScriptOnNewDocument(`Object.defineProperty(window, "localStorage", { get: function () { throw new DOMException("denied", "SecurityError"); } });`); err != nil {
		t.Fatal(err)
	}
	p.MustNavigate(site.pageURL())
	waitState(t, p, "live", 5*time.Second)
	p.MustSelect(`[data-rt="region"]`, "west")
	testutil.Eventually(t, 5*time.Second, func() error {
		if got := text(t, p, "shipping"); !strings.Contains(got, "¥12.00") {
			return fmt.Errorf("shipping %q after choosing west", got)
		}
		return nil
	})
	p.MustNoScriptErrors()
}

// A phone shows the updated page without horizontal scrolling, price in
// the first screen.
func TestScriptPhoneLayout(t *testing.T) {
	b := testutil.MustBrowser(t)
	site := newScriptSite(t)
	long := liveAnswer("4999.00", "east", false)
	long = strings.Replace(long, "直降 ¥1000.00 Save ¥1000.00", strings.Repeat("超长促销文字Averyveryverylongpromotionlabelwithoutspaces", 6), 1)
	site.setAnswer(jsonAnswer(long))
	p := b.MustPage(t, testutil.Phone)
	p.MustNavigate(site.pageURL())
	waitState(t, p, "live", 5*time.Second)
	sw := testutil.MustEval[float64](p, `document.scrollingElement.scrollWidth`)
	iw := testutil.MustEval[float64](p, `window.innerWidth`)
	if iw != float64(testutil.Phone.Width) || sw > iw {
		t.Errorf("scrollWidth %v, innerWidth %v: want %v and no horizontal scrolling", sw, iw, testutil.Phone.Width)
	}
	bottom := testutil.MustEval[float64](p, `document.querySelector('[data-rt="price"]').getBoundingClientRect().bottom`)
	if bottom <= 0 || bottom > float64(testutil.Phone.Height) {
		t.Errorf("price bottom at %v px, want within the first %d px", bottom, testutil.Phone.Height)
	}
	p.MustScreenshot("phone-live", false)
	p.MustNoScriptErrors()
}
