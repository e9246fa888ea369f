package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/syncer"
)

// SyncLag is how many change events the sync service has not committed
// yet, over the edit, refresh and retry topics.
func (t *Topology) SyncLag(ctx context.Context) (int64, error) {
	brokers := []string{Addr(t.cfg.Ports.Kafka)}
	var total int64
	for _, topic := range []string{catalog.TopicHigh, catalog.TopicLow, catalog.TopicRetry} {
		lag, err := kafka.GroupLag(ctx, brokers, syncer.GroupFor(SyncGroup, topic), topic)
		if err != nil {
			return 0, err
		}
		total += lag
	}
	return total, nil
}

// SyncGroup is the consumer group of the topology's sync service.
const SyncGroup = "detailpage-sync"

// WaitWarm waits until every change queued at the source has been applied
// by the sync service (on the first start: the whole catalog) and the sync
// service has marked Redis main warm (syncer.WarmKey: the catalog is
// there, or a cold main was recovered), printing progress, so the first
// page view is a Redis hit.
func (t *Topology) WaitWarm(ctx context.Context, limit time.Duration) error {
	stdout := t.cfg.Progress
	start := time.Now()
	var first, last int64 = -1, -1
	applied, saidCold := false, false
	for {
		pending, perr := outboxPending(ctx, URL(t.cfg.Ports.Source), t.cfg.AdminToken)
		lag, err := t.SyncLag(ctx)
		lag += pending
		if err == nil && perr == nil {
			if first < 0 {
				first = lag
			}
			if lag == 0 {
				if first > 0 && !applied {
					fmt.Fprintf(stdout, "  cache warm: %d changes applied in %s\n", first, time.Since(start).Round(100*time.Millisecond))
				}
				applied = true
				// The sync service marks main warm once it has checked the
				// catalog is there, or after recovering a cold main.
				marked, cold, merr := t.MainWarm(ctx)
				switch {
				case merr != nil:
				case marked:
					return nil
				case cold && !saidCold:
					fmt.Fprintf(stdout, "  redis main is cold: the sync service preheats the hottest products and queues a full refresh (see %s)\n", t.Component(Sync).LogPath())
					saidCold = true
				}
			} else if lag != last {
				fmt.Fprintf(stdout, "  warming cache: %d changes waiting\n", lag)
			}
			last = lag
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(start) > limit {
			return fmt.Errorf("topology: cache not warm after %s (%d changes waiting); see %s", limit, last, t.Component(Sync).LogPath())
		}
	}
}

// outboxPending asks the source service how many changes wait in its outbox.
func outboxPending(ctx context.Context, sourceURL, token string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sourceURL+"/_admin/stats", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("source stats: %s", resp.Status)
	}
	var stats struct {
		OutboxPending int64 `json:"outbox_pending"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		return 0, err
	}
	return stats.OutboxPending, nil
}

// MainWarm reads whether Redis main carries the warm marker, and whether
// a sync instance holds the lease of a cold recovery.
func (t *Topology) MainWarm(ctx context.Context) (marked, recovering bool, err error) {
	rdb := redis.NewClient(&redis.Options{Addr: Addr(t.mainPort()), MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	var m, c *redis.IntCmd
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		m, c = p.Exists(ctx, syncer.WarmKey), p.Exists(ctx, syncer.ColdLeaseKey)
		return nil
	}); err != nil {
		return false, false, err
	}
	return m.Val() > 0, c.Val() > 0, nil
}
