-- detailpage.invalidate: drops local copies of what the sync service
-- changed, within a fraction of a second, whatever the local TTLs.
--
-- The sync service appends "p:<id>:<version>,s:<id>:<version>,..." entries
-- to the Redis stream dp:invalidate on Redis main. Every app worker follows
-- the stream on the replica with blocking reads (XREAD BLOCK, in a timer
-- that loops): an entry is applied as soon as the replica has it, not at
-- the next tick of a poll (which cost an edit 50 ms on average, 100 ms at
-- worst, on its way to the page). Why a stream read from the replica
-- rather than a push to each node's purge endpoint: the entry travels in the
-- same replication stream as the data, so when a node reads it the replica
-- already holds the new value (a push could arrive first, and the node would
-- cache the old value again); the sync service needs no list of app nodes;
-- and a node that was unreachable catches up from its last entry id.
--
-- The follower itself (follower below) only reads the stream and hands
-- each change to callbacks: the app tier runs one in every worker (start,
-- follow: blocking reads), the dist tier one per nginx for its hot-page
-- copies (detailpage.hot, tick: one read per timer tick under a lock).
--
-- Work that needs nothing from the replica runs on a timer of its own, so
-- it goes on while the replica is unreachable: operator purges reach every
-- worker's L1, and each worker's hit counts reach the node's totals.

local ngx = ngx
local ngx_log = ngx.log
local ngx_null = ngx.null
local timer_every = ngx.timer.every
local timer_at = ngx.timer.at
local ngx_sleep = ngx.sleep
local tonumber = tonumber
local tostring = tostring
local type = type
local ipairs = ipairs
local pcall = pcall
local setmetatable = setmetatable
local gmatch = string.gmatch

local WARN = ngx.WARN
local ERR = ngx.ERR

local STREAM = "dp:invalidate"
local BLOCK_MS = 500        -- longest wait of one blocking read (XREAD BLOCK)
local READ_MARGIN_MS = 500  -- socket read timeout beyond BLOCK_MS: a hung
                            -- replica is given up after BLOCK_MS + this
local RETRY = 0.1           -- seconds before a failed read is tried again
local LOCAL_INTERVAL = 0.1  -- seconds between runs of the local work
local BATCH = 1000          -- entries per read

local _M = {}

local function log(lvl, ...)
    ngx_log(lvl, "[invalidate] ", ...)
end

----------------------------------------------------------------------------
-- Entries (pure: lua/spec/hot_spec.lua).

-- parse calls item(id, version) for each "p:<id>:<version>" and
-- shop(id, version) for each "s:<id>:<version>" of an entry's "ids" field;
-- ids are strings, versions numbers.
function _M.parse(ids, item, shop)
    for kind, id, version in gmatch(ids, "([ps]):(%d+):(%d+)") do
        if kind == "p" then
            item(id, tonumber(version))
        else
            shop(id, tonumber(version))
        end
    end
end

-- apply_reply applies the entries of an XREAD reply
-- { { stream, { { id, { field, value, ... } }, ... } } } and returns how
-- many there were and the id of the last one (nil when none).
function _M.apply_reply(reply, item, shop)
    if type(reply) ~= "table" or type(reply[1]) ~= "table" then
        return 0
    end
    local n, last = 0, nil
    for _, entry in ipairs(reply[1][2] or {}) do
        local fields = entry[2]
        if type(fields) == "table" then
            for i = 1, #fields, 2 do
                if fields[i] == "ids" and type(fields[i + 1]) == "string" then
                    _M.parse(fields[i + 1], item, shop)
                end
            end
        end
        last = entry[1]
        n = n + 1
    end
    return n, last
end

----------------------------------------------------------------------------
-- The follower.

-- Where a follower keeps the last entry it applied, by default: itself.
local local_last = {}
local_last.__index = local_last
function local_last:get() return self.id end
function local_last:set(id) self.id = id end

