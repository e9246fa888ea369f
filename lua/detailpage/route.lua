-- detailpage.route: which app node serves a product id.
--
-- Rendezvous (highest random weight) hashing: each node scores
-- hash(node .. "#" .. id) and the id goes to the highest-scoring node
-- among those that are up. An id keeps its node while that node is up;
-- when a node goes down only its ids move (each to its own second choice,
-- so they spread over the others), and they move back when it returns.
-- The ranking also gives the order of retries for the request in flight
-- (next_try).
--
-- Pure Lua (LuaJIT's bit library), no ngx: unit-tested with busted.

local bit = require "bit"

local bxor = bit.bxor
local rshift = bit.rshift
local lshift = bit.lshift
local tobit = bit.tobit
local str_byte = string.byte
local floor = math.floor
local type = type

local TWO32 = 4294967296
local FNV_OFFSET = tobit(2166136261)

local _M = {}

-- u32 maps a bit-op result (a signed 32-bit number) to 0 .. 2^32-1.
local function u32(x)
    return x % TWO32
end

-- mul32 multiplies two 32-bit numbers modulo 2^32 without losing bits in
-- a double: 16-bit halves keep every partial product below 2^53.
local function mul32(a, b)
    a, b = u32(a), u32(b)
    local alo, ahi = a % 65536, floor(a / 65536)
    local blo, bhi = b % 65536, floor(b / 65536)
    return tobit(alo * blo + ((ahi * blo + alo * bhi) % 65536) * 65536)
end

-- hash is 32-bit FNV-1a with murmur3's finalizer, so that neighbouring ids
-- ("7", "8") get unrelated scores. Returns 0 .. 2^32-1.
function _M.hash(s)
    local h = FNV_OFFSET
    for i = 1, #s do
        h = bxor(h, str_byte(s, i))
        -- h * 16777619 (2^24 + 2^8 + 0x93) as shifts and adds
        h = tobit(h + lshift(h, 1) + lshift(h, 4) + lshift(h, 7) + lshift(h, 8) + lshift(h, 24))
    end
    h = bxor(h, rshift(h, 16))
    h = mul32(h, 0x85ebca6b)
    h = bxor(h, rshift(h, 13))
    h = mul32(h, 0xc2b2ae35)
    h = bxor(h, rshift(h, 16))
    return u32(h)
end

-- rank returns the names of the nodes that are up, best first, for id.
--   names  list of node names (unique strings)
--   id     the product id (string)
--   up     optional function(name) -> boolean; nil: every node is up
-- The first entry is the id's node; the rest are the retry order.
function _M.rank(names, id, up)
    if type(names) ~= "table" then
        error("names must be a list of node names", 2)
    end
    if type(id) ~= "string" then
        error("id must be a string", 2)
    end
    local out, scores = {}, {}
    local n = 0
    for i = 1, #names do
        local name = names[i]
        if not up or up(name) then
            local s = _M.hash(name .. "#" .. id)
            -- insertion sort: a handful of nodes
            local j = n
            while j > 0 and (scores[j] < s or (scores[j] == s and out[j] > name)) do
                out[j + 1], scores[j + 1] = out[j], scores[j]
                j = j - 1
            end
            out[j + 1], scores[j + 1] = name, s
            n = n + 1
        end
    end
    return out
end

-- spread returns the nodes that are up in config order rotated to start
-- at the k-th of them (k counts requests: 1, 2, 3, ... wraps): round robin
-- for hot ids, which go to every healthy node rather than to their hashed
-- one. The rest of the list is the retry order, as with rank.
--   names  list of node names
--   k      a positive integer
--   up     optional function(name) -> boolean; nil: every node is up
function _M.spread(names, k, up)
    if type(names) ~= "table" then
        error("names must be a list of node names", 2)
    end
    if type(k) ~= "number" or k < 1 then
        error("k must be a positive number", 2)
    end
    local healthy, n = {}, 0
    for i = 1, #names do
        if not up or up(names[i]) then
            n = n + 1
            healthy[n] = names[i]
        end
    end
    if n <= 1 then
        return healthy
    end
    local out = {}
    local first = (k - 1) % n
    for i = 0, n - 1 do
        out[i + 1] = healthy[(first + i) % n + 1]
    end
    return out
end

-- next_try picks the node of a request's next try, as an index into its
-- ranking of n nodes.
--   k            index of the node of the last try (nil: the first try)
--   asked_again  whether the request already went to a node a second time
--   alive        whether that node answered a health probe that started
--                after the last try began
-- A node that is alive but slow is asked once more (the caller gives that
-- try a long timeout): it holds the page or its stale copy. Otherwise the
-- next node. Past the end (nginx asks again after an error on a kept-alive
-- connection, which it does not count as a try): the last node again.
-- Returns the index and whether this is the second ask of the same node.
function _M.next_try(n, k, asked_again, alive)
    if not k then
        return 1, false
    end
    if not asked_again and alive then
        return k, true
    end
    if k < n then
        return k + 1, false
    end
    return n, false
end

return _M
