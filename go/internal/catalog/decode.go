package catalog

import (
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Decode decodes the JSON of a record (from a source service or Redis)
// into v. It runs on github.com/go-json-experiment/json, the prototype of
// Go's encoding/json/v2, which validates and decodes in one pass:
// encoding/json scans a value once to validate it and again to decode it,
// and decoding the records of a full rebuild was most of its CPU (a batch
// of 100 descriptions: 3.3 ms with encoding/json, 1.4 ms split and decoded
// here; docs/preheat.md). It reads a record as encoding/json does —
// invalid UTF-8 accepted, a repeated name merged into the value, names
// matched without regard to case but with regard to '_' and '-' — so
// that no record is read differently than before (FuzzDecodeAsBefore).
// jsonv1.DefaultOptionsV1 would say the same for every type, and cost
// half as much again here.
func Decode(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, decodeOptions)
}

var decodeOptions = jsonv2.JoinOptions(
	jsontext.AllowInvalidUTF8(true),
	jsontext.AllowDuplicateNames(true),
	jsonv1.MergeWithLegacySemantics(true), // a repeated name merges into the value as encoding/json does (a null keeps it)
	jsonv2.MatchCaseInsensitiveNames(true),
	jsonv1.MatchCaseSensitiveDelimiter(true), // "shopid" is not "shop_id", as in encoding/json
)

// RawItems is the body of a source service's batch answer,
// {"items":[...],"missing":[...]}, with each item kept as its raw JSON
// (validated, not decoded).
type RawItems struct {
	Items []jsontext.Value `json:"items"`
}
