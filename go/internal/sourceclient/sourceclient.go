// Package sourceclient calls the source services' HTTP API. Every call is a
// resilience command named source.<service>.<op>, so timeouts, bulkheads
// and circuit breakers apply per service and operation. A service is named
// by its catalog.Kind's Name ("price") and found at its Segment.
//
// With a request cache in the context (resilience.WithRequestCache; the
// page aggregation in pagedoc opens one) every function here asks the
// source for a given record at most once per request: single lookups and
// batches share the cache, key source/<service>/<id>.
package sourceclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// Client is a source API client.
type Client struct {
	base       string
	http       *http.Client
	collapsers map[string]*resilience.Collapser[int64, json.RawMessage]
}

// New returns a client for the source API at base (e.g.
// http://127.0.0.1:9101). The service using it configures its commands
// (Commands) at start.
func New(base string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sourceclient: base URL %q: want http://host:port", base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	c := &Client{
		base:       strings.TrimRight(base, "/"),
		http:       &http.Client{Transport: tr, Timeout: 10 * time.Second},
		collapsers: make(map[string]*resilience.Collapser[int64, json.RawMessage], len(catalog.Kinds)),
	}
	for _, k := range catalog.Kinds {
		name := k.Name
		c.collapsers[name] = resilience.NewCollapser(resilience.CollapserConfig{Name: CommandName(name, "lookup")},
			func(ctx context.Context, ids []int64) (map[int64]json.RawMessage, error) {
				return resilience.Do(ctx, CommandName(name, "batch"), func(ctx context.Context) (map[int64]json.RawMessage, error) {
					return c.batchRaw(ctx, name, ids)
				}, nil)
			})
	}
	return c, nil
}

// Commands returns the resilience commands a Client runs, with their
// default settings, for the service using it to configure.
func Commands() []resilience.Command {
	var cmds []resilience.Command
	for _, k := range catalog.Kinds {
		name := k.Name
		cmds = append(cmds, resilience.Defaults(CommandName(name, "get")), resilience.Defaults(CommandName(name, "batch")))
	}
	cmds = append(cmds, resilience.Defaults(CommandName(catalog.KindProduct.Name, "versions")))
	slices.SortFunc(cmds, func(a, b resilience.Command) int { return strings.Compare(a.Name, b.Name) })
	return cmds
}

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// CommandName is the resilience command of one operation on one service.
func CommandName(service, op string) string { return "source." + service + "." + op }

// StatusError is a non-2xx answer from the source.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string { return fmt.Sprintf("source answered %d: %s", e.Status, e.Body) }

func (c *Client) fetch(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, resilience.Permanent{Err: catalog.ErrNotFound}
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, resilience.Permanent{Err: &StatusError{resp.StatusCode, truncate(body)}}
	case resp.StatusCode != http.StatusOK:
		return nil, &StatusError{resp.StatusCode, truncate(body)}
	}
	return body, nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// Get fetches one record of service with a single GET through command
// source.<service>.get; catalog.ErrNotFound when it does not exist. With a
// request cache in ctx (resilience.WithRequestCache) a record is fetched
// once per request, shared with Lookup.
func Get[T any](ctx context.Context, c *Client, service string, id int64) (T, error) {
	var v T
	kind, ok := catalog.KindByName(service)
	if !ok {
		return v, fmt.Errorf("sourceclient: unknown service %q", service)
	}
	raw, err := resilience.Cached(ctx, cacheKey(service, id), func(ctx context.Context) (json.RawMessage, error) {
		return resilience.Do(ctx, CommandName(service, "get"), func(ctx context.Context) (json.RawMessage, error) {
			return c.fetch(ctx, "/api/"+kind.Segment+"/"+strconv.FormatInt(id, 10))
		}, nil)
	})
	if err != nil {
		return v, err
	}
	if err := catalog.Decode(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s %d: %w", service, id, err)
	}
	return v, nil
}

// Lookup fetches one record of service through the service's request
// collapser: concurrent lookups within 2ms (up to catalog.MaxBatch ids) go
// out as one batch call (command source.<service>.batch), answers are
// matched by the id inside each record, and an id the batch does not
// return is catalog.ErrNotFound. The caller's context is honoured on its
// own; giving up does not fail the batch for the others. With a request
// cache in ctx a record is fetched once per request.
func Lookup[T any](ctx context.Context, c *Client, service string, id int64) (T, error) {
	var v T
	col, ok := c.collapsers[service]
	if !ok {
		return v, fmt.Errorf("sourceclient: unknown service %q", service)
	}
	raw, err := resilience.Cached(ctx, cacheKey(service, id), func(ctx context.Context) (json.RawMessage, error) {
		return col.Get(ctx, id)
	})
	if err != nil {
		return v, err
	}
	if err := catalog.Decode(raw, &v); err != nil {
		return v, fmt.Errorf("decode %s %d: %w", service, id, err)
	}
	return v, nil
}

