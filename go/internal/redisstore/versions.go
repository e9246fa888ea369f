package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// versionsScript returns the version of each key in KEYS, read from the
// value's prefix in Redis (GETRANGE: the value never leaves the server):
// -1 when the key is absent, its version does not read, or it is the head
// of a split value one of whose segments is gone — a value a reader could
// not put together counts as absent, so a refresh writes it again.
var versionsScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  local head = redis.call('GETRANGE', k, 0, 79)
  local v = tonumber(string.match(head, '^{"version":(%d+)'))
  if v then
    local sv, n = string.match(head, '^{"version":(%d+),"segments":(%d+)')
    if sv then
      for s = 0, tonumber(n) - 1 do
        if redis.call('EXISTS', k .. ':' .. sv .. ':' .. s) == 0 then v = nil break end
      end
    end
  end
  out[i] = v or -1
end
return out
`)

// StoredVersions are the versions of one product's values in Redis: the
// page document's and each dimension's in catalog.ProductDimensions order;
// -1 where the value is absent or unreadable (see ProductVersions).
type StoredVersions struct {
	Page int64
	Dims []int64
}

// ProductVersions reads the versions of each product's page document and
// dimensions from the values themselves, without moving them: one script
// call per product (its keys share a hash tag), pipelined. A value that is
// absent, whose version prefix does not read, or that is split and lost a
// segment reads -1.
func (s *Store) ProductVersions(ctx context.Context, ids []int64) (map[int64]StoredVersions, error) {
	if len(ids) == 0 {
		return map[int64]StoredVersions{}, nil
	}
	var cmds []*redis.Cmd
	once := func() (int, error) {
		cmds = make([]*redis.Cmd, len(ids))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				keys := make([]string, 0, 1+len(catalog.ProductDimensions))
				keys = append(keys, ItemKey(id))
				for _, d := range catalog.ProductDimensions {
					keys = append(keys, DimKey(id, d))
				}
				cmds[i] = versionsScript.EvalSha(ctx, p, keys)
			}
			return nil
		})
		return 0, err
	}
	if _, err := s.writeRetrying(ctx, versionsScript, once); err != nil {
		return nil, fmt.Errorf("redis: product versions: %w", err)
	}
	out := make(map[int64]StoredVersions, len(ids))
	for i, id := range ids {
		vs, err := cmds[i].Int64Slice()
		if err != nil || len(vs) != 1+len(catalog.ProductDimensions) {
			return nil, fmt.Errorf("redis: product versions of %d: %v", id, err)
		}
		out[id] = StoredVersions{Page: vs[0], Dims: vs[1:]}
	}
	return out, nil
}

// patchScript writes one small dimension (price or stock: KEYS[1], never
// split) with the compare-and-set rule of casScript, and then patches the
// product's page document (KEYS[2]) in place instead of rebuilding it —
// only when the page is exactly the one built from what Redis held before
// this write: its version equals the sum of the dimensions' versions
// (KEYS[3..] are the product's other dimensions). Each dimension in a page
// has a version at most the stored one (versions only grow), so equal sums
// mean equal versions, dimension by dimension. The patch replaces the page
// member ARGV[3] (its old value must have the exact shape the page builder
// writes) with ARGV[4], updated_at with ARGV[5], and the version with the
// sum after the write. When the page keeps its length (the usual edit: as
// many digits, the same status) the three places are overwritten in place
// with SETRANGE, reading only the page's head and tail: the whole page is
// neither copied nor replicated nor appended to the AOF. ARGV[1], ARGV[2]:
// the dimension's version and value; ARGV[6]: the largest unsplit value.
//
// Returns {0, 0}: not written (Redis had this version or a newer one);
// {1, 0}: written, the page must be rebuilt (absent, split, built from
// other versions, or not of the expected shape); {2, v}: written and the
// page patched to version v.
var patchScript = redis.NewScript(`
local function version(v)
  return tonumber(string.match(v, '^{"version":(%d+)'))
end
local newv = tonumber(ARGV[1])
local oldv = version(redis.call('GETRANGE', KEYS[1], 0, 39))
if oldv and oldv >= newv then return {0, 0} end
redis.call('SET', KEYS[1], ARGV[2])
if not oldv then return {1, 0} end
local sum = oldv
for i = 3, #KEYS do
  local v = version(redis.call('GETRANGE', KEYS[i], 0, 39))
  if not v then return {1, 0} end
  sum = sum + v
end
local shape
if ARGV[3] == 'stock' then
  shape = '^{"available":%d+,"status":"[%w_]+","label":"[^"\\]*"}'
elseif ARGV[3] == 'price' then
  shape = '^{"amount":"[%d.]*","list":"[%d.]*","currency":"[^"\\]*","symbol":"[^"\\]*"}'
else
  return {1, 0}
