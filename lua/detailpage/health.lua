-- detailpage.health: the dist tier's view of each app node's health, kept
-- from the prober's results.
--
-- A node is down after `fall` consecutive failed probes and up again after
-- `rise` consecutive good ones. A node never probed yet is "unknown" and
-- counts as up (a dist tier that just started routes at once; the first
-- probe runs right away). The prober is the only writer; the balancer and
-- the admin status read.
--
-- State lives in a dict with the shdict interface (get, set, incr), so
-- every worker of the dist nginx sees the same health. The clock is
-- injected, so the state machine is tested without waiting.

local type = type

local _M = {}
local mt = { __index = _M }

-- new returns a health tracker.
--   dict  shdict-like store
--   opts  fall, rise (consecutive probes); prefix (optional): the dict
--         keys' prefix, so that two trackers (the dist's app nodes and its
--         OneServer nodes) share one dict without mixing their nodes
--   now   function returning seconds (ngx.now)
function _M.new(dict, opts, now)
    if type(dict) ~= "table" and type(dict) ~= "userdata" then
        error("dict must be a shared dict", 2)
    end
    if type(opts) ~= "table" then
        error("opts must be a table", 2)
    end
    for _, k in ipairs({ "fall", "rise" }) do
        if type(opts[k]) ~= "number" or opts[k] < 1 then
            error("opts." .. k .. " must be a number >= 1", 2)
        end
    end
    if type(now) ~= "function" then
        error("now must be a function", 2)
    end
    if opts.prefix ~= nil and type(opts.prefix) ~= "string" then
        error("opts.prefix must be a string", 2)
    end
    return setmetatable({ dict = dict, fall = opts.fall, rise = opts.rise, now = now,
        prefix = "health:" .. (opts.prefix or "") }, mt)
end

local function key(self, node, what)
    return self.prefix .. node .. ":" .. what
end

-- state returns "up", "down" or "unknown" (never probed).
function _M.state(self, node)
    return self.dict:get(key(self, node, "state")) or "unknown"
end

-- is_up tells whether the balancer may send node requests.
function _M.is_up(self, node)
    return self.dict:get(key(self, node, "state")) ~= "down"
end

-- ok_since tells whether a probe that started at or after t succeeded:
-- the node was alive then, whatever a request to it is doing.
function _M.ok_since(self, node, t)
    local last_ok = self.dict:get(key(self, node, "ok_start"))
    return last_ok ~= nil and last_ok >= t
end

-- record takes one probe's outcome; started is when the probe began
-- (default: now). It returns the new state when this probe changed it
-- ("up" or "down"), else nil.
function _M.record(self, node, ok, err, started)
    local d = self.dict
    local now = self.now()
    d:set(key(self, node, "last"), now)
    d:incr(key(self, node, "probes"), 1, 0)
    local state = self:state(node)
    if ok then
        local k = key(self, node, "ok_start")
        local t = started or now
        if (d:get(k) or 0) < t then
            d:set(k, t)
        end
        d:set(key(self, node, "fails"), 0)
        local oks = d:incr(key(self, node, "oks"), 1, 0)
        if state == "unknown" or (state == "down" and oks >= self.rise) then
            d:set(key(self, node, "state"), "up")
            d:set(key(self, node, "since"), now)
            return "up"
        end
        return nil
    end
    d:set(key(self, node, "oks"), 0)
    d:set(key(self, node, "error"), type(err) == "string" and err or "probe failed")
    local fails = d:incr(key(self, node, "fails"), 1, 0)
    if state ~= "down" and fails >= self.fall then
        d:set(key(self, node, "state"), "down")
        d:set(key(self, node, "since"), now)
        return "down"
    end
    return nil
end

-- status describes a node for the admin API. Times are Unix seconds;
-- nil where there is nothing yet.
function _M.status(self, node)
    local d = self.dict
    local last = d:get(key(self, node, "last"))
    return {
        state = self:state(node),
        last_probe = last,
        last_ok = d:get(key(self, node, "ok_start")),
        last_probe_age_ms = last and math.floor((self.now() - last) * 1000 + 0.5) or nil,
        since = d:get(key(self, node, "since")),
        failures = d:get(key(self, node, "fails")) or 0,
        successes = d:get(key(self, node, "oks")) or 0,
        probes = d:get(key(self, node, "probes")) or 0,
        last_error = d:get(key(self, node, "error")),
    }
end

return _M
