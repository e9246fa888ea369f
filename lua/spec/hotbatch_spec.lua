-- Unit tests for detailpage.hotbatch: a worker's bounded batch, its
-- serialization, the node's merged report and the log-once tracker. Run
-- from the repository root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local cjson = require "cjson.safe"
local hotbatch = require "detailpage.hotbatch"

-- fake_dict: the shdict calls the tracker uses, with TTLs on clock.t.
local function fake_dict(clock)
    clock = clock or { t = 0 }
    local data, exp = {}, {}
    local function live(k)
        if exp[k] and exp[k] <= clock.t then
            data[k], exp[k] = nil, nil
        end
        return data[k]
    end
    return {
        get = function(_, k) return live(k) end,
        set = function(_, k, v) data[k] = v; return true end,
        add = function(_, k, v, ttl)
            if live(k) ~= nil then
                return false, "exists"
            end
            data[k] = v
            exp[k] = (ttl and ttl > 0) and clock.t + ttl or nil
            return true
        end,
        delete = function(_, k) data[k], exp[k] = nil, nil end,
    }
end

-- decode parses a report as the hot service would, keeping ids as strings.
local function decode(body)
    local doc = assert(cjson.decode(body))
    return doc
end

local function merged(batches, max_ids, max_missing)
    local m = hotbatch.merger(max_ids or 20000, max_missing or 1000)
    for _, b in ipairs(batches) do
        assert.is_true(m:add(b:serialize()))
    end
    return m
end

describe("hotbatch batch", function()
    it("counts requests per id", function()
        local b = hotbatch.new(10, 10)
        for _ = 1, 3 do
            b:add("7")
        end
        b:add("12")
        assert.equal(3, b.counts["7"])
        assert.equal(1, b.counts["12"])
        assert.equal(2, b.n)
        assert.equal(0, b.dropped)
        assert.is_false(b:empty())
    end)

    it("keeps at most max_ids distinct ids and counts the rest as dropped", function()
        local b = hotbatch.new(100, 10)
        for i = 1, 1000 do
            b:add(tostring(i))
        end
        b:add("1") -- an id it has still counts
        assert.equal(100, b.n)
        assert.equal(900, b.dropped)
        assert.equal(2, b.counts["1"])
        assert.is_nil(b.counts["101"])
        local n = 0
        for _ in pairs(b.counts) do
            n = n + 1
        end
        assert.equal(100, n)
    end)

    it("bounds missing ids and remembers each once", function()
        local b = hotbatch.new(10, 2)
        b:add_missing("9")
        b:add_missing("9")
        b:add_missing("10")
        b:add_missing("11")
        assert.equal(2, b.nmissing)
        assert.equal(1, b.dropped)
    end)

    it("is empty when new", function()
        assert.is_true(hotbatch.new(1, 1):empty())
    end)

    it("rejects bad limits", function()
        assert.has_error(function() hotbatch.new(0, 1) end, "max_ids must be a positive integer")
        assert.has_error(function() hotbatch.new(1, 1.5) end, "max_missing must be a positive integer")
    end)
end)

describe("hotbatch serialize", function()
    it("round-trips through the merger", function()
        local b = hotbatch.new(10, 10)
        b:add("7"); b:add("7"); b:add("123456789012345678")
        b:add_missing("9")
        local s = b:serialize()
        assert.is_nil(s:find("[^%d=,|]"))
        local m = merged({ b })
        assert.equal(2, m.counts["7"])
        assert.equal(1, m.counts["123456789012345678"])
        assert.same({ "9" }, m.missing_list)
    end)

    it("drops what is not a product id", function()
        local b = hotbatch.new(10, 10)
        for _, id in ipairs({ "0", "07", "1234567890123456789", "7a", "", "-1", "1.5" }) do
            b:add(id)
        end
        b:add("5")
        b:add(6) -- a number id is written as its digits
        b:add_missing("x")
        local m = merged({ b })
        assert.same({ ["5"] = 1, ["6"] = 1 }, m.counts)
        assert.equal(8, m.dropped)
        assert.equal(0, m.nmissing)
    end)

    it("serializes an empty batch", function()
        assert.equal("||0", hotbatch.new(1, 1):serialize())
    end)
end)

