-- detailpage.app: the application-tier request handler.
--
-- GET /item/<id>.html is answered from the first level that has it:
--   L1      this worker's lrucache of rendered pages (no rendering, no locks)
--   L2      the node's lua_shared_dict of rendered pages
--   redis   the Redis replica (item:{<id>} and shop:{s<shop_id>})
--   direct  the direct-data service (which rebuilds from the sources)
--   stale   the last rendered page, kept past its TTL for this moment
-- Whatever a lower level returns is rendered once and kept in L1 and L2,
-- stamped with the item and shop versions it was built from. A missing
-- product gets a short-lived entry in its own dict (dp_negative), so a flood
-- of unknown ids cannot evict real pages.
--
-- Per id, one request per node goes below L2 at a time (a shdict:add lock);
-- the others wait briefly for its result or take the stale copy. Each link
-- below (replica, direct) is skipped while detailpage.degrade says it is
-- degraded. detailpage.invalidate drops local copies when the sync service
-- writes a new version.
--
-- Bytes per view (issue 15): a page is compressed once, when it is rendered
-- (lua-zlib, gzip at GZIP_LEVEL), and both copies live side by side in L1
-- and L2. A client whose Accept-Encoding allows gzip (detailpage.conneg)
-- gets the compressed copy with Content-Encoding: gzip; others the plain
-- one; either with its Content-Length, and Vary: Accept-Encoding (from the
-- nginx config). Each copy has a strong ETag naming what its bytes come
-- from: '"p<item version>-s<shop id>.<shop version>-<render>"', plus "-gz"
-- for the compressed one, where <render> is a CRC-32 of the template, the
-- renderer's source, the zlib version and level (a node on another template
-- or renderer never gives other bytes the same tag). The tag is made when
-- the page is rendered and kept with it. If-None-Match naming the copy the
-- client would get answers 304 without a body. A page that came from the
-- direct-data service's HTML (the Lua renderer failed on the document) has
-- no tag: its versions are not known here.

