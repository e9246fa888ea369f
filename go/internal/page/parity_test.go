package page

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flosch/pongo2/v6"
)

// The parity test renders every document of testdata/corpus with pongo2 and
// with the Lua renderer (luajit running testdata/render.lua) and requires
// byte-identical output, recorded in testdata/golden. Documents named err-*
// must fail in both renderers.
//
//	go test ./go/internal/page/ -run Parity            # check
//	go test ./go/internal/page/ -run Parity -update    # rewrite goldens

var update = flag.Bool("update", false, "rewrite testdata/golden from the Go renderer")

const (
	templatesDir = "../../../templates"
	driver       = "testdata/render.lua"
)

// MustLuaJIT returns the luajit binary ($LUAJIT or luajit on $PATH). It
// fails the test, not skips it: parity is not optional.
func MustLuaJIT(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("LUAJIT"); p != "" {
		return p
	}
	p, err := exec.LookPath("luajit")
	if err != nil {
		tb.Fatalf("luajit not found (install luajit2 and lua-cjson): %v", err)
	}
	return p
}

// luaResult is the outcome of one run of the Lua driver.
type luaResult struct {
	out    []byte
	stderr string
	code   int // exit status: 0 ok, 1 compile error, 2 render error
}

// MustRunLua runs the Lua driver with args and returns its outcome; it
// fails the test if the driver itself could not run.
func MustRunLua(tb testing.TB, args ...string) luaResult {
	tb.Helper()
	cmd := exec.Command(MustLuaJIT(tb), append([]string{driver}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := luaResult{out: stdout.Bytes(), stderr: strings.TrimSpace(stderr.String())}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.ExitCode() <= 2:
		res.code = exitErr.ExitCode()
	default:
		tb.Fatalf("lua driver %v: %v: %s", args, err, res.stderr)
	}
	return res
}

// MustReadCorpusDoc splits a corpus document into the raw JSON of its item
// and shop; a field that is absent is nil.
func MustReadCorpusDoc(tb testing.TB, path string) (item, shop []byte) {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return doc["item"], doc["shop"]
}

func TestParityCorpus(t *testing.T) {
	r, err := New(templatesDir)
	if err != nil {
		t.Fatal(err)
	}
	tpl := filepath.Join(templatesDir, ItemTemplate)
	docs, err := filepath.Glob("testdata/corpus/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 15 {
		t.Fatalf("corpus has %d documents, want at least 15", len(docs))
	}
	for _, path := range docs {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			item, shop := MustReadCorpusDoc(t, path)
			var goOut bytes.Buffer
			goErr := r.RenderItem(&goOut, item, shop)
			lua := MustRunLua(t, tpl, path)

			if strings.HasPrefix(name, "err-") {
				if goErr == nil || lua.code != 2 {
					t.Fatalf("want both renderers to fail; go err: %v; lua exit %d: %s", goErr, lua.code, lua.stderr)
				}
				if goOut.Len() != 0 {
					t.Errorf("go wrote %d bytes despite failing", goOut.Len())
				}
				return
			}
			if goErr != nil {
				t.Fatalf("go render: %v", goErr)
			}
			if lua.code != 0 {
				t.Fatalf("lua render (exit %d): %s", lua.code, lua.stderr)
			}
			MustEqualBytes(t, "lua vs go", lua.out, goOut.Bytes())
			MustMatchGolden(t, filepath.Join("testdata/golden", name+".html"), goOut.Bytes())
		})
	}
}

// TestParityExpressions renders testdata/exprs.html, a matrix of every
// supported operator, filter and loop form over hostile values, with both
// renderers.
func TestParityExpressions(t *testing.T) {
	const tpl, doc = "testdata/exprs.html", "testdata/exprs.json"
	set := pongo2.NewSet("exprs", pongo2.MustNewLocalFileSystemLoader("testdata"))
	tmpl, err := set.FromFile(filepath.Base(tpl))
	if err != nil {
		t.Fatal(err)
	}
	item, _ := MustReadCorpusDoc(t, doc)
	itemVal, err := Decode(item)
	if err != nil {
		t.Fatal(err)
	}
	goOut, err := tmpl.ExecuteBytes(pongo2.Context{"item": itemVal})
	if err != nil {
		t.Fatalf("go render: %v", err)
	}
	lua := MustRunLua(t, tpl, doc)
	if lua.code != 0 {
		t.Fatalf("lua render (exit %d): %s", lua.code, lua.stderr)
	}
	MustEqualBytes(t, "lua vs go", lua.out, goOut)
	MustMatchGolden(t, "testdata/golden/exprs.txt", goOut)
}

