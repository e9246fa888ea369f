package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's `chromium` (apt-get install chromium;
// scripts/install-deps.sh --test installs it) headless through chromedp:
// a real browser runs the page's inline script, so the tests see what a
// shopper sees, script errors included.

// ChromiumEnv names a Chromium binary to use instead of the one on $PATH.
const ChromiumEnv = "DETAILPAGE_CHROMIUM"

// ScreenshotEnv names a directory for the browser tests' screenshots; by
// default they go under os.TempDir()/detailpage-screenshots/<test name>,
// which outlives the test so that a person can look at them (the path is
// in the test's log).
const ScreenshotEnv = "DETAILPAGE_SCREENSHOTS"

// ChromiumPath finds the browser: $DETAILPAGE_CHROMIUM, else chromium or
// chromium-browser on $PATH.
func ChromiumPath() (string, error) {
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("testutil: $%s=%s: %w", ChromiumEnv, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("testutil: no chromium or chromium-browser on $PATH (apt-get install chromium, or run scripts/install-deps.sh --test; or set $" + ChromiumEnv + ")")
}

// inCI reports whether the tests run in CI ($CI set to anything but
// false/0): there a missing browser fails the test instead of skipping it.
func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// MustChromium returns the browser's path. Without one it fails the test in
// CI and skips it elsewhere (a developer machine without Chromium).
func MustChromium(tb testing.TB) string {
	tb.Helper()
	p, err := ChromiumPath()
	if err == nil {
		return p
	}
	if inCI() {
		tb.Fatalf("%v: the browser tests need it in CI", err)
	}
	tb.Skipf("%v (skipped: $CI is not set)", err)
	return ""
}

// Viewport is the window a page is shown in, in CSS pixels.
type Viewport struct {
	Width, Height int64
	Scale         float64 // device pixels per CSS pixel
	Mobile        bool    // mobile emulation: meta viewport honoured, touch
}

var (
	// Desktop is a laptop-sized window.
	Desktop = Viewport{Width: 1280, Height: 900, Scale: 1}
	// Phone is a 390x844 phone (an iPhone 12–15's CSS size) with mobile
	// emulation.
	Phone = Viewport{Width: 390, Height: 844, Scale: 2, Mobile: true}
)

// Browser is one headless Chromium process, stopped when the test ends.
type Browser struct {
	ctx context.Context // the browser's first tab; pages are new tabs of it
}

// browserStartTimeout bounds Chromium's start (a few seconds normally).
const browserStartTimeout = time.Minute

// MustBrowser starts Chromium for tb: headless, no sandbox (tests run as
// root), no GPU, no background networking, no proxy (every page is on
// loopback), a fresh profile in a temp dir. It stops it when the test
// ends.
func MustBrowser(tb testing.TB) *Browser {
	tb.Helper()
	path := MustChromium(tb)
	profile := tb.TempDir()
	var out SyncBuffer // Chromium's output, for an error message
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("lang", "zh-CN"),
		chromedp.UserDataDir(profile),
		chromedp.CombinedOutput(&out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }() // the first Do starts the browser, bound to ctx
	stop := func() {
		if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
			tb.Logf("testutil: close chromium: %v", err)
		}
		cancel()
		cancelAlloc()
	}
	select {
	case err := <-started:
		if err != nil {
			stop()
			tb.Fatalf("testutil: start %s: %v\n%s", path, err, tail(out.String(), 2000))
		}
	case <-time.After(browserStartTimeout):
		stop()
		<-started
		tb.Fatalf("testutil: %s did not start within %v\n%s", path, browserStartTimeout, tail(out.String(), 2000))
	}
	tb.Cleanup(stop)
	return &Browser{ctx: ctx}
}

// ConsoleEntry is one thing the page reported: a console API call, an
// uncaught exception (or unhandled promise rejection), or an entry of the
// browser's own log (a failed resource load has Source "network").
type ConsoleEntry struct {
	Kind   string // "console", "exception" or "log"
	Level  string // console: log|warning|error|assert|...; log: verbose|info|warning|error
	Source string // log entries only: network, javascript, security, ...
	Text   string
	URL    string
}

func (e ConsoleEntry) String() string {
	s := e.Kind + "." + e.Level
	if e.Source != "" {
		s += " (" + e.Source + ")"
	}
	s += ": " + e.Text
	if e.URL != "" {
		s += " [" + e.URL + "]"
	}
	return s
}

