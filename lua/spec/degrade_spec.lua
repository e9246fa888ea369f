-- Unit tests for detailpage.degrade, with a fake shared dict and an
-- injected clock. Run from the repository root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local degrade = require "detailpage.degrade"

-- fake_dict implements the shdict calls degrade uses, with TTLs on the
-- fake clock.
local function fake_dict(clock)
    local data, exp = {}, {}
    local d = {}
    local function live(k)
        if exp[k] and exp[k] <= clock.t then
            data[k], exp[k] = nil, nil
        end
        return data[k]
    end
    function d.get(_, k) return live(k) end
    function d.set(_, k, v, ttl)
        data[k] = v
        exp[k] = (ttl and ttl > 0) and clock.t + ttl or nil
        return true
    end
    function d.add(self, k, v, ttl)
        if live(k) ~= nil then
            return false, "exists"
        end
        return self:set(k, v, ttl)
    end
    function d.incr(self, k, by, init, ttl)
        local v = live(k)
        if v == nil then
            self:set(k, init + by, ttl)
            return init + by
        end
        data[k] = v + by
        return data[k]
    end
    function d.delete(_, k) data[k], exp[k] = nil, nil end
    return d
end

local function setup(opts)
    local clock = { t = 1000 }
    local d = degrade.new(fake_dict(clock), opts or { window = 10, threshold = 3, retry = 5 },
        function() return clock.t end)
    return d, clock
end

describe("degrade", function()
    it("stays normal below the threshold", function()
        local d = setup()
        d:failure("replica")
        d:failure("replica")
        assert.is_true((d:allow("replica")))
        assert.equal("normal", d:status("replica").state)
        assert.equal(2, d:status("replica").failures)
    end)

    it("degrades at the threshold and skips the link during the retry period", function()
        local d, clock = setup()
        d:failure("replica")
        d:failure("replica")
        assert.is_true(d:failure("replica"))
        assert.is_false((d:allow("replica")))
        assert.equal("degraded", d:status("replica").state)
        assert.equal(1005, d:status("replica").retry_at)
        clock.t = 1004.9
        assert.is_false((d:allow("replica")))
    end)

    it("forgets failures older than the window", function()
        local d, clock = setup()
        d:failure("replica")
        d:failure("replica")
        clock.t = clock.t + 11
        assert.is_false(d:failure("replica"))
        assert.is_true((d:allow("replica")))
        assert.equal(1, d:failures("replica"))
    end)

    it("lets exactly one probe through after the retry period", function()
        local d, clock = setup()
        for _ = 1, 3 do d:failure("replica") end
        clock.t = 1005
        local ok, probe = d:allow("replica")
        assert.is_true(ok)
        assert.is_true(probe)
        assert.is_false((d:allow("replica")))
        assert.is_false((d:allow("replica")))
    end)

    it("restores the link when the probe succeeds", function()
        local d, clock = setup()
        for _ = 1, 3 do d:failure("replica") end
        clock.t = 1005
        local _, probe = d:allow("replica")
        assert.is_true(d:success("replica", probe))
        assert.equal("normal", d:status("replica").state)
        assert.equal(0, d:status("replica").failures)
        assert.is_true((d:allow("replica")))
    end)

    it("starts a new retry period when the probe fails", function()
        local d, clock = setup()
        for _ = 1, 3 do d:failure("replica") end
        clock.t = 1005
        local _, probe = d:allow("replica")
        assert.is_true(d:failure("replica", probe))
        assert.equal(1010, d:status("replica").retry_at)
        assert.is_false((d:allow("replica")))
        clock.t = 1010
        assert.is_true((d:allow("replica")))
    end)

    it("is not restored by a request that started before it was degraded", function()
        local d, clock = setup()
        local ok, probe = d:allow("replica") -- a slow request starts at 1000
        assert.is_true(ok)
        assert.is_nil(probe)
        clock.t = 1001
        for _ = 1, 3 do d:failure("replica") end -- the link degrades meanwhile
        clock.t = 1002
        assert.is_false(d:success("replica", probe)) -- the slow one succeeds
        assert.equal("degraded", d:status("replica").state)
        assert.is_false((d:allow("replica")))
        clock.t = 1006 -- past the retry deadline, before the probe reports
        local pok, pprobe = d:allow("replica")
        assert.is_true(pok)
        assert.is_true(pprobe)
        assert.is_false(d:success("replica", probe))
        assert.equal("degraded", d:status("replica").state)
        assert.is_true(d:success("replica", pprobe)) -- only the probe restores
        assert.equal("normal", d:status("replica").state)
    end)

    it("starts a new retry period only on the probe's failure", function()
        local d, clock = setup()
        local _, early = d:allow("replica")
        for _ = 1, 3 do d:failure("replica") end
        clock.t = 1002
        assert.is_false(d:failure("replica", early)) -- late, while degraded
        assert.equal(1005, d:status("replica").retry_at)
        clock.t = 1005
        local _, probe = d:allow("replica")
        clock.t = 1006
        assert.is_false(d:failure("replica", early)) -- late, while the probe runs
        assert.equal(1005, d:status("replica").retry_at)
        assert.is_true(d:failure("replica", probe))
        assert.equal(1011, d:status("replica").retry_at)
    end)

    it("lets another probe through when a probe never reports", function()
        local d, clock = setup({ window = 10, threshold = 1, retry = 5, probe_ttl = 1 })
        d:failure("direct")
        clock.t = 1005
        assert.is_true((d:allow("direct")))
        assert.is_false((d:allow("direct")))
        clock.t = 1006
        assert.is_true((d:allow("direct")))
    end)

    it("keeps links apart", function()
        local d = setup()
        for _ = 1, 3 do d:failure("replica") end
        assert.is_false((d:allow("replica")))
        assert.is_true((d:allow("direct")))
    end)

    it("obeys force-degraded and force-normal, and auto starts clean", function()
        local d = setup()
        assert.is_true(d:set_mode("replica", "force-degraded"))
        assert.is_false((d:allow("replica")))
        assert.equal("degraded", d:status("replica").state)
        assert.is_false(d:failure("replica"))
        assert.is_true(d:set_mode("replica", "force-normal"))
        for _ = 1, 5 do d:failure("replica") end
        assert.is_true((d:allow("replica")))
        assert.is_true(d:set_mode("replica", "auto"))
        assert.equal("normal", d:status("replica").state)
        assert.is_true((d:allow("replica")))
    end)

    it("refuses unknown modes and bad options", function()
        local d = setup()
        local ok, err = d:set_mode("replica", "sometimes")
        assert.is_nil(ok)
        assert.matches("unknown mode", err)
        assert.has_error(function() degrade.new({}, { window = 0, threshold = 1, retry = 1 }, os.time) end,
            "opts.window must be a positive number")
    end)
end)
