package preheat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/hot"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// Plan is a run's ordered ids cut into partitions, as stored in Redis.
type Plan struct {
	Run           string    `json:"run"`
	Owner         string    `json:"owner"` // the instance that made it
	Created       time.Time `json:"created"`
	Order         string    `json:"order"` // where the order came from
	Hot           int       `json:"hot"`   // leading ids that came from the hot lists
	Total         int       `json:"total"`
	PartitionSize int       `json:"partition_size"`
	Partitions    [][]int64 `json:"partitions"`
}

// idsPage is how many ids one catalog listing call asks for.
const idsPage = 10_000

// BuildPlan orders cfg's products (Only; else the hot top lists, then the
// rest of the catalog in id order) and cuts them into partitions. It
// writes nothing.
func BuildPlan(ctx context.Context, cfg Config) (*Plan, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return buildPlan(ctx, cfg, "")
}

func buildPlan(ctx context.Context, cfg Config, owner string) (*Plan, error) {
	p := &Plan{Run: cfg.Run, Owner: owner, Created: time.Now().UTC(), PartitionSize: cfg.PartitionSize}
	var order []int64
	seen := map[int64]bool{}
	add := func(id int64) {
		if id >= 1 && id <= catalog.MaxID && !seen[id] {
			seen[id] = true
			order = append(order, id)
		}
	}
	if cfg.Only != nil {
		for _, id := range cfg.Only {
			add(id)
		}
		p.Order = fmt.Sprintf("the %d ids given", len(order))
	} else {
		top, from, err := hotOrder(ctx, cfg)
		if err != nil {
			cfg.Log.Warn("preheat: no access statistics, catalog order only", "error", err)
		}
		var all []int64
		for after := int64(0); ; {
			ids, next, err := cfg.Source.ProductIDs(ctx, after, idsPage)
			if err != nil {
				return nil, fmt.Errorf("preheat: list the catalog: %w", err)
			}
			all = append(all, ids...)
			if next == 0 || len(ids) == 0 {
				break
			}
			after = next
		}
		n := len(all)
		// Hot ids the catalog does not have (requests for missing or
		// made-up ids are counted too) are left out.
		exists := make(map[int64]bool, n)
		for _, id := range all {
			exists[id] = true
		}
		for _, id := range top {
			if exists[id] {
				add(id)
			}
		}
		p.Hot = len(order)
		for _, id := range all {
			add(id)
		}
		if p.Hot > 0 {
			p.Order = fmt.Sprintf("%d ids of the hour and day top lists of %s, then the rest of the catalog (%d products) in id order", p.Hot, from, n)
		} else {
			p.Order = fmt.Sprintf("catalog id order (%d products; no access statistics)", n)
		}
	}
	p.Total = len(order)
	for start := 0; start < len(order); start += cfg.PartitionSize {
		p.Partitions = append(p.Partitions, order[start:min(start+cfg.PartitionSize, len(order))])
	}
	return p, nil
}

// hotOrder reads the hour then the day top list of the first hot service
// that answers, merged (hour first).
func hotOrder(ctx context.Context, cfg Config) ([]int64, string, error) {
	if len(cfg.HotURLs) == 0 {
		return nil, "", errors.New("no hot service configured")
	}
	var errs []error
	for _, base := range cfg.HotURLs {
		var ids []int64
		var failed error
		for _, period := range []string{hot.Hour, hot.Day} {
			got, err := topList(ctx, base, period)
			if err != nil {
				failed = err
				break
			}
			ids = append(ids, got...)
		}
		if failed == nil {
			return ids, base, nil
		}
		errs = append(errs, failed)
	}
	return nil, "", errors.Join(errs...)
}

var hotClient = &http.Client{Timeout: 3 * time.Second}

func topList(ctx context.Context, base, period string) ([]int64, error) {
	return resilience.Do(ctx, CmdHot, func(ctx context.Context) ([]int64, error) {
		u := strings.TrimRight(base, "/") + "/api/top?period=" + period + "&limit=" + strconv.Itoa(hot.StatsCapacity)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hotClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("hot %s: %w", base, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
		if err != nil {
			return nil, fmt.Errorf("hot %s: %w", base, err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("hot %s: top %s answered %d", base, period, resp.StatusCode)
		}
		var top struct {
			Top []hot.IDCount `json:"top"`
		}
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, fmt.Errorf("hot %s: decode top %s: %w", base, period, err)
		}
		ids := make([]int64, len(top.Top))
		for i, e := range top.Top {
			ids[i] = e.ID
		}
		return ids, nil
	}, nil)
}

// loadOrCreatePlan reads the run's plan, or makes it and stores it with
// SET NX; when another instance stored one first, that one is used.
func (r *runner) loadOrCreatePlan(ctx context.Context) (*Plan, error) {
	if p, err := r.readPlan(ctx); err != nil || p != nil {
		return p, err
	}
	p, err := buildPlan(ctx, r.cfg, r.owner)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("preheat: encode plan: %w", err)
	}
	set, err := redisDo(ctx, func(ctx context.Context) (bool, error) {
		return r.cfg.Store.Client().SetNX(ctx, r.keys.Plan(), b, runTTL).Result()
	})
	if err != nil {
		return nil, fmt.Errorf("preheat: store plan: %w", err)
	}
	if set {
		return p, nil
	}
	p, err = r.readPlan(ctx)
	if err == nil && p == nil {
		err = errNoPlan
	}
	return p, err
}

// readPlan returns the stored plan, nil when there is none.
func (r *runner) readPlan(ctx context.Context) (*Plan, error) {
	return ReadPlan(ctx, r.cfg.Store.Client(), r.cfg.Run)
}

// ReadPlan returns run's plan as stored in Redis, nil when there is none.
func ReadPlan(ctx context.Context, rdb redis.UniversalClient, run string) (*Plan, error) {
	b, err := redisDo(ctx, func(ctx context.Context) ([]byte, error) {
		b, err := rdb.Get(ctx, keysOf(run).Plan()).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("preheat: read plan: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%w: %w", errNoPlan, err)
	}
	if p.Run != run {
		return nil, fmt.Errorf("%w: it names run %q", errNoPlan, p.Run)
	}
	return &p, nil
}