// IsScriptError reports whether e is an error or warning of the page's
// script: an exception, console.error/warn/assert, or a browser log entry
// of level warning or error that is not about a network request (a
// failed request is the browser's report on a resource, which a page
// cannot suppress: see NetworkErrors).
func (e ConsoleEntry) IsScriptError() bool {
	switch e.Kind {
	case "exception":
		return true
	case "console":
		return e.Level == "error" || e.Level == "warning" || e.Level == "assert"
	default:
		return (e.Level == "error" || e.Level == "warning") && e.Source != "network"
	}
}

// Page is one browser tab in a fresh browser context of its own (its own
// cookies and localStorage), recording the console from its start.
type Page struct {
	tb       testing.TB
	ctx      context.Context
	viewport Viewport
	shots    string

	mu      sync.Mutex
	entries []ConsoleEntry
}

// MustPage opens a tab with viewport vp; it is closed when the test ends.
func (b *Browser) MustPage(tb testing.TB, vp Viewport) *Page {
	tb.Helper()
	p := &Page{tb: tb, viewport: vp}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(p.listen))
	p.ctx = ctx
	tb.Cleanup(cancel)
	// The first Do opens the tab and binds it to the context it gets: the
	// tab's own, never one with a timeout (which would close the tab).
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("testutil: open a tab: %v", err)
	}
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(vp.Scale), chromedp.EmulatePortrait}
	if vp.Mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := p.do(30*time.Second, chromedp.EmulateViewport(vp.Width, vp.Height, opts...)); err != nil {
		tb.Fatalf("testutil: open a tab (%dx%d): %v", vp.Width, vp.Height, err)
	}
	return p
}

// listen runs in the tab's event loop: it only records.
func (p *Page) listen(ev any) {
	var e ConsoleEntry
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		e = ConsoleEntry{Kind: "console", Level: string(ev.Type), Text: consoleArgs(ev.Args)}
		if ev.StackTrace != nil && len(ev.StackTrace.CallFrames) > 0 {
			e.URL = ev.StackTrace.CallFrames[0].URL
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		e = ConsoleEntry{Kind: "exception", Level: "error", Text: d.Text, URL: d.URL}
		if d.Exception != nil && d.Exception.Description != "" {
			e.Text += " " + d.Exception.Description
		}
	case *cdplog.EventEntryAdded:
		if ev.Entry == nil {
			return
		}
		e = ConsoleEntry{Kind: "log", Level: string(ev.Entry.Level), Source: string(ev.Entry.Source), Text: ev.Entry.Text, URL: ev.Entry.URL}
	default:
		return
	}
	p.mu.Lock()
	p.entries = append(p.entries, e)
	p.mu.Unlock()
}

func consoleArgs(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case len(a.Value) > 0:
			parts = append(parts, strings.Trim(string(a.Value), `"`))
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}

// Console returns everything the page reported so far.
func (p *Page) Console() []ConsoleEntry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ConsoleEntry(nil), p.entries...)
}

// ScriptErrors returns the entries that are script errors (IsScriptError).
func (p *Page) ScriptErrors() []ConsoleEntry {
	var out []ConsoleEntry
	for _, e := range p.Console() {
		if e.IsScriptError() {
			out = append(out, e)
		}
	}
	return out
}

// NetworkErrors returns the browser's log entries about failed requests.
func (p *Page) NetworkErrors() []ConsoleEntry {
	var out []ConsoleEntry
	for _, e := range p.Console() {
		if e.Kind == "log" && e.Source == "network" && (e.Level == "error" || e.Level == "warning") {
			out = append(out, e)
		}
	}
	return out
}

// MustNoScriptErrors fails the test if the page reported a script error,
// listing everything it reported.
func (p *Page) MustNoScriptErrors() {
	p.tb.Helper()
	if errs := p.ScriptErrors(); len(errs) > 0 {
		p.tb.Errorf("the page reported %d script error(s): %v\nall console entries: %v", len(errs), errs, p.Console())
	}
}

// do runs actions with a time limit (the tab stays open after a timeout).
func (p *Page) do(limit time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(p.ctx, limit)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// navigateTimeout bounds a page load (the page and its pictures, all on
// loopback).
const navigateTimeout = 30 * time.Second

// MustNavigate loads url and waits for its load event.
func (p *Page) MustNavigate(url string) {
	p.tb.Helper()
	if err := p.do(navigateTimeout, chromedp.Navigate(url)); err != nil {
		p.tb.Fatalf("testutil: navigate to %s: %v", url, err)
	}
}

// BlockURLs makes the tab fail every request whose URL matches one of the
// URL patterns (https://urlpattern.spec.whatwg.org/ syntax, absolute, e.g.
// "*://*:*/api/realtime/*"), as if the server were unreachable; no
// patterns unblocks.
func (p *Page) BlockURLs(patterns ...string) error {
	bp := make([]*network.BlockPattern, len(patterns))
	for i, s := range patterns {
		bp[i] = &network.BlockPattern{URLPattern: s, Block: true}
	}
	return p.do(10*time.Second, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: bp})
		return chromedp.Void{}, err
	})
}

