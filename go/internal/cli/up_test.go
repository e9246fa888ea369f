package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/topology"
)

// What `detailpage up` prints for each supervisor event: the exit status
// and the log to read, and a crash loop that stands out.
func TestDescribeEvent(t *testing.T) {
	tests := []struct {
		e    topology.Event
		want []string
	}{
		{
			topology.Event{Component: "app1", Kind: topology.EventExited, Exit: "signal: killed", Restart: 1, Wait: 100 * time.Millisecond, LogPath: "/v/logs/app1.log"},
			[]string{"app1 exited unexpectedly (signal: killed); restart 1 in 100ms; see /v/logs/app1.log"},
		},
		{
			topology.Event{Component: "redis-main", Kind: topology.EventExited, Exit: "signal: killed", LogPath: "/v/logs/redis-main.log"},
			[]string{"redis-main exited unexpectedly (signal: killed) and is not supervised: it stays down; see /v/logs/redis-main.log"},
		},
		{
			topology.Event{Component: "app1", Kind: topology.EventRestarted, Restart: 2, Down: 1234567 * time.Microsecond},
			[]string{"app1 restarted (restart 2) and healthy again after 1.235s down"},
		},
		{
			topology.Event{Component: "sync", Kind: topology.EventCrashLoop, Exit: "exit status 3", Restart: 5, LogPath: "/v/logs/sync.log"},
			[]string{"*** CRASH LOOP: sync exited again (exit status 3) after 5 restarts", "left down; the rest keep running", "/v/logs/sync.log"},
		},
	}
	for _, tt := range tests {
		got := describeEvent(tt.e)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("describeEvent(%+v) = %q, want it to contain %q", tt.e, got, w)
			}
		}
	}
}
