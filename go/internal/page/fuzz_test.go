package page

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flosch/pongo2/v6"
)

// The differential fuzz test: random templates strictly inside the subset
// of docs/template.md over hostile random documents, rendered by pongo2 and
// by the Lua renderer (one luajit running testdata/render.lua -batch), must
// give the same bytes or both fail. Templates just outside the subset must
// be refused by the Lua compiler at the line of the offending tag. A
// failing case is shrunk to a minimal one and, with -parity.out, written as
// a reproducer (t.html + doc.json) that TestParityFuzzReproducers replays
// from testdata/fuzz on every run.
//
//	go test ./go/internal/page/ -run ParityFuzz                   # fixed seed, bounded
//	make fuzz                                                      # random seed, minutes
//	go test ./go/internal/page/ -run ParityFuzz -parity.seed=N -parity.n=100000

var (
	paritySeed = flag.Int64("parity.seed", 1, "seed of TestParityFuzz; 0 picks one at random (printed)")
	parityN    = flag.Int("parity.n", 1000, "random cases of TestParityFuzz (in-subset renders and refusals)")
	parityTime = flag.Duration("parity.duration", 0, "run TestParityFuzz for this long instead of -parity.n cases")
	parityOut  = flag.String("parity.out", "", "write minimised reproducers of failures into this directory")
)

const reproDir = "testdata/fuzz"

func TestParityFuzz(t *testing.T) {
	seed := *paritySeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun: go test ./go/internal/page/ -run 'TestParityFuzz$' -parity.seed=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))
	lua := startLuaBatch(t)
	item := mustReadFile(t, filepath.Join(templatesDir, ItemTemplate))

	start := time.Now()
	var stats fuzzStats
	failures := 0
	for i := 0; ; i++ {
		if *parityTime > 0 {
			if time.Since(start) > *parityTime {
				break
			}
		} else if i >= *parityN {
			break
		}
		g := &gen{rng: rng}
		var fail string
		switch k := rng.Intn(20); {
		case k < 2: // the real page over a hostile page document
			c := fuzzCase{raw: item, doc: g.pageDoc()}
			if fail = checkRender(t, lua, c, &stats); fail != "" {
				failures++
				report(t, lua, shrink(t, lua, c, fail, &stats))
			}
			continue
		case k < 5: // just outside the subset
			src, line, what := g.outside()
			stats.refusals++
			if fail = checkRefusal(t, lua, src, line); fail != "" {
				failures++
				t.Errorf("refusal case %q (%s): %s\ntemplate:\n%s", what, src, fail, src)
			}
			continue
		default:
			big := rng.Intn(40) == 0
			c := fuzzCase{tpl: g.template(big), doc: g.doc()}
			if g.chance(4) {
				c.space = g.pick("\t", "  ", " \t ", "\r ", " \r")
			}
			if fail = checkRender(t, lua, c, &stats); fail != "" {
				failures++
				report(t, lua, shrink(t, lua, c, fail, &stats))
			}
		}
		if failures >= 5 {
			t.Errorf("stopping after %d failures", failures)
			break
		}
	}
	t.Logf("%d render cases (%d identical pages, %d failed in both, %d deferred to pongo2: for over an object "+
		"with several keys reading its key), %d refusal cases, in %s",
		stats.renders, stats.same, stats.bothFail, stats.deferred, stats.refusals, time.Since(start).Round(time.Millisecond))
}

// TestParityFuzzReproducers replays the reproducers of testdata/fuzz: each
// directory holds t.html (or item.html: the real template) and doc.json.
func TestParityFuzzReproducers(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(reproDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatalf("no reproducers in %s", reproDir)
	}
	lua := startLuaBatch(t)
	var stats fuzzStats
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			var c fuzzCase
			if _, err := os.Stat(filepath.Join(dir, "item.html")); err == nil {
				c.raw = mustReadFile(t, filepath.Join(templatesDir, ItemTemplate))
			} else {
				c.raw = mustReadFile(t, filepath.Join(dir, "t.html"))
			}
			c.rawDoc = mustReadFile(t, filepath.Join(dir, "doc.json"))
			if fail := checkRender(t, lua, c, &stats); fail != "" {
				t.Errorf("%s\ntemplate:\n%s\ndocument: %s", fail, c.source(), c.docJSON())
			}
		})
	}
}

func mustReadFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// ---------------------------------------------------------------------------
// The two engines.

type fuzzStats struct {
	renders, same, bothFail, deferred, refusals, shrinkRuns int
}

// luaBatch is one luajit running render.lua -batch.
type luaBatch struct {
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *bytes.Buffer
	cmd    *exec.Cmd
}

func startLuaBatch(tb testing.TB) *luaBatch {
	tb.Helper()
	cmd := exec.Command(MustLuaJIT(tb), driver, "-batch")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start luajit: %v", err)
	}
	l := &luaBatch{in: in, out: bufio.NewReaderSize(out, 1<<16), stderr: &stderr, cmd: cmd}
	tb.Cleanup(func() {
		in.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("luajit -batch: %v: %s", err, stderr.String())
		}
	})
	return l
}