-- follower returns a stream follower: a table with tick(premature), a
-- timer callback doing one read; follow(stop) and start(), a loop of
-- blocking reads (see follow); and last_id(). opts:
--   connect()      -> a connection to the replica, or nil and an error
--   release(red)   takes a connection back after a good read (keepalive)
--   item(id, v)    product id changed to version v
--   shop(id, v)    shop id changed to version v
--   last           optional { get = function(self), set = function(self, id) }:
--                  where the last applied entry id is kept (default: in the
--                  follower; a shared dict lets another worker take over)
--   may_run()      optional: false skips this tick (one worker of several)
--   done(n)        optional: called after each good read with the count
--   block_ms       optional: longest wait of one blocking read (follow; 500)
--   retry          optional: seconds before a failed read is tried again
--                  (follow; 0.1)
-- A follower with no last entry id starts after the newest entry: whoever
-- runs it has empty caches.
function _M.follower(opts)
    if type(opts) ~= "table" then
        error("opts must be a table", 2)
    end
    for _, k in ipairs({ "connect", "release", "item", "shop" }) do
        if type(opts[k]) ~= "function" then
            error("opts." .. k .. " must be a function", 2)
        end
    end
    local last = opts.last or setmetatable({}, local_last)
    local item, shop = opts.item, opts.shop
    local running = false
    local failures = 0

    -- trouble logs a failed read, but only the first of a run and every
    -- 100th after it: the follower retries ten times a second.
    local function trouble(what, err)
        failures = failures + 1
        if failures == 1 or failures % 100 == 0 then
            log(WARN, what, ": ", tostring(err), " (", failures, " in a row)")
        end
    end

    -- read applies what the stream holds past the last entry; the number
    -- of entries, or nil and an error. With block_ms it waits up to that
    -- long for the first entry when there is none yet (XREAD BLOCK).
    local function read(red, block_ms)
        local last_id = last:get()
        if not last_id then
            local newest, err = red:xrevrange(STREAM, "+", "-", "COUNT", 1)
            if err then
                return nil, err
            end
            last_id = (type(newest) == "table" and newest[1] and newest[1][1]) or "0-0"
            last:set(last_id)
        end
        local total = 0
        while true do
            local reply, err
            if block_ms and total == 0 then
                reply, err = red:xread("BLOCK", block_ms, "COUNT", BATCH, "STREAMS", STREAM, last_id)
            else
                reply, err = red:xread("COUNT", BATCH, "STREAMS", STREAM, last_id)
            end
            if err then
                return nil, err
            end
            if reply == ngx_null then
                return total
            end
            local n, id = _M.apply_reply(reply, item, shop)
            if id then
                last_id = id
                last:set(id)
            end
            total = total + n
            if n < BATCH then
                return total
            end
        end
    end

    -- once does one read (blocking for up to block_ms when given) and
    -- reports whether it went well.
    local function once(block_ms)
        local red, err = opts.connect()
        if not red then
            trouble("cannot reach the replica for the invalidation stream", err)
            return false
        end
        if block_ms then
            -- this connection only: a pooled one gets its caller's timeouts
            red:set_timeout(block_ms + READ_MARGIN_MS)
        end
        local ok, n, rerr = pcall(read, red, block_ms)
        if not ok or not n then
            trouble("reading the invalidation stream", ok and rerr or n)
            red:close()
            return false
        end
        if failures > 0 then
            log(WARN, "invalidation stream readable again after ", failures, " failed reads")
            failures = 0
        end
        opts.release(red)
        if opts.done then
            opts.done(n)
        end
        return true
    end

    local f = {}

    function f.tick(premature)
        if premature or running then
            return
        end
        if opts.may_run and not opts.may_run() then
            return
        end
        running = true
        once()
        running = false
    end

    -- follow reads with XREAD BLOCK in a loop until stop() says so
    -- (default: the worker is exiting); run it in a timer of its own
    -- (f.start). Each read takes a connection from connect() and hands it
    -- back, so a Sentinel's new replica is used from the next read on.
    -- A failed read is tried again after opts.retry seconds (0.1).
    -- opts.block_ms (500) bounds each wait: the loop sees stop() at least
    -- that often, and a replica that stops answering is given up
    -- READ_MARGIN_MS after it.
    function f.follow(stop)
        stop = stop or ngx.worker.exiting
        local block_ms = opts.block_ms or BLOCK_MS
        local retry = opts.retry or RETRY
        if running then
            return
        end
        running = true
        while not stop() do
            if not opts.may_run or opts.may_run() then
                if not once(block_ms) then
                    ngx_sleep(retry)
                end
            else
                ngx_sleep(retry)
            end
        end
        running = false
    end

    -- start runs follow in a timer; the loop ends when the worker exits.
    function f.start()
        local ok, err = timer_at(0, function(premature)
            if premature then
                return
            end
            local fine, ferr = pcall(f.follow)
            if not fine then
                running = false
                log(ERR, "invalidation follower stopped: ", tostring(ferr), "; restarting it")
                if not ngx.worker.exiting() then
                    ngx_sleep(opts.retry or RETRY)
                    f.start()
                end
            end
        end)
        if not ok then
            log(ERR, "cannot start the invalidation follower: ", tostring(err))
        end
        return ok, err
    end

    function f.last_id()
        return last:get()
    end

    return f