describe("hotbatch merger", function()
    it("adds up the workers' batches", function()
        local a, b = hotbatch.new(10, 10), hotbatch.new(10, 10)
        for _ = 1, 5 do a:add("7") end
        for _ = 1, 3 do b:add("7") end
        b:add("8")
        a:add_missing("9"); b:add_missing("9"); b:add_missing("10")
        local m = merged({ a, b })
        assert.same({ ["7"] = 8, ["8"] = 1 }, m.counts)
        assert.equal(2, m.n)
        assert.same({ "9", "10" }, m.missing_list)
        assert.equal(2, m.batches)
    end)

    it("reports the busiest max_ids ids when the batches hold more", function()
        local a, b = hotbatch.new(100, 10), hotbatch.new(100, 10)
        for i = 1, 100 do a:add("1" .. i) end          -- 100 ids once each
        for i = 1, 100 do b:add("2" .. i) end          -- 100 other ids once each
        for _ = 1, 50 do a:add("150"); b:add("299") end -- two busy ids
        local m = merged({ a, b }, 10)
        local doc = decode(m:report("app1", 250))
        local n = 0
        for _ in pairs(doc.counts) do
            n = n + 1
        end
        assert.equal(10, n)
        assert.equal(51, doc.counts["150"])
        assert.equal(51, doc.counts["299"])
        assert.equal(200 + 100 - 102 - 8, m.dropped)
    end)

    it("keeps the busiest at a tie as far as there is room", function()
        local m = hotbatch.merger(3, 10)
        m:add("1=5,2=3,3=3|9|0")
        m:add("4=3,5=1||0")
        local ids = m:busiest()
        table.sort(ids)
        assert.equal(3, #ids)
        assert.equal("1", ids[1])
        for i = 2, 3 do
            assert.equal(3, m.counts[ids[i]])
        end
        assert.equal(3 + 1, m.dropped)
    end)

    it("bounds missing ids over all batches", function()
        local a, b = hotbatch.new(10, 10), hotbatch.new(10, 10)
        for i = 1, 3 do a:add_missing(tostring(i)) end
        for i = 3, 6 do b:add_missing(tostring(i)) end
        local m = merged({ a, b }, 10, 4)
        -- a's three, then one of b's others (3 is there already)
        assert.equal(4, #m.missing_list)
        assert.is_true(m.missing["1"] and m.missing["2"] and m.missing["3"])
        assert.equal(2, m.dropped)
    end)

    it("skips a string not in the queue's format", function()
        local m = hotbatch.merger(10, 10)
        assert.is_false(m:add("garbage"))
        assert.is_true(m:add("7=2||0"))
        assert.equal(1, m.bad)
        assert.same({ ["7"] = 2 }, m.counts)
    end)

    it("carries the workers' dropped counts", function()
        local b = hotbatch.new(1, 1)
        b:add("1"); b:add("2"); b:add("3")
        local m = merged({ b })
        assert.equal(2, m.dropped)
    end)
end)

describe("hotbatch report", function()
    it("is the hot service's JSON with ids as string keys", function()
        local b = hotbatch.new(10, 10)
        for _ = 1, 120 do b:add("7") end
        for _ = 1, 3 do b:add("12") end
        b:add("999999999999999999")
        b:add_missing("9")
        local body = merged({ b }):report("app1", 250)
        -- the 18-digit id is a string key, never a number
        assert.truthy(body:find('"999999999999999999":1', 1, true))
        local doc = decode(body)
        assert.same({
            node = "app1",
            interval_ms = 250,
            counts = { ["7"] = 120, ["12"] = 3, ["999999999999999999"] = 1 },
            missing = { "9" },
        }, doc)
    end)

    it("leaves out missing when there is none, and keeps counts an object", function()
        local b = hotbatch.new(10, 10)
        b:add("7")
        local body = merged({ b }):report("dist", 500)
        assert.is_nil(body:find("missing", 1, true))
        b = hotbatch.new(10, 10)
        b:add_missing("9")
        body = merged({ b }):report("app2", 250)
        assert.equal('{"node":"app2","interval_ms":250,"counts":{},"missing":["9"]}', body)
    end)

    it("is nil with nothing to report", function()
        assert.is_nil(hotbatch.merger(10, 10):report("app1", 250))
        assert.is_nil(merged({ hotbatch.new(10, 10) }):report("app1", 250))
    end)

    it("caps a count at the service's limit", function()
        local m = hotbatch.merger(10, 10)
        m:add("7=999999999||0")
        m:add("7=999999999||0")
        assert.equal(1000000000, decode(m:report("app1", 250)).counts["7"])
    end)
end)

describe("hotbatch tracker", function()
    it("says down once when an instance starts failing and up once when it answers", function()
        local t = hotbatch.tracker(fake_dict())
        assert.is_nil(t:record("h1:9104", true))
        assert.equal("down", t:record("h1:9104", false, "connect: refused", 10))
        assert.is_nil(t:record("h1:9104", false, "connect: refused", 10.25))
        assert.is_nil(t:record("h1:9104", false, "status line: timeout", 10.5))
        assert.same({ failing = true, since = 10, error = "connect: refused" }, t:status("h1:9104"))
        assert.equal("up", t:record("h1:9104", true))
        assert.is_nil(t:record("h1:9104", true))
        assert.same({ failing = false }, t:status("h1:9104"))
        assert.equal("down", t:record("h1:9104", false, "again", 20))
    end)

    it("tries a failing instance once per retry period", function()
        local clock = { t = 0 }
        local t = hotbatch.tracker(fake_dict(clock))
        assert.is_true(t:should_try("h:1", 1))
        assert.is_true(t:should_try("h:1", 1))
        t:record("h:1", false, "timeout", 0)
        assert.is_true(t:should_try("h:1", 1))   -- the first of the period
        clock.t = 0.25
        assert.is_false(t:should_try("h:1", 1))
        assert.is_true(t:should_try("other:1", 1))
        clock.t = 1.0
        assert.is_true(t:should_try("h:1", 1))
        assert.is_false(t:should_try("h:1", 1))
        t:record("h:1", true)
        assert.is_true(t:should_try("h:1", 1))
        assert.is_true(t:should_try("h:1", 1))
    end)

    it("keeps each instance apart", function()
        local t = hotbatch.tracker(fake_dict())
        assert.equal("down", t:record("a:1", false, "x", 1))
        assert.is_nil(t:record("b:1", true))
        assert.equal("down", t:record("b:1", false, "y", 2))
        assert.equal("up", t:record("a:1", true))
        assert.is_true(t:status("b:1").failing)
    end)

    it("logs once across workers sharing the dict", function()
        local d = fake_dict()
        local w1, w2 = hotbatch.tracker(d), hotbatch.tracker(d)
        assert.equal("down", w1:record("h:1", false, "x", 1))
        assert.is_nil(w2:record("h:1", false, "x", 1.25))
        assert.equal("up", w2:record("h:1", true))
        assert.is_nil(w1:record("h:1", true))
    end)
end)
