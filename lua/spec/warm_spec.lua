-- Unit tests for detailpage.warm's pure parts (the top list, merging the
-- hour and day lists, the health state machine) and for detailpage.app's
-- load, which the warm-up calls, on a simulated node (sim.lua). The timer,
-- the request to the hot service and /_health run in nginx
-- (go/e2e/warm_test.go). Run from the repository root:
-- busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;lua/spec/?.lua;" .. package.path

local cjson = require "cjson.safe"
local sim = require "sim"

local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("*a")
    f:close()
    return s
end

local DOC = assert(cjson.decode(read("go/internal/page/testdata/corpus/basic.json")))

local function put_product(node, id)
    local item = {}
    for k, v in pairs(DOC.item) do
        item[k] = v
    end
    item.id = tonumber(id)
    node:put_json("item:{" .. id .. "}", item)
    node:put_json("shop:{s" .. item.shop_id .. "}", DOC.shop)
end

-- fresh loads a new detailpage.warm on node's ngx.
local function fresh(node)
    _G.ngx = node.ngx
    package.loaded["detailpage.warm"] = nil
    return require "detailpage.warm"
end

local node0 = sim.new(1)
local warm = fresh(node0)

describe("warm.top_ids", function()
    it("reads the ids in order as digit strings, past 2^53 too", function()
        local body = '{"period":"hour","since":"2026-11-23T21:00:00Z","top":[' ..
            '{"id":7,"count":30},{"id":123456789012345678,"count":2},{"id":9007199254740993,"count":1}]}'
        assert.same({ "7", "123456789012345678", "9007199254740993" }, warm.top_ids(body))
    end)

    it("takes an empty list and spaces", function()
        assert.same({}, warm.top_ids('{"period":"day","top":[]}'))
        assert.same({ "1", "2" }, warm.top_ids('{ "top" : [ { "id" : 1, "count" : 1 }, {"count":1, "id":2} ] }'))
    end)

    it("refuses what is not a top list of ids", function()
        for _, body in ipairs({
            "",
            "not json",
            "[]",
            '{"top":null}',
            '{"top":{"id":1}}',
            '{"top":[{"count":1}]}',
            '{"top":[{"id":"7","count":1}]}',
            '{"top":[{"id":0,"count":1}]}',
            '{"top":[{"id":-3,"count":1}]}',
            '{"top":[{"id":1.5,"count":1}]}',
            '{"top":[{"id":1e3,"count":1}]}',
            '{"top":[{"id":1234567890123456789,"count":1}]}',
        }) do
            local ids, err = warm.top_ids(body)
            assert.is_nil(ids, body)
            assert.is_string(err, body)
        end
        assert.is_nil(warm.top_ids(nil))
    end)
end)

describe("warm.merge", function()
    it("fills the hour list with the day's ids it lacks, up to the limit", function()
        local seen = {}
        local list = warm.merge({}, seen, { "3", "1", "3" }, 5)
        assert.same({ "3", "1" }, list)
        warm.merge(list, seen, { "1", "2", "4", "5", "6" }, 5)
        assert.same({ "3", "1", "2", "4", "5" }, list)
    end)

    it("stops at the limit within the first list", function()
        assert.same({ "1", "2" }, warm.merge({}, {}, { "1", "2", "3" }, 2))
    end)
end)

describe("warm state", function()
    it("is ready once final or after max seconds from the start", function()
        for _, s in ipairs({ "done", "skipped", "timeout", "failed", "full", "off" }) do
            assert.is_true(warm.ready(s, 100, 100, 5), s)
            assert.equal(s, warm.shown(s, 100, 200, 5))
        end
        for _, s in ipairs({ "starting", "fetching", "loading" }) do
            assert.is_false(warm.ready(s, 100, 104.9, 5), s)
            assert.is_true(warm.ready(s, 100, 105, 5), s)
            assert.equal(s, warm.shown(s, 100, 104.9, 5))
            assert.equal("timeout", warm.shown(s, 100, 105, 5))
        end
    end)

    it("is not ready before a worker has begun", function()
        assert.is_false(warm.ready(nil, nil, 1e9, 5))
        assert.equal("starting", warm.shown(nil, nil, 1e9, 5))
    end)
end)

describe("warm.init", function()
    it("takes its settings from app.config().warm", function()
        local node = sim.new(1)
        local app = node:worker({ warm = { top = 20, max = 2 } })
        package.loaded["detailpage.app"] = app
        local w = fresh(node)
        w.init({ hot = "127.0.0.1:9104" })
        package.loaded["detailpage.app"] = nil
        assert.same({ top = 20, max = 2, threads = 8, timeout = 0.5 }, app.config().warm)
    end)

    it("refuses a top beyond the hot service's limit", function()
        local node = sim.new(1)
        package.loaded["detailpage.app"] = node:worker({ warm = { top = 20000 } })
        local w = fresh(node)
        assert.has_error(function() w.init({ hot = "" }) end,
            "warm.top must be an integer 0..16384 (the hot service's limit)")
        package.loaded["detailpage.app"] = node:worker({ warm = { top = 10, max = 0 } })
        assert.has_error(function() w.init({ hot = "" }) end)
        package.loaded["detailpage.app"] = nil
    end)
end)

