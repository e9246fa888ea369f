// Package httpapi is the HTTP edge every detailpage Go service shares: the
// gin engine with slog request logs and panic recovery, the standard
// endpoints (/healthz, /metrics, /hystrix.stream), bearer-token admin auth,
// the one mapping of domain errors to HTTP status (Status, Error,
// ErrorPage), and serving with a clean shutdown. What it serves at
// /metrics and /hystrix.stream is built by the caller (the CLI wires them
// once per process).
package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// Telemetry is what a service exposes beside its API: its Prometheus
// registry, served at /metrics (the service registers its own metrics in
// it), and the Hystrix dashboard stream, served at /hystrix.stream when not
// nil.
type Telemetry struct {
	Registry *prometheus.Registry
	Stream   http.Handler
}

// NewEngine returns a gin engine with request logging, panic recovery that
// answers a JSON 500 (never a stack trace), JSON 404/405 and the standard
// endpoints. health reports whether the service is ready.
func NewEngine(log *slog.Logger, tel Telemetry, health func(ctx context.Context) error) *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(requestLog(log), gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, rec any) {
		log.Error("panic in handler", "path", c.Request.URL.Path, "panic", fmt.Sprint(rec))
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
	}))
	e.NoRoute(func(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"error": "no such endpoint"}) })
	e.NoMethod(func(c *gin.Context) { c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method not allowed"}) })
	e.GET("/healthz", func(c *gin.Context) {
		if err := health(c.Request.Context()); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	})
	if tel.Registry != nil {
		e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(tel.Registry, promhttp.HandlerOpts{Registry: tel.Registry})))
	}
	if tel.Stream != nil {
		e.GET("/hystrix.stream", func(c *gin.Context) {
			// hystrix-go writes the headers with its first event, and a
			// process that has run no command yet sends none: they go
			// at once, so a client (the console) sees the stream answer.
			c.Header("Content-Type", "text/event-stream")
			c.Header("Cache-Control", "no-cache")
			c.Status(http.StatusOK)
			c.Writer.Flush()
			tel.Stream.ServeHTTP(c.Writer, c.Request)
		})
	}
	return e
}

// requestLog logs every request, with the error Error or ErrorPage
// recorded: at debug level, at warn for a 5xx.
func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		lvl := slog.LevelDebug
		if status >= 500 {
			lvl = slog.LevelWarn
		}
		if !log.Enabled(c.Request.Context(), lvl) {
			return
		}
		attrs := []any{"method", c.Request.Method, "path", c.Request.URL.Path,
			"status", status, "duration_ms", time.Since(start).Milliseconds()}
		if err := c.Errors.Last(); err != nil {
			attrs = append(attrs, "error", err.Err)
		}
		log.Log(c.Request.Context(), lvl, "request", attrs...)
	}
}

// RequireToken is middleware for admin endpoints: `Authorization: Bearer
// <token>` must match, else 401 and the handler does not run.
func RequireToken(token string) gin.HandlerFunc {
	return func(c *gin.Context) {
		got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok || token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="detailpage admin"`)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "admin token required"})
			return
		}
		c.Next()
	}
}

// Status maps an error to its HTTP status: the one place that does. Errors
// are matched by type (errors.Is / errors.As), never by message:
//
//   - *catalog.ValidationError (bad input from outside): 400
//   - catalog.ErrNotFound: 404
//   - catalog.ErrUnavailable, a failed resilience command (*resilience.Error:
//     circuit open, bulkhead full, timeout, failure), a context that ended: 503
//   - anything else: 500
func Status(err error) int {
	var ve *catalog.ValidationError
	var re *resilience.Error
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &ve):
		return http.StatusBadRequest
	case errors.Is(err, catalog.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, catalog.ErrUnavailable), errors.As(err, &re),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// RetryAfter is the Retry-After (seconds) of every 503.
const RetryAfter = "2"

// Error answers err as JSON {"error": message} with its mapped status. A
// 500's message is "internal error" (the error itself goes to the request
// log, never to the client); a 503 carries Retry-After.
func Error(c *gin.Context, err error) {
	status := begin(c, err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// ErrorPage answers err as the HTML page page(status) with its mapped
// status, for endpoints that serve pages rather than JSON.
func ErrorPage(c *gin.Context, err error, page func(status int) []byte) {
	status := begin(c, err)
	c.Data(status, "text/html; charset=utf-8", page(status))
	c.Abort()
}

// begin records err for the request log and returns its status, with
// Retry-After set on a 503.
func begin(c *gin.Context, err error) int {
	status := Status(err)
	_ = c.Error(err) // for requestLog; returns err wrapped
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", RetryAfter)
	}
	return status
}

// Serve serves h on ln until ctx is done, then shuts down: in-flight
// requests get a grace period, long-lived streams are closed after it.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close() // the hystrix stream never ends on its own
	}
	<-errc
	return nil
}

// Listen opens a TCP listener, with a clear error naming the address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}