// Outcomes, as render.lua -batch numbers them.
const (
	statusOK = iota
	statusCompile
	statusRender
	statusDocument
)

// run renders one case (compile only when doc is empty).
func (l *luaBatch) run(tb testing.TB, tpl, doc string) (int, string) {
	tb.Helper()
	if _, err := fmt.Fprintf(l.in, "%d %d\n%s%s", len(tpl), len(doc), tpl, doc); err != nil {
		tb.Fatalf("luajit -batch: write: %v: %s", err, l.stderr.String())
	}
	head, err := l.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("luajit -batch: read: %v: %s", err, l.stderr.String())
	}
	var status, n int
	if _, err := fmt.Sscanf(head, "%d %d\n", &status, &n); err != nil {
		tb.Fatalf("luajit -batch: header %q: %v", head, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(l.out, body); err != nil {
		tb.Fatalf("luajit -batch: read body: %v: %s", err, l.stderr.String())
	}
	return status, string(body)
}

var fuzzSet = pongo2.NewSet("fuzz", pongo2.MustNewLocalFileSystemLoader("testdata"))

// renderGo renders one case with pongo2, as Renderer.RenderItem does.
func renderGo(tpl, doc string) (int, string) {
	t, err := fuzzSet.FromString(tpl)
	if err != nil {
		return statusCompile, err.Error()
	}
	var parts map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &parts); err != nil {
		return statusDocument, err.Error()
	}
	ctx, err := itemContext(parts["item"], parts["shop"])
	if err != nil {
		return statusDocument, err.Error()
	}
	var buf bytes.Buffer
	if err := execute(t, ctx, &buf); err != nil {
		return statusRender, err.Error()
	}
	return statusOK, buf.String()
}

// The Lua renderer's error for a loop over an object of several keys whose
// body reads the key (template.ORDER_ERROR): pongo2 walks a Go map in
// random order, which no renderer can match, so the app tier hands such a
// page to pongo2 (the direct-data service). It is the only accepted
// difference, and only when the document has such an object.
const orderError = "for over an object with several keys: pongo2's order is random"

// checkRender renders an in-subset case with both engines; it returns ""
// when they agree, else what differs (the first words classify it, for
// shrinking).
func checkRender(tb testing.TB, lua *luaBatch, c fuzzCase, stats *fuzzStats) string {
	tb.Helper()
	src, doc := c.source(), c.docJSON()
	stats.renders++
	ls, lout := lua.run(tb, src, doc)
	gs, gout := renderGo(src, doc)
	switch {
	case ls == statusCompile:
		return "lua refuses an in-subset template: " + lout
	case gs == statusCompile:
		return "pongo2 refuses the template: " + gout
	case ls == statusDocument || gs == statusDocument:
		return fmt.Sprintf("document not decoded: lua %d %s; go %d %s", ls, lout, gs, gout)
	case ls == statusOK && gs == statusOK:
		if lout != gout {
			return fmt.Sprintf("outputs differ:\n lua: %.400q\n  go: %.400q", lout, gout)
		}
		stats.same++
		return ""
	case ls == statusRender && gs == statusRender:
		stats.bothFail++
		return ""
	case ls == statusRender && gs == statusOK && strings.Contains(lout, orderError) && hasObjectOf(doc, lout):
		stats.deferred++
		return ""
	case ls == statusRender:
		return fmt.Sprintf("lua fails, go renders: lua: %s\n  go: %.400q", lout, gout)
	default:
		return fmt.Sprintf("go fails, lua renders: go: %s\n lua: %.400q", gout, lout)
	}
}

var keysRe = regexp.MustCompile(`\((\d+) keys\)`)

