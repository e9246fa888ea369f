-- detailpage.hotset: the pure parts of the dist tier's hot-product
-- handling (detailpage.hot runs them in nginx).
--
-- What lives in the dp_hot shared dict (written by one worker at a time,
-- read by all):
--   gen            generation: bumped on every change of "set" or a copy
--   set            the spread set: hot ids that were warmed, "\n"-separated
--   ids            the last hot list polled (a superset of set)
--   polled_at      time of the last good poll
--   copy:<id>      the dist copy: "<item v>|<shop id>|<shop v>|<at>|<content type>|
--                  <ETag>|<gzip ETag>|<body bytes>\n<body><gzip body>" (both
--                  encodings as the app node answered them; a tag or the
--                  gzip body may be empty: none)
--   req:<id>       lowest item version a copy of id may have (invalidation)
--   sreq:<shop>    lowest shop version a copy built from that shop may have
--   follow:*       the invalidation follower's last entry id and last good read
--   poll:*         the hot service's errors, for the admin status
-- One value per copy, so a reader never pairs one copy's versions with
-- another's body.
--
-- Pure Lua, no ngx: unit-tested with busted (lua/spec/hot_spec.lua).

local type = type
local tonumber = tonumber
local tostring = tostring
local concat = table.concat
local str_find = string.find
local str_match = string.match
local str_sub = string.sub
local gmatch = string.gmatch

local _M = {}

