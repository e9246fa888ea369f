package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// Fault is what an operator injects into one source service to rehearse
// failure: added latency, a share of failing requests, or all down.
type Fault struct {
	Service   string  `json:"service"`
	LatencyMS int     `json:"latency_ms"`
	ErrorRate float64 `json:"error_rate"`
	Down      bool    `json:"down"`
}

func (f *Fault) validate() error {
	if _, ok := catalog.KindByName(f.Service); !ok {
		return badInput("service: unknown %q (want one of %s)", f.Service, catalog.KindNames())
	}
	if f.LatencyMS < 0 || f.LatencyMS > 60_000 {
		return badInput("latency_ms: want 0 to 60000")
	}
	if f.ErrorRate < 0 || f.ErrorRate > 1 {
		return badInput("error_rate: want 0 to 1")
	}
	return nil
}

// faults holds the injected faults per service.
type faults struct {
	mu sync.RWMutex
	m  map[string]Fault
}

func (f *faults) set(x Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]Fault{}
	}
	f.m[x.Service] = x
}

func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m = nil
}

func (f *faults) list() []Fault {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := []Fault{}
	for _, name := range catalog.KindNames() {
		if x, ok := f.m[name]; ok {
			out = append(out, x)
		}
	}
	return out
}

// The failures a fault makes: a service that is down answers 503 (it wraps
// catalog.ErrUnavailable), one failing at its error rate 500.
var (
	errInjectedDown = fmt.Errorf("injected fault: service down: %w", catalog.ErrUnavailable)
	errInjectedFail = errors.New("injected fault: error rate")
)

// apply waits the injected latency (or until ctx ends) and returns an error
// if the request must fail.
func (f *faults) apply(ctx context.Context, service string) error {
	f.mu.RLock()
	x, ok := f.m[service]
	f.mu.RUnlock()
	if !ok {
		return nil
	}
	if x.Down {
		return errInjectedDown
	}
	if x.LatencyMS > 0 {
		t := time.NewTimer(time.Duration(x.LatencyMS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if x.ErrorRate > 0 && rand.Float64() < x.ErrorRate {
		return errInjectedFail
	}
	return nil
}

// serviceStats counts the requests one source service saw.
type serviceStats struct {
	Requests    atomic.Int64 // HTTP requests
	Lookups     atomic.Int64 // ids asked for (a batch of 10 counts 10)
	Missing     atomic.Int64 // ids asked for that do not exist
	Edits       atomic.Int64
	Failed      atomic.Int64 // failed by an injected fault
	InFlight    atomic.Int64
	MaxInFlight atomic.Int64
}

func (s *serviceStats) enter() {
	n := s.InFlight.Add(1)
	for {
		m := s.MaxInFlight.Load()
		if n <= m || s.MaxInFlight.CompareAndSwap(m, n) {
			return
		}
	}
}

func (s *serviceStats) leave() { s.InFlight.Add(-1) }

func (s *serviceStats) reset() {
	for _, c := range []*atomic.Int64{&s.Requests, &s.Lookups, &s.Missing, &s.Edits, &s.Failed} {
		c.Store(0)
	}
	s.MaxInFlight.Store(s.InFlight.Load())
}

func (s *serviceStats) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]int64{
		"requests":      s.Requests.Load(),
		"lookups":       s.Lookups.Load(),
		"missing":       s.Missing.Load(),
		"edits":         s.Edits.Load(),
		"failed":        s.Failed.Load(),
		"in_flight":     s.InFlight.Load(),
		"max_in_flight": s.MaxInFlight.Load(),
	})
}
