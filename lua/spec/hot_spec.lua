-- Unit tests for the dist tier's hot handling: detailpage.hotset (the hot
-- list, copies, versions, a worker's view), route.spread (round robin) and
-- the invalidation follower's entry parsing. Run from the repository root:
-- busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local hotset = require "detailpage.hotset"
local route = require "detailpage.route"

-- a dict with the shdict interface, counting gets
local function fake_dict()
    local d = { data = {}, gets = 0 }
    function d:get(k)
        self.gets = self.gets + 1
        return self.data[k]
    end
    function d:set(k, v)
        self.data[k] = v
        return true
    end
    function d:delete(k)
        self.data[k] = nil
    end
    function d:incr(k, n, init)
        self.data[k] = (self.data[k] or init) + n
        return self.data[k]
    end
    return d
end

describe("hotset.parse_ids", function()
    it("reads one id per line", function()
        local ids, bad = hotset.parse_ids("7\n12\n123456789012345678\n")
        assert.same({ "7", "12", "123456789012345678" }, ids)
        assert.equal(0, bad)
    end)

    it("takes an empty body as an empty set", function()
        local ids, bad = hotset.parse_ids("")
        assert.same({}, ids)
        assert.equal(0, bad)
    end)

    it("skips garbage and counts it", function()
        local ids, bad, first = hotset.parse_ids(
            "7\n<html>oops</html>\n-3\n0\n012\n1234567890123456789\n1.5\n 8\n9\r\n\n9\n")
        assert.same({ "7", "9" }, ids)
        assert.equal(7, bad)
        assert.equal("<html>oops</html>", first)
    end)

    it("caps the list and says so", function()
        local ids, bad, _, cut = hotset.parse_ids("1\n2\n3\n4\n", 2)
        assert.same({ "1", "2" }, ids)
        assert.equal(0, bad)
        assert.is_true(cut)
    end)

    it("cuts a long garbage line in the log", function()
        local _, bad, first = hotset.parse_ids(string.rep("x", 1000))
        assert.equal(1, bad)
        assert.equal(40, #first)
    end)

    it("refuses a body that is not a string", function()
        assert.has_error(function() hotset.parse_ids(nil) end)
    end)
end)

describe("hotset lists", function()
    it("round-trips", function()
        local list, set = hotset.decode_list(hotset.encode_list({ "3", "1", "2" }))
        assert.same({ "3", "1", "2" }, list)
        assert.same({ ["1"] = true, ["2"] = true, ["3"] = true }, set)
        list, set = hotset.decode_list(nil)
        assert.same({}, list)
        assert.same({}, set)
    end)

    it("diffs the spread set against a new list", function()
        local added, removed = hotset.diff({ ["1"] = true, ["2"] = true, ["5"] = true }, { "2", "3", "4" })
        assert.same({ "3", "4" }, added)
        assert.same({ "1", "5" }, removed)
        added, removed = hotset.diff({}, {})
        assert.same({}, added)
        assert.same({}, removed)
    end)
end)

describe("hotset copies", function()
    it("round-trips a copy and its head alone", function()
        local c = { iv = 12, shop = 3, sv = 7, at = 1700000000.25, ctype = "text/html; charset=utf-8",
            body = "<p>a|b\nc</p>" }
        local raw = hotset.encode_copy(c)
        local back = hotset.decode_copy(raw)
        assert.equal(12, back.iv)
        assert.equal(3, back.shop)
        assert.equal(7, back.sv)
        assert.equal(1700000000.25, back.at)
        assert.equal(c.ctype, back.ctype)
        assert.equal(c.body, back.body)
        assert.equal(#c.body, back.len)
        local head = hotset.decode_copy(raw, true)
        assert.is_nil(head.body)
        assert.equal(12, head.iv)
        assert.is_nil(hotset.decode_copy("garbage"))
        assert.is_nil(hotset.decode_copy(nil))
    end)

    it("round-trips both encodings and their ETags", function()
        local c = { iv = 12, shop = 3, sv = 7, at = 5, ctype = "text/html", body = "<p>a|b\n</p>",
            tag = '"p12-s3.7-0a0b0c0d"', gz = "\31\139|\n\0zz", gztag = '"p12-s3.7-0a0b0c0d-gz"' }
        local back = hotset.decode_copy(hotset.encode_copy(c))
        assert.equal(c.body, back.body)
        assert.equal(c.gz, back.gz)
        assert.equal(c.tag, back.tag)
        assert.equal(c.gztag, back.gztag)
        assert.equal(#c.body, back.len)
        assert.equal(#c.gz, back.gzlen)
        local head = hotset.decode_copy(hotset.encode_copy(c), true)
        assert.is_nil(head.gz)
        assert.equal(#c.gz, head.gzlen)
        -- none of either
        c.tag, c.gz, c.gztag = nil, nil, nil
        back = hotset.decode_copy(hotset.encode_copy(c))
        assert.is_nil(back.tag)
        assert.is_nil(back.gz)
        assert.is_nil(back.gztag)
        assert.equal(0, back.gzlen)
        -- a body shorter than its length says: malformed
        assert.is_nil(hotset.decode_copy("1|2|3|4|t|||99\nshort"))
        -- the format before issue 15: malformed, never half read
        assert.is_nil(hotset.decode_copy("1|2|3|4|text/html\n<p>"))
    end)

    it("adds the gzip answer of the same versions, and nothing else", function()
        local h = { ["x-item-version"] = "42", ["x-shop-id"] = "3", ["x-shop-version"] = "9",
            etag = '"p42-s3.9-x"' }
        local function plain()
            local c = hotset.copy_from(200, h)
            c.body = "page"
            return c
        end
        local gh = { ["x-item-version"] = "42", ["x-shop-id"] = "3", ["x-shop-version"] = "9",
            etag = '"p42-s3.9-x-gz"', ["content-encoding"] = "gzip" }
        local c = plain()
        assert.equal('"p42-s3.9-x"', c.tag)
        assert.is_true(hotset.add_gzip(c, 200, gh, "GZ"))
        assert.equal("GZ", c.gz)
        assert.equal('"p42-s3.9-x-gz"', c.gztag)
        -- another version: no copy now
        c = plain()
        local ok, why = hotset.add_gzip(c, 200, { ["x-item-version"] = "43", ["x-shop-id"] = "3",
            ["x-shop-version"] = "9", ["content-encoding"] = "gzip" }, "GZ")
        assert.is_false(ok)
        assert.truthy(why:find("versions changed", 1, true))
        -- no answer, or not a page
        assert.is_false((hotset.add_gzip(plain(), nil, "timeout")))
        assert.is_false((hotset.add_gzip(plain(), 503, {})))
        -- answered plain: the copy keeps the plain body only
        c = plain()
        assert.is_true(hotset.add_gzip(c, 200, h, "page"))
        assert.is_nil(c.gz)
        -- one tag for two bodies: refused
        c = plain()
        local same = {}
        for k, v in pairs(gh) do
            same[k] = v
        end
        same.etag = h.etag
        assert.is_false((hotset.add_gzip(c, 200, same, "GZ")))
        -- a tag the copy cannot keep is dropped, the page kept
        c = hotset.copy_from(200, { ["x-item-version"] = "1", etag = 'W/"weak"' })
        assert.is_nil(c.tag)
        c = hotset.copy_from(200, { ["x-item-version"] = "1", etag = '"a|b"' })
        assert.is_nil(c.tag)
    end)

    it("reads an app node's page answer", function()
        local c = hotset.copy_from(200, { ["x-item-version"] = "42", ["x-shop-id"] = "3",
            ["x-shop-version"] = "9", ["content-type"] = "text/html; charset=utf-8" })
        assert.same({ iv = 42, shop = 3, sv = 9, ctype = "text/html; charset=utf-8" }, c)
        -- no shop
        c = hotset.copy_from(200, { ["x-item-version"] = "42" })
        assert.same({ iv = 42, shop = 0, sv = 0, ctype = "text/html; charset=utf-8" }, c)
        local none, why = hotset.copy_from(404, {})
        assert.is_nil(none)
        assert.equal("status 404", why)
        assert.is_nil(hotset.copy_from(200, {}))
        assert.is_nil(hotset.copy_from(200, { ["x-item-version"] = "x" }))
        assert.is_nil(hotset.copy_from(200, { ["x-item-version"] = "1", ["x-shop-version"] = "-1" }))
        assert.is_nil(hotset.copy_from(200, { ["x-item-version"] = "1", ["content-type"] = "a|b" }))
    end)

    it("reads versions at the head of Redis values", function()
        assert.equal(17, hotset.version_of('{"version":17,"name":"x"}'))
        assert.equal(5, hotset.version_of('{"version":5,"segments":3'))
        assert.equal(0, hotset.version_of('{"version":0,"missing":true}'))
        assert.is_nil(hotset.version_of(""))
        assert.is_nil(hotset.version_of(nil))
        assert.is_nil(hotset.version_of({}))
    end)
end)

describe("hotset invalidation decisions", function()
    local c = { iv = 10, shop = 3, sv = 5 }

    it("accepts a copy at or above every version it must have", function()
        assert.is_true(hotset.acceptable(c, nil, nil, nil, nil))
        assert.is_true(hotset.acceptable(c, 10, 5, 10, 5))
        assert.is_true(hotset.acceptable(c, 9, 4, 8, nil))
    end)

    it("refuses a copy older than an invalidation asked", function()
        local ok, why = hotset.acceptable(c, 11, nil, 10, 5)
        assert.is_false(ok)
        assert.equal("item version 10 < 11", why)
        ok, why = hotset.acceptable(c, nil, 6, 10, 5)
        assert.is_false(ok)
        assert.equal("shop version 5 < 6", why)
    end)

    it("refuses a copy older than the replica holds", function()
        assert.is_false(hotset.acceptable(c, nil, nil, 11, 5))
        assert.is_false(hotset.acceptable(c, nil, nil, 10, 6))
    end)

    it("ignores shop versions for a page without a shop", function()
        assert.is_true(hotset.acceptable({ iv = 1, shop = 0, sv = 0 }, nil, 99, 1, 99))
    end)

    it("drops a copy on a newer product version only", function()
        assert.is_true(hotset.outdated_by_item(c, 11))
        assert.is_false(hotset.outdated_by_item(c, 10)) -- read after the copy was made
        assert.is_false(hotset.outdated_by_item(c, 9))
        assert.is_false(hotset.outdated_by_item(nil, 11))
    end)

    it("drops a copy on a newer version of its own shop only", function()
        assert.is_true(hotset.outdated_by_shop(c, 3, 6))
        assert.is_false(hotset.outdated_by_shop(c, 3, 5))
        assert.is_false(hotset.outdated_by_shop(c, 4, 99))
        assert.is_false(hotset.outdated_by_shop(nil, 3, 6))
    end)

    it("lets the hot set expire after keep seconds without a good poll", function()
        assert.is_false(hotset.expired(100, 105, 10))
        assert.is_false(hotset.expired(100, 110, 10))
        assert.is_true(hotset.expired(100, 110.5, 10))
        assert.is_true(hotset.expired(nil, 1, 10))
    end)
end)

describe("hotset.view", function()
    local function put(d, id, iv, body)
        d.data["copy:" .. id] = hotset.encode_copy({ iv = iv, shop = 0, sv = 0, at = 1, ctype = "text/html",
            body = body })
    end

    it("hashes everything while nothing is hot", function()
        local v = hotset.view(fake_dict())
        assert.is_nil(v:lookup("7"))
    end)

    it("serves copies from its table until the generation changes", function()
        local d = fake_dict()
        d.data.set = "7\n8"
        put(d, "7", 1, "page 7 v1")
        d.data.gen = 1
        local v = hotset.view(d)
        assert.equal("page 7 v1", v:lookup("7").body)
        assert.is_false(v:lookup("8"))  -- hot, no copy: spread
        assert.is_nil(v:lookup("9"))    -- not hot: hash
        -- a request costs one get (the generation) once the copy is read
        local gets = d.gets
        assert.equal("page 7 v1", v:lookup("7").body)
        assert.is_false(v:lookup("8"))
        assert.equal(gets + 2, d.gets)
        -- a new copy without a new generation is not seen ...
        put(d, "7", 2, "page 7 v2")
        put(d, "8", 1, "page 8 v1")
        assert.equal("page 7 v1", v:lookup("7").body)
        assert.is_false(v:lookup("8"))
        -- ... and is after it
        d:incr("gen", 1, 0)
        assert.equal("page 7 v2", v:lookup("7").body)
        assert.equal("page 8 v1", v:lookup("8").body)
    end)

    it("drops an id that left the set and a copy that was dropped", function()
        local d = fake_dict()
        d.data.set = "7\n8"
        put(d, "7", 1, "a")
        put(d, "8", 1, "b")
        d.data.gen = 5
        local v = hotset.view(d)
        assert.equal("a", v:lookup("7").body)
        assert.equal("b", v:lookup("8").body)
        d.data.set = "8"
        d.data["copy:8"] = nil
        d:incr("gen", 1, 0)
        assert.is_nil(v:lookup("7"))
        assert.is_false(v:lookup("8"))
    end)

    it("treats a malformed copy as none", function()
        local d = fake_dict()
        d.data.set = "7"
        d.data["copy:7"] = "not a copy"
        d.data.gen = 1
        assert.is_false(hotset.view(d):lookup("7"))
    end)
end)

describe("route.spread", function()
    local NODES = { "a", "b", "c" }

    it("takes every node in turn", function()
        assert.same({ "a", "b", "c" }, route.spread(NODES, 1))
        assert.same({ "b", "c", "a" }, route.spread(NODES, 2))
        assert.same({ "c", "a", "b" }, route.spread(NODES, 3))
        assert.same({ "a", "b", "c" }, route.spread(NODES, 4))
    end)

    it("spreads evenly over the healthy nodes only", function()
        local up = function(n) return n ~= "b" end
        local first = {}
        for k = 1, 100 do
            local order = route.spread(NODES, k, up)
            assert.equal(2, #order)
            first[order[1]] = (first[order[1]] or 0) + 1
        end
        assert.same({ a = 50, c = 50 }, first)
    end)

    it("returns one node or none as they are", function()
        assert.same({ "c" }, route.spread(NODES, 7, function(n) return n == "c" end))
        assert.same({}, route.spread(NODES, 7, function() return false end))
    end)

    it("refuses bad arguments", function()
        assert.has_error(function() route.spread(nil, 1) end)
        assert.has_error(function() route.spread(NODES, 0) end)
    end)
end)

describe("invalidate entries", function()
    local invalidate

    setup(function()
        -- the module caches a few ngx fields at load; the parsing is pure
        _G.ngx = { log = function() end, null = {}, timer = {}, WARN = 5, ERR = 4 }
        package.loaded["detailpage.invalidate"] = nil
        invalidate = require "detailpage.invalidate"
    end)

    teardown(function()
        package.loaded["detailpage.invalidate"] = nil
        _G.ngx = nil
    end)

    it("hands products and shops to their callbacks", function()
        local items, shops = {}, {}
        local n, last = invalidate.apply_reply({ { "dp:invalidate", {
            { "1-0", { "ids", "p:7:12,s:3:4" } },
            { "2-0", { "other", "x", "ids", "p:123456789012345678:99,junk,p:x:1" } },
            { "3-0", "not fields" },
        } } }, function(id, v) items[#items + 1] = { id, v } end,
            function(id, v) shops[#shops + 1] = { id, v } end)
        assert.equal(3, n)
        assert.equal("3-0", last)
        assert.same({ { "7", 12 }, { "123456789012345678", 99 } }, items)
        assert.same({ { "3", 4 } }, shops)
    end)

    it("takes an empty or odd reply as no entries", function()
        assert.equal(0, (invalidate.apply_reply(nil)))
        assert.equal(0, (invalidate.apply_reply({})))
        local n, last = invalidate.apply_reply({ { "dp:invalidate", {} } })
        assert.equal(0, n)
        assert.is_nil(last)
    end)

    it("wants every callback of a follower", function()
        assert.has_error(function() invalidate.follower({ connect = print }) end)
    end)

    -- a replica holding the stream entries, each { id, "ids value" }
    local function fake_replica(entries)
        local red = { reads = 0, released = 0, closed = 0 }
        red.xrevrange = function()
            local last = entries[#entries]
            return last and { { last[1], { "ids", last[2] } } } or {}
        end
        function red:xread(_, count, _, _, after)
            self.reads = self.reads + 1
            local out = {}
            for _, e in ipairs(entries) do
                if e[1] > after and #out < count then
                    out[#out + 1] = { e[1], { "ids", e[2] } }
                end
            end
            if #out == 0 then
                return ngx.null
            end
            return { { "dp:invalidate", out } }
        end
        function red:close() self.closed = self.closed + 1 end
        return red
    end

    it("starts after the newest entry and hands on where it stopped", function()
        local entries = { { "1-0", "p:1:1" }, { "2-0", "p:2:1" } }
        local red = fake_replica(entries)
        local store = { last = nil }  -- a shared dict in nginx
        local last = {
            get = function() return store.last end,
            set = function(_, id) store.last = id end,
        }
        local seen, done = {}, 0
        local function follower()
            return invalidate.follower({
                connect = function() return red end,
                release = function(r) r.released = r.released + 1 end,
                item = function(id, v) seen[#seen + 1] = "p" .. id .. "@" .. v end,
                shop = function(id, v) seen[#seen + 1] = "s" .. id .. "@" .. v end,
                last = last,
                done = function() done = done + 1 end,
            })
        end
        local a = follower()
        a.tick()
        assert.same({}, seen)              -- what was there before is not applied
        assert.equal("2-0", store.last)
        entries[#entries + 1] = { "3-0", "p:3:7,s:9:2" }
        -- another worker's follower goes on from the shared place
        local b = follower()
        b.tick()
        assert.same({ "p3@7", "s9@2" }, seen)
        assert.equal("3-0", store.last)
        assert.equal("3-0", a.last_id())
        assert.equal(2, done)
        assert.equal(2, red.released)
    end)

    it("skips a tick when another worker follows, and survives a failed read", function()
        local red = fake_replica({ { "1-0", "p:1:1" } })
        red.xread = function() return nil, "timeout" end
        local may = false
        local released = 0
        local f = invalidate.follower({
            connect = function() return red end,
            release = function() released = released + 1 end,
            item = function() end,
            shop = function() end,
            may_run = function() return may end,
        })
        f.tick()
        assert.is_nil(f.last_id())         -- did not run
        may = true
        f.tick()
        assert.equal(1, red.closed)        -- a failed read closes the connection
        assert.equal(0, released)
        red.xread = function() return ngx.null end
        f.tick()                           -- and the next tick runs again
        assert.equal(1, released)
    end)
end)
