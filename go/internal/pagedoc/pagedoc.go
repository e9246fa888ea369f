// Package pagedoc builds page documents: it fetches a product's dimensions
// from the source services in batches, aggregates them with
// catalog.BuildPage and writes dimensions and document to Redis with
// versioned compare-and-set, then tells the app tiers what changed. The
// sync service and the direct-data service's rebuild both go through here,
// so they cannot disagree on what a page is.
//
// Dimensions are handled by looping over catalog.ProductKinds, never by
// naming them, except where a dimension's meaning matters (recommendations
// are resolved to the recommended products' names and prices).
//
// One call of Products, Apply or Shops is one aggregation: it runs under a
// request cache (resilience.WithRequestCache, unless the caller's context
// has one already), so it asks the source for a given record at most once —
// also when a product is both rebuilt and recommended by another product
// of the batch, or when the re-read of what Redis holds (a lost segment, a
// dimension never filled) sends Apply back to the source for a full
// rebuild of dimensions it has just fetched.
package pagedoc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/errgroup"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/resilience"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Assembler builds and stores page documents.
type Assembler struct {
	src   *sourceclient.Client
	store *redisstore.Store
	Now   func() time.Time
	// Workers is how many batch requests of one dimension are in flight at
	// once (seed 004: one worker pool per dimension).
	Workers int
	// Recent, when set, keeps what pages show of recommended products
	// across calls (nil: each call reads Redis, then the source). See
	// Recent.
	Recent *Recent
}

// Recent is what a page shows of recently seen products — name, first
// picture and price — kept for a short while so that a bulk build (a
// preheat) does not fetch them again for every page that recommends them.
// Each page recommends eight products: on a cold Redis main, whose
// dimension keys are gone, fetching their base and price records from the
// source was most of a full rebuild's time (docs/preheat.md).
//
// Entries come from the records a call fetched anyway (its own products'
// and the recommended ones) and expire after the TTL. A page built from
// an entry shows a recommended product as it was at most that long ago:
// the same kind of age a page has anyway, since nothing rebuilds the
// pages that recommend a product when the product changes.
type Recent struct {
	ttl    time.Duration
	bases  *lru.Cache[int64, seen[catalog.Product]]
	prices *lru.Cache[int64, seen[catalog.Price]]
}

// seen is a record and when it was read. Age is checked on the way out
// (golang-lru's expirable cache would run a goroutine per cache that
// nothing can stop).
type seen[T any] struct {
	v  T
	at time.Time
}

// Recent's defaults: entries (per kind) and age.
const (
	DefaultRecentSize = 65_536
	DefaultRecentTTL  = 5 * time.Second
)

// NewRecent returns a Recent of at most size products per kind, each kept
// at most ttl.
func NewRecent(size int, ttl time.Duration) *Recent {
	bases, err := lru.New[int64, seen[catalog.Product]](max(size, 1))
	if err != nil {
		panic(err) // only for a size below 1
	}
	prices, err := lru.New[int64, seen[catalog.Price]](max(size, 1))
	if err != nil {
		panic(err)
	}
	return &Recent{ttl: ttl, bases: bases, prices: prices}
}

// get is c's entry for id when it is younger than the TTL.
func get[T any](r *Recent, c *lru.Cache[int64, seen[T]], id int64) (T, bool) {
	e, ok := c.Get(id)
	if !ok || time.Since(e.at) > r.ttl {
		var zero T
		return zero, false
	}
	return e.v, true
}

// remember keeps what a page shows of the base and price records read.
func (r *Recent) remember(bases map[int64]catalog.Product, prices map[int64]catalog.Price) {
	if r == nil {
		return
	}
	now := time.Now()
	for id, b := range bases {
		r.bases.Add(id, seen[catalog.Product]{b, now})
	}
	for id, p := range prices {
		r.prices.Add(id, seen[catalog.Price]{p, now})
	}
}

// rememberOwn keeps what a page shows of the products whose records d
// fetched: a later call's pages may recommend them.
func (r *Recent) rememberOwn(d *dims) {
	if r == nil {
		return
	}
	now := time.Now()
	for id, rec := range d.recs[catalog.KindProduct] {
		r.bases.Add(id, seen[catalog.Product]{recShown(*rec.(*catalog.Product)), now})
	}
	for id, rec := range d.recs[catalog.KindPrice] {
		r.prices.Add(id, seen[catalog.Price]{*rec.(*catalog.Price), now})
	}
}

