// Package pagedoc builds page documents: it fetches a product's dimensions
// from the source services in batches, aggregates them with
// catalog.BuildPage and writes dimensions and document to Redis with
// versioned compare-and-set. The sync service and the direct-data service's
// rebuild both go through here, so they cannot disagree on what a page is.
package pagedoc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/sourceclient"
)

// Assembler builds and stores page documents.
type Assembler struct {
	src   *sourceclient.Client
	store *redisstore.Store
	Now   func() time.Time
}

// New returns an Assembler.
func New(src *sourceclient.Client, store *redisstore.Store) *Assembler {
	return &Assembler{src: src, store: store, Now: time.Now}
}

// Result is the outcome of a rebuild: the encoded documents of the ids that
// exist and the ids that do not.
type Result struct {
	Docs    map[int64][]byte
	Missing []int64
	Written int // Redis values actually replaced (others were newer already)
}

type fetched struct {
	base   map[int64]catalog.Product
	desc   map[int64]catalog.Description
	spec   map[int64]catalog.Spec
	price  map[int64]catalog.Price
	stock  map[int64]catalog.Stock
	recs   map[int64]catalog.Recommendations
	rbase  map[int64]catalog.Product
	rprice map[int64]catalog.Price
}

// Products rebuilds the page documents of ids from the source services and
// writes them, their dimensions and negative markers for missing ids to
// Redis. A failed fetch fails the whole call: a page is never built from a
// partial read.
func (a *Assembler) Products(ctx context.Context, ids []int64) (Result, error) {
	var f fetched
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		f.base, err = sourceclient.Batch[catalog.Product](gctx, a.src, "product", ids)
		return
	})
	g.Go(func() (err error) {
		f.desc, err = sourceclient.Batch[catalog.Description](gctx, a.src, "description", ids)
		return
	})
	g.Go(func() (err error) { f.spec, err = sourceclient.Batch[catalog.Spec](gctx, a.src, "spec", ids); return })
	g.Go(func() (err error) {
		f.price, err = sourceclient.Batch[catalog.Price](gctx, a.src, "price", ids)
		return
	})
	g.Go(func() (err error) {
		f.stock, err = sourceclient.Batch[catalog.Stock](gctx, a.src, "stock", ids)
		return
	})
	g.Go(func() (err error) {
		f.recs, err = sourceclient.Batch[catalog.Recommendations](gctx, a.src, "recommendation", ids)
		return
	})
	if err := g.Wait(); err != nil {
		return Result{}, fmt.Errorf("pagedoc: fetch: %w", err)
	}
	if err := a.fetchRecommended(ctx, &f); err != nil {
		return Result{}, err
	}
	res := Result{Docs: map[int64][]byte{}}
	var entries []redisstore.Entry
	var changed []redisstore.Changed
	now := a.Now()
	for _, id := range ids {
		base, ok := f.base[id]
		if !ok {
			res.Missing = append(res.Missing, id)
			entries = append(entries, redisstore.Entry{Key: redisstore.ItemKey(id), Version: 0, Value: catalog.MissingJSON, TTL: redisstore.NegativeTTL})
			continue
		}
		parts := catalog.Parts{Base: base, RecBases: f.rbase, RecPrices: f.rprice}
		dims := []dimValue{{catalog.DimBase, base.Version, base}}
		if v, ok := f.desc[id]; ok {
			parts.Desc = &v
			dims = append(dims, dimValue{catalog.DimDescription, v.Version, v})
		}
		if v, ok := f.spec[id]; ok {
			parts.Spec = &v
			dims = append(dims, dimValue{catalog.DimSpec, v.Version, v})
		}
		if v, ok := f.price[id]; ok {
			parts.Price = &v
			dims = append(dims, dimValue{catalog.DimPrice, v.Version, v})
		}
		if v, ok := f.stock[id]; ok {
			parts.Stock = &v
			dims = append(dims, dimValue{catalog.DimStock, v.Version, v})
		}
		if v, ok := f.recs[id]; ok {
			parts.Recommend = &v
			dims = append(dims, dimValue{catalog.DimRecommend, v.Version, v})
		}
		doc := catalog.BuildPage(parts, now)
		body, err := json.Marshal(doc)
		if err != nil {
			return Result{}, fmt.Errorf("pagedoc: encode %d: %w", id, err)
		}
		res.Docs[id] = body
		for _, d := range dims {
			b, err := json.Marshal(d.value)
			if err != nil {
				return Result{}, fmt.Errorf("pagedoc: encode %d %s: %w", id, d.dim, err)
			}
			entries = append(entries, redisstore.Entry{Key: redisstore.DimKey(id, d.dim), Version: d.version, Value: b})
		}
		entries = append(entries, redisstore.Entry{Key: redisstore.ItemKey(id), Version: doc.Version, Value: body})
		changed = append(changed, redisstore.Changed{ID: id, Version: doc.Version})
	}
	n, err := a.store.Put(ctx, entries...)
	if err != nil {
		return Result{}, fmt.Errorf("pagedoc: %w", err)
	}
	res.Written = n
	if err := a.invalidate(ctx, n, changed); err != nil {
		return Result{}, err
	}
	return res, nil
}

type dimValue struct {
	dim     catalog.Dimension
	version int64
	value   any
}

// fetchRecommended loads name, picture and price of every recommended
// product of the batch, in batches.
func (a *Assembler) fetchRecommended(ctx context.Context, f *fetched) error {
	var ids []int64
	seen := map[int64]bool{}
	for _, r := range f.recs {
		for _, id := range r.IDs {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		f.rbase, err = sourceclient.Batch[catalog.Product](gctx, a.src, "product", ids)
		return
	})
	g.Go(func() (err error) {
		f.rprice, err = sourceclient.Batch[catalog.Price](gctx, a.src, "price", ids)
		return
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("pagedoc: fetch recommended: %w", err)
	}
	return nil
}

// Shops fetches shops from the source and writes them to Redis.
func (a *Assembler) Shops(ctx context.Context, ids []int64) (Result, error) {
	shops, err := sourceclient.Batch[catalog.Shop](ctx, a.src, "shop", ids)
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
		b, err := json.Marshal(s)
		if err != nil {
			return Result{}, fmt.Errorf("pagedoc: encode shop %d: %w", id, err)
		}
		res.Docs[id] = b
		entries = append(entries, redisstore.Entry{Key: redisstore.ShopKey(id), Version: s.Version, Value: b})
		changed = append(changed, redisstore.Changed{Shop: true, ID: id, Version: s.Version})
	}
	if res.Written, err = a.store.Put(ctx, entries...); err != nil {
		return Result{}, fmt.Errorf("pagedoc: %w", err)
	}
	if err := a.invalidate(ctx, res.Written, changed); err != nil {
		return Result{}, err
	}
	return res, nil
}

// invalidate tells the app tiers to drop their copies of what changed. It
// is skipped when no value was replaced (a replayed or stale event), so a
// bulk refresh of unchanged data does not empty the app tiers' caches.
func (a *Assembler) invalidate(ctx context.Context, written int, changed []redisstore.Changed) error {
	if written == 0 {
		return nil
	}
	if err := a.store.Invalidate(ctx, changed); err != nil {
		return fmt.Errorf("pagedoc: %w", err)
	}
	return nil
}
