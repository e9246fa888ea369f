-- detailpage.warm: a new or restarted app node loads the hottest pages into
-- its L2 before the dist tier sends it traffic.
--
--   warm.init({ hot = "127.0.0.1:9104,..." })  init_by_lua, after app.init
--   warm.start()    init_worker_by_lua, after app.init_worker
--   warm.health()   content of GET /_health: 200 "ok", or 503 "warming"
--   warm.status()   what GET /_admin/status shows under "warm"
--
-- On start one worker (the first to take a lock in dp_state) asks the hot
-- services (`detailpage hot`) for GET /api/top?period=hour&limit=<top>, the
-- first instance that answers (detailpage.httpc; timers cannot use
-- ngx.location.capture); when the hour has fewer than <top> ids, the day's
-- fill up the list (hour first). An instance that refuses the connection
-- costs nothing; a hung one its `timeout`; with none answering the warm-up
-- is skipped at once. Then `threads` light threads load the ids, hottest
-- first, through the node's own levels (detailpage.app's load: the L2
-- check, the per-id lock, the replica read and the render of a page; the
-- replica only, as a timer cannot make subrequests) until the list is
-- done or `max` seconds after the start have passed (then the loading
-- stops too: the node's own traffic fills the rest).
--
-- Until then GET /_health answers 503 "warming": the dist tier's prober
-- (lua/detailpage/dist.lua) keeps the node out of the routing until it is
-- warm, and the supervisor's start-up health check waits for it. After
-- `max` seconds the node is healthy whatever the warm-up is doing, so a
-- slow replica or a hung hot service never keeps a node out for long.
-- docs/architecture.md says why "not ready until warm" rather than a
-- slowly growing weight.
--
-- The state lives in dp_state, so every worker answers /_health and the
-- status alike; a reload (HUP) keeps the dict and with it the warm L2, so
-- it warms nothing again.
--
-- The ids are read from the raw JSON as digit strings (top_ids): cjson
-- reads numbers as doubles, which lose digits past 2^53.

local cjson = require "cjson.safe"
local httpc = require "detailpage.httpc"
local hotcount = require "detailpage.hotcount"

local ngx = ngx
local type = type
local tostring = tostring
local str_find = string.find
local str_gmatch = string.gmatch
local str_sub = string.sub
local math_floor = math.floor
local math_max = math.max
local math_min = math.min

local DICT = "dp_state"
local PREFIX = "warm:"
local MAX_BODY = 1048576  -- bytes of a top list (16,384 ids take ~500 KB)

-- STATES: where a warm-up is; from done on they are final.
--   starting  nginx started, no worker has begun yet
--   fetching  asking the hot services for the top list
--   loading   loading the ids into L2
--   done      every id of the list tried
--   skipped   no list (no hot service answered, or it had no ids)
--   timeout   `max` passed before the list was done
--   failed    the replica failed GIVE_UP loads in a row: the warm-up gave up
--   full      L2 was all but full before the list was done
--   off       top = 0 or no hot service configured
local FINAL = { done = true, skipped = true, timeout = true, failed = true, full = true, off = true }

local _M = {}

local app        -- detailpage.app (its config and load)
local settings   -- app.config().warm
local instances = {}

local function log(lvl, ...)
    return ngx.log(lvl, "[warm] ", ...)
end

----------------------------------------------------------------------------
-- Pure parts (lua/spec/warm_spec.lua).

-- top_ids reads the ids of a GET /api/top answer
-- ({"period":"hour","since":"…","top":[{"id":7,"count":3},…]}) as digit
-- strings, in order: each must be 1 to 18 digits without a leading zero,
-- as in /item/<id>.html. The body must be a JSON object whose "top" is a
-- list of objects, each with its id; the ids are taken from the raw text,
-- not from cjson's doubles. Returns the list, or nil and what is wrong.
function _M.top_ids(body)
    if type(body) ~= "string" then
        return nil, "no body"
    end
    local doc = cjson.decode(body)
    if type(doc) ~= "table" or type(doc.top) ~= "table" then
        return nil, "not a top list"
    end
    local n = #doc.top
    for i = 1, n do
        if type(doc.top[i]) ~= "table" or type(doc.top[i].id) ~= "number" then
            return nil, "top[" .. (i - 1) .. "] has no id"
        end
    end
    -- the list's text: from "top":[ to its closing bracket (entries hold
    -- no brackets or strings with brackets: ids and counts only)
    local _, open = str_find(body, '"top"%s*:%s*%[')
    local close = open and str_find(body, "]", open + 1, true)
    if not close then
        return nil, "not a top list"
    end
    local list = str_sub(body, open + 1, close - 1)
    local out = {}
    for digits in str_gmatch(list, '"id"%s*:%s*(%-?[%d.eE+]+)') do
        if not str_find(digits, "^[1-9]%d*$") or #digits > 18 then
            return nil, "top[" .. #out .. "]: id " .. digits .. " is not 1 to 18 digits"
        end
        out[#out + 1] = digits
    end
    if #out ~= n then
        return nil, "top: " .. n .. " entries but " .. #out .. " ids"
    end
    return out
end

-- merge appends the ids of more not yet in list (a set of list's ids,
-- kept up to date) until list has limit ids.
function _M.merge(list, seen, more, limit)
    for i = 1, #more do
        if #list >= limit then
            break
        end
        local id = more[i]
        if not seen[id] then
            seen[id] = true
            list[#list + 1] = id
        end
    end
    return list
end

-- ready tells whether the node may take traffic: the warm-up is over
-- (state final) or `max` seconds have passed since start (nil: no worker
-- has begun; then not yet).
function _M.ready(state, start, now, max)
    if FINAL[state] then
        return true
    end
    return start ~= nil and now - start >= max
end

-- shown is the state for the status: a warm-up still running past max is
-- reported as the timeout the node already acts on.
function _M.shown(state, start, now, max)
    if not FINAL[state] and start ~= nil and now - start >= max then
        return "timeout"
    end
    return state or "starting"
end

----------------------------------------------------------------------------
-- The hot services' top list.

-- top asks the instances in turn for period's top list and returns the
-- ids; nil and the last error when none answered with a list.
local function top(period, limit, deadline)
    local path = "/api/top?period=" .. period .. "&limit=" .. limit
    local last = "no hot service"
    for _, inst in ipairs(instances) do
        ngx.update_time()
        local status, headers_or_err, body = httpc.request({
            host = inst.host, port = inst.port, path = path,
            headers = { ["User-Agent"] = "detailpage-warm", Accept = "application/json" },
            total_timeout = math_max(0.001, math_min(deadline - ngx.now(), settings.timeout)),
            max_body = MAX_BODY,
        })
        local what = inst.name .. " " .. period .. ": "
        if status == 200 then
            local ids, err = _M.top_ids(body)
            if ids then
                return ids
            end
            last = what .. err
            log(ngx.WARN, "bad top list from ", last)
        elseif status then
            last = what .. "answered " .. status
        else
            last = what .. tostring(headers_or_err)
        end
    end
    return nil, last
end

----------------------------------------------------------------------------
-- The warm-up.

local function dict()
    return ngx.shared[DICT]
end

local function set_state(state)
    dict():set(PREFIX .. "state", state)
end

local function finish(state, start)
    ngx.update_time()
    local d = dict()
    d:set(PREFIX .. "took_ms", math_floor((ngx.now() - start) * 1000 + 0.5))
    d:set(PREFIX .. "state", state)
    log(state == "done" and ngx.INFO or ngx.WARN, "warm-up ", state, ": ",
        d:get(PREFIX .. "loaded") or 0, " pages loaded, ",
        d:get(PREFIX .. "failed") or 0, " failed, of ", d:get(PREFIX .. "ids") or 0,
        " ids, in ", d:get(PREFIX .. "took_ms"), " ms")
end

-- pass loads the ids of list with settings.threads light threads until
-- the list is done, the deadline passes, L2 is all but full (the warm-up
-- evicts nothing: shdict would drop the least recently used, the hottest
-- pages it loaded first) or the replica failed GIVE_UP loads in a row (it
-- is down: the rest would fail too). With final, a
-- failed id counts as failed; otherwise it is returned for one more try
-- (a timeout on a busy machine is worth a second one). Returns the failed
-- ids, whether the pass gave up and whether it went through the list.
local GIVE_UP = 20
local L2_RESERVE = 0.1  -- the share of L2 the warm-up leaves free
local function pass(list, deadline, final)
    local d = dict()
    local job = { next = 0, streak = 0, gave_up = false, failed = {}, logged = 0, late = false }
    local pages = ngx.shared.dp_pages
    local reserve = pages:capacity() * L2_RESERVE
    local function loader()
        while not ngx.worker.exiting() and not job.gave_up and not job.full and job.next < #list do
            ngx.update_time()
            if ngx.now() >= deadline then
                job.late = true
                return
            end
            if pages:free_space() < reserve then
                if not job.full then
                    job.full = true
                    log(ngx.WARN, "warm-up stops with L2 all but full (", pages:free_space(),
                        " bytes free): it loads no page at the cost of another")
                end
                return
            end
            job.next = job.next + 1
            local id = list[job.next]
            local how, err = app.load(id)
            if how == "missing" then
                job.streak = 0
                d:incr(PREFIX .. "missing", 1, 0)
            elseif how then
                job.streak = 0
                d:incr(PREFIX .. "loaded", 1, 0)
            else
                job.streak = job.streak + 1
                job.failed[#job.failed + 1] = id
                if final then
                    d:incr(PREFIX .. "failed", 1, 0)
                end
                if job.logged < 3 then
                    job.logged = job.logged + 1
                    log(ngx.WARN, "warm-up of item ", id, " failed", final and "" or " (tried again later)", ": ", err)
                end
                if job.streak >= GIVE_UP and not job.gave_up then
                    job.gave_up = true
                    log(ngx.WARN, "warm-up gives up: ", GIVE_UP, " loads failed in a row, the last: ", err)
                end
            end
        end
    end
    local threads = {}
    for i = 1, math_min(settings.threads, #list) do
        local th, serr = ngx.thread.spawn(loader)
        if th then
            threads[#threads + 1] = th
        else
            log(ngx.ERR, "warm-up thread ", i, ": ", serr)
        end
    end
    for i = 1, #threads do
        ngx.thread.wait(threads[i])
    end
    return job.failed, job.gave_up, not job.late and not job.gave_up and not job.full and job.next >= #list, job.full
end

local function run(premature, start)
    if premature then
        return
    end
    local deadline = start + settings.max
    set_state("fetching")
    local ids, err = top("hour", settings.top, deadline)
    if not ids then
        log(ngx.WARN, "warm-up skipped, no top list: ", err)
        return finish("skipped", start)
    end
    local seen = {}
    local list = _M.merge({}, seen, ids, settings.top)
    if #list < settings.top then
        local day = top("day", settings.top, deadline)
        if day then
            _M.merge(list, seen, day, settings.top)
        end
    end
    local d = dict()
    d:set(PREFIX .. "ids", #list)
    if #list == 0 then
        log(ngx.INFO, "warm-up skipped: the hot services have no statistics yet")
        return finish("skipped", start)
    end
    set_state("loading")
    local failed, gave_up, through, full = pass(list, deadline, false)
    if #failed > 0 and through then
        local _
        _, gave_up, through, full = pass(failed, deadline, true)
    elseif #failed > 0 then
        d:incr(PREFIX .. "failed", #failed, 0)
    end
    if gave_up then
        return finish("failed", start)
    end
    if full then
        return finish("full", start)
    end
    return finish(through and "done" or "timeout", start)
end

-- init runs in init_by_lua after detailpage.app's: opts.hot, the hot
-- services ("": no warm-up); the settings are app.config().warm.
function _M.init(opts)
    if type(opts) ~= "table" or type(opts.hot) ~= "string" then
        error("opts.hot must be a string", 2)
    end
    app = require "detailpage.app"
    settings = app.config().warm
    if settings.top < 0 or settings.top ~= math_floor(settings.top) or settings.top > 16384 then
        error("warm.top must be an integer 0..16384 (the hot service's limit)", 2)
    end
    -- (NaN fails every comparison: these refuse it too)
    if settings.max <= 0 or settings.threads < 1 or settings.timeout <= 0
        or settings.max ~= settings.max or settings.timeout ~= settings.timeout then
        error("warm.max, warm.threads and warm.timeout must be positive", 2)
    end
    instances = hotcount.parse_instances(opts.hot)
end

-- start runs in init_worker_by_lua: the first worker of this nginx to
-- take the lock runs the warm-up in a timer. The start time is set once
-- per nginx start (a reload keeps it and the state).
function _M.start()
    local d = dict()
    if not settings then
        error("warm.init was not called", 2)
    end
    if settings.top == 0 or #instances == 0 then
        d:add(PREFIX .. "state", "off")
        return
    end
    ngx.update_time()
    d:add(PREFIX .. "start", ngx.now())
    if not d:add(PREFIX .. "lock", true) then
        return
    end
    d:add(PREFIX .. "state", "starting")
    local ok, err = ngx.timer.at(0, run, d:get(PREFIX .. "start"))
    if not ok then
        log(ngx.ERR, "warm-up not started: ", err)
        set_state("skipped")
    end
end

local function snapshot()
    local d = dict()
    ngx.update_time()
    local now = ngx.now()
    return d:get(PREFIX .. "state"), d:get(PREFIX .. "start"), now
end

-- health answers GET /_health.
function _M.health()
    local state, start, now = snapshot()
    if _M.ready(state, start, now, settings.max) then
        ngx.say("ok")
        return
    end
    ngx.status = 503
    ngx.header["Retry-After"] = "1"
    ngx.say("warming")
    return ngx.exit(503)
end

-- status: the warm-up for GET /_admin/status.
function _M.status()
    local d = dict()
    local state, start, now = snapshot()
    return {
        state = _M.shown(state, start, now, settings.max),
        top = settings.top,
        max_ms = settings.max * 1000,
        ids = d:get(PREFIX .. "ids") or 0,
        loaded = d:get(PREFIX .. "loaded") or 0,
        failed = d:get(PREFIX .. "failed") or 0,
        missing = d:get(PREFIX .. "missing") or 0,
        took_ms = d:get(PREFIX .. "took_ms") or cjson.null,
    }
end

return _M