local lrucache = require "resty.lrucache"
local template = require "detailpage.template"
local degrade = require "detailpage.degrade"
local sentinel = require "detailpage.sentinel"
local hotcount = require "detailpage.hotcount"
local redisconn = require "detailpage.redisconn"
local conneg = require "detailpage.conneg"
-- lua-zlib (Debian's lua-zlib; scripts/install-deps.sh): a C binding to the
-- system's zlib, chosen over LuaJIT FFI declarations written by hand: a
-- kept library, one call per page (compressing is once per version, never
-- on the request path, so FFI's lower call cost buys nothing).
local ok_zlib, zlib = pcall(require, "zlib")

local ngx = ngx
local ngx_log = ngx.log
local ngx_now = ngx.now
local ngx_sleep = ngx.sleep
local ngx_print = ngx.print
local ngx_var = ngx.var
local ngx_header = ngx.header
local ngx_null = ngx.null
local capture = ngx.location.capture
local shared = ngx.shared
local math_random = math.random
local tostring = tostring
local tonumber = tonumber
local type = type
local pcall = pcall
local xpcall = xpcall
local io_open = io.open
local str_match = string.match
local str_sub = string.sub
local unpack = unpack
local traceback = debug.traceback
local str_format = string.format
local gzip_ok = conneg.gzip_ok
local not_modified = conneg.not_modified
local hot_count = hotcount.count
local hot_missing = hotcount.missing

local ERR = ngx.ERR
local WARN = ngx.WARN
local INFO = ngx.INFO

local REPLICA = "replica"
local DIRECT = "direct"
local LEVELS = { "L1", "L2", "redis", "direct", "stale", "negative" }
-- zlib's default level: the seed's 28.6 KB page in 0.5 ms to 9.2 KB (3.1x);
-- 9 saves under 0.1% more, 1 gives 10.3 KB. scripts/bench.sh's on-the-fly
-- nginx gzip uses the same level.
local GZIP_LEVEL = 6

-- DEFAULTS is the one place the app tier's settings have values. init's
-- caller (nginx/app.conf.tmpl, rendered by `detailpage nginx`) passes only
-- the node's addresses and what an operator or a test set to differ
-- (--l1-ttl, --l2-ttl); everything else comes from here.
local DEFAULTS = {
    l1_size = 2000,        -- pages per worker (~20 KB each)
    l1_ttl = 600,          -- seconds; ±20% jitter on every TTL
    l2_ttl = 600,
    stale_ttl = 3600,      -- how long a page is kept past its TTL for "stale"
    shop_ttl = 600,
    negative_ttl = 10,
    lock_ttl = 3,          -- a lock holder that died frees the id after this
    lock_wait = 1,         -- how long others wait for the holder
    redis_timeout_ms = 50,
    redis_pool_size = 64,
    redis_idle_ms = 30000,
    -- Redis Sentinels ("host:port,..."): the replica to read is found
    -- through them (detailpage.sentinel); empty: replica_host:replica_port
    sentinels = "",
    master_name = "detailpage",
    sentinel_interval = 1,      -- seconds between questions to the Sentinels
    sentinel_timeout_ms = 200,
    -- link degradation: this many failures (threshold) within the window
    -- (seconds, counted in buckets) degrade a link for the retry period
    -- (seconds), then one request probes it
    degrade = { window = 10, buckets = 10, threshold = 5, retry = 5 },
    -- warm-up at start (detailpage.warm): the hottest `top` pages (from
    -- the hot services' statistics; 0: off) are loaded into L2 by `threads`
    -- light threads, and /_health answers 503 until they are or `max`
    -- seconds have passed; `timeout`: seconds for one ask of the top list
    warm = { top = 5000, max = 5, threads = 8, timeout = 0.5 },
}

local _M = {}

local config
local render
local not_found_page = "Not found"
local unavailable_page = "Unavailable"
local render_tag         -- "<render>" of the ETags: see the top of the file
local l1
local links
local hits = {}          -- this worker's hit counts, flushed to dp_state
local hot_on = false     -- hot reporting on (detailpage.hotcount, init_worker)
local shop_versions = {} -- newest shop versions this worker was told of
-- the replica to read (detailpage.redisconn: the fixed one, or the first
-- of detailpage.sentinel's list that accepts, two tries); set by init
local connect_replica, release

local function log(lvl, ...)
    ngx_log(lvl, "[app] ", ...)
end

local function jitter(ttl)
    return ttl * (0.8 + 0.4 * math_random())
end

local function read_file(path)
    local f, err = io_open(path, "rb")
    if not f then
        return nil, err
    end
    local s = f:read("*a")
    f:close()
    return s
end

-- REQUIRED are the settings without a default: where the node is.
local REQUIRED = { node = "string", template_dir = "string", replica_host = "string", replica_port = "number" }

-- complete returns a copy of opts with what it lacks taken from defaults
-- (one level into tables). A key in neither defaults nor required, a value
-- of another type, or a missing required key is the caller's bug.
local function complete(opts, defaults, required, prefix)
    local out = {}
    for k, v in pairs(opts) do
        local want = required[k] or (defaults[k] ~= nil and type(defaults[k]))
        if not want then
            error(prefix .. tostring(k) .. " is not a setting", 3)
        end
        if type(v) ~= want then
            error(prefix .. k .. " must be a " .. want, 3)
        end
        out[k] = v
    end
    for k, want in pairs(required) do
        if out[k] == nil then
            error(prefix .. k .. " must be a " .. want, 3)
        end
    end
    for k, d in pairs(defaults) do
        if out[k] == nil then
            out[k] = d
        elseif type(d) == "table" then
            out[k] = complete(out[k], d, {}, prefix .. k .. ".")
        end
    end
    return out
end

-- init runs in init_by_lua: compile the template once (a syntax error
-- stops nginx from starting, naming the line) and load the static pages.
-- opts: the REQUIRED settings, and those of DEFAULTS that differ.
function _M.init(opts)
    if type(opts) ~= "table" then
        error("opts must be a table", 2)
    end
    config = complete(opts, DEFAULTS, REQUIRED, "opts.")
    local src, err = read_file(config.template_dir .. "/item.html")
    if not src then
        error("cannot read item.html: " .. tostring(err))
    end
    local fn, cerr = template.compile(src, "item.html")
    if not fn then
        error("template " .. cerr)
    end
    render = fn
    if not ok_zlib then
        error("lua-zlib is missing (require \"zlib\": " .. tostring(zlib) ..
            "); install Debian's lua-zlib (scripts/install-deps.sh)")
    end
    local renderer = package.searchpath("detailpage.template", package.path)
    local rsrc = renderer and read_file(renderer)
    if not rsrc then
        error("cannot read the renderer's source (detailpage.template) for the ETags")
    end
    render_tag = str_format("%08x", zlib.crc32()(src .. "\0" .. rsrc .. "\0" .. zlib.version() .. "\0" .. GZIP_LEVEL))
    sentinel.configure(config)
    local replica = redisconn.replica({
        host = config.replica_host,
        port = config.replica_port,
        timeout_ms = config.redis_timeout_ms,
        idle_ms = config.redis_idle_ms,
        pool_size = config.redis_pool_size,
    })
    connect_replica, release = replica.connect, replica.release
    not_found_page = read_file(config.template_dir .. "/404.html") or not_found_page
    unavailable_page = read_file(config.template_dir .. "/503.html") or unavailable_page
    for _, level in ipairs(LEVELS) do
        hits[level] = 0
    end
end

-- init_worker creates this worker's L1 and the link tracker (after
-- hotcount.init, which init_by_lua runs).
function _M.init_worker()
    local c, err = lrucache.new(config.l1_size)
    if not c then
        error("lrucache: " .. tostring(err))
    end
    l1 = c
    links = degrade.new(shared.dp_state, config.degrade, ngx_now)
    -- off: a page skips the counting altogether
    hot_on = hotcount.enabled()
end

function _M.config() return config end
function _M.links() return links end
function _M.l1() return l1 end

local function count(level)
    hits[level] = hits[level] + 1
end

-- flush_hits adds this worker's hit counts to the node's totals.
function _M.flush_hits()
    local state = shared.dp_state
    for level, n in pairs(hits) do
        if n > 0 then
            state:incr("hits:" .. level, n, 0)
            hits[level] = 0
        end
    end
end

-- node_hits returns the node's answers per level, as flushed so far.
function _M.node_hits()
    local state = shared.dp_state
    local out = {}
    for _, level in ipairs(LEVELS) do
        out[level] = state:get("hits:" .. level) or 0
    end
    return out
end

local function bump(name)
    shared.dp_state:incr("count:" .. name, 1, 0)
end

-- send writes a page and returns its status (every way through serve
-- returns the status it answered with: reading ngx.status back would cost
-- an FFI call on every page). Content-Type and X-Served-By come from the
-- nginx config; X-Cache from $dp_cache. A Content-Length (rather than
-- chunked encoding) is cheaper for the client and for us.
local function send(status, body, level)
    if status ~= 200 then
        ngx.status = status
    end
    if level then
        ngx_var.dp_cache = level
    end
    ngx_header["Content-Length"] = #body
    ngx_print(body)
    return status
end

-- gzip_copy (set below, with the local copies) returns e's gzip copy,
-- making it first if e has none yet (nil: a page the warm-up loaded);
-- false when it has none.
local gzip_copy

-- send_page writes the page of entry e (of product id): the gzip copy to a
-- client that accepts it, else the plain one; with its ETag, and 304
-- without a body when If-None-Match names that tag. For /_admin/page
-- (admin) it also says which versions the page was built from.
local function send_page(id, e, level, admin)
    if admin then
        ngx_header["X-Item-Version"] = e.v
        ngx_header["X-Shop-Id"] = e.shop
        ngx_header["X-Shop-Version"] = e.sv
    end
    local gz = e.gz
    local tag
    if gz ~= false and gzip_ok(ngx_var.http_accept_encoding) then
        if gz == nil then
            gz = gzip_copy(id, e)
        end
        tag = gz and e.gztag or e.tag
    else
        gz = false
        tag = e.tag
    end
    if tag then
        ngx_header["ETag"] = tag
        if not_modified(ngx_var.http_if_none_match, tag) then
            ngx.status = 304
            if level then
                ngx_var.dp_cache = level
            end
            return 304
        end
    end
    if gz then
        ngx_header["Content-Encoding"] = "gzip"
        return send(200, gz, level)
    end
    return send(200, e.html, level)
end

----------------------------------------------------------------------------
-- Local copies.

-- An entry: { v = item version, shop = shop id, sv = shop version, html =
-- the page, gz = the page gzip-compressed (false: none, the page does not
-- shrink; nil: not made yet), base = the ETags' common part (nil: no
-- tags), tag / gztag = the two ETags, exp }.
-- L2 values are "<expires>|<item version>|<shop id>|<shop version>|<base>|
-- <gz: 1 made, 0 none, - not yet>|<html bytes>|<html><gz>": one value, so
-- a reader never pairs one version's page with another's tag or
-- compressed copy.
local function encode_entry(e)
    local gz = e.gz
    local state = gz == nil and "-" or (gz and "1" or "0")
    return e.exp .. "|" .. e.v .. "|" .. e.shop .. "|" .. e.sv .. "|" .. (e.base or "") .. "|" .. state
        .. "|" .. #e.html .. "|" .. e.html .. (gz or "")
end

-- with_tags sets e's ETags from its base and returns e.
local function with_tags(e)
    local base = e.base
    if base then
        e.tag = '"' .. base .. '"'
        if e.gz then
            e.gztag = '"' .. base .. '-gz"'
        end
    end
    return e
end

local function decode_entry(raw)
    local exp, v, shop, sv, base, state, len, pos =
        str_match(raw, "^([%d.]+)|(%d+)|(%d+)|(%d+)|([%w.%-]*)|([01-])|(%d+)|()")
    if not exp then
        return nil
    end
    local e = { exp = tonumber(exp), v = tonumber(v), shop = tonumber(shop), sv = tonumber(sv) }
    local stop = pos + tonumber(len)
    e.html = str_sub(raw, pos, stop - 1)
    if state == "1" then
        e.gz = str_sub(raw, stop)
    elseif state == "0" then
        e.gz = false
    end
    if base ~= "" then
        e.base = base
    end
    return with_tags(e)
end
_M._encode_entry, _M._decode_entry = encode_entry, decode_entry -- for tests

-- outdated reports whether an entry was built from an older shop than one
-- this worker has been told of.
local function outdated(e)
    local sv = shop_versions[e.shop]
    return sv ~= nil and e.sv < sv
end

-- required is the lowest item version a copy of id may have: set by an
-- invalidation, so a fetch that started before it cannot cache what it read.
local function required(id)
    return shared.dp_versions:get(id) or 0
end

local function keep(id, e)
    if e.v < required(id) or outdated(e) then
        return
    end
    local now = ngx_now()
    e.exp = now + jitter(config.l2_ttl)
    local ok, err = shared.dp_pages:set(id, encode_entry(e), config.stale_ttl)
    if not ok then
        log(WARN, "L2 set failed for ", id, ": ", err)
    end
    l1:set(id, e, jitter(config.l1_ttl))
end

-- drop retires local copies of a product older than version: from now on
-- no copy below it is served as fresh. The L2 entry stays as the stale copy
-- (the last resort when every level below fails); a copy already at the
-- version is kept (an invalidation can be read after the page it announced
-- was cached). Without a version (an operator purge) every copy goes.
function _M.drop(id, version)
    id = tostring(id)
    shared.dp_negative:delete(id)
    if not version then
        l1:delete(id)
        shared.dp_pages:delete(id)
        return
    end
    local e = l1:get(id)
    if e and e.v < version then
        l1:delete(id)
    end
    local cur = shared.dp_versions:get(id)
    if not cur or cur < version then
        shared.dp_versions:set(id, version, config.stale_ttl)
    end
end

-- current reports whether an entry may be served as fresh: not expired, not
-- older than an invalidation said, not built from an outdated shop.
local function current(id, e)
    return e.exp > ngx_now() and e.v >= required(id) and not outdated(e)
end

-- drop_local forgets this worker's L1 copy only (the others' workers do
-- their own when they read the same invalidation).
function _M.drop_local(id)
    l1:delete(tostring(id))
end

-- shop_changed records a shop's new version and drops its cached document.
function _M.shop_changed(shop_id, version)
    shop_id = tonumber(shop_id)
    local cur = shop_versions[shop_id]
    if not cur or cur < version then
        shop_versions[shop_id] = version
    end
    shared.dp_shops:delete(shop_id)
end

----------------------------------------------------------------------------
-- Levels below the node.

-- replica returns { connect = fn, release = fn } for the invalidation
-- follower (detailpage.invalidate).
function _M.replica()
    return { connect = connect_replica, release = release }
end

-- decode_doc parses a JSON object from Redis; anything else is a miss.
-- template.decode tells an empty [] from {} as pongo2 does.
local function decode_doc(raw, what)
    local doc = template.decode(raw)
    if type(doc) ~= "table" then
        log(WARN, "ignoring ", what, ": not a JSON object")
        return nil
    end
    return doc
end

-- unsegment returns the value a segment head stands for: values over 64 KB
-- (large descriptions) are split by the writer into <key>:<version>:<i>,
-- read back with one MGET (same hash tag). Returns nil when a segment is
-- gone (replaced meanwhile): a miss, not a link failure.
local function unsegment(red, key, raw)
    local version, n = str_match(raw, '^{"version":(%d+),"segments":(%d+)')
    if not version then
        return raw
    end
    local keys = {}
    for i = 0, tonumber(n) - 1 do
        keys[#keys + 1] = key .. ":" .. version .. ":" .. i
    end
    local parts, err = red:mget(unpack(keys))
    if not parts then
        return nil, err
    end
    for i = 1, #parts do
        if parts[i] == ngx_null then
            log(WARN, "segment ", i - 1, " of ", key, " is gone; treating it as a miss")
            return nil
        end
    end
    return table.concat(parts)
end

-- read_replica returns the item and shop documents ({ item =, shop = });
-- nil when the replica has no usable item (a miss: the next level decides);
-- or nil and an error when the link failed.
local function read_replica(id)
    bump("redis_reads")
    local red, err = connect_replica()
    if not red then
        return nil, err
    end
    local key = "item:{" .. id .. "}"
    local raw, gerr = red:get(key)
    if gerr then
        red:close()
        return nil, "get item: " .. tostring(gerr)
    end
    if raw == ngx_null then
        release(red)
        return nil
    end
    local uerr
    raw, uerr = unsegment(red, key, raw)
    if uerr then
        red:close()
        return nil, "get segments: " .. tostring(uerr)
    end
    local item = raw and decode_doc(raw, key)
    if not item then
        release(red)
        return nil
    end
    local shop
    local shop_id = tonumber(item.shop_id)
    if shop_id then
        local shops = shared.dp_shops
        local cached = shops:get(shop_id)
        if cached then
            shop = template.decode(cached)
        else
            local skey = "shop:{s" .. shop_id .. "}"
            local s, serr = red:get(skey)
            if serr then
                red:close()
                return nil, "get shop: " .. tostring(serr)
            end
            if s ~= ngx_null then
                shop = decode_doc(s, skey)
                if shop then
                    shops:set(shop_id, s, jitter(config.shop_ttl))
                end
            end
        end
    end
    release(red)
    return { item = item, shop = shop }
end

-- read_direct asks the direct-data service for the document and its shop.
-- Returns { item =, shop = }; nil when the product does not exist (404);
-- or nil, an error and whether the link itself failed (no answer, or 5xx)
-- rather than the service refusing the request.
local function read_direct(id)
    bump("direct_calls")
    local res = capture("/_direct/api/item/" .. id, { args = { with = "shop" } })
    if res.status == 404 then
        return nil
    end
    if res.status ~= 200 then
        return nil, "direct answered " .. tostring(res.status), res.status == 0 or res.status >= 500
    end
    local env = template.decode(res.body)
    if type(env) ~= "table" or type(env.item) ~= "table" then
        return nil, "direct: bad body", true
    end
    local shop = env.shop
    if type(shop) ~= "table" then
        shop = nil
    end
    return { item = env.item, shop = shop }
end

-- direct_html asks the direct-data service for the page rendered by pongo2:
-- the next level when the Lua renderer fails on a document. Returns the
-- HTML, or nil and an error.
local function direct_html(id)
    if ngx.get_phase() == "timer" then
        -- the warm-up: no subrequest outside a request; the page is
        -- loaded when a request asks for it
        return nil, "no direct-data page outside a request"
    end
    bump("direct_calls")
    local res = capture("/_direct/item/" .. id .. ".html")
    if res.status == 200 then
        return res.body
    end
    return nil, "direct answered " .. tostring(res.status)
end

-- compress returns html gzip-compressed; false when zlib fails (logged:
-- the page is then served plain) or when it would not be smaller.
local function compress(id, html)
    local ok, gz = pcall(function()
        return zlib.deflate(GZIP_LEVEL, 31)(html, "finish") -- 31: a gzip wrapper
    end)
    if not ok then
        log(ERR, "gzip of item ", id, " failed (serving it plain): ", gz)
        return false
    end
    if #gz >= #html then
        return false
    end
    return gz
end

-- GZIP_HOLDER marks id's lock while gzip_copy holds it: it stores no
-- result of its own, so a request waiting for it must not take its release
-- for a failed fetch (wait_for_holder) — it tries the lock itself.
local GZIP_HOLDER = "gzip"

-- gzip_copy makes the gzip copy of an entry that has none yet: a page the
-- warm-up loaded (compressing takes ~18x the render's time, and 5,000 of
-- them would hold the warm-up's worker for seconds). Once per node: the
-- copy goes into this worker's entry (the L1 one) and back into L2 for the
-- other workers, under id's lock (whoever stores a page holds it), and
-- only if L2 still holds the same versions without a copy. Without the
-- lock (a fetch under way) only this worker keeps it.
gzip_copy = function(id, e)
    local gz = compress(id, e.html)
    e.gz = gz
    with_tags(e)
    local locks = shared.dp_locks
    if locks:add(id, GZIP_HOLDER, config.lock_ttl) then
        local raw = shared.dp_pages:get(id)
        local cur = raw and decode_entry(raw)
        if cur and cur.gz == nil and cur.v == e.v and cur.shop == e.shop and cur.sv == e.sv
            and cur.html == e.html then
            cur.gz = gz
            local ok, err = shared.dp_pages:set(id, encode_entry(cur), config.stale_ttl)
            if not ok then
                log(WARN, "L2 set (gzip copy) failed for ", id, ": ", err)
            end
        end
        locks:delete(id)
    end
    return gz
end

-- build turns documents into a page entry, reusing the stale entry's HTML,
-- compressed copy and tags when it was built from the same versions; the
-- gzip copy is made now, or with later set (the warm-up) when a client
-- first asks for it (gzip_copy). Returns the entry; nil when the document
-- says the product is gone; or nil and an error.
local function build(id, docs, stale, later)
    local item, shop = docs.item, docs.shop
    if item.missing == true then
        return nil
    end
    local v = tonumber(item.version) or 0
    local shop_id = tonumber(item.shop_id) or 0
    local sv = shop and tonumber(shop.version) or 0
    if stale and stale.v == v and stale.shop == shop_id and stale.sv == sv then
        return { v = v, shop = shop_id, sv = sv, html = stale.html, gz = stale.gz,
            base = stale.base, tag = stale.tag, gztag = stale.gztag }
    end
    local base = "p" .. v .. "-s" .. shop_id .. "." .. sv .. "-" .. render_tag
    local html, err = render({ item = item, shop = shop })
    if not html then
        log(ERR, "render failed for item ", id, " (falling back to direct): ", err)
        local body, derr = direct_html(id)
        if not body then
            return nil, "render failed and " .. derr
        end
        html = body
        base = nil -- not known to show these versions: no ETag
    end
    local gz
    if not later then
        gz = compress(id, html)
    end
    return with_tags({ v = v, shop = shop_id, sv = sv, html = html, gz = gz, base = base })
end

-- report tells the link tracker how a use of the link went. probe is the
-- second value of links:allow: only the half-open probe's outcome can
-- restore the link or start a new retry period.
local function report(link, probe, err)
    if err then
        if links:failure(link, probe) then
            log(WARN, "link ", link, " degraded for ", config.degrade.retry, "s after: ", err)
        end
    elseif links:success(link, probe) then
        log(INFO, "link ", link, " restored")
    end
end

-- fetch goes below the node: the replica, then the direct-data service.
-- value, err, level (mlcache's convention): the page entry and the level
-- that gave it; nil, nil, level when that level says the product does not
-- exist; nil and an error when no level could answer.
local function fetch(id, stale)
    local docs, err, level
    local replica_err = "degraded"
    local allowed, probe = links:allow(REPLICA)
    if allowed then
        docs, replica_err = read_replica(id)
        report(REPLICA, probe, replica_err)
        level = "redis"
    end
    if not docs then
        allowed, probe = links:allow(DIRECT)
        if not allowed then
            return nil, "replica " .. (replica_err or "miss") .. ", direct degraded"
        end
        local link_failed
        docs, err, link_failed = read_direct(id)
        report(DIRECT, probe, link_failed and err or nil)
        if err then
            return nil, err
        end
        level = "direct"
        if not docs then
            return nil, nil, level
        end
    end
    local entry, berr = build(id, docs, stale)
    return entry, berr, level
end

----------------------------------------------------------------------------
-- The request.

local function serve_stale_or_503(id, stale, err, admin)
    if stale and stale.html then
        count("stale")
        log(WARN, "serving stale item ", id, ": ", err)
        return send_page(id, stale, "stale", admin)
    end
    log(WARN, "no level could serve item ", id, ": ", err)
    ngx.header["Retry-After"] = "2"
    return send(503, unavailable_page)
end

-- remember_missing records that id does not exist, for negative_ttl.
local function remember_missing(id)
    shared.dp_pages:delete(id)
    shared.dp_negative:set(id, true, jitter(config.negative_ttl))
end

-- answer_from_node answers with the node's page (L2) or negative entry for
-- id and returns the status; false when it has neither.
local function answer_from_node(id, admin)
    local raw = shared.dp_pages:get(id)
    local e = raw and decode_entry(raw)
    if e and current(id, e) then
        l1:set(id, e, jitter(config.l1_ttl))
        count("L2")
        return send_page(id, e, "L2", admin)
    end
    if shared.dp_negative:get(id) then
        count("negative")
        return send(404, not_found_page, "L2")
    end
    return false
end

-- wait_for_holder polls L2 while another request of this node fetches id.
-- The holder stores its result before it releases the lock, so once the
-- lock is gone one more look finds the result, if there is one.
-- Returns nil when the holder was gzip_copy, which stores no result of its
-- own (the caller then tries the lock itself).
local function wait_for_holder(id, stale, admin)
    local deadline = ngx_now() + config.lock_wait
    local step = 0.002
    local holder = shared.dp_locks:get(id)
    while ngx_now() < deadline do
        ngx_sleep(step)
        step = step < 0.02 and step * 2 or step
        local status = answer_from_node(id, admin)
        if status then
            return status
        end
        local now_holder = shared.dp_locks:get(id)
        if not now_holder then
            -- released since the look above: the result (if any) is stored
            status = answer_from_node(id, admin)
            if status then
                return status
            end
            if holder == GZIP_HOLDER then
                return nil
            end
            return serve_stale_or_503(id, stale, "the lock holder ended without a result", admin)
        end
        holder = now_holder
    end
    return serve_stale_or_503(id, stale, "lock wait ended without a result", admin)
end

-- fill runs fn (a fetch below the node) for id while the caller holds
-- id's lock, stores what it gives (the page, or the negative entry) and
-- only then releases the lock: a waiter that finds the lock gone must find
-- the result (issue 16). Returns fn's entry, error and level.
local function fill(id, fn, stale)
    local ok, entry, err, level = pcall(fn, id, stale)
    if not ok then
        entry, err = nil, entry
    end
    if entry then
        keep(id, entry)
    elseif not err then
        remember_missing(id)
    end
    shared.dp_locks:delete(id)
    return entry, err, level
end

local function serve(id, admin, again)
    local e, stale_l1 = l1:get(id)
    if e and not outdated(e) then
        count("L1")
        return send_page(id, e, "L1", admin)
    end
    local stale = e or stale_l1

    local raw = shared.dp_pages:get(id)
    if raw then
        local l2 = decode_entry(raw)
        if l2 and current(id, l2) then
            l1:set(id, l2, jitter(config.l1_ttl))
            count("L2")
            return send_page(id, l2, "L2", admin)
        end
        stale = stale or l2
    end
    if shared.dp_negative:get(id) then
        count("negative")
        return send(404, not_found_page, "L2")
    end

    -- Stale while revalidate (cache breakdown): with a usable expired copy
    -- at hand, nobody waits on the levels below: the lock holder answers
    -- with it at once and fetches after the response is complete, the
    -- others get it while the holder fetches.
    local usable = stale and stale.html and not outdated(stale) and (stale.v or 0) >= required(id)
    local locks = shared.dp_locks
    if not locks:add(id, true, config.lock_ttl) then
        if usable then
            count("stale")
            return send_page(id, stale, "stale", admin)
        end
        local status = wait_for_holder(id, stale, admin)
        if status then
            return status
        end
        if again then
            return serve_stale_or_503(id, stale, "the lock was held for gzip copies twice", admin)
        end
        return serve(id, admin, true) -- the holder only added a gzip copy
    end
    -- Another request may have stored the result and released the lock
    -- between the look at L2 above and the add (as mlcache checks again).
    local status = answer_from_node(id, admin)
    if status then
        locks:delete(id)
        return status
    end
    local answered = false
    if usable then
        count("stale")
        send_page(id, stale, "stale", admin)
        ngx.eof()
        answered = true
    end
    local entry, err, level = fill(id, fetch, stale)
    if answered then
        if err then
            log(WARN, "refresh of item ", id, " after its stale copy failed: ", err)
        end
        return 200
    end
    if entry then
        count(level)
        return send_page(id, entry, level, admin)
    end
    if not err then
        count("negative")
        return send(404, not_found_page, level)
    end
    return serve_stale_or_503(id, stale, err, admin)
end

-- read_for_load reads id from the replica and builds its entry, as fetch
-- does but from the replica only and without the link tracker.
local function read_for_load(id, stale)
    local docs, err = read_replica(id)
    if not docs then
        return nil, "replica " .. (err or "miss")
    end
    return build(id, docs, stale, true)
end

-- load puts id's page into L2 (and this worker's L1) through the node's
-- levels, under the same per-id lock as a page request, answering nothing
-- and counting no hit: detailpage.warm loads the hottest pages with it
-- from a timer at start. A timer cannot use ngx.location.capture, so only
-- the replica is read (an id it lacks is left to the first page request).
-- The link tracker is neither asked nor told: a burst of warm-up reads
-- that time out on a busy machine must not mark the replica degraded for
-- the node's first live seconds (detailpage.warm retries, and gives up on
-- a replica that fails every read).
-- Returns how it went: "L2" (the node has a current copy), "busy" (a page
-- request is fetching it now), "redis" (read and kept), "missing" (the
-- product is gone); or nil and an error.
function _M.load(id)
    id = tostring(id)
    local raw = shared.dp_pages:get(id)
    local e = raw and decode_entry(raw)
    if e and current(id, e) then
        return "L2"
    end
    if shared.dp_negative:get(id) then
        return "missing"
    end
    local locks = shared.dp_locks
    if not locks:add(id, true, config.lock_ttl) then
        return "busy"
    end
    -- A page request may have stored it and released the lock between
    -- the look above and the add (as serve looks again).
    raw = shared.dp_pages:get(id)
    local again = raw and decode_entry(raw)
    if again and current(id, again) then
        locks:delete(id)
        return "L2"
    end
    if shared.dp_negative:get(id) then
        locks:delete(id)
        return "missing"
    end
    local entry, err = fill(id, read_for_load, again or e)
    if entry then
        return "redis"
    end
    if not err then
        return "missing"
    end
    return nil, err
end

-- serve_item answers GET /item/<id>.html. The location only matches ids of
-- 1 to 18 digits without a leading zero. Any Lua error ends in the 503
-- page, never a 500 with a trace. The answer is counted for hot-product
-- reporting (detailpage.hotcount: a table increment, no I/O).
function _M.serve_item(id)
    local ok, status = xpcall(serve, traceback, id)
    if not ok then
        log(ERR, "request for item ", id, " failed: ", status)
        ngx.header["Retry-After"] = "2"
        return send(503, unavailable_page)
    end
    if hot_on then
        if status == 200 or status == 304 then
            hot_count(id)
        elseif status == 404 then
            hot_missing(id)
        end
    end
end

-- serve_admin answers GET /_admin/page/<id> (detailpage.admin checked the
-- token and the id): as serve_item, through every level under the same
-- per-id lock, with the page's versions in X-Item-Version, X-Shop-Id and
-- X-Shop-Version. Not counted: the dist tier calls it to warm this node.
function _M.serve_admin(id)
    local ok, err = xpcall(serve, traceback, id, true)
    if not ok then
        log(ERR, "admin request for item ", id, " failed: ", err)
        ngx.header["Retry-After"] = "2"
        send(503, unavailable_page)
    end
end

return _M
