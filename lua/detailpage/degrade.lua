-- detailpage.degrade: link degradation by counters with a retry period
-- (seed 004, 链路降级).
--
-- For each link (the Redis replica, the direct-data service) failures are
-- counted in a sliding window. When the count reaches the threshold the link
-- is degraded until a retry deadline; while degraded it is skipped. When the
-- deadline passes, one request is let through as a probe (half-open): its
-- success restores the link, its failure starts a new retry period. Only the
-- probe's outcome counts while the link is degraded: a request that started
-- before the link was degraded and ends after says nothing about the link
-- now (the defect of hystrix-go that the Go breaker avoids too). Operators
-- can force a link degraded or normal.
--
-- All state lives in a dict with the shdict interface (get, set, add, incr,
-- delete), so every worker of a node agrees. The clock is injected, so the
-- state machine is tested without waiting.

local type = type
local tostring = tostring
local floor = math.floor

local MODES = { auto = true, ["force-degraded"] = true, ["force-normal"] = true }

local _M = {}
local mt = { __index = _M }

-- new returns a degradation tracker.
--   dict  shdict-like store
--   opts  window (s), buckets, threshold (failures), retry (s), probe_ttl (s)
--   now   function returning seconds (ngx.now)
function _M.new(dict, opts, now)
    if type(dict) ~= "table" and type(dict) ~= "userdata" then
        error("dict must be a shared dict", 2)
    end
    if type(opts) ~= "table" then
        error("opts must be a table", 2)
    end
    for _, k in ipairs({ "window", "threshold", "retry" }) do
        if type(opts[k]) ~= "number" or opts[k] <= 0 then
            error("opts." .. k .. " must be a positive number", 2)
        end
    end
    if type(now) ~= "function" then
        error("now must be a function", 2)
    end
    local buckets = opts.buckets or 10
    return setmetatable({
        dict = dict,
        window = opts.window,
        buckets = buckets,
        width = opts.window / buckets,
        threshold = opts.threshold,
        retry = opts.retry,
        probe_ttl = opts.probe_ttl or opts.retry,
        now = now,
    }, mt)
end

local function key(link, what)
    return "degrade:" .. link .. ":" .. what
end

local function bucket_of(self, t)
    return floor(t / self.width)
end

-- failures returns the failures counted in the current window.
function _M.failures(self, link)
    local b = bucket_of(self, self.now())
    local sum = 0
    for i = b - self.buckets + 1, b do
        sum = sum + (self.dict:get(key(link, "b" .. i)) or 0)
    end
    return sum
end

-- mode returns auto, force-degraded or force-normal.
function _M.mode(self, link)
    return self.dict:get(key(link, "mode")) or "auto"
end

-- set_mode sets the operator mode; returns true, or nil and an error.
function _M.set_mode(self, link, mode)
    if not MODES[mode] then
        return nil, "unknown mode " .. tostring(mode)
    end
    local ok, err = self.dict:set(key(link, "mode"), mode)
    if not ok then
        return nil, "set mode: " .. tostring(err)
    end
    if mode ~= "force-degraded" then
        -- leaving a forced state starts from a clean slate
        self.dict:delete(key(link, "until"))
        self.dict:delete(key(link, "probe"))
    end
    return true
end

-- allow tells whether a request may use the link now. The second value is
-- true when this request is the half-open probe: pass it on to success or
-- failure.
function _M.allow(self, link)
    local mode = self:mode(link)
    if mode == "force-degraded" then
        return false
    elseif mode == "force-normal" then
        return true
    end
    local deadline = self.dict:get(key(link, "until"))
    if not deadline then
        return true
    end
    if self.now() < deadline then
        return false
    end
    -- retry period over: exactly one request probes the link
    local ok = self.dict:add(key(link, "probe"), true, self.probe_ttl)
    if ok then
        return true, true
    end
    return false
end

-- degrade marks the link degraded for a new retry period.
local function degrade(self, link)
    self.dict:set(key(link, "until"), self.now() + self.retry)
    self.dict:delete(key(link, "probe"))
end

-- failure records a failed use of the link; probe is allow's second value.
-- Returns true when this failure degraded the link.
function _M.failure(self, link, probe)
    if self:mode(link) ~= "auto" then
        return false
    end
    if self.dict:get(key(link, "until")) then
        -- already degraded: only the probe's failure starts a new period
        if probe then
            degrade(self, link)
            return true
        end
        return false
    end
    local b = bucket_of(self, self.now())
    self.dict:incr(key(link, "b" .. b), 1, 0, self.window + self.width)
    if self:failures(link) >= self.threshold then
        degrade(self, link)
        return true
    end
    return false
end

-- success records a successful use; probe is allow's second value.
-- Returns true when it restored a degraded link: only the probe does.
function _M.success(self, link, probe)
    if not probe or not self.dict:get(key(link, "until")) then
        return false
    end
    self.dict:delete(key(link, "until"))
    self.dict:delete(key(link, "probe"))
    local b = bucket_of(self, self.now())
    for i = b - self.buckets + 1, b do
        self.dict:delete(key(link, "b" .. i))
    end
    return true
end

-- status describes the link for the admin API.
function _M.status(self, link)
    local mode = self:mode(link)
    local deadline = self.dict:get(key(link, "until"))
    local state = "normal"
    if mode == "force-degraded" or (mode == "auto" and deadline) then
        state = "degraded"
    end
    return {
        state = state,
        mode = mode,
        failures = self:failures(link),
        retry_at = deadline or 0,
        threshold = self.threshold,
        window = self.window,
        retry = self.retry,
    }
end

return _M
