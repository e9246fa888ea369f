-- detailpage.conneg: the request headers a page answer depends on, shared
-- by the app tier (detailpage.app) and the dist tier's hot copies
-- (detailpage.hot):
--
--   gzip_ok(accept_encoding)  may this client get the gzip copy?
--   not_modified(if_none_match, etag)  does If-None-Match name the tag?
--
-- Accept-Encoding (RFC 9110 12.5.3): gzip (or x-gzip) with q > 0, or no
-- gzip entry and "*" with q > 0. "gzip;q=0" says no whatever "*" says; an
-- identity entry with a higher q than gzip's prefers the plain copy. A q
-- that is not a number from 0 to 1 counts as 0: never send gzip to a client
-- that did not clearly ask for it. Clients send one of a handful of
-- strings, so each answer is kept per worker by the header's value (the
-- table is emptied when it holds MAX_CACHED strings: no growth under
-- junk headers).
--
-- If-None-Match (RFC 9110 13.1.2): "*", or a list of entity tags compared
-- with the weak comparison (W/"x" matches "x"). The exact header a client
-- sends back (our own tag) matches without parsing.
--
-- Pure Lua, no ngx: unit-tested with busted (lua/spec/conneg_spec.lua).

local tonumber = tonumber
local str_lower = string.lower
local str_match = string.match
local str_find = string.find
local gmatch = string.gmatch

local MAX_CACHED = 64

local _M = {}

-- qvalue reads the q parameter of one Accept-Encoding element's
-- parameters; 1 when there is none, 0 when it is not a valid qvalue.
local function qvalue(params)
    local q = str_match(params, ";%s*[qQ]%s*=%s*([^;%s]*)")
    if not q then
        return 1
    end
    local n = tonumber(q)
    if not n or n < 0 or n > 1 or not str_find(q, "^[01]%.?%d*$") then
        return 0
    end
    return n
end

-- parse_gzip_ok decides Accept-Encoding without the cache.
local function parse_gzip_ok(ae)
    local gz, star, identity
    for element in gmatch(ae, "[^,]+") do
        local coding, params = str_match(element, "^%s*([^;%s]+)%s*(.*)$")
        if coding then
            coding = str_lower(coding)
            local q = qvalue(params)
            if coding == "gzip" or coding == "x-gzip" then
                gz = gz or q
            elseif coding == "*" then
                star = star or q
            elseif coding == "identity" then
                identity = identity or q
            end
        end
    end
    local q = gz or star or 0
    if q <= 0 then
        return false
    end
    return identity == nil or q >= identity
end
_M._parse_gzip_ok = parse_gzip_ok -- for tests

local cache, cached = {}, 0

-- gzip_ok: whether a client sending this Accept-Encoding (nil: none) may
-- get the gzip copy.
function _M.gzip_ok(ae)
    if not ae then
        return false
    end
    local ok = cache[ae]
    if ok == nil then
        ok = parse_gzip_ok(ae)
        if cached >= MAX_CACHED then
            cache, cached = {}, 0
        end
        cache[ae] = ok
        cached = cached + 1
    end
    return ok
end

-- not_modified: whether an If-None-Match header (nil: none) names etag (a
-- strong tag with its quotes, '"..."') under the weak comparison, or is "*".
function _M.not_modified(inm, etag)
    if not inm or not etag then
        return false
    end
    if inm == etag then
        return true
    end
    if str_find(inm, "^%s*%*%s*$") then
        return true
    end
    for prefix, tag in gmatch(inm, '([^"]-)("[^"]*")') do
        -- prefix: what stands between the previous tag and this one: a
        -- comma, blanks, and W/ for a weak tag
        local p = str_match(prefix, "^[%s,]*(.-)%s*$")
        if (p == "" or p == "W/") and tag == etag then
            return true
        end
    end
    return false
end

return _M
