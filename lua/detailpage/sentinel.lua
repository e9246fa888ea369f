-- detailpage.sentinel: which Redis the app node reads, found through Sentinel.
--
-- Seed 004's two data centres: A runs main and one replica that serves
-- reads, B runs two standby replicas. Their replica-priority says which is
-- which (A's lower: it is also Sentinel's first choice to promote). One
-- worker per node asks the Sentinels every `sentinel_interval` seconds for
-- main and the replicas (SENTINEL get-master-addr-by-name / replicas) and
-- stores the servers to read, best first, in the dp_state shared dict:
--   1. the healthy replicas of the lowest priority (A's), spread at random
--   2. then the other healthy replicas, by priority (B's)
--   3. main itself, only when no replica is healthy (a last resort: reads
--      keep working; main carries them until a replica is back)
-- A replica is healthy when Sentinel does not flag it down or disconnected
-- and its link to main is up (it holds current data).
--
-- While no Sentinel answers, the last list stays (a Sentinel outage costs
-- nothing). Before the first answer, and with no Sentinels configured (the
-- small layout), the node reads the fixed replica of its config. A read
-- that cannot connect to the first server tries the next one, so a replica
-- that just died or was promoted costs one failed connect, not an outage.

local ngx = ngx
local tonumber = tonumber
local tostring = tostring
local type = type
local ipairs = ipairs
local concat = table.concat
local insert = table.insert
local sort = table.sort
local find = string.find
local gmatch = string.gmatch
local match = string.match

local _M = {}

local KEY = "sentinel:servers"      -- the list, encoded (dp_state)
local LOCK = "sentinel:refresh"     -- one worker per interval asks (dp_locks)
local DEFAULT_PRIORITY = 100

----------------------------------------------------------------------------
-- Pure selection logic (lua/spec/sentinel_spec.lua).

-- healthy reports whether a replica (a hash of SENTINEL REPLICAS fields)
-- may serve reads.
function _M.healthy(r)
    if type(r) ~= "table" or not r.ip or not tonumber(r.port) then
        return false
    end
    local flags = r.flags or ""
    if find(flags, "s_down", 1, true) or find(flags, "o_down", 1, true)
        or find(flags, "disconnected", 1, true) then
        return false
    end
    return r["master-link-status"] == "ok"
end

local function priority(r)
    return tonumber(r["replica-priority"] or r["slave-priority"]) or DEFAULT_PRIORITY
end

-- choose returns the servers to read, best first: { {host, port, priority} }.
-- master is { host, port } or nil; replicas a list of SENTINEL REPLICAS hashes.
function _M.choose(master, replicas)
    local out = {}
    for _, r in ipairs(replicas or {}) do
        if _M.healthy(r) then
            insert(out, { host = r.ip, port = tonumber(r.port), priority = priority(r) })
        end
    end
    sort(out, function(a, b)
        if a.priority ~= b.priority then
            return a.priority < b.priority
        end
        if a.host ~= b.host then
            return a.host < b.host
        end
        return a.port < b.port
    end)
    if #out == 0 and master and master.host and tonumber(master.port) then
        out[1] = { host = master.host, port = tonumber(master.port), priority = -1, main = true }
    end
    return out
end

-- encode and decode the list for the shared dict: "prio host:port,...";
-- main (the last resort) has priority -1.
function _M.encode(list)
    local parts = {}
    for i, s in ipairs(list) do
        parts[i] = s.priority .. " " .. s.host .. ":" .. s.port
    end
    return concat(parts, ",")
end

function _M.decode(raw)
    local out = {}
    for item in gmatch(raw or "", "[^,]+") do
        local p, host, port = match(item, "^(%-?%d+) (.+):(%d+)$")
        if p then
            insert(out, { host = host, port = tonumber(port), priority = tonumber(p), main = p == "-1" })
        end
    end
    return out
end

-- order returns the servers to try for one read: one of the best tier
-- (same priority as the first) picked with rand(n) → 1..n, then the
-- others in list order.
function _M.order(list, rand)
    local n = 0
    for _, s in ipairs(list) do
        if s.priority ~= list[1].priority then
            break
        end
        n = n + 1
    end
    if n <= 1 then
        return list
    end
    local first = rand(n)
    local out = { list[first] }
    for i, s in ipairs(list) do
        if i ~= first then
            insert(out, s)
        end
    end
    return out
end

----------------------------------------------------------------------------
-- In nginx.

local config        -- sentinels (list of {host, port}), master_name, interval, timeout
local cached_raw, cached_list  -- this worker's decoded copy of the dict's list

local function log(lvl, ...)
    ngx.log(lvl, "[sentinel] ", ...)
end

local function redis_module()
    local ok, redis = pcall(require, "resty.redis")   -- OpenResty
    if not ok then
        redis = require "nginx.redis"                  -- Debian's lua-nginx-redis
    end
    return redis
end

-- configure takes the app's settings: sentinels ("host:port,..."; empty:
-- none), master_name, sentinel_interval (s), sentinel_timeout_ms.
function _M.configure(opts)
    local list = {}
    for item in gmatch(opts.sentinels or "", "[^,%s]+") do
        local host, port = match(item, "^(.+):(%d+)$")
        if not host then
            error("sentinels: " .. item .. " is not host:port", 2)
        end
        insert(list, { host = host, port = tonumber(port) })
    end
    config = {
        sentinels = list,
        master_name = opts.master_name,
        interval = opts.sentinel_interval,
        timeout = opts.sentinel_timeout_ms,
    }
end

function _M.enabled()
    return config ~= nil and #config.sentinels > 0
end

-- servers returns the servers to read in the order to try them, or nil
-- when the node reads its fixed replica (no Sentinels, or none answered
-- yet).
function _M.servers()
    if not _M.enabled() then
        return nil
    end
    local raw = ngx.shared.dp_state:get(KEY)
    if not raw or raw == "" then
        return nil
    end
    if raw ~= cached_raw then
        cached_raw, cached_list = raw, _M.decode(raw)
    end
    if #cached_list == 0 then
        return nil
    end
    return _M.order(cached_list, math.random)
end

-- status describes what the node reads, for GET /_admin/status: the
-- list from Sentinel ("prio host:port,..."; priority -1 is main), or the
-- fixed replica.
function _M.status(fixed)
    if not _M.enabled() then
        return { source = "fixed", servers = fixed }
    end
    local raw = ngx.shared.dp_state:get(KEY)
    if not raw or raw == "" then
        return { source = "fixed (no Sentinel answer yet)", servers = fixed }
    end
    return { source = "sentinel", servers = raw }
end

-- ask one Sentinel for main and the replicas.
local function ask(redis, s)
    local red = redis:new()
    if rawget(redis, "set_timeouts") then
        red:set_timeouts(config.timeout, config.timeout, config.timeout)
    else
        red:set_timeout(config.timeout)
    end
    local ok, err = red:connect(s.host, s.port)
    if not ok then
        return nil, nil, "connect: " .. tostring(err)
    end
    local m, merr = red:sentinel("get-master-addr-by-name", config.master_name)
    if not m then
        red:close()
        return nil, nil, tostring(merr)
    end
    local rs, rerr = red:sentinel("replicas", config.master_name)
    if not rs then
        red:close()
        return nil, nil, tostring(rerr)
    end
    red:set_keepalive(30000, 4)
    local master
    if type(m) == "table" and m[1] and m[2] then
        master = { host = m[1], port = tonumber(m[2]) }
    end
    local replicas = {}
    if type(rs) == "table" then
        for _, r in ipairs(rs) do
            if type(r) == "table" then
                local h = {}
                for i = 1, #r, 2 do
                    h[r[i]] = r[i + 1]
                end
                insert(replicas, h)
            end
        end
    end
    return master, replicas
end

local failures = 0

-- refresh asks the Sentinels in turn until one answers and stores the list.
function _M.refresh()
    local redis = redis_module()
    local errs = {}
    for _, s in ipairs(config.sentinels) do
        local master, replicas, err = ask(redis, s)
        if master or replicas then
            local list = _M.choose(master, replicas)
            local raw = _M.encode(list)
            local state = ngx.shared.dp_state
            local old = state:get(KEY)
            if #list > 0 and raw ~= old then
                state:set(KEY, raw)
                log(list[1].main and ngx.ERR or ngx.WARN, "servers to read: ", raw,
                    list[1].main and " (no healthy replica: reading main)" or "", " (was: ", tostring(old), ")")
            end
            if failures > 0 then
                log(ngx.WARN, "Sentinel answers again after ", failures, " failed rounds")
                failures = 0
            end
            return true
        end
        insert(errs, s.host .. ":" .. s.port .. ": " .. tostring(err))
    end
    failures = failures + 1
    if failures == 1 or failures % 60 == 0 then
        log(ngx.WARN, "no Sentinel answers; keeping the last list (", concat(errs, "; "), ")")
    end
    return false
end

local function tick(premature)
    if premature then
        return
    end
    -- one worker per interval asks; the lock expires before the next tick
    if not ngx.shared.dp_locks:add(LOCK, true, config.interval * 0.9) then
        return
    end
    local ok, err = pcall(_M.refresh)
    if not ok then
        log(ngx.ERR, "refresh failed: ", tostring(err))
    end
end

-- start runs the refresh timer in this worker (nothing without Sentinels);
-- the first refresh runs at once.
function _M.start()
    if not _M.enabled() then
        return
    end
    local ok, err = ngx.timer.at(0, tick)
    if ok then
        ok, err = ngx.timer.every(config.interval, tick)
    end
    if not ok then
        log(ngx.ERR, "cannot start the Sentinel refresh timer: ", tostring(err))
    end
end

return _M
