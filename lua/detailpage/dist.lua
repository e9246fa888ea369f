-- detailpage.dist: the distribution tier's routing to app nodes.
--
--   init(opts)     init_by_lua: the app nodes and the probe settings
--   init_worker()  init_worker_by_lua: starts the health prober
--   route(id)      access_by_lua: answers a hot id from the dist copy
--                  (detailpage.hot), else ranks the healthy nodes for id
--                  (round robin over all of them for a hot id without a
--                  copy), or sends the request to @direct when none is
--                  healthy
--   balance()      balancer_by_lua: the ranked node, and on a retry the next
--   route_one()    access_by_lua of /api/realtime[/...]: the healthy
--                  OneServer nodes in round robin order, or 503 JSON
--                  "realtime unavailable" when none is healthy
--   balance_one()  balancer_by_lua of the OneServer pool: that order's
--                  first node, and on a retry the next
--   one_unavailable()  content_by_lua: the 503 when every try failed
--   status()       content_by_lua on the admin port: GET /_admin/status
--
-- Two groups of nodes are probed: the app nodes (GET `path`) and the
-- OneServer nodes (GET `one_path`; issue 13, realtime data), each with its
-- own health tracker in the same dict, by the same prober and settings.
-- The prober. Every worker runs a timer each `interval`; the one that takes
-- a short lock in the shared dict (shdict:add, expiring before the next
-- tick) probes, so each node gets one probe per interval however many
-- workers there are, and if that worker dies another takes the next tick.
-- A probe is a plain HTTP/1.0 GET /_health over a cosocket
-- (detailpage.httpc) with `timeout` for connect, send and the status line,
-- and nothing read past it; every node is probed in its own light thread,
-- so a hung node does not delay the others. A hung node (the kernel still accepts its connections) fails on
-- the read timeout; `fall` failures in a row mark it down, so one slow
-- probe on a busy machine does not.
--
-- Health (detailpage.health, in the dp_health shared dict) decides
-- routing; requests never mark a node down. A page normally takes a few
-- ms, so a try gets a short read timeout (nginx config). When it runs out
-- the balancer asks: did the node answer a probe since this try began?
-- Then it is alive and this page is slow (the app tier waiting below it,
-- where it keeps the stale copy), so the same node gets the request once
-- more with `slow_timeout`. If not, the node may be hung: the next node in
-- the ranking takes the request. That is why probes run every 100 ms: a
-- live node always has answered one within a try's 200 ms.
local route = require "detailpage.route"
local health = require "detailpage.health"
local hot = require "detailpage.hot"
local bearer = require "detailpage.bearer"
local httpc = require "detailpage.httpc"
local cjson = require "cjson.safe"
local balancer = require "ngx.balancer"

local ngx = ngx
local ngx_log = ngx.log
local ngx_now = ngx.now
local shared = ngx.shared
local spawn = ngx.thread.spawn
local wait = ngx.thread.wait
local type = type
local pairs = pairs
local ipairs = ipairs
local tonumber = tonumber
local tostring = tostring

local ERR = ngx.ERR
local WARN = ngx.WARN

local DICT = "dp_health"
local LOCK_KEY = "probe:lock"

-- The one place the dist tier's probe settings have values; the config
-- passes only what differs.
local DEFAULTS = {
    interval = 0.1,   -- seconds between probes of each node
    timeout = 0.1,    -- seconds for a probe's connect, send and status line
    fall = 2,         -- failed probes in a row before a node is down
    rise = 2,         -- good probes in a row before it is up again
    slow_timeout = 2, -- read timeout when a node that answers probes is slow
    path = "/_health",
    one_path = "/healthz", -- the OneServer nodes' probe (a Go service's health)
}

local _M = {}

