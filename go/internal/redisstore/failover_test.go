package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// startProc runs a redis-server (or Sentinel) argv until the test ends.
func startProc(tb testing.TB, dir, name string, argv ...string) *exec.Cmd {
	tb.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("redis-server", argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd
}

func redisArgs(dir string, port int, extra ...string) []string {
	return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no",
		"--protected-mode", "no", "--repl-diskless-sync-delay", "0"}, extra...)
}

// TestFailoverKeepsNewestAndRetriesInFlight runs main, a replica and one
// Sentinel (quorum 1), kills main while writers keep writing through a
// Sentinel-backed Store, and checks that every write returns success once
// the replica is promoted and that no older version replaces a newer one
// across the promotion.
func TestFailoverKeepsNewestAndRetriesInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis and a Sentinel, waits for a failover")
	}
	dir := t.TempDir()
	ports := testutil.FreePorts(t, 3)
	mainPort, replicaPort, sentinelPort := ports[0], ports[1], ports[2]
	for _, d := range []string{"main", "replica", "sentinel"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	main := startProc(t, dir, "main", redisArgs(filepath.Join(dir, "main"), mainPort)...)
	startProc(t, dir, "replica", redisArgs(filepath.Join(dir, "replica"), replicaPort, "--replicaof", "127.0.0.1", strconv.Itoa(mainPort))...)
	replica := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", replicaPort)})
	defer replica.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		info, err := replica.Info(t.Context(), "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica not in sync: %v", err)
		}
		return nil
	})
	conf := filepath.Join(dir, "sentinel", "sentinel.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "bind 127.0.0.1\nport %d\nprotected-mode no\ndir %s\n"+
		"sentinel monitor m 127.0.0.1 %d 1\nsentinel down-after-milliseconds m 1000\nsentinel failover-timeout m 5000\n",
		sentinelPort, filepath.Join(dir, "sentinel"), mainPort), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, dir, "sentinel", conf, "--sentinel")
	sentinel := fmt.Sprintf("127.0.0.1:%d", sentinelPort)
	st, err := redisstore.Open(redisstore.SentinelSpec("m", []string{sentinel}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testutil.Eventually(t, 10*time.Second, func() error { return st.Ping(t.Context()) })

	ctx := t.Context()
	before, err := st.RunID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// a realtime value too (its script loaded on this main only)
	MustPutRealtime(t, st, time.Now(), 1, priceRec(1, 2, "2.00"))
	MustPut(t, st, 1, redisstore.Entry{Key: "k", Version: 5, Value: doc(5, "five")})
	// Version 5 (and the realtime value written before it) is on the replica before main dies (WAIT would count the
	// pool connection it runs on, not the one Put wrote on).
	testutil.Eventually(t, 5*time.Second, func() error {
		v, err := replica.Get(ctx, "k").Bytes()
		if err != nil || redisstore.VersionOf(v) != 5 {
			return fmt.Errorf("replica: k = %q, %v", v, err)
		}
		return nil
	})

	// Writers keep writing while main dies; each write must succeed once
	// the replica is promoted (Put retries; a caller retries a failed call,
	// as the sync service's retry topic does).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mu sync.Mutex
	var failed []error
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d:%d", w, i)
				deadline := time.Now().Add(20 * time.Second)
				for {
					cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					_, err := st.Put(cctx, redisstore.Entry{Key: key, Version: 1, Value: doc(1, key)})
					cancel()
					if err == nil {
						break
					}
					if time.Now().After(deadline) {
						mu.Lock()
						failed = append(failed, fmt.Errorf("%s: %w", key, err))
						mu.Unlock()
						return
					}
				}
				time.Sleep(10 * time.Millisecond) // pace, not synchronisation
			}
		})
	}
	killed := time.Now()
	if err := main.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	testutil.Eventually(t, 20*time.Second, func() error {
		addr, err := sc.GetMasterAddrByName(ctx, "m").Result()
		if err != nil {
			return err
		}
		if addr[1] != strconv.Itoa(replicaPort) {
			return fmt.Errorf("master still %v", addr)
		}
		return nil
	})
	promoted := time.Since(killed)
	// The first write after the promotion.
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := st.Put(ctx, redisstore.Entry{Key: "after", Version: 1, Value: doc(1, "after")})
		return err
	})
	t.Logf("main killed: promoted after %s, first write after %s", promoted.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("writes never landed across the failover: %v", errors.Join(failed...))
	}

	// The run id tells the sync service that main changed (its repair).
	after, err := st.RunID(ctx)
	if err != nil || after == before {
		t.Fatalf("run id after the promotion: %q, %v; before: %q", after, err, before)
	}

	// Never older over newer across the promotion.
	MustPut(t, st, 0, redisstore.Entry{Key: "k", Version: 4, Value: doc(4, "four")})
	if got := redisstore.VersionOf(MustGet(t, st, "k")); got != 5 {
		t.Fatalf("after the promotion k has version %d, want 5", got)
	}
	MustPut(t, st, 1, redisstore.Entry{Key: "k", Version: 6, Value: doc(6, "six")})
	if got := redisstore.VersionOf(MustGet(t, st, "k")); got != 6 {
		t.Fatalf("k has version %d, want 6", got)
	}
	// Realtime values likewise, on a main that may not know the script yet,
	// with one stream entry per write that took effect.
	MustPutRealtime(t, st, time.Now(), 0, priceRec(1, 1, "1.00"))
	MustPutRealtime(t, st, time.Now(), 1, priceRec(1, 3, "3.00"))
	if got := strings.Join(MustStreamEntries(t, st), " "); got != "1/price/2 1/price/3" {
		t.Fatalf("realtime stream after the promotion: %q", got)
	}
}

func TestOpenSentinelSpec(t *testing.T) {
	for _, bad := range []string{"sentinel://", "sentinel://m@", "sentinel://@127.0.0.1:1"} {
		if _, err := redisstore.Open(bad); err == nil {
			t.Errorf("Open(%q): no error", bad)
		}
	}
	if got, want := redisstore.SentinelSpec("m", []string{"a:1", "b:2"}), "sentinel://m@a:1,b:2"; got != want {
		t.Errorf("SentinelSpec = %q, want %q", got, want)
	}
}

// TestHealthForgivesAShortOutage: a service's health check passes through
// a failover (HealthGrace after the last good ping), but never before a
// first good ping.
func TestHealthForgivesAShortOutage(t *testing.T) {
	dir := t.TempDir()
	port := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	never, err := redisstore.Open(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer never.Close()
	if err := never.Health(t.Context()); err == nil {
		t.Fatal("health passed with no server ever reached")
	}
	srv := startProc(t, dir, "redis", redisArgs(dir, port)...)
	st, err := redisstore.Open(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	testutil.Eventually(t, 5*time.Second, func() error { return st.Health(t.Context()) })
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if st.Ping(t.Context()) == nil {
			return errors.New("server still answers")
		}
		return nil
	})
	if err := st.Health(t.Context()); err != nil {
		t.Fatalf("health failed right after the server went away: %v", err)
	}
}
