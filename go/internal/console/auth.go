package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"github.com/detailpage/detailpage/go/internal/lograte"
)

// CookieName is the session cookie.
const CookieName = "dp_console"

// CSRFHeader carries a session's CSRF token on state-changing requests.
const CSRFHeader = "X-CSRF-Token"

// maxLoginBytes bounds a login body.
const maxLoginBytes = 4 << 10

type session struct {
	csrf string
	last time.Time
}

// maxSessions bounds the session store: a login past it ends the least
// recently used session.
const maxSessions = 1024

// sessions is the in-memory session store: random ids, each with its own
// random CSRF token, dropped after idle without use, at most maxSessions
// (an LRU: hashicorp/golang-lru's, under the store's own lock).
type sessions struct {
	mu   sync.Mutex
	m    *simplelru.LRU[string, *session]
	idle time.Duration
	now  func() time.Time
}

func newSessions(idle time.Duration, now func() time.Time) *sessions {
	return newSessionsCap(maxSessions, idle, now)
}

func newSessionsCap(size int, idle time.Duration, now func() time.Time) *sessions {
	m, err := simplelru.NewLRU[string, *session](size, nil)
	if err != nil {
		panic(err) // only for a size < 1
	}
	return &sessions{m: m, idle: idle, now: now}
}

// randomToken is 32 bytes from crypto/rand, hex-encoded.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// create starts a session and returns its id and CSRF token; the least
// recently used session goes when the store is full.
func (s *sessions) create() (id, csrf string, err error) {
	if id, err = randomToken(); err != nil {
		return "", "", err
	}
	if csrf, err = randomToken(); err != nil {
		return "", "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.Add(id, &session{csrf: csrf, last: s.now()})
	return id, csrf, nil
}

// get returns the CSRF token of a live session and marks it used.
func (s *sessions) get(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m.Get(id)
	if !ok {
		return "", false
	}
	now := s.now()
	if now.Sub(ss.last) > s.idle {
		s.m.Remove(id)
		return "", false
	}
	ss.last = now
	return ss.csrf, true
}

// alive reports whether a session is live without marking it used (an
// open stream checks it on every frame: streaming is not using).
func (s *sessions) alive(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m.Peek(id)
	return ok && s.now().Sub(ss.last) <= s.idle
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m.Remove(id)
}

// sweep drops every idle session.
func (s *sessions) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, id := range s.m.Keys() {
		if ss, ok := s.m.Peek(id); ok && now.Sub(ss.last) > s.idle {
			s.m.Remove(id)
		}
	}
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m.Len()
}

// tokenEqual compares in constant time (length aside).
func tokenEqual(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// Failed logins, all callers together: a token bucket of loginFailBurst
// refilled at loginFailRate a second. Past it a login answers 429
// without the token being compared.
const (
	loginFailRate  = 5
	loginFailBurst = 5
)

// auth holds the console's access rules.
type auth struct {
	token    string
	sessions *sessions
	log      *slog.Logger
	failLog  *lograte.Limiter
	failures *rate.Limiter // failed logins
	now      func() time.Time
}

func newAuth(token string, idle time.Duration, now func() time.Time, log *slog.Logger) *auth {
	return &auth{
		token: token, sessions: newSessions(idle, now), log: log, failLog: lograte.New(5, time.Second),
		failures: rate.NewLimiter(loginFailRate, loginFailBurst), now: now,
	}
}

// Keys of the gin context.
const (
	keySession = "console.session" // the session id
	keyCSRF    = "console.csrf"    // its CSRF token
)

var errUnauthorized = errors.New("login required (session cookie or Authorization: Bearer <admin token>)")

// require lets a request through with a valid bearer token or a live
// session; else 401. A state-changing request with a session (not a
// bearer token) also needs the session's CSRF token in X-CSRF-Token, else
// 403 and the handler does not run.
func (a *auth) require(c *gin.Context) {
	if got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer "); ok {
		if tokenEqual(got, a.token) {
			c.Next()
			return
		}
		a.logFailure(c, "wrong bearer token")
		a.unauthorized(c)
		return
	}
	ck, err := c.Request.Cookie(CookieName)
	if err != nil {
		a.unauthorized(c)
		return
	}
	csrf, ok := a.sessions.get(ck.Value)
	if !ok {
		a.unauthorized(c)
		return
	}
	c.Set(keySession, ck.Value)
	c.Set(keyCSRF, csrf)
	if stateChanging(c.Request.Method) && !tokenEqual(c.GetHeader(CSRFHeader), csrf) {
		a.logFailure(c, "csrf token missing or wrong")
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "csrf token missing or wrong"})
		return
	}
	c.Next()
}

func stateChanging(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func (a *auth) unauthorized(c *gin.Context) {
	c.Header("WWW-Authenticate", `Bearer realm="detailpage console"`)
	c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": errUnauthorized.Error()})
}

// logFailure logs a refused request, never the token, at most a few lines
// a second.
func (a *auth) logFailure(c *gin.Context, why string) {
	if n, ok := a.failLog.Allow(); ok {
		a.log.Warn("console: request refused", "why", why, "path", c.Request.URL.Path, "remote", c.ClientIP(), "suppressed", n)
	}
}

// login answers POST /login: a form (token=) or JSON {"token":"…"}. The
// token is compared in constant time; on success a new session starts.
func (a *auth) login(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxLoginBytes))
	if err != nil {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "login: body too large or unreadable"})
		return
	}
	ct, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	isJSON := ct == "application/json"
	var token string
	switch ct {
	case "application/json":
		var in struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "login: body is not JSON {\"token\":\"…\"}"})
			return
		}
		token = in.Token
	case "application/x-www-form-urlencoded", "":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "login: malformed form"})
			return
		}
		token = vals.Get("token")
	default:
		c.AbortWithStatusJSON(http.StatusUnsupportedMediaType, gin.H{"error": "login: send a form (token=) or JSON {\"token\":\"…\"}"})
		return
	}
	// A failure is counted before the comparison (the reservation is
	// given back on success), so concurrent guesses cannot overrun the
	// bucket.
	now := a.now()
	res := a.failures.ReserveN(now, 1)
	if wait := res.DelayFrom(now); !res.OK() || wait > 0 {
		res.CancelAt(now)
		a.logFailure(c, "too many failed logins")
		c.Header("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": "too many failed logins; retry later"})
		return
	}
	if !tokenEqual(token, a.token) {
		a.logFailure(c, "wrong token at login")
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "wrong token"})
		return
	}
	res.CancelAt(now) // not a failure
	// A login from a browser that has a session replaces it.
	if ck, err := c.Request.Cookie(CookieName); err == nil {
		a.sessions.drop(ck.Value)
	}
	id, csrf, err := a.sessions.create()
	if err != nil {
		a.log.Error("console: new session", "error", err)
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.Request.TLS != nil,
	})
	a.log.Info("console: login", "remote", c.ClientIP())
	if isJSON {
		c.JSON(http.StatusOK, gin.H{"csrf": csrf})
		return
	}
	c.Redirect(http.StatusSeeOther, "/")
}

// logout answers POST /logout (behind require: session and CSRF).
func (a *auth) logout(c *gin.Context) {
	if id := c.GetString(keySession); id != "" {
		a.sessions.drop(id)
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.Request.TLS != nil})
	c.Status(http.StatusNoContent)
}

// session answers GET /api/session (behind require): the CSRF token of
// the caller's session (none with a bearer token).
func (a *auth) session(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"csrf": c.GetString(keyCSRF)})
}
