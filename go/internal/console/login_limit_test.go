package console

import (
	"sync"
	"testing"
	"time"
)

// TestLoginFailuresLimited: past 5 failed logins a second (all callers
// together) a login answers 429 with Retry-After and the token is not
// compared (the right one is refused too); successful logins do not
// count; the bucket refills.
func TestLoginFailuresLimited(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	_, base := newTestService(t, Config{Now: clock})
	jsonCT := map[string]string{"Content-Type": "application/json"}
	wrong, right := `{"token":"nope"}`, `{"token":"`+testToken+`"}`

	for i := range loginFailBurst {
		if r := do(t, "POST", base+"/login", wrong, jsonCT); r.StatusCode != 401 {
			t.Fatalf("failed login %d: %d, want 401", i+1, r.StatusCode)
		}
	}
	for _, body := range []string{wrong, right} {
		r := do(t, "POST", base+"/login", body, jsonCT)
		if r.StatusCode != 429 || r.Header.Get("Retry-After") != "1" || r.Header.Get("Set-Cookie") != "" {
			t.Errorf("login %s past the limit: %d, Retry-After %q, Set-Cookie %q; want 429, 1, none",
				body, r.StatusCode, r.Header.Get("Retry-After"), r.Header.Get("Set-Cookie"))
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("429 Content-Type %q", ct)
		}
	}
	advance(time.Second) // a full bucket again
	for i := range 3 {
		if r := do(t, "POST", base+"/login", right, jsonCT); r.StatusCode != 200 {
			t.Fatalf("login %d with the token: %d", i+1, r.StatusCode)
		}
	}
	for i := range loginFailBurst { // the successes took nothing
		if r := do(t, "POST", base+"/login", wrong, jsonCT); r.StatusCode != 401 {
			t.Fatalf("failed login %d after refill: %d, want 401", i+1, r.StatusCode)
		}
	}
	if r := do(t, "POST", base+"/login", wrong, jsonCT); r.StatusCode != 429 {
		t.Errorf("sixth failed login in a second: %d, want 429", r.StatusCode)
	}
	advance(200 * time.Millisecond) // one token back
	if r := do(t, "POST", base+"/login", right, jsonCT); r.StatusCode != 200 {
		t.Errorf("login with the token 200 ms later: %d, want 200", r.StatusCode)
	}
}
