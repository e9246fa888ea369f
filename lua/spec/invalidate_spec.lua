-- Unit tests for detailpage.invalidate's blocking follower (follow): the
-- loop of XREAD BLOCK reads the app tier runs in every worker. The entry
-- parsing and the one-read tick are in hot_spec.lua. Run from the
-- repository root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

describe("invalidate follower, blocking reads", function()
    local invalidate
    local slept  -- seconds passed to ngx.sleep, in order

    setup(function()
        _G.ngx = {
            log = function() end, null = {}, timer = {}, WARN = 5, ERR = 4,
            sleep = function(s) slept[#slept + 1] = s end,
            worker = { exiting = function() return false end },
        }
        package.loaded["detailpage.invalidate"] = nil
        invalidate = require "detailpage.invalidate"
    end)

    teardown(function()
        package.loaded["detailpage.invalidate"] = nil
        _G.ngx = nil
    end)

    before_each(function()
        slept = {}
    end)

    -- a replica holding the stream entries, each { id, "ids value" }; it
    -- records every XREAD's arguments and the timeouts set on it.
    local function fake_replica(entries)
        local red = { calls = {}, timeouts = {}, released = 0, closed = 0 }
        red.xrevrange = function()
            local last = entries[#entries]
            return last and { { last[1], { "ids", last[2] } } } or {}
        end
        function red:xread(...)
            local args = { ... }
            self.calls[#self.calls + 1] = args
            local count, after
            for i = 1, #args do
                if args[i] == "COUNT" then
                    count = args[i + 1]
                elseif args[i] == "STREAMS" then
                    after = args[i + 2]
                end
            end
            local out = {}
            for _, e in ipairs(entries) do
                if e[1] > after and #out < count then
                    out[#out + 1] = { e[1], { "ids", e[2] } }
                end
            end
            if #out == 0 then
                return ngx.null  -- BLOCK ran out with nothing new
            end
            return { { "dp:invalidate", out } }
        end
        function red:set_timeout(ms) self.timeouts[#self.timeouts + 1] = ms end
        function red:close() self.closed = self.closed + 1 end
        return red
    end

    -- stop_after returns a stop() that says yes after n loop rounds.
    local function stop_after(n)
        local rounds = 0
        return function()
            rounds = rounds + 1
            return rounds > n
        end
    end

    it("waits with XREAD BLOCK and applies what arrives, from where it stopped", function()
        local entries = { { "1-0", "p:1:1" } }
        local red = fake_replica(entries)
        local seen, dones = {}, {}
        local f = invalidate.follower({
            connect = function() return red end,
            release = function(r) r.released = r.released + 1 end,
            item = function(id, v) seen[#seen + 1] = "p" .. id .. "@" .. v end,
            shop = function(id, v) seen[#seen + 1] = "s" .. id .. "@" .. v end,
            done = function(n) dones[#dones + 1] = n end,
            block_ms = 250,
        })
        -- the second read finds an entry that arrived meanwhile
        local orig = red.xread
        red.xread = function(self, ...)
            if #self.calls == 1 then
                entries[#entries + 1] = { "2-0", "p:2:5,s:3:9" }
            end
            return orig(self, ...)
        end
        f.follow(stop_after(2))
        assert.same({ "p2@5", "s3@9" }, seen)   -- not what was there before it started
        assert.same({ 0, 1 }, dones)
        assert.equal("2-0", f.last_id())
        for _, args in ipairs(red.calls) do
            assert.same({ "BLOCK", 250 }, { args[1], args[2] })
        end
        assert.equal("1-0", red.calls[1][#red.calls[1]])
        assert.equal("1-0", red.calls[2][#red.calls[2]])
        -- the socket may wait longer than the block, on this connection only
        assert.same({ 750, 750 }, red.timeouts)
        assert.equal(2, red.released)
        assert.same({}, slept)                  -- no pause between good reads
    end)

    it("reads a backlog in full before it blocks again", function()
        local entries = {}
        for i = 1, 2500 do
            entries[i] = { string.format("%05d-0", i), "p:" .. i .. ":1" }
        end
        local red = fake_replica(entries)
        local n = 0
        local f = invalidate.follower({
            connect = function() return red end,
            release = function() end,
            item = function() n = n + 1 end,
            shop = function() end,
            last = { get = function() return "0-0" end, set = function() end },
        })
        f.follow(stop_after(1))
        assert.equal(2500, n)
        assert.equal(3, #red.calls)
        assert.equal("BLOCK", red.calls[1][1])   -- only the first of a round may wait
        assert.equal("COUNT", red.calls[2][1])
        assert.equal("COUNT", red.calls[3][1])
    end)

    it("pauses after a failed connect or read, closes the failed connection and goes on", function()
        local red = fake_replica({ { "1-0", "p:1:1" } })
        local fail_connect, fail_read = true, false
        local orig = red.xread
        red.xread = function(self, ...)
            if fail_read then
                return nil, "timeout"
            end
            return orig(self, ...)
        end
        local dones = 0
        local f = invalidate.follower({
            connect = function()
                if fail_connect then
                    fail_connect, fail_read = false, true
                    return nil, "connection refused"
                end
                if fail_read and red.closed == 1 then
                    fail_read = false
                end
                return red
            end,
            release = function(r) r.released = r.released + 1 end,
            item = function() end,
            shop = function() end,
            done = function() dones = dones + 1 end,
            retry = 0.05,
        })
        f.follow(stop_after(3))
        assert.same({ 0.05, 0.05 }, slept)      -- connect refused, then a read timed out
        assert.equal(1, red.closed)
        assert.equal(1, red.released)
        assert.equal(1, dones)                  -- then a good read
    end)

    it("reads only while may_run says so", function()
        local red = fake_replica({})
        local may = false
        local f = invalidate.follower({
            connect = function() return red end,
            release = function() end,
            item = function() end,
            shop = function() end,
            may_run = function() return may end,
        })
        f.follow(stop_after(1))
        assert.same({}, red.calls)
        assert.same({ 0.1 }, slept)
        may = true
        f.follow(stop_after(1))
        assert.equal(1, #red.calls)
    end)
end)
