-- Unit tests for detailpage.hotcount's settings and for what the app tier
-- counts (on a simulated node, sim.lua): 200 → count, 404 → missing,
-- /_admin/page neither, and its version headers. The timer and the POST
-- run in nginx (go/e2e/hot_report_test.go). Run from the repository root:
-- busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;lua/spec/?.lua;" .. package.path

local sim = require "sim"

local DOC = sim.DOC

-- fresh loads a new detailpage.hotcount on node's ngx (app.lua then
-- requires this one) and initialises it.
local function fresh(node, opts)
    _G.ngx = node.ngx
    package.loaded["detailpage.hotcount"] = nil
    local hotcount = require "detailpage.hotcount"
    if opts then
        hotcount.init(opts)
    end
    return hotcount
end

-- The other specs load detailpage.app afresh; let them load a fresh
-- hotcount too (off until init).
teardown(function()
    package.loaded["detailpage.hotcount"] = nil
end)

describe("hotcount.init", function()
    local node = sim.new(1)
    local hotcount = fresh(node)

    it("takes the hot instances", function()
        assert.same({
            { name = "127.0.0.1:9104", host = "127.0.0.1", port = 9104 },
            { name = "hot2:9104", host = "hot2", port = 9104 },
        }, hotcount.parse_instances(" 127.0.0.1:9104 ,hot2:9104,"))
        assert.same({}, hotcount.parse_instances(""))
    end)

    it("is off with hot = \"\"", function()
        hotcount.init({ node = "app1", hot = "" })
        assert.is_false(hotcount.enabled())
        hotcount.count("7")
        hotcount.missing("8")
        assert.is_true(hotcount._batch():empty())
    end)

    it("is on with an instance", function()
        hotcount.init({ node = "app1", hot = "127.0.0.1:9104" })
        assert.is_true(hotcount.enabled())
        hotcount.count("7")
        assert.equal(1, hotcount._batch().counts["7"])
    end)

    it("rejects settings that are wrong", function()
        assert.has_error(function() hotcount.init({ hot = "" }) end,
            "opts.node must be 1 to 64 characters of [A-Za-z0-9._:-]")
        assert.has_error(function() hotcount.init({ node = "app 1", hot = "" }) end,
            "opts.node must be 1 to 64 characters of [A-Za-z0-9._:-]")
        assert.has_error(function() hotcount.init({ node = "app1" }) end, "opts.hot must be a string")
        assert.has_error(function() hotcount.init({ node = "app1", hot = "nohost" }) end,
            "opts.hot: nohost is not host:port")
        assert.has_error(function() hotcount.init({ node = "app1", hot = "", intervall = 1 }) end,
            "opts.intervall is not a setting")
        assert.has_error(function() hotcount.init({ node = "app1", hot = "", interval = 0 }) end,
            "opts.interval must be a positive number")
    end)
end)

describe("the app tier's counting", function()
    local node, hotcount, app

    before_each(function()
        node = sim.new(7)
        hotcount = fresh(node, { node = "sim", hot = "127.0.0.1:9104" })
        app = node:worker()
    end)

    it("counts a page answered 200 at every level", function()
        node:put_product("7")
        for _ = 1, 3 do
            local r = node:request(app, "7")
            node:run()
            assert.equal(200, r.status)
        end
        assert.equal(3, hotcount._batch().counts["7"])
        assert.equal(0, hotcount._batch().nmissing)
    end)

    it("counts every request of a stampede (lock holder, waiters)", function()
        node:put_product("7")
        local w2 = node:worker()
        local rs = {}
        for i = 1, 40 do
            rs[i] = node:request(i % 2 == 0 and app or w2, "7", node:random(4) - 1)
        end
        node:run()
        for i = 1, 40 do
            assert.equal(200, rs[i].status)
        end
        assert.equal(40, hotcount._batch().counts["7"])
    end)

    it("counts a page answered from the stale copy, also by the request that refreshes", function()
        node = sim.new(9)
        hotcount = fresh(node, { node = "sim", hot = "127.0.0.1:9104" })
        app = node:worker({ l1_ttl = 1, l2_ttl = 1 })
        node:put_product("7")
        local r = node:request(app, "7")
        node:run()
        assert.equal(200, r.status)
        node.ms = node.ms + 5000 -- every copy expired; L2 keeps it as the stale copy
        local rs = {}
        for i = 1, 5 do
            rs[i] = node:request(app, "7")
        end
        node:run()
        local stale = 0
        for i = 1, 5 do
            assert.equal(200, rs[i].status)
            if rs[i].var.dp_cache == "stale" then
                stale = stale + 1
            end
        end
        assert.is_true(stale >= 1)
        assert.equal(6, hotcount._batch().counts["7"])
    end)

    it("remembers a page answered 404 as missing, not as a view", function()
        node.direct["/_direct/api/item/9"] = { status = 404, body = "" }
        local r = node:request(app, "9")
        node:run()
        assert.equal(404, r.status)
        assert.is_nil(hotcount._batch().counts["9"])
        assert.is_true(hotcount._batch().missing["9"])
    end)

    it("counts no 503", function()
        node.replica_down = true
        local r = node:request(app, "5")
        node:run()
        assert.equal(503, r.status)
        assert.is_true(hotcount._batch():empty())
    end)

    it("does not count /_admin/page and tells its versions there", function()
        node:put_product("7", 42)
        local r = { status = 200, header = {}, var = {}, body = {}, id = "7" }
        node.tasks[#node.tasks + 1] = {
            resp = r, wake = node.ms, co = coroutine.create(function() app.serve_admin("7") end),
        }
        node:run()
        assert.equal(200, r.status)
        assert.equal("redis", r.var.dp_cache)
        assert.equal(42, r.header["X-Item-Version"])
        assert.equal(tonumber(DOC.item.shop_id), r.header["X-Shop-Id"])
        assert.equal(tonumber(DOC.shop.version) or 0, r.header["X-Shop-Version"])
        assert.is_true(hotcount._batch():empty())
        -- the page itself carries no version headers
        local p = node:request(app, "7")
        node:run()
        assert.equal("L1", p.var.dp_cache)
        assert.is_nil(p.header["X-Item-Version"])
        assert.equal(1, hotcount._batch().counts["7"])
    end)
end)
