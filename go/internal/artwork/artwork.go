// Package artwork draws the catalog's pictures. There is no outside network
// and no image store, so every product and shop picture is an SVG generated
// from its id: the same URL always yields the same bytes.
//
//	GET /img/p/<id>/<n>.svg   picture n (0–11) of product id
//	GET /img/s/<id>.svg       logo of shop id
package artwork

import (
	"bytes"
	"encoding/xml"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/detailpage/detailpage/go/internal/catalog"
	"github.com/detailpage/detailpage/go/internal/seed"
)

// MaxView is the highest picture number served for a product.
const MaxView = 11

// Handler serves product pictures and shop logos. Any other path is a 404;
// methods other than GET and HEAD are a 405.
func Handler() http.Handler { return handler{} }

type handler struct{}

func (handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, ok := Render(r.URL.Path)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := fnv.New64a()
	h.Write(body)
	hdr := w.Header()
	hdr.Set("Content-Type", "image/svg+xml")
	hdr.Set("Cache-Control", "public, max-age=86400")
	hdr.Set("ETag", `"`+strconv.FormatUint(h.Sum64(), 16)+`"`)
	hdr.Set("X-Content-Type-Options", "nosniff")
	// The pictures have no scripts; say so, in case one is opened directly.
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	// ServeContent answers HEAD, If-None-Match (304) and Range requests.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// Render returns the SVG for an image path, or false if the path names no
// picture.
func Render(path string) ([]byte, bool) {
	if rest, ok := strings.CutPrefix(path, "/img/p/"); ok {
		idStr, file, ok := strings.Cut(rest, "/")
		if !ok {
			return nil, false
		}
		nStr, ok := strings.CutSuffix(file, ".svg")
		if !ok {
			return nil, false
		}
		id, ok := parseID(idStr)
		if !ok {
			return nil, false
		}
		n, ok := parseView(nStr)
		if !ok {
			return nil, false
		}
		return Product(id, n), true
	}
	if rest, ok := strings.CutPrefix(path, "/img/s/"); ok {
		idStr, ok := strings.CutSuffix(rest, ".svg")
		if !ok {
			return nil, false
		}
		id, ok := parseID(idStr)
		if !ok {
			return nil, false
		}
		return Shop(id), true
	}
	return nil, false
}

// parseID accepts what catalog.ParseID accepts, without leading zeros, so
// that each picture has exactly one URL.
func parseID(s string) (int64, bool) {
	if strings.HasPrefix(s, "0") {
		return 0, false
	}
	id, err := catalog.ParseID(s)
	return id, err == nil
}

// parseView accepts "0" to "11".
func parseView(s string) (int, bool) {
	if s == "" || len(s) > 2 || (len(s) == 2 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n <= MaxView
}

// palette is a background gradient, the product's main and accent colours
// and a dark ink.
type palette struct{ bg1, bg2, main, accent, ink string }

var palettes = []palette{
	{"#fde2e4", "#fad2e1", "#e5989b", "#ffb4a2", "#3d405b"},
	{"#e0f2fe", "#bae6fd", "#0ea5e9", "#38bdf8", "#0c4a6e"},
	{"#ecfccb", "#d9f99d", "#65a30d", "#a3e635", "#365314"},
	{"#fef3c7", "#fde68a", "#d97706", "#fbbf24", "#78350f"},
	{"#ede9fe", "#ddd6fe", "#7c3aed", "#a78bfa", "#2e1065"},
	{"#f1f5f9", "#e2e8f0", "#334155", "#94a3b8", "#0f172a"},
	{"#ffe4e6", "#fecdd3", "#e11d48", "#fb7185", "#4c0519"},
	{"#ccfbf1", "#99f6e4", "#0d9488", "#2dd4bf", "#134e4a"},
	{"#fae8ff", "#f5d0fe", "#c026d3", "#e879f9", "#4a044e"},
	{"#fff7ed", "#fed7aa", "#ea580c", "#fb923c", "#431407"},
	{"#f5f5f4", "#e7e5e4", "#57534e", "#d6d3d1", "#1c1917"},
	{"#e0e7ff", "#c7d2fe", "#4f46e5", "#818cf8", "#1e1b4b"},
}

// mix is splitmix64's finaliser.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func paletteOf(id int64) palette { return palettes[mix(uint64(id))%uint64(len(palettes))] }

// shapes draw a product of each category around the centre of an 800×800
// canvas; the colours "M" (main), "A" (accent) and "I" (ink) are replaced
// by a palette's.
var shapes = map[string]string{
	"phone": `<rect x="270" y="140" width="260" height="500" rx="40" fill="M"/>` +
		`<rect x="288" y="178" width="224" height="424" rx="20" fill="A"/>` +
		`<circle cx="400" cy="160" r="8" fill="I"/><rect x="360" y="612" width="80" height="8" rx="4" fill="I"/>`,
	"computer": `<rect x="190" y="190" width="420" height="290" rx="18" fill="I"/>` +
		`<rect x="208" y="208" width="384" height="246" rx="6" fill="A"/>` +
		`<path d="M130 500h540l-40 70H170z" fill="M"/><rect x="350" y="512" width="100" height="12" rx="6" fill="I"/>`,
	"appliance": `<rect x="260" y="120" width="280" height="540" rx="24" fill="M"/>` +
		`<rect x="260" y="320" width="280" height="8" fill="I"/>` +
		`<rect x="500" y="190" width="14" height="100" rx="7" fill="A"/><rect x="500" y="360" width="14" height="180" rx="7" fill="A"/>`,
	"apparel": `<path d="M310 160l-140 70 50 120 60-28v318h240V322l60 28 50-120-140-70c-16 36-50 58-90 58s-74-22-90-58z" fill="M"/>` +
		`<path d="M310 160c16 36 50 58 90 58s74-22 90-58l-20-8c-14 28-40 44-70 44s-56-16-70-44z" fill="A"/>`,
	"food": `<rect x="270" y="250" width="260" height="390" rx="28" fill="M"/>` +
		`<rect x="255" y="200" width="290" height="70" rx="16" fill="I"/>` +
		`<rect x="270" y="370" width="260" height="150" fill="#fff" fill-opacity=".85"/>` +
		`<path d="M400 470c-40-10-50-50-30-80 40 10 50 50 30 80z" fill="A"/>`,
	"beauty": `<rect x="320" y="300" width="160" height="340" rx="34" fill="M"/>` +
		`<rect x="370" y="240" width="60" height="70" fill="A"/>` +
		`<rect x="350" y="160" width="100" height="90" rx="14" fill="I"/>` +
		`<rect x="345" y="420" width="110" height="110" rx="10" fill="#fff" fill-opacity=".7"/>`,
	"book": `<rect x="250" y="170" width="330" height="470" rx="10" fill="I"/>` +
		`<rect x="240" y="160" width="330" height="470" fill="#fff"/>` +
		`<rect x="220" y="140" width="330" height="470" rx="10" fill="M"/>` +
		`<rect x="220" y="140" width="40" height="470" fill="A"/>` +
		`<rect x="300" y="230" width="200" height="24" rx="12" fill="#fff"/><rect x="300" y="280" width="140" height="16" rx="8" fill="#fff" fill-opacity=".7"/>`,
	"sports": `<path d="M170 540c0-70 20-140 70-190l50 50c40 20 90 10 120-20l40-24c60 90 150 120 250 130 40 4 60 30 60 54H170z" fill="M"/>` +
		`<path d="M160 540h600v36q0 24-24 24H184q-24 0-24-24z" fill="A"/>` +
		`<path d="M300 420l40 40M340 400l40 40M380 384l36 36" stroke="I" stroke-width="10" stroke-linecap="round"/>`,
	"toy": `<rect x="190" y="430" width="200" height="190" rx="12" fill="M"/>` +
		`<rect x="410" y="430" width="200" height="190" rx="12" fill="A"/>` +
		`<rect x="300" y="230" width="200" height="190" rx="12" fill="I"/>` +
		`<circle cx="350" cy="215" r="26" fill="I"/><circle cx="450" cy="215" r="26" fill="I"/>` +
		`<circle cx="240" cy="415" r="26" fill="M"/><circle cx="560" cy="415" r="26" fill="A"/>`,
	"furniture": `<rect x="190" y="280" width="420" height="200" rx="44" fill="M"/>` +
		`<rect x="170" y="430" width="460" height="120" rx="34" fill="A"/>` +
		`<rect x="130" y="360" width="90" height="200" rx="34" fill="M"/><rect x="580" y="360" width="90" height="200" rx="34" fill="M"/>` +
		`<rect x="180" y="550" width="20" height="60" fill="I"/><rect x="600" y="550" width="20" height="60" fill="I"/>`,
	"kitchen": `<path d="M210 380h380v170q0 80-80 80H290q-80 0-80-80z" fill="M"/>` +
		`<ellipse cx="400" cy="372" rx="210" ry="34" fill="A"/><circle cx="400" cy="330" r="22" fill="I"/>` +
		`<rect x="130" y="420" width="90" height="24" rx="12" fill="I"/><rect x="580" y="420" width="90" height="24" rx="12" fill="I"/>`,
	"pet": `<ellipse cx="400" cy="500" rx="130" ry="110" fill="M"/>` +
		`<circle cx="270" cy="350" r="50" fill="A"/><circle cx="350" cy="270" r="50" fill="A"/>` +
		`<circle cx="450" cy="270" r="50" fill="A"/><circle cx="530" cy="350" r="50" fill="A"/>`,
}

// coloured holds every category's shape in every palette, by category
// index and palette index.
var coloured = func() [][]string {
	out := make([][]string, seed.NumCategories)
	for c := range out {
		out[c] = make([]string, len(palettes))
		for i, p := range palettes {
			out[c][i] = strings.NewReplacer(`"M"`, `"`+p.main+`"`, `"A"`, `"`+p.accent+`"`, `"I"`, `"`+p.ink+`"`).
				Replace(shapes[seed.CategoryKey(c)])
		}
	}
	return out
}()

// views vary the framing of picture n: main, smaller, tilted, mirrored,
// close-up, ...
var views = []string{
	``,
	`translate(400 400) scale(.82) translate(-400 -400)`,
	`rotate(-10 400 400)`,
	`translate(800 0) scale(-1 1)`,
	`translate(400 400) scale(1.5) translate(-400 -380)`,
	`rotate(8 400 400) translate(0 20)`,
	`translate(400 400) scale(.7) translate(-400 -360)`,
	`translate(400 400) scale(1.15) translate(-400 -400)`,
	`translate(-60 0) scale(1.05)`,
	`translate(800 0) scale(-1 1) rotate(-8 400 400)`,
	`translate(400 400) scale(1.25) translate(-400 -400)`,
	`translate(60 30) scale(.9)`,
}

const font = `font-family="PingFang SC, Microsoft YaHei, Noto Sans CJK SC, sans-serif"`

// Product draws picture n of product id.
func Product(id int64, n int) []byte {
	p := paletteOf(id)
	shape := coloured[seed.Category(id)][mix(uint64(id))%uint64(len(palettes))]

	var b bytes.Buffer
	b.Grow(2048)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 800" width="800" height="800">`)
	b.WriteString(`<defs><linearGradient id="g" x1="0" y1="0" x2="`)
	b.WriteString([]string{"1", "0", "1"}[n%3])
	b.WriteString(`" y2="1"><stop offset="0" stop-color="` + p.bg1 + `"/><stop offset="1" stop-color="` + p.bg2 + `"/></linearGradient></defs>`)
	b.WriteString(`<rect width="800" height="800" fill="url(#g)"/>`)
	b.WriteString(`<circle cx="400" cy="400" r="310" fill="#fff" fill-opacity=".35"/>`)
	b.WriteString(`<ellipse cx="400" cy="680" rx="250" ry="24" fill="#000" fill-opacity=".08"/>`)
	b.WriteString(`<g transform="` + views[n%len(views)] + `">`)
	b.WriteString(shape)
	b.WriteString(`</g>`)
	b.WriteString(`<text x="40" y="72" ` + font + ` font-size="32" fill="` + p.ink + `">`)
	writeText(&b, seed.ViewLabel(n))
	b.WriteString(`</text><text x="760" y="760" text-anchor="end" ` + font + ` font-size="24" fill="` + p.ink + `" fill-opacity=".6">#`)
	b.WriteString(strconv.FormatInt(id, 10))
	b.WriteString(`</text></svg>`)
	return b.Bytes()
}

// Shop draws the logo of shop id: a circle or a rounded square with the
// shop's initials.
func Shop(id int64) []byte {
	p := paletteOf(id ^ 0x5bd1e995)
	text := Initials(seed.Shop(id).Name)
	size := 300
	if utf8.RuneCountInString(text) == 1 {
		size = 400
	}

	var b bytes.Buffer
	b.Grow(1024)
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 800" width="800" height="800">`)
	b.WriteString(`<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="` + p.main + `"/><stop offset="1" stop-color="` + p.ink + `"/></linearGradient></defs>`)
	if mix(uint64(id))%2 == 0 {
		b.WriteString(`<circle cx="400" cy="400" r="390" fill="url(#g)"/>`)
		b.WriteString(`<circle cx="400" cy="400" r="330" fill="none" stroke="#fff" stroke-opacity=".45" stroke-width="12"/>`)
	} else {
		b.WriteString(`<rect x="10" y="10" width="780" height="780" rx="170" fill="url(#g)"/>`)
		b.WriteString(`<rect x="70" y="70" width="660" height="660" rx="120" fill="none" stroke="#fff" stroke-opacity=".45" stroke-width="12"/>`)
	}
	// The baseline sits a third of the font size below the centre, which
	// centres capitals and CJK characters without relying on
	// dominant-baseline, which not every renderer supports.
	b.WriteString(`<text x="400" y="` + strconv.Itoa(400+size*35/100) + `" text-anchor="middle" ` + font + ` font-weight="bold" font-size="` + strconv.Itoa(size) + `" fill="#fff">`)
	writeText(&b, text)
	b.WriteString(`</text></svg>`)
	return b.Bytes()
}

// Initials picks what a logo shows for a shop name: the first two Chinese
// characters ("星耀官方旗舰店" → "星耀"), or the initials of the first two
// Latin words ("Northwind Home 家居馆" → "NH").
func Initials(name string) string {
	name = strings.TrimSpace(name)
	first, _ := utf8.DecodeRuneInString(name)
	switch {
	case name == "":
		return "?"
	case first < utf8.RuneSelf:
		var out []rune
		for _, w := range strings.Fields(name) {
			r, _ := utf8.DecodeRuneInString(w)
			if r >= utf8.RuneSelf || !unicode.IsLetter(r) && !unicode.IsDigit(r) || len(out) == 2 {
				break
			}
			out = append(out, unicode.ToUpper(r))
		}
		if len(out) == 0 {
			return string(first)
		}
		return string(out)
	default:
		var out []rune
		for _, r := range name {
			if r < utf8.RuneSelf || len(out) == 2 {
				break
			}
			out = append(out, r)
		}
		return string(out)
	}
}

// writeText writes s XML-escaped.
func writeText(b *bytes.Buffer, s string) {
	xml.EscapeText(b, []byte(s)) // a bytes.Buffer does not fail
}
