-- sim: a simulated app node for busted, to run detailpage.app's request path
-- outside nginx with many requests interleaved in chosen or random orders.
--
-- Not a mock of nginx's behaviour in general: only the calls app.lua makes,
-- with nginx's semantics where they matter here. Each request is a
-- coroutine; time is virtual (integer milliseconds). A request gives way to
-- the scheduler:
--   * at every shared-dict call: the dict is atomic, but the node's other
--     worker processes run at the same time, so another request may act
--     between any two of them;
--   * in ngx.sleep, and in Redis and subrequest I/O (0-2 ms, at random).
-- The scheduler runs a random ready request (seeded, so a failing seed
-- replays exactly), and advances the clock when none is ready.
--
--   local node = sim.new(seed)
--   local w1, w2 = node:worker(), node:worker()   -- two worker processes
--   node.redis["item:{7}"] = json      -- or node:put_product("7")
--   local r = node:request(w1, "7")
--   node:run()
--   assert.equal(200, r.status)

local cjson = require "cjson.safe"

local co_yield = coroutine.yield
local co_running = coroutine.running

local M = {}

local Sim = {}
Sim.__index = Sim

local NULL = setmetatable({}, { __tostring = function() return "ngx.null" end })

-- fake_shdict is a lua_shared_dict with TTLs on the virtual clock.
local function fake_shdict(node)
    local data, exp = {}, {}
    local d = {}
    local function live(k)
        if exp[k] and exp[k] <= node.ms then
            data[k], exp[k] = nil, nil
        end
        return data[k]
    end
    local function put(k, v, ttl)
        data[k] = v
        exp[k] = (ttl and ttl > 0) and node.ms + ttl * 1000 or nil
    end
    function d.get(_, k)
        node:give_way()
        return live(k)
    end
    function d.set(_, k, v, ttl)
        node:give_way()
        put(k, v, ttl)
        return true
    end
    function d.add(_, k, v, ttl)
        node:give_way()
        if live(k) ~= nil then
            return false, "exists"
        end
        put(k, v, ttl)
        return true
    end
    function d.incr(_, k, by, init, ttl)
        node:give_way()
        local v = live(k)
        if v == nil then
            if init == nil then
                return nil, "not found"
            end
            put(k, init + by, ttl)
            return init + by
        end
        data[k] = v + by
        return data[k]
    end
    function d.delete(_, k)
        node:give_way()
        data[k], exp[k] = nil, nil
    end
    function d.capacity() return 1048576 end
    function d.free_space() return 1048576 end
    return d
end

-- fake_redis is the resty.redis API app.lua uses, over node.redis (a table
-- of key → string). With node.replica_down set, connect fails.
local function fake_redis(node)
    local R = {}
    R.__index = R
    function R.new() return setmetatable({}, R) end
    function R.set_timeouts() end
    function R.set_timeout() end
    function R.connect()
        node:io()
        if node.replica_down then
            return nil, "connection refused"
        end
        return 1
    end
    function R.get(_, k)
        node:io()
        local v = node.redis[k]
        if v == nil then
            return NULL
        end
        return v
    end
    function R.mget(_, ...)
        node:io()
        local out = {}
        for i, k in ipairs({ ... }) do
            out[i] = node.redis[k] or NULL
        end
        return out
    end
    function R.close() return 1 end
    function R.set_keepalive() return 1 end
    return R
end

