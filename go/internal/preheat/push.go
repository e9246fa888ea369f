package preheat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/detailpage/detailpage/go/internal/resilience"
)

// pushConcurrency is how many pages are pushed into one app node at once.
const pushConcurrency = 8

// pushGiveUp: a node that failed this many pushes in a row is skipped for
// the rest of the push (down, or not taking admin calls).
const pushGiveUp = 5

var pushClient = &http.Client{
	Timeout:   2 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: pushConcurrency, IdleConnTimeout: 10 * time.Second},
}

// push asks every app node for the top PushTop pages of the plan through
// GET /_admin/page/<id>, which loads each into the node's L1/L2 through its
// normal levels. A node that fails is logged and skipped; it is never
// fatal. It returns the pages pushed (summed over nodes).
func (r *runner) push(ctx context.Context) int {
	var top []int64
	for _, part := range r.plan.Partitions {
		for _, id := range part {
			if len(top) == r.cfg.PushTop {
				break
			}
			top = append(top, id)
		}
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	for _, node := range r.cfg.AppNodes {
		wg.Go(func() {
			n, err := pushNode(ctx, node, r.cfg.AdminToken, top)
			total.Add(int64(n))
			if err != nil {
				r.cfg.Log.Warn("preheat: push to app node failed", "node", node, "pushed", n, "of", len(top), "error", err)
				return
			}
			r.cfg.Log.Info("preheat: pushed pages to app node", "node", node, "pages", n)
		})
	}
	wg.Wait()
	return int(total.Load())
}

// pushNode pushes ids into one node; it stops after pushGiveUp failures in
// a row and returns the last error then.
func pushNode(ctx context.Context, node, token string, ids []int64) (int, error) {
	base := strings.TrimRight(node, "/")
	var pushed, failedRow atomic.Int64
	var lastErr atomic.Value
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pushConcurrency)
	for _, id := range ids {
		if failedRow.Load() >= pushGiveUp || gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			_, err := resilience.Do(gctx, CmdPush, func(ctx context.Context) (struct{}, error) {
				return struct{}{}, pushPage(ctx, base, token, id)
			}, nil)
			var notFound resilience.Permanent
			if errors.As(err, &notFound) {
				return nil // the product does not exist: nothing to warm, the node answered
			}
			if err != nil {
				failedRow.Add(1)
				lastErr.Store(err)
				return nil
			}
			failedRow.Store(0)
			pushed.Add(1)
			return nil
		})
	}
	_ = g.Wait()
	if err, _ := lastErr.Load().(error); err != nil && failedRow.Load() >= pushGiveUp {
		return int(pushed.Load()), fmt.Errorf("gave up after %d failures in a row: %w", pushGiveUp, err)
	}
	return int(pushed.Load()), ctx.Err()
}

func pushPage(ctx context.Context, base, token string, id int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_admin/page/"+strconv.FormatInt(id, 10), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := pushClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		// a product that does not exist: nothing to warm
		return resilience.Permanent{Err: fmt.Errorf("page %d: not found", id)}
	}
	return fmt.Errorf("page %d: app node answered %d", id, resp.StatusCode)
}
