package loadgen_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/detailpage/detailpage/go/internal/loadgen"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) }

// In a bubble with a fake clock: every call starts exactly at its scheduled
// time although each takes five seconds, i.e. the schedule never waits for
// earlier calls (open loop).
func TestScheduleIsOpenLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const rate, calls = 100, 100
		var mu sync.Mutex
		started := make([]time.Time, calls)
		scheduled := make([]time.Time, calls)
		start, made := loadgen.Schedule(t.Context(), rate, time.Second, func(i int, at time.Time) {
			mu.Lock()
			started[i], scheduled[i] = time.Now(), at
			mu.Unlock()
			time.Sleep(5 * time.Second) // a slow request (fake time)
		})
		if made != calls {
			t.Fatalf("%d calls, want %d", made, calls)
		}
		for i := range calls {
			want := start.Add(time.Duration(i) * 10 * time.Millisecond)
			if !scheduled[i].Equal(want) || !started[i].Equal(want) {
				t.Errorf("call %d scheduled at +%s, started at +%s; want both at +%s",
					i, scheduled[i].Sub(start), started[i].Sub(start), want.Sub(start))
			}
		}
		if took := time.Since(start); took != 990*time.Millisecond+5*time.Second {
			t.Errorf("the run took %s, want the last call's start (990ms) plus its 5s", took)
		}
	})
}

// A cancelled context stops the schedule; the calls made are reported.
func TestScheduleStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var n atomic.Int64
		_, made := loadgen.Schedule(ctx, 10, 10*time.Second, func(i int, at time.Time) {
			if n.Add(1) == 5 {
				cancel()
			}
		})
		if made != 5 || n.Load() != 5 {
			t.Errorf("%d calls made (%d ran) after a cancel at the fifth, want 5", made, n.Load())
		}
	})
}

// stallingServer holds every request until release is closed and counts
// arrivals.
type stallingServer struct {
	arrived atomic.Int64
	release chan struct{}
}

func (s *stallingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.arrived.Add(1)
	select {
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("X-Cache", "L1")
	w.Write([]byte("page"))
}

// A server that stalls: every request still leaves on schedule (the
// generator does not wait for answers), and each latency, measured from the
// request's scheduled time, holds the whole stall — the earliest requests
// waited longest.
func TestRunMeasuresFromScheduledTimeWhileTheServerStalls(t *testing.T) {
	srv := &stallingServer{release: make(chan struct{})}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := loadgen.NewClient()
	defer c.CloseIdleConnections()

	const rate, d = 200, 500 * time.Millisecond
	const n = 100
	done := make(chan loadgen.Report, 1)
	go func() {
		done <- loadgen.Run(context.Background(), c, rate, d, func(id int64) string { return ts.URL + "/item/" + strconv.FormatInt(id, 10) }, func() int64 { return 1 })
	}()
	// Every request reaches the stalled server before any is answered.
	testutil.Eventually(t, 30*time.Second, func() error {
		if got := srv.arrived.Load(); got < n {
			return errors.New("the stalled server has " + strconv.FormatInt(got, 10) + " requests")
		}
		return nil
	})
	released := time.Now()
	close(srv.release)
	rep := <-done
	t.Logf("stalled server: %s", rep.Summary())

	if len(rep.Results) != n {
		t.Fatalf("%d results, want %d", len(rep.Results), n)
	}
	for i, r := range rep.Results {
		if r.Status != http.StatusOK || r.Cache != "L1" || r.Err != nil {
			t.Fatalf("request %d: status %d, X-Cache %q, %v", i, r.Status, r.Cache, r.Err)
		}
		if want := time.Duration(i) * 5 * time.Millisecond; r.At != want {
			t.Errorf("request %d scheduled at +%s, want +%s", i, r.At, want)
		}
		// The answer cannot come before the release: latency from the
		// scheduled time holds at least the rest of the stall.
		if stall := released.Sub(rep.Start.Add(r.At)); r.Latency < stall {
			t.Errorf("request %d: latency %s, less than the %s it was stalled since its scheduled time", i, r.Latency, stall)
		}
		if r.SendDelay > r.Latency {
			t.Errorf("request %d: send delay %s over latency %s", i, r.SendDelay, r.Latency)
		}
	}
	// The figure: the earliest request waited longest (the bound above is
	// what is asserted; the order of answers after the release is not).
	t.Logf("first request (+0s): %s; last (+%s): %s", rep.Results[0].Latency, rep.Results[n-1].At, rep.Results[n-1].Latency)
}

// With too few connections for a slow server, requests cannot leave on
// time: they are counted late and their wait for a connection is in their
// latency.
func TestRunCountsRequestsThatCouldNotBeSentOnTime(t *testing.T) {
	const work = 200 * time.Millisecond
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // the server's work, not a synchronisation
		case <-time.After(work):
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	tr := &http.Transport{MaxConnsPerHost: 2, MaxIdleConnsPerHost: 2}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Minute}

	// 20 requests in 100 ms over 2 connections of a server that takes
	// 200 ms each: at most 2 can be written on time.
	rep := loadgen.Run(t.Context(), c, 200, 100*time.Millisecond, func(int64) string { return ts.URL }, func() int64 { return 1 })
	t.Logf("two connections: %s", rep.Summary())
	if len(rep.Results) != 20 {
		t.Fatalf("%d results, want 20", len(rep.Results))
	}
	if late := rep.Late(); late < 18 {
		t.Errorf("%d of 20 requests counted late, want at least 18", late)
	}
	for i, r := range rep.Results {
		if r.Status != http.StatusOK {
			t.Fatalf("request %d: status %d, %v", i, r.Status, r.Err)
		}
		if r.Latency < r.SendDelay+work {
			t.Errorf("request %d: latency %s under its send delay %s plus the server's %s", i, r.Latency, r.SendDelay, work)
		}
	}
	lat := rep.Latencies()
	if p99 := loadgen.Percentile(lat, 0.99); p99 < 9*work {
		t.Errorf("p99 %s: 20 requests through 2 connections of %s each, want the queue (≥ %s) in it", p99, work, 9*work)
	}
}

// A transport error is a result with status 0 and the error, sent late
// (never written).
func TestRunRecordsTransportErrors(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	c := loadgen.NewClient()
	defer c.CloseIdleConnections()
	rep := loadgen.Run(t.Context(), c, 100, 50*time.Millisecond, func(int64) string { return url }, func() int64 { return 1 })
	for i, r := range rep.Results {
		if r.Status != 0 || r.Err == nil || r.SendDelay != r.Latency {
			t.Errorf("request %d to a closed server: status %d, %v, send delay %s of latency %s", i, r.Status, r.Err, r.SendDelay, r.Latency)
		}
	}
}

func TestZipfStaysInRange(t *testing.T) {
	next := loadgen.Zipf(1, 100)
	hits := map[int64]int{}
	for range 10_000 {
		id := next()
		if id < 1 || id > 100 {
			t.Fatalf("id %d out of 1..100", id)
		}
		hits[id]++
	}
	if hits[1] < hits[50] {
		t.Errorf("id 1 drawn %d times, id 50 %d: want a few hot ids", hits[1], hits[50])
	}
}
