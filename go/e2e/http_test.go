package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// The suite's HTTP calls return their errors, so that goroutines other than
// the test's can report them with tb.Errorf; the MustX forms (page_test.go)
// fail the test and are for the test's own goroutine.

// getPage fetches a page with the suite's client.
func getPage(url string) (page, error) { return getPageWith(client, url) }

// getPageWith fetches a page with c (e.g. freshConns, to reach every worker).
func getPageWith(c *http.Client, url string) (page, error) {
	resp, err := c.Get(url)
	if err != nil {
		return page{}, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return page{}, fmt.Errorf("GET %s: read: %w", url, err)
	}
	return page{resp.StatusCode, string(b), resp.Header.Get("X-Served-By"), resp.Header.Get("X-Cache")}, nil
}

// getAdminJSON GETs an admin endpoint (url) with the admin token and
// decodes its JSON answer into v; any status but 200 is an error.
func getAdminJSON(url string, v any) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// putSource sends a PUT to the source API and returns the status and body.
func putSource(t *topology.Topology, path string, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPut, topology.URL(t.Config().Ports.Source)+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("PUT %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("PUT %s: read: %w", path, err)
	}
	return resp.StatusCode, string(b), nil
}

// getProduct reads a product from the source API.
func getProduct(t *topology.Topology, id int64) (catalog.Product, error) {
	var p catalog.Product
	resp, err := client.Get(fmt.Sprintf("%s/api/products/%d", topology.URL(t.Config().Ports.Source), id))
	if err != nil {
		return p, fmt.Errorf("GET product %d: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return p, fmt.Errorf("GET product %d: %s", id, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return p, fmt.Errorf("GET product %d: %w", id, err)
	}
	return p, nil
}

// MustReadFile reads a file the test checks (a log): a read that fails
// fails the test, never passes as an empty file.
func MustReadFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// pageShows polls the page every 20 ms until it contains want and returns
// how long that took; after limit, the last miss.
func pageShows(url, want string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	err := testutil.PollEvery(limit, 20*time.Millisecond, func() error {
		p, err := getPage(url)
		if err != nil {
			return err
		}
		if p.status != http.StatusOK || !strings.Contains(p.body, want) {
			return fmt.Errorf("%s does not show %q (status %d, X-Cache %s)", url, want, p.status, p.cache)
		}
		return nil
	})
	return time.Since(start), err
}
