// Package redisstore is detailpage's Redis adapter: the key names of the
// contract (one product's keys share a hash tag, so MGET works on Redis
// Cluster), and versioned writes through a compare-and-set script, so no
// writer — sync service, direct-data rebuild, preheat — ever replaces a newer
// record with an older one.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/backoff"
	"github.com/detailpage/detailpage/go/internal/catalog"
)

// ItemKey is the key of a product's aggregated page document.
func ItemKey(id int64) string { return "item:{" + strconv.FormatInt(id, 10) + "}" }

// DimKey is the key of one dimension of a product.
func DimKey(id int64, d catalog.Dimension) string { return ItemKey(id) + ":" + string(d) }

// ShopKey is the key of a shop document.
func ShopKey(id int64) string { return "shop:{s" + strconv.FormatInt(id, 10) + "}" }

// NegativeTTL is how long a "does not exist" marker lives.
const NegativeTTL = 60 * time.Second

// casScript writes ARGV[2] to KEYS[1] unless the value there already has a
// version at least ARGV[1]. Every value we write is JSON whose first member
// is "version" (see package catalog), so the current version is read from
// the value's prefix without decoding it. ARGV[3] is a TTL in milliseconds
// (0: none). Returns 1 when written, 0 when a newer or equal version stays.
//
// Segmented values (see Put): ARGV[4] is how many segments the value has;
// they follow as ARGV[5..] and are stored at KEYS[1]:<version>:<i> only
// when the write is accepted, after the segments of the value it replaces
// are deleted. A refused write touches nothing, so a replay at the same
// version cannot disturb the segments the live head points to — unless one
// of them is gone (evicted): a head no reader can put together is replaced
// by a write of the same version, so a refresh repairs it. Segment keys
// share KEYS[1]'s hash tag, so they live in its slot on a Cluster.
//
// Fenced writes (Store.Fenced) pass a second key, the fence, and its
// expected value as the last ARGV: the write is refused with a FENCED
// error, touching nothing, unless the fence key holds exactly that token.
// The check and the write are one script, so an instance whose lease was
// taken over cannot slip a write in after the takeover.
var casScript = redis.NewScript(`
if #KEYS > 1 and redis.call('GET', KEYS[2]) ~= ARGV[#ARGV] then
  return redis.error_reply('FENCED fence ' .. KEYS[2] .. ' no longer holds token ' .. ARGV[#ARGV])
end
local cur = redis.call('GET', KEYS[1])
local newv = tonumber(ARGV[1])
if cur then
  local v = tonumber(string.match(cur, '^{"version":(%d+)'))
  local oldv, oldn = string.match(cur, '^{"version":(%d+),"segments":(%d+)')
  if v and v >= newv then
    if v > newv or not oldv then return 0 end
    local whole = true
    for i = 0, tonumber(oldn) - 1 do
      if redis.call('EXISTS', KEYS[1] .. ':' .. oldv .. ':' .. i) == 0 then whole = false break end
    end
    if whole then return 0 end
  end
  if oldv then
    for i = 0, tonumber(oldn) - 1 do redis.call('DEL', KEYS[1] .. ':' .. oldv .. ':' .. i) end
  end
end
local ttl = tonumber(ARGV[3])
local nseg = tonumber(ARGV[4])
for i = 0, nseg - 1 do
  local k = KEYS[1] .. ':' .. ARGV[1] .. ':' .. i
  if ttl > 0 then redis.call('SET', k, ARGV[5 + i], 'PX', ttl) else redis.call('SET', k, ARGV[5 + i]) end
end
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
`)

