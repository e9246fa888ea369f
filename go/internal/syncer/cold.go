package syncer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/kafka"
	"github.com/detailpage/detailpage/go/internal/preheat"
	"github.com/detailpage/detailpage/go/internal/redisstore"
)

// Cold detection (docs/architecture.md, "Cold Redis main").
//
// Redis main can come back empty: a FLUSHALL, a failover to a node that
// lost its data, a restart without its AOF. Nothing in the change pipeline
// would notice: every page would go down to the source services, through
// the direct-data service, until someone queued a full refresh. The sync
// service notices instead. The marker key WarmKey is set on main once the
// catalog is known loaded; every ColdCheck (and at once when main's run id
// changes) the watcher reads it and DBSIZE:
//
//   - marker there and DBSIZE at least half of what it was when the marker
//     was set: warm, nothing to do;
//   - otherwise, while a load is under way (a preheat run announced on
//     main, changes in the source's outbox, or on the refresh topic not
//     yet applied by the sync group): loading, wait for it;
//   - otherwise, when (a sample of) the catalog's pages are in Redis: the
//     load finished, set the marker (the first start sets it this way);
//   - otherwise: cold. One line "redis main is cold", a metric, then, under
//     a lease so that one sync instance does it, the recovery: preheat the
//     hot services' top products in-process (hottest first) while a full
//     refresh is queued at the source for the rest (catalog.changes.low),
//     and set the marker once that refresh is applied.

// WarmKey is the marker of a loaded catalog on Redis main; its value is
// a Marker as JSON.
const WarmKey = "dp:warm"

// ColdLeaseKey is the lease of the sync instance recovering a cold main
// (there while a recovery runs).
const ColdLeaseKey = "dp:cold:lease"

// coldLeaseTTL is the recovery lease's TTL; it is renewed at a third.
const coldLeaseTTL = 10 * time.Second

// DefaultColdCheck is how often the watcher checks main by default.
const DefaultColdCheck = 250 * time.Millisecond

// coldTop is how many ids of each period (hour, then day) the recovery
// preheats ahead of the refresh: twice the 1,000 that must be back first,
// so that the top 1,000 of a moment ago is in it.
const coldTop = 2000

// coldPartition and coldWorkers shape the preheat of a recovery: small
// partitions (a batch or two each) worked on eight at a time, so that the
// hottest ids are shared by every worker from the first moment.
const (
	coldPartition = 125
	coldWorkers   = 8
)

// coldSample bounds the catalog ids checked for their page in Redis when
// deciding whether a load finished.
const coldSample = 2000

// loadedMin is the share of the sampled pages that must be in Redis for
// the catalog to count as loaded (a product whose change is in the DLQ must
// not make every check cold).
const loadedMin = 0.99

// recoveryBackoff spaces the recoveries of one cold episode.
var recoveryBackoff = backoff.Policy{Base: 30 * time.Second, Max: 10 * time.Minute}

// keysShare: with the marker there, DBSIZE below this share of the keys
// at marking time is cold.
const keysShare = 0.5

// Marker is WarmKey's value.
type Marker struct {
	At       time.Time `json:"at"`
	Products int       `json:"products"` // products in the catalog when marked
	Keys     int64     `json:"keys"`     // DBSIZE when marked
	Reason   string    `json:"reason"`   // "loaded": a load was applied; "recovered": after a cold main
}

// ReadMarker reads WarmKey on main: ok is false when it is not there.
func ReadMarker(ctx context.Context, rdb redis.UniversalClient) (m Marker, ok bool, err error) {
	v, err := rdb.Get(ctx, WarmKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return Marker{}, false, nil
	}
	if err != nil {
		return Marker{}, false, fmt.Errorf("sync: read %s: %w", WarmKey, err)
	}
	if err := json.Unmarshal(v, &m); err != nil {
		// Not ours (set by hand): a marker all the same, without a size.
		return Marker{}, true, nil
	}
	return m, true, nil
}

// coldState is what one check found.
type coldState int

const (
	stateWarm coldState = iota
	stateLoading
	stateLoaded // load finished: set the marker
	stateCold
)