end

----------------------------------------------------------------------------
-- The app tier: every worker follows the stream and drops its own copies.

local app_follower  -- this worker's (start)

-- Operator purges (POST /_admin/purge) are handled by one worker; it
-- queues the ids in dp_state and every worker drops its own L1 copies here.
local purge_seq
local purge_done -- the purge_seq last written to dp_state

local function apply_purges(app)
    local state = ngx.shared.dp_state
    local seq = state:get("purge:seq") or 0
    if not purge_seq then
        purge_seq = seq -- a new worker's L1 is empty: nothing queued concerns it
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
    -- what this worker has applied, for the purge's answer (wait_purged);
    -- written when it moves, not on every tick (no expiry: it must stay)
    if purge_seq ~= purge_done then
        state:set("purge:done:" .. ngx.worker.id(), purge_seq)
        purge_done = purge_seq
    end
end

-- wait_purged waits until every worker of the node has applied purge seq
-- (each does within LOCAL_INTERVAL), at most limit seconds; returns how
-- many workers had not when it gave up (0: all have).
function _M.wait_purged(seq, limit)
    local state = ngx.shared.dp_state
    local deadline = ngx.now() + limit
    while true do
        local behind = 0
        for w = 0, ngx.worker.count() - 1 do
            if (state:get("purge:done:" .. w) or 0) < seq then
                behind = behind + 1
            end
        end
        if behind == 0 or ngx.now() >= deadline then
            return behind
        end
        ngx_sleep(0.01)
    end
end

-- queue_purge asks every worker of the node to drop ids (a string of
-- comma-separated ids) from its L1; returns the purge's sequence number.
function _M.queue_purge(ids)
    local state = ngx.shared.dp_state
    local seq, err = state:incr("purge:seq", 1, 0)
    if not seq then
        return nil, err
    end
    local ok, serr = state:set("purge:" .. seq, ids, 60)
    if not ok then
        return nil, serr
    end
    return seq
end

-- start runs the app tier's follower and the local work in this worker.
function _M.start()
    -- required here, not at the top: the dist tier uses the follower alone
    local app = require "detailpage.app"
    local replica = app.replica()
    app_follower = _M.follower({
        connect = replica.connect,
        release = replica.release,
        item = app.drop,
        shop = app.shop_changed,
    })
    app_follower.start()
    -- local_tick does this worker's share of the node's work: purges
    -- queued by another worker, hit counts into the node's totals.
    local ok, err = timer_every(LOCAL_INTERVAL, function(premature)
        if premature then
            return
        end
        apply_purges(app)
        app.flush_hits()
    end)
    if not ok then
        log(ERR, "cannot start the purge and hit-count timer: ", tostring(err))
    end
end

-- last_id is the last entry this worker applied (app tier).
function _M.last_id()
    return app_follower and app_follower.last_id()
end

_M.STREAM = STREAM

return _M
