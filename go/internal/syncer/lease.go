package syncer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// lease is a Redis lease: SET key token NX PX, renewed while held, deleted
// only by its holder (the token is compared in a script).
type lease struct {
	rdb   redis.UniversalClient
	key   string
	token string
	ttl   time.Duration
}

// errLeaseLost ends the work of a holder whose lease expired or was taken.
var errLeaseLost = errors.New("sync: lease lost")

var (
	renewScript   = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`)
	releaseScript = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)
)

// acquireLease takes key for ttl; nil (and no error) when another holds it.
func acquireLease(ctx context.Context, rdb redis.UniversalClient, key string, ttl time.Duration) (*lease, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	l := &lease{rdb: rdb, key: key, token: hex.EncodeToString(b), ttl: ttl}
	ok, err := rdb.SetNX(ctx, key, l.token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("sync: lease %s: %w", key, err)
	}
	if !ok {
		return nil, nil
	}
	return l, nil
}

// keep renews the lease every third of its TTL until stop is called; when
// a renewal finds the lease gone it cancels the holder's work (lost).
// stop ends the renewals and releases the lease.
func (l *lease) keep(ctx context.Context, lost context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			n, err := renewScript.Run(ctx, l.rdb, []string{l.key}, l.token, l.ttl.Milliseconds()).Int()
			if err == nil && n == 0 {
				lost(errLeaseLost)
				return
			}
			// an error: try again at the next tick, while the TTL lasts
		}
	}()
	return func() {
		close(done)
		<-ended
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = releaseScript.Run(rctx, l.rdb, []string{l.key}, l.token).Err() // else it expires
	}
}
