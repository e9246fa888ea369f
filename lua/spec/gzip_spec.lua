-- Unit tests for detailpage.app's gzip copies and ETags on a simulated node
-- (sim.lua). Run from the repository root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;lua/spec/?.lua;" .. package.path

local zlib = require "zlib"
local sim = require "sim"

local function gunzip(s)
    return (zlib.inflate()(s))
end

-- get asks worker w for id with the request headers given as nginx
-- variables (accept_encoding, if_none_match) and returns the response.
local function get(node, w, id, ae, inm)
    local r = node:request(w, id)
    r.var.http_accept_encoding = ae
    r.var.http_if_none_match = inm
    node:run()
    return r
end

describe("app gzip and ETag", function()
    local node, w
    before_each(function()
        node = sim.new(1)
        w = node:worker()
        node:put_product("7", 12)
    end)

    it("serves the plain copy without Accept-Encoding, gzip to who accepts it: the same page", function()
        local plain = get(node, w, "7")
        assert.equal(200, plain.status)
        assert.is_nil(plain.header["Content-Encoding"])
        assert.equal(#plain.body, plain.header["Content-Length"])
        assert.truthy(plain.body:find("<!DOCTYPE html>", 1, true))

        local gz = get(node, w, "7", "gzip, deflate, br")
        assert.equal(200, gz.status)
        assert.equal("gzip", gz.header["Content-Encoding"])
        assert.equal(#gz.body, gz.header["Content-Length"])
        assert.is_true(#gz.body * 3 < #plain.body, "compressed " .. #gz.body .. " of " .. #plain.body)
        assert.equal(plain.body, gunzip(gz.body))

        local no = get(node, w, "7", "gzip;q=0, *")
        assert.is_nil(no.header["Content-Encoding"])
        assert.equal(plain.body, no.body)
    end)

    it("tags each copy from the versions, the gzip copy apart", function()
        local plain = get(node, w, "7")
        local gz = get(node, w, "7", "gzip")
        local shop = sim.DOC.item.shop_id
        local pattern = '^"p12%-s' .. shop .. '%.' .. sim.DOC.shop.version .. '%-%x%x%x%x%x%x%x%x"$'
        assert.truthy(plain.header["ETag"]:find(pattern), plain.header["ETag"])
        assert.equal(plain.header["ETag"]:sub(1, -2) .. '-gz"', gz.header["ETag"])
    end)

    it("answers 304 without a body when If-None-Match names the copy the client would get", function()
        local gz = get(node, w, "7", "gzip")
        local tag = gz.header["ETag"]
        for _, inm in ipairs({ tag, "W/" .. tag, '"other", ' .. tag, "*" }) do
            local r = get(node, w, "7", "gzip", inm)
            assert.equal(304, r.status, inm)
            assert.equal("", r.body)
            assert.is_nil(r.header["Content-Length"])
            assert.equal(tag, r.header["ETag"])
            assert.equal("L1", r.var.dp_cache)
        end
        -- the plain copy has another tag: the gzip one is no match for it
        local r = get(node, w, "7", nil, tag)
        assert.equal(200, r.status)
        assert.is_true(#r.body > 0)
        -- nor is an older version's
        r = get(node, w, "7", "gzip", tag:gsub("^\"p12", '"p11'))
        assert.equal(200, r.status)
    end)

    it("keeps both copies and the tags in L2, for every worker", function()
        local first = get(node, w, "7", "gzip")
        local w2 = node:worker()
        local r = get(node, w2, "7", "gzip")
        assert.equal("L2", r.var.dp_cache)
        assert.equal(first.body, r.body)
        assert.equal(first.header["ETag"], r.header["ETag"])
        r = get(node, w2, "7", "gzip", first.header["ETag"])
        assert.equal(304, r.status)
        local plain = get(node, w2, "7")
        assert.equal(gunzip(first.body), plain.body)
    end)

    it("changes the tag with a new version", function()
        local before = get(node, w, "7", "gzip")
        node:put_product("7", 13)
        w.drop("7", 13)
        local after = get(node, w, "7", "gzip", before.header["ETag"])
        assert.equal(200, after.status)
        assert.truthy(after.header["ETag"]:find('^"p13%-'))
        assert.are_not.equal(before.header["ETag"], after.header["ETag"])
    end)

    it("round-trips an L2 entry, with and without a gzip copy or tags", function()
        local cases = {
            { exp = 5.5, v = 1, shop = 2, sv = 3, html = "a|b\n", gz = "\31\139xyz", base = "p1-s2.3-0badf00d" },
            { exp = 5, v = 1, shop = 0, sv = 0, html = "plain" },
            { exp = 5, v = 1, shop = 0, sv = 0, html = "", gz = "z" },
            { exp = 5, v = 1, shop = 0, sv = 0, html = "no use", gz = false, base = "p1-s0.0-0badf00d" },
        }
        for _, e in ipairs(cases) do
            local back = w._decode_entry(w._encode_entry(e))
            assert.equal(e.html, back.html)
            assert.equal(e.gz, back.gz)
            assert.equal(e.base, back.base)
            assert.equal(e.v, back.v)
            if e.base then
                assert.equal('"' .. e.base .. '"', back.tag)
                assert.equal(e.gz and ('"' .. e.base .. '-gz"') or nil, back.gztag)
            else
                assert.is_nil(back.tag)
            end
        end
        assert.is_nil(w._decode_entry("1|2|3|4|<html>"), "an entry of the old format is a miss")
    end)

    it("compresses a page the warm-up loaded when a client first asks for gzip, once per node", function()
        assert.equal("redis", w.load("7"))
        local raw = node.shared.dp_pages:get("7")
        assert.is_nil(w._decode_entry(raw).gz, "the warm-up leaves the gzip copy for later")
        local plain = get(node, w, "7")
        assert.is_nil(plain.header["Content-Encoding"])
        local gz = get(node, w, "7", "gzip")
        assert.equal("gzip", gz.header["Content-Encoding"])
        assert.equal(plain.body, gunzip(gz.body))
        assert.equal(plain.header["ETag"]:sub(1, -2) .. '-gz"', gz.header["ETag"])
        -- back in L2 for the other workers: one compression per node
        local e = w._decode_entry(node.shared.dp_pages:get("7"))
        assert.equal(gz.body, e.gz)
        local w2 = node:worker()
        local r = get(node, w2, "7", "gzip", gz.header["ETag"])
        assert.equal(304, r.status)
        assert.equal("L2", r.var.dp_cache)
    end)

    it("gives a page the direct-data service rendered no ETag (its versions are not known here)", function()
        local item = {}
        for k, v in pairs(sim.DOC.item) do
            item[k] = v
        end
        item.id = 8
        item.price = "not an object" -- the Lua renderer refuses it
        node:put_json("item:{8}", item)
        node.direct["/_direct/item/8.html"] = { status = 200, body = "<!DOCTYPE html><p>from pongo2</p>" }
        local r = get(node, w, "8", "gzip", "*")
        assert.equal(200, r.status)
        assert.is_nil(r.header["ETag"])
        assert.equal("<!DOCTYPE html><p>from pongo2</p>", r.header["Content-Encoding"] and gunzip(r.body) or r.body)
    end)
end)

describe("app gzip and ETag, degraded", function()
    it("gives a stale copy the tag of the version it shows", function()
        local node = sim.new(3)
        local w = node:worker({ l1_ttl = 1, l2_ttl = 1 })
        node:put_product("7", 12)
        local fresh = get(node, w, "7", "gzip")
        assert.equal(200, fresh.status)
        -- a newer version exists, but no level below can give it
        node:put_product("7", 13)
        node.replica_down = true
        node:give_way(5000) -- past every TTL
        local r = get(node, w, "7", "gzip")
        assert.equal("stale", r.var.dp_cache)
        assert.equal(fresh.header["ETag"], r.header["ETag"])
        assert.equal(fresh.body, r.body)
        r = get(node, w, "7", "gzip", fresh.header["ETag"])
        assert.equal(304, r.status)
        assert.equal("stale", r.var.dp_cache)
    end)
end)
