-- Unit tests for detailpage.httpc: the status line and header parsing, the
-- request it writes, and how it reads answers, over a scripted socket. Its
-- callers run against real servers in go/e2e (hot, dist, hot reporting).
-- Run from the repository root: busted --lua=luajit lua/spec

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

-- sock returns a cosocket stand-in that answers with the bytes of answer
-- and records what was sent, the timeouts and how it ended.
local function sock(answer, opts)
    opts = opts or {}
    local s = { sent = {}, timeouts = {}, pos = 1 }
    function s:settimeout(ms) self.timeouts[#self.timeouts + 1] = ms end
    function s:connect(host, port)
        self.host, self.port = host, port
        if opts.refuse then
            return nil, "connection refused"
        end
        return 1
    end
    function s:send(data)
        self.sent[#self.sent + 1] = type(data) == "table" and table.concat(data) or data
        return #self.sent[#self.sent]
    end
    function s:receive(pat)
        local rest = answer:sub(self.pos)
        if pat == "*l" then
            local i = rest:find("\n", 1, true)
            if not i then
                self.pos = #answer + 1
                return nil, opts.hang and "timeout" or "closed", rest
            end
            self.pos = self.pos + i
            return (rest:sub(1, i - 1):gsub("\r$", ""))
        end
        if #rest < pat then
            self.pos = #answer + 1
            return nil, opts.hang and "timeout" or "closed", rest
        end
        self.pos = self.pos + pat
        return rest:sub(1, pat)
    end
    function s.getreusedtimes() return opts.reused or 0 end
    function s:close() self.ended = "closed" end
    function s:setkeepalive(idle, size) self.ended = "pooled " .. idle .. "/" .. size end
    return s
end

describe("httpc", function()
    local httpc, current, clock, tick

    setup(function()
        _G.ngx = {
            -- every look at the clock is `tick` seconds after the last one
            now = function() clock = clock + tick; return clock end,
            update_time = function() end,
            socket = { tcp = function() return current end },
        }
        package.loaded["detailpage.httpc"] = nil
        httpc = require "detailpage.httpc"
    end)

    teardown(function()
        package.loaded["detailpage.httpc"] = nil
        _G.ngx = nil
    end)

    before_each(function()
        clock, tick = 1000, 0
    end)

    local function get(answer, extra, sopts)
        current = sock(answer, sopts)
        local opts = { host = "10.0.0.1", port = 8081, path = "/x", timeout = 0.5 }
        for k, v in pairs(extra or {}) do
            opts[k] = v
        end
        return current, httpc.request(opts)
    end

    describe("parse_status", function()
        it("reads the code of HTTP/1.0 and 1.1 status lines", function()
            assert.equal(200, httpc.parse_status("HTTP/1.1 200 OK"))
            assert.equal(503, httpc.parse_status("HTTP/1.0 503 Service Unavailable"))
            assert.equal(204, httpc.parse_status("HTTP/1.1 204"))
        end)
        it("refuses what is not a status line", function()
            assert.is_nil(httpc.parse_status("SSH-2.0-OpenSSH"))
            assert.is_nil(httpc.parse_status("HTTP/1.1 20 OK"))
            assert.is_nil(httpc.parse_status("HTTP/2 200"))
            assert.is_nil(httpc.parse_status(""))
        end)
    end)

    describe("parse_header", function()
        it("lower-cases the name and trims the value", function()
            assert.same({ "content-length", "12" }, { httpc.parse_header("Content-Length:12") })
            assert.same({ "x-item-version", "7" }, { httpc.parse_header("X-Item-Version:   7  ") })
            assert.same({ "location", "http://a:1/b" }, { httpc.parse_header("Location: http://a:1/b") })
            assert.same({ "x-empty", "" }, { httpc.parse_header("X-Empty:") })
        end)
        it("skips lines that are not headers", function()
            assert.is_nil(httpc.parse_header("no colon here"))
            assert.is_nil(httpc.parse_header(": no name"))
            assert.is_nil(httpc.parse_header(" folded: continuation"))
        end)
        it("joins a repeated header's values", function()
            local h = {}
            httpc.add_header(h, "vary", "a")
            httpc.add_header(h, "vary", "b")
            assert.equal("a, b", h.vary)
        end)
    end)

    describe("build", function()
        it("writes an HTTP/1.0 GET with Host, User-Agent and Connection: close", function()
            local req = table.concat(httpc.build({ host = "h", port = 1, path = "/p" }))
            assert.equal("GET /p HTTP/1.0\r\nHost: h:1\r\nUser-Agent: detailpage\r\nConnection: close\r\n\r\n", req)
        end)
        it("sends a body with its Content-Length and the caller's headers", function()
            local req = table.concat(httpc.build({
                host = "h", port = 1, method = "POST", path = "/api/report", body = "{}",
                headers = { ["User-Agent"] = "ua", Host = "name" },
            }))
            assert.truthy(req:find("^POST /api/report HTTP/1.0\r\n"))
            assert.truthy(req:find("\r\nUser-Agent: ua\r\n", 1, true))
            assert.truthy(req:find("\r\nHost: name\r\n", 1, true))
            assert.falsy(req:find("detailpage", 1, true))
            local tail = "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
            assert.equal(tail, req:sub(-#tail))
        end)
        it("asks to keep the connection when a pool is given", function()
            local req = table.concat(httpc.build({ host = "h", port = 1, path = "/", keepalive = {} }))
            assert.truthy(req:find("\r\nConnection: keep%-alive\r\n\r\n$"))
        end)
    end)

    describe("request", function()
        it("reads status, lower-cased headers and a Content-Length body", function()
            local s, status, headers, body, line = get("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n" ..
                "Content-Length: 5\r\nX-Item-Version: 3\r\n\r\nhello+trailing")
            assert.equal(200, status)
            assert.equal("HTTP/1.1 200 OK", line)
            assert.same({ ["content-type"] = "text/html", ["content-length"] = "5", ["x-item-version"] = "3" }, headers)
            assert.equal("hello", body)
            assert.equal("closed", s.ended)
            assert.same({ 500 }, s.timeouts)
            assert.equal("10.0.0.1", s.host)
            assert.truthy(s.sent[1]:find("^GET /x HTTP/1.0\r\n"))
        end)
        it("reads a body without Content-Length until the server closes", function()
            local _, status, _, body = get("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n1\n2\n3\n")
            assert.equal(200, status)
            assert.equal("1\n2\n3\n", body)
        end)
        it("reads no body where the status has none", function()
            local _, status, _, body = get("HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n")
            assert.equal(204, status)
            assert.equal("", body)
        end)
        it("answers a 404 or 503 like any status", function()
            local _, status, _, body = get("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")
            assert.equal(404, status)
            assert.equal("not found", body)
        end)
        it("refuses a body over max_body, announced or not", function()
            local _, status, err = get("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", { max_body = 10 })
            assert.is_nil(status)
            assert.equal("body of 11 bytes is too large", err)
            _, status, err = get("HTTP/1.0 200 OK\r\n\r\nhello world", { max_body = 10 })
            assert.is_nil(status)
            assert.equal("body is too large", err)
            local _, ok = get("HTTP/1.0 200 OK\r\n\r\nhello worl", { max_body = 10 })
            assert.equal(200, ok)
        end)
        it("says where it failed", function()
            local cases = {
                { "", "status line: closed" },
                { "SSH-2.0-OpenSSH_9.2\r\n", "not HTTP: SSH-2.0-OpenSSH_9.2" },
                { "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", "headers: closed" },
                { "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\nshort", "body: closed" },
                { "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad content-length x" },
                { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                    "transfer-encoding chunked is not supported" },
            }
            for _, c in ipairs(cases) do
                local s, status, err = get(c[1])
                assert.is_nil(status, c[1])
                assert.equal(c[2], err)
                assert.equal("closed", s.ended)
            end
            local _, status, err = get("", nil, { refuse = true })
            assert.is_nil(status)
            assert.equal("connect: connection refused", err)
            _, status, err = get("HTTP/1.1 200 OK\r\n", nil, { hang = true })
            assert.is_nil(status)
            assert.equal("headers: timeout", err)
        end)
        it("refuses an endless header section", function()
            local _, status, err = get("HTTP/1.1 200 OK\r\n" .. ("X: y\r\n"):rep(101) .. "\r\n")
            assert.is_nil(status)
            assert.equal("headers: more than 100 lines", err)
        end)
        it("reads only the status line when asked (a probe)", function()
            local answer = "HTTP/1.1 503 Service Unavailable\r\nX-Never: read\r\n"
            local s, status, headers, body, line = get(answer, { status_only = true, path = "/_health" })
            assert.equal(503, status)
            assert.is_nil(headers)
            assert.is_nil(body)
            assert.equal("HTTP/1.1 503 Service Unavailable", line)
            assert.equal("closed", s.ended)
            assert.equal(#"HTTP/1.1 503 Service Unavailable\r\n" + 1, s.pos)
        end)
        it("gives each step what is left of total_timeout", function()
            current = sock("HTTP/1.1 204 No Content\r\n\r\n")
            local s = current
            tick = 0.03
            local status = httpc.request({ host = "h", port = 1, path = "/", total_timeout = 0.2 })
            assert.equal(204, status)
            -- connect, send, status line, headers: 170, 140, 110, 80 ms
            assert.same({ 170, 140, 110, 80 }, s.timeouts)
        end)
        it("never arms less than 1 ms, nor more than timeout", function()
            current = sock("HTTP/1.1 204 No Content\r\n\r\n")
            local s = current
            tick = 1
            httpc.request({ host = "h", port = 1, path = "/", total_timeout = 0.2 })
            assert.same({ 1, 1, 1, 1 }, s.timeouts)
            tick = 0
            current = sock("HTTP/1.1 204 No Content\r\n\r\n")
            s = current
            httpc.request({ host = "h", port = 1, path = "/", total_timeout = 10, timeout = 0.1 })
            assert.same({ 100, 100, 100, 100 }, s.timeouts)
        end)
        it("pools the connection only when asked and the answer allows", function()
            local ka = { keepalive = { idle_ms = 10000, pool_size = 4 } }
            local s = get("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ka)
            assert.equal("pooled 10000/4", s.ended)
            assert.truthy(s.sent[1]:find("Connection: keep-alive", 1, true))
            s = get("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", ka)
            assert.equal("closed", s.ended)
            s = get("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", ka)
            assert.equal("closed", s.ended)
            s = get("HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: Keep-Alive\r\n\r\nok", ka)
            assert.equal("pooled 10000/4", s.ended)
            s = get("HTTP/1.1 200 OK\r\n\r\nuntil close", ka)
            assert.equal("closed", s.ended)
            s = get("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            assert.equal("closed", s.ended)
        end)
        it("tries once more when a pooled connection was closed by the server", function()
            local ka = { keepalive = { idle_ms = 10000, pool_size = 4 } }
            local stale = sock("", { reused = 3 })
            local fresh = sock("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            local socks = { stale, fresh }
            _G.ngx.socket.tcp = function() return table.remove(socks, 1) end
            local status, _, body = httpc.request({
                host = "h", port = 1, path = "/", timeout = 1, keepalive = ka.keepalive,
            })
            assert.equal(200, status)
            assert.equal("ok", body)
            assert.equal("closed", stale.ended)
            assert.equal("pooled 10000/4", fresh.ended)
            -- not a POST (it may have been received), not a timeout, not twice
            for _, c in ipairs({
                { method = "POST", answer = "", sopts = { reused = 1 }, err = "status line: closed" },
                { answer = "", sopts = { reused = 1, hang = true }, err = "status line: timeout" },
                { answer = "", sopts = { reused = 1 }, again = "", err = "status line: closed" },
            }) do
                socks = { sock(c.answer, c.sopts), sock(c.again or "HTTP/1.1 204 No Content\r\n\r\n", c.sopts) }
                local st, err = httpc.request({ host = "h", port = 1, path = "/", method = c.method,
                    body = c.method and "{}" or nil, timeout = 1, keepalive = ka.keepalive })
                assert.is_nil(st)
                assert.equal(c.err, err)
            end
            -- a connection new from the pool is not tried twice
            socks = { sock(""), sock("HTTP/1.1 204 No Content\r\n\r\n") }
            local st, err = httpc.request({ host = "h", port = 1, path = "/", timeout = 1, keepalive = ka.keepalive })
            assert.is_nil(st)
            assert.equal("status line: closed", err)
            _G.ngx.socket.tcp = function() return current end
        end)
        it("raises on a caller's bug", function()
            assert.has_error(function() httpc.request({ port = 1, path = "/", timeout = 1 }) end)
            assert.has_error(function() httpc.request({ host = "h", port = 1, path = "x", timeout = 1 }) end)
            assert.has_error(function() httpc.request({ host = "h", port = 1, path = "/" }) end)
            assert.has_error(function() httpc.request({ host = "h", port = 1, path = "/", timeout = 1, body = 3 }) end)
            assert.has_error(function()
                httpc.request({ host = "h", port = 1, path = "/", timeout = 1, keepalive = true })
            end)
        end)
    end)
end)
