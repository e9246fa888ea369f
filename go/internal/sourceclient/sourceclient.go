// Package sourceclient calls the source services' HTTP API. Every call is a
// resilience command named source.<service>.<op>, so timeouts, bulkheads
// and circuit breakers apply per service and operation.
package sourceclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// Services are the source services by name, with their URL segment.
var Services = map[string]string{
	"product":        "products",
	"shop":           "shops",
	"description":    "descriptions",
	"spec":           "specs",
	"price":          "prices",
	"stock":          "stock",
	"recommendation": "recommendations",
}

// Client is a source API client.
type Client struct {
	base string
	http *http.Client
}

// New returns a client for the source API at base (e.g. http://127.0.0.1:9101)
// and registers its resilience commands.
func New(base string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sourceclient: base URL %q: want http://host:port", base)
	}
	for name := range Services {
		resilience.Configure(resilience.Defaults(CommandName(name, "get")), resilience.Defaults(CommandName(name, "batch")))
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &Client{base: strings.TrimRight(base, "/"), http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, nil
}

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

// Get fetches one record of service; catalog.ErrNotFound when it does not
// exist.
func Get[T any](ctx context.Context, c *Client, service string, id int64) (T, error) {
	return resilience.Do(ctx, CommandName(service, "get"), func(ctx context.Context) (T, error) {
		var v T
		body, err := c.fetch(ctx, "/api/"+Services[service]+"/"+strconv.FormatInt(id, 10))
		if err != nil {
			return v, err
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return v, fmt.Errorf("decode %s %d: %w", service, id, err)
		}
		return v, nil
	}, nil)
}

// Batch fetches records of service for ids, in chunks of catalog.MaxBatch,
// and returns those that exist keyed by their id. Results are matched to ids
// by the id inside each record, never by position.
func Batch[T any](ctx context.Context, c *Client, service string, ids []int64) (map[int64]T, error) {
	out := make(map[int64]T, len(ids))
	for start := 0; start < len(ids); start += catalog.MaxBatch {
		chunk := ids[start:min(start+catalog.MaxBatch, len(ids))]
		got, err := resilience.Do(ctx, CommandName(service, "batch"), func(ctx context.Context) (map[int64]T, error) {
			return batchOnce[T](ctx, c, service, chunk)
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

func batchOnce[T any](ctx context.Context, c *Client, service string, ids []int64) (map[int64]T, error) {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	body, err := c.fetch(ctx, "/api/"+Services[service]+"?ids="+strings.Join(parts, ","))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode %s batch: %w", service, err)
	}
	asked := make(map[int64]bool, len(ids))
	for _, id := range ids {
		asked[id] = true
	}
	out := make(map[int64]T, len(resp.Items))
	for _, raw := range resp.Items {
		var key struct {
			ID        int64 `json:"id"`
			ProductID int64 `json:"product_id"`
		}
		if err := json.Unmarshal(raw, &key); err != nil {
			return nil, fmt.Errorf("decode %s batch item: %w", service, err)
		}
		id := key.ProductID
		if id == 0 {
			id = key.ID
		}
		if !asked[id] {
			return nil, errors.New("source batch answered an id that was not asked for")
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("decode %s %d: %w", service, id, err)
		}
		out[id] = v
	}
	return out, nil
}
