-- detailpage.hot: the dist tier's hot products. detailpage.dist stays the
-- router; it asks this module, per request, whether the id is hot.
--
--   init(opts)          init_by_lua: hot service addresses, the replica
--   start(healthy)      init_worker_by_lua (from dist.init_worker): timers;
--                       healthy() lists the healthy app nodes
--   lookup(id)          access_by_lua: nil (hash it), false (spread it),
--                       or the dist copy to answer with (serve)
--   serve(id, copy)     answers from the dist copy and ends the request
--   status()            the "hot" section of the dist admin's status
--
-- Learn. One worker at a time (a shdict:add lock) polls GET /api/hot/ids
-- on the hot service instances (the first that answers, `poll_timeout`
-- each) every `interval`. Lines that are not ids are skipped and logged
-- (once per run of bad answers). The set outlives a failed poll for
-- `keep` seconds after the last good one, then every id is hashed again:
-- a hot service that is down, slow or talks garbage never blocks a page.
--
-- Warm and copy. An id that turns hot is first asked of every healthy app
-- node (GET /_admin/page/<id>, admin token, light threads, `warm_timeout`):
-- that warms each node with at most one Redis read, and the first 200
-- whose versions hold up (below) becomes the dist copy. Only when every
-- node answered 200 (holds the page) does the id join the spread set; else
-- it stays on its hashed node and is warmed again after `not_found_ttl`
-- (a node that cannot load it now would answer the spread with misses or
-- errors). All 404: the id stays hashed (the app answers 404 and reports
-- it missing). Hot ids without a copy are fetched again on every tick,
-- from one healthy node after another.
--
-- Serve. A hot id with a copy is answered by the dist itself
-- (X-Served-By: dist, X-Cache: hot) from the worker's table of copies,
-- rebuilt when the dict's generation changes (detailpage.hotset.view), and
-- counted for the hot service through detailpage.hotcount (the traffic
-- the dist absorbs must still count, or the id would cool down and flap).
-- A hot id without a copy goes round robin over every healthy app node.
--
-- Invalidate. One worker at a time follows dp:invalidate on the replica
-- (detailpage.invalidate's follower; the last entry id in the dict, so
-- another worker takes over). A product entry drops that id's copy when
-- older and records the version a new copy needs (req:<id>); a shop entry
-- drops copies built from an older version of that shop (sreq:<shop>). A
-- copy is kept only when its versions are at least those and those the
-- replica holds (GETRANGE of the values' {"version":N head), checked
-- before the copy is stored and once more after: an entry read between
-- the fetch and the store cannot leave an old copy behind. While the
-- follower has not read the stream for `follow_grace` seconds the dist
-- keeps no copies (hot ids are spread, not served from what may be old).
--
-- Cool down. An id that leaves the hot list leaves the spread set and its
-- copy is dropped in one generation: back to its hashed node, which the
-- warm-up left holding the page.

local hotset = require "detailpage.hotset"
local invalidate = require "detailpage.invalidate"
local sentinel = require "detailpage.sentinel"
local hotcount = require "detailpage.hotcount"
local redisconn = require "detailpage.redisconn"
local conneg = require "detailpage.conneg"
local httpc = require "detailpage.httpc"
local cjson = require "cjson.safe"

local ngx = ngx
local ngx_log = ngx.log
local ngx_now = ngx.now
local ngx_print = ngx.print
local ngx_exit = ngx.exit
local ngx_header = ngx.header
local ngx_var = ngx.var
local gzip_ok = conneg.gzip_ok
local not_modified = conneg.not_modified
local shared = ngx.shared
local hot_count = hotcount.count
local spawn = ngx.thread.spawn
local wait = ngx.thread.wait
local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local tonumber = tonumber
local tostring = tostring
local floor = math.floor
local insert = table.insert
local concat = table.concat
local os_getenv = os.getenv

local ERR = ngx.ERR
local WARN = ngx.WARN
local INFO = ngx.INFO

local DICT = "dp_hot"
local LOCKS = "dp_locks"
local POLL_LOCK = "hot:poll"
local FOLLOW_LOCK = "hot:follow"
local COPY_RESERVE = 1024 * 1024  -- bytes of dp_hot kept free of copies
local REDIS_IDLE_MS = 30000  -- keepalive of replica connections
local REDIS_POOL_SIZE = 8
local USER_AGENT = "detailpage-dist"
local POLL_HEADERS = { ["User-Agent"] = USER_AGENT }
local POLL_LOCK_TTL = 3  -- seconds: longer than a tick (warm-ups and copies have timeouts), short of `keep`

-- The one place the dist tier's hot settings have values; the config
-- passes the addresses and only what differs.
local DEFAULTS = {
    hot = "",                -- hot service instances "host:port,..." ("": off)
    interval = 0.2,          -- seconds between polls of the hot list
    poll_timeout = 0.1,      -- seconds per instance for connect, send and answer
    keep = 10,               -- seconds the last good list outlives failed polls
    warm_timeout = 0.5,      -- seconds per app node for GET /_admin/page/<id>
    max_ids = 256,           -- hot ids taken from one answer (the service caps at 32)
    max_body = 4 * 1024 * 1024, -- bytes of a page copy (larger: spread, not copied)
    copy_ttl = 600,          -- seconds a copy lives without being fetched again
    not_found_ttl = 2,       -- seconds an id that answered 404 everywhere waits
    follow_interval = 0.1,   -- seconds between reads of the invalidation stream
    follow_grace = 3,        -- seconds without a good stream read before copies go
    req_ttl = 600,           -- seconds an invalidation's version need is kept
    redis_timeout_ms = 100,
    replica_host = "127.0.0.1",
    replica_port = 6381,
    sentinels = "",
    master_name = "detailpage",
    sentinel_interval = 1,
    sentinel_timeout_ms = 200,
}

local _M = {}

local config
local enabled = false
local instances = {}     -- { host, port, name } of the hot service
local admin_headers      -- of GET /_admin/page/<id>: User-Agent and the admin token
local admin_headers_gz   -- the same with Accept-Encoding: gzip
local view               -- this worker's detailpage.hotset view of dp_hot
local healthy_nodes      -- function() -> { { name, host, port }, ... }
local follower
local polling = false    -- this worker is in a poll tick
local connect_replica, release  -- detailpage.redisconn's, for the replica (init)

local function log(lvl, ...)
    return ngx_log(lvl, "[hot] ", ...)
end

-- init takes opts: hot ("host:port,..."), replica_host, replica_port,
-- sentinels, master_name and any other of DEFAULTS' keys.
function _M.init(opts)
    if type(opts) ~= "table" then
        error("opts must be a table", 2)
    end
    config = {}
    for k, v in pairs(DEFAULTS) do
        config[k] = v
    end
    for k, v in pairs(opts) do
        if DEFAULTS[k] == nil then
            error("unknown option " .. tostring(k), 2)
        end
        if type(v) ~= type(DEFAULTS[k]) then
            error("opts." .. k .. " must be a " .. type(DEFAULTS[k]), 2)
        end
        config[k] = v
    end
    instances = hotcount.parse_instances(config.hot)
    enabled = #instances > 0
    if not enabled then
        return
    end
    for _, d in ipairs({ DICT, LOCKS, "dp_state" }) do
        if not shared[d] then
            error("lua_shared_dict " .. d .. " is not declared", 2)
        end
    end
    local token = os_getenv("DETAILPAGE_ADMIN_TOKEN")
    admin_headers = { ["User-Agent"] = USER_AGENT }
    if token then
        admin_headers["Authorization"] = "Bearer " .. token
    end
    admin_headers_gz = { ["Accept-Encoding"] = "gzip" }
    for k, v in pairs(admin_headers) do
        admin_headers_gz[k] = v
    end
    sentinel.configure(config)
    -- as the app tier reads: the fixed replica, or with Sentinels the first
    -- of detailpage.sentinel's list that accepts (two tries)
    local replica = redisconn.replica({
        host = config.replica_host,
        port = config.replica_port,
        timeout_ms = config.redis_timeout_ms,
        idle_ms = REDIS_IDLE_MS,
        pool_size = REDIS_POOL_SIZE,
    })
    connect_replica, release = replica.connect, replica.release
end

function _M.enabled()
    return enabled
end

----------------------------------------------------------------------------
-- The replica (versions, and the invalidation stream).

-- replica_versions reads the versions the replica holds for an item and
-- its shop (nil where the key is missing); nil and an error when it
-- cannot be asked.
local function replica_versions(id, shop)
    local red, err = connect_replica()
    if not red then
        return nil, nil, err
    end
    red:init_pipeline()
    red:getrange("item:{" .. id .. "}", 0, 40)
    if shop ~= 0 then
        red:getrange("shop:{s" .. shop .. "}", 0, 40)
    end
    local res, perr = red:commit_pipeline()
    if not res then
        red:close()
        return nil, nil, "versions: " .. tostring(perr)
    end
    for i = 1, #res do
        if type(res[i]) == "table" and res[i][1] == false then
            red:close()
            return nil, nil, "versions: " .. tostring(res[i][2])
        end
    end
    release(red)
    local iv = hotset.version_of(res[1])
    local sv = shop ~= 0 and hotset.version_of(res[2]) or nil
    -- GETRANGE of a missing key is "": no version
    return iv or 0, sv, nil
end

----------------------------------------------------------------------------
-- The dict.

local function dict()
    return shared[DICT]
end

-- Conditions logged once per run, whichever worker polls: first(what)
-- is true when the condition starts, ended(what) when it ends.
local function first(what)
    return (dict():add("log:" .. what, true))
end

local function ended(what)
    local d = dict()
    if d:get("log:" .. what) then
        d:delete("log:" .. what)
        return true
    end
    return false
end

local function bump()
    return dict():incr("gen", 1, 0)
end

local function drop_copy(id)
    dict():delete("copy:" .. id)
end

-- check decides whether a copy head c of id may be kept now.
local function check(id, c)
    local d = dict()
    local riv, rsv, err = replica_versions(id, c.shop)
    if err then
        return false, "replica: " .. err
    end
    return hotset.acceptable(c, d:get("req:" .. id), c.shop ~= 0 and d:get("sreq:" .. c.shop) or nil, riv, rsv)
end

-- store keeps a copy if its versions hold up before and after the store
-- (an invalidation read in between is seen by the second check).
local function store(id, c)
    local ok, why = check(id, c)
    if not ok then
        return false, why
    end
    c.at = ngx_now()
    local d = dict()
    -- A copy never evicts anything (safe_set), and leaves room for the
    -- small entries beside it: with the dict full the id is spread, not
    -- copied.
    local raw = hotset.encode_copy(c)
    if d.free_space and d:free_space() < #raw + COPY_RESERVE then
        if first("full") then
            log(WARN, "dp_hot has no room for the copy of ", id, " (", #raw, " bytes): spread instead")
        end
        return false, "dp_hot is full"
    end
    local sok, err = d:safe_set("copy:" .. id, raw, config.copy_ttl)
    if not sok then
        if first("full") then
            log(WARN, "dp_hot has no room for the copy of ", id, " (", #raw, " bytes): ", tostring(err))
        end
        return false, "dict: " .. tostring(err)
    end
    ended("full")
    ok, why = check(id, c)
    if not ok then
        drop_copy(id)
        return false, why
    end
    if ended("refused") then
        log(WARN, "app nodes answer GET /_admin/page again: dist copies resume")
    end
    return true
end

----------------------------------------------------------------------------
-- Learn: the poll.

local function poll_error(err)
    local d = dict()
    d:incr("poll:errors", 1, 0)
    d:set("poll:last_error", err)
    d:set("poll:last_error_at", ngx_now())
end

-- fetch_ids asks the instances in turn; the first 200 wins.
local function fetch_ids()
    local errs = {}
    for _, inst in ipairs(instances) do
        local status, headers, body = httpc.request({
            host = inst.host,
            port = inst.port,
            path = "/api/hot/ids",
            headers = POLL_HEADERS,
            timeout = config.poll_timeout,
            max_body = 1024 * 1024,
        })
        if status == 200 then
            local ids, bad, first_bad, cut = hotset.parse_ids(body, config.max_ids)
            if bad > 0 or cut then
                if first("garbage") then
                    log(WARN, "hot service ", inst.name, ": skipped ", bad, " lines that are not ids",
                        first_bad and (" (first: " .. first_bad .. ")") or "",
                        cut and (", kept the first " .. config.max_ids .. " ids") or "",
                        "; logged once until a clean answer")
                end
                poll_error(inst.name .. ": " .. bad .. " bad lines")
            else
                ended("garbage")
            end
            return ids
        end
        insert(errs, inst.name .. ": " .. (status and ("status " .. status) or tostring(headers)))
    end
    return nil, concat(errs, "; ")
end

-- ask_page sends one GET /_admin/page/<id> to node, plain or gzip.
local function ask_page(node, id, gzip)
    return httpc.request({
        host = node.host,
        port = node.port,
        path = "/_admin/page/" .. id,
        headers = gzip and admin_headers_gz or admin_headers,
        timeout = config.warm_timeout,
        max_body = config.max_body,
    })
end

-- fetch_copy asks one node for id's page, plain and then gzip (the dist
-- keeps both encodings as the node answers them, ETags included): the
-- copy, or nil, the status (404 counts) and why.
local function fetch_copy(node, id)
    local status, headers, body = ask_page(node, id, false)
    if not status then
        return nil, nil, node.name .. ": " .. tostring(headers)
    end
    local c, why = hotset.copy_from(status, headers)
    if not c then
        -- 404 (no such product) and 503 (the node cannot load it now) are
        -- answers about the page; anything else (401: a token mismatch, a
        -- node without the endpoint) means no copy will ever come
        if status ~= 404 and status ~= 503 and first("refused") then
            log(WARN, "app node ", node.name, " refuses GET /_admin/page/", id, ": ", why,
                "; hot ids get no dist copy (logged once until a copy is kept)")
        end
        return nil, status, node.name .. ": " .. why
    end
    c.body = body
    local ok, gwhy = hotset.add_gzip(c, ask_page(node, id, true))
    if not ok then
        return nil, status, node.name .. ": " .. gwhy
    end
    return c, status
end

-- warm asks every healthy node for id at once; returns whether every
-- answer was 404, whether a copy was stored, why not, and whether every
-- node answered 200 (holds the page now).
local function warm(id, nodes)
    local threads = {}
    for _, node in ipairs(nodes) do
        local th, err = spawn(fetch_copy, node, id)
        if th then
            threads[#threads + 1] = th
        else
            log(ERR, "warm ", id, " on ", node.name, ": ", err)
        end
    end
    local all404 = #nodes > 0
    local all200 = #nodes > 0 and #threads == #nodes
    local stored = false
    local why
    for _, th in ipairs(threads) do
        local ok, c, status, err = wait(th)
        if not ok then
            all404, all200 = false, false
            why = tostring(c)
        else
            if status ~= 404 then
                all404 = false
            end
            if status ~= 200 then
                all200 = false
            end
            if c and not stored then
                local sok, serr = store(id, c)
                stored = sok
                why = serr
            elseif not c then
                why = err
            end
        end
    end
    return all404, stored, why, all200
end

-- refetch asks the healthy nodes one after the other for a copy of a hot
-- id that has none; returns "stored", "404" (every node) or nil and why.
local function refetch(id, nodes, start)
    local n = #nodes
    local n404 = 0
    local why = "no healthy app node"
    for i = 0, n - 1 do
        local node = nodes[(start + i) % n + 1]
        local c, status, err = fetch_copy(node, id)
        if c then
            local ok, serr = store(id, c)
            if ok then
                return "stored"
            end
            why = node.name .. ": " .. serr
        else
            why = err
            if status == 404 then
                n404 = n404 + 1
            end
        end
    end
    if n > 0 and n404 == n then
        return "404"
    end
    return nil, why
end

local function following(now)
    local ok_at = dict():get("follow:ok_at")
    return ok_at ~= nil and now - ok_at <= config.follow_grace
end

-- drop_all empties the spread set and drops every copy.
local function drop_all()
    local d = dict()
    local _, set = hotset.decode_list(d:get("set"))
    d:set("set", "")
    d:set("ids", "")
    for id in pairs(set) do
        drop_copy(id)
    end
    bump()
end

local rr = 0

-- reconcile applies a good poll's list: ids that left go back to hashing
-- with their copies dropped; new ids are warmed, then spread; hot ids
-- without a copy get one.
local function reconcile(ids, now)
    local d = dict()
    local list, set = hotset.decode_list(d:get("set"))
    -- the follower records versions for every polled id, warmed or not
    d:set("ids", hotset.encode_list(ids))
    local added, removed = hotset.diff(set, ids)
    local changed = false
    if #removed > 0 then
        for _, id in ipairs(removed) do
            set[id] = nil
            drop_copy(id)
        end
        log(INFO, "cooled down, back to hashing: ", concat(removed, ","))
        changed = true
    end
    local can_copy = following(now)
    if not can_copy and first("unfollowed") then
        log(WARN, "the invalidation stream was not read for ", config.follow_grace,
            " s: hot ids are spread, not served from dist copies")
    elseif can_copy and ended("unfollowed") then
        log(WARN, "the invalidation stream is read again: dist copies resume")
    end
    local nodes = healthy_nodes()
    -- warm new ids, each in its own light thread (each asks every node)
    local threads = {}
    for _, id in ipairs(added) do
        if not d:get("404:" .. id) and not d:get("unwarmed:" .. id) then
            local th, err = spawn(warm, id, nodes)
            if th then
                threads[#threads + 1] = { id = id, th = th }
            else
                log(ERR, "warm ", id, ": ", err)
            end
        end
    end
    for _, t in ipairs(threads) do
        local ok, all404, stored, why, all200 = wait(t.th)
        if ok and all404 then
            d:set("404:" .. t.id, true, config.not_found_ttl)
            log(INFO, "hot id ", t.id, " answered 404 on every node: left to hashing")
        elseif not (ok and all200) then
            -- A node that could not load the page (the levels below it
            -- failing: a Redis outage) would answer the spread's requests
            -- with misses or errors: the id stays on its hashed node, which
            -- holds it, and the warm-up is tried again later.
            d:set("unwarmed:" .. t.id, true, config.not_found_ttl)
            if stored then
                drop_copy(t.id)
            end
            log(INFO, "hot id ", t.id, " not warmed on every node (", tostring(why),
                "): left to hashing, tried again in ", config.not_found_ttl, " s")
        else
            set[t.id] = true
            changed = true
            log(INFO, "hot id ", t.id, " warmed on ", #nodes, " nodes, spread",
                stored and ", dist copy kept" or (", no dist copy: " .. tostring(why)))
        end
        if stored and not can_copy then
            drop_copy(t.id)
        end
    end
    -- hot ids without a copy: one node after another
    if can_copy then
        threads = {}
        for _, id in ipairs(list) do
            if set[id] and not d:get("copy:" .. id) then
                -- a worker may still hold a copy the dict no longer has
                -- (expired): a new generation flushes it
                changed = true
                rr = rr + 1
                local th, err = spawn(refetch, id, nodes, rr)
                if th then
                    threads[#threads + 1] = { id = id, th = th }
                else
                    log(ERR, "copy of ", id, ": ", err)
                end
            end
        end
        for _, t in ipairs(threads) do
            local ok, res, why = wait(t.th)
            if ok and res == "stored" then
                changed = true
            elseif ok and res == "404" then
                set[t.id] = nil
                changed = true
                d:set("404:" .. t.id, true, config.not_found_ttl)
                log(INFO, "hot id ", t.id, " answers 404 on every node: back to hashing")
            elseif not ok then
                log(ERR, "copy of ", t.id, ": ", tostring(res))
            end
            if ok and why and d:incr("copy:misses", 1, 0) % 50 == 1 then
                log(INFO, "no dist copy of hot id ", t.id, " yet: ", why)
            end
        end
    else
        -- no copies while the stream is not read, not even those the
        -- workers hold from before: a new generation every tick
        for id in pairs(set) do
            drop_copy(id)
            changed = true
        end
    end
    local out = {}
    for _, id in ipairs(ids) do
        if set[id] then
            out[#out + 1] = id
        end
    end
    local raw = hotset.encode_list(out)
    if raw ~= d:get("set") then
        d:set("set", raw)
        changed = true
    end
    if changed then
        bump()
    end
end

local function poll()
    local d = dict()
    ngx.update_time()
    local now = ngx_now()
    local ids, err = fetch_ids()
    if ids then
        d:set("polled_at", now)
        if ended("lost") then
            log(WARN, "hot service answers again")
        end
        return reconcile(ids, now)
    end
    poll_error(err)
    if hotset.expired(d:get("polled_at"), now, config.keep) then
        local set = d:get("set")
        if set and set ~= "" then
            drop_all()
            first("lost")
            log(WARN, "no hot service answered for ", config.keep, " s (", err, "): every id is hashed")
        elseif first("lost") then
            log(WARN, "no hot service answers (", err, "): every id is hashed")
        end
        return
    end
    if first("lost") then
        log(WARN, "no hot service answers (", err, "): keeping the last hot set for up to ", config.keep, " s")
    end
    -- the last list still holds: keep its copies current
    return reconcile((hotset.decode_list(d:get("ids"))), now)
end

local function poll_tick(premature)
    if premature or polling or ngx.worker.exiting() then
        return
    end
    -- One worker polls at a time: the lock is held for the whole tick (a
    -- warm-up can outlast the interval) and expires if the worker dies.
    local locks = shared[LOCKS]
    if not locks:add(POLL_LOCK, true, POLL_LOCK_TTL) then
        return
    end
    polling = true
    local ok, err = pcall(poll)
    polling = false
    locks:delete(POLL_LOCK)
    if not ok then
        log(ERR, "poll failed: ", tostring(err))
    end
end

----------------------------------------------------------------------------
-- Invalidate.

local candidates = {}   -- polled ids, re-read at the start of each follower tick

local function raise(key, v)
    local d = dict()
    local cur = d:get(key)
    if not cur or cur < v then
        d:set(key, v, config.req_ttl)
    end
end

local function on_item(id, v)
    if not candidates[id] then
        return
    end
    raise("req:" .. id, v)
    local d = dict()
    local c = hotset.decode_copy(d:get("copy:" .. id), true)
    if hotset.outdated_by_item(c, v) then
        drop_copy(id)
        bump()
        log(INFO, "dist copy of ", id, " (version ", c.iv, ") dropped: version ", v)
    elseif not c then
        -- none in the dict, but a worker may hold one read before it expired
        bump()
    end
end

local function on_shop(shop, v)
    shop = tonumber(shop)
    raise("sreq:" .. shop, v)
    local d = dict()
    local dropped = false
    for id in pairs(candidates) do
        local c = hotset.decode_copy(d:get("copy:" .. id), true)
        if hotset.outdated_by_shop(c, shop, v) then
            drop_copy(id)
            dropped = true
        end
    end
    if dropped then
        bump()
        log(INFO, "dist copies of shop ", shop, " dropped: version ", v)
    end
end

local follow_last = {
    get = function() return dict():get("follow:last") end,
    set = function(_, id) dict():set("follow:last", id) end,
}

local function follow_may_run()
    if not shared[LOCKS]:add(FOLLOW_LOCK, true, config.follow_interval * 0.9) then
        return false
    end
    local _, set = hotset.decode_list(dict():get("ids"))
    candidates = set
    return true
end

local function follow_done()
    dict():set("follow:ok_at", ngx_now())
end

----------------------------------------------------------------------------
-- nginx phases.

-- start runs the timers in this worker; healthy() returns the healthy app
-- nodes as { { name, host, port }, ... }.
function _M.start(healthy)
    if not enabled then
        return
    end
    if type(healthy) ~= "function" then
        error("healthy must be a function", 2)
    end
    healthy_nodes = healthy
    view = hotset.view(dict())
    follower = invalidate.follower({
        connect = connect_replica,
        release = release,
        item = on_item,
        shop = on_shop,
        last = follow_last,
        may_run = follow_may_run,
        done = follow_done,
    })
    local ok, err = ngx.timer.every(config.interval, poll_tick)
    if ok then
        ok, err = ngx.timer.every(config.follow_interval, follower.tick)
    end
    if not ok then
        log(ERR, "cannot start the hot timers: ", tostring(err))
    end
    sentinel.start()
end

-- lookup: nil when id is not hot (hash it), false when it is hot without
-- a dist copy (spread it), else the copy (serve).
function _M.lookup(id)
    if not view then
        return nil
    end
    return view:lookup(id)
end

-- serve answers from the dist copy c and ends the request: the gzip body
-- to a client that accepts it, else the plain one, each with the ETag the
-- app node gave it; 304 without a body when If-None-Match names that tag
-- (as the app tier answers, detailpage.app).
function _M.serve(id, c)
    hot_count(id)
    local gz = c.gz
    local tag
    if gz and gzip_ok(ngx_var.http_accept_encoding) then
        tag = c.gztag
    else
        gz = nil
        tag = c.tag
    end
    ngx_header["Content-Type"] = c.ctype
    ngx_header["Vary"] = "Accept-Encoding"
    ngx_header["X-Served-By"] = "dist"
    ngx_header["X-Cache"] = "hot"
    if tag then
        ngx_header["ETag"] = tag
        if not_modified(ngx_var.http_if_none_match, tag) then
            -- ngx.exit(304) would make nginx's own 304 (no ETag, no Vary)
            ngx.status = 304
            ngx.send_headers()
            return ngx_exit(200)
        end
    end
    if gz then
        ngx_header["Content-Encoding"] = "gzip"
        ngx_header["Content-Length"] = c.gzlen
        ngx_print(gz)
    else
        ngx_header["Content-Length"] = c.len
        ngx_print(c.body)
    end
    return ngx_exit(200)
end

-- status is the "hot" section of GET /_admin/status.
function _M.status()
    if not enabled then
        return { enabled = false }
    end
    local d = dict()
    local now = ngx_now()
    local function age(t)
        return t and floor((now - t) * 1000 + 0.5) or cjson.null
    end
    -- ids keyed by id (a JSON object: Debian's cjson writes an empty
    -- list as {}, and ids as strings keep all 18 digits)
    local list = hotset.decode_list(d:get("set"))
    local ids = {}
    for _, id in ipairs(list) do
        local c = hotset.decode_copy(d:get("copy:" .. id), true)
        ids[id] = {
            copy = c and {
                item_version = c.iv, shop_id = c.shop, shop_version = c.sv,
                bytes = c.len, gzip_bytes = c.gzlen, age_ms = age(c.at), content_type = c.ctype,
                etag = c.tag or cjson.null, gzip_etag = c.gztag or cjson.null,
            } or cjson.null,
            required_version = d:get("req:" .. id) or cjson.null,
        }
    end
    local names = {}
    for i, inst in ipairs(instances) do
        names[i] = inst.name
    end
    local polled_at = d:get("polled_at")
    return {
        enabled = true,
        instances = names,
        ids = ids,
        polled = concat(hotset.decode_list(d:get("ids")), ","),
        generation = d:get("gen") or 0,
        last_poll_age_ms = age(polled_at),
        expired = hotset.expired(polled_at, now, config.keep),
        poll_errors = d:get("poll:errors") or 0,
        last_poll_error = d:get("poll:last_error") or cjson.null,
        last_poll_error_age_ms = age(d:get("poll:last_error_at")),
        invalidation = {
            last_id = d:get("follow:last") or cjson.null,
            last_read_age_ms = age(d:get("follow:ok_at")),
            replica = sentinel.status(config.replica_host .. ":" .. config.replica_port),
        },
        settings = {
            interval_ms = config.interval * 1000,
            poll_timeout_ms = config.poll_timeout * 1000,
            keep_s = config.keep,
            warm_timeout_ms = config.warm_timeout * 1000,
            follow_grace_s = config.follow_grace,
        },
    }
end

_M._DEFAULTS = DEFAULTS -- for tests

return _M