// watchCold checks main every ColdCheck and at once on a kick (main's run
// id changed), until ctx ends.
func (s *Service) watchCold(ctx context.Context) {
	t := time.NewTicker(s.cfg.ColdCheck)
	defer t.Stop()
	var (
		episode    bool      // in a cold (or loading) episode: logged once
		coldAt     time.Time // when this cold episode was seen
		failures   int
		recoveries int       // recoveries run in this episode
		nextTry    time.Time // a recovery that did not make main warm waits before the next
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.coldKick:
		}
		st, m, err := s.checkCold(ctx)
		if err != nil {
			if failures++; failures == 1 && ctx.Err() == nil {
				s.log.Warn("cannot check whether redis main is cold", "error", err)
			}
			continue
		}
		failures = 0
		if st == stateWarm && !coldAt.IsZero() {
			// The marker outlived the data (DBSIZE fell) and the keys are
			// back: mark the recovery.
			st = stateLoaded
		}
		switch st {
		case stateWarm:
			episode, recoveries, nextTry = false, 0, time.Time{}
			s.m.warm.Set(1)
		case stateLoading:
			if !episode {
				s.log.Info("redis main not marked warm: a load is under way; waiting for it", "marker", WarmKey)
				episode = true
			}
		case stateLoaded:
			reason := "loaded"
			if !coldAt.IsZero() {
				reason = "recovered" // by this instance or another
			}
			m.Reason = reason
			if err := s.setMarker(ctx, m); err != nil {
				s.log.Warn("cannot set the warm marker", "error", err)
				continue
			}
			attrs := []any{"marker", WarmKey, "products", m.Products, "keys", m.Keys, "reason", reason}
			if !coldAt.IsZero() {
				attrs = append(attrs, "cold_for", time.Since(coldAt).Round(time.Millisecond).String())
			}
			s.log.Info("redis main is warm: catalog loaded", attrs...)
			s.m.warm.Set(1)
			episode, coldAt, recoveries, nextTry = false, time.Time{}, 0, time.Time{}
		case stateCold:
			if coldAt.IsZero() {
				coldAt = time.Now()
				s.log.Warn("redis main is cold", "marker", WarmKey, "keys", m.Keys, "products", m.Products)
				s.m.cold.Inc()
				s.m.warm.Set(0)
			}
			episode = true
			if time.Now().Before(nextTry) {
				continue
			}
			ok, err := s.recoverCold(ctx, coldAt)
			if err != nil {
				s.log.Warn("recovery of a cold redis main failed; trying again", "error", err)
				continue
			}
			if ok {
				// A recovery whose refresh did not bring the catalog back
				// (products failing at the source) is not run again at once:
				// each one is a full refresh.
				recoveries++
				nextTry = time.Now().Add(recoveryBackoff.Delay(recoveries))
			}
		}
	}
}

// checkCold reads the marker, DBSIZE and, when not warm, whether a load is
// under way and how much of the catalog is in Redis. m carries the sizes
// a new marker would have.
func (s *Service) checkCold(ctx context.Context) (coldState, Marker, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rdb := s.store.Client()
	marker, marked, err := ReadMarker(ctx, rdb)
	if err != nil {
		return 0, Marker{}, err
	}
	keys, err := rdb.DBSize(ctx).Result()
	if err != nil {
		return 0, Marker{}, fmt.Errorf("sync: dbsize: %w", err)
	}
	if marked && float64(keys) >= keysShare*float64(marker.Keys) {
		return stateWarm, Marker{Products: marker.Products, Keys: keys}, nil
	}
	loading, err := s.loading(ctx)
	if err != nil {
		return 0, Marker{}, err
	}
	m := Marker{Keys: keys}
	if loading {
		return stateLoading, m, nil
	}
	ids, err := s.catalogIDs(ctx)
	if err != nil {
		return 0, Marker{}, err
	}
	m.Products = len(ids)
	if int64(len(ids)) > keys {
		return stateCold, m, nil // every product has at least its page key
	}
	share, err := s.loadedShare(ctx, ids)
	if err != nil {
		return 0, Marker{}, err
	}
	if share >= loadedMin {
		return stateLoaded, m, nil
	}
	return stateCold, m, nil
}

