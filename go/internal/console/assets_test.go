package console

import (
	"io"
	"strings"
	"testing"
)

// TestAssetsNoListing: /assets/ serves files, never a listing of the
// embedded directory.
func TestAssetsNoListing(t *testing.T) {
	_, base := newTestService(t, Config{})
	for _, p := range []string{"/assets/", "/assets/.", "/assets//", "/assets/console.js/"} {
		r := do(t, "GET", base+p, "", nil)
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 404 || strings.Contains(string(b), "console.js") || !strings.Contains(string(b), `"error"`) {
			t.Errorf("GET %s: %d %q %q, want 404 JSON and no listing", p, r.StatusCode, b, r.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/assets/console.js", "/assets/console.css"} {
		if r := do(t, "GET", base+p, "", nil); r.StatusCode != 200 {
			t.Errorf("GET %s: %d, want 200", p, r.StatusCode)
		}
	}
}
