-- Unit tests for detailpage.template. Run from the repository root:
--   busted --lua=luajit lua/spec
-- Parity with pongo2 over real documents is tested from Go
-- (go/internal/page/parity_test.go).

package.path = "lua/?.lua;lua/?/init.lua;" .. package.path

local cjson = require "cjson"
local template = require "detailpage.template"

local function render(src, ctx)
    local fn, err = template.compile(src, "t.html")
    assert(fn, err)
    return fn(ctx or {})
end

local function compile_error(src)
    local fn, err = template.compile(src, "t.html")
    assert.is_nil(fn)
    return err
end

describe("detailpage.template", function()

    describe("escaping", function()
        it("escapes & < > \" ' like pongo2", function()
            assert.equal("&amp;&lt;&gt;&quot;&#39;", render("{{ s }}", { s = "&<>\"'" }))
        end)

        it("escapes each character once", function()
            assert.equal("&amp;amp;&lt;script&gt;", render("{{ s }}", { s = "&amp;<script>" }))
        end)

        it("leaves other bytes alone", function()
            local s = "中文 😀 \0 \t \r\n عربي `=/"
            assert.equal(s, render("{{ s }}", { s = s }))
        end)

        it("does not escape |safe values", function()
            assert.equal("<b>&amp;</b>", render("{{ s|safe }}", { s = "<b>&amp;</b>" }))
        end)

        it("does not escape when safe is anywhere in the chain", function()
            assert.equal("<d>", render('{{ s|safe|default:"<d>" }}', {}))
            assert.equal("<d>", render('{{ s|default:"<d>"|safe }}', {}))
        end)

        it("escapes a default literal", function()
            assert.equal("&lt;d&gt;", render('{{ s|default:"<d>" }}', {}))
        end)

        it("copies text outside tags as is", function()
            local src = "<p class=\"x\">'&amp;' }} %} #}</p>\n"
            assert.equal(src, render(src))
        end)
    end)

    describe("printing", function()
        it("prints nil, missing and null as empty", function()
            assert.equal("[][][]", render("[{{ a }}][{{ b.c.d }}][{{ n }}]", { n = cjson.null }))
        end)

        it("prints booleans as True / False", function()
            assert.equal("True False", render("{{ t }} {{ f }}", { t = true, f = false }))
        end)

        it("prints integral numbers as digits", function()
            assert.equal("0 0 42 -7 9007199254740992 123456789012345680",
                render("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }} {{ f }}",
                    { a = 0, b = -0.0, c = 42, d = -7, e = 2 ^ 53, f = 123456789012345678 }))
        end)

        it("prints other numbers with %f, ties to even", function()
            assert.equal("2.500000 0.007812 0.023438 -0.000000 10000000000000000000.000000",
                render("{{ a }} {{ b }} {{ c }} {{ d }} {{ e }}",
                    { a = 2.5, b = 0.0078125, c = 0.0234375, d = -1e-9, e = 1e19 }))
        end)

        it("prints lists and objects as Go type names", function()
            assert.equal("<[]interface {} Value> <map[string]interface {} Value>",
                render("{{ l|safe }} {{ m|safe }}", { l = { 1 }, m = { a = 1 } }))
        end)

        it("prints string literals and integers", function()
            assert.equal("a&quot;b\\ 7", render([[{{ "a\"b\\" }} {{ 7 }}]]))
        end)
    end)

    describe("paths", function()
        it("follows keys and list indexes", function()
            local ctx = { item = { images = { { url = "/a.jpg" }, { url = "/b.jpg" } } } }
            assert.equal("/a.jpg /b.jpg []",
                render("{{ item.images.0.url }} {{ item.images.1.url }} [{{ item.images.2.url }}]", ctx))
        end)

        it("indexes a string by byte, as Go does", function()
            assert.equal("104 []", render("{{ s.0 }} [{{ s.9 }}]", { s = "hi" }))
        end)

        it("stops at nil without error", function()
            assert.equal("", render("{{ a.b.c.0.d }}", { a = { b = cjson.null } }))
        end)
    end)

    describe("truthiness", function()
        local cases = {
            { "nil", nil, "F" }, { "null", cjson.null, "F" }, { "false", false, "F" }, { "true", true, "T" },
            { "0", 0, "F" }, { "-0.0", -0.0, "F" }, { "1", 1, "T" }, { "0.5", 0.5, "T" },
            { "empty string", "", "F" }, { "string 0", "0", "T" }, { "space", " ", "T" },
            { "empty table", {}, "F" }, { "list", { 0 }, "T" }, { "object", { a = false }, "T" },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                assert.equal(c[3], render("{% if v %}T{% else %}F{% endif %}", { v = c[2] }))
                local negated = c[3] == "T" and "F" or "T"
                assert.equal(negated, render("{% if not v %}T{% else %}F{% endif %}", { v = c[2] }))
            end)
        end
    end)

    describe("default", function()
        it("replaces false values only", function()
            local src = '{{ v|default:"d" }}'
            assert.equal("d", render(src, {}))
            assert.equal("d", render(src, { v = "" }))
            assert.equal("d", render(src, { v = 0 }))
            assert.equal("d", render(src, { v = false }))
            assert.equal("d", render(src, { v = {} }))
            assert.equal("d", render(src, { v = cjson.null }))
            assert.equal("x", render(src, { v = "x" }))
            assert.equal("True", render(src, { v = true }))
            assert.equal("-1", render(src, { v = -1 }))
        end)

        it("takes an integer literal and chains", function()
            assert.equal("0", render('{{ v|default:0 }}', {}))
            assert.equal("5", render('{{ v|default:""|default:5 }}', {}))
        end)
    end)

    describe("for", function()
        it("loops over a list with forloop fields", function()
            local src = "{% for x in xs %}{{ forloop.Counter }}/{{ forloop.Counter0 }}/"
                .. "{{ forloop.First }}/{{ forloop.Last }}={{ x }};{% endfor %}"
            assert.equal("1/0/True/False=a;2/1/False/False=;3/2/False/True=c;",
                render(src, { xs = { "a", cjson.null, "c" } }))
        end)

        it("runs empty for nil, missing, empty, numbers and booleans", function()
            local src = "{% for x in xs %}{{ x }}{% empty %}E{% endfor %}"
            assert.equal("E", render(src, {}))
            assert.equal("E", render(src, { xs = cjson.null }))
            assert.equal("E", render(src, { xs = {} }))
            assert.equal("E", render(src, { xs = "" }))
            assert.equal("E", render(src, { xs = 3 }))
            assert.equal("E", render(src, { xs = true }))
        end)

        it("loops over the bytes of a string", function()
            assert.equal("a,&lt;,", render("{% for c in s %}{{ c }},{% endfor %}", { s = "a<" }))
        end)

        it("loops over the key of a one-key object, as pongo2", function()
            assert.equal("1a;", render("{% for k in m %}{{ forloop.Counter }}{{ k }};{% endfor %}",
                { m = { a = { 1 } } }))
        end)

        it("loops over a larger object when the body does not read the key", function()
            assert.equal("1F2F3T", render("{% for k in m %}{{ forloop.Counter }}{{ forloop.Last }}"
                .. "{% endfor %}", { m = { a = 1, b = 2, c = 3 } }):gsub("True", "T"):gsub("False", "F"))
        end)

        it("refuses a larger object when the body reads the key (pongo2's order is random)", function()
            local html, err = render("{% for k in m %}\n{{ k }}{% endfor %}", { m = { a = 1, b = 2 } })
            assert.is_nil(html)
            assert.equal("t.html:1: " .. template.ORDER_ERROR .. " (2 keys)", err)
            local _, err2 = render("{% for k in m %}{% for x in k %}{% endfor %}{% endfor %}", { m = { a = 1, b = 2 } })
            assert.equal("t.html:1: " .. template.ORDER_ERROR .. " (2 keys)", err2)
        end)

        it("gives forloop in a for tag's list the new loop's fresh values, as pongo2", function()
            -- pongo2 sets up the new forloop (Counter 0, Counter0 0, First
            -- true, Last false) before it evaluates the list.
            assert.equal("}}", render('{% for a in "xy" %}{% for b in forloop.Counter0|default:"e" %}}'
                .. "{% endfor %}{% endfor %}"))
            assert.equal("ab", render('{% for a in "x" %}{% for b in forloop.Last|default:"ab" %}{{ b }}'
                .. "{% endfor %}{% endfor %}"))
            assert.equal("cd", render('{% for b in forloop.Counter|default:"cd" %}{{ b }}{% endfor %}'))
            assert.equal("E", render("{% for b in forloop.First %}x{% empty %}E{% endfor %}"))
        end)

        it("nests, shadows and restores names", function()
            local src = "{% for x in xs %}{% for x in x %}{{ forloop.Counter }}{{ x }}{% endfor %}"
                .. "{{ forloop.Counter }}|{% endfor %}{{ x }}"
            assert.equal("1a2b1|1c2|", render(src, { xs = { { "a", "b" }, { "c" } } }))
            assert.equal("1a2b1|1c2|top", render(src, { xs = { { "a", "b" }, { "c" } }, x = "top" }))
        end)

        it("sees the outer variable in empty", function()
            local src = "{% for x in xs %}{% for x in ys %}{% empty %}{{ x }}{% endfor %}{% endfor %}"
            assert.equal("12", render(src, { xs = { 1, 2 } }))
        end)
    end)

    describe("if", function()
        local src = '{% if v == 1 %}one{% elif v == "x" %}x{% elif not v %}none{% elif v > 100 %}big'
            .. '{% else %}other{% endif %}'
        it("takes the first true branch", function()
            assert.equal("one", render(src, { v = 1 }))
            assert.equal("x", render(src, { v = "x" }))
            assert.equal("none", render(src, {}))
            assert.equal("none", render(src, { v = "" }))
            assert.equal("big", render(src, { v = 101 }))
            assert.equal("big", render(src, { v = "101" }))
            assert.equal("other", render(src, { v = 5 }))
        end)

        it("groups and / or to the right, like pongo2", function()
            -- pongo2: `a and b or c` is `a and (b or c)`
            local s = "{% if a and b or c %}T{% else %}F{% endif %}"
            assert.equal("F", render(s, { a = false, b = false, c = true }))
            assert.equal("T", render("{% if (a and b) or c %}T{% else %}F{% endif %}", { c = true }))
        end)

        it("compares integers by value and others by type and value", function()
            local s = "{% if a == b %}T{% else %}F{% endif %}"
            assert.equal("T", render(s, { a = 1, b = 1 }))
            assert.equal("F", render(s, { a = 1, b = "1" }))
            assert.equal("F", render(s, { a = 1, b = 1.5 }))
            assert.equal("T", render(s, { a = 1.5, b = 1.5 }))
            assert.equal("T", render(s, {}))
            assert.equal("T", render(s, { a = cjson.null }))
            assert.equal("F", render(s, { a = "", b = cjson.null }))
            assert.equal("F", render(s, { a = false, b = 0 }))
        end)

        it("orders as integers or floats, parsing strings like Go", function()
            local s = "{% if a < b %}T{% else %}F{% endif %}"
            assert.equal("T", render(s, { a = "5", b = 10 }))
            assert.equal("F", render(s, { a = "5.9", b = 5 }))   -- int("5.9") == 5
            assert.equal("T", render(s, { a = "5.9", b = 5.95 })) -- float compare
            assert.equal("T", render(s, { a = " 5", b = 1 }))     -- not a number: 0
            assert.equal("F", render(s, { a = "1e3", b = 999 }))
            assert.equal("T", render(s, { a = "1_0", b = 11 }))
            assert.equal("T", render(s, { a = "1e30", b = 0 }))   -- int(1e30): MinInt64
            assert.equal("T", render(s, { a = true, b = 1 }))     -- bool: 0
        end)

        it("returns an error for comparing two lists", function()
            local html, err = render("{% if a == b %}{% endif %}", { a = { 1 }, b = { 1 } })
            assert.is_nil(html)
            assert.matches("^t%.html:1: can't compare", err)
        end)
    end)

    describe("comments", function()
        it("drops one-line comments", function()
            assert.equal("ab", render("a{# {{ x }} {% if %} #}b"))
        end)
    end)

    describe("compile errors", function()
        local cases = {
            { "{% include 'x' %}", "t.html:1: unknown tag 'include'" },
            { "\n\n{{ a|upper }}", "t.html:3: unknown filter 'upper'" },
            { "\n{% for x in xs %}\n", "t.html:2: unclosed {% for %}" },
            { "{% if a %}\n{% else %}\n", "t.html:1: unclosed {% if %}" },
            { "\n{% endif %}", "t.html:2: unexpected {% endif %}" },
            { "{% if a %}\n{% endfor %}", "t.html:2: unexpected {% endfor %}" },
            { "{% for x in xs %}{% else %}{% endfor %}", "t.html:1: unexpected {% else %}" },
            { "{{ a|default:b }}", "t.html:1: the argument of 'default'" },
            { "{{ a|default }}", "t.html:1: filter 'default' needs an argument" },
            { "\n\n\n{% if %}{% endif %}", "t.html:4: {% if %} needs a condition" },
            { "{% if a == %}{% endif %}", "t.html:1: expected a variable" },
            { "{% if a b %}{% endif %}", "t.html:1: unexpected 'b'" },
            { "{% if (a %}{% endif %}", "t.html:1: expected ')'" },
            { "{%- if a %}{% endif %}", "t.html:1: whitespace control" },
            { "{{ a -}}", "t.html:1: whitespace control" },
            { "{# a\n#}", "t.html:1: unclosed comment" },
            { "x\n{{ a", "t.html:2: unclosed '{{'" },
            { "{{ a\n}}", "t.html:1: newline inside" },
            { "{{ 'it\\'s' }}", "t.html:1: unknown escape sequence" },
            { "{{ }}", "t.html:1: empty {{ }}" },
            { "{% %}", "t.html:1: empty {% %}" },
            { "{{ a @ }}", "t.html:1: unexpected character '@'" },
            { "{% if not a == 1 %}{% endif %}", "t.html:1: '==' after a 'not' operand" },
            { "{% if not not a %}{% endif %}", "t.html:1: 'not not'" },
            { "{% if 1 < a < 3 %}{% endif %}", "t.html:1: chained comparisons" },
            { "{% if a %}{% else %}{% else %}{% endif %}", "t.html:1: second {% else %}" },
            { "{{ forloop.Counter }}", "t.html:1: forloop outside a for loop" },
            { "{% for forloop in xs %}{% endfor %}", "t.html:1: 'forloop' is a reserved name" },
            { "{{ pongo2.version }}", "t.html:1: 'pongo2' is a reserved name" },
            { "{{ a.0b }}", "t.html:1: malformed number" },
            { "{{ 9007199254740993 }}", "t.html:1: integer 9007199254740993 is larger than 2^53" },
            { "\n{% if a == 00000000000000000000009007199254740993 %}{% endif %}", "t.html:2: integer" },
            { "{{ a.9223372036854775808 }}", "t.html:1: index 9223372036854775808 is out of range" },
        }
        for _, c in ipairs(cases) do
            it(c[1], function()
                local err = compile_error(c[1])
                assert.equal(c[2], err:sub(1, #c[2]))
            end)
        end

        it("raises for caller bugs", function()
            assert.has_error(function() template.compile(nil) end, "source must be a string")
            assert.has_error(function() template.compile("", 1) end, "chunkname must be a string")
        end)

        it("defaults the chunk name", function()
            local _, err = template.compile("{% x %}")
            assert.equal("template:1: unknown tag 'x'", err)
        end)
    end)

    describe("runtime errors", function()
        it("returns nil, err with the line instead of raising", function()
            local fn = assert(template.compile("ok\n{{ item.name.first }}", "t.html"))
            local html, err = fn({ item = { name = "str" } })
            assert.is_nil(html)
            assert.equal("t.html:2: can't access field 'first' on type string", err)
        end)

        it("reports a key on a list and an index on an object", function()
            local _, err1 = render("{{ a.b }}", { a = { 1 } })
            assert.equal("t.html:1: can't access field 'b' on type slice", err1)
            local _, err2 = render("{{ a.0 }}", { a = { b = 1 } })
            assert.equal("t.html:1: can't access index 0 on type map", err2)
        end)

        it("matches pongo2 on empty lists and objects from decode", function()
            local item = template.decode('{"l":[],"o":{},"n":[[], {}, [ \n ]],"s":"[]"}')
            local ctx = { item = item }
            local _, err1 = render("{{ item.l.a }}", ctx)
            assert.equal("t.html:1: can't access field 'a' on type slice", err1)
            local _, err2 = render("\n{{ item.o.0 }}", ctx)
            assert.equal("t.html:2: can't access index 0 on type map", err2)
            assert.equal("[][]", render("[{{ item.l.0 }}][{{ item.o.a }}]", ctx))
            assert.equal("<[]interface {} Value>|<map[string]interface {} Value>|<[]interface {} Value>|[]",
                render("{{ item.l }}|{{ item.o }}|{{ item.n.2 }}|{{ item.s }}", ctx))
            assert.equal("FF", render("{% if item.l %}T{% else %}F{% endif %}"
                .. "{% if item.o %}T{% else %}F{% endif %}", ctx))
            assert.equal("EE", render("{% for x in item.l %}x{% empty %}E{% endfor %}"
                .. "{% for x in item.o %}x{% empty %}E{% endfor %}", ctx))
            -- A list is never equal to an object (Go: different types);
            -- two lists or two objects cannot be compared.
            assert.equal("ne", render("{% if item.l == item.o %}eq{% else %}ne{% endif %}", ctx))
            assert.is_nil(render("{% if item.l == item.n.0 %}{% endif %}", ctx))
            assert.is_nil(render("{% if item.o == item.n.1 %}{% endif %}", ctx))
        end)

        it("fails on item.html for an empty list where an object is expected, as pongo2", function()
            local f = assert(io.open("templates/item.html", "rb"))
            local fn = assert(template.compile(f:read("*a"), "item.html"))
            f:close()
            local html, err = fn({ item = template.decode("[]") })
            assert.is_nil(html)
            assert.matches("on type slice", err)
            html, err = fn({ item = template.decode('{"name":"x","images":[[]]}') })
            assert.is_nil(html)
            assert.matches("on type slice", err)
            assert.truthy(fn({ item = template.decode('{"name":"x","images":[{}]}') }))
        end)

        it("returns nil, err for a bad context", function()
            local fn = assert(template.compile("x"))
            local html, err = fn("nope")
            assert.is_nil(html)
            assert.matches("context must be a table", err)
        end)

        it("survives a context whose lookups raise", function()
            local fn = assert(template.compile("{{ a.b }}"))
            local ctx = setmetatable({}, { __index = function() error("boom") end })
            local html, err = fn(ctx)
            assert.is_nil(html)
            assert.matches("boom", err)
        end)
    end)

    describe("decode", function()
        it("tells empty lists from empty objects", function()
            local v = assert(template.decode('[[],{},[ \t\r\n],{"a":[]},"[]",["[]"],[1],{"b":{}}]'))
            assert.is_true(template._is_list(v))
            assert.is_true(template._is_list(v[1]))
            assert.is_false(template._is_list(v[2]))
            assert.is_true(template._is_list(v[3]))
            assert.is_true(template._is_list(v[4].a))
            assert.equal("[]", v[5])
            assert.same({ "[]" }, v[6])
            assert.is_true(template._is_list(v[7]))
            assert.is_false(template._is_list(v[8].b))
            assert.is_false(template._is_list(assert(template.decode("{}"))))
            assert.is_true(template._is_list(assert(template.decode(" [ ] "))))
        end)

        it("leaves strings that look like arrays alone, escapes included", function()
            local v = assert(template.decode('{"a":"x\\"[]","b":"\\\\","c":[]}'))
            assert.equal('x"[]', v.a)
            assert.equal("\\", v.b)
            assert.is_true(template._is_list(v.c))
        end)

        it("is not fooled by a document holding its sentinel", function()
            local v = assert(template.decode('{"a":["\\u0001detailpage.template:[]:1"],"b":[]}'))
            assert.same({ "\1detailpage.template:[]:1" }, v.a)
            assert.is_true(template._is_list(v.b))
            assert.equal(0, #v.b)
        end)

        it("takes duplicate keys like any decoder: the last one wins", function()
            local v = assert(template.decode('{"c":[],"c":null,"d":null,"d":[]}'))
            assert.equal(template.null, v.c)
            assert.is_true(template._is_list(v.d))
        end)

        it("marks empty arrays even in a document holding every control character", function()
            local all = {}
            for c = 1, 31 do
                all[#all + 1] = string.format("\\u%04x", c)
            end
            local text = '{"s":"' .. table.concat(all) .. '","l":[],"o":{},'
                .. '"t":["detailpage.template:[]:0"]}'
            local v = assert(template.decode(text))
            assert.is_true(template._is_list(v.l))
            assert.is_false(template._is_list(v.o))
            assert.same({ "detailpage.template:[]:0" }, v.t)
            assert.equal(31, #v.s)
        end)

        it("keeps null and reports bad JSON", function()
            assert.equal(template.null, template.decode("null"))
            local v, err = template.decode("[1,")
            assert.is_nil(v)
            assert.matches("^decode: ", err)
        end)
    end)

    describe("limits", function()
        it("renders a template too large for one Lua function", function()
            local parts = {}
            for i = 1, 30000 do
                parts[i] = "{% if item.x" .. i .. " %}y{% endif %}{{ item.a" .. i .. "|default:" .. i .. " }}\n"
            end
            local html = assert(render(table.concat(parts), { item = { x7 = true } }))
            assert.equal("1\n2\n", html:sub(1, 4))
            assert.truthy(html:find("\n6\ny7\n8\n", 1, true))
            assert.truthy(html:find("\n30000\n$"))
        end)

        it("refuses nesting beyond its limits at the template's line", function()
            local s = "ok\n\n"
            for i = 1, 300 do
                s = s .. "{% if item.x" .. i .. " %}\n"
            end
            s = s .. string.rep("{% endif %}", 300)
            assert.equal("t.html:53: blocks ({% if %} and {% for %}) nested deeper than 50", compile_error(s))
            s = "\n" .. string.rep("{% for a in b %}\n", 21) .. string.rep("{% endfor %}", 21)
            assert.equal("t.html:22: loops nested deeper than 20", compile_error(s))
            s = "\n{% if " .. string.rep("a or ", 41) .. "a %}{% endif %}"
            assert.equal("t.html:2: expression nested deeper than 40 levels of and / or / not / parentheses",
                compile_error(s))
            -- at the limits it compiles
            assert.truthy(template.compile(string.rep("{% for a in b %}", 20) .. string.rep("{% if a %}", 29)
                .. "{% if " .. string.rep("(a or ", 20) .. "a" .. string.rep(")", 20) .. " %}{% endif %}"
                .. string.rep("{% endif %}", 29) .. string.rep("{% endfor %}", 20)))
        end)

        it("renders block bodies too long for LuaJIT's jumps (they go on in closures)", function()
            local body = {}
            for i = 1, 6000 do
                body[i] = "{% if item.x" .. i .. " %}y{% endif %}{{ item.a|default:" .. i .. " }}\n"
            end
            local src = "{% for v in item.l %}{% if v %}" .. table.concat(body) .. "{% elif v == 0 %}zero"
                .. "{% else %}{{ forloop.Counter }}-{{ v }}{% endif %}|{% empty %}E{% endfor %}"
            local html = assert(render(src, { item = { l = { 1, 0, false }, x5 = true } }))
            local first = html:sub(1, html:find("|", 1, true))
            assert.equal("1\n2\n3\n4\ny5\n", first:sub(1, 11))
            assert.truthy(first:find("\n6000\n|$"))
            assert.equal("zero|3-False|", html:sub(#first + 1))
            assert.equal("E", render(src, { item = {} }))
        end)

        it("takes long paths and filter chains", function()
            local p = "item" .. string.rep(".a", 300)
            assert.equal("", render("{{ " .. p .. " }}", {}))
            assert.equal("d", render("{{ x" .. string.rep('|default:""', 300) .. '|default:"d" }}', {}))
        end)
    end)

    describe("the shipped template", function()
        it("compiles and renders a minimal document", function()
            local f = assert(io.open("templates/item.html", "rb"))
            local src = f:read("*a")
            f:close()
            local fn = assert(template.compile(src, "item.html"))
            local html = assert(fn({ item = { id = 1, name = "<x>" } }))
            assert.truthy(html:find("<h1 dir=\"auto\">&lt;x&gt;</h1>", 1, true))
            assert.truthy(html:find("店铺信息暂不可用", 1, true))
        end)
    end)
end)
