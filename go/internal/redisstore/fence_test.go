package redisstore_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// A fenced write passes while the fence holds the writer's token, keeps
// the version compare-and-set, and is refused — touching nothing, with
// ErrFenced as a business answer — once another writer moved the fence on.
func TestFencedPut(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	rdb := st.Client()
	const fence = "dp:preheat:{t}:fence:0"
	f := MustFenced(t, st, fence)
	MustPut(t, f, 1, redisstore.Entry{Key: "item:{1}", Version: 5, Value: doc(5, "fenced")})
	// the version check still applies under a fence
	MustPut(t, f, 0, redisstore.Entry{Key: "item:{1}", Version: 4, Value: doc(4, "older")})
	// a large value is split as without a fence
	big := []byte(`{"version":6,"d":"` + strings.Repeat("x", redisstore.MaxValueBytes+10) + `"}`)
	MustPut(t, f, 1, redisstore.Entry{Key: "item:{2}", Version: 6, Value: big})
	if got := MustGet(t, st, "item:{2}"); string(got) != string(big) {
		t.Fatalf("split value under a fence: %d bytes back, want %d", len(got), len(big))
	}

	// Another writer takes over: the fence moves to 2.
	if err := rdb.Incr(ctx, fence).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := f.Put(ctx,
		redisstore.Entry{Key: "item:{1}", Version: 9, Value: doc(9, "after takeover")},
		redisstore.Entry{Key: "item:{3}", Version: 1, Value: doc(1, "new key")})
	if !errors.Is(err, redisstore.ErrFenced) || n != 0 {
		t.Fatalf("write after takeover: %d written, %v; want 0 and ErrFenced", n, err)
	}
	var perm resilience.Permanent
	if !errors.As(err, &perm) {
		t.Errorf("ErrFenced is not a resilience.Permanent: %T %v", err, err)
	}
	if v := redisstore.VersionOf(MustGet(t, st, "item:{1}")); v != 5 {
		t.Errorf("item:{1} version %d after the refused write, want 5", v)
	}
	if b := MustGet(t, st, "item:{3}"); b != nil {
		t.Errorf("item:{3} written by a fenced-out writer: %s", b)
	}
	// the new holder writes
	g, err := st.Fenced(fence, 2)
	if err != nil {
		t.Fatal(err)
	}
	MustPut(t, g, 1, redisstore.Entry{Key: "item:{1}", Version: 9, Value: doc(9, "new holder")})
	// a fence key that is gone (expired run) refuses too
	if err := rdb.Del(ctx, fence).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Put(ctx, redisstore.Entry{Key: "item:{1}", Version: 10, Value: doc(10, "x")}); !errors.Is(err, redisstore.ErrFenced) {
		t.Errorf("write with the fence key gone: %v, want ErrFenced", err)
	}
	// the unfenced store is unaffected by fences
	MustPut(t, st, 1, redisstore.Entry{Key: "item:{1}", Version: 10, Value: doc(10, "sync")})
}

func TestFencedRefusedOnCluster(t *testing.T) {
	st := redisstore.New(redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}))
	defer st.Close()
	_, err := st.Fenced("dp:preheat:{r}:fence:0", 1)
	if err == nil || !strings.Contains(err.Error(), "Cluster") {
		t.Fatalf("Fenced on a cluster client: %v, want a refusal naming the Cluster", err)
	}
}

// The fence moving on while a long pipeline runs: what was written is a
// prefix of the entries (the script checks the fence per entry, in
// order), nothing after the move.
func TestFencedPutPrefixWhenFenceMoves(t *testing.T) {
	// Long timeouts: the point is the fence, not how fast this machine
	// writes 20,000 scripts in one pipeline.
	st := redisstore.New(redis.NewClient(&redis.Options{Addr: testutil.MustRedis(t), ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}))
	t.Cleanup(func() { st.Close() })
	const fence = "fence:{p}"
	f := MustFenced(t, st, fence)
	entries := make([]redisstore.Entry, 20_000)
	for i := range entries {
		entries[i] = redisstore.Entry{Key: fmt.Sprintf("item:{%d}", i+1), Version: 1, Value: doc(1, "x")}
	}
	n := putWhileFenceMoves(t, st, f, fence, entries)
	for i, e := range entries {
		got := MustGet(t, st, e.Key) != nil
		if got != (i < n) {
			t.Fatalf("entry %d present %v, but %d were written: not a prefix", i, got, n)
		}
	}
	t.Logf("%d of %d entries written before the fence moved", n, len(entries))
}

// MustFenced sets fence to token 1 on st's server and returns st's view
// fenced by it.
func MustFenced(tb testing.TB, st *redisstore.Store, fence string) *redisstore.Store {
	tb.Helper()
	if err := st.Client().Set(tb.Context(), fence, "1", 0).Err(); err != nil {
		tb.Fatal(err)
	}
	f, err := st.Fenced(fence, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// putWhileFenceMoves runs f.Put(entries) and moves fence on once the
// pipeline has written its first key (item:{1}); it returns what Put
// returned, after checking that Put either wrote everything or failed
// with ErrFenced.
func putWhileFenceMoves(t *testing.T, st, f *redisstore.Store, fence string, entries []redisstore.Entry) int {
	t.Helper()
	ctx := t.Context()
	done := make(chan struct{})
	var n int
	var putErr error
	go func() {
		defer close(done)
		n, putErr = f.Put(ctx, entries...)
	}()
	testutil.Eventually(t, 10*time.Second, func() error {
		if st.Client().Exists(ctx, redisstore.ItemKey(1)).Val() != 1 {
			return errors.New("pipeline not started")
		}
		return nil
	})
	if err := st.Client().Incr(ctx, fence).Err(); err != nil {
		t.Fatal(err)
	}
	<-done
	if putErr != nil && !errors.Is(putErr, redisstore.ErrFenced) {
		t.Fatalf("put: %v", putErr)
	}
	if (putErr == nil) != (n == len(entries)) {
		t.Fatalf("put wrote %d of %d with error %v", n, len(entries), putErr)
	}
	return n
}
