-- detailpage.hotcount: counts page requests per product id and reports
-- them to the hot service (`detailpage hot`, POST /api/report). Used by
-- both nginx tiers.
--
--   hotcount.init({ node = "app1", hot = "127.0.0.1:9104,..." })  init_by_lua
--   hotcount.start()       init_worker_by_lua: the reporting timer
--   hotcount.count(id)     request path: the page answered 200
--   hotcount.missing(id)   request path: the page answered 404
--   hotcount.status()      what the admin status shows
--
-- The request path does one increment in this worker's table
-- (detailpage.hotbatch, bounded to max_ids distinct ids per interval), no
-- I/O and no shared dict. Every `interval` each worker's timer pushes its
-- table, serialized, onto a list in the dp_hotq shared dict and starts a
-- new one; then the one worker that takes a short lock (shdict:add,
-- expiring before the next tick, as dist.lua's prober) pops every queued
-- batch, merges them into one report for the node and POSTs it to EVERY
-- configured hot instance (each holds the whole picture, so any one can
-- answer the dist tier; losing one loses nothing), each in its own light
-- thread with one deadline of `timeout` for connect, send and the status
-- line. A slow or dead instance costs that timer at most `timeout` and its
-- report is dropped; nothing waits for it. Its failure is logged once
-- (and its recovery once) per node, not every tick, and while it fails it
-- gets one try per `retry` seconds (the other reports to it are dropped):
-- a frozen instance whose kernel still accepts connections would
-- otherwise queue one per interval and read them all when it wakes.
--
-- The request goes over a cosocket (detailpage.httpc: timers cannot use
-- ngx.location.capture): HTTP/1.0 with Content-Length and Connection: close
-- (one short connection per instance per interval on a local network).
--
-- With hot = "" reporting is off: count() and missing() return at once
-- and start() starts nothing.

local hotbatch = require "detailpage.hotbatch"
local httpc = require "detailpage.httpc"

local ngx = ngx
local ngx_log = ngx.log
local ngx_now = ngx.now
local shared = ngx.shared
local type = type
local pairs = pairs
local ipairs = ipairs
local tonumber = tonumber
local tostring = tostring
local os_getenv = os.getenv
local str_match = string.match
local str_find = string.find
local str_sub = string.sub
local str_gmatch = string.gmatch

local ERR = ngx.ERR
local WARN = ngx.WARN

local DICT = "dp_hotq"
local QUEUE = "q"
local LOCK = "report:lock"
local STAT = "stat:"
local MAX_ANSWER = 64 * 1024  -- bytes of an answer to a report read (the reason of a refusal)

-- The one place the reporting settings have values; init's caller passes
-- only node, hot and what differs.
local DEFAULTS = {
    interval = 0.25,     -- seconds between flushes and reports
    timeout = 0.2,       -- seconds for one POST: connect, send, status line
    max_ids = 20000,     -- distinct ids per worker and per report (the service's limit)
    max_missing = 1000,  -- missing ids per worker and per report (the service's limit)
    retry = 1,           -- seconds between tries of an instance that fails
}

local _M = {}

local config
local enabled = false
local instances = {}   -- { name = "host:port", host =, port = }
local headers          -- of a report (User-Agent, Content-Type, the token)
local batch            -- this worker's hotbatch for the current interval
local tracker

local function log(lvl, ...)
    return ngx_log(lvl, "[hotcount] ", ...)
end

-- parse_instances turns opts.hot, "host:port,host:port", into a list of
-- { name = "host:port", host =, port = } (the dist tier's hot poll reads
-- the same setting); raises on an item that is not host:port.
local function parse_instances(s)
    local out = {}
    for item in str_gmatch(s, "[^,]+") do
        item = str_match(item, "^%s*(.-)%s*$")
        if item ~= "" then
            local host, port = str_match(item, "^([^:%s]+):(%d+)$")
            port = tonumber(port)
            if not host or port < 1 or port > 65535 then
                error("opts.hot: " .. item .. " is not host:port", 3)
            end
            out[#out + 1] = { name = item, host = host, port = port }
        end
    end
    return out
end
_M.parse_instances = parse_instances

-- init runs in init_by_lua. opts: node (the report's node name), hot (the
-- hot service instances, "" = off) and any of DEFAULTS' keys.
function _M.init(opts)
    if type(opts) ~= "table" then
        error("opts must be a table", 2)
    end
    if type(opts.node) ~= "string" or #opts.node < 1 or #opts.node > 64
        or not str_find(opts.node, "^[%w._:-]+$") then
        error("opts.node must be 1 to 64 characters of [A-Za-z0-9._:-]", 2)
    end
    if type(opts.hot) ~= "string" then
        error("opts.hot must be a string", 2)
    end
    config = { node = opts.node }
    for k, v in pairs(DEFAULTS) do
        config[k] = v
    end
    for k, v in pairs(opts) do
        if k ~= "node" and k ~= "hot" then
            if DEFAULTS[k] == nil then
                error("opts." .. tostring(k) .. " is not a setting", 2)
            end
            if type(v) ~= "number" or v <= 0 then
                error("opts." .. k .. " must be a positive number", 2)
            end
            config[k] = v
        end
    end
    instances = parse_instances(opts.hot)
    enabled = #instances > 0
    local token = os_getenv("DETAILPAGE_ADMIN_TOKEN")
    headers = { ["User-Agent"] = "detailpage-hotcount", ["Content-Type"] = "application/json" }
    if token and token ~= "" then
        headers["Authorization"] = "Bearer " .. token
    end
    batch = hotbatch.new(config.max_ids, config.max_missing)
end

-- count: the page for id answered 200. id: the id string from the URI.
function _M.count(id)
    if enabled then
        batch:add(id)
    end
end

-- missing: the page for id answered 404.
function _M.missing(id)
    if enabled then
        batch:add_missing(id)
    end
end

function _M.enabled() return enabled end
function _M._batch() return batch end -- for tests

local function bump(name, by)
    shared[DICT]:incr(STAT .. name, by or 1, 0)
end

-- flush pushes this worker's batch onto the node's queue and starts a new
-- one. A full queue (the reporter has not run for a while) drops it.
local queue_full_logged = 0
local function flush()
    if batch:empty() then
        return
    end
    local b = batch
    batch = hotbatch.new(config.max_ids, config.max_missing)
    local len, err = shared[DICT]:lpush(QUEUE, b:serialize())
    if not len then
        bump("batches_dropped")
        local now = ngx_now()
        if now - queue_full_logged > 60 then
            queue_full_logged = now
            log(WARN, "batch of this worker dropped: ", err)
        end
    end
end

-- post sends one report to one instance: `timeout` for the whole of it.
local function post(inst, body)
    local status, err, answer, line = httpc.request({
        host = inst.host,
        port = inst.port,
        method = "POST",
        path = "/api/report",
        headers = headers,
        body = body,
        total_timeout = config.timeout,
        max_body = MAX_ANSWER,
    })
    if not status then
        return nil, err
    end
    if status >= 200 and status < 300 then
        return true
    end
    -- the reason, for the log: the start of the answer's body
    return nil, "answered " .. line .. " " .. str_sub(answer, 1, 512)
end

local function report_to(inst, body)
    if not tracker:should_try(inst.name, config.retry) then
        bump("skipped:" .. inst.name)
        return
    end
    local ok, err = post(inst, body)
    bump(ok and ("sent:" .. inst.name) or ("failed:" .. inst.name))
    local change = tracker:record(inst.name, ok, err, ngx_now())
    if change == "down" then
        log(WARN, "hot service ", inst.name, " is failing, its reports are dropped until it answers: ", err)
    elseif change == "up" then
        log(WARN, "hot service ", inst.name, " answers reports again")
    end
end

-- report pops every queued batch, merges them and posts the report to
-- every instance.
local function report()
    local q = shared[DICT]
    local m = hotbatch.merger(config.max_ids, config.max_missing)
    while true do
        local s = q:rpop(QUEUE)
        if not s then
            break
        end
        m:add(s)
    end
    if m.bad > 0 then
        log(ERR, m.bad, " queued batches in an unknown format skipped")
    end
    local body = m:report(config.node, config.interval * 1000)
    if m.dropped > 0 then
        bump("views_dropped", m.dropped)
    end
    if not body then
        return
    end
    bump("reports")
    local spawn, wait = ngx.thread.spawn, ngx.thread.wait
    local threads = {}
    for _, inst in ipairs(instances) do
        local th, err = spawn(report_to, inst, body)
        if th then
            threads[#threads + 1] = th
        else
            log(ERR, "report to ", inst.name, ": ", err)
        end
    end
    for i = 1, #threads do
        wait(threads[i])
    end
end

local function tick(premature)
    flush()
    if premature or ngx.worker.exiting() then
        return
    end
    -- One worker per interval reports; the lock expires before the next tick.
    if not shared[DICT]:add(LOCK, true, config.interval * 0.8) then
        return
    end
    report()
end

-- start runs in init_worker_by_lua: the timer of this worker.
function _M.start()
    if not config then
        error("hotcount.init was not called", 2)
    end
    if not enabled then
        return
    end
    local dict = shared[DICT]
    if not dict then
        error("lua_shared_dict " .. DICT .. " is not declared", 2)
    end
    tracker = hotbatch.tracker(dict)
    local ok, err = ngx.timer.every(config.interval, tick)
    if not ok then
        log(ERR, "start the reporting timer: ", err)
    end
end

-- status: the reporting state, for the tiers' admin status.
function _M.status()
    if not enabled then
        return { enabled = false }
    end
    local dict = shared[DICT]
    local out = {
        enabled = true,
        node = config.node,
        interval_ms = config.interval * 1000,
        reports = dict:get(STAT .. "reports") or 0,
        -- page views and 404s the bounds (max_ids, max_missing) left out
        views_dropped = dict:get(STAT .. "views_dropped") or 0,
        batches_dropped = dict:get(STAT .. "batches_dropped") or 0,
        instances = {},
    }
    for i, inst in ipairs(instances) do
        local st = tracker and tracker:status(inst.name) or { failing = false }
        st.instance = inst.name
        st.sent = dict:get(STAT .. "sent:" .. inst.name) or 0
        st.failed = dict:get(STAT .. "failed:" .. inst.name) or 0
        st.skipped = dict:get(STAT .. "skipped:" .. inst.name) or 0
        out.instances[i] = st
    end
    return out
end

return _M
