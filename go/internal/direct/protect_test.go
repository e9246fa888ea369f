package direct

import (
	"math"
	"testing"
	"time"
)

// The default filter is sized for 10M ids at 1%: about 96M bits (12 MB)
// and 7 hash functions, which the textbook formula puts at 1% when full.
func TestBloomSizing(t *testing.T) {
	f := newIDFilter(DefaultBloomCapacity, DefaultBloomFPRate)
	m, k := f.params()
	// m = −n·ln p / (ln 2)², k = m/n · ln 2
	wantM := -float64(DefaultBloomCapacity) * math.Log(DefaultBloomFPRate) / (math.Ln2 * math.Ln2)
	if math.Abs(float64(m)-wantM)/wantM > 0.01 {
		t.Errorf("bits = %d, want about %.0f", m, wantM)
	}
	if k != 7 {
		t.Errorf("hash functions = %d, want 7", k)
	}
	if mb := float64(m) / 8 / (1 << 20); mb > 12 {
		t.Errorf("filter takes %.1f MiB, want at most 12", mb)
	}
	n := float64(DefaultBloomCapacity)
	fp := math.Pow(1-math.Exp(-float64(k)*n/float64(m)), float64(k))
	if fp > 0.0101 {
		t.Errorf("false-positive rate when full = %.4f, want at most 1%%", fp)
	}
}

// Measured, on a filter of the same proportions at 1/100 of the size: no
// false negatives, and about 1% false positives when full.
func TestBloomFalsePositiveRate(t *testing.T) {
	const n = 100_000
	f := newIDFilter(n, 0.01)
	if !f.MayContain(42) {
		t.Fatal("a filter that is not ready refused an id")
	}
	for id := int64(1); id <= n; id++ {
		f.Add(id * 3) // spread out, not a dense range
	}
	f.ready.Store(true)
	for id := int64(1); id <= n; id++ {
		if !f.MayContain(id * 3) {
			t.Fatalf("false negative for %d", id*3)
		}
	}
	fp := 0
	const probes = 200_000
	for i := int64(0); i < probes; i++ {
		if f.MayContain(10_000_000 + i*3 + 1) {
			fp++
		}
	}
	rate := float64(fp) / probes
	t.Logf("false positives: %d of %d (%.3f%%)", fp, probes, 100*rate)
	if rate < 0.005 || rate > 0.015 {
		t.Errorf("false-positive rate %.4f, want about 0.01", rate)
	}
	// Far below capacity (10k products in a filter for 10M), it is tiny:
	// why the penetration test can expect zero source lookups.
	big := newIDFilter(DefaultBloomCapacity, DefaultBloomFPRate)
	for id := int64(1); id <= 10_000; id++ {
		big.Add(id)
	}
	big.ready.Store(true)
	for id := int64(20_000); id < 120_000; id++ {
		if big.MayContain(id) {
			t.Fatalf("false positive for %d in a filter holding 10k of 10M ids", id)
		}
	}
}

func TestXFetchDecision(t *testing.T) {
	exp := time.Unix(1000, 0)
	tests := []struct {
		name  string
		now   time.Time
		delta time.Duration
		beta  float64
		r     float64
		want  bool
	}{
		{"expired", exp, 10 * time.Millisecond, 1, 1, true},
		{"past expiry", exp.Add(time.Second), 0, 1, 0.5, true},
		{"r=1 never early", exp.Add(-time.Millisecond), time.Hour, 1, 1, false},
		{"no compute cost never early", exp.Add(-time.Millisecond), 0, 1, 1e-9, false},
		// gap = −δ·β·ln r = 10ms · 0.693 = 6.9ms
		{"within gap", exp.Add(-6 * time.Millisecond), 10 * time.Millisecond, 1, 0.5, true},
		{"beyond gap", exp.Add(-8 * time.Millisecond), 10 * time.Millisecond, 1, 0.5, false},
		{"beta widens the gap", exp.Add(-8 * time.Millisecond), 10 * time.Millisecond, 2, 0.5, true},
		{"far from expiry", exp.Add(-time.Second), 10 * time.Millisecond, 1, 0.01, false},
		{"r=0 is the smallest r", exp.Add(-time.Second), 10 * time.Millisecond, 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := xfetch(tt.now, exp, tt.delta, tt.beta, tt.r); got != tt.want {
				t.Errorf("xfetch = %v, want %v", got, tt.want)
			}
		})
	}
}

// With r uniform, a read at gap g before expiry refreshes with probability
// e^(−g/(δβ)): certain at expiry, rare a few δ before it.
func TestXFetchProbability(t *testing.T) {
	exp := time.Unix(1000, 0)
	const delta = 20 * time.Millisecond
	for _, gap := range []time.Duration{0, 10 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond} {
		const n = 10_000
		hits := 0
		for i := range n {
			r := (float64(i) + 0.5) / n // an even grid over (0, 1)
			if xfetch(exp.Add(-gap), exp, delta, 1, r) {
				hits++
			}
		}
		want := math.Exp(-float64(gap) / float64(delta))
		if got := float64(hits) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("gap %s: refresh share %.3f, want %.3f", gap, got, want)
		}
	}
}

func TestDocVersion(t *testing.T) {
	for doc, want := range map[string]int64{
		`{"version":42,"id":1}`:        42,
		`{"version":0,"missing":true}`: 0,
		`{"id":1}`:                     0,
		``:                             0,
		`{"version":9007199254740993}`: 9007199254740993,
	} {
		if got := docVersion([]byte(doc)); got != want {
			t.Errorf("docVersion(%s) = %d, want %d", doc, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Defaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"bloom fp 1":       func(c *Config) { c.BloomFPRate = 1 },
		"bloom capacity 0": func(c *Config) { c.BloomCapacity = 0 },
		"beta 0":           func(c *Config) { c.XFetchBeta = 0 },
		"stale ttl 0":      func(c *Config) { c.StaleTTL = 0 },
		"negative limit":   func(c *Config) { c.RebuildConcurrency = -1 },
	} {
		c := Defaults()
		edit(&c)
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	off := Defaults()
	off.Bloom, off.XFetch, off.Stale, off.BloomFPRate, off.XFetchBeta, off.StaleTTL = false, false, false, 0, 0, 0
	off.RebuildConcurrency = 0
	if err := off.Validate(); err != nil {
		t.Errorf("every protection off: %v", err)
	}
}
