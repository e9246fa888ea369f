-- luacheck configuration: `luacheck lua` from the repository root.
std = "ngx_lua"
max_line_length = 120
codes = true

-- Style (not checked by luacheck): one indentation of 4 spaces.

files["lua/spec"] = { std = "+busted" }
files["go/internal/page/testdata/render.lua"] = { std = "luajit" }
