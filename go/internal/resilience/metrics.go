package resilience

import (
	"errors"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/afex/hystrix-go/hystrix"
	metricCollector "github.com/afex/hystrix-go/hystrix/metric_collector"
	"github.com/afex/hystrix-go/hystrix/rolling"
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

// Command counts and durations live in each command's atomics (one add
// per call for the outcome, shared with the dashboard feed; two for the
// duration: its bucket and the sum) and are read at scrape time by
// commandCollector. client_golang's CounterVec and HistogramVec did the
// same with two more atomic adds and a compare-and-swap loop per call
// (about a fifth of a command's time in the profile).
var (
	commandTotalDesc = prometheus.NewDesc("detailpage_resilience_command_total",
		"Command calls by outcome: success, failure, timeout, short_circuited, rejected, panic, bad_request, cancelled; fallback_success, fallback_failure, fallback_rejected count fallbacks.",
		[]string{"command", "outcome"}, nil)
	commandDurationDesc = prometheus.NewDesc("detailpage_resilience_command_duration_seconds",
		"Time a command's run took (bulkhead slot held), by command.", []string{"command"}, nil)
	// durationBuckets are the histogram's upper bounds, in seconds and in
	// nanoseconds (a duration d is in bucket i when d <= bound i, as
	// client_golang's le).
	durationBuckets   = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	durationBucketsNs = func() (ns [len(durationBuckets)]int64) {
		for i, b := range durationBuckets {
			ns[i] = int64(math.Round(b * 1e9))
		}
		return ns
	}()
)

// durations is a command's latency histogram: counts per bucket (the last
// is +Inf) and the sum in nanoseconds.
type durations struct {
	buckets [len(durationBuckets) + 1]atomic.Uint64
	sumNs   atomic.Int64
}

func (h *durations) observe(d time.Duration) {
	i := 0
	for i < len(durationBucketsNs) && int64(d) > durationBucketsNs[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sumNs.Add(int64(d))
}

// commandCollector reports, at scrape time, every command's outcome counts
// and latency histogram.
type commandCollector struct{}

func (commandCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- commandTotalDesc
	ch <- commandDurationDesc
}

func (commandCollector) Collect(ch chan<- prometheus.Metric) {
	for name, c := range *commands.m.Load() {
		for oc := range numOutcomes {
			n := c.counts[oc].Load()
			if oc == outcomeCancelled {
				n += c.counts[countCancelledEarly].Load()
			}
			ch <- prometheus.MustNewConstMetric(commandTotalDesc, prometheus.CounterValue, float64(n), name, oc.String())
		}
		cum := make(map[float64]uint64, len(durationBuckets))
		var count uint64
		for i := range c.latency.buckets {
			count += c.latency.buckets[i].Load()
			if i < len(durationBuckets) {
				cum[durationBuckets[i]] = count
			}
		}
		sum := float64(c.latency.sumNs.Load()) / 1e9
		ch <- prometheus.MustNewConstHistogram(commandDurationDesc, count, sum, cum, name)
	}
}

var (
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
		Help: "Latency samples not passed to the Hystrix dashboard stream because a command's ring was full (its counts stay exact), or events when hystrix-go's collector is out of reach.",
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
		commandCollector{}, collapserBatchSize, collapserLookups,
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

// The Hystrix dashboard feed. A call adds to its command's outcome counts
// (which Prometheus reads too) and puts its duration in the command's ring
// of latency samples: a few atomic operations, no allocation, no channel.
// A feeder goroutine, started when there is something to pass on and gone
// when a pass finds nothing, passes the counts' growth since its last pass
// to hystrix-go's metric collector of the command in one addition per
// number, and the samples to its latency timings, every streamFlushEvery.
//
// hystrix-go takes events one at a time (CircuitBreaker.ReportEvent: an
// allocation per event and a goroutine per event and collector in its
// Monitor, some hundred thousand events a second per command at most), and
// its stream reads only its DefaultMetricCollector, which it does not
// export. So the feeder reaches the collector through the circuit's
// unexported metrics field by reflection (hystrixCollector), once per
// command; a test (TestStreamCountsExact) fails if a hystrix-go version
// moves it, and without it the events are dropped and counted in
// detailpage_resilience_stream_dropped_total, with one error logged.

const (
	// streamFlushEvery is how often the feeder passes counts and samples on
	// while there are calls.
	streamFlushEvery = 10 * time.Millisecond
	// streamSamples is each command's ring of latency samples: every
	// call's duration reaches the dashboard up to streamSamples per pass
	// (about 51,000 a second); beyond, the ones that find a free slot.
	streamSamples = 512
)

// countCancelledEarly counts callers whose context had ended before the
// call (Prometheus: outcome cancelled; not a dashboard event).
const (
	countCancelledEarly = int(numOutcomes) + iota
	numCounts
)

// sampleRing is a command's ring of latency samples: callers put, the
// feeder drains. A slot holds a duration + 1, 0 when free. A put that finds
// its slot taken (the feeder is a ring behind) drops its sample; a sample
// is drained exactly once.
type sampleRing struct {
	head  atomic.Uint64
	slots [streamSamples]atomic.Int64
	tail  uint64 // the first index not drained for sure; the feeder's
}

func (r *sampleRing) put(d time.Duration) bool {
	if r.slots[r.head.Load()%streamSamples].Load() != 0 {
		return false // full: no need to take an index
	}
	i := r.head.Add(1) - 1
	return r.slots[i%streamSamples].CompareAndSwap(0, int64(d)+1)
}

// drain appends the samples put since the last drain to out. A slot whose
// caller has its index but has not stored yet is read again next time.
func (r *sampleRing) drain(out []time.Duration) []time.Duration {
	head := r.head.Load()
	start := r.tail
	if head-start > streamSamples {
		start = head - streamSamples
	}
	next := head
	for i := start; i < head; i++ {
		v := r.slots[i%streamSamples].Swap(0)
		if v == 0 {
			next = min(next, i)
			continue
		}
		out = append(out, time.Duration(v-1))
	}
	r.tail = next
	return out
}

// pending reports whether the ring holds samples not drained.
func (r *sampleRing) pending() bool { return r.head.Load() != r.tail }

var (
	streamFeeding atomic.Bool // the feeder is not parked, or is being woken
	feedWake      = make(chan struct{}, 1)
	feederOnce    sync.Once
	feedMu        sync.Mutex // one pass at a time: the feeder's, or a test's
	feedBuf       []time.Duration
	noCollector   sync.Once
	successEvent  = []string{"success"}
)

// report puts a dashboard event's duration in the command's ring (its
// outcome is in the counts already) and wakes the feeder if it is parked.
func (c *command) report(took time.Duration) {
	if !c.samples.put(took) {
		streamDropped.Inc()
	}
	if !streamFeeding.Load() && streamFeeding.CompareAndSwap(false, true) {
		select {
		case feedWake <- struct{}{}:
		default:
		}
	}
}

// startFeeder starts the process's one feeder, with the first command
// (outside any testing/synctest bubble, as hystrix-go's goroutines for
// the name: its clock is the real one).
func startFeeder() { feederOnce.Do(func() { go feedStream() }) }

// feedStream is the feeder: parked on feedWake while no call has
// happened since its last pass, passing counts and samples on every
// streamFlushEvery while there are.
func feedStream() {
	for range feedWake {
		for {
			if flushStream() {
				time.Sleep(streamFlushEvery)
				continue
			}
			streamFeeding.Store(false)
			// A call that saw the feeder running after this pass found
			// nothing has counted before this check (atomics are
			// sequentially consistent): either this sees its count, or it
			// wakes the feeder.
			if !streamPending() || !streamFeeding.CompareAndSwap(false, true) {
				break
			}
		}
	}
}

func streamPending() bool {
	feedMu.Lock()
	defer feedMu.Unlock()
	for _, c := range *commands.m.Load() {
		if c.samples.pending() {
			return true
		}
		for i := range c.counts {
			if c.counts[i].Load() != c.fed[i] {
				return true
			}
		}
	}
	return false
}

// flushStream passes every command's counts and samples since the last
// pass to hystrix-go; it reports whether there was anything.
func flushStream() bool {
	feedMu.Lock()
	defer feedMu.Unlock()
	worked := false
	now := monoNow()
	for _, c := range *commands.m.Load() {
		c.forget(now)
		if c.flush() {
			worked = true
		}
	}
	return worked
}

// streamEvents are hystrix-go's numbers for a count of calls, as its
// metricExchange.IncrementMetrics maps event types to them.
type streamEvents struct {
	attempts, errors, successes, failures, rejects, shortCircuits, timeouts,
	contextCanceled, fallbackSuccesses, fallbackFailures uint64
}

func eventsOf(d *[numCounts]uint64) streamEvents {
	e := streamEvents{
		// Business answers are healthy answers: "success" on the stream;
		// panics are failures of run.
		successes:         d[outcomeSuccess] + d[outcomeBadRequest],
		failures:          d[outcomeFailure] + d[outcomePanic],
		rejects:           d[outcomeRejected],
		shortCircuits:     d[outcomeShortCircuited],
		timeouts:          d[outcomeTimeout],
		contextCanceled:   d[outcomeCancelled],
		fallbackSuccesses: d[outcomeFallbackSuccess],
		fallbackFailures:  d[outcomeFallbackFailure] + d[outcomeFallbackRejected],
	}
	e.errors = e.failures + e.rejects + e.shortCircuits + e.timeouts
	e.attempts = e.successes + e.errors + e.contextCanceled
	return e
}

// flush passes c's counts and samples since the last pass to its
// hystrix-go collector. feedMu is held.
func (c *command) flush() bool {
	var d [numCounts]uint64
	moved := false
	for i := range c.counts {
		n := c.counts[i].Load()
		d[i] = n - c.fed[i]
		c.fed[i] = n
		moved = moved || d[i] != 0
	}
	feedBuf = c.samples.drain(feedBuf[:0])
	if !moved && len(feedBuf) == 0 {
		return false
	}
	ev := eventsOf(&d)
	dc := c.collector
	if dc == nil {
		streamDropped.Add(float64(ev.attempts))
		return true
	}
	samples := feedBuf
	if ev.successes > 0 && c.circuit.IsOpen() {
		// hystrix-go closes its circuit on a success reported while it is
		// open (and resets its numbers): report one success its own way.
		var took time.Duration
		if len(samples) > 0 {
			took, samples = samples[0], samples[1:]
		}
		if err := c.circuit.ReportEvent(successEvent, time.Now().Add(-took), took); err == nil {
			// Its numbers start anew. In its view the pass's other events
			// came before the closing success (they would have been
			// dropped) and its other successes after: the usual order of
			// short-circuits, a probe, then calls again.
			ev = streamEvents{attempts: ev.successes - 1, successes: ev.successes - 1}
			samples = samples[:min(len(samples), int(ev.attempts))]
		}
	}
	increment(dc.NumRequests(), ev.attempts)
	increment(dc.Errors(), ev.errors)
	increment(dc.Successes(), ev.successes)
	increment(dc.Failures(), ev.failures)
	increment(dc.Rejects(), ev.rejects)
	increment(dc.ShortCircuits(), ev.shortCircuits)
	increment(dc.Timeouts(), ev.timeouts)
	increment(dc.ContextCanceled(), ev.contextCanceled)
	increment(dc.FallbackSuccesses(), ev.fallbackSuccesses)
	increment(dc.FallbackFailures(), ev.fallbackFailures)
	// hystrix-go's total duration (time.Since the event's start when its
	// monitor takes it) is the run's duration: the event has no queue.
	addTimings(dc.TotalDuration(), samples)
	addTimings(dc.RunDuration(), samples)
	return true
}

func increment(n *rolling.Number, by uint64) {
	if by > 0 {
		n.Increment(float64(by))
	}
}

// addTimings appends ds to t's bucket of this second: one Add (which makes
// the bucket and drops old ones), then the rest in one append under t's
// lock.
func addTimings(t *rolling.Timing, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	t.Add(ds[0])
	ds = ds[1:]
	t.Mutex.Lock()
	b := t.Buckets[time.Now().Unix()]
	if b != nil {
		b.Durations = append(b.Durations, ds...)
		ds = nil
	}
	t.Mutex.Unlock()
	for _, d := range ds { // the second turned between the two
		t.Add(d)
	}
}

// hystrixCollector returns the DefaultMetricCollector of cb, the one
// hystrix-go's stream reads (see the comment above).
func hystrixCollector(cb *hystrix.CircuitBreaker) (dc *metricCollector.DefaultMetricCollector) {
	defer func() {
		if recover() != nil {
			dc = nil
		}
		if dc == nil {
			noCollector.Do(func() {
				slog.Error("resilience: hystrix-go's metric collector not found: the dashboard stream gets no events (see detailpage_resilience_stream_dropped_total)")
			})
		}
	}()
	f := reflect.ValueOf(cb).Elem().FieldByName("metrics")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() {
		return nil
	}
	m := reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
	get := m.MethodByName("DefaultCollector")
	if !get.IsValid() || get.Type().NumIn() != 0 || get.Type().NumOut() != 1 {
		return nil
	}
	dc, _ = get.Call(nil)[0].Interface().(*metricCollector.DefaultMetricCollector)
	return dc
}