// casManyScript is casScript over several distinct keys in one call: Put
// sends one call per run of consecutive entries that share a hash tag (one
// product's keys), which costs Redis one script invocation, and one
// replicated MULTI/EXEC of its effects, per product instead of per value.
// ARGV[1] is how many entries n the call has; KEYS[1..n] are their keys,
// and for each in turn ARGV holds casScript's four arguments (version,
// value or segment head, TTL ms, segment count) followed by its segments.
// Each key gets exactly casScript's compare-and-set. A fenced call passes
// the fence as KEYS[n+1] and its token as the last ARGV, checked once
// before any write: the call is refused as a whole (FENCED, touching
// nothing) or runs whole, atomically with the check. A key whose commands
// fail (a value of another type) does not stop the others, as with one
// call per key; the call then answers the first such error. Returns how
// many keys were written.
//
// Every argument becomes a Lua string, every byte of which Redis's Lua
// hashes (about a fifth of main's CPU for a product's values: no script
// that takes the values avoids it). Besides that, a call costs Redis
// mostly per redis.call (each converts its arguments and reply between Lua
// and Redis), so: one EXISTS over all the keys first, and when none exists (a cold write, as preheat's) no key is
// read; otherwise the current value is read with GETRANGE over its first
// 80 bytes (the version and segment prefix fit, 19 digits at most each;
// the value is not copied into the script). The accepted values without a
// TTL are written by one MSET at the end, which is why a call's keys must
// be distinct (calls starts a new call at a repeated key, so the repeat
// sees the first write). Segment keys are other keys than the entries':
// before a segment is checked, deleted or written, the MSET so far is
// made, and a call that wrote segments reads every later key, so even a
// key named like a segment of another entry sees the writes in order.
// Numbers given to redis.call are strings: a Lua number is formatted with
// sprintf on every call.
var casManyScript = redis.NewScript(`
local n = tonumber(ARGV[1])
if #KEYS > n and redis.call('GET', KEYS[n + 1]) ~= ARGV[#ARGV] then
  return redis.error_reply('FENCED fence ' .. KEYS[n + 1] .. ' no longer holds token ' .. ARGV[#ARGV])
end
local cold = redis.call('EXISTS', unpack(KEYS, 1, n)) == 0
local mset = {}
local function flush()
  if #mset > 0 then
    local args = mset
    mset = {}
    redis.call('MSET', unpack(args))
  end
end
local function put(key, a, nseg)
  local newv = tonumber(ARGV[a])
  local cur = ''
  if not cold then cur = redis.call('GETRANGE', key, '0', '79') end
  if cur ~= '' then
    local v = tonumber(string.match(cur, '^{"version":(%d+)'))
    local oldv, oldn = string.match(cur, '^{"version":(%d+),"segments":(%d+)')
    if oldv then flush() end
    if v and v >= newv then
      if v > newv or not oldv then return 0 end
      local whole = true
      for i = 0, tonumber(oldn) - 1 do
        if redis.call('EXISTS', key .. ':' .. oldv .. ':' .. i) == 0 then whole = false break end
      end
      if whole then return 0 end
    end
    if oldv then
      for i = 0, tonumber(oldn) - 1 do redis.call('DEL', key .. ':' .. oldv .. ':' .. i) end
    end
  end
  local ttl = ARGV[a + 2]
  local expires = tonumber(ttl) > 0
  if nseg > 0 then flush() cold = false end
  for i = 0, nseg - 1 do
    local k = key .. ':' .. ARGV[a] .. ':' .. i
    if expires then redis.call('SET', k, ARGV[a + 4 + i], 'PX', ttl) else redis.call('SET', k, ARGV[a + 4 + i]) end
  end
  if expires then
    redis.call('SET', key, ARGV[a + 1], 'PX', ttl)
  else
    mset[#mset + 1] = key
    mset[#mset + 1] = ARGV[a + 1]
  end
  return 1
end
local written, a, failed = 0, 2, nil
for i = 1, n do
  local nseg = tonumber(ARGV[a + 3])
  local ok, r = pcall(put, KEYS[i], a, nseg)
  if ok then
    written = written + r
  elseif not failed then
    failed = r
  end
  a = a + 4 + nseg
end
local ok, r = pcall(flush)
if not ok and not failed then failed = r end
if failed then
  if type(failed) == 'table' and failed.err then return redis.error_reply(failed.err) end
  return redis.error_reply('ERR ' .. tostring(failed))
end
return written
`)

// A call of casManyScript holds at most maxCallKeys entries and, unless it
// is one entry, at most maxCallBytes of values: a larger run of one hash
// tag is split, so that no call keeps single-threaded Redis from its page
// reads for long.
const (
	maxCallKeys  = 64
	maxCallBytes = 1 << 20
)

// hashTag returns the part of key Redis Cluster hashes when it has one:
// the text between the first '{' and the next '}', if not empty.
func hashTag(key string) (string, bool) {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return "", false
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok || tag == "" {
		return "", false
	}
	return tag, true
}