local config
-- A group: { label, names (in config order), peers (name -> { host, port,
-- probe: httpc.request's opts }), tracker (detailpage.health on dp_health) }.
local apps            -- the app nodes
local one             -- the OneServer nodes (none: no realtime route)
-- the app nodes' parts, under the names the page routing uses
local names, peers, tracker

local function log(lvl, ...)
    return ngx_log(lvl, "[dist] ", ...)
end

-- new_group checks a node list (what: its option's name) and returns the
-- group of those nodes, probed at path, with its health under prefix.
local function new_group(label, what, nodes, path, prefix, dict)
    local g = { label = label, names = {}, peers = {} }
    for i, n in ipairs(nodes) do
        if type(n) ~= "table" or type(n.name) ~= "string" or type(n.host) ~= "string" or not tonumber(n.port) then
            error(what .. "[" .. i .. "] needs name, host and port", 3)
        end
        if g.peers[n.name] then
            error(what .. "[" .. i .. "]: node " .. n.name .. " listed twice", 3)
        end
        g.names[i] = n.name
        g.peers[n.name] = {
            host = n.host,
            port = tonumber(n.port),
            probe = {
                host = n.host,
                port = tonumber(n.port),
                path = path,
                headers = { Host = n.name, ["User-Agent"] = "detailpage-dist-probe" },
                timeout = config.timeout,
                status_only = true,
            },
        }
    end
    g.tracker = health.new(dict, { fall = config.fall, rise = config.rise, prefix = prefix }, ngx_now)
    g.is_up = function(name)
        return g.tracker:is_up(name)
    end
    return g
end

-- init takes the app nodes: opts.nodes = { { name = "127.0.0.1:8081",
-- host = "127.0.0.1", port = 8081 }, ... } (host: an IP address, which
-- ngx.balancer needs), the OneServer nodes in the same form (opts.one,
-- optional: none, no realtime route) and any of DEFAULTS' keys.
function _M.init(opts)
    if type(opts) ~= "table" or type(opts.nodes) ~= "table" or #opts.nodes == 0 then
        error("opts.nodes must be a non-empty list of app nodes", 2)
    end
    if opts.one ~= nil and type(opts.one) ~= "table" then
        error("opts.one must be a list of OneServer nodes", 2)
    end
    config = {}
    for k, v in pairs(DEFAULTS) do
        config[k] = v
    end
    for k, v in pairs(opts) do
        if k ~= "nodes" and k ~= "one" then
            if DEFAULTS[k] == nil then
                error("unknown option " .. tostring(k), 2)
            end
            config[k] = v
        end
    end
    local dict = shared[DICT]
    if not dict then
        error("lua_shared_dict " .. DICT .. " is not declared", 2)
    end
    apps = new_group("app node", "opts.nodes", opts.nodes, config.path, nil, dict)
    one = new_group("OneServer node", "opts.one", opts.one or {}, config.one_path, "one:", dict)
    names, peers, tracker = apps.names, apps.peers, apps.tracker
end

-- probe sends one GET and reads the status line only.
local function probe(peer)
    local status, err, _, line = httpc.request(peer.probe)
    if not status then
        return nil, err
    end
    if status ~= 200 then
        return nil, "status: " .. line
    end
    return true
end

local function check(g, name)
    ngx.update_time()
    local started = ngx_now()
    local ok, err = probe(g.peers[name])
    local changed = g.tracker:record(name, ok, err, started)
    if changed == "down" then
        log(WARN, g.label, " ", name, " is down: ", err)
    elseif changed == "up" then
        log(WARN, g.label, " ", name, " is up")
    end
end

local function tick(premature)
    if premature or ngx.worker.exiting() then
        return
    end
    -- One worker per interval probes; the lock expires before the next tick.
    local ok = shared[DICT]:add(LOCK_KEY, true, config.interval * 0.8)
    if not ok then
        return
    end
    local threads = {}
    for _, g in ipairs({ apps, one }) do
        for i = 1, #g.names do
            local th, err = spawn(check, g, g.names[i])
            if not th then
                log(ERR, "probe ", g.names[i], ": ", err)
            end
            threads[#threads + 1] = th
        end
    end
    for i = 1, #threads do
        wait(threads[i])
    end
end

local function is_up(name)
    return tracker:is_up(name)
end

-- healthy lists the healthy nodes for detailpage.hot's warm-ups.
local function healthy()
    local out = {}
    for _, name in ipairs(names) do
        if is_up(name) then
            local p = peers[name]
            out[#out + 1] = { name = name, host = p.host, port = p.port }
        end
    end
    return out
end

function _M.init_worker()
    hot.start(healthy)
    local ok, err = ngx.timer.every(config.interval, tick)
    if not ok then
        log(ERR, "start the prober: ", err)
        return
    end
    -- The first probe runs now, not an interval from now.
    ngx.timer.at(0, tick)
end

local rr = 0  -- this worker's round-robin counter for hot ids

-- route answers a hot id with a dist copy at once; otherwise it ranks the
-- healthy nodes: every node in turn for a hot id, the id's rendezvous
-- ranking for the others. With none healthy the request goes to the
-- direct-data service at once.
function _M.route(id)
    local c = hot.lookup(id)
    if c then
        return hot.serve(id, c)
    end
    local order
    if c == false then
        rr = rr + 1
        order = route.spread(names, rr, is_up)
    else
        order = route.rank(names, id, is_up)
    end
    if #order == 0 then
        return ngx.exec("@direct")
    end
    ngx.ctx.dp_order = order
end

-- balance sets the peer of each try: first the id's node; after a
-- failure (proxy_next_upstream) the same node once more with the long
-- read timeout when it has answered a probe since that try began (alive,
-- this page is slow), else the next node in the ranking made for this
-- request. nginx does not count an error on a kept-alive connection as a
-- try, so it may ask past the ranking's end: the last node again, on a new
-- connection. proxy_next_upstream_tries and _timeout bound the whole.
function _M.balance()
    local ctx = ngx.ctx
    local order = ctx.dp_order
    if not order then
        log(ERR, "balancer without a route for ", ngx.var.uri) -- a bug: route() runs first
        return ngx.exit(ngx.ERROR)
    end
    local last = ctx.dp_k
    local k, again = route.next_try(#order, last, ctx.dp_again,
        last ~= nil and tracker:ok_since(order[last], ctx.dp_try_start))
    if not last then
        -- the other nodes, and one node once more
        local ok, err = balancer.set_more_tries(#order)
        if not ok then
            log(WARN, "set more tries: ", err)
        end
    end
    if again then
        ctx.dp_again = true
    end
    ctx.dp_k = k
    ctx.dp_try_start = ngx_now()
    local peer = peers[order[k]]
    local ok, err = balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        log(ERR, "set peer ", order[k], ": ", err)
        return ngx.exit(ngx.ERROR)
    end
    if again then
        ok, err = balancer.set_timeouts(nil, nil, config.slow_timeout)
        if not ok then
            log(WARN, "set timeouts: ", err)
        end
    end
end

local rr_one = 0  -- this worker's round-robin counter over the OneServers

-- unavailable answers the realtime API's 503: no OneServer can answer.
local function unavailable()
    ngx.header["Retry-After"] = "1"
    return bearer.reply(503, { error = "realtime unavailable" })
end

-- route_one orders the healthy OneServer nodes for this request, round
-- robin: the first takes it, the rest are the retry order. With none
-- healthy it answers 503 at once.
function _M.route_one()
    rr_one = rr_one + 1
    local order = route.spread(one.names, rr_one, one.is_up)
    if #order == 0 then
        return unavailable()
    end
    ngx.ctx.dp_one_order = order
end

-- balance_one sets the peer of each try: route_one's order, one node after
-- the other (past its end, as in balance: the last one again).
function _M.balance_one()
    local ctx = ngx.ctx
    local order = ctx.dp_one_order
    if not order then
        log(ERR, "balancer without a route for ", ngx.var.uri) -- a bug: route_one() runs first
        return ngx.exit(ngx.ERROR)
    end
    local last = ctx.dp_one_k
    local k = route.next_try(#order, last, true, false)
    if not last and #order > 1 then
        local ok, err = balancer.set_more_tries(#order - 1)
        if not ok then
            log(WARN, "set more tries: ", err)
        end
    end
    ctx.dp_one_k = k
    local peer = one.peers[order[k]]
    local ok, err = balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        log(ERR, "set peer ", order[k], ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

-- one_unavailable: every try of a realtime request failed (error_page).
function _M.one_unavailable()
    return unavailable()
end

-- node_status lists a group's nodes for the admin status.
local function node_status(g)
    local nodes = {}
    for i, name in ipairs(g.names) do
        local st = g.tracker:status(name)
        st.node = name
        st.healthy = g.tracker:is_up(name)
        st.last_probe = st.last_probe or cjson.null
        st.last_ok = st.last_ok or cjson.null
        st.last_probe_age_ms = st.last_probe_age_ms or cjson.null
        st.since = st.since or cjson.null
        st.last_error = st.last_error or cjson.null
        nodes[i] = st
    end
    if #nodes == 0 then
        -- Debian's lua-cjson has no array_mt: an empty table would encode
        -- as {}; null says "none configured".
        return cjson.null
    end
    return nodes
end

-- status: GET /_admin/status on the admin port (bearer token).
function _M.status()
    if ngx.req.get_method() ~= "GET" then
        return bearer.reply(405, { error = "use GET" })
    end
    if not bearer.authorized() then
        return
    end
    return bearer.reply(200, {
        nodes = node_status(apps),
        one_nodes = node_status(one),
        hot = hot.status(),
        probe = {
            interval_ms = config.interval * 1000,
            timeout_ms = config.timeout * 1000,
            fall = config.fall,
            rise = config.rise,
            slow_timeout_ms = config.slow_timeout * 1000,
            path = config.path,
            one_path = config.one_path,
        },
    })
end

return _M
