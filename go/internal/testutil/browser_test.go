package testutil

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The harness records what a page reports: console calls, uncaught
// exceptions and failed requests, each classified.
func TestBrowserRecordsConsole(t *testing.T) {
	b := MustBrowser(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!DOCTYPE html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"></head><body><p id="x">hi</p>
<script>console.log("hello", 1); console.error("boom"); fetch("/missing").catch(function () {}); setTimeout(function () { throw new Error("uncaught"); }, 0);</script></body></html>`))
	}))
	t.Cleanup(srv.Close)
	p := b.MustPage(t, Phone)
	p.MustNavigate(srv.URL + "/")
	Eventually(t, 5*time.Second, func() error {
		var exc, consoleErr, network, log bool
		for _, e := range p.Console() {
			switch {
			case e.Kind == "exception" && strings.Contains(e.Text, "uncaught"):
				exc = true
			case e.Kind == "console" && e.Level == "error" && e.Text == "boom":
				consoleErr = true
			case e.Kind == "console" && e.Level == "log" && e.Text == "hello 1":
				log = true
			case e.Kind == "log" && e.Source == "network" && strings.Contains(e.URL, "/missing"):
				network = true
			}
		}
		if !exc || !consoleErr || !network || !log {
			return &consoleMissing{p.Console()}
		}
		return nil
	})
	if n := len(p.ScriptErrors()); n != 2 {
		t.Errorf("%d script errors, want 2 (the exception and console.error): %v", n, p.ScriptErrors())
	}
	if w := MustEval[float64](p, `window.innerWidth`); w != float64(Phone.Width) {
		t.Errorf("phone innerWidth %v, want %d", w, Phone.Width)
	}
	if path := p.MustScreenshot("harness", false); !strings.HasSuffix(path, ".png") {
		t.Errorf("screenshot path %q", path)
	}
}

type consoleMissing struct{ got []ConsoleEntry }

func (c *consoleMissing) Error() string {
	return "not every kind of console entry recorded yet; got: " + func() string {
		var s []string
		for _, e := range c.got {
			s = append(s, e.String())
		}
		return strings.Join(s, "; ")
	}()
}
