package preheat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/resilience"
)

// keys are a run's Redis keys. They share one hash tag ({<run>}), so the
// scripts below touch one slot.
type keys struct{ prefix string }

func keysOf(run string) keys { return keys{prefix: "dp:preheat:{" + run + "}:"} }

// Plan is the ordered ids of a run cut into partitions (JSON at Plan()).
func (k keys) Plan() string { return k.prefix + "plan" }

// Finished is set when every partition is done (JSON: time, owner).
func (k keys) Finished() string { return k.prefix + "finished" }

// Push is set by the instance that pushes the top pages to the app nodes.
func (k keys) Push() string { return k.prefix + "push" }

func (k keys) lease(i int) string { return k.prefix + "lease:" + strconv.Itoa(i) }
func (k keys) fence(i int) string { return k.prefix + "fence:" + strconv.Itoa(i) }

// Done is partition i's done marker: JSON DoneMarker.
func (k keys) Done(i int) string { return k.prefix + "done:" + strconv.Itoa(i) }

// Claims is partition i's claim history: a list of "<owner> <fence>".
func (k keys) Claims(i int) string { return k.prefix + "claims:" + strconv.Itoa(i) }

// KeyPrefix is the prefix of run's keys in Redis.
func KeyPrefix(run string) string { return keysOf(run).prefix }

// DoneKey is the done marker of partition i of run.
func DoneKey(run string, i int) string { return keysOf(run).Done(i) }

// ClaimsKey is the claim history of partition i of run.
func ClaimsKey(run string, i int) string { return keysOf(run).Claims(i) }

// PlanKey is the plan of run.
func PlanKey(run string) string { return keysOf(run).Plan() }

// DoneMarker is what a done marker holds.
type DoneMarker struct {
	Owner    string    `json:"owner"`
	Fence    int64     `json:"fence"`
	Products int       `json:"products"`
	Written  int       `json:"written"`
	At       time.Time `json:"at"`
}

// claimScript: KEYS lease, fence, done, claims; ARGV token, lease ms,
// owner, keep ms. -1: the partition is done; 0: leased by another;
// otherwise the new fencing token.
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
local f = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('RPUSH', KEYS[4], ARGV[3] .. ' ' .. f)
redis.call('PEXPIRE', KEYS[4], ARGV[4])
return f
`)

// renewScript: KEYS lease; ARGV token, lease ms. 1 while the lease is
// ours, 0 once it is not.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// releaseScript: KEYS lease; ARGV token. Deletes the lease if ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// doneScript: KEYS fence, done, lease; ARGV fence token, marker, lease
// token, keep ms. Sets the done marker only while the fence is ours and
// only once (1); 0: the fence moved on; -1: done already.
var doneScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[4]) then return -1 end
if redis.call('GET', KEYS[3]) == ARGV[3] then redis.call('DEL', KEYS[3]) end
return 1
`)

// claim is a partition this instance holds.
type claim struct {
	index int
	token string
	fence int64
}

// redisDo runs a coordination call as command preheat.redis.
func redisDo[T any](ctx context.Context, run func(context.Context) (T, error)) (T, error) {
	return resilience.Do(ctx, CmdRedis, run, nil)
}

func ms(d time.Duration) int64 { return max(1, d.Milliseconds()) }

// claimNext claims the first open partition in plan order. all reports
// that every partition is done; a nil claim with all false means every
// open partition is leased by someone else.
func (r *runner) claimNext(ctx context.Context) (c *claim, all bool, err error) {
	if err := r.refreshDone(ctx); err != nil {
		return nil, false, err
	}
	rdb := r.cfg.Store.Client()
	open := 0
	for i := range r.plan.Partitions {
		if r.doneParts[i].Load() {
			continue
		}
		open++
		token := randomToken()
		f, err := redisDo(ctx, func(ctx context.Context) (int64, error) {
			return claimScript.Run(ctx, rdb, []string{r.keys.lease(i), r.keys.fence(i), r.keys.Done(i), r.keys.Claims(i)},
				token, ms(r.cfg.Lease), r.owner, ms(runTTL)).Int64()
		})
		if err != nil {
			return nil, false, fmt.Errorf("preheat: claim partition %d: %w", i, err)
		}
		switch {
		case f < 0:
			r.doneParts[i].Store(true)
			open--
		case f > 0:
			return &claim{index: i, token: token, fence: f}, false, nil
		}
	}
	return nil, open == 0, nil
}

// refreshDone reads every done marker (one MGET: they share a slot).
func (r *runner) refreshDone(ctx context.Context) error {
	missing, err := r.undone(ctx)
	if err != nil {
		return err
	}
	open := make(map[int]bool, len(missing))
	for _, i := range missing {
		open[i] = true
	}
	for i := range r.doneParts {
		if !open[i] {
			r.doneParts[i].Store(true)
		}
	}
	return nil
}

