package pagedoc

import "testing"

// A record's JSON is written as it came only when it starts with the
// version it decoded to and cannot pass for a split value's head;
// anything else is encoded again (Put refuses a value without the
// version prefix, and would fail the whole batch).
func TestStorable(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		version int64
		want    bool
	}{
		{`{"version":12,"id":7,"name":"n"}`, 12, true},
		{`{"version":12}`, 12, true},
		{`{"version":12,"id":7}`, 13, false},                 // another version than it decoded to (a repeated name)
		{`{"id":7,"version":12}`, 12, false},                 // version not first
		{`{ "version":12,"id":7}`, 12, false},                // not the exact prefix
		{`{"id":7}`, 0, false},                               // no version at all
		{`{"version":0,"id":7}`, 0, false},                   // version 0
		{`{"version":12,"segments":3,"bytes":9}`, 12, false}, // read as a split value's head
		{``, 12, false},
	} {
		if got := storable([]byte(tc.raw), tc.version); got != tc.want {
			t.Errorf("storable(%q, %d) = %v, want %v", tc.raw, tc.version, got, tc.want)
		}
	}
}
