-- Unit tests for detailpage.sentinel's pure selection logic.
-- Run from the repository root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local sentinel = require "detailpage.sentinel"

local function replica(port, prio, extra)
    local r = { ip = "127.0.0.1", port = tostring(port), flags = "slave",
                ["master-link-status"] = "ok", ["slave-priority"] = tostring(prio) }
    for k, v in pairs(extra or {}) do
        r[k] = v
    end
    return r
end

local MAIN = { host = "127.0.0.1", port = 6380 }

local function addrs(list)
    local out = {}
    for i, s in ipairs(list) do
        out[i] = s.host .. ":" .. s.port
    end
    return table.concat(out, ",")
end

describe("sentinel.choose", function()
    it("puts data centre A's replicas (lowest priority) before B's", function()
        local list = sentinel.choose(MAIN, { replica(6383, 100), replica(6381, 10), replica(6382, 100) })
        assert.equal("127.0.0.1:6381,127.0.0.1:6382,127.0.0.1:6383", addrs(list))
    end)

    it("falls back to B's replicas when A has none healthy", function()
        local list = sentinel.choose(MAIN, {
            replica(6381, 10, { flags = "s_down,slave,disconnected" }),
            replica(6382, 100), replica(6383, 100),
        })
        assert.equal("127.0.0.1:6382,127.0.0.1:6383", addrs(list))
    end)

    it("skips replicas whose link to main is down (stale data)", function()
        local list = sentinel.choose(MAIN, {
            replica(6381, 10, { ["master-link-status"] = "err" }), replica(6382, 100),
        })
        assert.equal("127.0.0.1:6382", addrs(list))
    end)

    it("reads main as a last resort when no replica is healthy", function()
        local list = sentinel.choose(MAIN, { replica(6381, 10, { flags = "slave,o_down" }) })
        assert.equal("127.0.0.1:6380", addrs(list))
        assert.is_true(list[1].main)
    end)

    it("returns nothing without replicas or main", function()
        assert.equal(0, #sentinel.choose(nil, {}))
    end)

    it("reads replica-priority as well as slave-priority", function()
        local r = replica(6382, 100)
        r["slave-priority"], r["replica-priority"] = nil, "5"
        local list = sentinel.choose(MAIN, { replica(6381, 10), r })
        assert.equal("127.0.0.1:6382,127.0.0.1:6381", addrs(list))
    end)
end)

describe("sentinel.encode/decode", function()
    it("round-trips a list, main included", function()
        local list = sentinel.choose(MAIN, { replica(6381, 10), replica(6382, 100) })
        local back = sentinel.decode(sentinel.encode(list))
        assert.equal(addrs(list), addrs(back))
        assert.equal(10, back[1].priority)
        local only_main = sentinel.decode(sentinel.encode(sentinel.choose(MAIN, {})))
        assert.is_true(only_main[1].main)
    end)

    it("ignores garbage", function()
        assert.equal(0, #sentinel.decode("nonsense,,"))
        assert.equal(0, #sentinel.decode(nil))
    end)
end)

describe("sentinel.order", function()
    it("spreads reads over the best tier and keeps the rest as fallbacks", function()
        local list = sentinel.decode("10 a:1,10 b:2,100 c:3")
        assert.equal("b:2,a:1,c:3", addrs(sentinel.order(list, function(n) return n end)))
        assert.equal("a:1,b:2,c:3", addrs(sentinel.order(list, function() return 1 end)))
    end)

    it("keeps a single best server first", function()
        local list = sentinel.decode("10 a:1,100 b:2,100 c:3")
        assert.equal("a:1,b:2,c:3", addrs(sentinel.order(list, function() error("no need to pick") end)))
    end)
end)