// loading reports whether a load is under way: a preheat run works on
// main (preheat.ActiveKey: recovering beside it would load the same
// products from the sources twice), changes wait in the source's outbox,
// or the sync group has not applied all of the refresh topic. (Edits on
// catalog.changes.high are no load, and failed changes waiting on
// catalog.retry may wait for minutes: neither holds a recovery up.)
func (s *Service) loading(ctx context.Context) (bool, error) {
	if n, err := s.store.Client().Exists(ctx, preheat.ActiveKey).Result(); err != nil {
		return false, fmt.Errorf("sync: exists %s: %w", preheat.ActiveKey, err)
	} else if n > 0 {
		return true, nil
	}
	pending, err := s.outboxPending(ctx)
	if err != nil {
		return false, err
	}
	if pending > 0 {
		return true, nil
	}
	lag, err := kafka.GroupLag(ctx, s.cfg.Brokers, GroupFor(s.cfg.Group, catalog.TopicLow), catalog.TopicLow)
	if err != nil {
		return false, fmt.Errorf("sync: lag of %s: %w", catalog.TopicLow, err)
	}
	return lag > 0, nil
}

// catalogIDs lists every product id at the source.
func (s *Service) catalogIDs(ctx context.Context) ([]int64, error) {
	var all []int64
	after := int64(0)
	for {
		ids, next, err := s.src.ProductIDs(ctx, after, 100_000)
		if err != nil {
			return nil, fmt.Errorf("sync: list product ids: %w", err)
		}
		all = append(all, ids...)
		if next == 0 {
			return all, nil
		}
		after = next
	}
}

// loadedShare is the share of (a sample of) ids whose page key is in Redis.
func (s *Service) loadedShare(ctx context.Context, ids []int64) (float64, error) {
	if len(ids) == 0 {
		return 1, nil
	}
	step := max(1, len(ids)/coldSample)
	var sample []int64
	for i := 0; i < len(ids); i += step {
		sample = append(sample, ids[i])
	}
	rdb := s.store.Client()
	cmds := make([]*redis.IntCmd, len(sample))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range sample {
			cmds[i] = p.Exists(ctx, redisstore.ItemKey(id))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sync: exists: %w", err)
	}
	n := 0
	for _, c := range cmds {
		if c.Val() > 0 {
			n++
		}
	}
	return float64(n) / float64(len(sample)), nil
}

func (s *Service) setMarker(ctx context.Context, m Marker) error {
	m.At = time.Now().UTC()
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := s.store.Client().Set(ctx, WarmKey, b, 0).Err(); err != nil {
		return fmt.Errorf("sync: set %s: %w", WarmKey, err)
	}
	return nil
}

