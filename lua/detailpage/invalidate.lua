-- detailpage.invalidate: drops local copies of what the sync service
-- changed, within a fraction of a second, whatever the local TTLs.
--
-- The sync service appends "p:<id>:<version>,s:<id>:<version>,..." entries
-- to the Redis stream dp:invalidate on Redis main. Every worker follows the
-- stream on the replica from a timer. Why a stream read from the replica
-- rather than a push to each node's purge endpoint: the entry travels in the
-- same replication stream as the data, so when a node reads it the replica
-- already holds the new value (a push could arrive first, and the node would
-- cache the old value again); the sync service needs no list of app nodes;
-- and a node that was unreachable catches up from its last entry id.
--
-- Work that needs nothing from the replica runs on a timer of its own, so
-- it goes on while the replica is unreachable: operator purges reach every
-- worker's L1, and each worker's hit counts reach the node's totals.

local app = require "detailpage.app"

local ngx = ngx
local ngx_log = ngx.log
local ngx_null = ngx.null
local timer_every = ngx.timer.every
local tonumber = tonumber
local tostring = tostring
local type = type
local gmatch = string.gmatch

local WARN = ngx.WARN
local ERR = ngx.ERR

local STREAM = "dp:invalidate"
local INTERVAL = 0.1        -- seconds between reads of the stream
local LOCAL_INTERVAL = 0.1  -- seconds between runs of the local work
local BATCH = 1000          -- entries per read

local _M = {}

local last_id        -- last stream entry this worker applied
local running = false
local failures = 0

local function log(lvl, ...)
    ngx_log(lvl, "[invalidate] ", ...)
end

-- apply handles one entry's "ids" field.
local function apply(ids)
    for kind, id, version in gmatch(ids, "([ps]):(%d+):(%d+)") do
        if kind == "p" then
            app.drop(id, tonumber(version))
        else
            app.shop_changed(id, tonumber(version))
        end
    end
end

-- entries of an XREAD reply: { { stream, { { id, { field, value, ... } }, ... } } }
local function apply_reply(reply)
    if type(reply) ~= "table" or type(reply[1]) ~= "table" then
        return 0
    end
    local n = 0
    for _, entry in ipairs(reply[1][2] or {}) do
        local fields = entry[2]
        if type(fields) == "table" then
            for i = 1, #fields, 2 do
                if fields[i] == "ids" and type(fields[i + 1]) == "string" then
                    apply(fields[i + 1])
                end
            end
        end
        last_id = entry[1]
        n = n + 1
    end
    return n
end

-- Operator purges (POST /_admin/purge) are handled by one worker; it
-- queues the ids in dp_state and every worker drops its own L1 copies here.
local purge_seq

local function apply_purges()
    local state = ngx.shared.dp_state
    local seq = state:get("purge:seq") or 0
    if not purge_seq then
        purge_seq = seq
        return
    end
    while purge_seq < seq do
        purge_seq = purge_seq + 1
        local ids = state:get("purge:" .. purge_seq)
        if ids then
            for id in gmatch(ids, "%d+") do
                app.drop_local(id)
            end
        end
    end
end

-- queue_purge asks every worker of the node to drop ids (a string of
-- comma-separated ids) from its L1.
function _M.queue_purge(ids)
    local state = ngx.shared.dp_state
    local seq, err = state:incr("purge:seq", 1, 0)
    if not seq then
        return nil, err
    end
    return state:set("purge:" .. seq, ids, 60)
end

-- trouble logs a failed read, but only the first of a run and every 100th
-- after it: the follower retries ten times a second.
local function trouble(what, err)
    failures = failures + 1
    if failures == 1 or failures % 100 == 0 then
        log(WARN, what, ": ", err, " (", failures, " in a row)")
    end
end

-- tick reads the invalidation stream on the replica.
local function tick(premature)
    if premature or running then
        return
    end
    running = true
    local red, err = app.connect_replica()
    if not red then
        trouble("cannot reach the replica for the invalidation stream", err)
        running = false
        return
    end
    if not last_id then
        -- a new worker has empty caches: start after the newest entry
        local newest, rerr = red:xrevrange(STREAM, "+", "-", "COUNT", 1)
        if rerr then
            trouble("reading the invalidation stream", rerr)
            red:close()
            running = false
            return
        end
        last_id = (type(newest) == "table" and newest[1] and newest[1][1]) or "0-0"
    end
    while true do
        local reply, rerr = red:xread("COUNT", BATCH, "STREAMS", STREAM, last_id)
        if rerr then
            trouble("reading the invalidation stream", rerr)
            red:close()
            running = false
            return
        end
        if reply == ngx_null or apply_reply(reply) < BATCH then
            break
        end
    end
    if failures > 0 then
        log(WARN, "invalidation stream readable again after ", failures, " failed reads")
        failures = 0
    end
    app.release_replica(red)
    running = false
end

-- local_tick does this worker's share of the node's work: purges queued by
-- another worker, hit counts into the node's totals.
local function local_tick(premature)
    if premature then
        return
    end
    apply_purges()
    app.flush_hits()
end

-- start runs the follower and the local work in this worker.
function _M.start()
    local ok, err = timer_every(INTERVAL, tick)
    if not ok then
        log(ERR, "cannot start the invalidation timer: ", tostring(err))
    end
    ok, err = timer_every(LOCAL_INTERVAL, local_tick)
    if not ok then
        log(ERR, "cannot start the purge and hit-count timer: ", tostring(err))
    end
end

function _M.last_id() return last_id end

return _M