-- new returns a node: its shared dicts, virtual clock and scheduler.
function M.new(seed)
    local node = setmetatable({
        ms = 1000000,
        rng = seed or 1,
        tasks = {},
        redis = {},    -- the replica's keys
        direct = {},   -- uri → { status =, body = } for ngx.location.capture
        replica_down = false,
        logs = {},
    }, Sim)
    local shared = {}
    for _, name in ipairs({ "dp_pages", "dp_shops", "dp_negative", "dp_locks", "dp_versions", "dp_state" }) do
        shared[name] = fake_shdict(node)
    end
    node.shared = shared

    local function resp()
        return node.current and node.current.resp or node.setup_resp
    end
    node.setup_resp = { status = 200, header = {}, var = {}, body = {} }
    local ngx = {
        null = NULL,
        ERR = 4, WARN = 5, INFO = 7, ALERT = 2,
        shared = shared,
        now = function() return node.ms / 1000 end,
        sleep = function(s) node:give_way(math.floor(s * 1000 + 0.5)) end,
        log = function(lvl, ...)
            node.logs[#node.logs + 1] = { lvl = lvl, msg = table.concat({ ... }) }
        end,
        print = function(s) local b = resp().body; b[#b + 1] = s end,
        eof = function() resp().eof = true end,
        get_phase = function() return node.current and "content" or "init_worker" end,
        location = {
            capture = function(uri)
                node:io()
                return node.direct[uri] or { status = 502, body = "" }
            end,
        },
        var = setmetatable({}, {
            __index = function(_, k) return resp().var[k] end,
            __newindex = function(_, k, v) resp().var[k] = v end,
        }),
        header = setmetatable({}, {
            __index = function(_, k) return resp().header[k] end,
            __newindex = function(_, k, v) resp().header[k] = v end,
        }),
    }
    setmetatable(ngx, {
        __index = function(_, k) if k == "status" then return resp().status end end,
        __newindex = function(t, k, v)
            if k == "status" then
                resp().status = v
            else
                rawset(t, k, v)
            end
        end,
    })
    node.ngx = ngx
    node.redis_module = fake_redis(node)
    return node
end

-- random returns an integer in [1, n] from the node's own generator (a
-- Park–Miller LCG), so app.lua's use of math.random does not shift it.
function Sim:random(n)
    self.rng = (self.rng * 16807) % 2147483647
    return self.rng % n + 1
end

-- give_way lets the scheduler run another request; the current one is
-- ready again after ms (0: at once). Outside a request it does nothing.
function Sim:give_way(ms)
    local task = self.current
    if not task or co_running() ~= task.co then
        if ms and ms > 0 and not task then
            self.ms = self.ms + ms
        end
        return
    end
    task.wake = self.ms + (ms or 0)
    co_yield()
end

-- io is a Redis command or a subrequest: 0 to 2 ms.
function Sim:io()
    self:give_way(self:random(3) - 1)
end

-- worker loads a fresh copy of detailpage.app (its own L1 and counters),
-- as a worker process of this node would have, and initialises it.
function Sim:worker(opts)
    _G.ngx = self.ngx
    package.loaded["resty.redis"] = self.redis_module
    package.loaded["resty.lrucache"] = nil
    package.loaded["detailpage.app"] = nil
    package.loaded["detailpage.redisconn"] = nil  -- it holds this node's resty.redis
    local app = require "detailpage.app"
    package.loaded["detailpage.app"] = nil
    local o = { node = "sim", template_dir = "templates", replica_host = "127.0.0.1", replica_port = 6379 }
    for k, v in pairs(opts or {}) do
        o[k] = v
    end
    app.init(o)
    app.init_worker()
    return app
end

-- request queues GET /item/<id>.html on a worker, starting after delay ms.
-- It returns the response, filled in by run: status, header, var, body
-- (a string once run returns), eof.
function Sim:request(app, id, delay)
    local r = { status = 200, header = {}, var = {}, body = {}, id = id }
    self.tasks[#self.tasks + 1] = {
        resp = r,
        wake = self.ms + (delay or 0),
        co = coroutine.create(function() app.serve_item(id) end),
    }
    return r
end

-- run runs every queued request to its end.
function Sim:run()
    while true do
        local ready, soonest = {}, nil
        for _, t in ipairs(self.tasks) do
            if not t.done then
                if t.wake <= self.ms then
                    ready[#ready + 1] = t
                elseif not soonest or t.wake < soonest then
                    soonest = t.wake
                end
            end
        end
        if #ready == 0 then
            if not soonest then
                break
            end
            self.ms = soonest
        else
            local t = ready[self:random(#ready)]
            self.current = t
            local ok, err = coroutine.resume(t.co)
            self.current = nil
            if not ok then
                error("request for item " .. t.resp.id .. " raised: " .. tostring(err))
            end
            if coroutine.status(t.co) == "dead" then
                t.done = true
                t.resp.body = table.concat(t.resp.body)
            end
        end
    end
    self.tasks = {}
end

-- count returns a node counter of app.lua (dp_state "count:<name>").
function Sim:count(name)
    local cur = self.current
    self.current = nil
    local v = self.shared.dp_state:get("count:" .. name) or 0
    self.current = cur
    return v
end

-- put_json stores a document on the replica.
function Sim:put_json(key, doc)
    self.redis[key] = cjson.encode(doc)
end

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

-- DOC is a real document (the parity corpus), as the sync service stores
-- it: { item =, shop = }.
M.DOC = assert(cjson.decode(read("go/internal/page/testdata/corpus/basic.json")))

-- put_product stores product id (DOC's item, with that id and, when given,
-- version) and its shop on the replica.
function Sim:put_product(id, version)
    local item = {}
    for k, v in pairs(M.DOC.item) do
        item[k] = v
    end
    item.id = tonumber(id)
    item.version = version or item.version
    self:put_json("item:{" .. id .. "}", item)
    self:put_json("shop:{s" .. item.shop_id .. "}", M.DOC.shop)
end

return M
