package hot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// Limits of a report (docs/hot.md).
const (
	MaxReportBytes = 4 << 20
	MaxCounts      = 20_000
	MaxMissing     = 1000
	MaxCount       = 1_000_000_000
	MaxIntervalMS  = 60_000
	maxNodeLen     = 64
)

// reportJSON is the wire form of a report; every field is checked by
// ParseReport.
type reportJSON struct {
	Node       *string           `json:"node"`
	IntervalMS *posInt           `json:"interval_ms"`
	Counts     map[string]posInt `json:"counts"`
	Missing    []string          `json:"missing"`
}

// posInt is a JSON integer ≥ 1 written as a plain number: no string, no
// fraction, no exponent, no null.
type posInt uint64

func (p *posInt) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || len(b) > 19 || b[0] < '1' || b[0] > '9' {
		return fmt.Errorf("%w: %s", errNotPositiveInt, truncate(string(b)))
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: %s", errNotPositiveInt, truncate(string(b)))
		}
		n = n*10 + uint64(c-'0')
	}
	*p = posInt(n)
	return nil
}

var errNotPositiveInt = errors.New("want a positive integer")

func invalid(format string, args ...any) error {
	return &catalog.ValidationError{Reason: fmt.Sprintf(format, args...)}
}

// ParseID parses a product id as reports and the API write it:
// ^[1-9][0-9]{0,17}$.
func ParseID(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func validNode(s string) bool {
	if len(s) == 0 || len(s) > maxNodeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// decodeStrict decodes exactly one JSON value from r into v: unknown
// fields and trailing data are errors; r is read to at most limit bytes.
func decodeStrict(r io.Reader, v any, what string) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return invalid("%s: body over %d bytes", what, tooBig.Limit)
		case errors.Is(err, errNotPositiveInt):
			return invalid("%s: %v", what, err)
		case errors.As(err, &typeErr):
			return invalid("%s: field %q: wrong type %s", what, typeErr.Field, typeErr.Value)
		case errors.Is(err, io.EOF):
			return invalid("%s: empty body", what)
		}
		return invalid("%s: bad JSON: %v", what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("%s: data after the JSON object", what)
	}
	return nil
}

// ParseReport reads and validates a report body (at most MaxReportBytes:
// wrap r in http.MaxBytesReader). Every fault is a
// *catalog.ValidationError.
func ParseReport(r io.Reader) (Report, error) {
	var in reportJSON
	if err := decodeStrict(r, &in, "report"); err != nil {
		return Report{}, err
	}
	switch {
	case in.Node == nil:
		return Report{}, invalid("report: node required")
	case !validNode(*in.Node):
		return Report{}, invalid("report: node must be 1-%d characters of [A-Za-z0-9._:-]", maxNodeLen)
	case in.IntervalMS == nil:
		return Report{}, invalid("report: interval_ms required")
	case *in.IntervalMS > MaxIntervalMS:
		return Report{}, invalid("report: interval_ms must be 1..%d", MaxIntervalMS)
	case len(in.Counts) > MaxCounts:
		return Report{}, invalid("report: %d counts, at most %d", len(in.Counts), MaxCounts)
	case len(in.Missing) > MaxMissing:
		return Report{}, invalid("report: %d missing ids, at most %d", len(in.Missing), MaxMissing)
	}
	rep := Report{Node: *in.Node, Interval: time.Duration(*in.IntervalMS) * time.Millisecond, Counts: make([]IDCount, 0, len(in.Counts))}
	for k, v := range in.Counts {
		id, ok := ParseID(k)
		if !ok {
			return Report{}, invalid("report: counts: bad id %s", strconv.Quote(truncate(k)))
		}
		if v > MaxCount {
			return Report{}, invalid("report: counts: %d for id %d is over %d", v, id, MaxCount)
		}
		rep.Counts = append(rep.Counts, IDCount{ID: id, Count: uint64(v)})
	}
	for _, s := range in.Missing {
		id, ok := ParseID(s)
		if !ok {
			return Report{}, invalid("report: missing: bad id %s", strconv.Quote(truncate(s)))
		}
		rep.Missing = append(rep.Missing, id)
	}
	return rep, nil
}

func truncate(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// adminJSON is the body of POST /_admin/hot.
type adminJSON struct {
	ID     json.RawMessage `json:"id"`
	Action string          `json:"action"`
}

// parseAdmin reads a pin/unpin request: id as a JSON number or a string
// of digits.
func parseAdmin(r io.Reader) (int64, string, error) {
	var in adminJSON
	if err := decodeStrict(r, &in, "admin"); err != nil {
		return 0, "", err
	}
	raw := bytes.TrimSpace(in.ID)
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	id, ok := ParseID(string(raw))
	if !ok {
		return 0, "", invalid("admin: id must be a product id (1-18 digits)")
	}
	if in.Action != "pin" && in.Action != "unpin" {
		return 0, "", invalid(`admin: action must be "pin" or "unpin"`)
	}
	return id, in.Action, nil
}
