-- Unit tests for detailpage.route (rendezvous hashing) and
-- detailpage.health (the probe state machine). Run from the repository
-- root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local route = require "detailpage.route"
local health = require "detailpage.health"

local NODES = { "127.0.0.1:8081", "127.0.0.1:8082", "127.0.0.1:8083" }
local IDS = 10000

local function owners(names, up)
    local m = {}
    for id = 1, IDS do
        m[id] = route.rank(names, tostring(id), up)[1]
    end
    return m
end

describe("route.hash", function()
    it("is deterministic and 32-bit unsigned", function()
        for _, s in ipairs({ "", "1", "127.0.0.1:8081#7", string.rep("x", 300) }) do
            local h = route.hash(s)
            assert.equal(h, route.hash(s))
            assert.is_true(h >= 0 and h < 2 ^ 32 and h == math.floor(h))
        end
    end)

    it("is FNV-1a 32 with murmur3's finalizer (the ranking must not change between releases)", function()
        -- reference values computed with Python's arbitrary-precision ints
        assert.equal(444641715, route.hash("a"))
        assert.equal(789734501, route.hash("127.0.0.1:8081#7"))
        assert.equal(2872998923, route.hash(""))
    end)
end)

describe("route.rank", function()
    it("ranks every node once, best first, the same every time", function()
        for id = 1, 200 do
            local r = route.rank(NODES, tostring(id))
            assert.equal(#NODES, #r)
            local seen = {}
            for _, n in ipairs(r) do
                assert.is_nil(seen[n])
                seen[n] = true
            end
            assert.same(r, route.rank(NODES, tostring(id)))
        end
    end)

    it("spreads ids evenly", function()
        local count = {}
        for _, n in pairs(owners(NODES)) do
            count[n] = (count[n] or 0) + 1
        end
        for _, n in ipairs(NODES) do
            -- a third each, within 10%
            assert.is_true(math.abs(count[n] - IDS / 3) < IDS / 30, n .. ": " .. tostring(count[n]))
        end
    end)

    it("moves only a down node's ids, spread over the others, and back", function()
        local before = owners(NODES)
        local down = NODES[2]
        local after = owners(NODES, function(n) return n ~= down end)
        local moved, to = 0, {}
        for id = 1, IDS do
            if before[id] == down then
                assert.are_not.equal(down, after[id])
                moved = moved + 1
                to[after[id]] = (to[after[id]] or 0) + 1
            else
                assert.equal(before[id], after[id], "id " .. id .. " moved though its node is up")
            end
        end
        assert.is_true(moved > 0)
        -- the moved ids go to both remaining nodes, not all to one
        assert.is_true((to[NODES[1]] or 0) > moved / 3 and (to[NODES[3]] or 0) > moved / 3)
        -- the node returns: every id is back where it was
        assert.same(before, owners(NODES))
    end)

    it("keeps the order of the other nodes when one is removed from the list", function()
        local two = { NODES[1], NODES[3] }
        for id = 1, 500 do
            local full = route.rank(NODES, tostring(id))
            local want = {}
            for _, n in ipairs(full) do
                if n ~= NODES[2] then
                    want[#want + 1] = n
                end
            end
            assert.same(want, route.rank(two, tostring(id)))
        end
    end)

    it("returns an empty list when no node is up", function()
        assert.same({}, route.rank(NODES, "7", function() return false end))
    end)

    it("refuses bad arguments", function()
        assert.has_error(function() route.rank(nil, "7") end, "names must be a list of node names")
        assert.has_error(function() route.rank(NODES, 7) end, "id must be a string")
    end)
end)

describe("route.next_try", function()
    it("starts with the id's node", function()
        assert.same({ 1, false }, { route.next_try(2, nil, false, false) })
    end)

    it("asks a node that still answers probes once more", function()
        assert.same({ 1, true }, { route.next_try(2, 1, false, true) })
        -- only once: then the next node
        assert.same({ 2, false }, { route.next_try(2, 1, true, true) })
    end)

    it("moves on from a node that answered no probe since (hung)", function()
        assert.same({ 2, false }, { route.next_try(2, 1, false, false) })
        assert.same({ 3, false }, { route.next_try(3, 2, false, false) })
    end)

    it("stays on the last node past the end of the ranking", function()
        assert.same({ 2, false }, { route.next_try(2, 2, true, false) })
        assert.same({ 1, false }, { route.next_try(1, 1, true, true) })
    end)
end)

-- fake_dict implements the shdict calls health uses.
local function fake_dict()
    local data = {}
    local d = {}
    function d.get(_, k) return data[k] end
    function d.set(_, k, v)
        data[k] = v
        return true
    end
    function d.incr(_, k, by, init)
        data[k] = (data[k] or init) + by
        return data[k]
    end
    return d
end

describe("health", function()
    local clock, h
    before_each(function()
        clock = { t = 1000 }
        h = health.new(fake_dict(), { fall = 1, rise = 2 }, function() return clock.t end)
    end)

    it("counts a node never probed as up", function()
        assert.equal("unknown", h:state("a"))
        assert.is_true(h:is_up("a"))
    end)

    it("goes up on the first good probe, down on the first failed one", function()
        assert.equal("up", h:record("a", true))
        assert.is_nil(h:record("a", true))
        clock.t = 1000.5
        assert.equal("down", h:record("a", nil, "status line: timeout"))
        assert.is_false(h:is_up("a"))
        local st = h:status("a")
        assert.equal("down", st.state)
        assert.equal(1, st.failures)
        assert.equal(1000.5, st.last_probe)
        assert.equal(1000.5, st.since)
        assert.equal(3, st.probes)
        assert.equal("status line: timeout", st.last_error)
        assert.is_nil(h:record("a", nil, "status line: timeout"))
        assert.equal(2, h:status("a").failures)
    end)

    it("needs rise good probes in a row to come back", function()
        h:record("a", nil, "connect: refused")
        assert.is_nil(h:record("a", true))
        assert.is_false(h:is_up("a"))
        assert.is_nil(h:record("a", nil, "connect: refused"))
        assert.is_nil(h:record("a", true))
        assert.equal("up", h:record("a", true))
        assert.is_true(h:is_up("a"))
        assert.equal(0, h:status("a").failures)
    end)

    it("knows whether a probe that started after a moment succeeded", function()
        assert.is_false(h:ok_since("a", 999))
        h:record("a", true, nil, 1000.1)
        assert.is_true(h:ok_since("a", 1000.1))
        assert.is_false(h:ok_since("a", 1000.2))
        -- an older probe finishing late does not move it back
        h:record("a", true, nil, 1000.05)
        assert.is_true(h:ok_since("a", 1000.1))
        h:record("a", nil, "timeout", 1000.3)
        assert.is_false(h:ok_since("a", 1000.2))
    end)

    it("keeps nodes apart", function()
        h:record("a", nil, "x")
        h:record("b", true)
        assert.is_false(h:is_up("a"))
        assert.is_true(h:is_up("b"))
    end)

    it("keeps two trackers with different prefixes apart in one dict", function()
        local d = fake_dict()
        local apps = health.new(d, { fall = 1, rise = 1 }, function() return clock.t end)
        local one = health.new(d, { fall = 1, rise = 1, prefix = "one:" }, function() return clock.t end)
        apps:record("127.0.0.1:9105", nil, "refused")
        one:record("127.0.0.1:9105", true)
        assert.is_false(apps:is_up("127.0.0.1:9105"))
        assert.is_true(one:is_up("127.0.0.1:9105"))
        assert.equal(1, one:status("127.0.0.1:9105").probes)
        assert.has_error(function() health.new(d, { fall = 1, rise = 1, prefix = 7 }, os.time) end,
            "opts.prefix must be a string")
    end)

    it("honours fall", function()
        local h3 = health.new(fake_dict(), { fall = 3, rise = 1 }, function() return clock.t end)
        h3:record("a", true)
        assert.is_nil(h3:record("a", nil, "x"))
        assert.is_nil(h3:record("a", nil, "x"))
        assert.equal("down", h3:record("a", nil, "x"))
        assert.equal("up", h3:record("a", true))
    end)

    it("refuses bad options", function()
        assert.has_error(function() health.new(fake_dict(), { fall = 0, rise = 1 }, os.time) end,
            "opts.fall must be a number >= 1")
        assert.has_error(function() health.new(nil, {}, os.time) end, "dict must be a shared dict")
    end)
end)