// calls cuts entries into the runs Put sends as one casManyScript call
// each: consecutive entries with the same hash tag and distinct keys,
// bounded by maxCallKeys and maxCallBytes; an entry without a tag is a
// call of its own. The runs keep the entries' order, so a key written
// twice is written by two calls, the second evaluated after the first.
func calls(entries []Entry) [][]Entry {
	var out [][]Entry
	start, bytes := 0, 0
	tag, tagged := "", false
	for i, e := range entries {
		t, ok := hashTag(e.Key)
		if i > start && (!ok || !tagged || t != tag || i-start >= maxCallKeys || bytes+len(e.Value) > maxCallBytes || hasKey(entries[start:i], e.Key)) {
			out = append(out, entries[start:i])
			start, bytes = i, 0
		}
		tag, tagged = t, ok
		bytes += len(e.Value)
	}
	return append(out, entries[start:])
}

func hasKey(entries []Entry, key string) bool {
	for _, e := range entries {
		if e.Key == key {
			return true
		}
	}
	return false
}

// MaxValueBytes is the largest value Put stores under one key; a larger one
// is split into segments (seed 004, 分段加载) read back with one MGET.
const MaxValueBytes = 64 << 10

// segmentBytes is the size of each segment of a split value.
const segmentBytes = 60 << 10

// SegmentKey is the key of segment i of the value of key at version.
func SegmentKey(key string, version int64, i int) string {
	return key + ":" + strconv.FormatInt(version, 10) + ":" + strconv.Itoa(i)
}

// segmentHead is what a split value's own key holds.
func segmentHead(version int64, segments, bytes int) []byte {
	return fmt.Appendf(nil, `{"version":%d,"segments":%d,"bytes":%d}`, version, segments, bytes)
}

// parseHead reports whether v is a segment head, and its contents.
func parseHead(v []byte) (version int64, segments, bytes int, ok bool) {
	var h struct {
		Version  int64 `json:"version"`
		Segments int   `json:"segments"`
		Bytes    int   `json:"bytes"`
	}
	if len(v) > 100 || !strings.Contains(string(v), `"segments":`) || json.Unmarshal(v, &h) != nil || h.Segments <= 0 {
		return 0, 0, 0, false
	}
	return h.Version, h.Segments, h.Bytes, true
}

// Entry is one versioned value to write.
type Entry struct {
	Key     string
	Version int64
	Value   []byte
	TTL     time.Duration // 0: keep until replaced
}

// Store wraps a go-redis UniversalClient: one server, main + replica, a
// Cluster, or main found through Sentinel, chosen by configuration.
type Store struct {
	rdb    redis.UniversalClient
	lastOK atomic.Int64 // Unix ns of the last successful Health ping
	// followsFailover: main is found through Sentinels, so a write that
	// failed because main was lost may pass on the promoted replica soon.
	followsFailover bool
	// fenceKey and fenceToken: set on a Fenced view, checked by every Put.
	fenceKey   string
	fenceToken string
	// perKey: Put sends one casScript call per entry, as before calls were
	// grouped by hash tag (set only by the tests, to measure the two).
	perKey bool
}

// ErrFenced means a fenced write was refused: the fence key no longer holds
// the writer's token (its lease was taken over by another writer). It comes
// as a resilience.Permanent: the writer lost its right to write, Redis did
// not fail.
var ErrFenced = errors.New("redis: fenced write refused: the fence moved on")

// Fenced returns a view of s whose Put writes only while key holds token,
// checked inside the compare-and-set script (atomically with the version
// check). Reads, invalidation and everything else are s's. On a Redis
// Cluster the fence key and a product's keys live in different slots, so
// one script cannot check the one and write the other: Fenced refuses.
func (s *Store) Fenced(key string, token int64) (*Store, error) {
	if _, ok := s.rdb.(*redis.ClusterClient); ok {
		return nil, errors.New("redis: fenced writes need one server (main, or main through Sentinels): on a Redis Cluster the fence key and the written keys are in different slots, so the fence cannot be checked atomically")
	}
	if key == "" {
		return nil, errors.New("redis: fenced: empty fence key")
	}
	f := &Store{rdb: s.rdb, followsFailover: s.followsFailover, fenceKey: key, fenceToken: strconv.FormatInt(token, 10), perKey: s.perKey}
	return f, nil
}

// New returns a Store over rdb.
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Client returns the underlying client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// sentinelScheme starts an Open spec that finds main through Sentinels.
const sentinelScheme = "sentinel://"

// SentinelSpec is the Open spec of the main the Sentinels at addrs know
// as master: "sentinel://<master>@host:port,host:port".
func SentinelSpec(master string, addrs []string) string {
	return sentinelScheme + master + "@" + strings.Join(addrs, ",")
}

func splitAddrs(s string) []string {
	var list []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			list = append(list, a)
		}
	}
	return list
}