// LookupMany is Batch through the request collapser: the ids join the
// batches concurrent callers are forming, so many small concurrent
// rebuilds (one page each) share batch calls. It returns the records that
// exist, keyed by id, like Batch.
func LookupMany[T any](ctx context.Context, c *Client, service string, ids []int64) (map[int64]T, error) {
	raws, err := LookupManyRaw(ctx, c, service, ids)
	if err != nil {
		return nil, err
	}
	return DecodeAll[T](service, raws)
}

// LookupManyRaw is LookupMany without decoding: each record's JSON.
func LookupManyRaw(ctx context.Context, c *Client, service string, ids []int64) (map[int64]json.RawMessage, error) {
	col, ok := c.collapsers[service]
	if !ok {
		return nil, fmt.Errorf("sourceclient: unknown service %q", service)
	}
	return resilience.CachedMany(ctx, ids, func(id int64) string { return cacheKey(service, id) }, col.GetMany)
}

func cacheKey(service string, id int64) string {
	return "source/" + service + "/" + strconv.FormatInt(id, 10)
}

// Batch fetches records of service for ids, in chunks of catalog.MaxBatch,
// and returns those that exist keyed by their id. Results are matched to ids
// by the id inside each record, never by position.
func Batch[T any](ctx context.Context, c *Client, service string, ids []int64) (map[int64]T, error) {
	raws, err := BatchRaw(ctx, c, service, ids)
	if err != nil {
		return nil, err
	}
	return DecodeAll[T](service, raws)
}

// BatchRaw is Batch without decoding: each record's JSON.
func BatchRaw(ctx context.Context, c *Client, service string, ids []int64) (map[int64]json.RawMessage, error) {
	if _, ok := catalog.KindByName(service); !ok {
		return nil, fmt.Errorf("sourceclient: unknown service %q", service)
	}
	return resilience.CachedMany(ctx, ids, func(id int64) string { return cacheKey(service, id) },
		func(ctx context.Context, ids []int64) (map[int64]json.RawMessage, error) {
			out := make(map[int64]json.RawMessage, len(ids))
			for start := 0; start < len(ids); start += catalog.MaxBatch {
				chunk := ids[start:min(start+catalog.MaxBatch, len(ids))]
				raws, err := resilience.Do(ctx, CommandName(service, "batch"), func(ctx context.Context) (map[int64]json.RawMessage, error) {
					return c.batchRaw(ctx, service, chunk)
				}, nil)
				if err != nil {
					return nil, err
				}
				for id, raw := range raws {
					out[id] = raw
				}
			}
			return out, nil
		})
}

// DecodeAll decodes records of service as T, keyed by id.
func DecodeAll[T any](service string, raws map[int64]json.RawMessage) (map[int64]T, error) {
	out := make(map[int64]T, len(raws))
	for id, raw := range raws {
		var v T
		if err := catalog.Decode(raw, &v); err != nil {
			return nil, fmt.Errorf("decode %s %d: %w", service, id, err)
		}
		out[id] = v
	}
	return out, nil
}

// batchRaw makes one batch call and returns each record's JSON keyed by the
// id inside it (product_id for per-product dimensions, else id).
func (c *Client) batchRaw(ctx context.Context, service string, ids []int64) (map[int64]json.RawMessage, error) {
	if len(ids) == 0 {
		return map[int64]json.RawMessage{}, nil
	}
	buf := make([]byte, 0, 8*len(ids))
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, id, 10)
	}
	kind, ok := catalog.KindByName(service)
	if !ok {
		return nil, fmt.Errorf("sourceclient: unknown service %q", service)
	}
	body, err := c.fetch(ctx, "/api/"+kind.Segment+"?ids="+string(buf))
	if err != nil {
		return nil, err
	}
	// One validating pass splits the items (encoding/json would scan the
	// body twice before the records are decoded).
	var resp catalog.RawItems
	if err := catalog.Decode(body, &resp); err != nil {
		return nil, fmt.Errorf("decode %s batch: %w", service, err)
	}
	asked := make(map[int64]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	out := make(map[int64]json.RawMessage, len(resp.Items))
	for _, item := range resp.Items {
		raw := json.RawMessage(item)
		id, err := itemID(raw)
		if err != nil {
			return nil, fmt.Errorf("decode %s batch item: %w", service, err)
		}
		if !asked[id] {
			return nil, fmt.Errorf("source %s batch answered id %d that was not asked for", service, id)
		}
		out[id] = raw
	}
	return out, nil
}

// itemID is the id a batch item is keyed by: its product_id (a
// per-product dimension), else its id. The source writes every record
// with its version first and that id second; read from there (and the key
// known to be there once), the id costs no decoding of the item — decoding
// each whole item, a description's HTML and all, for its id was a third
// of the JSON work of a full rebuild. Any other shape is decoded.
func itemID(raw json.RawMessage) (int64, error) {
	if id, ok := prefixID(raw); ok {
		return id, nil
	}
	var key struct {
		ID        int64 `json:"id"`
		ProductID int64 `json:"product_id"`
	}
	if err := json.Unmarshal(raw, &key); err != nil {
		return 0, err
	}
	if key.ProductID != 0 {
		return key.ProductID, nil
	}
	return key.ID, nil
}