// hasObjectOf reports whether the document holds an object of as many keys
// as the Lua error "… (N keys)" names: a deferral is only accepted for a
// real object of several keys, never for a list Lua took for an object.
func hasObjectOf(doc, luaErr string) bool {
	m := keysRe.FindStringSubmatch(luaErr)
	if m == nil {
		return false
	}
	v, err := Decode([]byte(doc))
	if err != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			if fmt.Sprint(len(v)) == m[1] {
				return true
			}
			for _, e := range v {
				if walk(e) {
					return true
				}
			}
		case []any:
			for _, e := range v {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	top, ok := v.(map[string]any) // {"item": …, "shop": …} itself is no template value
	if !ok {
		return false
	}
	return walk(top["item"]) || walk(top["shop"])
}

// checkRefusal requires the Lua compiler to refuse src at line.
func checkRefusal(tb testing.TB, lua *luaBatch, src string, line int) string {
	tb.Helper()
	st, msg := lua.run(tb, src, "")
	if st != statusCompile {
		return fmt.Sprintf("lua accepts it (status %d)", st)
	}
	want := fmt.Sprintf("t.html:%d: ", line)
	if !strings.HasPrefix(msg, want) || len(msg) == len(want) {
		return fmt.Sprintf("lua error %q, want it at line %d", msg, line)
	}
	return ""
}

// ---------------------------------------------------------------------------
// Cases, shrinking and reproducers.

// fuzzCase is a template (generated, or raw text such as item.html) and a
// document {"item": ..., "shop": ...} (generated, or raw JSON).
type fuzzCase struct {
	tpl    []node
	space  string // between the tokens of a tag; "" is one space
	raw    string
	doc    *jv
	rawDoc string
}

func (c fuzzCase) source() string {
	if c.tpl == nil && c.raw != "" {
		return c.raw
	}
	b := &tw{sp: c.space}
	if b.sp == "" {
		b.sp = " "
	}
	writeNodes(b, c.tpl)
	return b.String()
}

func (c fuzzCase) docJSON() string {
	if c.doc == nil {
		return c.rawDoc
	}
	var b strings.Builder
	c.doc.encode(&b)
	return b.String()
}

var digits = regexp.MustCompile(`[0-9]+`)

// kind is the class of a failure, which shrinking keeps: what differs
// and, for a refused template, the message without its numbers.
func kind(fail string) string {
	head, rest, _ := strings.Cut(fail, ":")
	if strings.HasSuffix(head, "refuses an in-subset template") || strings.HasSuffix(head, "refuses the template") {
		msg, _, _ := strings.Cut(rest, "\n")
		if i := strings.LastIndex(msg, "] "); i >= 0 { // pongo2: "[Error ... near 'x'] message"
			msg = msg[i+2:]
		} else if _, m, ok := strings.Cut(msg, ": "); ok { // lua: "t.html:LINE: message"
			msg = m
		}
		return head + ": " + digits.ReplaceAllString(msg, "N")
	}
	return head
}

// shrink greedily makes a failing case smaller while it fails the same way.
func shrink(tb testing.TB, lua *luaBatch, c fuzzCase, fail string, stats *fuzzStats) fuzzCase {
	tb.Helper()
	want := kind(fail)
	for budget := 3000; budget > 0; {
		improved := false
		var cands []fuzzCase
		if c.tpl != nil {
			for _, t := range shrinkNodes(c.tpl) {
				cands = append(cands, fuzzCase{tpl: t, space: c.space, raw: c.raw, doc: c.doc, rawDoc: c.rawDoc})
			}
		}
		if c.doc != nil {
			for _, d := range c.doc.shrinks() {
				cands = append(cands, fuzzCase{tpl: c.tpl, space: c.space, raw: c.raw, doc: d, rawDoc: c.rawDoc})
			}
		}
		for _, cand := range cands {
			if budget--; budget <= 0 {
				break
			}
			stats.shrinkRuns++
			var s fuzzStats
			if f := checkRender(tb, lua, cand, &s); f != "" && kind(f) == want {
				c, improved = cand, true
				break
			}
		}
		if !improved {
			break
		}
	}
	return c
}

// report fails the test with a (shrunk) failing case and, with
// -parity.out, writes it as a reproducer.
func report(tb testing.TB, lua *luaBatch, c fuzzCase) {
	tb.Helper()
	var s fuzzStats
	fail := checkRender(tb, lua, c, &s)
	src, doc := c.source(), c.docJSON()
	name := "t.html"
	if c.tpl == nil && c.raw != "" {
		name, src = "item.html", "the real templates/item.html\n"
	}
	where := ""
	if *parityOut != "" {
		sum := sha256.Sum256([]byte(src + "\x00" + doc))
		dir := filepath.Join(*parityOut, hex.EncodeToString(sum[:6]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		for file, data := range map[string]string{name: src, "doc.json": doc} {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
		where = "\nreproducer written to " + dir
	}
	tb.Errorf("parity: %s\n%s (%d bytes):\n%s\ndocument: %s%s", fail, name, len(src), src, doc, where)
}

// ---------------------------------------------------------------------------
// Templates: a small tree, written out as text.

// tw writes a template; sp separates the tokens inside tags.
type tw struct {
	strings.Builder
	sp string
}

type node interface{ write(*tw) }

type textNode string

type commentNode string

type outNode struct{ v *value }

type ifNode struct {
	conds  []expr
	bodies [][]node
	els    []node // nil: no {% else %}
}

type forNode struct {
	name  string
	list  *value
	body  []node
	empty []node // nil: no {% empty %}
}

// bigNode is many top-level nodes, written without shrinking each.
type bigNode []node

func (n textNode) write(b *tw)    { b.WriteString(string(n)) }
func (n commentNode) write(b *tw) { b.WriteString("{#" + string(n) + "#}") }
func (n outNode) write(b *tw)     { b.WriteString("{{" + b.sp + n.v.str(b.sp) + b.sp + "}}") }
func (n bigNode) write(b *tw)     { writeNodes(b, n) }

func (n *ifNode) write(b *tw) {
	for i, c := range n.conds {
		tag := "if"
		if i > 0 {
			tag = "elif"
		}
		b.WriteString("{%" + b.sp + tag + b.sp + c.str(b.sp) + b.sp + "%}")
		writeNodes(b, n.bodies[i])
	}
	if n.els != nil {
		b.WriteString("{%" + b.sp + "else" + b.sp + "%}")
		writeNodes(b, n.els)
	}
	b.WriteString("{%" + b.sp + "endif" + b.sp + "%}")
}

func (n *forNode) write(b *tw) {
	b.WriteString("{%" + b.sp + "for" + b.sp + n.name + b.sp + "in" + b.sp + n.list.str(b.sp) + b.sp + "%}")
	writeNodes(b, n.body)
	if n.empty != nil {
		b.WriteString("{%" + b.sp + "empty" + b.sp + "%}")
		writeNodes(b, n.empty)
	}
	b.WriteString("{%" + b.sp + "endfor" + b.sp + "%}")
}

func writeNodes(b *tw, nodes []node) {
	for _, n := range nodes {
		n.write(b)
	}
}

// value is a path or a literal, with filters.
type value struct {
	head    string   // name, or a literal as written
	parts   []string // .key or .0, as written
	filters []string // safe, default:"x", default:7
}

// str writes the value; sp (whitespace) goes around . | and : when it is
// not a single space.
func (v *value) str(sp string) string {
	if sp == " " {
		sp = ""
	}
	var b strings.Builder
	b.WriteString(v.head)
	for _, p := range v.parts {
		b.WriteString(sp + "." + sp + p)
	}
	for _, f := range v.filters {
		b.WriteString(sp + "|" + sp + strings.Replace(f, ":", sp+":"+sp, 1))
	}
	return b.String()
}

type expr interface{ str(sp string) string }

type valExpr struct{ v *value }
type notExpr struct{ e expr } // not <value> or not (<expr>)
type parenExpr struct{ e expr }
type cmpExpr struct {
	op   string
	l, r *value
}
type boolExpr struct {
	op   string // and, or
	l, r expr
}

func (e valExpr) str(sp string) string   { return e.v.str(sp) }
func (e notExpr) str(sp string) string   { return "not" + sp + e.e.str(sp) }
func (e parenExpr) str(sp string) string { return "(" + sp + e.e.str(sp) + sp + ")" }
func (e cmpExpr) str(sp string) string   { return e.l.str(sp) + sp + e.op + sp + e.r.str(sp) }
func (e boolExpr) str(sp string) string  { return e.l.str(sp) + sp + e.op + sp + e.r.str(sp) }

// shrinkNodes lists smaller variants of a node list: one node removed, a
// block replaced by one of its bodies, or one node replaced by a smaller
// variant of itself.
func shrinkNodes(nodes []node) [][]node {
	var out [][]node
	with := func(i int, repl ...node) []node {
		n := make([]node, 0, len(nodes)-1+len(repl))
		n = append(n, nodes[:i]...)
		n = append(n, repl...)
		return append(n, nodes[i+1:]...)
	}
	for i := range nodes {
		out = append(out, with(i))
	}
	for i, n := range nodes {
		switch n := n.(type) {
		case bigNode:
			// Halve first (each check of a big template is slow), unpack
			// once small.
			if len(n) > 8 {
				out = append(out, with(i, n[:len(n)/2]), with(i, n[len(n)/2:]))
			} else {
				out = append(out, with(i, n...))
			}
		case *ifNode:
			for _, body := range n.bodies {
				out = append(out, with(i, body...))
			}
			if n.els != nil {
				out = append(out, with(i, n.els...))
				m := *n
				m.els = nil
				out = append(out, with(i, &m))
			}
			if len(n.conds) > 1 {
				for k := range n.conds {
					m := *n
					m.conds = append(append([]expr{}, n.conds[:k]...), n.conds[k+1:]...)
					m.bodies = append(append([][]node{}, n.bodies[:k]...), n.bodies[k+1:]...)
					out = append(out, with(i, &m))
				}
			}
			for k, c := range n.conds {
				for _, e := range shrinkExpr(c) {
					m := *n
					m.conds = append([]expr{}, n.conds...)
					m.conds[k] = e
					out = append(out, with(i, &m))
				}
				for _, body := range shrinkNodes(n.bodies[k]) {
					m := *n
					m.bodies = append([][]node{}, n.bodies...)
					m.bodies[k] = body
					out = append(out, with(i, &m))
				}
			}
			for _, body := range shrinkNodes(n.els) {
				m := *n
				m.els = body
				out = append(out, with(i, &m))
			}
		case *forNode:
			out = append(out, with(i, n.body...))
			if n.empty != nil {
				out = append(out, with(i, n.empty...))
				m := *n
				m.empty = nil
				out = append(out, with(i, &m))
			}
			for _, v := range shrinkValue(n.list) {
				m := *n
				m.list = v
				out = append(out, with(i, &m))
			}
			for _, body := range shrinkNodes(n.body) {
				m := *n
				m.body = body
				out = append(out, with(i, &m))
			}
			for _, body := range shrinkNodes(n.empty) {
				m := *n
				m.empty = body
				out = append(out, with(i, &m))
			}
		case outNode:
			for _, v := range shrinkValue(n.v) {
				out = append(out, with(i, outNode{v}))
			}
		case textNode:
			if len(n) > 1 {
				r := []rune(string(n))
				out = append(out, with(i, textNode(string(r[:len(r)/2]))), with(i, textNode(string(r[len(r)/2:]))))
			}
		}
	}
	return out
}

func shrinkValue(v *value) []*value {
	var out []*value
	if len(v.filters) > 0 {
		out = append(out, &value{head: v.head, parts: v.parts})
		out = append(out, &value{head: v.head, parts: v.parts, filters: v.filters[:len(v.filters)-1]})
		out = append(out, &value{head: v.head, parts: v.parts, filters: v.filters[1:]})
	}
	if len(v.parts) > 0 && v.head != "forloop" {
		out = append(out, &value{head: v.head, parts: v.parts[:len(v.parts)-1], filters: v.filters})
	}
	return out
}

func shrinkExpr(e expr) []expr {
	var out []expr
	switch e := e.(type) {
	case valExpr:
		for _, v := range shrinkValue(e.v) {
			out = append(out, valExpr{v})
		}
	case notExpr:
		out = append(out, e.e)
		for _, s := range shrinkExpr(e.e) {
			out = append(out, notExpr{s})
		}
	case parenExpr:
		out = append(out, e.e)
		for _, s := range shrinkExpr(e.e) {
			out = append(out, parenExpr{s})
		}
	case cmpExpr:
		out = append(out, valExpr{e.l}, valExpr{e.r})
		for _, v := range shrinkValue(e.l) {
			out = append(out, cmpExpr{e.op, v, e.r})
		}
		for _, v := range shrinkValue(e.r) {
			out = append(out, cmpExpr{e.op, e.l, v})
		}
	case boolExpr:
		out = append(out, e.l, e.r)
		for _, s := range shrinkExpr(e.l) {
			out = append(out, boolExpr{e.op, s, e.r})
		}
		for _, s := range shrinkExpr(e.r) {
			out = append(out, boolExpr{e.op, e.l, s})
		}
	}
	// A shrunk expression must stay in the subset: a comparison's left
	// side is a plain value (no "not a == b", no "(a) == b").
	valid := out[:0]
	for _, s := range out {
		if inSubset(s) {
			valid = append(valid, s)
		}
	}
	return valid
}

// inSubset checks the shape rules the grammar cannot: the left operand of
// and / or is never a bare comparison preceded by not (written "not a ==
// b" it would read "(not a) == b").
func inSubset(e expr) bool {
	switch e := e.(type) {
	case notExpr:
		switch e.e.(type) {
		case valExpr, parenExpr:
			return inSubset(e.e)
		}
		return false
	case parenExpr:
		return inSubset(e.e)
	case boolExpr:
		return inSubset(e.l) && inSubset(e.r)
	}
	return true
}

// ---------------------------------------------------------------------------
// The template generator: the subset of docs/template.md, no more.

type gen struct {
	rng   *rand.Rand
	loops []string // loop variables in scope, innermost last
	// forloop: forloop.* may be read (inside a loop body, outside its
	// {% empty %}, or in a for tag's own list).
	forloop []bool
	nodes   int
	// safe: only values that cannot fail (literals, loop variables
	// without parts, paths from the undefined name nope), so that a big
	// template renders instead of failing somewhere in both engines.
	safe bool
}

func (g *gen) pick(xs ...string) string { return xs[g.rng.Intn(len(xs))] }
func (g *gen) chance(n int) bool        { return g.rng.Intn(n) == 0 }

var texts = []string{
	"a", " ", "\n", "\n\n", "<p>", "</p>", "x y", "}", "}}", "%}", "#}", "%", "#", "{ x", "{ ", "'", "\"",
	"&amp;", "中文", "😀", "\t", "\r\n", "-", "{}", "}%", "}#", "=", "é",
}

func (g *gen) text() textNode {
	var b strings.Builder
	for n := 1 + g.rng.Intn(3); n > 0; n-- {
		b.WriteString(g.pick(texts...))
	}
	return textNode(b.String())
}

func (g *gen) template(big bool) []node {
	if big {
		// Thousands of nodes: the Lua compiler splits the render
		// function; nesting stays small.
		n := 1200 + g.rng.Intn(1200)
		g.safe = g.chance(2)
		var b bigNode
		for len(b) < n {
			b = append(b, g.nodesAt(2, 3)...)
		}
		// Or as the body of a block, where the Lua compiler goes on in
		// closures.
		switch g.rng.Intn(3) {
		case 0:
			one := &value{head: "1"}
			return []node{&ifNode{conds: []expr{valExpr{one}}, bodies: [][]node{{b}}}}
		case 1:
			return []node{&forNode{name: "x", list: &value{head: `"ab"`}, body: []node{b}}}
		}
		return []node{b}
	}
	return g.nodesAt(3, 1+g.rng.Intn(6))
}

// nodesAt generates up to n nodes, with blocks nested at most depth more.
func (g *gen) nodesAt(depth, n int) []node {
	var out []node
	for i := 0; i < n; i++ {
		g.nodes++
		k := g.rng.Intn(10)
		switch {
		case k < 3:
			out = append(out, g.text())
		case k < 6 || depth == 0:
			out = append(out, outNode{g.value(true)})
		case k < 7:
			if g.chance(3) {
				out = append(out, commentNode(g.pick(" c ", "", " {{ x }} ", "x%}", " é ")))
			} else {
				out = append(out, g.text())
			}
		case k < 9:
			out = append(out, g.forNode(depth-1))
		default:
			out = append(out, g.ifNode(depth-1))
		}
	}
	return out
}

func (g *gen) body(depth int) []node {
	return g.nodesAt(depth, g.rng.Intn(4))
}

func (g *gen) ifNode(depth int) *ifNode {
	n := &ifNode{}
	for c := 1 + g.rng.Intn(3); c > 0; c-- {
		n.conds = append(n.conds, g.expr(3))
		n.bodies = append(n.bodies, g.body(depth))
	}
	if g.chance(2) {
		n.els = append(g.body(depth), textNode("")) // non-nil, even when empty
	}
	return n
}

func (g *gen) forNode(depth int) *forNode {
	n := &forNode{name: g.pick("a", "b", "c", "x", "item", "shop", "im")}
	g.forloop = append(g.forloop, true)
	n.list = g.value(false)
	g.forloop = g.forloop[:len(g.forloop)-1]

	g.loops = append(g.loops, n.name)
	g.forloop = append(g.forloop, true)
	n.body = g.body(depth)
	g.forloop = g.forloop[:len(g.forloop)-1]
	g.loops = g.loops[:len(g.loops)-1]
	if g.chance(2) {
		// The loop's own variable and forloop are not visible here.
		g.forloop = append(g.forloop, false)
		n.empty = append(g.body(depth), textNode(""))
		g.forloop = g.forloop[:len(g.forloop)-1]
	}
	return n
}

var keys = []string{"a", "b", "c", "x", "name", "url", "images", "Counter", "First", "n"}

// value generates a path or literal with filters; out: in {{ }} (where
// safe matters).
func (g *gen) value(out bool) *value {
	v := &value{}
	switch k := g.rng.Intn(12); {
	case k < 2:
		v.head = g.stringLit()
	case k < 3:
		v.head = g.intLit()
	case k < 5 && len(g.forloop) > 0 && g.forloop[len(g.forloop)-1]:
		v.head = "forloop"
		v.parts = []string{g.pick("Counter", "Counter0", "First", "Last")}
	case k < 8 && len(g.loops) > 0:
		v.head = g.loops[g.rng.Intn(len(g.loops))]
		if g.safe {
			return v
		}
	case g.safe:
		v.head = "nope"
	default:
		v.head = g.pick("item", "item", "item", "shop", "nope")
	}
	if v.head != "forloop" && (v.head[0] >= 'a' && v.head[0] <= 'z') {
		for n := g.rng.Intn(4); n > 0; n-- {
			// Mostly a key first (the roots are mostly objects), then
			// keys and indexes alike.
			if (len(v.parts) == 0 && g.chance(10)) || (len(v.parts) > 0 && g.chance(2)) {
				v.parts = append(v.parts, g.pick("0", "1", "2", "3", "10", "00"))
			} else {
				v.parts = append(v.parts, g.pick(keys...))
			}
		}
	}
	for n := g.rng.Intn(3); n > 0; n-- {
		if g.chance(4) {
			v.filters = append(v.filters, "safe")
		} else if g.chance(3) {
			v.filters = append(v.filters, "default:"+g.intLit())
		} else {
			v.filters = append(v.filters, "default:"+g.stringLit())
		}
	}
	return v
}

func (g *gen) stringLit() string {
	var b strings.Builder
	for n := g.rng.Intn(4); n > 0; n-- {
		b.WriteString(g.pick("a", "x", "<", "&", "'", `\"`, `\\`, "中", "😀", " ", "5", "0", "e", "}", "%}", "1e3", "-"))
	}
	s := b.String()
	if !strings.Contains(s, "'") && g.chance(3) {
		s = strings.ReplaceAll(s, `\"`, `"`)
		return "'" + s + "'"
	}
	return `"` + s + `"`
}

func (g *gen) intLit() string {
	return g.pick("0", "1", "2", "5", "7", "10", "100", "007", "104", "9007199254740992", "123456789012345",
		"1000000", "3")
}

// expr generates a condition; depth bounds and / or / not / ( ) nesting.
func (g *gen) expr(depth int) expr {
	var e expr
	switch k := g.rng.Intn(10); {
	case k < 3:
		e = valExpr{g.value(false)}
	case k < 6:
		e = cmpExpr{g.pick("==", "!=", "<", ">", "<=", ">="), g.value(false), g.value(false)}
	case k < 7 && depth > 0:
		if g.chance(2) {
			e = notExpr{valExpr{g.value(false)}}
		} else {
			e = notExpr{parenExpr{g.expr(depth - 1)}}
		}
	case k < 8 && depth > 0:
		e = parenExpr{g.expr(depth - 1)}
	default:
		e = valExpr{g.value(false)}
	}
	if depth > 0 && g.chance(3) {
		return boolExpr{g.pick("and", "or"), e, g.expr(depth - 1)}
	}
	return e
}

// outside returns a template just outside the subset, with the line the
// Lua compiler must name.
func (g *gen) outside() (src string, line int, what string) {
	bad := [][2]string{
		{"include", `{% include "x.html" %}`},
		{"with", `{% with a=1 %}{% endwith %}`},
		{"set", `{% set a = 1 %}`},
		{"unknown filter", `{{ item.a|upper }}`},
		{"length filter", `{% if item|length > 1 %}{% endif %}`},
		{"variable default", `{{ item.a|default:item.b }}`},
		{"subscript", `{{ item["a"] }}`},
		{"call", `{{ item.a() }}`},
		{"arithmetic", `{% if item.a + 1 %}{% endif %}`},
		{"in", `{% if "a" in item %}{% endif %}`},
		{"not comparison", `{% if not item.a == 1 %}{% endif %}`},
		{"chained comparison", `{% if 1 < item.a < 3 %}{% endif %}`},
		{"paren comparison", `{% if (item.a) == 1 %}{% endif %}`},
		{"true literal", `{% if item.a == true %}{% endif %}`},
		{"float literal", `{{ 1.5 }}`},
		{"big literal", `{{ 9007199254740993 }}`},
		{"big index", `{{ item.99999999999999999999 }}`},
		{"pairs", `{% for k, v in item %}{% endfor %}`},
		{"reversed", `{% for v in item reversed %}{% endfor %}`},
		{"forloop field", `{% for v in item %}{{ forloop.Revcounter }}{% endfor %}`},
		{"forloop outside", `{{ forloop.Counter }}`},
		{"forloop in empty", `{% for v in item %}{% empty %}{{ forloop.Counter }}{% endfor %}`},
		{"trim", `{%- if item %}{% endif %}`},
		{"trim var", `{{ item -}}`},
		{"keyword path", `{{ item.not }}`},
		{"symbol and", `{% if item && shop %}{% endif %}`},
		{"bang", `{% if !item %}{% endif %}`},
		{"not not", `{% if not not item %}{% endif %}`},
		{"unclosed if", `{% if item %}`},
		{"stray endfor", `{% endfor %}`},
		{"else after else", `{% if item %}{% else %}{% else %}{% endif %}`},
		{"escape", `{{ "a\n" }}`},
		{"newline in tag", "{% if item\n%}{% endif %}"},
		{"multi-line comment", "{# a\nb #}"},
		{"empty tag", `{% %}`},
		{"expression in output", `{{ item == 1 }}`},
		{"reserved", `{{ pongo2.version }}`},
		{"loops too deep", strings.Repeat("{% for v in item %}", 21) + strings.Repeat("{% endfor %}", 21)},
		{"blocks too deep", strings.Repeat("{% if item %}", 51) + strings.Repeat("{% endif %}", 51)},
		{"expression too deep", "{% if item" + strings.Repeat(" or item", 41) + " %}{% endif %}"},
	}
	b := bad[g.rng.Intn(len(bad))]
	// An in-subset template with the bad tag between two of its top-level
	// nodes, so that nothing before it is wrong.
	nodes := g.template(false)
	at := g.rng.Intn(len(nodes) + 1)
	pre := &tw{sp: " "}
	writeNodes(pre, nodes[:at])
	if g.chance(2) {
		pre.WriteString("\n")
	}
	post := &tw{sp: " "}
	writeNodes(post, nodes[at:])
	line = 1 + strings.Count(pre.String(), "\n")
	return pre.String() + b[1] + post.String(), line, b[0]
}

// ---------------------------------------------------------------------------
// Documents: JSON values written by hand, to keep hostile number forms.

type jv struct {
	kind  byte   // n null, b bool, u number, s string, a array, o object
	raw   string // b: true/false; u: the number as written; s: the string
	keys  []string
	elems []*jv
	esc   bool // s: \u-escape non-ASCII
}

func (v *jv) encode(b *strings.Builder) {
	switch v.kind {
	case 'n':
		b.WriteString("null")
	case 'b', 'u':
		b.WriteString(v.raw)
	case 's':
		writeJSONString(b, v.raw, v.esc)
	case 'a':
		b.WriteString("[")
		for i, e := range v.elems {
			if i > 0 {
				b.WriteString(",")
			}
			e.encode(b)
		}
		b.WriteString("]")
	case 'o':
		b.WriteString("{")
		for i, e := range v.elems {
			if i > 0 {
				b.WriteString(", ")
			}
			writeJSONString(b, v.keys[i], false)
			b.WriteString(":")
			e.encode(b)
		}
		b.WriteString("}")
	}
}

func writeJSONString(b *strings.Builder, s string, esc bool) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '/':
			b.WriteString(`\/`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(b, `\u%04x`, r)
		case esc && r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		case esc && r > 0x7f:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// shrinks lists smaller variants of the value tree.
func (v *jv) shrinks() []*jv {
	var out []*jv
	if v.kind == 'a' || v.kind == 'o' {
		for i := range v.elems {
			// drop element i
			m := *v
			m.elems = append(append([]*jv{}, v.elems[:i]...), v.elems[i+1:]...)
			if v.kind == 'o' {
				m.keys = append(append([]string{}, v.keys[:i]...), v.keys[i+1:]...)
			}
			out = append(out, &m)
		}
		for i, e := range v.elems {
			for _, s := range e.shrinks() {
				m := *v
				m.elems = append([]*jv{}, v.elems...)
				m.elems[i] = s
				out = append(out, &m)
			}
			if e.kind != 'n' {
				m := *v
				m.elems = append([]*jv{}, v.elems...)
				m.elems[i] = &jv{kind: 'n'}
				out = append(out, &m)
			}
		}
	}
	return out
}

var (
	numbers = []string{
		"0", "-0", "1", "-1", "7", "42", "104", "0.5", "2.5", "-2.5", "1e21", "-0.0", "1E2", "1e-7", "1.0",
		"123456.7890125", "9007199254740993", "9223372036854775807", "9223372036854775808",
		"-9223372036854775809", "12345678901234567890", "1e400", "-1e400", "5e-324", "2.675", "0.0078125",
		"100", "3.14159", "1e15", "-7.5e-3", "4.9", "1000.0",
	}
	strs = []string{
		"", "0", " ", "a", "5", " 5", "5.9", "-5.9", "1e3", "0x10", "0x1p4", "inf", "-Inf", "NaN", "1_000",
		"-0", "007", "9223372036854775808", "<script>\"'&", "中文", "😀", "عربي", "\x00", "\t\r\n", "\x1f",
		"\x7f", "[]", "{}", "{{ a }}", "True", "false", "null", "a.b", "\u2028", "e", "x", "ab<", "é",
		"1e400", ".5", "+5", "abc", "Z", "\\",
	}
	docKeys = []string{"a", "b", "c", "x", "name", "url", "images", "Counter", "First", "n", "0", "", "é", "a b"}
)

func (g *gen) jvalue(depth int, keyset []string) *jv {
	k := g.rng.Intn(13)
	if depth <= 0 && k >= 8 {
		k = g.rng.Intn(8)
	}
	switch {
	case k < 1:
		return &jv{kind: 'n'}
	case k < 2:
		return &jv{kind: 'b', raw: g.pick("true", "false")}
	case k < 4:
		return &jv{kind: 'u', raw: g.pick(numbers...)}
	case k < 8:
		s := g.pick(strs...)
		if g.chance(4) {
			s += g.pick(strs...)
		}
		return &jv{kind: 's', raw: s, esc: g.chance(4)}
	case k < 11:
		v := &jv{kind: 'a'}
		for n := g.rng.Intn(4); n > 0; n-- {
			v.elems = append(v.elems, g.jvalue(depth-1, keyset))
		}
		return v
	default:
		return g.object(depth-1, keyset, g.rng.Intn(4))
	}
}

func (g *gen) object(depth int, keyset []string, n int) *jv {
	v := &jv{kind: 'o'}
	seen := map[string]bool{}
	for ; n > 0; n-- {
		k := g.pick(keyset...)
		if seen[k] && !g.chance(8) { // now and then a duplicate key: the last one wins in both
			continue
		}
		seen[k] = true
		v.keys = append(v.keys, k)
		v.elems = append(v.elems, g.jvalue(depth, keyset))
	}
	return v
}

// doc generates {"item": ..., "shop": ...}: mostly objects, anything now
// and then, shop sometimes absent.
func (g *gen) doc() *jv {
	d := &jv{kind: 'o'}
	item := g.object(3, docKeys, 1+g.rng.Intn(6))
	if g.chance(6) {
		item = g.jvalue(3, docKeys)
	}
	if !g.chance(20) {
		d.keys, d.elems = append(d.keys, "item"), append(d.elems, item)
	}
	if !g.chance(3) {
		d.keys, d.elems = append(d.keys, "shop"), append(d.elems, g.jvalue(2, docKeys))
	}
	return d
}

var itemKeysRe = regexp.MustCompile(`\.([A-Za-z_][A-Za-z0-9_]*)`)

// pageKeys are the keys templates/item.html reads.
var pageKeys = func() []string {
	src, err := os.ReadFile(filepath.Join(templatesDir, ItemTemplate))
	if err != nil {
		return docKeys
	}
	set := map[string]bool{}
	for _, m := range itemKeysRe.FindAllStringSubmatch(string(src), -1) {
		set[m[1]] = true
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}()

// pageDoc generates a document shaped like a page document (the keys of
// item.html), with hostile values anywhere.
func (g *gen) pageDoc() *jv {
	d := &jv{kind: 'o'}
	item := g.object(3, pageKeys, 5+g.rng.Intn(15))
	if g.chance(10) {
		item = g.jvalue(2, pageKeys)
	}
	d.keys, d.elems = append(d.keys, "item"), append(d.elems, item)
	if !g.chance(4) {
		d.keys, d.elems = append(d.keys, "shop"), append(d.elems, g.object(2, pageKeys, g.rng.Intn(10)))
	}
	return d
}
