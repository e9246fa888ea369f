package source_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/testutil"
)

// Every kind of catalog.Kinds is served: a single and a batch lookup at
// its URL segment, an edit that round-trips through its record type, a
// fault under its name and a line in the stats.
func TestEveryKindIsServed(t *testing.T) {
	base, _ := testutil.MustSourceServer(t)
	for _, k := range catalog.Kinds {
		t.Run(k.Name, func(t *testing.T) {
			url := fmt.Sprintf("%s/api/%s/1", base, k.Segment)
			got := MustStatus(t, http.StatusOK, http.MethodGet, url, "", nil)
			rec := k.New()
			if err := json.Unmarshal(got.Body, rec); err != nil {
				t.Fatalf("GET %s into %T: %v", url, rec, err)
			}
			id, v := rec.Stamped()
			if id != 1 || v <= 0 {
				t.Fatalf("GET %s: id %d version %d", url, id, v)
			}
			batch := MustStatus(t, http.StatusOK, http.MethodGet, fmt.Sprintf("%s/api/%s?ids=1,2", base, k.Segment), "", nil)
			if items := mustDecode[struct{ Items []json.RawMessage }](t, batch.Body).Items; len(items) != 2 {
				t.Errorf("batch of 1,2: %d items", len(items))
			}
			edited := MustStatus(t, http.StatusOK, http.MethodPut, url, "", got.Body)
			after := k.New()
			if err := json.Unmarshal(edited.Body, after); err != nil {
				t.Fatal(err)
			}
			if _, v2 := after.Stamped(); v2 <= v {
				t.Errorf("edit stored version %d, want above %d", v2, v)
			}
			MustStatus(t, http.StatusOK, http.MethodPost, base+"/_admin/faults", token, []byte(`{"service":"`+k.Name+`"}`))
			if st := MustStats(t, base).Services[k.Name]; st.Edits != 1 || st.Lookups != 3 {
				t.Errorf("stats of %s: %+v, want 1 edit and 3 lookups", k.Name, st)
			}
		})
	}
	if n := len(MustStats(t, base).Services); n != len(catalog.Kinds) {
		t.Errorf("stats list %d services, want %d", n, len(catalog.Kinds))
	}
}
