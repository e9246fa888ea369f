-- detailpage.httpc: a minimal HTTP client over cosockets, for the requests
-- the tiers make from timers, where ngx.location.capture cannot run: the
-- dist prober's GET /_health (detailpage.dist), the hot reports' POST
-- /api/report (detailpage.hotcount), the dist tier's poll of /api/hot/ids
-- and its warm fetches of /_admin/page/<id> (detailpage.hot).
--
-- Why by hand: the project runs Debian's nginx with libnginx-mod-http-lua,
-- and Debian packages no lua-resty-http (the OpenResty library one would
-- use). What is needed is small, so this is all of it:
--
--   request(opts) -> status, headers, body, status_line | nil, err
--
-- The request goes out as HTTP/1.0: an HTTP/1.1 server never answers it
-- chunked, so a body is either Content-Length bytes or what comes until the
-- server closes (both read here, up to max_body). Connection: close, unless
-- opts.keepalive asks for a pool: then Connection: keep-alive, and the
-- connection goes back to the pool when the answer had a Content-Length
-- (or no body) and the server did not say close. Header names come back
-- lower-cased; a repeated header's values joined by ", ".
--
-- opts:
--   host, port        where to connect (required)
--   method            "GET" (default), "POST", ...
--   path              "/..." (required)
--   headers           optional { [name] = value }; Host defaults to
--                     host:port, User-Agent to "detailpage"
--   body              optional string; sent with its Content-Length
--   timeout           seconds for connect, send and each read (cosocket
--                     timeouts)
--   total_timeout     seconds for the whole exchange: each step gets what is
--                     left of it (at least 1 ms), and at most `timeout`
--                     when both are set. One of the two is required.
--   status_only       read only the status line and close (status, nil,
--                     nil, line): a cheap health probe
--   max_body          bytes of body accepted (default 1 MiB); larger: an error
--   keepalive         optional { idle_ms =, pool_size = }

local ngx = ngx
local ngx_now = ngx.now
local type = type
local pairs = pairs
local tostring = tostring
local tonumber = tonumber
local math_max = math.max
local math_min = math.min
local math_floor = math.floor
local str_match = string.match
local str_lower = string.lower
local str_sub = string.sub

local DEFAULT_MAX_BODY = 1024 * 1024
local MAX_HEADERS = 100  -- header lines read before the answer is refused

local _M = {}

----------------------------------------------------------------------------
-- Pure parts (lua/spec/httpc_spec.lua).

-- parse_status returns the status code of an HTTP/1.x status line, or nil.
function _M.parse_status(line)
    return tonumber(str_match(line, "^HTTP/%d%.%d (%d%d%d)"))
end

-- parse_header returns the lower-cased name and the trimmed value of a
-- header line, or nil.
function _M.parse_header(line)
    local name, value = str_match(line, "^([^:%s]+):%s*(.-)%s*$")
    if not name then
        return nil
    end
    return str_lower(name), value
end

