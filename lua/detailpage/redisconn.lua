-- detailpage.redisconn: connections to the Redis replica a node reads, for
-- the app tier's pages (detailpage.app), the dist tier's hot copies
-- (detailpage.hot) and both tiers' invalidation followers
-- (detailpage.invalidate).
--
--   connect(host, port, timeout_ms)   one connection, or nil and an error
--   replica(opts)                     { connect = fn, release = fn } for
--                                     the replica detailpage.sentinel names
--
-- replica(opts).connect() connects to the fixed replica (opts.host,
-- opts.port), or with Sentinels to the first of detailpage.sentinel's list
-- that accepts, at most two tries: a server that just died or was promoted
-- costs one failed connect, not an outage. release(red) hands a connection
-- that ended well back to the keepalive pool (opts.idle_ms, opts.pool_size);
-- one that failed is closed by its caller.

local sentinel = require "detailpage.sentinel"

local ok_redis, redis = pcall(require, "resty.redis")  -- OpenResty
if not ok_redis then
    redis = require "nginx.redis"                        -- Debian's lua-nginx-redis
end

-- Debian's lua-nginx-redis (0.27) has only set_timeout; calling a missing
-- method would send it to Redis as a command (the module's __index), so
-- look the method up on the module table itself.
local HAS_SET_TIMEOUTS = rawget(redis, "set_timeouts") ~= nil

local type = type
local ipairs = ipairs
local tostring = tostring
local math_min = math.min

local TRIES = 2  -- servers of the Sentinel list tried per connect

local _M = {}

-- connect opens a connection to host:port with timeout_ms for connect,
-- send and read.
local function connect(host, port, timeout_ms)
    local red = redis:new()
    if HAS_SET_TIMEOUTS then
        red:set_timeouts(timeout_ms, timeout_ms, timeout_ms)
    else
        red:set_timeout(timeout_ms)
    end
    local ok, err = red:connect(host, port)
    if not ok then
        return nil, "connect " .. host .. ":" .. port .. ": " .. tostring(err)
    end
    return red
end
_M.connect = connect

-- replica takes opts: host, port (the fixed replica), timeout_ms,
-- idle_ms and pool_size (the keepalive pool); it returns the functions
-- connect() and release(red).
function _M.replica(opts)
    if type(opts) ~= "table" then
        error("opts must be a table", 2)
    end
    for _, k in ipairs({ "port", "timeout_ms", "idle_ms", "pool_size" }) do
        if type(opts[k]) ~= "number" then
            error("opts." .. k .. " must be a number", 2)
        end
    end
    if type(opts.host) ~= "string" then
        error("opts.host must be a string", 2)
    end
    local host, port, timeout = opts.host, opts.port, opts.timeout_ms
    local idle, size = opts.idle_ms, opts.pool_size

    local r = {}

    function r.connect()
        local servers = sentinel.servers()
        if not servers then
            return connect(host, port, timeout)
        end
        local red, err
        for i = 1, math_min(#servers, TRIES) do
            red, err = connect(servers[i].host, servers[i].port, timeout)
            if red then
                return red
            end
        end
        return nil, err
    end

    function r.release(red)
        red:set_keepalive(idle, size)
    end

    return r
end

return _M
