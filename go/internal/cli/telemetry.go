package cli

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/detailpage/detailpage/go/internal/httpapi"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// newLogger returns the JSON slog logger every service uses, tagged with
// the service name.
func newLogger(service, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})
	return slog.New(h).With("service", service), nil
}

// newTelemetry returns what a service process exposes beside its API: a
// Prometheus registry holding the Go and process collectors and the
// resilience commands' metrics (the service adds its own), and the Hystrix
// dashboard stream. hystrix-go keeps its circuits in globals, so one stream
// per process serves every command; stop ends its goroutine.
func newTelemetry() (tel httpapi.Telemetry, stop func()) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	resilience.MustRegister(reg)
	stream := hystrix.NewStreamHandler()
	stream.Start()
	return httpapi.Telemetry{Registry: reg, Stream: stream}, stream.Stop
}
