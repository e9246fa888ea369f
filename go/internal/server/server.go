// Package server holds what every detailpage Go service shares at its HTTP
// edge: the gin engine with slog request logs and panic recovery, the
// standard endpoints (/healthz, /metrics, /hystrix.stream), bearer-token
// admin auth, the one mapping of domain errors to HTTP status, and serving
// with a clean shutdown.
package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

func init() { gin.SetMode(gin.ReleaseMode) }

// NewLogger returns the JSON slog logger every service uses, tagged with
// the service name.
func NewLogger(service, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	return slog.New(h).With("service", service), nil
}

// NewEngine returns a gin engine with request logging, panic recovery that
// answers a JSON 500 (never a stack trace), JSON 404/405 and the standard
// endpoints. health reports whether the service is ready.
func NewEngine(log *slog.Logger, reg *prometheus.Registry, health func(ctx context.Context) error) *gin.Engine {
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
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	e.GET("/hystrix.stream", gin.WrapH(hystrixStream()))
	return e
}

var (
	streamOnce sync.Once
	stream     *hystrix.StreamHandler
)

// hystrixStream returns the process-wide Hystrix dashboard stream: hystrix-go
// keeps its circuits in globals, so one stream serves every engine.
func hystrixStream() http.Handler {
	streamOnce.Do(func() {
		stream = hystrix.NewStreamHandler()
		stream.Start()
	})
	return stream
}

// NewRegistry returns a Prometheus registry with the Go and process
// collectors and the resilience commands' metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	resilience.MustRegister(reg)
	return reg
}

func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		lvl := slog.LevelDebug
		if status >= 500 {
			lvl = slog.LevelWarn
		}
		log.Log(c.Request.Context(), lvl, "request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", status, "duration_ms", time.Since(start).Milliseconds())
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

// Status maps an error to its HTTP status: the one place that does.
func Status(err error) int {
	var ve *catalog.ValidationError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &ve):
		return http.StatusBadRequest
	case errors.Is(err, catalog.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ErrUnavailable marks an error as "a dependency is down, try later".
var ErrUnavailable = errors.New("temporarily unavailable")

// Error writes err as a JSON error with its mapped status.
func Error(c *gin.Context, log *slog.Logger, err error) {
	status := Status(err)
	if status >= 500 {
		log.Warn("request failed", "path", c.Request.URL.Path, "error", err)
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
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