// AddScriptOnNewDocument runs src in every document the tab loads from
// now on, before the page's own scripts (to break an API the page uses).
func (p *Page) AddScriptOnNewDocument(src string) error {
	return p.do(10*time.Second, func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src})
		return chromedp.Void{}, err
	})
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// (JSON) into T.
func Eval[T any](p *Page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// MustEval is Eval that fails the test on error.
func MustEval[T any](p *Page, expr string) T {
	p.tb.Helper()
	v, err := Eval[T](p, expr)
	if err != nil {
		p.tb.Fatalf("testutil: evaluate %q: %v", expr, err)
	}
	return v
}

// MustSelect sets the <select> matched by the CSS selector to value and
// fires its change event, as a shopper's choice does.
func (p *Page) MustSelect(selector, value string) {
	p.tb.Helper()
	if err := p.do(10*time.Second, chromedp.SetValue(chromedp.CSS(selector), value)); err != nil {
		p.tb.Fatalf("testutil: select %q in %s: %v", value, selector, err)
	}
	expr := fmt.Sprintf(`(function () { var s = document.querySelector(%q); s.dispatchEvent(new Event("change", { bubbles: true })); return s.value; })()`, selector)
	if got := MustEval[string](p, expr); got != value {
		p.tb.Fatalf("testutil: %s holds %q after selecting %q", selector, got, value)
	}
}

// MustClick clicks, as a mouse does, the element the CSS selector matches
// once it is visible (the click lands on whatever is on top at its centre,
// so a covered element does not get it).
func (p *Page) MustClick(selector string) {
	p.tb.Helper()
	if err := p.do(10*time.Second, chromedp.Click(chromedp.CSS(selector))); err != nil {
		p.tb.Fatalf("testutil: click %s: %v", selector, err)
	}
}

// MustType focuses the element the CSS selector matches and types text
// into it with key events, as a person does.
func (p *Page) MustType(selector, text string) {
	p.tb.Helper()
	if err := p.do(10*time.Second, chromedp.SendKeys(chromedp.CSS(selector), text)); err != nil {
		p.tb.Fatalf("testutil: type into %s: %v", selector, err)
	}
}

// ScreenshotDir is where this test's screenshots go ($DETAILPAGE_SCREENSHOTS,
// or os.TempDir()/detailpage-screenshots/<test name>); it is created on
// first use and kept after the test.
func ScreenshotDir(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(ScreenshotEnv)
	if base == "" {
		base = filepath.Join(os.TempDir(), "detailpage-screenshots")
	}
	dir := filepath.Join(base, unsafeName.ReplaceAllString(tb.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("testutil: screenshot dir: %v", err)
	}
	return dir
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// MustScreenshot saves a PNG of what the viewport shows as <name>.png in
// ScreenshotDir and returns its path; with full, the whole page instead.
func (p *Page) MustScreenshot(name string, full bool) string {
	p.tb.Helper()
	if p.shots == "" {
		p.shots = ScreenshotDir(p.tb)
	}
	params := page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, FromSurface: ptrTo(true)}
	if full {
		params.CaptureBeyondViewport = ptrTo(true)
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		if full { // grow the viewport to the page, as DevTools' "full size screenshot" does
			m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
			if err != nil {
				return nil, err
			}
			params.Clip = &page.Viewport{X: 0, Y: 0, Width: m.CSSContentSize.Width, Height: m.CSSContentSize.Height, Scale: 1}
		}
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, params)
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	})
	if err != nil {
		p.tb.Fatalf("testutil: screenshot %s: %v", name, err)
	}
	path := filepath.Join(p.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.tb.Fatalf("testutil: save screenshot: %v", err)
	}
	p.tb.Logf("screenshot %s (%dx%d CSS px viewport): %s", name, p.viewport.Width, p.viewport.Height, path)
	return path
}

func ptrTo[T any](v T) *T { return &v }

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a process's
// output, a logger's lines) and a reader.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