// recoverCold takes the recovery lease and, holding it, preheats the top
// products and queues a full refresh for the rest; ok is false when
// another instance holds the lease (it recovers; this one keeps watching).
func (s *Service) recoverCold(ctx context.Context, coldAt time.Time) (ok bool, err error) {
	lease, err := acquireLease(ctx, s.store.Client(), ColdLeaseKey, coldLeaseTTL)
	if err != nil || lease == nil {
		return false, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := lease.keep(ctx, cancel)
	defer stop()
	start := time.Now()
	top := s.hotTop(ctx)
	// The refresh of the rest (every product but the top ones, which the
	// preheat writes: the catalog is loaded once, not the top twice) is
	// queued at once, beside the preheat: its first events reach this
	// service only after the source has written them to its outbox and
	// relayed them, by when the preheat (a few thousand ids at most) is
	// well on; queued afterwards, the whole catalog would wait for the
	// preheat too. (A refresh alone, hottest first, was measured too: the
	// top 1,000 came back later, ~1.4 s against ~1 s, as their events
	// wait behind the whole refresh's outbox write and relay.)
	type queued struct {
		n   int
		err error
	}
	refresh := make(chan queued, 1)
	go func() {
		n, err := s.queueRefresh(ctx, top)
		refresh <- queued{n, err}
	}()
	if len(top) > 0 {
		sum, err := preheat.Run(ctx, preheat.Config{
			Store: s.store, Source: s.src, HotURLs: s.cfg.HotURLs, AdminToken: s.cfg.AdminToken,
			Only: top, PushTop: 0, // app nodes keep their own caches: no push
			PartitionSize: coldPartition, Workers: min(coldWorkers, (len(top)+coldPartition-1)/coldPartition),
			Run: "cold-" + lease.token, Log: s.log.With("preheat", "cold"),
		})
		if err != nil {
			// The refresh left them out: queue them too (all, simply).
			s.log.Warn("cold redis main: preheat of the hottest products failed; refreshing them too", "ids", len(top), "error", err)
			if _, rerr := s.queueRefresh(ctx, nil); rerr != nil {
				return false, rerr
			}
		} else {
			s.log.Info("cold redis main: hottest products preheated", "ids", len(top), "written", sum.Written,
				"took", time.Since(start).Round(time.Millisecond).String(), "since_cold", time.Since(coldAt).Round(time.Millisecond).String())
			s.m.preheated.Add(float64(sum.Products))
		}
	}
	q := <-refresh
	if q.err != nil {
		return false, q.err
	}
	s.log.Info("cold redis main: full refresh queued for the rest", "events", q.n)
	return true, nil
}

// hotTop is the hot services' top ids, hottest first: the hour's, then the
// day's not in it, from the first service that answers; none when none
// answers (the refresh then loads everything in catalog order).
func (s *Service) hotTop(ctx context.Context) []int64 {
	for _, base := range s.cfg.HotURLs {
		var ids []int64
		seen := map[int64]bool{}
		var err error
		for _, period := range []string{"hour", "day"} {
			var top []int64
			if top, err = fetchTop(ctx, base, period, coldTop); err != nil {
				break
			}
			for _, id := range top {
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		if err == nil {
			return ids
		}
		s.log.Warn("cannot read the hot service's top list", "hot", base, "error", err)
	}
	return nil
}

var coldHTTP = &http.Client{Timeout: 2 * time.Second}

// fetchTop reads GET <base>/api/top?period=&limit=.
func fetchTop(ctx context.Context, base, period string, limit int) ([]int64, error) {
	u := base + "/api/top?period=" + period + "&limit=" + strconv.Itoa(limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := coldHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	var body struct {
		Top []struct {
			ID int64 `json:"id"`
		} `json:"top"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	ids := make([]int64, 0, len(body.Top))
	for _, e := range body.Top {
		if e.ID > 0 {
			ids = append(ids, e.ID)
		}
	}
	return ids, nil
}

// queueRefresh asks the source for a refresh of every shop and product
// but the skipped products (POST /_admin/refresh).
func (s *Service) queueRefresh(ctx context.Context, skip []int64) (int, error) {
	var out struct {
		Queued int `json:"queued"`
	}
	body, err := json.Marshal(map[string][]int64{"skip_products": skip})
	if err != nil {
		return 0, err
	}
	if err := s.admin(ctx, http.MethodPost, "/_admin/refresh", bytes.NewReader(body), http.StatusAccepted, &out); err != nil {
		return 0, fmt.Errorf("sync: queue a full refresh: %w", err)
	}
	return out.Queued, nil
}

// outboxPending is how many changes wait in the source's outbox.
func (s *Service) outboxPending(ctx context.Context) (int64, error) {
	var out struct {
		OutboxPending int64 `json:"outbox_pending"`
	}
	if err := s.admin(ctx, http.MethodGet, "/_admin/stats", nil, http.StatusOK, &out); err != nil {
		return 0, fmt.Errorf("sync: source outbox: %w", err)
	}
	return out.OutboxPending, nil
}

// admin calls an admin endpoint of the source service with the token.
func (s *Service) admin(ctx context.Context, method, path string, body io.Reader, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(s.cfg.SourceURL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.AdminToken)
	resp, err := coldHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// HotURLs turns the --hot list (host:port or http://host:port) into base
// URLs.
func HotURLs(list []string) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		if a = strings.TrimRight(strings.TrimSpace(a), "/"); a == "" {
			continue
		}
		if !strings.Contains(a, "://") {
			a = "http://" + a
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// kickCold makes the watcher check main at once (main's run id changed).
func (s *Service) kickCold() {
	select {
	case s.coldKick <- struct{}{}:
	default: // a check is due already
	}
}

// validURL accepts an http(s) base URL with a host.
func validURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want http://host:port")
	}
	return nil
}
