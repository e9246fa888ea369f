-- Unit tests for detailpage.app's request path on a simulated node (see
-- sim.lua): two worker processes, their shared dicts, a fake replica and
-- direct-data service, and a scheduler that interleaves requests at every
-- shared-dict call and every I/O. Run from the repository root:
-- busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;lua/spec/?.lua;" .. package.path

local cjson = require "cjson.safe"
local sim = require "sim"

local DOC = sim.DOC

-- stampede sends n requests for one cold id, alternating between two
-- workers, arriving within the first few milliseconds, and returns the
-- responses.
local function stampede(node, workers, id, n)
    local rs = {}
    for i = 1, n do
        rs[i] = node:request(workers[(i - 1) % #workers + 1], id, node:random(4) - 1)
    end
    node:run()
    return rs
end

local function statuses(rs)
    local out = {}
    for i, r in ipairs(rs) do
        out[i] = r.status .. " " .. tostring(r.var.dp_cache)
    end
    return table.concat(out, ", ")
end

describe("app dog-pile", function()
    -- Issue 16: the lock holder released the per-id lock before it stored
    -- the page, and a waiter polling in that gap answered 503 for a cold id.
    it("answers every request of a stampede on a cold id with the page, one read below", function()
        for seed = 1, 300 do
            local node = sim.new(seed)
            local workers = { node:worker(), node:worker() }
            node:put_product("7")
            local rs = stampede(node, workers, "7", 6)
            for i, r in ipairs(rs) do
                if r.status ~= 200 then
                    error(("seed %d: request %d answered %d (all: %s)"):format(seed, i, r.status, statuses(rs)))
                end
            end
            assert.equal(1, node:count("redis_reads"), "seed " .. seed)
            assert.equal(0, node:count("direct_calls"), "seed " .. seed)
        end
    end)

    it("answers every request of a stampede on an unknown id with 404, never 503", function()
        for seed = 1, 300 do
            local node = sim.new(seed)
            local workers = { node:worker(), node:worker() }
            node.direct["/_direct/api/item/8"] = { status = 404, body = "" }
            local rs = stampede(node, workers, "8", 6)
            for i, r in ipairs(rs) do
                if r.status ~= 404 then
                    error(("seed %d: request %d answered %d (all: %s)"):format(seed, i, r.status, statuses(rs)))
                end
            end
            assert.equal(1, node:count("direct_calls"), "seed " .. seed)
        end
    end)

    it("answers the waiters with 503 when the holder got nothing", function()
        local node = sim.new(1)
        local workers = { node:worker(), node:worker() }
        node.replica_down = true
        node.direct["/_direct/api/item/9"] = { status = 500, body = "" }
        local rs = stampede(node, workers, "9", 4)
        for i, r in ipairs(rs) do
            assert.equal(503, r.status, "request " .. i)
            assert.equal("2", r.header["Retry-After"])
        end
    end)
end)

describe("app levels", function()
    it("goes to the direct-data service when the replica has no item", function()
        local node = sim.new(1)
        local w = node:worker()
        local env = { item = DOC.item, shop = DOC.shop }
        node.direct["/_direct/api/item/10"] = { status = 200, body = cjson.encode(env) }
        local r = node:request(w, "10")
        node:run()
        assert.equal(200, r.status)
        assert.equal("direct", r.var.dp_cache)
        local again = node:request(w, "10")
        node:run()
        assert.equal("L1", again.var.dp_cache)
        assert.equal(again.body, r.body)
    end)

    it("keeps a missing product in the negative dict, not as an error", function()
        local node = sim.new(1)
        local w = node:worker()
        node.direct["/_direct/api/item/11"] = { status = 404, body = "" }
        local r = node:request(w, "11")
        node:run()
        assert.equal(404, r.status)
        assert.equal("direct", r.var.dp_cache)
        for _, l in ipairs(node.logs) do
            assert.is_nil(l.msg:find("missing", 1, true), l.msg)
        end
        local again = node:request(node:worker(), "11")
        node:run()
        assert.equal(404, again.status)
        assert.equal("L2", again.var.dp_cache)
        assert.equal(1, node:count("direct_calls"))
    end)

    it("treats a tombstone in Redis as missing", function()
        local node = sim.new(1)
        local w = node:worker()
        node:put_json("item:{12}", { missing = true, version = 3 })
        local r = node:request(w, "12")
        node:run()
        assert.equal(404, r.status)
        assert.equal("redis", r.var.dp_cache)
        assert.equal(0, node:count("direct_calls"))
    end)
end)

describe("app settings", function()
    local node = sim.new(1)

    it("takes what it is not given from DEFAULTS", function()
        local app = node:worker({ l1_ttl = 2, degrade = { threshold = 3 } })
        local c = app.config()
        assert.equal(2, c.l1_ttl)
        assert.equal(600, c.l2_ttl)
        assert.equal(3, c.degrade.threshold)
        assert.equal(5, c.degrade.retry)
    end)

    it("refuses unknown settings, wrong types and a missing node", function()
        assert.has_error(function() node:worker({ l1_tll = 2 }) end, "opts.l1_tll is not a setting")
        assert.has_error(function() node:worker({ l2_ttl = "600" }) end, "opts.l2_ttl must be a number")
        assert.has_error(function() node:worker({ degrade = { retyr = 1 } }) end,
            "opts.degrade.retyr is not a setting")
        assert.has_error(function() node:worker({ node = false }) end, "opts.node must be a string")
    end)
end)