-- task queues fn as a request of its own on node (load is called from a
-- timer's light thread; to the scheduler it is one more coroutine).
local function task(node, fn, delay)
    local r = { status = 0, header = {}, var = {}, body = {}, id = "load" }
    node.tasks[#node.tasks + 1] = {
        resp = r,
        wake = node.ms + (delay or 0),
        co = coroutine.create(function() r.result = { fn() } end),
    }
    return r
end

describe("app.load", function()
    it("keeps the page in L2 with one read of the replica and counts no hit", function()
        local node = sim.new(1)
        local w1, w2 = node:worker(), node:worker()
        put_product(node, "7")
        local l = task(node, function() return w1.load("7") end)
        node:run()
        assert.same({ "redis" }, l.result)
        assert.equal(1, node:count("redis_reads"))
        w1.flush_hits()
        for level, n in pairs(w1.node_hits()) do
            assert.equal(0, n, level)
        end
        local r = node:request(w2, "7")
        node:run()
        assert.equal(200, r.status)
        assert.equal("L2", r.var.dp_cache)
        assert.equal(1, node:count("redis_reads"))
        -- loaded again: the node has it, nothing is read
        l = task(node, function() return w2.load("7") end)
        node:run()
        assert.same({ "L2" }, l.result)
        assert.equal(1, node:count("redis_reads"))
    end)

    it("reads the replica only: an id it lacks is an error, not a 404 or a direct call", function()
        local node = sim.new(1)
        local w = node:worker()
        node.direct["/_direct/api/item/8"] = { status = 200, body = cjson.encode({ item = DOC.item, shop = DOC.shop }) }
        local l = task(node, function() return w.load("8") end)
        node:run()
        assert.is_nil(l.result[1])
        assert.matches("replica miss", l.result[2], 1, true)
        assert.equal(0, node:count("direct_calls"))
        assert.is_nil(node.shared.dp_negative:get("8"))
        assert.is_nil(node.shared.dp_locks:get("8"))
        local r = node:request(w, "8")
        node:run()
        assert.equal(200, r.status)
        assert.equal("direct", r.var.dp_cache)
    end)

    it("reports a tombstone as missing and keeps the negative entry", function()
        local node = sim.new(1)
        local w = node:worker()
        node:put_json("item:{12}", { missing = true, version = 3 })
        local l = task(node, function() return w.load("12") end)
        node:run()
        assert.same({ "missing" }, l.result)
        local r = node:request(w, "12")
        node:run()
        assert.equal(404, r.status)
        assert.equal("L2", r.var.dp_cache)
    end)

    it("fails without touching anything when the replica is down", function()
        local node = sim.new(1)
        local w = node:worker()
        node.replica_down = true
        local l = task(node, function() return w.load("9") end)
        node:run()
        assert.is_nil(l.result[1])
        assert.matches("connection refused", l.result[2], 1, true)
        assert.is_nil(node.shared.dp_pages:get("9"))
        assert.is_nil(node.shared.dp_locks:get("9"))
    end)

    it("leaves the link tracker alone: failed loads do not degrade the replica", function()
        local node = sim.new(1)
        local w = node:worker()
        node.replica_down = true
        for i = 1, 20 do
            task(node, function() return w.load(tostring(100 + i)) end)
        end
        node:run()
        assert.is_true(w.links():allow("replica"))
        node.replica_down = false
        put_product(node, "7")
        local r = node:request(w, "7")
        node:run()
        assert.equal("redis", r.var.dp_cache)
    end)

    -- The warm-up and page requests share the per-id lock: between them
    -- one read below, and every page request answered 200.
    it("shares the per-id lock with page requests", function()
        for seed = 1, 200 do
            local node = sim.new(seed)
            local workers = { node:worker(), node:worker() }
            put_product(node, "7")
            local l = task(node, function() return workers[1].load("7") end, node:random(3) - 1)
            local rs = {}
            for i = 1, 4 do
                rs[i] = node:request(workers[(i - 1) % 2 + 1], "7", node:random(4) - 1)
            end
            node:run()
            for i, r in ipairs(rs) do
                assert.equal(200, r.status, ("seed %d request %d"):format(seed, i))
            end
            assert.truthy(l.result[1] == "redis" or l.result[1] == "busy" or l.result[1] == "L2",
                ("seed %d: load gave %s"):format(seed, tostring(l.result[1])))
            assert.equal(1, node:count("redis_reads"), "seed " .. seed)
        end
    end)
end)
