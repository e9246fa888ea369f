package topology

import (
	"testing"
	"testing/synctest"
	"time"
)

// A process that crashes right after its health check passes is restarted
// after 100, 200, 400, 800 ms and 1.6 s; the exit after that fifth restart
// within a minute is a crash loop.
func TestRestartHistoryBackoffThenCrashLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newRestartHistory(DefaultRestartPolicy())
		want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}
		for i, w := range want {
			up := time.Now()
			time.Sleep(time.Second) // up for a second, then it crashes
			wait, loop := h.exited(time.Now(), up)
			if loop || wait != w {
				t.Fatalf("exit %d: wait %s loop %v, want %s", i+1, wait, loop, w)
			}
			time.Sleep(wait)
		}
		if _, loop := h.exited(time.Now(), time.Now()); !loop {
			t.Fatal("the sixth exit within a minute is not a crash loop")
		}
	})
}

// The backoff doubles up to 5 s for a process that never gets healthy, as
// long as its restarts are spread out enough not to be a crash loop.
func TestRestartHistoryCapsAt5s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newRestartHistory(DefaultRestartPolicy())
		var last time.Duration
		for i := range 10 {
			wait, loop := h.exited(time.Now(), time.Time{})
			if loop {
				t.Fatalf("exit %d: crash loop, though restarts are 20 s apart", i+1)
			}
			last = wait
			time.Sleep(20 * time.Second)
		}
		if last != 5*time.Second {
			t.Errorf("tenth wait %s, want the 5 s cap", last)
		}
	})
}

// A process that was healthy for a minute starts the backoff over.
func TestRestartHistoryResetsAfterAHealthyMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newRestartHistory(DefaultRestartPolicy())
		for range 3 {
			wait, _ := h.exited(time.Now(), time.Now())
			time.Sleep(wait)
		}
		up := time.Now()
		time.Sleep(61 * time.Second)
		if wait, loop := h.exited(time.Now(), up); loop || wait != 100*time.Millisecond {
			t.Errorf("after a healthy minute: wait %s loop %v, want 100ms", wait, loop)
		}
		up = time.Now()
		time.Sleep(30 * time.Second)
		if wait, _ := h.exited(time.Now(), up); wait != 200*time.Millisecond {
			t.Errorf("after 30 s up: wait %s, want 200ms (no reset)", wait)
		}
	})
}
