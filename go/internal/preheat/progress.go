package preheat

import (
	"context"
	"fmt"
	"io"
	"time"
)

// progress writes one line per second until ctx ends.
func (r *runner) progress(ctx context.Context, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// the done markers of every instance, not only ours
		if err := r.refreshDone(ctx); err != nil && ctx.Err() == nil {
			r.cfg.Log.Debug("preheat: progress: read done markers", "error", err)
		}
		r.printLine(r.cfg.Progress, start, false)
	}
}

// printLine writes "done/total, rate, ETA" of the whole run: products of
// done partitions (any instance's) plus this instance's partitions in
// progress.
func (r *runner) printLine(w io.Writer, start time.Time, final bool) {
	done, parts := 0, 0
	for i := range r.doneParts {
		if r.doneParts[i].Load() {
			done += len(r.plan.Partitions[i])
			parts++
		}
	}
	if !final {
		done = min(r.plan.Total, done+int(r.inflight.Load()))
	}
	el := time.Since(start)
	rate := float64(done) / max(el.Seconds(), 1e-3)
	pct := 100.0
	if r.plan.Total > 0 {
		pct = 100 * float64(done) / float64(r.plan.Total)
	}
	eta := "-"
	if rate > 0 && done < r.plan.Total {
		eta = (time.Duration(float64(r.plan.Total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	word := "preheat:"
	if final {
		word = "preheat: finished"
	}
	fmt.Fprintf(w, "%s %d/%d products (%.1f%%), %.0f/s, ETA %s, partitions %d/%d done, %d by this instance, elapsed %s\n",
		word, done, r.plan.Total, pct, rate, eta, parts, len(r.plan.Partitions), r.partitions.Load(), el.Round(100*time.Millisecond))
}
