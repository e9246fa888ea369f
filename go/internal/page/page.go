// Package page renders the product detail page in Go with pongo2, from the
// same template (templates/item.html) and the same data as the Lua renderer
// of the app tier (lua/detailpage/template.lua). Both must produce
// byte-identical HTML; see docs/template.md, parity_test.go and the
// differential fuzz test, fuzz_test.go.
//
// Documents are decoded into generic values so that both renderers see the
// same data: objects become map[string]any, arrays []any, and numbers are
// decoded the way lua-cjson decodes them, as a float64 first; an integral
// value within int64 then becomes an int64 (printed as digits), anything
// else stays a float64 (printed with "%f"). Integers beyond 2^53 therefore
// lose precision on both sides alike, and decimals that must print exactly
// (prices, ratings) travel as strings, as catalog.PageDoc and catalog.Shop
// carry them.
package page

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/flosch/pongo2/v6"
)

// Template file names inside the templates directory.
const (
	ItemTemplate        = "item.html"
	NotFoundPage        = "404.html"
	UnavailablePage     = "503.html"
	templateSetName     = "detailpage"
	renderBufferInitial = 32 << 10
)

// Renderer renders item pages. It is safe for concurrent use.
type Renderer struct {
	item        *pongo2.Template
	notFound    []byte
	unavailable []byte
}

// New loads the templates from templatesDir. pongo2's autoescape is on
// (its default), as the Lua renderer assumes.
func New(templatesDir string) (*Renderer, error) {
	loader, err := pongo2.NewLocalFileSystemLoader(templatesDir)
	if err != nil {
		return nil, fmt.Errorf("page: templates dir: %w", err)
	}
	set := pongo2.NewSet(templateSetName, loader)
	item, err := set.FromFile(ItemTemplate)
	if err != nil {
		return nil, fmt.Errorf("page: load %s: %w", ItemTemplate, err)
	}
	notFound, err := os.ReadFile(filepath.Join(templatesDir, NotFoundPage))
	if err != nil {
		return nil, fmt.Errorf("page: %w", err)
	}
	unavailable, err := os.ReadFile(filepath.Join(templatesDir, UnavailablePage))
	if err != nil {
		return nil, fmt.Errorf("page: %w", err)
	}
	return &Renderer{item: item, notFound: notFound, unavailable: unavailable}, nil
}

// RenderItem renders the page of one product from the raw JSON of its page
// document (catalog.PageDoc) and of its shop (catalog.Shop). A nil or empty
// document is missing (the shop card then says the shop is unavailable).
// Nothing is written to w on error.
func (r *Renderer) RenderItem(w io.Writer, item, shop []byte) error {
	ctx, err := itemContext(item, shop)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.Grow(renderBufferInitial)
	if err := execute(r.item, ctx, &buf); err != nil {
		return fmt.Errorf("page: render: %w", err)
	}
	_, err = buf.WriteTo(w)
	return err
}

// itemContext decodes the documents of one page into the template's
// context: item and shop, each absent when its JSON is empty.
func itemContext(item, shop []byte) (pongo2.Context, error) {
	ctx := pongo2.Context{}
	for _, doc := range []struct {
		name string
		raw  []byte
	}{{"item", item}, {"shop", shop}} {
		if len(bytes.TrimSpace(doc.raw)) == 0 {
			continue
		}
		v, err := Decode(doc.raw)
		if err != nil {
			return nil, fmt.Errorf("page: %s: %w", doc.name, err)
		}
		ctx[doc.name] = v
	}
	return ctx, nil
}

// execute runs a template, turning a panic inside pongo2 (it panics when
// a template compares two lists with ==) into an error.
func execute(t *pongo2.Template, ctx pongo2.Context, w io.Writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("template panic: %v", p)
		}
	}()
	return t.ExecuteWriterUnbuffered(ctx, w)
}

// NotFound returns the static 404 page.
func (r *Renderer) NotFound() []byte { return r.notFound }

// Unavailable returns the static 503 page.
func (r *Renderer) Unavailable() []byte { return r.unavailable }

// Decode parses one JSON value into the generic values both renderers
// share: map[string]any, []any, string, bool, nil, int64 for integral
// numbers within int64 and float64 for the others.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return convert(v)
}

func convert(v any) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			c, err := convert(e)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case []any:
		for i, e := range v {
			c, err := convert(e)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	case json.Number:
		return number(v)
	default:
		return v, nil
	}
}

// number decodes a JSON number as lua-cjson does (strtod, so overflow is
// ±Inf), then keeps integral values within int64 as int64.
func number(n json.Number) (any, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("number %q: %w", n, err)
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f), nil
	}
	return f, nil
}
