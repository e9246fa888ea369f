package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/resilience"
)

// Realtime values (issue 13): the source writes a price or stock edit to
// Redis in the request that made it (the fast path), so the OneServer sees
// it at once, without waiting for the sync pipeline, which still carries
// the change to the dimension key and the page document.

// RealtimeKey is the key of the latest realtime value of a product's price
// or stock (d is catalog.DimPrice or catalog.DimStock). It shares the
// product's hash tag, so one MGET reads it with the dimension keys.
func RealtimeKey(id int64, d catalog.Dimension) string { return ItemKey(id) + ":rt:" + string(d) }

// RealtimeStream is the stream with one entry per realtime write that took
// effect: fields id, dim (price|stock) and v (the version). The OneServer
// follows it to drop its local copies of changed ids.
const RealtimeStream = "dp:rt"

// realtimeMaxLen bounds RealtimeStream (trimmed approximately).
const realtimeMaxLen = 100_000

// RealtimeTTL is how long a realtime value lives. The sync pipeline writes
// the same record to the dimension key within seconds, and Realtime reads
// the newer of the two, so an expired realtime value loses nothing; the TTL
// only keeps a value of a record deleted at the source from living forever.
const RealtimeTTL = 24 * time.Hour

// RealtimeDims are the dimensions that have realtime values.
var RealtimeDims = []catalog.Dimension{catalog.DimPrice, catalog.DimStock}

func realtimeDim(d catalog.Dimension) bool { return d == catalog.DimPrice || d == catalog.DimStock }

// RealtimeRecord is one record to write: JSON is the encoding of a
// catalog.Price or catalog.Stock whose version is Version.
type RealtimeRecord struct {
	ID      int64
	Dim     catalog.Dimension
	Version int64
	JSON    []byte
}

// RealtimeValue is a realtime value read back: the record's version, when
// it was written (the zero time when it came from a dimension key, which
// carries no time: age unknown), and the record's JSON.
type RealtimeValue struct {
	Version int64
	At      time.Time
	Record  json.RawMessage
}

// wrapped is the stored form of a realtime value; version first, so the
// compare-and-set scripts read it from the prefix.
type wrapped struct {
	Version int64           `json:"version"`
	At      int64           `json:"at"` // Unix ms
	Record  json.RawMessage `json:"record"`
}

// rtScript is casScript's compare-and-set of one small value plus, in the
// same script (so atomically, and only when the write takes effect), an
// entry on the realtime stream. KEYS: the realtime key, the stream, and on
// a fenced Store the fence key. ARGV: version, value, TTL ms, id, dim,
// stream max length, and on a fenced Store the fence token. Returns 1 when
// written, 0 when a newer or equal version stays.
var rtScript = redis.NewScript(`
if #KEYS > 2 and redis.call('GET', KEYS[3]) ~= ARGV[7] then
  return redis.error_reply('FENCED fence ' .. KEYS[3] .. ' no longer holds token ' .. ARGV[7])
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local v = tonumber(string.match(cur, '^{"version":(%d+)'))
  if v and v >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'id', ARGV[4], 'dim', ARGV[5], 'v', ARGV[1])
return 1
`)

// PutRealtime writes recs under their versions (an older or equal version
// than the stored one is refused and adds no stream entry), each write and
// its stream entry in one script call, all pipelined; it returns how many
// took effect. at is the write time stored with each value. It retries on
// a failover like Put, within ctx.
//
// On a Redis Cluster the stream and a product's keys live in different
// slots, so no script can touch both: there the compare-and-set runs first
// and the entries of the writes that took effect follow in a second
// pipeline (a crash between the two loses the notification, which the
// OneServer's freshness bound covers).
func (s *Store) PutRealtime(ctx context.Context, at time.Time, recs ...RealtimeRecord) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	vals := make([][]byte, len(recs))
	for i, r := range recs {
		if !realtimeDim(r.Dim) {
			return 0, fmt.Errorf("redis: put realtime %d: dimension %q has no realtime value", r.ID, r.Dim)
		}
		if r.Version <= 0 {
			return 0, fmt.Errorf("redis: put realtime %d %s: version %d, want > 0", r.ID, r.Dim, r.Version)
		}
		if !json.Valid(r.JSON) {
			return 0, fmt.Errorf("redis: put realtime %d %s: record is not JSON", r.ID, r.Dim)
		}
		b, err := json.Marshal(wrapped{Version: r.Version, At: at.UnixMilli(), Record: r.JSON})
		if err != nil {
			return 0, fmt.Errorf("redis: put realtime %d %s: %w", r.ID, r.Dim, err)
		}
		vals[i] = b
	}
	if _, ok := s.rdb.(*redis.ClusterClient); ok {
		return s.writeRetrying(ctx, casScript, func() (int, error) { return s.putRealtimeCluster(ctx, recs, vals) })
	}
	return s.writeRetrying(ctx, rtScript, func() (int, error) { return s.putRealtimeOnce(ctx, recs, vals) })
}

