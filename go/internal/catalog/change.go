package catalog

import "bytes"

// decodeChangeFast parses the exact encoding json.Marshal gives a Change,
// which is how the source's outbox writes every event: the fields in
// order, no spaces, ids, versions and times as plain decimal digits, the
// entity and dims among the known names. ok is false for anything else,
// which DecodeChange leaves to encoding/json; for every input it accepts,
// the result is the one json.Unmarshal gives (FuzzDecodeChangeFast). By
// hand because decoding the events was an eighth of the sync service's
// CPU under a burst of edits, and the general decoder's reflection is what
// costs.
func decodeChangeFast(b []byte) (c Change, ok bool) {
	var p parser = b
	if !p.lit(`{"entity":"`) {
		return c, false
	}
	switch {
	case p.lit(`product"`):
		c.Entity = EntityProduct
	case p.lit(`shop"`):
		c.Entity = EntityShop
	default:
		return c, false
	}
	if !p.lit(`,"id":`) || !p.uint(&c.ID) || !p.lit(`,"version":`) || !p.uint(&c.Version) {
		return c, false
	}
	if p.lit(`,"dims":[`) {
		for {
			d, ok := p.dim()
			if !ok {
				return c, false
			}
			c.Dims = append(c.Dims, d)
			if p.lit(`]`) {
				break
			}
			if !p.lit(`,`) {
				return c, false
			}
		}
	}
	if p.lit(`,"refresh":true`) {
		c.Refresh = true
	}
	if !p.lit(`,"ts":`) || !p.uint(&c.TS) || !p.lit(`}`) || len(p) != 0 {
		return c, false
	}
	return c, true
}

// parser is what is left of the input.
type parser []byte

// lit consumes s if the input starts with it.
func (p *parser) lit(s string) bool {
	if !bytes.HasPrefix(*p, []byte(s)) {
		return false
	}
	*p = (*p)[len(s):]
	return true
}

// uint consumes 1 to 18 decimal digits without a leading zero (JSON has
// none; 18 digits always fit an int64).
func (p *parser) uint(v *int64) bool {
	n := 0
	var x int64
	for n < len(*p) && (*p)[n] >= '0' && (*p)[n] <= '9' {
		x = x*10 + int64((*p)[n]-'0')
		n++
	}
	if n == 0 || n > 18 || (n > 1 && (*p)[0] == '0') {
		return false
	}
	*v = x
	*p = (*p)[n:]
	return true
}

// dim consumes one known dimension name in quotes.
func (p *parser) dim() (Dimension, bool) {
	for _, d := range ProductDimensions {
		if len(*p) > len(d)+1 && (*p)[0] == '"' && string((*p)[1:1+len(d)]) == string(d) && (*p)[1+len(d)] == '"' {
			*p = (*p)[len(d)+2:]
			return d, true
		}
	}
	return "", false
}
