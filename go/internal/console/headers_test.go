package console

import "testing"

// TestPageHeaders: the page and its assets carry the Content-Security-
// Policy the page is built for (the one page_browser_test.go proves it
// works under) and the security headers every answer has.
func TestPageHeaders(t *testing.T) {
	_, base := newTestService(t, Config{})
	for _, p := range []string{"/", "/assets/console.js", "/assets/console.css"} {
		r := do(t, "GET", base+p, "", nil)
		if r.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, r.StatusCode)
		}
		want := map[string]string{
			"Content-Security-Policy": pageCSP,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
		}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				t.Errorf("GET %s: %s = %q, want %q", p, k, got, v)
			}
		}
	}
	if r := do(t, "GET", base+"/api/session", "", nil); r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("GET /api/session: security headers %v", r.Header)
	}
}
