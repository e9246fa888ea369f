package console

import (
	"testing"
	"time"
)

// TestAggregatorStaleByHost: a command whose events the host's stream
// skips for a few seconds (hystrix-go drops what does not fit its
// per-client buffer of 10 events) stays while the host sends anything;
// a host that sends nothing for the stale period leaves with all its
// commands.
func TestAggregatorStaleByHost(t *testing.T) {
	now := time.Unix(1000, 0)
	agg := newAggregator(func() time.Time { return now }, 3*time.Second)
	agg.put("sync", cmdEvent("preheat.push", 1, 0, false, 1, 1, 1))
	for range 4 { // 8 s of events of another command only
		now = now.Add(2 * time.Second)
		agg.put("sync", cmdEvent("source.price.batch", 1, 0, false, 1, 1, 1))
	}
	if sets := agg.instances(); len(sets) != 2 {
		t.Fatalf("a command the stream skipped for 8 s left the aggregate: %+v", sets)
	}
	now = now.Add(4 * time.Second)
	if sets := agg.instances(); len(sets) != 0 {
		t.Errorf("a host silent for 4 s is still in the aggregate: %+v", sets)
	}
}
