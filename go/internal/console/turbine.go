package console

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/lograte"
)

// Event types of the Hystrix stream.
const (
	TypeCommand    = "HystrixCommand"
	TypeThreadPool = "HystrixThreadPool"
)

// event is one decoded event of a /hystrix.stream, as hystrix-go writes it.
type event = map[string]any

type eventKey struct{ typ, name string }

type hostEvent struct {
	at   time.Time
	data event
}

// aggregator keeps the latest event of every (type, name) per host and
// merges them the way Turbine does. A host's events go when its stream
// drops (dropHost) or when the host has sent nothing for stale (a frozen
// source). Staleness is the host's, not each event's: hystrix-go's stream
// gives each client a buffer of 10 events and drops the rest of a tick's
// burst (two events per command), so a service with many commands shows
// each of them only every few seconds.
type aggregator struct {
	mu     sync.Mutex
	latest map[eventKey]map[string]hostEvent // → host → latest
	seen   map[string]time.Time              // host → its latest event
	now    func() time.Time
	stale  time.Duration
}

func newAggregator(now func() time.Time, stale time.Duration) *aggregator {
	return &aggregator{latest: map[eventKey]map[string]hostEvent{}, seen: map[string]time.Time{}, now: now, stale: stale}
}

// put records ev from host; events without a type or name are ignored
// (false).
func (a *aggregator) put(host string, ev event) bool {
	typ, _ := ev["type"].(string)
	name, _ := ev["name"].(string)
	if (typ != TypeCommand && typ != TypeThreadPool) || name == "" {
		return false
	}
	k := eventKey{typ, name}
	a.mu.Lock()
	defer a.mu.Unlock()
	hosts := a.latest[k]
	if hosts == nil {
		hosts = map[string]hostEvent{}
		a.latest[k] = hosts
	}
	at := a.now()
	hosts[host] = hostEvent{at: at, data: ev}
	a.seen[host] = at
	return true
}

// dropHost forgets every event of host (its stream is down).
func (a *aggregator) dropHost(host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.seen, host)
	for k, hosts := range a.latest {
		delete(hosts, host)
		if len(hosts) == 0 {
			delete(a.latest, k)
		}
	}
}

// instances returns, per (type, name) in name order, the fresh events
// and their hosts (sorted), dropping stale ones.
func (a *aggregator) instances() []instanceSet {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	out := make([]instanceSet, 0, len(a.latest))
	for k, hosts := range a.latest {
		set := instanceSet{typ: k.typ, name: k.name}
		for h := range hosts {
			if now.Sub(a.seen[h]) > a.stale {
				delete(hosts, h)
				continue
			}
			set.hosts = append(set.hosts, h)
		}
		if len(set.hosts) == 0 {
			delete(a.latest, k)
			continue
		}
		sort.Strings(set.hosts)
		for _, h := range set.hosts {
			set.events = append(set.events, hosts[h].data)
		}
		out = append(out, set)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].typ != out[j].typ {
			return out[i].typ < out[j].typ
		}
		return out[i].name < out[j].name
	})
	return out
}

type instanceSet struct {
	typ, name string
	hosts     []string
	events    []event
}

// merge aggregates the events of one command or thread pool from several
// instances the way Turbine does, which is what the Hystrix dashboard
// expects of a Turbine stream: every number is summed — counts, rates,
// errorPercentage, the latency means and every latency percentile, the
// rolling window — and reportingHosts is the number of instances, so the
// dashboard's division by reportingHosts gives the per-instance mean
// (its convertAllAvg and getInstanceAverage). currentTime is the latest;
// a flag is true when any instance's is (an open circuit anywhere shows);
// text (type, name, group, isolation strategy) is the first instance's.
func merge(events []event) event {
	out := event{}
	for _, ev := range events {
		mergeInto(out, ev)
	}
	out["reportingHosts"] = float64(len(events))
	if out["type"] == TypeCommand {
		// Netflix Hystrix sends it; hystrix-go does not (the dashboard
		// defaults it; a Turbine consumer may not).
		if _, ok := out["rollingCountBadRequests"]; !ok {
			out["rollingCountBadRequests"] = 0.0
		}
	}
	return out
}

