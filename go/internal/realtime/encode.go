package realtime

import (
	"strconv"
	"sync"
	"unicode/utf8"
)

// The answers are encoded by hand: on the warm path encoding/json's
// reflection was the largest part of an answer's CPU. appendObject writes
// exactly what json.Marshal writes for an Object (TestEncodeMatchesJSON
// holds it to that).

// appendObject appends the JSON of o.
func appendObject(b []byte, o *Object) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, o.ID, 10)
	if o.Price != "" {
		b = appendField(b, "price", o.Price)
	}
	if o.ListPrice != "" {
		b = appendField(b, "list_price", o.ListPrice)
	}
	if o.Currency != "" {
		b = appendField(b, "currency", o.Currency)
	}
	if o.Stock != nil {
		b = append(b, `,"stock":{"status":`...)
		b = appendString(b, o.Stock.Status)
		if o.Stock.Quantity != 0 {
			b = append(b, `,"quantity":`...)
			b = strconv.AppendInt(b, o.Stock.Quantity, 10)
		}
		b = append(b, '}')
	}
	if p := o.Promotion; p != nil {
		b = append(b, `,"promotion":{"type":`...)
		b = appendString(b, p.Type)
		b = appendField(b, "label", p.Label)
		b = appendField(b, "save", p.Save)
		b = append(b, '}')
	}
	b = append(b, `,"shipping":{"region":`...)
	b = appendString(b, o.Shipping.Region)
	if o.Shipping.Fee != "" {
		b = appendField(b, "fee", o.Shipping.Fee)
	}
	if o.Shipping.FreeOver != "" {
		b = appendField(b, "free_over", o.Shipping.FreeOver)
	}
	b = append(b, `,"eta_days":`...)
	b = strconv.AppendInt(b, int64(o.Shipping.ETADays), 10)
	b = append(b, `},"versions":{`...)
	sep := false
	for _, v := range []struct {
		name string
		v    int64
	}{{"price", o.Versions.Price}, {"stock", o.Versions.Stock}} {
		if v.v == 0 {
			continue
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, v.name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, v.v, 10)
	}
	b = append(b, `},"version":`...)
	b = strconv.AppendInt(b, o.Version, 10)
	b = append(b, `,"stale":`...)
	b = strconv.AppendBool(b, o.Stale)
	if len(o.StaleParts) > 0 {
		b = append(b, `,"stale_parts":[`...)
		for i, p := range o.StaleParts {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	if len(o.AgeMS) > 0 {
		b = append(b, `,"age_ms":{`...)
		sep := false
		for _, name := range partNames { // json.Marshal sorts map keys; partNames is sorted
			age, ok := o.AgeMS[name]
			if !ok {
				continue
			}
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = appendString(b, name)
			b = append(b, ':')
			b = strconv.AppendInt(b, age, 10)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does:
// HTML-safe (<, >, & escaped), U+2028/U+2029 escaped, invalid UTF-8 as
// U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
