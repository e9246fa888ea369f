-- detailpage.hotbatch: the pure parts of hot-product reporting
-- (detailpage.hotcount is the nginx side), tested with busted.
--
--   batch = hotbatch.new(max_ids, max_missing)   one worker's interval
--   batch:add(id)          one page answered 200 (a table increment)
--   batch:add_missing(id)  one page answered 404
--   s = batch:serialize()  compact text for the dp_hotq queue
--   m = hotbatch.merger(max_ids, max_missing)
--   m:add(s)               one queued batch
--   body = m:report(node, interval_ms)   POST /api/report JSON, or nil
--   t = hotbatch.tracker(dict)
--   t:record(instance, ok, err, now)     "down" / "up" on a change, else nil
--   t:should_try(instance, retry)        false while a failing one waits
--
-- Bounds: a batch keeps at most max_ids distinct ids (a flood of random ids
-- cannot grow a worker's memory); an id first seen past that is dropped
-- and counted in batch.dropped. The merger keeps the max_ids busiest ids of
-- all the node's batches (the report's limit in the hot service), the
-- others are counted as dropped. missing ids are bounded the same way.
--
-- Ids are the page's id as the URI has it: a string of 1 to 18 digits
-- without a leading zero. They stay strings all the way (the report's keys
-- are JSON strings): Lua numbers lose digits past 2^53.

local type = type
local pairs = pairs
local tonumber = tonumber
local tostring = tostring
local setmetatable = setmetatable
local concat = table.concat
local sort = table.sort
local str_find = string.find
local str_format = string.format
local str_gmatch = string.gmatch
local str_match = string.match
local math_floor = math.floor
local math_min = math.min

local MAX_COUNT = 1000000000 -- the hot service's limit for one id in one report
local MAX_ID_LEN = 18

local _M = {}

-- valid_id returns id as the canonical string, or nil for anything that
-- is not a product id (the request path does not check; this does, once
-- per distinct id per interval).
local function valid_id(id)
    if type(id) == "number" then
        if id < 1 or id ~= math_floor(id) or id >= 2 ^ 53 then
            return nil
        end
        id = str_format("%d", id)
    elseif type(id) ~= "string" then
        return nil
    end
    if #id > MAX_ID_LEN or not str_find(id, "^[1-9]%d*$") then
        return nil
    end
    return id
end
_M.valid_id = valid_id

local function check_limit(v, what)
    if type(v) ~= "number" or v < 1 or v ~= math_floor(v) then
        error(what .. " must be a positive integer", 3)
    end
end

----------------------------------------------------------------------------
-- A worker's batch.

local Batch = {}
Batch.__index = Batch

-- new returns an empty batch keeping at most max_ids distinct ids and
-- max_missing missing ids.
function _M.new(max_ids, max_missing)
    check_limit(max_ids, "max_ids")
    check_limit(max_missing, "max_missing")
    return setmetatable({
        counts = {}, n = 0, dropped = 0,
        missing = {}, nmissing = 0,
        max_ids = max_ids, max_missing = max_missing,
    }, Batch)
end

-- add counts one request for id.
function Batch:add(id)
    local counts = self.counts
    local c = counts[id]
    if c then
        counts[id] = c + 1
        return
    end
    if self.n >= self.max_ids then
        self.dropped = self.dropped + 1
        return
    end
    self.n = self.n + 1
    counts[id] = 1
end

-- add_missing records that id answered 404.
function Batch:add_missing(id)
    local missing = self.missing
    if missing[id] then
        return
    end
    if self.nmissing >= self.max_missing then
        self.dropped = self.dropped + 1
        return
    end
    self.nmissing = self.nmissing + 1
    missing[id] = true
end

function Batch:empty()
    return self.n == 0 and self.nmissing == 0 and self.dropped == 0
end

-- serialize returns the batch as "<id>=<n>,...|<id>,...|<dropped>". Ids
-- that are not product ids are dropped here (and counted).
function Batch:serialize()
    local parts, k = {}, 0
    local dropped = self.dropped
    for id, n in pairs(self.counts) do
        local s = valid_id(id)
        if s then
            k = k + 1
            parts[k] = s .. "=" .. n
        else
            dropped = dropped + n
        end
    end
    local miss, j = {}, 0
    for id in pairs(self.missing) do
        local s = valid_id(id)
        if s then
            j = j + 1
            miss[j] = s
        else
            dropped = dropped + 1
        end
    end
    return concat(parts, ",") .. "|" .. concat(miss, ",") .. "|" .. dropped
end

----------------------------------------------------------------------------
-- The node's merged report.

local Merger = {}
Merger.__index = Merger

function _M.merger(max_ids, max_missing)
    check_limit(max_ids, "max_ids")
    check_limit(max_missing, "max_missing")
    return setmetatable({
        counts = {}, n = 0, dropped = 0,
        missing = {}, nmissing = 0, missing_list = {},
        batches = 0, bad = 0,
        max_ids = max_ids, max_missing = max_missing,
    }, Merger)
end