end
local newpv = sum - oldv + newv
local newpvs = string.format('%d', newpv)
local ua = ',"updated_at":'
-- Most edits keep the page's length (same digits, same status): then the
-- three places are overwritten in place (SETRANGE), and neither the page
-- nor its replication and AOF entry carry the whole page. Only the first
-- KB of the page is read where the member usually is (bytes a script
-- reads cost it twice: as a reply, then as a Lua string), 4 KB if not.
local len = redis.call('STRLEN', KEYS[2])
local head = redis.call('GETRANGE', KEYS[2], 0, 1023)
local pvs = string.match(head, '^{"version":(%d+),')
if not pvs or tonumber(pvs) ~= sum or string.find(head, '^"segments":', #pvs + 13) then return {1, 0} end
local _, at = string.find(head, ',"' .. ARGV[3] .. '":', 1, true)
if not at and len > 1024 then
  head = redis.call('GETRANGE', KEYS[2], 0, 4095)
  _, at = string.find(head, ',"' .. ARGV[3] .. '":', 1, true)
end
local s, e
if at then s, e = string.find(head, shape, at + 1) end
if s and #newpvs == #pvs and e - at == #ARGV[4] then
  local t0 = math.max(0, len - 64)
  local tail = redis.call('GETRANGE', KEYS[2], t0, len - 1)
  local us = string.find(tail, ua .. '"[^"\\]*"}$')
  if us and t0 + us - 1 > e and #tail - us - #ua == #ARGV[5] then
    redis.call('SETRANGE', KEYS[2], 11, newpvs)
    redis.call('SETRANGE', KEYS[2], at, ARGV[4])
    redis.call('SETRANGE', KEYS[2], t0 + us - 1 + #ua, ARGV[5])
    return {2, newpv}
  end
end
local page = redis.call('GET', KEYS[2])
_, at = string.find(page, ',"' .. ARGV[3] .. '":', 1, true)
if not at then return {1, 0} end
s, e = string.find(page, shape, at + 1)
if not s then return {1, 0} end
-- updated_at is the last member: looked for in the tail only
local us = string.find(page, ua .. '"[^"\\]*"}$', math.max(e + 1, #page - 63))
if not us then return {1, 0} end
local out = '{"version":' .. newpvs .. string.sub(page, #pvs + 12, at) ..
  ARGV[4] .. string.sub(page, e + 1, us - 1) .. ua .. ARGV[5] .. '}'
if #out > tonumber(ARGV[6]) then return {1, 0} end
redis.call('SET', KEYS[2], out)
return {2, newpv}
`)

// Patch is one edit of a price or stock for PatchPages.
type Patch struct {
	ID        int64
	Dim       catalog.Dimension // catalog.DimPrice or catalog.DimStock
	Version   int64
	Value     []byte // the dimension's value, starting with its version
	Member    []byte // the page member's new value (its JSON)
	UpdatedAt []byte // the page's new updated_at (its JSON string)
}

// Patch outcomes.
const (
	PatchStale   = 0 // not written: Redis had this version or a newer one
	PatchWritten = 1 // the dimension was written; the page must be rebuilt
	PatchPatched = 2 // the dimension was written and the page patched
)

// PatchResult is what PatchPages did with one Patch.
type PatchResult struct {
	Outcome     int
	PageVersion int64 // PatchPatched: the page's new version
}

// PatchPages writes each patch's dimension with the versioned
// compare-and-set and, where the page document is exactly the one built
// from the other stored dimensions, patches the page in place (patchScript):
// one script call per product, pipelined. The page a patch writes is the
// one catalog.BuildPage would build from the stored dimensions (the member
// and updated_at replaced, the version summed again). Not on a fenced
// view: its writes must check the fence (use Put).
func (s *Store) PatchPages(ctx context.Context, patches []Patch) ([]PatchResult, error) {
	if s.fenceKey != "" {
		return nil, fmt.Errorf("redis: patch pages: not on a fenced view")
	}
	out := make([]PatchResult, len(patches))
	if len(patches) == 0 {
		return out, nil
	}
	for _, p := range patches {
		if len(p.Value) > MaxValueBytes || (p.Dim != catalog.DimPrice && p.Dim != catalog.DimStock) || VersionOf(p.Value) != p.Version {
			return nil, fmt.Errorf("redis: patch %d %s: want a small price or stock value starting with its version", p.ID, p.Dim)
		}
	}
	var cmds []*redis.Cmd
	once := func() (int, error) {
		cmds = make([]*redis.Cmd, len(patches))
		_, err := s.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i, p := range patches {
				keys := make([]string, 0, 1+len(catalog.ProductDimensions))
				keys = append(keys, DimKey(p.ID, p.Dim), ItemKey(p.ID))
				for _, d := range catalog.ProductDimensions {
					if d != p.Dim {
						keys = append(keys, DimKey(p.ID, d))
					}
				}
				cmds[i] = patchScript.EvalSha(ctx, pl, keys, p.Version, p.Value, string(p.Dim), p.Member, p.UpdatedAt, MaxValueBytes)
			}
			return nil
		})
		return 0, err
	}
	if _, err := s.writeRetrying(ctx, patchScript, once); err != nil {
		return nil, fmt.Errorf("redis: patch pages: %w", err)
	}
	for i, c := range cmds {
		vs, err := c.Int64Slice()
		if err != nil || len(vs) != 2 {
			return nil, fmt.Errorf("redis: patch page %d: %v", patches[i].ID, err)
		}
		out[i] = PatchResult{Outcome: int(vs[0]), PageVersion: vs[1]}
	}
	return out, nil
}

// Patches reports whether PatchPages may be used on s: not on a fenced
// view.
func (s *Store) Patches() bool { return s.fenceKey == "" }