// Short timeouts: a frozen Redis must cost a caller a bounded wait, not a
// hang.
const (
	dialTimeout = 500 * time.Millisecond
	ioTimeout   = 500 * time.Millisecond
	poolSize    = 64
)

// Open connects to spec with short timeouts. spec is a comma-separated
// list of addresses (several addresses of a Cluster make a cluster client),
// or SentinelSpec's form: then every command goes to whichever server the
// Sentinels name main, and the client follows a failover by itself
// (go-redis FailoverClient: it subscribes to the Sentinels' +switch-master
// and drops its connections to the old main).
func Open(spec string) (*Store, error) {
	if rest, ok := strings.CutPrefix(spec, sentinelScheme); ok {
		master, addrs, _ := strings.Cut(rest, "@")
		list := splitAddrs(addrs)
		if master == "" || len(list) == 0 {
			return nil, fmt.Errorf("redis: %q: want sentinel://<master>@host:port[,host:port]", spec)
		}
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: master, SentinelAddrs: list,
			DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
			PoolSize: poolSize, MaxRetries: 1,
		})
		st := New(rdb)
		st.followsFailover = true
		return st, nil
	}
	list := splitAddrs(spec)
	if len(list) == 0 {
		return nil, errors.New("redis: no address given")
	}
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:       list,
		DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
		PoolSize:   poolSize,
		MaxRetries: 1,
	})
	return New(rdb), nil
}

// Close closes the client.
func (s *Store) Close() error { return s.rdb.Close() }

// Ping checks the server answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// HealthGrace is how long Health keeps passing after the last successful
// ping: a failover (Sentinel's detection and promotion take a few seconds)
// must not make the services' health checks flap.
const HealthGrace = 15 * time.Second

// Health is a service's health check on Redis: a ping, forgiven for
// HealthGrace after the last one that passed (never before a first one).
func (s *Store) Health(ctx context.Context) error {
	err := s.Ping(ctx)
	now := time.Now()
	if err == nil {
		s.lastOK.Store(now.UnixNano())
		return nil
	}
	if last := s.lastOK.Load(); last != 0 && now.Sub(time.Unix(0, last)) < HealthGrace {
		return nil
	}
	return err
}

// RunID is the run id of the server answering (INFO server): it changes
// when main is replaced (a promotion) or restarts (from its own disk).
func (s *Store) RunID(ctx context.Context) (string, error) {
	info, err := s.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("redis: info server: %w", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			return id, nil
		}
	}
	return "", errors.New("redis: info server: no run_id")
}

// putRetry is how Put retries a write that failed on a transient error
// (main lost, restarting, or just demoted during a failover) when main is
// found through Sentinels: the versioned compare-and-set makes a repeat
// harmless, and the budget keeps the wait below the callers' command
// timeouts. Without Sentinels no promotion is coming: a failed write
// returns at once (the sync service's retry topic keeps it, and a
// direct-data rebuild is served without its write-back, not held up).
var putRetry = backoff.Policy{Base: 50 * time.Millisecond, Max: 500 * time.Millisecond, Jitter: 0.2}

const putRetryBudget = 2500 * time.Millisecond

// transient reports whether err may pass once main is back or replaced.
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"READONLY", "LOADING", "MASTERDOWN", "connection refused", "connection reset", "broken pipe", "i/o timeout", "no such host", "all sentinels are unreachable", "EOF"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// Put writes entries with the compare-and-set script and returns how many
// were written (the others had a newer or equal version). Consecutive
// entries that share a hash tag (one product's keys) go in one script call
// (casManyScript), all calls in one pipeline, in the entries' order.
func (s *Store) Put(ctx context.Context, entries ...Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	for _, e := range entries {
		if !strings.HasPrefix(string(e.Value), `{"version":`) {
			return 0, fmt.Errorf("redis: put %s: value must start with the version", e.Key)
		}
	}
	if s.perKey {
		return s.writeRetrying(ctx, casScript, func() (int, error) { return s.putPerKey(ctx, entries) })
	}
	groups := calls(entries)
	return s.writeRetrying(ctx, casManyScript, func() (int, error) { return s.putOnce(ctx, groups, len(entries)) })
}

