package catalog

import "slices"

// Kind is one kind of record a source service owns: shops, and each
// product dimension. Kinds is the one list of them; every package that
// routes, stores, fetches or aggregates records loops over it instead of
// naming the kinds, so a new dimension is a new record type, a row here,
// its part of the page (Parts, PageDoc, BuildPage), its table's migration
// and its seed data.
type Kind struct {
	// Name is the source service's name: fault injection, request
	// statistics and resilience command names (source.<name>.<op>).
	Name string
	// Segment is the URL segment after /api/ at the source services.
	Segment string
	// Table is the SQLite table holding the records.
	Table string
	// Dim is the product dimension the records are: the name in change
	// events and the Redis key suffix item:{<id>}:<dim>. "" for shops,
	// which are not part of a product (their key is shop:{s<id>}).
	Dim Dimension
	// Entity is what a change of such a record is about.
	Entity Entity
	// New returns an empty record to decode into; its Validate checks an
	// edit.
	New func() Record

	part part // where the record goes in the page's Parts; nil for shops
}

// Record is a stored document of some Kind.
type Record interface {
	// Kind is the record's kind.
	Kind() *Kind
	// Validate checks the record as an edit from outside.
	Validate() error
	// Stamp sets the record's id (its product's id for a dimension) and
	// version; the store calls it when it assigns the next version.
	Stamp(id, version int64)
	// Stamped returns what Stamp set.
	Stamped() (id, version int64)
}

// The kinds, in the order the source services are listed.
var (
	KindProduct = &Kind{
		Name: "product", Segment: "products", Table: "products", Dim: DimBase, Entity: EntityProduct,
		New:  func() Record { return &Product{} },
		part: basePart{},
	}
	KindShop = &Kind{
		Name: "shop", Segment: "shops", Table: "shops", Entity: EntityShop,
		New: func() Record { return &Shop{} },
	}
	KindDescription = &Kind{
		Name: "description", Segment: "descriptions", Table: "descriptions", Dim: DimDescription, Entity: EntityProduct,
		New:  func() Record { return &Description{} },
		part: field(func(p *Parts) **Description { return &p.Desc }),
	}
	KindSpec = &Kind{
		Name: "spec", Segment: "specs", Table: "specs", Dim: DimSpec, Entity: EntityProduct,
		New:  func() Record { return &Spec{} },
		part: field(func(p *Parts) **Spec { return &p.Spec }),
	}
	KindPrice = &Kind{
		Name: "price", Segment: "prices", Table: "prices", Dim: DimPrice, Entity: EntityProduct,
		New:  func() Record { return &Price{} },
		part: field(func(p *Parts) **Price { return &p.Price }),
	}
	KindStock = &Kind{
		Name: "stock", Segment: "stock", Table: "stock", Dim: DimStock, Entity: EntityProduct,
		New:  func() Record { return &Stock{} },
		part: field(func(p *Parts) **Stock { return &p.Stock }),
	}
	KindRecommend = &Kind{
		Name: "recommendation", Segment: "recommendations", Table: "recommendations", Dim: DimRecommend, Entity: EntityProduct,
		New:  func() Record { return &Recommendations{} },
		part: field(func(p *Parts) **Recommendations { return &p.Recommend }),
	}
)

// Kinds lists every kind.
var Kinds = []*Kind{KindProduct, KindShop, KindDescription, KindSpec, KindPrice, KindStock, KindRecommend}

// ProductKinds lists the kinds a page document is built from, base first.
var ProductKinds = productKinds()

// ProductDimensions lists the dimensions a page document is built from.
var ProductDimensions = dimensionsOf(ProductKinds)

func productKinds() []*Kind {
	var out []*Kind
	for _, k := range Kinds {
		if k.Dim != "" {
			out = append(out, k)
		}
	}
	return out
}

