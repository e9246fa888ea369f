-- detailpage.admin: the app node's operator API.
--   GET  /_admin/status   links, modes, failure counts, cache sizes and hits,
--                          the warm-up at start (detailpage.warm)
--   POST /_admin/degrade  {"link":"replica","mode":"force-degraded"}
--   POST /_admin/purge    {"ids":[1,2]}; answers once every worker dropped
--                          its copies (at most 0.5 s: workers_pending says how
--                          many had not)
--   GET  /_admin/page/<id> the page as /item/<id>.html answers it, with the
--                          versions it was built from (X-Item-Version,
--                          X-Shop-Id, X-Shop-Version); not counted for
--                          hot-product reporting
-- Every call needs "Authorization: Bearer <DETAILPAGE_ADMIN_TOKEN>";
-- without it: 401 and nothing changes.

local cjson = require "cjson.safe"
local app = require "detailpage.app"
local invalidate = require "detailpage.invalidate"
local bearer = require "detailpage.bearer"
local sentinel = require "detailpage.sentinel"
local hotcount = require "detailpage.hotcount"
local warm = require "detailpage.warm"

local ngx = ngx
local shared = ngx.shared
local type = type
local tonumber = tonumber
local tostring = tostring
local math_floor = math.floor

local LINKS = { replica = true, direct = true }
local MAX_BODY = 65536
local MAX_PURGE = 10000
local PURGE_WAIT = 0.5 -- seconds a purge waits for every worker to apply it (under the console's 1 s)

local _M = {}

local reply = bearer.reply
local authorized = bearer.authorized

local function read_json()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        if ngx.req.get_body_file() then
            return nil, "body larger than " .. MAX_BODY .. " bytes"
        end
        return nil, "body required"
    end
    local doc = cjson.decode(body)
    if type(doc) ~= "table" then
        return nil, "body is not a JSON object"
    end
    return doc
end

-- post_body checks method and token and reads the JSON body; it answers
-- the request itself (405, 401, 400) and returns nil when that failed.
local function post_body()
    if ngx.req.get_method() ~= "POST" then
        reply(405, { error = "use POST" })
        return nil
    end
    if not authorized() then
        return nil
    end
    local doc, err = read_json()
    if not doc then
        reply(400, { error = err })
        return nil
    end
    return doc
end

local function dict_stats(dict)
    return { capacity = dict:capacity(), free_bytes = dict:free_space() }
end

function _M.status()
    if ngx.req.get_method() ~= "GET" then
        return reply(405, { error = "use GET" })
    end
    if not authorized() then
        return
    end
    app.flush_hits()
    local state = shared.dp_state
    local links = app.links()
    local hits = app.node_hits()
    local l1 = app.l1()
    return reply(200, {
        node = app.config().node,
        links = { replica = links:status("replica"), direct = links:status("direct") },
        cache = {
            hits = hits,
            L1 = { entries_this_worker = l1:count(), capacity = l1:capacity(), ttl = app.config().l1_ttl },
            L2 = dict_stats(shared.dp_pages),
            negative = dict_stats(shared.dp_negative),
            shops = dict_stats(shared.dp_shops),
        },
        below = {
            redis_reads = state:get("count:redis_reads") or 0,
            direct_calls = state:get("count:direct_calls") or 0,
        },
        invalidation = { last_id = invalidate.last_id() or cjson.null },
        reads = sentinel.status(app.config().replica_host .. ":" .. app.config().replica_port),
        hot_reporting = hotcount.status(),
        warm = warm.status(),
    })
end

-- page answers GET /_admin/page/<id>: the id is 1 to 18 digits without a
-- leading zero, as in /item/<id>.html.
function _M.page()
    local method = ngx.req.get_method()
    if method ~= "GET" and method ~= "HEAD" then
        return reply(405, { error = "use GET" })
    end
    if not authorized() then
        return
    end
    local id = string.match(ngx.var.uri, "^/_admin/page/([1-9]%d*)$")
    if not id or #id > 18 then
        ngx.log(ngx.WARN, "[admin] bad page id in ", ngx.var.uri)
        return reply(400, { error = "want /_admin/page/<id>, an id of 1 to 18 digits without a leading zero" })
    end
    return app.serve_admin(id)
end

function _M.degrade()
    local doc = post_body()
    if not doc then
        return
    end
    if not LINKS[doc.link] then
        return reply(400, { error = 'link: want "replica" or "direct"' })
    end
    local ok, serr = app.links():set_mode(doc.link, doc.mode)
    if not ok then
        return reply(400, { error = "mode: " .. serr .. ' (want "auto", "force-degraded" or "force-normal")' })
    end
    ngx.log(ngx.WARN, "[admin] link ", doc.link, " set to ", doc.mode)
    return reply(200, app.links():status(doc.link))
end

function _M.purge()
    local doc = post_body()
    if not doc then
        return
    end
    local ids = doc.ids
    if type(ids) ~= "table" or #ids == 0 or #ids > MAX_PURGE then
        return reply(400, { error = "ids: want a list of 1 to " .. MAX_PURGE .. " product ids" })
    end
    for i = 1, #ids do
        local id = tonumber(ids[i])
        if not id or id < 1 or id ~= math_floor(id) or id > 999999999999999999 then
            return reply(400, { error = "ids[" .. (i - 1) .. "]: want a positive integer id" })
        end
    end
    local list = {}
    for i = 1, #ids do
        list[i] = string.format("%d", ids[i])
        app.drop(list[i])
    end
    local seq, qerr = invalidate.queue_purge(table.concat(list, ","))
    if not seq then
        return reply(500, { error = "queue purge: " .. tostring(qerr) })
    end
    -- Answer once every worker has dropped its L1 copies (each does within
    -- 0.1 s), so a request sent after the answer never gets a purged copy.
    local behind = invalidate.wait_purged(seq, PURGE_WAIT)
    if behind > 0 then
        ngx.log(ngx.WARN, "[admin] purge ", seq, ": ", behind, " workers had not applied it after ", PURGE_WAIT, " s")
    end
    return reply(200, { purged = #ids, workers_pending = behind })
end

return _M