// prefixID reads `{"version":<digits>,"product_id":<digits>` or
// `{"version":<digits>,"id":<digits>` followed by `,` or `}`; ok only
// when that key is the only one of its name in raw (in any case) and,
// for "id", raw has no product_id (which decoding would prefer).
func prefixID(raw []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(raw, []byte(`{"version":`))
	if !ok {
		return 0, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, false
	}
	rest = rest[i:]
	switch {
	case bytes.HasPrefix(rest, []byte(`,"product_id":`)):
		if keysFolding(raw, "product_id") != 1 {
			return 0, false
		}
		rest = rest[len(`,"product_id":`):]
	case bytes.HasPrefix(rest, []byte(`,"id":`)):
		if keysFolding(raw, "id") != 1 || keysFolding(raw, "product_id") != 0 {
			return 0, false
		}
		rest = rest[len(`,"id":`):]
	default:
		return 0, false
	}
	n := 0
	var v int64
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		v = v*10 + int64(rest[n]-'0')
		n++
	}
	if n == 0 || n > 18 || v == 0 || rest[0] == '0' || n == len(rest) || (rest[n] != ',' && rest[n] != '}') {
		return 0, false
	}
	return v, true
}

// keysFolding counts the places in raw that read as the key k (lower-case
// ASCII) in quotes followed by a colon, in any case: encoding/json matches
// keys case-insensitively, so "ID" would count as "id" (neither key has a
// letter with a non-ASCII fold). Places inside strings count too: a
// count that is too high only sends the item to the decoder.
func keysFolding(raw []byte, k string) int {
	n := 0
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '"')
		if j < 0 {
			return n
		}
		i += j + 1
		if len(raw)-i >= len(k)+2 && raw[i+len(k)] == '"' && raw[i+len(k)+1] == ':' && bytes.EqualFold(raw[i:i+len(k)], []byte(k)) {
			n++
		}
	}
}

// ProductVersions reads the version of every dimension of each of ids
// that is a product (GET /api/products/versions, command
// source.product.versions, in chunks of catalog.MaxBatch): versions in
// catalog.ProductDimensions order, 0 for a dimension the product has none
// of; ids that are not products are absent. An answer naming other
// dimensions, or ids not asked for, is an error.
func (c *Client) ProductVersions(ctx context.Context, ids []int64) (map[int64][]int64, error) {
	out := make(map[int64][]int64, len(ids))
	for start := 0; start < len(ids); start += catalog.MaxBatch {
		chunk := ids[start:min(start+catalog.MaxBatch, len(ids))]
		got, err := resilience.Do(ctx, CommandName(catalog.KindProduct.Name, "versions"), func(ctx context.Context) (map[int64][]int64, error) {
			return c.productVersions(ctx, chunk)
		}, nil)
		if err != nil {
			return nil, err
		}
		for id, v := range got {
			out[id] = v
		}
	}
	return out, nil
}

func (c *Client) productVersions(ctx context.Context, ids []int64) (map[int64][]int64, error) {
	buf := make([]byte, 0, 8*len(ids))
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, id, 10)
	}
	body, err := c.fetch(ctx, "/api/"+catalog.KindProduct.Segment+"/versions?ids="+string(buf))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Dims  []catalog.Dimension `json:"dims"`
		Items [][]int64           `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode product versions: %w", err)
	}
	if !slices.Equal(resp.Dims, catalog.ProductDimensions) {
		return nil, fmt.Errorf("source product versions name dimensions %v, want %v", resp.Dims, catalog.ProductDimensions)
	}
	asked := make(map[int64]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	out := make(map[int64][]int64, len(resp.Items))
	for _, it := range resp.Items {
		if len(it) != 1+len(resp.Dims) || !asked[it[0]] {
			return nil, fmt.Errorf("source product versions: item %v: want an id asked for and %d versions", it, len(resp.Dims))
		}
		out[it[0]] = it[1:]
	}
	return out, nil
}

// ProductIDs reads one page of the source's product id listing (ids above
// after, at most limit); next is the after of the following page, 0 after
// the last one. Command source.product.ids.
func (c *Client) ProductIDs(ctx context.Context, after int64, limit int) (ids []int64, next int64, err error) {
	type page struct {
		IDs  []int64 `json:"ids"`
		Next int64   `json:"next"`
	}
	p, err := resilience.Do(ctx, CommandName("product", "ids"), func(ctx context.Context) (page, error) {
		var p page
		body, err := c.fetch(ctx, "/api/products/ids?after="+strconv.FormatInt(after, 10)+"&limit="+strconv.Itoa(limit))
		if err != nil {
			return p, err
		}
		if err := json.Unmarshal(body, &p); err != nil {
			return p, fmt.Errorf("decode product ids: %w", err)
		}
		return p, nil
	}, nil)
	return p.IDs, p.Next, err
}