// undone lists the partitions without a done marker.
func (r *runner) undone(ctx context.Context) ([]int, error) {
	var missing []int
	const chunk = 1000
	for start := 0; start < len(r.plan.Partitions); start += chunk {
		ks := make([]string, 0, chunk)
		for i := start; i < min(start+chunk, len(r.plan.Partitions)); i++ {
			ks = append(ks, r.keys.Done(i))
		}
		vals, err := redisDo(ctx, func(ctx context.Context) ([]any, error) {
			return r.cfg.Store.Client().MGet(ctx, ks...).Result()
		})
		if err != nil {
			return nil, fmt.Errorf("preheat: read done markers: %w", err)
		}
		for j, v := range vals {
			if v == nil {
				missing = append(missing, start+j)
			}
		}
	}
	return missing, nil
}

// renew keeps c's lease alive at a third of its TTL until ctx ends. When
// the lease is gone (taken over) or could not be renewed for a whole TTL,
// it cancels the partition with ErrLeaseLost.
func (r *runner) renew(ctx context.Context, lose context.CancelCauseFunc, c *claim) {
	t := time.NewTicker(r.cfg.Lease / 3)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := redisDo(ctx, func(ctx context.Context) (int64, error) {
			return renewScript.Run(ctx, r.cfg.Store.Client(), []string{r.keys.lease(c.index)}, c.token, ms(r.cfg.Lease)).Int64()
		})
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && n == 1:
			last = time.Now()
		case err == nil:
			lose(fmt.Errorf("%w: partition %d's lease is gone", ErrLeaseLost, c.index))
			return
		case time.Since(last) >= r.cfg.Lease:
			lose(fmt.Errorf("%w: partition %d's lease not renewed for %s: %v", ErrLeaseLost, c.index, r.cfg.Lease, err))
			return
		default:
			r.cfg.Log.Warn("preheat: renew lease", "partition", c.index, "error", err)
		}
	}
}

// release gives c's lease back (on a stop or a failure), so another
// instance can take the partition at once.
func (r *runner) release(c *claim) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := releaseScript.Run(ctx, r.cfg.Store.Client(), []string{r.keys.lease(c.index)}, c.token).Err(); err != nil {
		r.cfg.Log.Warn("preheat: release lease", "partition", c.index, "error", err)
	}
}

// markDone sets c's done marker if c's fence is still current; false when
// it moved on (the lease was taken over).
func (r *runner) markDone(ctx context.Context, c *claim, products, written int) (bool, error) {
	b, err := json.Marshal(DoneMarker{Owner: r.owner, Fence: c.fence, Products: products, Written: written, At: time.Now().UTC()})
	if err != nil {
		return false, err
	}
	n, err := redisDo(ctx, func(ctx context.Context) (int64, error) {
		return doneScript.Run(ctx, r.cfg.Store.Client(), []string{r.keys.fence(c.index), r.keys.Done(c.index), r.keys.lease(c.index)},
			c.fence, b, c.token, ms(runTTL)).Int64()
	})
	if err != nil {
		return false, fmt.Errorf("preheat: done marker of partition %d: %w", c.index, err)
	}
	if n < 0 {
		return false, fmt.Errorf("preheat: partition %d was done twice (fence %d)", c.index, c.fence)
	}
	return n == 1, nil
}

// finished reports whether the run is marked finished.
func (r *runner) finished(ctx context.Context) (bool, error) {
	n, err := redisDo(ctx, func(ctx context.Context) (int64, error) {
		return r.cfg.Store.Client().Exists(ctx, r.keys.Finished()).Result()
	})
	if err != nil {
		return false, fmt.Errorf("preheat: read the run's state: %w", err)
	}
	return n == 1, nil
}

// claimPush makes this instance the one that pushes pages to the app
// nodes, unless another is.
func (r *runner) claimPush(ctx context.Context) (bool, error) {
	return redisDo(ctx, func(ctx context.Context) (bool, error) {
		return r.cfg.Store.Client().SetNX(ctx, r.keys.Push(), r.owner, runTTL).Result()
	})
}

// finish marks the run finished and lets its keys expire after Keep.
func (r *runner) finish(ctx context.Context) error {
	b, _ := json.Marshal(map[string]any{"owner": r.owner, "at": time.Now().UTC()})
	rdb := r.cfg.Store.Client()
	_, err := redisDo(ctx, func(ctx context.Context) (struct{}, error) {
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.SetNX(ctx, r.keys.Finished(), b, r.cfg.Keep)
			p.PExpire(ctx, r.keys.Plan(), r.cfg.Keep)
			p.PExpire(ctx, r.keys.Push(), r.cfg.Keep)
			for i := range r.plan.Partitions {
				p.PExpire(ctx, r.keys.Done(i), r.cfg.Keep)
				p.PExpire(ctx, r.keys.Claims(i), r.cfg.Keep)
				p.PExpire(ctx, r.keys.fence(i), r.cfg.Keep)
			}
			return nil
		})
		return struct{}{}, err
	})
	return err
}

// errNoPlan: the plan key holds something unreadable.
var errNoPlan = errors.New("preheat: the run's plan in Redis is unreadable")
