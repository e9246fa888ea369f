package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/redisstore"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// A description over 64 KB is stored in segments: no Redis value exceeds
// 64 KB, and the page (app tier and direct) shows all of it.
func TestLargeDescriptionIsSegmented(t *testing.T) {
	const id = 555
	marker := fmt.Sprintf("end-of-description-%d", time.Now().UnixNano())
	var html strings.Builder
	for html.Len() < 300<<10 {
		html.WriteString("<p>产品详情 Product details, paragraph after paragraph.</p>")
	}
	html.WriteString("<p>" + marker + "</p>")
	body, err := json.Marshal(map[string]string{"html": html.String()})
	if err != nil {
		t.Fatal(err)
	}
	if status, resp := put(t, shared, fmt.Sprintf("/api/descriptions/%d", id), body); status != http.StatusOK {
		t.Fatalf("PUT description: %d %.200s", status, resp)
	}
	waitForPage(t, pageURL(shared, fmt.Sprint(id)), marker, 5*time.Second)

	rdb := redisClient(t, shared.Config().Ports.RedisMain)
	keys, err := rdb.Keys(t.Context(), fmt.Sprintf("item:{%d}*", id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	segments := 0
	for _, k := range keys {
		n, err := rdb.StrLen(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n > redisstore.MaxValueBytes {
			t.Errorf("%s holds %d bytes, over %d", k, n, redisstore.MaxValueBytes)
		}
		if strings.Count(k, ":") >= 3 {
			segments++
		}
	}
	if segments < 8 {
		t.Errorf("%d segment keys for a 300 KB description in both the dimension and the page, want at least 8 (keys %v)", segments, keys)
	}
	got := MustGetPage(t, fmt.Sprintf("%s/item/%d.html", topology.URL(shared.Config().Ports.Direct), id))
	if got.status != http.StatusOK || !strings.Contains(got.body, marker) {
		t.Errorf("direct page: status %d, marker shown: %v", got.status, strings.Contains(got.body, marker))
	}
}