// TestLuaRefusesUnsupported checks that the Lua compiler rejects syntax
// outside the subset, naming the right line.
func TestLuaRefusesUnsupported(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // expected "t.html:LINE: ..." prefix and message fragment
	}{
		{"include", "a\nb\n{% include \"x.html\" %}\n", "t.html:3: unknown tag 'include'"},
		{"unknown filter", "\n{{ a|upper }}", "t.html:2: unknown filter 'upper'"},
		{"unclosed for", "{% if a %}{% endif %}\n{% for x in xs %}\n{{ x }}\n", "t.html:2: unclosed {% for %}"},
		{"unclosed if", "{% if a %}\n\n", "t.html:1: unclosed {% if %}"},
		{"variable default arg", "x\n\n\n{{ a|default:x }}", "t.html:4: the argument of 'default'"},
		{"stray endif", "{{ a }}\n{% endif %}", "t.html:2: unexpected {% endif %}"},
		{"stray endfor in if", "{% if a %}\n{% endfor %}\n{% endif %}", "t.html:2: unexpected {% endfor %}"},
		{"stray else", "\n\n{% else %}", "t.html:3: unexpected {% else %}"},
		{"elif after else", "{% if a %}{% else %}\n{% elif b %}{% endif %}", "t.html:2: {% elif %} after {% else %}"},
		{"trim left", "\n{%- if a %}{% endif %}", "t.html:2: whitespace control"},
		{"trim right", "{{ a -}}", "t.html:1: whitespace control"},
		{"unclosed comment", "ok\n{# comment\n#}", "t.html:2: unclosed comment"},
		{"unclosed variable", "\n{{ a ", "t.html:2: unclosed '{{'"},
		{"newline in tag", "{% if a\n %}{% endif %}", "t.html:1: newline inside"},
		{"bad expression", "\n{% if a == %}{% endif %}", "t.html:2: expected a variable"},
		{"expression in output", "{{ a == b }}", "t.html:1: expressions are not supported"},
		{"not before comparison", "{% if not a == b %}{% endif %}", "t.html:1: '==' after a 'not' operand"},
		{"chained comparison", "{% if a < b < c %}{% endif %}", "t.html:1: chained comparisons"},
		{"arithmetic", "{% if a + 1 %}{% endif %}", "t.html:1: operator '+'"},
		{"in operator", "{% if a in b %}{% endif %}", "t.html:1: operator 'in'"},
		{"symbol and", "{% if a && b %}{% endif %}", "t.html:1: operator '&&'"},
		{"subscript", "{{ a[0] }}", "t.html:1: '[' is not supported"},
		{"call", "{{ a.b() }}", "t.html:1: '(' is not supported"},
		{"for pairs", "{% for k, v in m %}{% endfor %}", "t.html:1: for over key, value pairs"},
		{"for reversed", "{% for x in xs reversed %}{% endfor %}", "t.html:1: 'reversed' is not supported"},
		{"forloop outside", "{{ forloop.Counter }}", "t.html:1: forloop outside a for loop"},
		{"forloop field", "{% for x in xs %}\n{{ forloop.Revcounter }}{% endfor %}", "t.html:2: unsupported forloop field"},
		{"forloop in empty", "{% for x in xs %}{% empty %}{{ forloop.Counter }}{% endfor %}", "t.html:1: forloop inside {% empty %}"},
		{"true literal", "{% if a == true %}{% endif %}", "t.html:1: keyword 'true'"},
		{"float literal", "{% if a > 1.5 %}{% endif %}", "t.html:1: float literals"},
		{"bad escape", `{{ a|default:"\n" }}`, "t.html:1: unknown escape sequence"},
		{"verbatim", "{% verbatim %}{{ x }}{% endverbatim %}", "t.html:1: unknown tag 'verbatim'"},
		{"autoescape", "\n{% autoescape off %}{% endautoescape %}", "t.html:2: unknown tag 'autoescape'"},
		{"keyword path", "{{ a.in }}", "t.html:1: 'in' is not allowed in a variable name"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			path = filepath.Join(path, "t.html")
			if err := os.WriteFile(path, []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			res := MustRunLua(t, "-c", path)
			if res.code != 1 {
				t.Fatalf("want a compile error, got exit %d: %s", res.code, res.stderr)
			}
			if !strings.HasPrefix(res.stderr, tt.want) {
				t.Errorf("error\n got: %s\nwant prefix: %s", res.stderr, tt.want)
			}
		})
	}
}

// TestLuaAcceptsTemplates checks that the shipped templates compile in Lua
// (the Go side is checked by New).
func TestLuaAcceptsTemplates(t *testing.T) {
	for _, name := range []string{ItemTemplate, NotFoundPage, UnavailablePage} {
		t.Run(name, func(t *testing.T) {
			res := MustRunLua(t, "-c", filepath.Join(templatesDir, name))
			if res.code != 0 {
				t.Fatalf("lua compile: %s", res.stderr)
			}
		})
	}
}

// MustEqualBytes fails with the first differing line when got != want.
func MustEqualBytes(tb testing.TB, what string, got, want []byte) {
	tb.Helper()
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w []byte
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if !bytes.Equal(g, w) {
			tb.Fatalf("%s: outputs differ at line %d (%d vs %d bytes)\n got: %.300q\nwant: %.300q",
				what, i+1, len(got), len(want), g, w)
		}
	}
	tb.Fatalf("%s: outputs differ", what)
}

// MustMatchGolden compares got with a golden file, or rewrites the file
// when -update is set.
func MustMatchGolden(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run with -update to create it)", err)
	}
	MustEqualBytes(tb, "golden "+path, got, want)
}
