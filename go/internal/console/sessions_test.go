package console

import (
	"strings"
	"testing"
	"time"
)

// TestSessionsBounded: the store holds at most maxSessions; a login past
// it ends the least recently used session, not one in use.
func TestSessionsBounded(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSessions(time.Hour, func() time.Time { return now })
	var first, second string
	for i := range maxSessions + 10 {
		id, _, err := s.create()
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			first = id
		case 1:
			second = id
		}
		if i > 0 {
			s.get(first) // in use all along
		}
	}
	if n := s.len(); n != maxSessions {
		t.Errorf("%d sessions, want at most %d", n, maxSessions)
	}
	if _, ok := s.get(first); !ok {
		t.Error("the session in use was evicted")
	}
	if _, ok := s.get(second); ok {
		t.Error("the least recently used session is still there")
	}
	// A peek is not a use: the stream check does not keep a session
	// from eviction.
	small := newSessionsCap(2, time.Hour, func() time.Time { return now })
	a, _, _ := small.create()
	b, _, _ := small.create()
	small.alive(a)
	small.get(b)
	small.create()
	if small.alive(a) || !small.alive(b) {
		t.Errorf("after a third login: a alive %v (want false), b alive %v (want true)", small.alive(a), small.alive(b))
	}
}

// TestLoginReplacesSession: a login with a session cookie ends that
// session.
func TestLoginReplacesSession(t *testing.T) {
	s, base := newTestService(t, Config{})
	old, _ := login(t, base)
	r := do(t, "POST", base+"/login", `{"token":"`+testToken+`"}`, map[string]string{"Content-Type": "application/json", "Cookie": old})
	if r.StatusCode != 200 {
		t.Fatalf("second login: %d", r.StatusCode)
	}
	if r := do(t, "GET", base+"/api/session", "", map[string]string{"Cookie": old}); r.StatusCode != 401 {
		t.Errorf("the replaced session: %d, want 401", r.StatusCode)
	}
	if n := s.auth.sessions.len(); n != 1 {
		t.Errorf("%d sessions after a re-login, want 1", n)
	}
	// A wrong token leaves the caller's session alone.
	newCookie := strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0]
	if r := do(t, "POST", base+"/login", `{"token":"nope"}`, map[string]string{"Content-Type": "application/json", "Cookie": newCookie}); r.StatusCode != 401 {
		t.Errorf("wrong token: %d", r.StatusCode)
	}
	if r := do(t, "GET", base+"/api/session", "", map[string]string{"Cookie": newCookie}); r.StatusCode != 200 {
		t.Errorf("the session after a failed login: %d, want 200", r.StatusCode)
	}
}