// recShown is the part of a base record a page shows of a recommended
// product (BuildPage reads the name and the first picture).
func recShown(p catalog.Product) catalog.Product {
	out := catalog.Product{Name: p.Name}
	if len(p.Images) > 0 {
		out.Images = []catalog.Image{{URL: p.Images[0].URL}}
	}
	return out
}

// Commands of the Redis calls made here.
const (
	CmdRedisWrite = "redis.main.write"
	CmdRedisRead  = "redis.main.read"
)

// Commands returns the resilience commands an Assembler runs, with their
// default settings, for the service using it to configure.
func Commands() []resilience.Command {
	w := resilience.Defaults(CmdRedisWrite)
	w.Timeout, w.MaxConcurrent = 3*time.Second, 64 // pipelines of a few thousand writes
	r := resilience.Defaults(CmdRedisRead)
	r.Timeout, r.MaxConcurrent = time.Second, 64 // MGETs of a batch's segments
	return []resilience.Command{w, r}
}

// New returns an Assembler.
func New(src *sourceclient.Client, store *redisstore.Store) *Assembler {
	return &Assembler{src: src, store: store, Now: time.Now, Workers: 4}
}

// put writes entries to Redis main as command redis.main.write.
func (a *Assembler) put(ctx context.Context, entries []redisstore.Entry) (int, error) {
	return resilience.Do(ctx, CmdRedisWrite, func(ctx context.Context) (int, error) {
		return a.store.Put(ctx, entries...)
	}, nil)
}

// Result is the outcome of a rebuild: the encoded documents of the ids that
// exist and the ids that do not.
type Result struct {
	Docs    map[int64][]byte
	Missing []int64
	Written int // Redis values actually replaced (others were newer already)
}

// aggregation returns ctx with a request cache, unless it has one already
// (a caller that makes several calls for one request may open it itself).
func aggregation(ctx context.Context) context.Context {
	if resilience.HasRequestCache(ctx) {
		return ctx
	}
	return resilience.WithRequestCache(ctx)
}

// collapseBelow is the batch size under which ids join the request
// collapser's batches instead of making a call of their own: many
// concurrent one-page rebuilds (the direct-data service under a miss storm)
// then share batch calls.
const collapseBelow = 10

