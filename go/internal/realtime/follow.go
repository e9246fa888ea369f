package realtime

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
)

// followRetry is the wait after the dp:rt stream failed to answer.
const followRetry = 500 * time.Millisecond

// follow reads the dp:rt stream on Redis main (one entry per realtime
// write that took effect: id, dim, v) and outdates the local entries of
// the parts it names, so an edit is answered live at once instead of after
// --fresh. When the stream fails (an error, a reconnect, a failover) the
// follower cannot know what it missed: it outdates every entry, once when
// it loses the stream and once when it has it back.
func (s *Service) follow(ctx context.Context) {
	last := "$"
	lost := false
	for ctx.Err() == nil {
		res, err := s.store.Client().XRead(ctx, &redis.XReadArgs{
			Streams: []string{redisstore.RealtimeStream, last}, Count: 512, Block: time.Second,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			if ctx.Err() != nil {
				return
			}
			if !lost {
				lost = true
				s.resync()
				s.log.Warn("realtime: dp:rt stream unavailable; local entries outdated", "error", err)
			}
			_ = backoff.Sleep(ctx, followRetry) // ctx done: the loop ends
			continue
		}
		if lost {
			lost = false
			s.resync()
			s.log.Info("realtime: dp:rt stream back; local entries outdated")
		}
		for _, st := range res {
			for _, msg := range st.Messages {
				last = msg.ID
				s.apply(msg.Values)
			}
			if n := len(st.Messages); n > 0 {
				s.lag.Set(lagOf(st.Messages[n-1].ID, s.now()).Seconds())
			}
		}
	}
}

// resync outdates every local entry.
func (s *Service) resync() {
	s.gen.Add(1)
	s.resyncs.Inc()
}

// apply handles one dp:rt entry: the local entry of that part, if older,
// is outdated, and the version is remembered for live answers still on
// their way.
func (s *Service) apply(fields map[string]any) {
	idStr, _ := fields["id"].(string)
	dim, _ := fields["dim"].(string)
	vStr, _ := fields["v"].(string)
	id, err1 := strconv.ParseInt(idStr, 10, 64)
	v, err2 := strconv.ParseInt(vStr, 10, 64)
	p := -1
	for i, d := range partDims {
		if catalog.Dimension(dim) == d {
			p = i
		}
	}
	if err1 != nil || err2 != nil || p < 0 {
		s.log.Debug("realtime: dp:rt entry ignored", "fields", fields)
		return
	}
	s.notes.Inc()
	k := key{id, p}
	if prev, ok := s.announced.Peek(k); !ok || v > prev {
		s.announced.Add(k, v)
	}
	if e, ok := s.cache.Peek(k); ok && e.val.version < v {
		e.invalid.Store(true)
	}
}

// lagOf is how long ago the stream entry id ("<unix ms>-<seq>") was added.
func lagOf(id string, now time.Time) time.Duration {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0
	}
	return max(0, now.Sub(time.UnixMilli(n)))
}
