-- detailpage.bearer: the admin token check and JSON replies of both tiers'
-- admin ports. "Authorization: Bearer <DETAILPAGE_ADMIN_TOKEN>"; without
-- it: 401.

local cjson = require "cjson.safe"

local ngx = ngx
local type = type
local os_getenv = os.getenv
local str_match = string.match

local _M = {}

local token = os_getenv("DETAILPAGE_ADMIN_TOKEN")

-- constant_eq compares without stopping at the first difference.
local function constant_eq(a, b)
    if #a ~= #b then
        return false
    end
    local diff = 0
    for i = 1, #a do
        diff = diff + (a:byte(i) == b:byte(i) and 0 or 1)
    end
    return diff == 0
end

-- reply sends body as JSON with status and ends the request.
function _M.reply(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["Cache-Control"] = "no-store"
    ngx.say(cjson.encode(body))
    return ngx.exit(status)
end

-- authorized checks the token; without a valid one it answers 401 and
-- returns false.
function _M.authorized()
    local h = ngx.var.http_authorization
    local got = type(h) == "string" and str_match(h, "^Bearer (.+)$")
    if not token or token == "" or not got or not constant_eq(got, token) then
        ngx.header["WWW-Authenticate"] = 'Bearer realm="detailpage admin"'
        _M.reply(401, { error = "admin token required" })
        return false
    end
    return true
end

return _M