-- valid_id: 1 to 18 digits without a leading zero (the page location's rule).
local function valid_id(s)
    return #s <= 18 and str_find(s, "^[1-9]%d*$") ~= nil
end
_M.valid_id = valid_id

-- parse_ids reads the hot service's GET /api/hot/ids body: one decimal id
-- per line. Returns the ids (strings, first occurrence order, duplicates
-- dropped, at most max), the number of lines that were not ids (skipped),
-- the first such line (cut to 40 bytes) and whether max cut the list.
-- Blank lines and a trailing "\r" are allowed.
function _M.parse_ids(body, max)
    if type(body) ~= "string" then
        error("body must be a string", 2)
    end
    max = max or 256
    local ids, seen, n = {}, {}, 0
    local bad, first_bad, cut = 0, nil, false
    for line in gmatch(body, "([^\n]*)\n?") do
        if str_sub(line, -1) == "\r" then
            line = str_sub(line, 1, -2)
        end
        if line ~= "" then
            if not valid_id(line) then
                bad = bad + 1
                first_bad = first_bad or str_sub(line, 1, 40)
            elseif not seen[line] then
                if n >= max then
                    cut = true
                else
                    seen[line] = true
                    n = n + 1
                    ids[n] = line
                end
            end
        end
    end
    return ids, bad, first_bad, cut
end

-- encode_list and decode_list keep a list of ids in one string.
function _M.encode_list(list)
    return concat(list, "\n")
end

-- decode_list returns the list and a set (id -> true).
function _M.decode_list(raw)
    local list, set, n = {}, {}, 0
    for id in gmatch(raw or "", "[^\n]+") do
        n = n + 1
        list[n] = id
        set[id] = true
    end
    return list, set
end

-- diff compares the spread set (a set: id -> true) with a new hot list:
-- the ids that came (in the list's order) and those that left.
function _M.diff(old, new)
    local added, removed, in_new = {}, {}, {}
    for _, id in ipairs(new) do
        in_new[id] = true
        if not old[id] then
            added[#added + 1] = id
        end
    end
    for id in pairs(old) do
        if not in_new[id] then
            removed[#removed + 1] = id
        end
    end
    table.sort(removed)
    return added, removed
end

-- encode_copy and decode_copy: one dict value per copy.
--   c = { iv = item version, shop = shop id, sv = shop version,
--         at = when it was fetched, ctype = Content-Type, body = page,
--         tag = its ETag (nil: none), gz = the gzip-compressed page (nil:
--         none), gztag = its ETag (nil: none) }
function _M.encode_copy(c)
    return c.iv .. "|" .. c.shop .. "|" .. c.sv .. "|" .. c.at .. "|" .. c.ctype .. "|" .. (c.tag or "")
        .. "|" .. (c.gztag or "") .. "|" .. #c.body .. "\n" .. c.body .. (c.gz or "")
end

local function maybe(s)
    if s == "" then
        return nil
    end
    return s
end

-- decode_copy returns the copy (with len = #body, gzlen = #gz); with
-- head_only the bodies are left out (no copy of the page is made). nil for
-- anything malformed.
function _M.decode_copy(raw, head_only)
    if type(raw) ~= "string" then
        return nil
    end
    local iv, shop, sv, at, ctype, tag, gztag, len, pos =
        str_match(raw, '^(%d+)|(%d+)|(%d+)|([%d.]+)|([^|\n]*)|([^|\n]*)|([^|\n]*)|(%d+)\n()')
    if not iv then
        return nil
    end
    len = tonumber(len)
    local stop = pos + len
    if stop - 1 > #raw then
        return nil
    end
    local c = { iv = tonumber(iv), shop = tonumber(shop), sv = tonumber(sv), at = tonumber(at), ctype = ctype,
        tag = maybe(tag), gztag = maybe(gztag), len = len, gzlen = #raw - stop + 1 }
    if not head_only then
        c.body = str_sub(raw, pos, stop - 1)
        c.gz = maybe(str_sub(raw, stop))
    end
    return c
end

-- etag returns an answer's ETag when it is one a copy can keep (a quoted
-- strong tag of at most 200 bytes, nothing the copy's format uses); nil
-- otherwise: the copy is then served without one.
local function etag(v)
    if type(v) == "string" and #v <= 200 and str_find(v, '^"[^"|\r\n]*"$') then
        return v
    end
    return nil
end

-- copy_from reads an app node's answer to GET /_admin/page/<id>: status
-- and headers (lower-case names). Returns the copy's head ({ iv, shop,
-- sv, ctype, tag }) for a 200 with usable version headers, else nil and
-- why.
function _M.copy_from(status, headers)
    if status ~= 200 then
        return nil, "status " .. tostring(status)
    end
    local iv = tonumber(headers["x-item-version"])
    local shop = tonumber(headers["x-shop-id"] or "0")
    local sv = tonumber(headers["x-shop-version"] or "0")
    if not iv or iv < 0 or not shop or shop < 0 or not sv or sv < 0 then
        return nil, "no usable X-Item-Version / X-Shop-Id / X-Shop-Version"
    end
    local ctype = headers["content-type"] or "text/html; charset=utf-8"
    if str_find(ctype, "[\r\n|]") then
        return nil, "bad Content-Type"
    end
    return { iv = iv, shop = shop, sv = sv, ctype = ctype, tag = etag(headers["etag"]) }
end

-- add_gzip completes copy c (its head and plain body) with the node's
-- answer to the same request made with Accept-Encoding: gzip (status,
-- headers, body; status nil: no answer, headers the error). The two must
-- name the same versions (an edit between them: no copy now, the next tick
-- tries again). A node that answered plain has no gzip copy: c keeps the
-- plain one only. Returns true, or false and why.
function _M.add_gzip(c, status, headers, body)
    if not status then
        return false, "gzip copy: " .. tostring(headers)
    end
    local g, why = _M.copy_from(status, headers)
    if not g then
        return false, "gzip copy: " .. why
    end
    if g.iv ~= c.iv or g.shop ~= c.shop or g.sv ~= c.sv then
        return false, "the versions changed between the plain and the gzip copy"
    end
    if headers["content-encoding"] ~= "gzip" then
        return true
    end
    if g.tag and g.tag == c.tag then
        return false, "the gzip copy has the plain copy's ETag"
    end
    c.gz, c.gztag = body, g.tag
    return true
end

-- version_of reads the version at the head of a value from Redis
-- ({"version":N...}, also the head of a segmented value); nil when there
-- is none (a missing key: ngx.null, or anything else).
function _M.version_of(raw)
    if type(raw) ~= "string" then
        return nil
    end
    return tonumber(str_match(raw, '^{"version":(%d+)'))
end

-- acceptable decides whether a copy (its head) may be kept: not older
-- than the lowest versions an invalidation asked for (req item, sreq
-- shop) nor than what the replica holds (riv item, rsv shop; nil when the
-- key is missing). Returns true, or false and why.
function _M.acceptable(c, req, sreq, riv, rsv)
    local need = req or 0
    if riv and riv > need then
        need = riv
    end
    if c.iv < need then
        return false, "item version " .. c.iv .. " < " .. need
    end
    if c.shop ~= 0 then
        local sneed = sreq or 0
        if rsv and rsv > sneed then
            sneed = rsv
        end
        if c.sv < sneed then
            return false, "shop version " .. c.sv .. " < " .. sneed
        end
    end
    return true
end

-- outdated_by_item: an invalidation of the copy's product to version v
-- retires it unless it is already at v (the entry may be read after the
-- page it announced was copied).
function _M.outdated_by_item(c, v)
    return c ~= nil and c.iv < v
end

-- outdated_by_shop: likewise for an invalidation of shop to version v.
function _M.outdated_by_shop(c, shop, v)
    return c ~= nil and c.shop == shop and c.sv < v
end

-- expired: the last good poll is more than keep seconds old (or there
-- was none): the hot set no longer counts and every id is hashed.
function _M.expired(polled_at, now, keep)
    return not polled_at or now - polled_at > keep
end

----------------------------------------------------------------------------
-- A worker's view of the dict: the spread set and the copies read so far,
-- kept in Lua tables and thrown away when the generation changes. A
-- request costs one dict get (the generation) and table lookups; a copy
-- is read from the dict (and decoded) once per worker per generation.

local view_mt = {}
view_mt.__index = view_mt

function _M.view(dict)
    if type(dict) ~= "table" and type(dict) ~= "userdata" then
        error("dict must be a shared dict", 2)
    end
    return setmetatable({ dict = dict, gen = nil, set = {}, copies = {} }, view_mt)
end

-- lookup returns, for id (a string): nil when it is not in the spread set
-- (hash it); false when it is but the dist holds no current copy (spread
-- it); or the copy { iv, shop, sv, ctype, body, len } to answer with.
function view_mt:lookup(id)
    local dict = self.dict
    local gen = dict:get("gen")
    if gen ~= self.gen then
        self.gen = gen
        local _, set = _M.decode_list(dict:get("set"))
        self.set = set
        self.copies = {}
    end
    if not self.set[id] then
        return nil
    end
    local c = self.copies[id]
    if c == nil then
        c = _M.decode_copy(dict:get("copy:" .. id)) or false
        self.copies[id] = c
    end
    return c
end

return _M
