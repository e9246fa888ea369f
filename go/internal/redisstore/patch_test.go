package redisstore_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/redisstore"
)

// TestPatchPagesWherever: the patch script reads only the page's first KB,
// then 4 KB, then the whole page, to find the member; wherever the member
// is, and whatever the page's length, the patched page is the expected one
// (in place when it keeps its length, rewritten otherwise).
func TestPatchPagesWherever(t *testing.T) {
	st := MustStore(t)
	ctx := t.Context()
	page := func(id, version int64, name string, available int, status string) string {
		return fmt.Sprintf(`{"version":%d,"id":%d,"name":%q,"price":{"amount":"1.00","list":"","currency":"CNY","symbol":"¥"},"stock":{"available":%d,"status":%q,"label":"x"},"description_html":%q,"updated_at":"2026-11-24T02:00:00Z"}`,
			version, id, name, available, status, strings.Repeat("d", 3000))
	}
	for i, tc := range []struct {
		name      string
		nameLen   int
		available int
		status    string
	}{
		{"member in the first KB, same length", 10, 60, "in_stock"},
		{"member after the first KB, same length", 1500, 60, "in_stock"},
		{"member after 4 KB, same length", 5000, 60, "in_stock"},
		{"member in the first KB, longer", 10, 600, "in_stock"},
		{"member after the first KB, other status", 1500, 5, "low_stock"},
		{"member after 4 KB, longer", 5000, 600, "in_stock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := int64(100 + i)
			name := strings.Repeat("n", tc.nameLen)
			entries := []redisstore.Entry{{Key: redisstore.ItemKey(id), Version: 30, Value: []byte(page(id, 30, name, 50, "in_stock"))}}
			for _, d := range catalog.ProductDimensions {
				entries = append(entries, redisstore.Entry{Key: redisstore.DimKey(id, d), Version: 5, Value: fmt.Appendf(nil, `{"version":5,"dim":%q}`, d)})
			}
			MustPut(t, st, len(entries), entries...)
			res, err := st.PatchPages(ctx, []redisstore.Patch{{ID: id, Dim: catalog.DimStock, Version: 9, Value: []byte(`{"version":9,"dim":"stock"}`),
				Member: fmt.Appendf(nil, `{"available":%d,"status":%q,"label":"x"}`, tc.available, tc.status), UpdatedAt: []byte(`"2026-11-24T02:01:00Z"`)}})
			if err != nil {
				t.Fatal(err)
			}
			want := strings.Replace(page(id, 34, name, tc.available, tc.status), "02:00:00Z", "02:01:00Z", 1)
			if res[0].Outcome != redisstore.PatchPatched || res[0].PageVersion != 34 {
				t.Fatalf("patch: %+v, want patched to 34", res[0])
			}
			if got := MustGet(t, st, redisstore.ItemKey(id)); string(got) != want {
				t.Fatalf("patched page:\n%s\nwant\n%s", got, want)
			}
		})
	}
}