// writeRetrying runs one pipelined script write, loading script when the
// server has not seen it, and retries it as Put's doc says.
func (s *Store) writeRetrying(ctx context.Context, script *redis.Script, once func() (int, error)) (int, error) {
	start := time.Now()
	retry := putRetry.Start()
	for {
		written, err := once()
		if err != nil && isNoScript(err) {
			// a new main (failover, restart) has not seen the script yet
			if err = script.Load(ctx, s.rdb).Err(); err == nil {
				written, err = once()
			} else {
				err = fmt.Errorf("redis: load script: %w", err)
			}
		}
		if err == nil || !s.followsFailover || !transient(err) || errors.Is(err, ErrFenced) {
			return written, err
		}
		d := retry.Next()
		if time.Since(start)+d > putRetryBudget {
			return written, err
		}
		if serr := backoff.Sleep(ctx, d); serr != nil {
			return written, err
		}
	}
}

// casArgs appends casScript's arguments for e (version, value or segment
// head, TTL ms, segment count, segments) to args.
func casArgs(args []any, e Entry) []any {
	if len(e.Value) <= MaxValueBytes {
		return append(args, e.Version, e.Value, e.TTL.Milliseconds(), 0)
	}
	// The script stores the segments itself, and only when it accepts the
	// version.
	n := (len(e.Value) + segmentBytes - 1) / segmentBytes
	args = append(args, e.Version, segmentHead(e.Version, n, len(e.Value)), e.TTL.Milliseconds(), n)
	for start := 0; start < len(e.Value); start += segmentBytes {
		args = append(args, e.Value[start:min(start+segmentBytes, len(e.Value))])
	}
	return args
}

// putOnce sends one casManyScript call per group, pipelined.
func (s *Store) putOnce(ctx context.Context, groups [][]Entry, entries int) (int, error) {
	cmds := make([]*redis.Cmd, len(groups))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range groups {
			keys := make([]string, 0, len(g)+1)
			args := make([]any, 1, 1+4*len(g)+1)
			args[0] = len(g)
			for _, e := range g {
				keys = append(keys, e.Key)
				args = casArgs(args, e)
			}
			if s.fenceKey != "" {
				keys = append(keys, s.fenceKey)
				args = append(args, s.fenceToken)
			}
			cmds[i] = casManyScript.EvalSha(ctx, p, keys, args...)
		}
		return nil
	})
	return s.countWritten(cmds, err, "versioned write", entries)
}

// putPerKey is Put with one casScript call per entry (Store.perKey).
func (s *Store) putPerKey(ctx context.Context, entries []Entry) (int, error) {
	cmds := make([]*redis.Cmd, len(entries))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			keys := []string{e.Key}
			args := casArgs(make([]any, 0, 5), e)
			if s.fenceKey != "" {
				keys = append(keys, s.fenceKey)
				args = append(args, s.fenceToken)
			}
			cmds[i] = casScript.EvalSha(ctx, p, keys, args...)
		}
		return nil
	})
	return s.countWritten(cmds, err, "versioned write", len(entries))
}

func isNoScript(err error) bool { return err != nil && strings.Contains(err.Error(), "NOSCRIPT") }

// Get returns the value at key (reassembled when it was split), or nil
// when there is none.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis: get %s: %w", key, err)
	}
	return s.unsegment(ctx, key, b)
}

// ErrSegmentMissing means a split value lost a segment (replaced meanwhile,
// or evicted): callers treat it as a miss.
var ErrSegmentMissing = errors.New("redis: segment of a split value missing")

// unsegment returns v, or the value it is the head of.
func (s *Store) unsegment(ctx context.Context, key string, v []byte) ([]byte, error) {
	version, n, size, ok := parseHead(v)
	if !ok {
		return v, nil
	}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = SegmentKey(key, version, i)
	}
	parts, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: segments of %s: %w", key, err)
	}
	out := make([]byte, 0, size)
	for _, p := range parts {
		str, ok := p.(string)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrSegmentMissing, key)
		}
		out = append(out, str...)
	}
	if len(out) != size {
		return nil, fmt.Errorf("%w: %s has %d of %d bytes", ErrSegmentMissing, key, len(out), size)
	}
	return out, nil
}

// segmentsOrMissing is unsegment for the bulk reads: a value that lost a
// segment is nil (absent: the caller rebuilds it); a failed read of the
// segments is an error.
func (s *Store) segmentsOrMissing(ctx context.Context, key string, v []byte) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	b, err := s.unsegment(ctx, key, v)
	if errors.Is(err, ErrSegmentMissing) {
		return nil, nil
	}
	return b, err
}

// MGet returns the values at keys (nil for a missing key). Keys must share a
// hash tag on a Cluster.
func (s *Store) MGet(ctx context.Context, keys ...string) ([][]byte, error) {
	if len(keys) == 0 {
		return [][]byte{}, nil
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: mget %s…: %w", keys[0], err)
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		if str, ok := v.(string); ok {
			out[i] = []byte(str)
		}
	}
	return out, nil
}