-- add merges one serialized batch. A string not in serialize's format
-- (nothing else writes the queue, so a bug) is counted in m.bad and
-- skipped; returns false then.
function Merger:add(s)
    local c, m, d = str_match(s, "^([^|]*)|([^|]*)|(%d+)$")
    if not c then
        self.bad = self.bad + 1
        return false
    end
    self.batches = self.batches + 1
    self.dropped = self.dropped + tonumber(d)
    local counts = self.counts
    for id, n in str_gmatch(c, "(%d+)=(%d+)") do
        local cur = counts[id]
        if cur then
            counts[id] = cur + tonumber(n)
        else
            self.n = self.n + 1
            counts[id] = tonumber(n)
        end
    end
    local missing, list = self.missing, self.missing_list
    for id in str_gmatch(m, "%d+") do
        if not missing[id] then
            if self.nmissing < self.max_missing then
                self.nmissing = self.nmissing + 1
                missing[id] = true
                list[self.nmissing] = id
            else
                self.dropped = self.dropped + 1
            end
        end
    end
    return true
end

-- busiest returns the ids to report: all of them, or past max_ids the
-- max_ids with the most requests (the rest counted as dropped). Linear in
-- the ids (a flood of random ids makes many of them, nearly all counted
-- once): the threshold count comes from a histogram of the counts, whose
-- distinct values are few, not from sorting the ids.
function Merger:busiest()
    local counts, max = self.counts, self.max_ids
    local ids, k = {}, 0
    for id in pairs(counts) do
        k = k + 1
        ids[k] = id
    end
    if k <= max then
        return ids
    end
    local hist, values = {}, {}
    for i = 1, k do
        local c = counts[ids[i]]
        local h = hist[c]
        if not h then
            values[#values + 1] = c
            hist[c] = 1
        else
            hist[c] = h + 1
        end
    end
    sort(values, function(a, b) return a > b end)
    -- threshold: the count at which the max_ids-th busiest id stands;
    -- room: how many of the ids at exactly that count fit
    local room, threshold = max, 0
    for i = 1, #values do
        local c = values[i]
        if hist[c] >= room then
            threshold = c
            break
        end
        room = room - hist[c]
    end
    local out, j = {}, 0
    for i = 1, k do
        local id = ids[i]
        local c = counts[id]
        if c > threshold or (c == threshold and room > 0) then
            if c == threshold then
                room = room - 1
            end
            j = j + 1
            out[j] = id
        else
            self.dropped = self.dropped + c
        end
    end
    return out
end

-- report returns the body of POST /api/report, or nil when there is
-- nothing to report. Written by hand rather than with cjson: every value
-- is a validated digit string or the node name (checked by hotcount.init),
-- so nothing needs escaping, and the ids stay strings.
function Merger:report(node, interval_ms)
    if self.n == 0 and self.nmissing == 0 then
        return nil
    end
    local ids = self:busiest()
    local counts = self.counts
    local parts = {}
    for i = 1, #ids do
        local id = ids[i]
        parts[i] = '"' .. id .. '":' .. tostring(math_min(counts[id], MAX_COUNT))
    end
    local body = '{"node":"' .. node .. '","interval_ms":' .. interval_ms ..
        ',"counts":{' .. concat(parts, ",") .. "}"
    if self.nmissing > 0 then
        body = body .. ',"missing":["' .. concat(self.missing_list, '","') .. '"]'
    end
    return body .. "}"
end

----------------------------------------------------------------------------
-- Log once per change of an instance's state.

local Tracker = {}
Tracker.__index = Tracker

-- tracker keeps each hot instance's failing state in dict (shdict
-- interface: get, set, add, delete), shared by the node's workers, so a
-- failure is logged once per node however many workers report in turn.
function _M.tracker(dict)
    if type(dict) ~= "table" and type(dict) ~= "userdata" then
        error("dict must be a shared dict", 2)
    end
    return setmetatable({ dict = dict }, Tracker)
end

local function down_key(instance)
    return "down:" .. instance
end

-- record notes how a report to instance went: "down" when it starts
-- failing, "up" when it answers again after failing, nil otherwise.
function Tracker:record(instance, ok, err, now)
    local key = down_key(instance)
    if ok then
        if self.dict:get(key) ~= nil then
            self.dict:delete(key)
            return "up"
        end
        return nil
    end
    -- add is atomic: of two workers recording at once, one logs
    if self.dict:add(key, (now or 0) .. "|" .. tostring(err)) then
        return "down"
    end
    return nil
end

-- should_try tells whether to send instance this interval's report: always
-- while it answers; while it fails, once per retry seconds (of all the
-- node's workers), so a hung instance does not collect a connection per
-- interval in its listen queue, each with a report it would read late.
function Tracker:should_try(instance, retry)
    if self.dict:get(down_key(instance)) == nil then
        return true
    end
    return (self.dict:add("retry:" .. instance, true, retry))
end

-- status returns { failing = bool, since = t, error = first error }.
function Tracker:status(instance)
    local v = self.dict:get(down_key(instance))
    if not v then
        return { failing = false }
    end
    local since, err = str_match(v, "^([^|]*)|(.*)$")
    return { failing = true, since = tonumber(since), error = err }
end

return _M