// fetchRaw fetches one source service's records for ids in chunks of
// catalog.MaxBatch, at most a.Workers chunks at a time, as JSON by id.
func fetchRaw(ctx context.Context, a *Assembler, service string, ids []int64) (map[int64]json.RawMessage, error) {
	if len(ids) == 0 {
		return map[int64]json.RawMessage{}, nil
	}
	if len(ids) < collapseBelow {
		return sourceclient.LookupManyRaw(ctx, a.src, service, ids)
	}
	if len(ids) <= catalog.MaxBatch {
		return sourceclient.BatchRaw(ctx, a.src, service, ids)
	}
	out := make(map[int64]json.RawMessage, len(ids))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(a.Workers, 1))
	for start := 0; start < len(ids); start += catalog.MaxBatch {
		chunk := ids[start:min(start+catalog.MaxBatch, len(ids))]
		g.Go(func() error {
			got, err := sourceclient.BatchRaw(gctx, a.src, service, chunk)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for id, v := range got {
				out[id] = v
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// fetchAll is fetchRaw decoded into T.
func fetchAll[T any](ctx context.Context, a *Assembler, service string, ids []int64) (map[int64]T, error) {
	raws, err := fetchRaw(ctx, a, service, ids)
	if err != nil {
		return nil, err
	}
	return sourceclient.DecodeAll[T](service, raws)
}

// fetchRecords is fetchRaw decoded into records of kind; raws are the
// records' JSON as the source sent it.
func fetchRecords(ctx context.Context, a *Assembler, kind *catalog.Kind, ids []int64) (recs map[int64]catalog.Record, raws map[int64]json.RawMessage, err error) {
	raws, err = fetchRaw(ctx, a, kind.Name, ids)
	if err != nil {
		return nil, nil, err
	}
	recs = make(map[int64]catalog.Record, len(raws))
	for id, raw := range raws {
		r := kind.New()
		if err := catalog.Decode(raw, r); err != nil {
			return nil, nil, fmt.Errorf("decode %s %d: %w", kind, id, err)
		}
		recs[id] = r
	}
	return recs, raws, nil
}

// records holds records by kind and product id; a kind without a map was
// not fetched.
type records map[*catalog.Kind]map[int64]catalog.Record

// dims holds the fetched dimensions, and the base and price of the
// recommended products.
type dims struct {
	recs records
	// raws are the fetched records' JSON as the source sent it (decoded
	// into recs, so valid): written to Redis as they are, not encoded
	// again.
	raws   map[*catalog.Kind]map[int64]json.RawMessage
	rbase  map[int64]catalog.Product
	rprice map[int64]catalog.Price
}

// fetch loads the wanted dimensions of ids from the source, one worker pool
// per dimension.
func (a *Assembler) fetch(ctx context.Context, ids []int64, want map[catalog.Dimension]bool) (*dims, error) {
	d := &dims{recs: records{}, raws: map[*catalog.Kind]map[int64]json.RawMessage{}}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, k := range catalog.ProductKinds {
		if !want[k.Dim] {
			continue
		}
		g.Go(func() error {
			got, raws, err := fetchRecords(gctx, a, k, ids)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			d.recs[k], d.raws[k] = got, raws
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("pagedoc: fetch: %w", err)
	}
	return d, nil
}

// fetchRecommended loads name, picture and price of every product that recs
// recommend, in batches.
func (a *Assembler) fetchRecommended(ctx context.Context, d *dims, recs []catalog.Recommendations) error {
	var ids []int64
	seen := map[int64]bool{}
	for _, r := range recs {
		for _, id := range r.IDs {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	d.rbase, d.rprice = map[int64]catalog.Product{}, map[int64]catalog.Price{}
	// First what this call fetched already (its own products) and what
	// a.Recent has; then Redis, where the recommended products usually
	// are (one pipelined read is far cheaper than two more source
	// batches); only what neither has is fetched from the source.
	var askRedis []int64
	for _, id := range ids {
		baseOK, priceOK := d.known(a.Recent, id)
		if !baseOK || !priceOK {
			askRedis = append(askRedis, id)
		}
	}
	// learnt: read from Redis or the source by this call (what a.Recent
	// keeps; an entry taken from it is not put back, so it ages out)
	learntBase, learntPrice := map[int64]catalog.Product{}, map[int64]catalog.Price{}
	var needBase, needPrice []int64
	if len(askRedis) > 0 {
		stored, err := resilience.Do(ctx, CmdRedisRead, func(ctx context.Context) (map[int64]redisstore.StoredProduct, error) {
			return a.store.Dimensions(ctx, askRedis, catalog.DimBase, catalog.DimPrice)
		}, nil)
		for _, id := range askRedis {
			if _, ok := d.rbase[id]; !ok && (err != nil || !decodeRecBase(stored[id].Dims[catalog.DimBase], learntBase, id)) {
				needBase = append(needBase, id)
			}
			if _, ok := d.rprice[id]; !ok && (err != nil || !decodeInto(stored[id].Dims[catalog.DimPrice], learntPrice, id)) {
				needPrice = append(needPrice, id)
			}
		}
	}
	var fromPrice map[int64]catalog.Price
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		raws, err := fetchRaw(gctx, a, catalog.KindProduct.Name, needBase)
		if err != nil {
			return err
		}
		for id, raw := range raws {
			if !decodeRecBase(raw, learntBase, id) {
				return fmt.Errorf("decode %s %d: not a product record", catalog.KindProduct, id)
			}
		}
		return nil
	})
	g.Go(func() (err error) {
		fromPrice, err = fetchAll[catalog.Price](gctx, a, catalog.KindPrice.Name, needPrice)
		return
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("pagedoc: fetch recommended: %w", err)
	}
	for id, v := range fromPrice {
		learntPrice[id] = v
	}
	for id, v := range learntBase {
		d.rbase[id] = v
	}
	for id, v := range learntPrice {
		d.rprice[id] = v
	}
	a.Recent.remember(learntBase, learntPrice)
	return nil
}

// known fills d.rbase and d.rprice for the recommended product id from
// the records d fetched for its own products, else from recent (may be
// nil), and reports which of the two it found.
func (d *dims) known(recent *Recent, id int64) (base, price bool) {
	if r, ok := d.recs[catalog.KindProduct][id]; ok {
		d.rbase[id], base = recShown(*r.(*catalog.Product)), true
	} else if recent != nil {
		if b, ok := get(recent, recent.bases, id); ok {
			d.rbase[id], base = b, true
		}
	}
	if r, ok := d.recs[catalog.KindPrice][id]; ok {
		d.rprice[id], price = *r.(*catalog.Price), true
	} else if recent != nil {
		if p, ok := get(recent, recent.prices, id); ok {
			d.rprice[id], price = p, true
		}
	}
	return base, price
}

// has reports whether the source answered any dimension of id: an edit
// fetches only what changed, and a product that does not exist at the
// source has none of its dimensions either (dimensions need their product).
func (d *dims) has(id int64) bool {
	for _, m := range d.recs {
		if _, ok := m[id]; ok {
			return true
		}
	}
	return false
}

var allDims = func() map[catalog.Dimension]bool {
	m := map[catalog.Dimension]bool{}
	for _, d := range catalog.ProductDimensions {
		m[d] = true
	}
	return m
}()

// parts assembles the fetched dimensions of one product. ok is false when
// the product does not exist.
func (d *dims) parts(id int64) (p catalog.Parts, ok bool) {
	if _, ok := d.recs[catalog.KindProduct][id]; !ok {
		return p, false
	}
	p = catalog.Parts{RecBases: d.rbase, RecPrices: d.rprice}
	for k, m := range d.recs {
		if r, ok := m[id]; ok {
			k.SetPart(&p, r)
		}
	}
	return p, true
}

// fetchedParts are the dimensions of id this fetch brought, limited to
// only (all when only is empty); the base is included only if it was
// fetched and wanted (Base.ID 0 otherwise).
func (d *dims) fetchedParts(id int64, only []catalog.Dimension) catalog.Parts {
	var p catalog.Parts
	for k, m := range d.recs {
		if r, ok := m[id]; ok && (len(only) == 0 || slices.Contains(only, k.Dim)) {
			k.SetPart(&p, r)
		}
	}
	return p
}

// dimEntries are the versioned Redis writes of one product's dimensions
// (the base only when p carries one). A record whose JSON the source sent
// (in raws) is written as it came: encoding each dimension again was a
// tenth of a full rebuild's CPU. Values must start with their version
// (redisstore.Put, and the scripts that read it): the source writes every
// record so; one that is not storable as it came (another shape, a
// duplicate "version" name, version 0) is encoded here.
func dimEntries(id int64, p catalog.Parts, raws map[*catalog.Kind]map[int64]json.RawMessage) ([]redisstore.Entry, error) {
	var out []redisstore.Entry
	for _, k := range catalog.ProductKinds {
		r := k.Part(&p)
		if r == nil {
			continue
		}
		_, version := r.Stamped()
		b := []byte(raws[k][id])
		if !storable(b, version) {
			var err error
			if b, err = encode(r); err != nil {
				return nil, fmt.Errorf("pagedoc: encode %d %s: %w", id, k.Dim, err)
			}
		}
		out = append(out, redisstore.Entry{Key: redisstore.DimKey(id, k.Dim), Version: version, Value: b})
	}
	return out, nil
}

// storable reports whether raw, the JSON a record of version was decoded
// from, may be written as it is: it starts with that version, which is
// above 0 (what Put and the scripts read), and not with what the scripts
// take for a split value's head ({"version":N,"segments":…}).
func storable(raw []byte, version int64) bool {
	const prefix = `{"version":`
	if version <= 0 || !bytes.HasPrefix(raw, []byte(prefix)) {
		return false
	}
	head := raw[:min(len(raw), 40)]
	if redisstore.VersionOf(head) != version {
		return false
	}
	rest := bytes.TrimLeft(head[len(prefix):], "0123456789")
	return !bytes.HasPrefix(rest, []byte(`,"segments":`))
}

// Products rebuilds the page documents of ids from all their dimensions at
// the source and writes dimensions, documents and negative markers for
// missing ids to Redis. A failed fetch fails the whole call: a page is
// never built from a partial read. When only the Redis write fails, the
// documents are still returned with the error, so a caller can serve them.
func (a *Assembler) Products(ctx context.Context, ids []int64) (Result, error) {
	ctx = aggregation(ctx)
	d, err := a.fetch(ctx, ids, allDims)
	if err != nil {
		return Result{}, err
	}
	a.Recent.rememberOwn(d)
	recs := make([]catalog.Recommendations, 0, len(d.recs[catalog.KindRecommend]))
	for _, r := range d.recs[catalog.KindRecommend] {
		recs = append(recs, *r.(*catalog.Recommendations))
	}
	if err := a.fetchRecommended(ctx, d, recs); err != nil {
		return Result{}, err
	}
	res := Result{Docs: map[int64][]byte{}}
	var entries []redisstore.Entry
	var changed []redisstore.Changed
	now := a.Now()
	for _, id := range ids {
		p, ok := d.parts(id)
		if !ok {
			res.Missing = append(res.Missing, id)
			entries = append(entries, missingEntry(id))
			continue
		}
		doc := catalog.BuildPage(p, now)
		body, err := encode(doc)
		if err != nil {
			return Result{}, fmt.Errorf("pagedoc: encode %d: %w", id, err)
		}
		res.Docs[id] = body
		de, err := dimEntries(id, p, d.raws)
		if err != nil {
			return Result{}, err
		}
		entries = append(entries, de...)
		entries = append(entries, redisstore.Entry{Key: redisstore.ItemKey(id), Version: doc.Version, Value: body})
		changed = append(changed, redisstore.Changed{ID: id, Version: doc.Version})
	}
	return a.write(ctx, res, entries, changed)
}

// Refresh is Products for a bulk refresh: it first compares the versions
// of each product's dimensions at the source (one cheap batch read of the
// version columns, no documents) with those of the values in Redis (read
// in place by a script: absent values, and split values that lost a
// segment, count as absent), and rebuilds only the products where they
// differ — a dimension changed, a value is gone, or the page is not the
// sum of its dimensions. A product whose every value is current is left
// alone: Products would have fetched it all and written nothing (the
// compare-and-set refuses an equal version). If the comparison fails,
// every product is rebuilt. unchanged is how many were skipped.
func (a *Assembler) Refresh(ctx context.Context, ids []int64) (res Result, unchanged int, err error) {
	ctx = aggregation(ctx)
	changed := a.changedOnly(ctx, ids)
	unchanged = len(ids) - len(changed)
	if len(changed) == 0 {
		return Result{Docs: map[int64][]byte{}}, unchanged, nil
	}
	res, err = a.Products(ctx, changed)
	return res, unchanged, err
}

// changedOnly returns the ids whose values in Redis are not all at the
// source's versions (Refresh); all of ids when either read fails. Redis is
// read first: a product without a page there (a cold or flushed main) is
// rebuilt without asking the source for its versions.
func (a *Assembler) changedOnly(ctx context.Context, ids []int64) []int64 {
	stored, err := resilience.Do(ctx, CmdRedisRead, func(ctx context.Context) (map[int64]redisstore.StoredVersions, error) {
		return a.store.ProductVersions(ctx, ids)
	}, nil)
	if err != nil {
		return ids
	}
	var ask []int64
	for _, id := range ids {
		if stored[id].Page >= 0 {
			ask = append(ask, id)
		}
	}
	if len(ask) == 0 {
		return ids
	}
	src, err := a.src.ProductVersions(ctx, ask)
	if err != nil {
		return ids
	}
	return slices.DeleteFunc(slices.Clone(ids), func(id int64) bool { return current(src[id], stored[id]) })
}

// current reports whether Redis holds exactly the source's versions of a
// product: each dimension (absent in Redis where the source has none) and
// the page at their sum. A product not at the source is never current.
func current(src []int64, stored redisstore.StoredVersions) bool {
	if len(src) == 0 || len(src) != len(stored.Dims) {
		return false
	}
	var sum int64
	for i, v := range src {
		switch {
		case v == 0 && stored.Dims[i] == -1:
		case v <= 0 || stored.Dims[i] != v:
			return false
		}
		sum += v
	}
	return stored.Page == sum
}

func missingEntry(id int64) redisstore.Entry {
	return redisstore.Entry{Key: redisstore.ItemKey(id), Version: 0, Value: catalog.MissingJSON, TTL: redisstore.NegativeTTL}
}

// write stores entries, then invalidates what changed.
func (a *Assembler) write(ctx context.Context, res Result, entries []redisstore.Entry, changed []redisstore.Changed) (Result, error) {
	n, err := a.put(ctx, entries)
	if err != nil {
		return res, fmt.Errorf("pagedoc: %w", err)
	}
	res.Written = n
	if err := a.invalidate(ctx, n, changed); err != nil {
		return res, err
	}
	return res, nil
}

// Apply handles edits: for each product it fetches only the dimensions that
// changed (all of them for an empty list), writes them, and rebuilds the
// page document from what Redis then holds — one MGET over the product's
// hash-tagged keys — so a dimension written meanwhile by another writer is
// never lost. Dimensions Redis does not have yet are fetched from the
// source; recommendations are re-resolved only when they changed.
//
// An edit of only the price or only the stock goes the short way: one
// script call writes the dimension and patches its member of the page in
// Redis (redisstore.PatchPages), when that page is exactly the one built
// from the other stored dimensions; otherwise the page is rebuilt as
// above. Result.Docs has only the pages built here, not the patched ones.
func (a *Assembler) Apply(ctx context.Context, changes map[int64][]catalog.Dimension) (Result, error) {
	ctx = aggregation(ctx)
	want := map[catalog.Dimension]bool{}
	ids := make([]int64, 0, len(changes))
	for id, ds := range changes {
		ids = append(ids, id)
		if len(ds) == 0 {
			for dm := range allDims {
				want[dm] = true
			}
		}
		for _, dm := range ds {
			want[dm] = true
		}
	}
	slices.Sort(ids)
	d, err := a.fetch(ctx, ids, want)
	if err != nil {
		return Result{}, err
	}
	var entries []redisstore.Entry
	var patches []redisstore.Patch
	updated, err := json.Marshal(a.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return Result{}, err
	}
	for _, id := range ids {
		// Only what this id changed: the batch fetched the union of every
		// id's dimensions, and rewriting another id's unchanged (possibly
		// large) dimension at its current version is wasted work.
		parts := d.fetchedParts(id, changes[id])
		if p, ok, err := patchOf(id, changes[id], parts, updated); err != nil {
			return Result{}, err
		} else if ok && a.store.Patches() {
			patches = append(patches, p)
			continue
		}
		de, err := dimEntries(id, parts, d.raws)
		if err != nil {
			return Result{}, err
		}
		entries = append(entries, de...)
	}
	if _, err := a.put(ctx, entries); err != nil {
		return Result{}, fmt.Errorf("pagedoc: %w", err)
	}
	rebuild := ids
	var patched []redisstore.Changed
	if len(patches) > 0 {
		got, err := resilience.Do(ctx, CmdRedisWrite, func(ctx context.Context) ([]redisstore.PatchResult, error) {
			return a.store.PatchPages(ctx, patches)
		}, nil)
		if err != nil {
			return Result{}, fmt.Errorf("pagedoc: %w", err)
		}
		done := map[int64]bool{}
		for i, r := range got {
			if r.Outcome == redisstore.PatchPatched {
				done[patches[i].ID] = true
				patched = append(patched, redisstore.Changed{ID: patches[i].ID, Version: r.PageVersion})
			}
		}
		rebuild = slices.DeleteFunc(slices.Clone(ids), func(id int64) bool { return done[id] })
		if err := a.invalidate(ctx, len(patched), patched); err != nil {
			return Result{}, err
		}
	}
	res, err := a.aggregate(ctx, rebuild, d, changes)
	res.Written += len(patched)
	return res, err
}

// patchOf is the patch of an edit of only the price or only the stock of
// id whose record the source answered; ok is false for any other edit.
func patchOf(id int64, changed []catalog.Dimension, parts catalog.Parts, updatedAt []byte) (redisstore.Patch, bool, error) {
	if len(changed) != 1 {
		return redisstore.Patch{}, false, nil
	}
	k, ok := catalog.KindOf(changed[0])
	if !ok {
		return redisstore.Patch{}, false, nil
	}
	r := k.Part(&parts)
	if r == nil {
		return redisstore.Patch{}, false, nil // not at the source: the rebuild writes the marker
	}
	name, member, ok := catalog.PageMember(r)
	if !ok || name != string(k.Dim) {
		return redisstore.Patch{}, false, nil
	}
	_, version := r.Stamped()
	value, err := encode(r)
	if err != nil {
		return redisstore.Patch{}, false, fmt.Errorf("pagedoc: encode %d %s: %w", id, k.Dim, err)
	}
	m, err := encode(member)
	if err != nil {
		return redisstore.Patch{}, false, fmt.Errorf("pagedoc: encode %d %s: %w", id, name, err)
	}
	return redisstore.Patch{ID: id, Dim: k.Dim, Version: version, Value: value, Member: m, UpdatedAt: updatedAt}, true, nil
}

// aggregate rebuilds page documents from Redis after dimensions were
// written.
func (a *Assembler) aggregate(ctx context.Context, ids []int64, fetched *dims, changes map[int64][]catalog.Dimension) (Result, error) {
	stored, err := resilience.Do(ctx, CmdRedisRead, func(ctx context.Context) (map[int64]redisstore.StoredProduct, error) {
		return a.store.ProductValues(ctx, ids)
	}, nil)
	if err != nil {
		return Result{}, fmt.Errorf("pagedoc: aggregate: %w", err)
	}
	cur := &dims{recs: records{}}
	for _, k := range catalog.ProductKinds {
		cur.recs[k] = map[int64]catalog.Record{}
	}
	oldRecs := map[int64][]catalog.PageRecItem{}
	var incomplete []int64
	var needRecs []catalog.Recommendations
	for _, id := range ids {
		if !fetched.has(id) {
			continue // not at the source: handled below
		}
		v := stored[id]
		complete := true
		for _, k := range catalog.ProductKinds {
			if complete = decodeRecord(k, v.Dims[k.Dim], cur.recs[k], id); !complete {
				break
			}
		}
		if !complete {
			incomplete = append(incomplete, id)
			continue
		}
		var old struct { // only what is reused: decoding the whole page was a fifth of this step
			ID              int64                 `json:"id"`
			Recommendations []catalog.PageRecItem `json:"recommendations"`
			RecsVersion     int64                 `json:"recs_version"`
		}
		// The old page's recommendations are reused only if they were
		// resolved from the list Redis holds now: a list change whose page
		// build failed (and went to the retry topic) must not be masked by
		// a later edit's page, which would outrank the retried one.
		recs := cur.recs[catalog.KindRecommend][id].(*catalog.Recommendations)
		recsChanged := slices.Contains(changes[id], catalog.DimRecommend) || len(changes[id]) == 0
		if !recsChanged && v.Item != nil && json.Unmarshal(v.Item, &old) == nil && old.ID == id &&
			old.RecsVersion == recs.Version {
			oldRecs[id] = old.Recommendations
		} else {
			needRecs = append(needRecs, *recs)
		}
	}
	var res Result
	if len(incomplete) > 0 {
		// Redis lacks some dimension (never filled, or flushed): a full
		// rebuild of those products from the source.
		if res, err = a.Products(ctx, incomplete); err != nil {
			return res, err
		}
	}
	if res.Docs == nil {
		res.Docs = map[int64][]byte{}
	}
	if len(needRecs) > 0 {
		if err := a.fetchRecommended(ctx, cur, needRecs); err != nil {
			return res, err
		}
	}
	var entries []redisstore.Entry
	var changed []redisstore.Changed
	now := a.Now()
	for _, id := range ids {
		if !fetched.has(id) {
			res.Missing = append(res.Missing, id)
			entries = append(entries, missingEntry(id))
			continue
		}
		if slices.Contains(incomplete, id) {
			continue
		}
		p, _ := cur.parts(id)
		doc := catalog.BuildPage(p, now)
		if recs, ok := oldRecs[id]; ok {
			doc.Recommendations = recs
		}
		body, err := encode(doc)
		if err != nil {
			return res, fmt.Errorf("pagedoc: encode %d: %w", id, err)
		}
		res.Docs[id] = body
		entries = append(entries, redisstore.Entry{Key: redisstore.ItemKey(id), Version: doc.Version, Value: body})
		changed = append(changed, redisstore.Changed{ID: id, Version: doc.Version})
	}
	written := res.Written
	res, err = a.write(ctx, res, entries, changed)
	res.Written += written
	return res, err
}

// encode is JSON without HTML escaping: values are read by programs (the
// app tier's Lua, the Go services), never embedded in HTML as they are, and
// escaping every < > & of a description cost a sixth of the aggregation.
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// decodeRecord decodes a stored dimension of kind into m[id]; false when
// absent or unreadable (the caller rebuilds from the source).
func decodeRecord(kind *catalog.Kind, raw []byte, m map[int64]catalog.Record, id int64) bool {
	if raw == nil {
		return false
	}
	r := kind.New()
	if err := catalog.Decode(raw, r); err != nil {
		return false
	}
	m[id] = r
	return true
}

// recBase is what a page shows of a recommended product (BuildPage reads
// its name and first picture): decoding only that leaves the rest of the
// base record's strings unallocated. Decoding whole base records of the
// recommended products was 13% of a full rebuild's CPU.
type recBase struct {
	Name   string `json:"name"`
	Images []struct {
		URL string `json:"url"`
	} `json:"images"`
}

// decodeRecBase decodes the name and first picture of a stored base
// record into m[id]; false when absent or unreadable (the caller fetches
// it from the source).
func decodeRecBase(raw []byte, m map[int64]catalog.Product, id int64) bool {
	if raw == nil {
		return false
	}
	var b recBase
	if err := catalog.Decode(raw, &b); err != nil {
		return false
	}
	p := catalog.Product{Name: b.Name}
	if len(b.Images) > 0 {
		p.Images = []catalog.Image{{URL: b.Images[0].URL}}
	}
	m[id] = p
	return true
}

// decodeInto decodes a stored dimension into m[id]; false when absent or
// unreadable (the caller rebuilds from the source).
func decodeInto[T any](raw []byte, m map[int64]T, id int64) bool {
	if raw == nil {
		return false
	}
	var v T
	if err := catalog.Decode(raw, &v); err != nil {
		return false
	}
	m[id] = v
	return true
}

// Shops fetches shops from the source and writes them to Redis.
func (a *Assembler) Shops(ctx context.Context, ids []int64) (Result, error) {
	ctx = aggregation(ctx)
	shops, err := fetchAll[catalog.Shop](ctx, a, catalog.KindShop.Name, ids)
	if err != nil {
		return Result{}, fmt.Errorf("pagedoc: fetch shops: %w", err)
	}
	res := Result{Docs: map[int64][]byte{}}
	var entries []redisstore.Entry
	var changed []redisstore.Changed
	for _, id := range ids {
		s, ok := shops[id]
		if !ok {
			res.Missing = append(res.Missing, id)
			continue
		}
		b, err := encode(s)
		if err != nil {
			return Result{}, fmt.Errorf("pagedoc: encode shop %d: %w", id, err)
		}
		res.Docs[id] = b
		entries = append(entries, redisstore.Entry{Key: redisstore.ShopKey(id), Version: s.Version, Value: b})
		changed = append(changed, redisstore.Changed{Shop: true, ID: id, Version: s.Version})
	}
	return a.write(ctx, res, entries, changed)
}

// invalidate tells the app tiers to drop their copies of what changed. It
// is skipped when no value was replaced (a replayed or stale event), so a
// bulk refresh of unchanged data does not empty the app tiers' caches.
func (a *Assembler) invalidate(ctx context.Context, written int, changed []redisstore.Changed) error {
	if written == 0 {
		return nil
	}
	_, err := resilience.Do(ctx, CmdRedisWrite, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, a.store.Invalidate(ctx, changed)
	}, nil)
	if err != nil {
		return fmt.Errorf("pagedoc: %w", err)
	}
	return nil
}
