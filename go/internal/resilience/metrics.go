package resilience

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// outcome is what became of one call; the label values of
// detailpage_resilience_command_total.
type outcome uint8

const (
	outcomeSuccess outcome = iota
	outcomeFailure
	outcomeTimeout
	outcomeShortCircuited
	outcomeRejected
	outcomePanic
	outcomeBadRequest // run returned Permanent: a business answer
	outcomeCancelled  // the caller's context ended
	outcomeFallbackSuccess
	outcomeFallbackFailure
	outcomeFallbackRejected
	numOutcomes
)

var outcomeNames = [numOutcomes]string{
	"success", "failure", "timeout", "short_circuited", "rejected", "panic",
	"bad_request", "cancelled", "fallback_success", "fallback_failure", "fallback_rejected",
}

func (o outcome) String() string { return outcomeNames[o] }

// failed reports whether the outcome counts against the circuit.
func (o outcome) failed() bool {
	switch o {
	case outcomeFailure, outcomeTimeout, outcomePanic, outcomeRejected:
		return true
	}
	return false
}

type (
	counter  = prometheus.Counter
	observer = prometheus.Observer
)

var (
	commandTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_resilience_command_total",
		Help: "Command calls by outcome: success, failure, timeout, short_circuited, rejected, panic, bad_request, cancelled; fallback_success, fallback_failure, fallback_rejected count fallbacks.",
	}, []string{"command", "outcome"})
	commandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "detailpage_resilience_command_duration_seconds",
		Help:    "Time a command's run took (bulkhead slot held), by command.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"command"})
	collapserBatchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "detailpage_resilience_collapser_batch_size",
		Help:    "Distinct keys per batch call a request collapser made.",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200},
	}, []string{"collapser"})
	collapserLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_resilience_collapser_lookups_total",
		Help: "Single-key lookups a request collapser served (batch calls: the batch size histogram's count).",
	}, []string{"collapser"})
	chainServed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_resilience_fallback_chain_served_total",
		Help: "Which link of a fallback chain served (none: every link failed).",
	}, []string{"chain", "link"})
	requestCacheTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "detailpage_resilience_request_cache_total",
		Help: "Request cache lookups by result (hit, miss).",
	}, []string{"result"})
	streamDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "detailpage_resilience_stream_dropped_total",
		Help: "Command events not passed to the Hystrix dashboard stream because it was saturated (Prometheus counts stay exact).",
	})
	requestCacheHit  = requestCacheTotal.WithLabelValues("hit")
	requestCacheMiss = requestCacheTotal.WithLabelValues("miss")
)

// stateCollector reports, at scrape time, the gauges read from the
// commands' atomics: circuit state, bulkhead in flight and limit.
type stateCollector struct{}

var (
	circuitStateDesc = prometheus.NewDesc("detailpage_resilience_circuit_state",
		"Circuit state by command: 0 closed, 1 open, 2 half-open (one probe in flight).", []string{"command"}, nil)
	inFlightDesc = prometheus.NewDesc("detailpage_resilience_bulkhead_in_flight",
		"Runs in flight by command (a run holds its slot until it returns).", []string{"command"}, nil)
	limitDesc = prometheus.NewDesc("detailpage_resilience_bulkhead_limit",
		"Most runs in flight allowed by command.", []string{"command"}, nil)
	fallbackInFlightDesc = prometheus.NewDesc("detailpage_resilience_fallback_in_flight",
		"Fallbacks in flight by command.", []string{"command"}, nil)
)

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- circuitStateDesc
	ch <- inFlightDesc
	ch <- limitDesc
	ch <- fallbackInFlightDesc
}

func (stateCollector) Collect(ch chan<- prometheus.Metric) {
	for name, c := range *commands.m.Load() {
		ch <- prometheus.MustNewConstMetric(circuitStateDesc, prometheus.GaugeValue, float64(c.breaker.state.Load()), name)
		ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(max(0, c.inFlight.Load())), name)
		ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(c.settings.Load().MaxConcurrent), name)
		ch <- prometheus.MustNewConstMetric(fallbackInFlightDesc, prometheus.GaugeValue, float64(max(0, c.fallbackInFlight.Load())), name)
	}
}

// Collectors are the package's Prometheus collectors; Register adds them
// to a registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		commandTotal, commandDuration, collapserBatchSize, collapserLookups,
		chainServed, requestCacheTotal, streamDropped, stateCollector{},
	}
}

// Register adds the package's collectors to reg (every service's /metrics
// registry). Registering them again in the same registry is not an error.
func Register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range Collectors() {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MustRegister is Register that panics on error.
func MustRegister(reg prometheus.Registerer) {
	if err := Register(reg); err != nil {
		panic(err)
	}
}

// The Hystrix dashboard feed. Callers queue a small value (no allocation);
// a feeder goroutine, started when there is work and gone when there is
// none, passes each event to hystrix-go's circuit with ReportEvent. When
// hystrix-go's own metrics channel is full, that command's events are
// dropped for a millisecond rather than paying for its error path.

type fbResult uint8

const (
	fbNone fbResult = iota
	fbSuccess
	fbFailure
)

// streamTypes are the hystrix-go event types of an outcome and fallback
// result; nil: not reported.
var streamTypes = func() (t [numOutcomes][3][]string) {
	names := map[outcome]string{
		outcomeSuccess: "success", outcomeBadRequest: "success", outcomeFailure: "failure",
		outcomePanic: "failure", outcomeTimeout: "timeout", outcomeShortCircuited: "short-circuit",
		outcomeRejected: "rejected", outcomeCancelled: "context_canceled",
	}
	for oc, n := range names {
		t[oc][fbNone] = []string{n}
		t[oc][fbSuccess] = []string{n, "fallback-success"}
		t[oc][fbFailure] = []string{n, "fallback-failure"}
	}
	return t
}()

type streamEvent struct {
	c     *command
	types []string
	took  time.Duration
}

var (
	streamQueue   = make(chan streamEvent, 8192)
	streamPending atomic.Int64
	streamFeeding atomic.Bool
)

// report queues one event for the dashboard stream.
func (c *command) report(oc outcome, fb fbResult, took time.Duration) {
	types := streamTypes[oc][fb]
	if types == nil {
		return
	}
	streamPending.Add(1)
	select {
	case streamQueue <- streamEvent{c: c, types: types, took: took}:
	default:
		streamPending.Add(-1)
		streamDropped.Inc()
		return
	}
	if !streamFeeding.Load() && streamFeeding.CompareAndSwap(false, true) {
		go feedStream()
	}
}

func feedStream() {
	for {
		select {
		case ev := <-streamQueue:
			streamPending.Add(-1)
			ev.send()
		default:
			streamFeeding.Store(false)
			if streamPending.Load() <= 0 || !streamFeeding.CompareAndSwap(false, true) {
				return
			}
			runtime.Gosched() // an event is on its way into the queue
		}
	}
}

func (ev streamEvent) send() {
	now := time.Now()
	if now.UnixNano() < ev.c.streamPause.Load() {
		streamDropped.Inc()
		return
	}
	// hystrix-go's total duration is time.Since(start) when it processes
	// the event; start it so that equals the call's duration.
	if err := ev.c.circuit.ReportEvent(ev.types, now.Add(-ev.took), ev.took); err != nil {
		ev.c.streamPause.Store(now.Add(time.Millisecond).UnixNano())
		streamDropped.Inc()
	}
}
