package testutil_test

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

func TestMustRedisAnswers(t *testing.T) {
	addr := testutil.MustRedis(t)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial redis at %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := c.Read(buf); err != nil || string(buf) != "+PONG\r\n" {
		t.Fatalf("PING answered %q, %v", buf, err)
	}
}

func TestMustKafkaSeedsCatalogTopics(t *testing.T) {
	addr := testutil.MustKafka(t)
	conn, err := kafkago.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial kfake: %v", err)
	}
	defer conn.Close()
	for _, topic := range catalog.Topics {
		t.Run(topic, func(t *testing.T) {
			parts, err := conn.ReadPartitions(topic)
			if err != nil {
				t.Fatalf("read partitions: %v", err)
			}
			if len(parts) != testutil.KafkaPartitions {
				t.Fatalf("%s has %d partitions, want %d", topic, len(parts), testutil.KafkaPartitions)
			}
		})
	}
}

func TestEventuallyPollsUntilTrue(t *testing.T) {
	start := time.Now()
	n := 0
	testutil.Eventually(t, 5*time.Second, func() error {
		n++
		if time.Since(start) < 30*time.Millisecond {
			return errors.New("not yet")
		}
		return nil
	})
	if n < 2 {
		t.Fatalf("fn called %d times, want it polled", n)
	}
}

func TestFreePortIsBindable(t *testing.T) {
	port := testutil.FreePort(t)
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d from FreePort is not bindable: %v", port, err)
	}
	ln.Close()
}

// FreePorts hands out distinct ports, each bindable: three processes
// started on them cannot collide with each other.
func TestFreePortsAreDistinctAndBindable(t *testing.T) {
	ports := testutil.FreePorts(t, 50)
	seen := map[int]bool{}
	for _, port := range ports {
		if seen[port] {
			t.Fatalf("port %d handed out twice: %v", port, ports)
		}
		seen[port] = true
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d from FreePorts is not bindable: %v", port, err)
		}
		ln.Close()
	}
}

func TestPollGivesUpWithTheLastError(t *testing.T) {
	errNotYet := errors.New("not yet")
	err := testutil.Poll(20*time.Millisecond, func() error { return errNotYet })
	if !errors.Is(err, errNotYet) {
		t.Fatalf("Poll = %v, want the condition's last error", err)
	}
}

func TestStopPollingEndsPollAtOnce(t *testing.T) {
	errGone := errors.New("the process exited")
	calls := 0
	err := testutil.Poll(time.Hour, func() error {
		calls++
		return testutil.StopPolling(errGone)
	})
	if !errors.Is(err, errGone) || calls != 1 {
		t.Fatalf("Poll = %v after %d calls, want the stop error after one", err, calls)
	}
}
