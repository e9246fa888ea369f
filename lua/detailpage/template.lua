-- detailpage.template: compiles templates/item.html to a Lua function, with
-- output byte-identical to pongo2 v6 (the Go renderer) for the same data.
--
-- The subset (anything else is refused at compile time, with its line):
--
--   text                      copied as is
--   {# comment #}             one line only, dropped
--   {{ x }}                   value, HTML-escaped when it is a string
--   {{ x|safe }}              value, not escaped
--   {{ x|default:"y" }}       x when x is true (see truthiness), else "y";
--                             the argument is a string or integer literal;
--                             filters chain left to right
--   {% if e %} {% elif e %} {% else %} {% endif %}
--   {% for v in x %} {% empty %} {% endfor %}
--       inside: forloop.Counter, forloop.Counter0, forloop.First,
--       forloop.Last; in x itself, the new loop's: 0, 0, True, False
--
--   x is a path (name, name.key, name.0 for a list index), a string literal
--   ("..." or '...', escapes \" and \\ only) or an integer literal of at
--   most 2^53.
--   e is built from x (filters allowed), not, and, or, ( ), and one of
--   == != < > <= >= between two x. As in pongo2, and/or have the same
--   precedence and group to the right: `a and b or c` is `a and (b or c)`.
--   `not a == b` (pongo2 reads it as `(not a) == b`), chained comparisons,
--   and comparisons of a parenthesised expression are refused.
--   No whitespace control ({%- -%}), no other tag, filter or operator.
--   At most 20 nested loops, 50 nested blocks, 40 levels of and / or /
--   not / ( ); a LuaJIT limit is reported at a template line.
--
-- Semantics, as pongo2 v6 (value.go, filters_builtin.go, variable.go):
--
--   * escaping: & < > " ' become &amp; &lt; &gt; &quot; &#39;; only string
--     values are escaped, and not at all when |safe is in the chain.
--   * printing: nil and missing print "", booleans True / False, integral
--     numbers as integer digits, other numbers as "%f" (6 decimals).
--   * truthiness: nil, false, 0, "", empty list and empty object are false.
--   * lists and objects: a JSON array is a Go slice and an object a Go map,
--     empty or not (an empty [] from _M.decode carries LIST_MT).
--   * a missing key, or any step through nil, is nil; a key on a string,
--     number, boolean or list, or an index on an object, is a render error.
--   * for over nil, missing, a number or a boolean runs {% empty %}; over a
--     string it runs once per byte; over an object, once per key, which is
--     a render error when there are several keys and the body reads the
--     loop variable (pongo2 walks maps in random order).
--   * == compares integers by value and other values by type and value;
--     < > <= >= compare as floats if either side is a non-integral number,
--     else as integers, converting strings like Go's strconv.ParseFloat.
--
-- Numbers: lua-cjson decodes every number to a double; a number is an
-- "integer" when it is integral and within int64, exactly as the Go side
-- decodes documents (go/internal/page). JSON null (cjson.null) is nil.
-- Documents must be decoded with _M.decode, which tells [] from {}.
-- See docs/template.md.
--
-- Usage:
--   local template = require "detailpage.template"
--   local render, err = template.compile(source, "item.html")
--   local doc = template.decode(json)
--   local html, err = render({ item = doc, shop = shop })

local type = type
local next = next
local ipairs = ipairs
local tostring = tostring
local tonumber = tonumber
local pcall = pcall
local error = error
local getmetatable = getmetatable
local setmetatable = setmetatable
local concat = table.concat
local str_byte = string.byte
local str_sub = string.sub
local str_find = string.find
local str_gsub = string.gsub
local str_match = string.match
local str_format = string.format
local str_lower = string.lower
local str_upper = string.upper
local str_char = string.char
local math_floor = math.floor
local math_ceil = math.ceil
local math_huge = math.huge
local loadstring = loadstring or load

local cjson_ok, cjson = pcall(require, "cjson")

-- JSON null as decoded by lua-cjson; a private sentinel when cjson is absent.
local NULL = cjson_ok and cjson.null or setmetatable({}, { __tostring = function() return "null" end })
-- Set on decoded arrays by OpenResty's lua-cjson with
-- decode_array_with_array_mt(true); lets an empty [] be told from {}.
local ARRAY_MT = cjson_ok and cjson.array_mt or nil
-- Set by _M.decode on the empty arrays of a document (Debian's lua-cjson
-- decodes [] and {} to the same empty table).
local LIST_MT = {}

local TWO63 = 2 ^ 63
local EMPTY = {}
-- The render error of a loop over an object with several keys whose body
-- reads the key: pongo2's order is random. _M.ORDER_ERROR for callers.
local ORDER_ERROR = "for over an object with several keys: pongo2's order is random"

local ESCAPES = {
    ["&"] = "&amp;",
    ["<"] = "&lt;",
    [">"] = "&gt;",
    ['"'] = "&quot;",
    ["'"] = "&#39;",
}
local ESCAPE_CLASS = "[&<>\"']"

local KEYWORDS = {
    ["in"] = true, ["and"] = true, ["or"] = true, ["not"] = true,
    ["true"] = true, ["false"] = true, ["as"] = true, ["export"] = true,
}

-- pongo2's symbols, longest first, as its lexer tries them.
local SYMBOLS = {
    "{{-", "-}}", "{%-", "-%}",
    "==", ">=", "<=", "&&", "||", "{{", "}}", "{%", "%}", "!=", "<>",
    "(", ")", "+", "-", "*", "<", ">", "/", "^", ",", ".", "!", "|", ":",
    "=", "%", "[", "]",
}

local TRIM_SYMBOLS = { ["{{-"] = true, ["-}}"] = true, ["{%-"] = true, ["-%}"] = true }

local COMPARISONS = {
    ["=="] = "eq", ["!="] = "ne", ["<"] = "lt", [">"] = "gt", ["<="] = "le", [">="] = "ge",
}

local FORLOOP_FIELDS = { Counter = true, Counter0 = true, First = true, Last = true }
-- forloop in a for tag's own list expression: pongo2's fresh loop info.
local FORLOOP_BEFORE = { Counter = "0", Counter0 = "0", First = "true", Last = "false" }

-- Nesting limits, within LuaJIT's (200 syntax levels, 200 locals per
-- function): a loop takes 7 locals and 3 levels, an if 1 level, each
-- level of and / or / not / parentheses up to 2.
local MAX_LOOP_DEPTH = 20
local MAX_BLOCK_DEPTH = 50
local MAX_EXPR_DEPTH = 40

-- Tags and texts per generated function (see compile_source), at the top
-- level and inside a block.
local PART_SIZE = 2000
local BLOCK_SPLIT = 300

-- Integer literals must stay exact in a double: at most 2^53.
local MAX_INT_LITERAL = "9007199254740992"
-- pongo2 reads an index with strconv.Atoi: at most MaxInt64.
local MAX_INDEX = "9223372036854775807"

local _M = { _VERSION = "0.1.0" }


------------------------------------------------------------------------
-- Runtime: value semantics of pongo2 v6 over lua-cjson values.
------------------------------------------------------------------------

-- A render error carries its template line; render() formats it.
local function fail(line, msg)
    error({ line = line, msg = msg }, 0)
end

local function is_int(n)
    return n == math_floor(n) and n >= -TWO63 and n < TWO63
end

-- A decoded JSON array (a Go []interface{}), as opposed to an object (a
-- map[string]interface{}): non-empty arrays have t[1]; empty ones carry
-- LIST_MT (set by _M.decode) or OpenResty's cjson.array_mt. An empty table
-- without either is an empty object.
local function is_list(t)
    if t[1] ~= nil then
        return true
    end
    local mt = getmetatable(t)
    return mt ~= nil and (mt == LIST_MT or mt == ARRAY_MT)
end

-- Go's reflect kind names, for error messages.
local function kind(v)
    local t = type(v)
    if t == "number" then
        return is_int(v) and "int64" or "float64"
    elseif t == "table" then
        return is_list(v) and "slice" or "map"
    elseif t == "boolean" then
        return "bool"
    end
    return t
end

-- Go's fmt "%f": 6 decimals, correctly rounded, ties to even. LuaJIT's
-- "%f" has exact digits but rounds ties away from zero, so an exact tie
-- (the 7th decimal is the last non-zero one and is 5) is fixed here.
local function format_float(v)
    local s = str_format("%f", v)
    local exact = str_format("%.40f", v)
    local head, tail = str_match(exact, "^(%-?%d+%.%d%d%d%d%d%d)5(0*)$")
    if head and #tail == 33 and str_find(head, "[02468]$") then
        return head -- a tie whose truncation is already even
    end
    return s
end

-- Value.String()
local function tostr(v)
    local t = type(v)
    if t == "string" then
        return v
    elseif t == "number" then
        if is_int(v) then
            if v == 0 then
                return "0" -- not "-0"
            end
            return str_format("%.0f", v)
        elseif v ~= v then
            return "NaN"
        elseif v == math_huge then
            return "+Inf"
        elseif v == -math_huge then
            return "-Inf"
        end
        return format_float(v)
    elseif t == "boolean" then
        return v and "True" or "False"
    elseif t == "table" and v ~= NULL then
        if is_list(v) then
            return "<[]interface {} Value>"
        end
        return "<map[string]interface {} Value>"
    end
    return "" -- nil, cjson.null
end

local function escape(s)
    if not str_find(s, ESCAPE_CLASS) then
        return s
    end
    return (str_gsub(s, ESCAPE_CLASS, ESCAPES))
end

-- {{ x }} with autoescape on.
local function out(v)
    if type(v) == "string" then
        return escape(v)
    end
    return tostr(v)
end

-- Value.IsTrue()
local function truthy(v)
    local t = type(v)
    if t == "string" then
        return v ~= ""
    elseif t == "number" then
        return v ~= 0
    elseif t == "boolean" then
        return v
    elseif t == "table" then
        return next(v) ~= nil
    end
    return false
end

-- name.key
local function get(v, key, line)
    if v == nil or v == NULL then
        return nil
    end
    if type(v) == "table" and not is_list(v) then
        local r = v[key]
        if r == NULL then
            return nil
        end
        return r
    end
    fail(line, "can't access field '" .. key .. "' on type " .. kind(v))
end

-- name.0
local function index(v, i, line)
    if v == nil or v == NULL then
        return nil
    end
    local t = type(v)
    if t == "table" then
        if not is_list(v) then
            fail(line, "can't access index " .. i .. " on type map")
        end
        local r = v[i + 1]
        if r == NULL then
            return nil
        end
        return r
    elseif t == "string" then
        if i < #v then
            return str_byte(v, i + 1) -- a byte, as Go's reflect Index on a string
        end
        return nil
    end
    fail(line, "can't access index " .. i .. " on type " .. kind(v))
end

-- A path after its first name: p = { line = L, "key", 0, ... }, a string
-- for .key, a number for .0.
local function path(v, p)
    local line = p.line
    for i = 1, #p do
        if v == nil then
            return nil
        end
        local part = p[i]
        if type(part) == "string" then
            v = get(v, part, line)
        else
            v = index(v, part, line)
        end
    end
    return v
end

-- |default:"x"|default:0 ...: d = { "x", 0, ... }
local function default(v, d)
    for i = 1, #d do
        if truthy(v) then
            return v
        end
        v = d[i]
    end
    return v
end

-- Value.IterateOrder(): the items to loop over and their count. Over an
-- object pongo2 gives its keys in Go's random map order: that is matched
-- when the order cannot show (one key, or a body that never reads the loop
-- variable, uses_var false); otherwise it is a render error.
local function iter(v, line, uses_var)
    local t = type(v)
    if t == "table" and v ~= NULL then
        if is_list(v) then
            return v, #v
        end
        local keys, n = {}, 0
        for k in next, v do
            n = n + 1
            keys[n] = k
        end
        if n > 1 and uses_var then
            fail(line, ORDER_ERROR .. " (" .. n .. " keys)")
        end
        return keys, n
    elseif t == "string" then
        local n = #v
        local bytes = {}
        for i = 1, n do
            bytes[i] = str_sub(v, i, i)
        end
        return bytes, n
    end
    return EMPTY, 0
end

-- Value.EqualValueTo(): integers by value, everything else as Go's
-- interface comparison (same type and value).
local function eq(a, b, line)
    if a == NULL then
        a = nil
    end
    if b == NULL then
        b = nil
    end
    local ta, tb = type(a), type(b)
    if ta == "number" and tb == "number" then
        return is_int(a) == is_int(b) and a == b
    end
    if ta == "table" and tb == "table" then
        if is_list(a) ~= is_list(b) then
            return false -- different dynamic types: Go says false
        end
        fail(line, "can't compare two lists or two objects")
    end
    return ta == tb and a == b
end

-- strconv.ParseFloat(s, 64): the value, or nil on a syntax or range error.
local function parse_hex_float(s)
    local sign, mant, exp = str_match(s, "^([+-]?)0[xX]([%x%.]+)[pP]([+-]?%d+)$")
    if not sign then
        return nil
    end
    local ipart, fpart = str_match(mant, "^(%x*)%.?(%x*)$")
    if not ipart or ipart .. fpart == "" then
        return nil
    end
    local m = tonumber(ipart .. fpart, 16)
    local f = m * 2 ^ (tonumber(exp) - 4 * #fpart)
    if f == math_huge then
        return nil
    end
    return sign == "-" and -f or f
end

-- Go's underscoreOK: "_" only between digits (a base prefix counts).
local function underscore_ok(s)
    local saw = "^"
    local i = 1
    local c = str_sub(s, 1, 1)
    if c == "-" or c == "+" then
        i = 2
    end
    local hex = false
    if str_find(s, "^0[bBoOxX]", i) then
        hex = str_lower(str_sub(s, i + 1, i + 1)) == "x"
        i = i + 2
        saw = "0"
    end
    for j = i, #s do
        c = str_sub(s, j, j)
        if str_find(c, "^%d") or (hex and str_find(c, "^[a-fA-F]")) then
            saw = "0"
        elseif c == "_" then
            if saw ~= "0" then
                return false
            end
            saw = "_"
        elseif saw == "_" then
            return false
        else
            saw = "!"
        end
    end
    return saw ~= "_"
end

local function parse_float(s)
    local body = str_match(s, "^[+-]?(.*)$")
    local lower = str_lower(body)
    if lower == "inf" or lower == "infinity" then
        return str_sub(s, 1, 1) == "-" and -math_huge or math_huge
    elseif s == body and lower == "nan" then
        return 0 / 0
    end
    if str_find(s, "_", 1, true) then
        if not underscore_ok(s) then
            return nil
        end
        s = str_gsub(s, "_", "")
    end
    if str_find(s, "^[+-]?0[xX].") then
        return parse_hex_float(s)
    end
    if not (str_find(s, "^[+-]?%d+%.?%d*$")
            or str_find(s, "^[+-]?%d*%.%d+$")
            or str_find(s, "^[+-]?%d+%.?%d*[eE][+-]?%d+$")
            or str_find(s, "^[+-]?%d*%.%d+[eE][+-]?%d+$")) then
        return nil
    end
    local f = tonumber(s)
    if f == nil or f == math_huge or f == -math_huge then
        return nil -- ErrRange: pongo2 then uses 0
    end
    return f
end

-- Go's int(f) on amd64: truncation, and math.MinInt64 when out of range.
local function go_int(f)
    if f ~= f or f >= TWO63 or f < -TWO63 then
        return -TWO63
    end
    if f >= 0 then
        return math_floor(f)
    end
    return math_ceil(f)
end

local function is_float(v)
    return type(v) == "number" and not is_int(v)
end

-- Value.Float()
local function to_float(v)
    local t = type(v)
    if t == "number" then
        return v
    elseif t == "string" then
        return parse_float(v) or 0
    end
    return 0
end

-- Value.Integer(), for values that are not non-integral numbers.
local function to_int(v)
    local t = type(v)
    if t == "number" then
        return v
    elseif t == "string" then
        local f = parse_float(v)
        if f == nil then
            return 0
        end
        return go_int(f)
    end
    return 0
end

local function operands(a, b)
    if is_float(a) or is_float(b) then
        return to_float(a), to_float(b)
    end
    return to_int(a), to_int(b)
end

local function lt(a, b)
    local x, y = operands(a, b)
    return x < y
end

local function le(a, b)
    local x, y = operands(a, b)
    return x <= y
end

local function gt(a, b)
    local x, y = operands(a, b)
    return x > y
end

local function ge(a, b)
    local x, y = operands(a, b)
    return x >= y
end

local RUNTIME = {
    concat = concat,
    out = out,
    tostr = tostr,
    truthy = truthy,
    path = path,
    default = default,
    iter = iter,
    eq = eq,
    lt = lt,
    le = le,
    gt = gt,
    ge = ge,
}


------------------------------------------------------------------------
-- Compiler: template source -> Lua source -> function.
------------------------------------------------------------------------

-- A syntax error; compile() catches it and returns it as nil, err.
local function syntax_error(line, msg)
    error({ line = line, msg = msg }, 0)
end

-- Splits the inside of {{ }} or {% %} into tokens, as pongo2's lexer does.
-- Returns the tokens and the position after the closing symbol.
local function tokenize(src, pos, closer, line)
    local tokens = {}
    local n = 0
    local len = #src
    while true do
        local c = str_sub(src, pos, pos)
        if c == "" then
            syntax_error(line, "unclosed '" .. (closer == "}}" and "{{" or "{%") .. "'")
        elseif c == " " or c == "\t" or c == "\r" then
            pos = pos + 1
        elseif c == "\n" then
            syntax_error(line, "newline inside '" .. (closer == "}}" and "{{ }}" or "{% %}") .. "'")
        elseif str_find(c, "^[%a_]") then
            local word = str_match(src, "^[%a_][%w_]*", pos)
            n = n + 1
            tokens[n] = { typ = KEYWORDS[word] and "keyword" or "name", val = word }
            pos = pos + #word
        elseif str_find(c, "^%d") then
            local digits = str_match(src, "^%d+", pos)
            pos = pos + #digits
            if str_find(src, "^[%a_]", pos) then
                syntax_error(line, "malformed number '" .. str_match(src, "^%d+[%w_]*", pos - #digits) .. "'")
            end
            n = n + 1
            tokens[n] = { typ = "number", val = digits }
        elseif c == '"' or c == "'" then
            local i = pos + 1
            while true do
                local d = str_sub(src, i, i)
                if d == c then
                    break
                elseif d == "\\" then
                    local e = str_sub(src, i + 1, i + 1)
                    if e ~= '"' and e ~= "\\" then
                        syntax_error(line, "unknown escape sequence '\\" .. e .. "' in string")
                    end
                    i = i + 2
                elseif d == "" or d == "\n" then
                    syntax_error(line, "unterminated string")
                else
                    i = i + 1
                end
            end
            -- pongo2 unescapes with two plain replacements, in this order.
            local raw = str_sub(src, pos + 1, i - 1)
            raw = str_gsub(raw, '\\"', '"')
            raw = str_gsub(raw, "\\\\", "\\")
            n = n + 1
            tokens[n] = { typ = "string", val = raw }
            pos = i + 1
        else
            local sym
            for _, s in ipairs(SYMBOLS) do
                if str_sub(src, pos, pos + #s - 1) == s then
                    sym = s
                    break
                end
            end
            if sym == nil then
                syntax_error(line, "unexpected character '" .. c .. "'")
            elseif TRIM_SYMBOLS[sym] then
                syntax_error(line, "whitespace control '" .. sym .. "' is not supported")
            end
            pos = pos + #sym
            if sym == closer then
                return tokens, pos
            elseif sym == "}}" or sym == "%}" then
                syntax_error(line, "unexpected '" .. sym .. "'")
            end
            n = n + 1
            tokens[n] = { typ = "symbol", val = sym }
        end
        if pos > len + 1 then
            pos = len + 1
        end
    end
end

-- Parser state for the tokens of one tag.
-- const(v) stores a constant for the generated code and returns its
-- index in T.
local function new_reader(tokens, line, scope, const)
    return { tokens = tokens, i = 1, line = line, scope = scope, const = const, depth = 0 }
end

local function peek(r)
    return r.tokens[r.i]
end

local function is_sym(tok, val)
    return tok ~= nil and tok.typ == "symbol" and tok.val == val
end

local function is_kw(tok, val)
    return tok ~= nil and tok.typ == "keyword" and tok.val == val
end

local function describe(tok)
    if tok == nil then
        return "end of tag"
    elseif tok.typ == "string" then
        return "string"
    end
    return "'" .. tok.val .. "'"
end

local function take(r)
    local tok = r.tokens[r.i]
    r.i = r.i + 1
    return tok
end

-- Looks a loop variable up in the loops around the tag, innermost first;
-- a loop's variable is not visible in its {% empty %}.
local function find_loop(scope, name)
    for i = #scope, 1, -1 do
        if scope[i].var == name and scope[i].state ~= "empty" then
            return scope[i]
        end
    end
end

-- Whether the digit string s is above the digit string max.
local function above(s, max)
    s = str_match(s, "^0*(%d*)$")
    return #s > #max or (#s == #max and s > max)
end

-- A path: NAME ( . NAME | . NUMBER )*
local function parse_path(r, first)
    local line = r.line
    local name = first.val
    local code
    if name == "forloop" then
        local loop = r.scope[#r.scope]
        if r.for_list then
            -- pongo2 evaluates a for tag's list with the new loop's
            -- forloop already in place, before the first item.
            loop = "new"
        elseif loop == nil then
            syntax_error(line, "forloop outside a for loop")
        elseif loop.state == "empty" then
            syntax_error(line, "forloop inside {% empty %}")
        end
        if not is_sym(peek(r), ".") then
            syntax_error(line, "forloop needs a field: Counter, Counter0, First or Last")
        end
        take(r)
        local field = take(r)
        if field == nil or field.typ ~= "name" or not FORLOOP_FIELDS[field.val] then
            syntax_error(line, "unsupported forloop field " .. describe(field)
                .. " (want Counter, Counter0, First or Last)")
        end
        if is_sym(peek(r), ".") then
            syntax_error(line, "can't access a field of forloop." .. field.val)
        end
        if loop == "new" then
            return FORLOOP_BEFORE[field.val]
        end
        local id = loop.id
        if field.val == "Counter" then
            return "i" .. id
        elseif field.val == "Counter0" then
            return "(i" .. id .. " - 1)"
        elseif field.val == "First" then
            return "(i" .. id .. " == 1)"
        end
        return "(i" .. id .. " == n" .. id .. ")"
    elseif name == "pongo2" then
        syntax_error(line, "'pongo2' is a reserved name")
    end
    local loop = find_loop(r.scope, name)
    if loop then
        loop.uses_var = true
        code = "v" .. loop.id
    else
        code = "C[" .. str_format("%q", name) .. "]"
    end
    -- The parts go to a constant table, walked by path() at run time: no
    -- nesting in the generated code, however long the path.
    local parts = { line = line }
    while is_sym(peek(r), ".") do
        take(r)
        local part = take(r)
        if part == nil then
            syntax_error(line, "expected a name or number after '.'")
        elseif part.typ == "name" then
            parts[#parts + 1] = part.val
        elseif part.typ == "number" then
            if above(part.val, MAX_INDEX) then
                syntax_error(line, "index " .. part.val .. " is out of range (pongo2 refuses it too)")
            end
            parts[#parts + 1] = tonumber(part.val)
        else
            syntax_error(line, describe(part) .. " is not allowed in a variable name")
        end
    end
    if #parts > 0 then
        code = "path(" .. code .. ", T[" .. r.const(parts) .. "])"
    end
    local nxt = peek(r)
    if is_sym(nxt, "[") or is_sym(nxt, "(") then
        syntax_error(line, "'" .. nxt.val .. "' is not supported (only a.b and a.0 paths)")
    end
    return code
end

-- A string or integer literal: its Lua code and its value.
local function literal(r, tok)
    if tok.typ == "string" then
        return str_format("%q", tok.val), tok.val
    end
    if above(tok.val, MAX_INT_LITERAL) then
        syntax_error(r.line, "integer " .. tok.val .. " is larger than 2^53 = " .. MAX_INT_LITERAL
            .. " (not exact in the Lua renderer)")
    end
    if is_sym(peek(r), ".") then
        syntax_error(r.line, "float literals are not supported")
    end
    local v = tonumber(tok.val)
    return str_format("%d", v), v
end

-- A value with its filters: (path | literal) ( | filter )*
-- Returns its Lua expression and whether |safe is in the chain.
local function parse_value(r)
    local line = r.line
    local tok = take(r)
    local code
    if tok == nil then
        syntax_error(line, "expected a variable, string or number")
    elseif tok.typ == "name" then
        code = parse_path(r, tok)
    elseif tok.typ == "string" or tok.typ == "number" then
        code = literal(r, tok)
    else
        syntax_error(line, "expected a variable, string or number, got " .. describe(tok))
    end
    local safe = false
    local defaults = {}
    while is_sym(peek(r), "|") do
        take(r)
        local f = take(r)
        if f == nil or f.typ ~= "name" then
            syntax_error(line, "expected a filter name after '|'")
        end
        if f.val == "safe" then
            safe = true
            if is_sym(peek(r), ":") then
                syntax_error(line, "filter 'safe' takes no argument")
            end
        elseif f.val == "default" then
            if not is_sym(peek(r), ":") then
                syntax_error(line, "filter 'default' needs an argument: default:\"...\"")
            end
            take(r)
            local arg = take(r)
            if arg == nil or (arg.typ ~= "string" and arg.typ ~= "number") then
                syntax_error(line, "the argument of 'default' must be a string or integer literal, got "
                    .. describe(arg))
            end
            local _, v = literal(r, arg)
            defaults[#defaults + 1] = v
        else
            syntax_error(line, "unknown filter '" .. f.val .. "'")
        end
    end
    if #defaults > 0 then
        code = "default(" .. code .. ", T[" .. r.const(defaults) .. "])"
    end
    return code, safe
end

local parse_expr

-- One more level of and / or / not / parentheses.
local function nest(r)
    r.depth = r.depth + 1
    if r.depth > MAX_EXPR_DEPTH then
        syntax_error(r.line, "expression nested deeper than " .. MAX_EXPR_DEPTH
            .. " levels of and / or / not / parentheses")
    end
end

-- An operand: ( expr ) | value. Returns code, code kind ("bool" for a Lua
-- boolean, "value" for a template value) and the operand form.
local function parse_factor(r)
    if is_sym(peek(r), "(") then
        take(r)
        nest(r)
        local code, k = parse_expr(r)
        r.depth = r.depth - 1
        if not is_sym(take(r), ")") then
            syntax_error(r.line, "expected ')'")
        end
        return code, k, "paren"
    end
    local code = parse_value(r)
    return code, "value", "value"
end

local function as_bool(code, k)
    if k == "bool" then
        return code
    end
    return "truthy(" .. code .. ")"
end

local function parse_simple(r)
    local tok = peek(r)
    if is_kw(tok, "not") then
        take(r)
        if is_kw(peek(r), "not") then
            syntax_error(r.line, "'not not' is not allowed")
        end
        nest(r)
        local code, k = parse_factor(r)
        r.depth = r.depth - 1
        return "(not " .. as_bool(code, k) .. ")", "bool", "not"
    end
    if tok ~= nil and tok.typ == "symbol" and (tok.val == "!" or tok.val == "-" or tok.val == "+") then
        syntax_error(r.line, "operator '" .. tok.val .. "' is not supported")
    end
    if tok ~= nil and tok.typ == "keyword" then
        syntax_error(r.line, "keyword '" .. tok.val .. "' is not allowed here")
    end
    return parse_factor(r)
end

local function parse_relation(r)
    local left, k, form = parse_simple(r)
    local tok = peek(r)
    if tok == nil then
        return left, k
    end
    if is_kw(tok, "in") then
        syntax_error(r.line, "operator 'in' is not supported")
    end
    if tok.typ ~= "symbol" then
        return left, k
    end
    local op = COMPARISONS[tok.val]
    if op == nil then
        if tok.val == "<>" or tok.val == "+" or tok.val == "-" or tok.val == "*"
                or tok.val == "/" or tok.val == "%" or tok.val == "^" then
            syntax_error(r.line, "operator '" .. tok.val .. "' is not supported")
        end
        return left, k
    end
    if form ~= "value" then
        syntax_error(r.line, "'" .. tok.val .. "' after a " .. (form == "not" and "'not'" or "parenthesis")
            .. " operand: pongo2 reads 'not a == b' as '(not a) == b'; write 'not (a == b)'")
    end
    take(r)
    local right, _, rform = parse_simple(r)
    if rform ~= "value" then
        syntax_error(r.line, "the right side of '" .. tok.val .. "' must be a variable or literal")
    end
    local nxt = peek(r)
    if nxt ~= nil and nxt.typ == "symbol" and COMPARISONS[nxt.val] then
        syntax_error(r.line, "chained comparisons are not supported")
    end
    local line = r.line
    if op == "eq" then
        return "eq(" .. left .. ", " .. right .. ", " .. line .. ")", "bool"
    elseif op == "ne" then
        return "(not eq(" .. left .. ", " .. right .. ", " .. line .. "))", "bool"
    end
    return op .. "(" .. left .. ", " .. right .. ")", "bool"
end

-- expr := relation ( (and | or) expr )?  -- right-assoc, equal precedence
parse_expr = function(r)
    local left, k = parse_relation(r)
    local tok = peek(r)
    if is_kw(tok, "and") or is_kw(tok, "or") then
        take(r)
        nest(r)
        local right, rk = parse_expr(r)
        r.depth = r.depth - 1
        return "(" .. as_bool(left, k) .. " " .. tok.val .. " " .. as_bool(right, rk) .. ")", "bool"
    elseif is_sym(tok, "&&") or is_sym(tok, "||") then
        syntax_error(r.line, "operator '" .. tok.val .. "' is not supported, use and / or")
    end
    return left, k
end

local function expect_end(r, what)
    local tok = peek(r)
    if tok ~= nil then
        syntax_error(r.line, "unexpected " .. describe(tok) .. " in " .. what)
    end
end

local function parse_condition(r, tag)
    if peek(r) == nil then
        syntax_error(r.line, "{% " .. tag .. " %} needs a condition")
    end
    local code, k = parse_expr(r)
    expect_end(r, "{% " .. tag .. " %}")
    return as_bool(code, k)
end

-- Returns the Lua source, the texts it refers to (T[i]) and, for each
-- line of the Lua source, the template line it comes from.
local function compile_source(source)
    local code = {
        "local R, T = ...\n",
        "local concat, out, tostr, truthy = R.concat, R.out, R.tostr, R.truthy\n",
        "local path, default, iter = R.path, R.default, R.iter\n",
        "local eq, lt, le, gt, ge = R.eq, R.lt, R.le, R.gt, R.ge\n",
        "local F = {}\n",
        "F[1] = function(C, b, n)\n",
    }
    local texts, ntexts = {}, 0
    local function const(v)
        ntexts = ntexts + 1
        texts[ntexts] = v
        return ntexts
    end
    local lines = { 1, 1, 1, 1, 1, 1 } -- Lua line -> template line
    -- The body is cut into functions F[1], F[2]... at top-level tags, so
    -- that no function reaches LuaJIT's limit of constants.
    local parts, part_size = 1, 0
    local line = 1
    local function emit(s)
        code[#code + 1] = s
        local _, nl = str_gsub(s, "\n", "")
        for _ = 1, nl do
            lines[#lines + 1] = line
        end
    end

    local stack = {} -- open blocks: { tag = "if" | "for", line, state, id, var }
    local scope = {} -- open for loops, for names
    local loops = 0
    local pos = 1
    local len = #source

    local function text(s)
        if s ~= "" then
            emit("n = n + 1 b[n] = T[" .. const(s) .. "]\n")
            local _, nl = str_gsub(s, "\n", "")
            line = line + nl
        end
    end

    local function open_block()
        if #stack >= MAX_BLOCK_DEPTH then
            syntax_error(line, "blocks ({% if %} and {% for %}) nested deeper than " .. MAX_BLOCK_DEPTH)
        end
    end

    -- Inside blocks, LuaJIT's jumps reach 32767 instructions: a block
    -- whose body grows past BLOCK_SPLIT tags and texts goes on in a
    -- closure, "do local f = function() ... end f() end", a prototype of
    -- its own (b, n and the loop variables are upvalues). Each block counts
    -- the tags in its prototype: up to its innermost open closure.
    local function split_blocks()
        local over = false
        for i = #stack, 1, -1 do
            local blk = stack[i]
            if blk.open then
                blk.cseg = blk.cseg + 1
                over = over or blk.cseg > BLOCK_SPLIT
                break
            end
            blk.seg = (blk.seg or 0) + 1
            over = over or blk.seg > BLOCK_SPLIT
        end
        if over then
            local top = stack[#stack]
            if top.open then
                emit("end f() end\n")
            end
            emit("do local f = function()\n")
            top.open, top.cseg = true, 0
        end
    end

    -- Closes the innermost block's closure before one of its tags.
    local function close_split(top)
        if top.open then
            emit("end f() end\n")
            top.open = false
        end
    end

    local function block_top(tag, name)
        local top = stack[#stack]
        if top == nil or top.tag ~= tag then
            syntax_error(line, "unexpected {% " .. name .. " %}"
                .. (top and (" inside {% " .. top.tag .. " %} opened at line " .. top.line) or ""))
        end
        return top
    end

    while pos <= len do
        if part_size > PART_SIZE and #stack == 0 then
            parts = parts + 1
            part_size = 0
            emit("return n end\nF[" .. parts .. "] = function(C, b, n)\n")
        end
        part_size = part_size + 1
        split_blocks()
        local s = str_find(source, "{[{%%#]", pos)
        if s == nil then
            text(str_sub(source, pos))
            break
        end
        text(str_sub(source, pos, s - 1))
        local opener = str_sub(source, s, s + 1)
        if opener == "{#" then
            local e = str_find(source, "#}", s + 2, true)
            local nl = str_find(source, "\n", s + 2, true)
            if e == nil or (nl ~= nil and nl < e) then
                syntax_error(line, "unclosed comment (comments are one line: {# ... #})")
            end
            pos = e + 2
        else
            local third = str_sub(source, s + 2, s + 2)
            if third == "-" then
                syntax_error(line, "whitespace control '" .. opener .. "-' is not supported")
            end
            local closer = opener == "{{" and "}}" or "%}"
            local tokens, after = tokenize(source, s + 2, closer, line)
            pos = after
            local r = new_reader(tokens, line, scope, const)
            if opener == "{{" then
                if #tokens == 0 then
                    syntax_error(line, "empty {{ }}")
                end
                local v, safe = parse_value(r)
                local tok = peek(r)
                if tok ~= nil then
                    if tok.typ == "symbol" and COMPARISONS[tok.val] or tok.typ == "keyword" then
                        syntax_error(line, "expressions are not supported in {{ }}, only a value and filters")
                    end
                    syntax_error(line, "unexpected " .. describe(tok) .. " in {{ }}")
                end
                emit("n = n + 1 b[n] = " .. (safe and "tostr(" or "out(") .. v .. ")\n")
            else
                local tag = take(r)
                if tag == nil then
                    syntax_error(line, "empty {% %}")
                elseif tag.typ ~= "name" and tag.typ ~= "keyword" then
                    syntax_error(line, "expected a tag name, got " .. describe(tag))
                end
                local name = tag.val
                if name == "if" then
                    local cond = parse_condition(r, "if")
                    open_block()
                    stack[#stack + 1] = { tag = "if", line = line, state = "if" }
                    emit("if " .. cond .. " then\n")
                elseif name == "elif" then
                    local top = block_top("if", "elif")
                    if top.state == "else" then
                        syntax_error(line, "{% elif %} after {% else %}")
                    end
                    local cond = parse_condition(r, "elif")
                    close_split(top)
                    emit("elseif " .. cond .. " then\n")
                elseif name == "else" then
                    local top = block_top("if", "else")
                    if top.state == "else" then
                        syntax_error(line, "second {% else %}")
                    end
                    expect_end(r, "{% else %}")
                    top.state = "else"
                    close_split(top)
                    emit("else\n")
                elseif name == "endif" then
                    local top = block_top("if", "endif")
                    expect_end(r, "{% endif %}")
                    close_split(top)
                    stack[#stack] = nil
                    emit("end\n")
                elseif name == "for" then
                    local var = take(r)
                    if var == nil or var.typ ~= "name" then
                        syntax_error(line, "expected a loop variable name after 'for'")
                    end
                    if var.val == "forloop" or var.val == "pongo2" then
                        syntax_error(line, "'" .. var.val .. "' is a reserved name")
                    end
                    if is_sym(peek(r), ",") then
                        syntax_error(line, "for over key, value pairs is not supported")
                    end
                    if not is_kw(take(r), "in") then
                        syntax_error(line, "expected 'in' in {% for %}")
                    end
                    if peek(r) == nil then
                        syntax_error(line, "{% for %} needs a list")
                    end
                    r.for_list = true
                    local list = parse_value(r)
                    r.for_list = false
                    local tok = peek(r)
                    if tok ~= nil then
                        if tok.typ == "name" and (tok.val == "reversed" or tok.val == "sorted") then
                            syntax_error(line, "'" .. tok.val .. "' is not supported in {% for %}")
                        end
                        syntax_error(line, "unexpected " .. describe(tok) .. " in {% for %}")
                    end
                    open_block()
                    if #scope >= MAX_LOOP_DEPTH then
                        syntax_error(line, "loops nested deeper than " .. MAX_LOOP_DEPTH)
                    end
                    loops = loops + 1
                    local id = loops
                    local loop = { tag = "for", line = line, state = "body", id = id, var = var.val }
                    stack[#stack + 1] = loop
                    scope[#scope + 1] = loop
                    -- iter's last argument (does the body read the loop
                    -- variable?) is known at {% endfor %}.
                    loop.head = "do local l" .. id .. ", n" .. id .. " = iter(" .. list .. ", " .. line .. ", "
                    emit(loop.head .. "true)\n")
                    loop.at = #code
                    emit("if n" .. id .. " > 0 then for i" .. id .. " = 1, n" .. id .. " do\n"
                        .. "local v" .. id .. " = l" .. id .. "[i" .. id .. "]\n")
                elseif name == "empty" then
                    local top = block_top("for", "empty")
                    if top.state == "empty" then
                        syntax_error(line, "second {% empty %}")
                    end
                    expect_end(r, "{% empty %}")
                    top.state = "empty"
                    close_split(top)
                    emit("end else\n")
                elseif name == "endfor" then
                    local top = block_top("for", "endfor")
                    expect_end(r, "{% endfor %}")
                    code[top.at] = top.head .. tostring(top.uses_var == true) .. ")\n"
                    close_split(top)
                    if top.state == "body" then
                        emit("end end end\n")
                    else
                        emit("end end\n")
                    end
                    stack[#stack] = nil
                    scope[#scope] = nil
                else
                    syntax_error(line, "unknown tag '" .. name .. "'")
                end
            end
        end
    end

    local open = stack[#stack]
    if open ~= nil then
        syntax_error(open.line, "unclosed {% " .. open.tag .. " %}: no {% end" .. open.tag
            .. " %} before the end of the template")
    end

    emit("return n end\nreturn function(C)\nlocal b, n = {}, 0\n"
        .. "for f = 1, " .. parts .. " do n = F[f](C, b, n) end\n"
        .. "return concat(b, \"\", 1, n)\nend\n")
    return concat(code), texts, lines
end

-- Compiles a template. Returns a render function, or nil and an error
-- "chunkname:LINE: message" for syntax outside the subset.
--
-- render(ctx) returns the HTML, or nil and "chunkname:LINE: message"; it
-- never raises.
function _M.compile(source, chunkname)
    if type(source) ~= "string" then
        error("source must be a string", 2)
    end
    if chunkname ~= nil and type(chunkname) ~= "string" then
        error("chunkname must be a string", 2)
    end
    chunkname = chunkname or "template"

    local ok, lua_src, texts, lines = pcall(compile_source, source)
    if not ok then
        if type(lua_src) == "table" then
            return nil, chunkname .. ":" .. lua_src.line .. ": " .. lua_src.msg
        end
        return nil, chunkname .. ": compile: " .. tostring(lua_src)
    end

    local chunk, err = loadstring(lua_src, "=compiled")
    if chunk == nil then
        -- A LuaJIT limit (constants, locals, nesting levels, jump
        -- lengths): report it at the template line it comes from.
        err = tostring(err)
        local at, msg = str_match(err, "^compiled:(%d+): (.*)$")
        local tline = at and lines[tonumber(at)]
        if tline then
            return nil, chunkname .. ":" .. tline .. ": template too large or too deeply nested for the"
                .. " Lua renderer (LuaJIT: " .. msg .. ")"
        end
        return nil, chunkname .. ": compile: generated code does not load: " .. err
    end
    local fn = chunk(RUNTIME, texts)

    return function(ctx)
        if type(ctx) ~= "table" then
            return nil, chunkname .. ": render: context must be a table, got " .. type(ctx)
        end
        local rok, res = pcall(fn, ctx)
        if rok then
            return res
        end
        if type(res) == "table" and res.line then
            return nil, chunkname .. ":" .. res.line .. ": " .. tostring(res.msg)
        end
        return nil, chunkname .. ": render: " .. tostring(res)
    end, nil, lua_src
end

------------------------------------------------------------------------
-- Documents: JSON with [] told from {}.
------------------------------------------------------------------------

-- Replaces every empty array outside strings, "[" JSON-whitespace "]",
-- with [mark]. Returns the text and the number of replacements.
local function mark_empty_arrays(s, mark)
    local parts, np = {}, 0
    local start, pos, count = 1, 1, 0
    local instr = false
    while true do
        local i = str_find(s, instr and '["\\]' or '["%[]', pos)
        if i == nil then
            break
        end
        local c = str_byte(s, i)
        if instr then
            if c == 92 then -- backslash: skip the escaped byte
                pos = i + 2
            else
                instr = false
                pos = i + 1
            end
        elseif c == 34 then
            instr = true
            pos = i + 1
        else
            local e = str_match(s, "^%[[ \t\r\n]*%]()", i)
            if e then
                np = np + 1
                parts[np] = str_sub(s, start, i - 1)
                np = np + 1
                parts[np] = mark
                start = e
                count = count + 1
                pos = e
            else
                pos = i + 1
            end
        end
    end
    if count == 0 then
        return s, 0
    end
    parts[np + 1] = str_sub(s, start)
    return concat(parts), count
end

-- Turns every table that is exactly { sentinel } into an empty list.
-- Returns the value and how many were found.
local function unmark(v, sentinel)
    if type(v) ~= "table" then
        return v, 0
    end
    if v[1] == sentinel and v[2] == nil then
        return setmetatable({}, LIST_MT), 1
    end
    local found = 0
    for k, e in next, v do
        if type(e) == "table" then
            local r, f = unmark(e, sentinel)
            if f > 0 then
                v[k] = r
                found = found + f
            end
        end
    end
    return v, found
end

-- Sets seen[s] for every string (key or value) of v.
local function collect_strings(v, seen)
    for k, e in next, v do
        if type(k) == "string" then
            seen[k] = true
        end
        if type(e) == "string" then
            seen[e] = true
        elseif type(e) == "table" then
            collect_strings(e, seen)
        end
    end
end

-- decode parses a JSON document for render(): like cjson.decode, except
-- that an empty array is an empty list (it carries a metatable) and an
-- empty object an empty object, as in pongo2. JSON null is cjson.null.
-- Returns the value, or nil and an error.
function _M.decode(text)
    if type(text) ~= "string" then
        return nil, "decode: expected a string, got " .. type(text)
    end
    if not cjson_ok then
        return nil, "decode: lua-cjson is not available"
    end
    if not str_find(text, "%[[ \t\r\n]*%]") then
        local ok, v = pcall(cjson.decode, text)
        if not ok then
            return nil, "decode: " .. tostring(v)
        end
        return v
    end
    -- A sentinel list ["<C>detailpage.template:[]"] in place of each empty
    -- array, where <C> is a control character the text never holds (raw
    -- or escaped): then no string of the document can equal the sentinel.
    -- Duplicate keys may drop some sentinels, as they drop any value.
    local function decode_marked(json_string, sentinel)
        local ok, v = pcall(cjson.decode, (mark_empty_arrays(text, "[" .. json_string .. "]")))
        if not ok then
            return nil, "decode: " .. tostring(v)
        end
        return (unmark(v, sentinel))
    end
    for c = 1, 31 do
        local hex = str_format("%04x", c)
        if not str_find(text, str_char(c), 1, true) and not str_find(text, "\\u" .. hex, 1, true)
                and not str_find(text, "\\u" .. str_upper(hex), 1, true) then
            return decode_marked('"\\u' .. hex .. 'detailpage.template:[]"', str_char(c) .. "detailpage.template:[]")
        end
    end
    -- A document with every control character: decode it once to pick a
    -- sentinel none of its strings equals.
    local ok, v = pcall(cjson.decode, text)
    if not ok then
        return nil, "decode: " .. tostring(v)
    end
    local seen = {}
    if type(v) == "table" then
        collect_strings(v, seen)
    end
    local k = 0
    while seen["detailpage.template:[]:" .. k] do
        k = k + 1
    end
    return decode_marked('"detailpage.template:[]:' .. k .. '"', "detailpage.template:[]:" .. k)
end

-- Exposed for tests.
_M._escape = escape
_M._tostr = tostr
_M._truthy = truthy
_M._parse_float = parse_float
_M.null = NULL
_M.ORDER_ERROR = ORDER_ERROR
_M._is_list = is_list

return _M