func mergeInto(dst, src event) {
	for k, v := range src {
		cur, ok := dst[k]
		if !ok {
			dst[k] = clone(v)
			continue
		}
		switch sv := v.(type) {
		case float64:
			if cv, ok := cur.(float64); ok {
				if k == "currentTime" {
					dst[k] = max(cv, sv)
				} else {
					dst[k] = cv + sv
				}
			}
		case bool:
			if cv, ok := cur.(bool); ok && !strings.HasPrefix(k, "propertyValue_") {
				dst[k] = cv || sv
			}
		case map[string]any:
			if cv, ok := cur.(map[string]any); ok {
				mergeInto(cv, sv)
			}
		}
	}
}

func clone(v any) any {
	if m, ok := v.(map[string]any); ok {
		c := make(map[string]any, len(m))
		for k, x := range m {
			c[k] = clone(x)
		}
		return c
	}
	return v
}

// turbineFrame encodes the merged events as one SSE chunk: a "data:" line
// per event, as Turbine writes them; a comment ping when there is none.
func turbineFrame(sets []instanceSet) []byte {
	var b bytes.Buffer
	for _, s := range sets {
		data, err := json.Marshal(merge(s.events))
		if err != nil {
			continue // only numbers, strings, flags and maps: cannot fail
		}
		b.WriteString("data: ")
		b.Write(data)
		b.WriteString("\n\n")
	}
	if b.Len() == 0 {
		b.WriteString(": ping\n\n")
	}
	return b.Bytes()
}

// streamState is what the console knows of one source's stream.
type streamState struct {
	Connected bool
	Error     string
}

// follower reads every service's /hystrix.stream into the aggregator,
// each on its own goroutine; a stream that fails or ends is retried with
// backoff and its host dropped from the aggregate meanwhile.
type follower struct {
	agg    *aggregator
	client *http.Client
	log    *slog.Logger
	policy backoff.Policy
	idle   time.Duration // a stream that sent data and then nothing this long is reconnected
	// firstIdle: a connection with no event this long after it was
	// asked for (a target that took the TCP connection and sends
	// nothing) is reconnected.
	firstIdle time.Duration
	mu        sync.Mutex
	states    map[string]streamState
	badLine   *lograte.Limiter
}

// followRetry is the backoff between reconnects of one source.
var followRetry = backoff.Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

func newFollower(agg *aggregator, log *slog.Logger, dial time.Duration) *follower {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// No response header timeout: hystrix-go writes its headers with the
	// first event; read's watchdog bounds the wait (firstIdle).
	tr.DialContext = (&net.Dialer{Timeout: dial, KeepAlive: 15 * time.Second}).DialContext
	tr.MaxIdleConnsPerHost = 4
	return &follower{
		agg: agg, log: log, policy: followRetry, idle: 10 * time.Second, firstIdle: 30 * time.Second,
		client: &http.Client{Transport: tr}, // no overall timeout: a stream never ends
		states: map[string]streamState{}, badLine: lograte.New(5, time.Second),
	}
}

func (f *follower) setState(name string, st streamState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[name] = st
}

func (f *follower) state(name string) streamState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[name]
}

