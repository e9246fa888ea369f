// Package testutil holds helpers shared by detailpage's tests: real
// dependencies started per test (redis-server, an in-process Kafka-protocol
// broker), free ports, and polling with a deadline instead of sleeping.
//
// Every helper takes a testing.TB, calls tb.Helper() and registers its own
// cleanup, so a test reads as a list of MustX calls.
package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// redisServerPath is where the Debian package installs redis-server.
const redisServerPath = "/usr/bin/redis-server"

// KafkaPartitions is how many partitions MustKafka gives each catalog topic.
const KafkaPartitions = 4

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("testutil: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// FreePorts returns n distinct unused loopback ports: the listeners are
// held until all n are picked, as FreePort called n times would not (the
// kernel may hand a just-closed port out again).
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("testutil: find a free port: %v", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Eventually calls fn every few milliseconds until it returns nil, and fails
// the test with fn's last error if that does not happen within timeout. It
// calls tb.Fatalf: use it from the test's own goroutine only (elsewhere,
// Poll and report its error with tb.Errorf).
func Eventually(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	if err := Poll(timeout, fn); err != nil {
		tb.Fatalf("testutil: %v", err)
	}
}

// Poll calls fn every few milliseconds (5 ms, doubling up to 100 ms) until
// it returns nil, and returns nil then; after timeout it returns fn's last
// error. It is the one polling loop of the tests, safe in any goroutine.
func Poll(timeout time.Duration, fn func() error) error {
	return poll(timeout, 5*time.Millisecond, 100*time.Millisecond, fn)
}

// PollEvery is Poll at a fixed interval, for a wait that is itself the
// figure measured (the interval bounds the error of the measurement).
func PollEvery(timeout, interval time.Duration, fn func() error) error {
	return poll(timeout, interval, interval, fn)
}

func poll(timeout, first, most time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	poll := first
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var final stopPolling
		if errors.As(err, &final) {
			return final.err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met within %v: %w", timeout, err)
		}
		time.Sleep(poll) // a poll interval, not synchronization
		poll = min(poll*2, most)
	}
}

// StopPolling wraps an error that ends Poll (and Eventually) at once: the
// condition can never be met any more (the process under test exited).
func StopPolling(err error) error { return stopPolling{err} }

type stopPolling struct{ err error }

func (e stopPolling) Error() string { return e.err.Error() }
func (e stopPolling) Unwrap() error { return e.err }

// MustRedis starts a real redis-server on a free loopback port, with its
// files in a temporary directory and persistence off, waits until it answers
// PING and stops it (SIGTERM, then wait) when the test ends. It returns the
// server's host:port. A missing redis-server fails the test: these tests
// exist to run against the real thing.
func MustRedis(tb testing.TB) string {
	tb.Helper()
	if _, err := os.Stat(redisServerPath); err != nil {
		tb.Fatalf("testutil: redis-server not found at %s (apt-get install redis-server): %v", redisServerPath, err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port can be taken before redis binds it
		addr, err := startRedis(tb)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	tb.Fatalf("testutil: start redis-server: %v", lastErr)
	return ""
}

func startRedis(tb testing.TB) (string, error) {
	tb.Helper()
	dir := tb.TempDir()
	port := FreePort(tb)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	logFile := filepath.Join(dir, "redis.log")
	cmd := exec.Command(redisServerPath,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", logFile,
	)
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", redisServerPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	err := Poll(10*time.Second, func() error {
		select {
		case werr := <-exited:
			exited <- werr // let stop see it
			return StopPolling(fmt.Errorf("exited (%v)", werr))
		default:
		}
		return ping(addr)
	})
	if err != nil {
		stop() // a no-op for a server that exited
		return "", fmt.Errorf("redis-server on %s: %w; log:\n%s", addr, err, readTail(logFile))
	}
	tb.Cleanup(stop)
	return addr, nil
}

// ping sends one RESP PING and expects +PONG.
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func readTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// MustKafka starts an in-process Kafka-protocol broker (franz-go's kfake,
// one broker on a free loopback port) with every topic of catalog.Topics
// created with KafkaPartitions partitions, and closes it when the test ends.
// It returns the broker's host:port.
func MustKafka(tb testing.TB) string {
	tb.Helper()
	_, addr := MustKafkaCluster(tb)
	return addr
}

// MustKafkaCluster is MustKafka that also returns the kfake cluster, for
// tests that inject broker faults (Cluster.ControlKey).
func MustKafkaCluster(tb testing.TB) (*kfake.Cluster, string) {
	tb.Helper()
	cluster, err := kfake.NewCluster(
		kfake.NumBrokers(1), // port 0: the kernel picks a free port, no race
		kfake.SeedTopics(KafkaPartitions, catalog.Topics...),
		kfake.DefaultNumPartitions(KafkaPartitions),
		kfake.ClusterID("detailpage-test"),
		kfake.GroupMinSessionTimeout(time.Second),
	)
	if err != nil {
		tb.Fatalf("testutil: start kfake broker: %v", err)
	}
	tb.Cleanup(cluster.Close)
	addrs := cluster.ListenAddrs()
	if len(addrs) != 1 {
		tb.Fatalf("testutil: kfake listens on %v, want one address", addrs)
	}
	Eventually(tb, 5*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addrs[0], 200*time.Millisecond)
		if err != nil {
			return errors.Join(errors.New("kfake not accepting connections"), err)
		}
		return c.Close()
	})
	return cluster, addrs[0]
}
