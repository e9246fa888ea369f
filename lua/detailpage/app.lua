-- detailpage.app: the application-tier request handler.
--
-- GET /item/<id>.html is answered from, in order:
--   L1     this worker's lrucache of rendered pages
--   L2     the node's lua_shared_dict of rendered pages
--   redis  the Redis replica (item:{<id>} and shop:{s<shop_id>})
--   direct the direct-data service (which rebuilds from the sources)
-- and whatever a lower level returns is kept locally. A missing product
-- gets a short-lived negative entry in its own shared dict.

local cjson = require "cjson.safe"
local lrucache = require "resty.lrucache"
local template = require "detailpage.template"

local ok_redis, redis = pcall(require, "resty.redis")  -- OpenResty
if not ok_redis then
    redis = require "nginx.redis"                        -- Debian's lua-nginx-redis
end

local ngx = ngx
local ngx_log = ngx.log
local ngx_header = ngx.header
local ngx_say = ngx.print
local ngx_exit = ngx.exit
local capture = ngx.location.capture
local math_random = math.random
local tostring = tostring
local type = type
local io_open = io.open
local str_find = string.find

local ERR = ngx.ERR
local WARN = ngx.WARN

-- Local TTLs are short until app nodes are told to drop changed pages, so
-- an edit shows within a few seconds. Each TTL gets ±20% jitter so pages
-- cached together do not expire together.
local L1_TTL = 0.3
local L2_TTL = 1.0
local SHOP_TTL = 1.0
local NEGATIVE_TTL = 5
local L1_SIZE = 2000
local REDIS_TIMEOUT_MS = 50
local REDIS_POOL_SIZE = 64
local REDIS_IDLE_MS = 30000

local _M = {}

local config
local render
local not_found_page = "Not found"
local unavailable_page = "Unavailable"
local l1

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

-- init runs in init_by_lua: compile the template once (a syntax error
-- stops nginx from starting, with the line) and load the static pages.
function _M.init(opts)
    if type(opts) ~= "table" or type(opts.node) ~= "string" then
        error("opts.node must be a string", 2)
    end
    config = opts
    local src, err = read_file(opts.template_dir .. "/item.html")
    if not src then
        error("cannot read item.html: " .. tostring(err))
    end
    local fn, cerr = template.compile(src, "item.html")
    if not fn then
        error("item.html: " .. cerr)
    end
    render = fn
    not_found_page = read_file(opts.template_dir .. "/404.html") or not_found_page
    unavailable_page = read_file(opts.template_dir .. "/503.html") or unavailable_page
end

local function cache()
    if not l1 then
        local c, err = lrucache.new(L1_SIZE)
        if not c then
            error("lrucache: " .. tostring(err))
        end
        l1 = c
    end
    return l1
end

local function send(status, body, level)
    ngx.status = status
    ngx_header["Content-Type"] = "text/html; charset=utf-8"
    ngx_header["X-Served-By"] = config.node
    if level then
        ngx_header["X-Cache"] = level
    end
    ngx_say(body)
    return ngx_exit(status)
end

-- read_replica returns item JSON, shop JSON (either may be nil when the key
-- is absent) or nil and an error.
local function read_replica(id, shops)
    local red = redis:new()
    red:set_timeouts(REDIS_TIMEOUT_MS, REDIS_TIMEOUT_MS, REDIS_TIMEOUT_MS)
    local ok, err = red:connect(config.replica_host, config.replica_port)
    if not ok then
        return nil, nil, "connect: " .. tostring(err)
    end
    local item, gerr = red:get("item:{" .. id .. "}")
    if gerr then
        red:close()
        return nil, nil, "get item: " .. tostring(gerr)
    end
    if item == ngx.null then
        red:set_keepalive(REDIS_IDLE_MS, REDIS_POOL_SIZE)
        return nil, nil
    end
    local shop
    local doc = cjson.decode(item)
    local shop_id = type(doc) == "table" and tonumber(doc.shop_id)
    if shop_id then
        shop = shops:get(shop_id)
        if not shop then
            local s, serr = red:get("shop:{s" .. shop_id .. "}")
            if serr then
                red:close()
                return nil, nil, "get shop: " .. tostring(serr)
            end
            if s ~= ngx.null then
                shop = s
                shops:set(shop_id, s, jitter(SHOP_TTL))
            end
        end
    end
    red:set_keepalive(REDIS_IDLE_MS, REDIS_POOL_SIZE)
    return item, shop
end

-- read_direct asks the direct-data service for the document and its shop.
-- Returns item JSON, shop JSON, or nil, "missing" / nil and an error.
local function read_direct(id)
    local res = capture("/_direct/api/item/" .. id, { args = { with = "shop" } })
    if res.status == 404 then
        return nil, nil, "missing"
    end
    if res.status ~= 200 then
        return nil, nil, "direct answered " .. tostring(res.status)
    end
    local env = cjson.decode(res.body)
    if type(env) ~= "table" or type(env.item) ~= "table" then
        return nil, nil, "direct: bad body"
    end
    local shop = env.shop
    return cjson.encode(env.item), shop ~= cjson.null and cjson.encode(shop) or nil
end

-- build renders a page from item and shop JSON. Returns html, or nil and
-- "missing" for a negative marker, or nil and an error.
local function build(item_json, shop_json)
    local item = cjson.decode(item_json)
    if type(item) ~= "table" then
        return nil, "item: not a JSON object"
    end
    if item.missing == true then
        return nil, "missing"
    end
    local shop = shop_json and cjson.decode(shop_json) or nil
    if type(shop) ~= "table" then
        shop = nil
    end
    return render({ item = item, shop = shop })
end

function _M.serve_item(id)
    if not str_find(id, "[1-9]") then    -- all zeros: not an id
        return send(404, not_found_page)
    end
    id = id:gsub("^0+", "")

    local c = cache()
    local html = c:get(id)
    if html then
        return send(200, html, "L1")
    end
    local pages = ngx.shared.dp_pages
    html = pages:get(id)
    if html then
        c:set(id, html, jitter(L1_TTL))
        return send(200, html, "L2")
    end
    local negative = ngx.shared.dp_negative
    if negative:get(id) then
        return send(404, not_found_page, "L2")
    end

    local level = "redis"
    local item, shop, err = read_replica(id, ngx.shared.dp_shops)
    if err then
        log(WARN, "replica failed, trying direct: ", err)
    end
    if not item then
        level = "direct"
        item, shop, err = read_direct(id)
    end
    if err == "missing" then
        negative:set(id, true, jitter(NEGATIVE_TTL))
        return send(404, not_found_page, level)
    end
    if not item then
        log(ERR, "no level could serve item ", id, ": ", err)
        ngx_header["Retry-After"] = "2"
        return send(503, unavailable_page)
    end

    local rerr
    html, rerr = build(item, shop)
    if rerr == "missing" then
        negative:set(id, true, jitter(NEGATIVE_TTL))
        return send(404, not_found_page, level)
    end
    if not html then
        log(ERR, "render failed for item ", id, ": ", rerr)
        ngx_header["Retry-After"] = "2"
        return send(503, unavailable_page)
    end
    pages:set(id, html, jitter(L2_TTL))
    c:set(id, html, jitter(L1_TTL))
    return send(200, html, level)
end

return _M