func (s *Store) putRealtimeOnce(ctx context.Context, recs []RealtimeRecord, vals [][]byte) (int, error) {
	cmds := make([]*redis.Cmd, len(recs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range recs {
			keys := []string{RealtimeKey(r.ID, r.Dim), RealtimeStream}
			args := []any{r.Version, vals[i], RealtimeTTL.Milliseconds(), r.ID, string(r.Dim), realtimeMaxLen}
			if s.fenceKey != "" {
				keys = append(keys, s.fenceKey)
				args = append(args, s.fenceToken)
			}
			cmds[i] = rtScript.EvalSha(ctx, p, keys, args...)
		}
		return nil
	})
	return s.countWritten(cmds, err, "realtime write", len(cmds))
}

// countWritten adds up what the scripts of a pipeline answered (each the
// number of keys it wrote) out of entries values, and maps its error (a
// FENCED reply to ErrFenced, with what the calls before it wrote).
func (s *Store) countWritten(cmds []*redis.Cmd, err error, what string, entries int) (int, error) {
	written := 0
	for _, c := range cmds {
		if n, _ := c.Int(); n > 0 {
			written += n
		}
	}
	if err != nil {
		for _, c := range cmds {
			if c.Err() != nil && strings.HasPrefix(c.Err().Error(), "FENCED") {
				return written, resilience.Permanent{Err: fmt.Errorf("%w: %s (%d of %d written before)", ErrFenced, s.fenceKey, written, entries)}
			}
		}
		return 0, fmt.Errorf("redis: %s: %w", what, err)
	}
	return written, nil
}

func (s *Store) putRealtimeCluster(ctx context.Context, recs []RealtimeRecord, vals [][]byte) (int, error) {
	cmds := make([]*redis.Cmd, len(recs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range recs {
			cmds[i] = casScript.EvalSha(ctx, p, []string{RealtimeKey(r.ID, r.Dim)}, r.Version, vals[i], RealtimeTTL.Milliseconds(), 0)
		}
		return nil
	})
	written, err := s.countWritten(cmds, err, "realtime write", len(cmds))
	if err != nil || written == 0 {
		return written, err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range recs {
			if n, _ := cmds[i].Int(); n == 1 {
				p.XAdd(ctx, &redis.XAddArgs{
					Stream: RealtimeStream, MaxLen: realtimeMaxLen, Approx: true,
					Values: []string{"id", strconv.FormatInt(r.ID, 10), "dim", string(r.Dim), "v", strconv.FormatInt(r.Version, 10)},
				})
			}
		}
		return nil
	})
	if err != nil {
		return written, fmt.Errorf("redis: realtime notification: %w", err)
	}
	return written, nil
}

// Realtime reads the realtime values of ids: per product one MGET of its
// realtime keys and its price and stock dimension keys (written by the
// sync service; they share the product's hash tag, so one MGET per
// product works on a Cluster too), all pipelined in one round trip. For
// each id and dimension it returns the newer of the two values (by
// version; the realtime value on a tie); a dimension key's value has the
// zero At (age unknown). Ids and dimensions with no value are absent; a
// value that does not parse counts as absent.
func (s *Store) Realtime(ctx context.Context, ids []int64) (map[int64]map[catalog.Dimension]RealtimeValue, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			keys := make([]string, 0, 2*len(RealtimeDims))
			for _, d := range RealtimeDims {
				keys = append(keys, RealtimeKey(id, d), DimKey(id, d))
			}
			cmds[i] = p.MGet(ctx, keys...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: realtime values: %w", err)
	}
	out := make(map[int64]map[catalog.Dimension]RealtimeValue, len(ids))
	for i, id := range ids {
		vals := cmds[i].Val()
		for j, d := range RealtimeDims {
			rt, rtOK := parseRealtime(vals[2*j])
			dim, dimOK, err := s.dimensionValue(ctx, DimKey(id, d), vals[2*j+1])
			if err != nil {
				return nil, err
			}
			best, ok := rt, rtOK
			if dimOK && (!ok || dim.Version > rt.Version) {
				best, ok = dim, true
			}
			if !ok {
				continue
			}
			m := out[id]
			if m == nil {
				m = make(map[catalog.Dimension]RealtimeValue, len(RealtimeDims))
				out[id] = m
			}
			m[d] = best
		}
	}
	return out, nil
}

// parseRealtime decodes a stored realtime value (v from MGET).
func parseRealtime(v any) (RealtimeValue, bool) {
	str, ok := v.(string)
	if !ok {
		return RealtimeValue{}, false
	}
	var w wrapped
	if err := json.Unmarshal([]byte(str), &w); err != nil || w.Version <= 0 || len(w.Record) == 0 {
		return RealtimeValue{}, false
	}
	return RealtimeValue{Version: w.Version, At: time.UnixMilli(w.At), Record: w.Record}, true
}

// dimensionValue is a dimension key's value (v from MGET) as a realtime
// value, reassembled when it is a segment head (a lost segment: absent).
func (s *Store) dimensionValue(ctx context.Context, key string, v any) (RealtimeValue, bool, error) {
	str, ok := v.(string)
	if !ok {
		return RealtimeValue{}, false, nil
	}
	b, err := s.segmentsOrMissing(ctx, key, []byte(str))
	if err != nil {
		return RealtimeValue{}, false, err
	}
	version := VersionOf(b)
	if b == nil || version <= 0 || !json.Valid(b) {
		return RealtimeValue{}, false, nil
	}
	return RealtimeValue{Version: version, Record: json.RawMessage(b)}, true, nil
}
