package resilience

import (
	"sync"
	"sync/atomic"
	"time"
)

// Circuit states, as the detailpage_resilience_circuit_state gauge reports
// them.
const (
	StateClosed   = 0
	StateOpen     = 1
	StateHalfOpen = 2
)

const windowBuckets = 10

// breaker is a circuit breaker: closed, it counts calls and errors in a
// rolling window of windowBuckets buckets and opens when the window holds
// at least RequestVolumeThreshold calls of which ErrorPercentThreshold
// percent failed. Open, it short-circuits every call for SleepWindow, then
// turns half-open and lets exactly one probe through; the probe's success
// closes it, its failure opens it for another SleepWindow. Results of calls
// that started before the circuit opened do not change its state.
//
// Time comes from the caller (monoNow, in nanoseconds; negative in a
// testing/synctest bubble), so testing/synctest drives it.
type breaker struct {
	state atomic.Int32
	// lastError is when the last failure was counted (under mu): a
	// success when none is in the window cannot open the circuit, so it
	// is counted without the lock.
	lastError atomic.Int64

	mu       sync.Mutex
	openedAt int64
	buckets  [windowBuckets]bucket
}

// A bucket's counts are atomic for successes counted without the lock;
// its slot changes under the lock only.
type bucket struct {
	slot   atomic.Int64 // which bucket-sized slice of time it counts
	total  atomic.Int64
	errors atomic.Int64
}

// allow says whether a call may run now, and whether it is the probe of a
// half-open circuit.
func (b *breaker) allow(now int64, s *Command) (probe, ok bool) {
	switch b.state.Load() {
	case StateClosed:
		return false, true
	case StateHalfOpen:
		return false, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() != StateOpen || time.Duration(now-b.openedAt) < s.SleepWindow {
		return false, false
	}
	b.state.Store(StateHalfOpen)
	return true, true
}

// result records the outcome of a call allowed by allow.
func (b *breaker) result(probe bool, oc outcome, now int64, s *Command) {
	failed := oc.failed()
	if probe {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch {
		case oc == outcomeCancelled:
			// No verdict: the next call probes again.
			b.state.Store(StateOpen)
		case failed:
			b.openedAt = now
			b.state.Store(StateOpen)
		default:
			b.reset()
			b.state.Store(StateClosed)
		}
		return
	}
	if oc == outcomeCancelled || b.state.Load() != StateClosed {
		return
	}
	width := max(int64(s.Window/windowBuckets), 1)
	slot := floorDiv(now, width)
	bk := &b.buckets[slot-floorDiv(slot, windowBuckets)*windowBuckets]
	if !failed && now-b.lastError.Load() >= int64(s.Window) && bk.slot.Load() == slot {
		// No failure in the window: this success cannot open the circuit.
		// (A goroutine that stalled a whole window between its clock read
		// and here may count in a newer bucket, as it could wait that long
		// for the lock.)
		bk.total.Add(1)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Load() != StateClosed {
		return
	}
	if bk.slot.Load() != slot {
		bk.total.Store(0)
		bk.errors.Store(0)
		bk.slot.Store(slot)
	}
	bk.total.Add(1)
	if failed {
		bk.errors.Add(1)
		b.lastError.Store(max(b.lastError.Load(), now))
	}
	var total, errs int64
	for i := range b.buckets {
		if x := &b.buckets[i]; x.slot.Load() > slot-windowBuckets {
			total += x.total.Load()
			errs += x.errors.Load()
		}
	}
	if total >= int64(s.RequestVolumeThreshold) && errs*100 >= int64(s.ErrorPercentThreshold)*total {
		b.openedAt = now
		b.reset()
		b.state.Store(StateOpen)
	}
}

func (b *breaker) reset() {
	for i := range b.buckets {
		b.buckets[i].slot.Store(0)
		b.buckets[i].total.Store(0)
		b.buckets[i].errors.Store(0)
	}
}

// floorDiv is a / b rounded down (b > 0), for negative times too.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}