// VersionOf reads the version prefix of a stored value (0 when absent).
func VersionOf(value []byte) int64 {
	rest, ok := strings.CutPrefix(string(value), `{"version":`)
	if !ok {
		return 0
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	v, _ := strconv.ParseInt(rest[:end], 10, 64)
	return v
}

// InvalidationStream is the Redis stream that tells app-tier nodes which
// local copies to drop. It travels through replication with the data, so a
// node that reads an entry from the replica can already read the new value.
const InvalidationStream = "dp:invalidate"

// invalidationMaxLen bounds the stream; nodes read it every few hundred
// milliseconds, so they never fall this far behind while connected.
const invalidationMaxLen = 100_000

// Changed names one written record for invalidation.
type Changed struct {
	Shop    bool
	ID      int64
	Version int64
}

// Invalidate appends one stream entry listing changed records as
// "p:<id>:<version>" or "s:<id>:<version>", comma-separated.
func (s *Store) Invalidate(ctx context.Context, changed []Changed) error {
	if len(changed) == 0 {
		return nil
	}
	var b strings.Builder
	for i, c := range changed {
		if i > 0 {
			b.WriteByte(',')
		}
		if c.Shop {
			b.WriteString("s:")
		} else {
			b.WriteString("p:")
		}
		b.WriteString(strconv.FormatInt(c.ID, 10))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(c.Version, 10))
	}
	err := s.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: InvalidationStream, MaxLen: invalidationMaxLen, Approx: true,
		Values: []string{"ids", b.String()},
	}).Err()
	if err != nil {
		return fmt.Errorf("redis: invalidate: %w", err)
	}
	return nil
}

// StoredProduct is what Redis holds for one product: the page document and
// each dimension (nil where absent).
type StoredProduct struct {
	Item []byte
	Dims map[catalog.Dimension][]byte
}

// ProductValues reads every key of each product with one MGET per product
// (its keys share a hash tag, so this works on a Cluster too), pipelined.
func (s *Store) ProductValues(ctx context.Context, ids []int64) (map[int64]StoredProduct, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			keys := []string{ItemKey(id)}
			for _, d := range catalog.ProductDimensions {
				keys = append(keys, DimKey(id, d))
			}
			cmds[i] = p.MGet(ctx, keys...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: product values: %w", err)
	}
	out := make(map[int64]StoredProduct, len(ids))
	for i, id := range ids {
		vals := cmds[i].Val()
		sp := StoredProduct{Dims: map[catalog.Dimension][]byte{}}
		if str, ok := vals[0].(string); ok {
			sp.Item = []byte(str)
		}
		for j, d := range catalog.ProductDimensions {
			if str, ok := vals[j+1].(string); ok {
				sp.Dims[d] = []byte(str)
			}
		}
		// Split values (large descriptions) need a second read; a lost
		// segment reads as absent, which makes the caller rebuild. Any
		// other failure of that read is the caller's error, not a miss.
		if sp.Item, err = s.segmentsOrMissing(ctx, ItemKey(id), sp.Item); err != nil {
			return nil, err
		}
		for d, v := range sp.Dims {
			b, err := s.segmentsOrMissing(ctx, DimKey(id, d), v)
			if err != nil {
				return nil, err
			}
			if b == nil {
				delete(sp.Dims, d)
			} else {
				sp.Dims[d] = b
			}
		}
		out[id] = sp
	}
	return out, nil
}

// Dimensions reads the named dimensions of each product: one pipelined MGET
// per product (its keys share a hash tag).
func (s *Store) Dimensions(ctx context.Context, ids []int64, dims ...catalog.Dimension) (map[int64]StoredProduct, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			keys := make([]string, len(dims))
			for j, d := range dims {
				keys[j] = DimKey(id, d)
			}
			cmds[i] = p.MGet(ctx, keys...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis: dimensions: %w", err)
	}
	out := make(map[int64]StoredProduct, len(ids))
	for i, id := range ids {
		sp := StoredProduct{Dims: map[catalog.Dimension][]byte{}}
		for j, v := range cmds[i].Val() {
			str, ok := v.(string)
			if !ok {
				continue
			}
			b, err := s.segmentsOrMissing(ctx, DimKey(id, dims[j]), []byte(str))
			if err != nil {
				return nil, err
			}
			if b != nil {
				sp.Dims[dims[j]] = b
			}
		}
		out[id] = sp
	}
	return out, nil
}
