package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// openStream GETs an SSE path and reads it on a goroutine the test owns:
// every line goes to lines; ended closes when the stream ends.
func openStream(t *testing.T, url string, hdr map[string]string) (lines <-chan string, ended <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	ln := make(chan string, 1024)
	end := make(chan struct{})
	go func() {
		defer close(end)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			select {
			case ln <- sc.Text():
			default: // the test reads only what it needs
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-end })
	return ln, end
}

// waitLine waits for a line with prefix.
func waitLine(t *testing.T, lines <-chan string, prefix string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no line %q within %v", prefix, within)
		}
	}
}

func login(t *testing.T, base string) (cookie, csrf string) {
	t.Helper()
	r := do(t, "POST", base+"/login", `{"token":"`+testToken+`"}`, map[string]string{"Content-Type": "application/json"})
	if r.StatusCode != 200 {
		t.Fatalf("login: %d", r.StatusCode)
	}
	var in struct{ CSRF string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		t.Fatal(err)
	}
	return strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0], in.CSRF
}

// TestStreamsEndWithSession: /api/stream and /turbine.stream opened with
// a session end when it is logged out or expires (checked on every
// frame, without refreshing its idle time); a bearer stream goes on.
func TestStreamsEndWithSession(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	_, base := newTestService(t, Config{Now: clock})

	outCookie, outCSRF := login(t, base)
	idleCookie, _ := login(t, base)
	bearer := map[string]string{"Authorization": "Bearer " + testToken}

	outOverview, outOverviewEnd := openStream(t, base+"/api/stream", map[string]string{"Cookie": outCookie})
	outTurbine, outTurbineEnd := openStream(t, base+"/turbine.stream", map[string]string{"Cookie": outCookie})
	idleOverview, idleOverviewEnd := openStream(t, base+"/api/stream", map[string]string{"Cookie": idleCookie})
	idleTurbine, idleTurbineEnd := openStream(t, base+"/turbine.stream", map[string]string{"Cookie": idleCookie})
	bearerTurbine, bearerTurbineEnd := openStream(t, base+"/turbine.stream", bearer)
	bearerOverview, bearerOverviewEnd := openStream(t, base+"/api/stream", bearer)
	for _, l := range []<-chan string{outOverview, idleOverview, bearerOverview} {
		waitLine(t, l, "event: overview", 5*time.Second)
	}
	for _, l := range []<-chan string{outTurbine, idleTurbine, bearerTurbine} {
		waitLine(t, l, ": ping", 5*time.Second)
	}

	if r := do(t, "POST", base+"/logout", "", map[string]string{"Cookie": outCookie, CSRFHeader: outCSRF}); r.StatusCode != 204 {
		t.Fatalf("logout: %d", r.StatusCode)
	}
	for name, end := range map[string]<-chan struct{}{"/api/stream": outOverviewEnd, "/turbine.stream": outTurbineEnd} {
		select {
		case <-end:
		case <-time.After(5 * time.Second):
			t.Errorf("%s of a logged-out session still open", name)
		}
	}
	// The other session's streams are not using it: it expires under them.
	mu.Lock()
	now = now.Add(2 * time.Hour) // SessionIdle is 1 h
	mu.Unlock()
	for name, end := range map[string]<-chan struct{}{"/api/stream": idleOverviewEnd, "/turbine.stream": idleTurbineEnd} {
		select {
		case <-end:
		case <-time.After(5 * time.Second):
			t.Errorf("%s of an expired session still open", name)
		}
	}
	// The bearer streams go on.
	waitLine(t, bearerOverview, "event: overview", 5*time.Second)
	waitLine(t, bearerTurbine, ": ping", 5*time.Second)
	select {
	case <-bearerTurbineEnd:
		t.Error("the bearer turbine stream ended")
	case <-bearerOverviewEnd:
		t.Error("the bearer overview stream ended")
	default:
	}
}

// TestStreamDoesNotRefreshSession: an open stream does not keep its
// session alive (alive peeks).
func TestStreamDoesNotRefreshSession(t *testing.T) {
	now := time.Unix(0, 0)
	s := newSessions(time.Hour, func() time.Time { return now })
	id, _, err := s.create()
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		now = now.Add(15 * time.Minute)
		s.alive(id)
	}
	if s.alive(id) {
		t.Error("a session peeked for 75 min is alive after 1 h idle")
	}
	if _, ok := s.get(id); ok {
		t.Error("get: a session only peeked at is alive after 1 h idle")
	}
}
