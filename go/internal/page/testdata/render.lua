-- Test driver for the Lua renderer, run by parity_test.go:
--
--   luajit render.lua TEMPLATE DOC.json   render; HTML on stdout
--   luajit render.lua -c TEMPLATE         compile only
--   luajit render.lua -batch              many cases over stdin/stdout
--
-- DOC.json is {"item": ..., "shop": ...}. On failure the error goes to
-- stderr and the exit status is 1 (compile) or 2 (render).
--
-- -batch (the differential fuzz test, fuzz_test.go) reads cases until
-- end of input, each "TLEN DLEN\n" then TLEN bytes of template and DLEN
-- bytes of DOC.json (DLEN 0: compile only), and answers each with
-- "STATUS LEN\n" then LEN bytes: the HTML (status 0) or the error
-- (1 compile, 2 render, 3 bad document).

local script_dir = (arg[0]:match("^(.*)/[^/]*$") or ".")
package.path = script_dir .. "/../../../../lua/?.lua;" .. package.path

local template = require "detailpage.template"

local function read(path)
    local f, err = io.open(path, "rb")
    if not f then
        io.stderr:write(err, "\n")
        os.exit(3)
    end
    local data = f:read("*a")
    f:close()
    return data
end

-- Renders one case; returns the status and the HTML or the error.
local function run(src, name, doc_json)
    local render, err = template.compile(src, name)
    if not render then
        return 1, err
    end
    if doc_json == nil then
        return 0, ""
    end
    -- template.decode, as the app tier: an empty [] is a list, {} an object.
    local doc, derr = template.decode(doc_json)
    if doc == nil then
        return 3, derr
    end
    if type(doc) ~= "table" then
        doc = {}
    end
    local html, rerr = render({ item = doc.item, shop = doc.shop })
    if not html then
        return 2, rerr
    end
    return 0, html
end

if arg[1] == "-batch" then
    while true do
        local head = io.read("*l")
        if head == nil then
            os.exit(0)
        end
        local tlen, dlen = head:match("^(%d+) (%d+)$")
        if not tlen then
            io.stderr:write("bad batch header: ", head, "\n")
            os.exit(3)
        end
        local src = io.read(tonumber(tlen)) or ""
        local doc_json = tonumber(dlen) > 0 and io.read(tonumber(dlen)) or nil
        local status, body = run(src, "t.html", doc_json)
        io.write(status, " ", #body, "\n", body)
        io.flush()
    end
end

local compile_only = arg[1] == "-c"
local tpl_path = compile_only and arg[2] or arg[1]
local doc_path = not compile_only and arg[2] or nil
if tpl_path == nil or (not compile_only and doc_path == nil) then
    io.stderr:write("usage: render.lua TEMPLATE DOC.json | render.lua -c TEMPLATE\n")
    os.exit(3)
end

local status, body = run(read(tpl_path), tpl_path:match("([^/]*)$"), doc_path and read(doc_path))
if status ~= 0 then
    io.stderr:write(body, "\n")
    os.exit(status)
end
io.write(body)