// run follows t until ctx is done. The first failure of a streak is
// logged as a warning, the retries after it at debug level, and the
// reconnection once.
func (f *follower) run(ctx context.Context, t Target) {
	b := f.policy.Start()
	f.setState(t.Name, streamState{Error: "not connected yet"})
	failing := false
	for ctx.Err() == nil {
		start := time.Now()
		err := f.read(ctx, t, func() {
			if failing {
				f.log.Info("console: hystrix stream back", "source", t.Name)
				failing = false
			}
		})
		f.agg.dropHost(t.Name)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errNoEvent) {
			// It answered and has no command to report: still
			// connected, asked again at once.
			f.log.Debug("console: hystrix stream sent no event; asking again", "source", t.Name)
			b.Reset()
			continue
		}
		if time.Since(start) > 30*time.Second {
			b.Reset() // it was up a good while: retry soon
		}
		d := b.Next()
		f.setState(t.Name, streamState{Error: err.Error()})
		lvl := slog.LevelWarn
		if failing {
			lvl = slog.LevelDebug
		}
		failing = true
		f.log.Log(ctx, lvl, "console: hystrix stream lost; retrying", "source", t.Name, "url", t.URL, "error", err, "retry_in", d.String())
		if backoff.Sleep(ctx, d) != nil {
			return
		}
	}
}

var (
	errStreamIdle = errors.New("stream idle")
	// errNoEvent: the stream answered (headers) and sent no event in
	// firstIdle: a service that has run no command yet.
	errNoEvent = errors.New("stream answered, no event")
)

// read reads one connection to t's stream until it fails or ends.
func (f *follower) read(ctx context.Context, t Target, first func()) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The watchdog runs from the start: a target that takes the
	// connection and sends nothing (no headers: hystrix-go writes them
	// with its first event; no event) for firstIdle, or nothing for idle
	// after an event (frozen, a dead TCP peer), is reconnected. A
	// service that answered (headers) and has run no command yet is
	// asked again every firstIdle and stays connected (errNoEvent).
	watchdog := time.AfterFunc(f.firstIdle, func() { cancel(errStreamIdle) })
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+"/hystrix.stream", nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStreamIdle) {
			return fmt.Errorf("connect: no answer within %v: %w", f.firstIdle, cause)
		}
		return fmt.Errorf("connect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("connect: %s", resp.Status)
	}
	// Connected once the answer's headers came (with hystrix-go: with
	// its first event), not when the TCP connection was taken.
	f.setState(t.Name, streamState{Connected: true})
	events := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue
		}
		var ev event
		if err := json.Unmarshal(bytes.TrimSpace(data), &ev); err != nil || !f.agg.put(t.Name, ev) {
			if n, ok := f.badLine.Allow(); ok {
				f.log.Warn("console: hystrix event ignored", "source", t.Name, "suppressed", n)
			}
			continue
		}
		if first != nil {
			first()
			first = nil
		}
		events = true
		watchdog.Reset(f.idle)
	}
	if cause := context.Cause(ctx); errors.Is(cause, errStreamIdle) {
		if !events {
			return errNoEvent
		}
		return cause
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return errors.New("stream ended")
}

// hub fans frames out to the clients of a stream. Each client has a small
// buffer; a client that falls behind loses frames (never blocking the
// publisher or the other clients).
type hub struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
	dropped int64
}

func newHub() *hub { return &hub{clients: map[chan []byte]struct{}{}} }

func (h *hub) subscribe() chan []byte {
	ch := make(chan []byte, 8)
	h.mu.Lock()
	h.clients[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *hub) unsubscribe(ch chan []byte) {
	h.mu.Lock()
	delete(h.clients, ch)
	h.mu.Unlock()
}

func (h *hub) publish(frame []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.clients {
		select {
		case ch <- frame:
		default:
			h.dropped++
		}
	}
}

func (h *hub) droppedFrames() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.dropped
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// serveSSE streams the hub's frames to one client, first (if not nil)
// the frame first, until the client or the service goes, or alive (if
// not nil; checked before every frame) says the client's session is
// gone. A write that cannot finish in writeTimeout ends the stream.
func serveSSE(w http.ResponseWriter, r *http.Request, done <-chan struct{}, h *hub, first []byte, alive func() bool) {
	const writeTimeout = 10 * time.Second
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ch := h.subscribe()
	defer h.unsubscribe(ch)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if first == nil {
		first = []byte(": connected\n\n")
	}
	if !write(first) {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-done:
			return
		case f := <-ch:
			if alive != nil && !alive() {
				return
			}
			if !write(f) {
				return
			}
		}
	}
}