-- add_header records a header in headers (lower-cased names; a repeated
-- header's values joined by ", ").
function _M.add_header(headers, name, value)
    local cur = headers[name]
    headers[name] = cur and (cur .. ", " .. value) or value
end

-- has_body reports whether an answer to method with status has a body.
function _M.has_body(method, status)
    return method ~= "HEAD" and status >= 200 and status ~= 204 and status ~= 304
end

-- reusable reports whether a connection may go back to the pool after an
-- answer read to its end: the body was delimited (a Content-Length, or
-- none) and the server keeps the connection (an HTTP/1.1 answer without
-- Connection: close, or an HTTP/1.0 one with Connection: keep-alive).
function _M.reusable(status_line, headers, delimited)
    if not delimited then
        return false
    end
    local conn = str_lower(headers["connection"] or "")
    if str_match(conn, "close") then
        return false
    end
    if str_match(status_line, "^HTTP/1%.0 ") then
        return str_match(conn, "keep%-alive") ~= nil
    end
    return true
end

-- build returns the request as a table of strings for sock:send.
function _M.build(opts)
    local method = opts.method or "GET"
    local out = { method, " ", opts.path, " HTTP/1.0\r\n" }
    local headers = opts.headers or {}
    local seen = {}
    for name, value in pairs(headers) do
        seen[str_lower(name)] = true
        out[#out + 1] = name
        out[#out + 1] = ": "
        out[#out + 1] = tostring(value)
        out[#out + 1] = "\r\n"
    end
    if not seen["host"] then
        out[#out + 1] = "Host: " .. opts.host .. ":" .. opts.port .. "\r\n"
    end
    if not seen["user-agent"] then
        out[#out + 1] = "User-Agent: detailpage\r\n"
    end
    if opts.body then
        out[#out + 1] = "Content-Length: " .. #opts.body .. "\r\n"
    end
    out[#out + 1] = opts.keepalive and "Connection: keep-alive\r\n\r\n" or "Connection: close\r\n\r\n"
    if opts.body then
        out[#out + 1] = opts.body
    end
    return out
end

----------------------------------------------------------------------------
-- In nginx.

local function check(opts)
    if type(opts) ~= "table" then
        error("opts must be a table", 3)
    end
    if type(opts.host) ~= "string" or not tonumber(opts.port) then
        error("opts.host and opts.port are required", 3)
    end
    if type(opts.path) ~= "string" or str_sub(opts.path, 1, 1) ~= "/" then
        error("opts.path must start with /", 3)
    end
    if type(opts.timeout) ~= "number" and type(opts.total_timeout) ~= "number" then
        error("opts.timeout or opts.total_timeout must be a number", 3)
    end
    if opts.body ~= nil and type(opts.body) ~= "string" then
        error("opts.body must be a string", 3)
    end
    local ka = opts.keepalive
    if ka ~= nil and (type(ka) ~= "table" or type(ka.idle_ms) ~= "number" or type(ka.pool_size) ~= "number") then
        error("opts.keepalive must be { idle_ms =, pool_size = }", 3)
    end
end

-- read_body reads the body the headers announce: Content-Length bytes, or
-- until the server closes. Returns the body and whether it was delimited;
-- or nil and an error.
local function read_body(sock, headers, max_body)
    if headers["transfer-encoding"] then
        return nil, "transfer-encoding " .. headers["transfer-encoding"] .. " is not supported"
    end
    local len = headers["content-length"]
    if len then
        local n = tonumber(len)
        if not n or n < 0 or n ~= math_floor(n) then
            return nil, "bad content-length " .. len
        end
        if n > max_body then
            return nil, "body of " .. n .. " bytes is too large"
        end
        if n == 0 then
            return "", true
        end
        local body, err = sock:receive(n)
        if not body then
            return nil, "body: " .. tostring(err)
        end
        return body, true
    end
    -- until the server closes: one byte over max_body tells too large
    local body, err, partial = sock:receive(max_body + 1)
    if body then
        return nil, "body is too large"
    end
    if err ~= "closed" then
        return nil, "body: " .. tostring(err)
    end
    return partial, false
end

-- exchange sends the request on one connection and reads the answer:
-- status, headers, body, status line; or nil, an error and whether it
-- failed on a pooled connection before any answer (the server may have
-- closed it while it was idle: worth one more try on a new connection).
local function exchange(opts, deadline)
    local sock = ngx.socket.tcp()
    local step = opts.timeout
    -- arm sets the timeout of the next step: `timeout`, or what is left of
    -- `total_timeout` (ngx.now is cached per event loop turn: update it)
    local function arm()
        local s = step
        if deadline then
            ngx.update_time()
            local left = deadline - ngx_now()
            s = s and math_min(s, left) or left
        end
        sock:settimeout(math_max(1, math_floor(s * 1000)))
    end
    arm()
    local ok, err = sock:connect(opts.host, opts.port)
    if not ok then
        return nil, "connect: " .. tostring(err)
    end
    if deadline then
        arm()
    end
    local reused = opts.keepalive and (sock:getreusedtimes() or 0) > 0
    ok, err = sock:send(_M.build(opts))
    if not ok then
        sock:close()
        return nil, "send: " .. tostring(err), reused and err ~= "timeout"
    end
    if deadline then
        arm()
    end
    local line
    line, err = sock:receive("*l")
    if not line then
        sock:close()
        return nil, "status line: " .. tostring(err), reused and err ~= "timeout"
    end
    local status = _M.parse_status(line)
    if not status then
        sock:close()
        return nil, "not HTTP: " .. str_sub(line, 1, 40)
    end
    if opts.status_only then
        sock:close()
        return status, nil, nil, line
    end
    if deadline then
        arm()
    end
    local headers = {}
    local ended = false
    for _ = 1, MAX_HEADERS + 1 do
        local h
        h, err = sock:receive("*l")
        if not h then
            sock:close()
            return nil, "headers: " .. tostring(err)
        end
        if h == "" then
            ended = true
            break
        end
        local name, value = _M.parse_header(h)
        if name then
            _M.add_header(headers, name, value)
        end
    end
    if not ended then
        sock:close()
        return nil, "headers: more than " .. MAX_HEADERS .. " lines"
    end
    local body, delimited = "", true
    if _M.has_body(opts.method or "GET", status) then
        if deadline then
            arm()
        end
        body, delimited = read_body(sock, headers, opts.max_body or DEFAULT_MAX_BODY)
        if not body then
            sock:close()
            return nil, delimited
        end
    end
    local ka = opts.keepalive
    if ka and _M.reusable(line, headers, delimited) then
        sock:setkeepalive(ka.idle_ms, ka.pool_size)
    else
        sock:close()
    end
    return status, headers, body, line
end

-- request sends one request and reads the answer; see the top of the file.
function _M.request(opts)
    check(opts)
    local deadline = opts.total_timeout and ngx_now() + opts.total_timeout
    local status, headers, body, line = exchange(opts, deadline)
    local method = opts.method or "GET"
    if not status and body and (method == "GET" or method == "HEAD") then
        -- a pooled connection the server had closed: once more, on a new one
        -- (the pool hands out another or connects)
        status, headers, body, line = exchange(opts, deadline)
    end
    if not status then
        return nil, headers
    end
    return status, headers, body, line
end

return _M
