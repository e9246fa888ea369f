-- Test driver for the Lua renderer, run by parity_test.go:
--
--   luajit render.lua TEMPLATE DOC.json   render; HTML on stdout
--   luajit render.lua -c TEMPLATE         compile only
--
-- DOC.json is {"item": ..., "shop": ...}. On failure the error goes to
-- stderr and the exit status is 1 (compile) or 2 (render).

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

local compile_only = arg[1] == "-c"
local tpl_path = compile_only and arg[2] or arg[1]
local doc_path = not compile_only and arg[2] or nil
if tpl_path == nil or (not compile_only and doc_path == nil) then
    io.stderr:write("usage: render.lua TEMPLATE DOC.json | render.lua -c TEMPLATE\n")
    os.exit(3)
end

local name = tpl_path:match("([^/]*)$")
local render, err = template.compile(read(tpl_path), name)
if not render then
    io.stderr:write(err, "\n")
    os.exit(1)
end
if compile_only then
    os.exit(0)
end

-- template.decode, as the app tier: an empty [] is a list, {} an object.
local doc, derr = template.decode(read(doc_path))
if doc == nil then
    io.stderr:write(derr, "\n")
    os.exit(3)
end
if doc == template.null then
    doc = {}
end
local html, rerr = render({ item = doc.item, shop = doc.shop })
if not html then
    io.stderr:write(rerr, "\n")
    os.exit(2)
end
io.write(html)