func dimensionsOf(kinds []*Kind) []Dimension {
	out := make([]Dimension, len(kinds))
	for i, k := range kinds {
		out[i] = k.Dim
	}
	return out
}

// KindByName returns the kind of a source service name ("price").
func KindByName(name string) (*Kind, bool) {
	i := slices.IndexFunc(Kinds, func(k *Kind) bool { return k.Name == name })
	if i < 0 {
		return nil, false
	}
	return Kinds[i], true
}

// KindOf returns the kind of a product dimension.
func KindOf(d Dimension) (*Kind, bool) {
	i := slices.IndexFunc(ProductKinds, func(k *Kind) bool { return k.Dim == d })
	if i < 0 {
		return nil, false
	}
	return ProductKinds[i], true
}

// KindNames returns every kind's name, sorted.
func KindNames() []string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = k.Name
	}
	slices.Sort(names)
	return names
}

func (k *Kind) String() string { return k.Name }

// Part returns k's record in p, nil when p has none (for the base: when
// p.Base has no id). It panics for a kind that is not a product dimension.
func (k *Kind) Part(p *Parts) Record { return k.part.get(p) }

// SetPart puts r, a record of kind k, into p.
func (k *Kind) SetPart(p *Parts, r Record) { k.part.set(p, r) }

// part reads and writes one dimension's field of Parts.
type part interface {
	get(*Parts) Record
	set(*Parts, Record)
}

type basePart struct{}

func (basePart) get(p *Parts) Record {
	if p.Base.ID == 0 {
		return nil
	}
	return &p.Base
}

func (basePart) set(p *Parts, r Record) { p.Base = *r.(*Product) }

// ptrPart is a dimension held in Parts as a pointer, nil when absent.
type ptrPart[T any, R interface {
	*T
	Record
}] func(*Parts) *R

func (f ptrPart[T, R]) get(p *Parts) Record {
	if r := *f(p); r != nil {
		return r
	}
	return nil
}

func (f ptrPart[T, R]) set(p *Parts, r Record) { *f(p) = r.(R) }

func field[T any, R interface {
	*T
	Record
}](f func(*Parts) *R) part {
	return ptrPart[T, R](f)
}

// The Record methods of each kind's type.

func (*Product) Kind() *Kind                       { return KindProduct }
func (r *Product) Stamp(id, version int64)         { r.ID, r.Version = id, version }
func (r *Product) Stamped() (int64, int64)         { return r.ID, r.Version }
func (*Shop) Kind() *Kind                          { return KindShop }
func (r *Shop) Stamp(id, version int64)            { r.ID, r.Version = id, version }
func (r *Shop) Stamped() (int64, int64)            { return r.ID, r.Version }
func (*Description) Kind() *Kind                   { return KindDescription }
func (r *Description) Stamp(id, version int64)     { r.ProductID, r.Version = id, version }
func (r *Description) Stamped() (int64, int64)     { return r.ProductID, r.Version }
func (*Spec) Kind() *Kind                          { return KindSpec }
func (r *Spec) Stamp(id, version int64)            { r.ProductID, r.Version = id, version }
func (r *Spec) Stamped() (int64, int64)            { return r.ProductID, r.Version }
func (*Price) Kind() *Kind                         { return KindPrice }
func (r *Price) Stamp(id, version int64)           { r.ProductID, r.Version = id, version }
func (r *Price) Stamped() (int64, int64)           { return r.ProductID, r.Version }
func (*Stock) Kind() *Kind                         { return KindStock }
func (r *Stock) Stamp(id, version int64)           { r.ProductID, r.Version = id, version }
func (r *Stock) Stamped() (int64, int64)           { return r.ProductID, r.Version }
func (*Recommendations) Kind() *Kind               { return KindRecommend }
func (r *Recommendations) Stamp(id, version int64) { r.ProductID, r.Version = id, version }
func (r *Recommendations) Stamped() (int64, int64) { return r.ProductID, r.Version }
