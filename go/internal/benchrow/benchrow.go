// Package benchrow collects the rows of `make bench`'s closing table: every
// benchmark that has a target appends one row (what, figure, target,
// whether it was met) to the file named by $DETAILPAGE_BENCH_RESULTS, and
// scripts/bench-table.sh prints them side by side when the run is over.
// The shell benchmarks (scripts/bench.sh) write the same tab-separated
// format. Without the variable a row is only logged.
package benchrow

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// EnvFile names the file rows are appended to.
const EnvFile = "DETAILPAGE_BENCH_RESULTS"

var mu sync.Mutex

// Row is one line of the table.
type Row struct {
	What   string // e.g. "sync, refresh events into Redis"
	Figure string // e.g. "21,400 events/s" or "1.12×"
	Target string // e.g. "≥ 20,000 events/s"; "" when the row only informs
	Met    bool
}

// Verdict is the table's last column.
func (r Row) Verdict() string {
	switch {
	case r.Target == "":
		return "-"
	case r.Met:
		return "met"
	}
	return "NOT MET"
}

func clean(s string) string { return strings.NewReplacer("\t", " ", "\n", " ").Replace(s) }

// Line is the row as one tab-separated line.
func (r Row) Line() string {
	return clean(r.What) + "\t" + clean(r.Figure) + "\t" + clean(r.Target) + "\t" + r.Verdict() + "\n"
}

// Record logs r on tb and appends it to $DETAILPAGE_BENCH_RESULTS if set.
// A failure to write the file fails tb: a bench whose figure is lost has
// not reported.
func Record(tb testing.TB, r Row) {
	tb.Helper()
	if r.Target == "" {
		tb.Logf("bench row: %s: %s (no target)", r.What, r.Figure)
	} else {
		tb.Logf("bench row: %s: %s (target %s: %s)", r.What, r.Figure, r.Target, r.Verdict())
	}
	if err := Append(os.Getenv(EnvFile), r); err != nil {
		tb.Errorf("bench row %q: %v", r.What, err)
	}
}

// Append appends r to path; an empty path does nothing.
func Append(path string, r Row) error {
	if path == "" {
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("benchrow: %w", err)
	}
	if _, err := f.WriteString(r.Line()); err != nil {
		f.Close()
		return fmt.Errorf("benchrow: %w", err)
	}
	return f.Close()
}

// Ratio formats a/b as "1.23×".
func Ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}
