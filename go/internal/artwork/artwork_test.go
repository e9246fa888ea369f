package artwork

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/detailpage/detailpage/go/internal/seed"
)

// MustSVG checks that b is well-formed XML with an 800×800 <svg> root.
func MustSVG(tb testing.TB, b []byte) {
	tb.Helper()
	if len(b) >= 3*1024 {
		tb.Fatalf("svg is %d bytes, want < 3 KB", len(b))
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("svg does not parse: %v\n%s", err, b)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Space + " " + se.Name.Local
			for _, a := range se.Attr {
				if a.Name.Local == "viewBox" && a.Value != "0 0 800 800" {
					tb.Fatalf("viewBox %q", a.Value)
				}
			}
		}
	}
	if root != "http://www.w3.org/2000/svg svg" {
		tb.Fatalf("root element %q", root)
	}
}

func serve(method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w
}

func TestGood(t *testing.T) {
	tests := []struct {
		path, want string
	}{
		{"/img/p/1/0.svg", "#1<"},
		{"/img/p/1/11.svg", "#1<"},
		{"/img/p/42/3.svg", "#42<"},
		{"/img/p/999999999999999999/5.svg", "#999999999999999999<"},
		{"/img/p/7/0.svg?v=3", "#7<"},
		{"/img/s/1.svg", "<text"},
		{"/img/s/250.svg", "<text"},
		{"/img/s/999999999999999999.svg", "<text"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			w := serve(http.MethodGet, tt.path)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			h := w.Header()
			if got := h.Get("Content-Type"); got != "image/svg+xml" {
				t.Errorf("Content-Type %q", got)
			}
			if got := h.Get("Cache-Control"); got != "public, max-age=86400" {
				t.Errorf("Cache-Control %q", got)
			}
			etag := h.Get("ETag")
			if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
				t.Errorf("ETag %q", etag)
			}
			if !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("body lacks %q:\n%s", tt.want, w.Body)
			}
			MustSVG(t, w.Body.Bytes())

			// HEAD: same headers, no body.
			hw := serve(http.MethodHead, tt.path)
			if hw.Code != http.StatusOK || hw.Body.Len() != 0 || hw.Header().Get("ETag") != etag ||
				hw.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
				t.Errorf("HEAD: status %d, %d body bytes, headers %v", hw.Code, hw.Body.Len(), hw.Header())
			}
			// A revalidation with the ETag is a 304.
			if cw := serve(http.MethodGet, tt.path, "If-None-Match", etag); cw.Code != http.StatusNotModified {
				t.Errorf("If-None-Match: status %d", cw.Code)
			}
		})
	}
}

func TestBad(t *testing.T) {
	paths := []string{
		"/", "/img", "/img/", "/img/p/", "/img/s/", "/img/x/1.svg",
		"/img/p/1", "/img/p/1/", "/img/p/1/0", "/img/p/1/0.png", "/img/p/1/0.SVG", "/img/p/1/0.svg/",
		"/img/p/1/0.svg/x", "/img/p//0.svg", "/img/p/1//0.svg", "/img/p/1/.svg",
		"/img/p/0/0.svg", "/img/p/01/0.svg", "/img/p/-1/0.svg", "/img/p/+1/0.svg", "/img/p/1e3/0.svg",
		"/img/p/abc/0.svg", "/img/p/1234567890123456789/0.svg", "/img/p/9999999999999999999/0.svg",
		"/img/p/1/12.svg", "/img/p/1/99.svg", "/img/p/1/00.svg", "/img/p/1/01.svg", "/img/p/1/-1.svg",
		"/img/p/1/100.svg", "/img/p/1/a.svg", "/img/p/1/%20.svg", "/img/p/1/0.svg%00",
		"/img/s/0.svg", "/img/s/01.svg", "/img/s/1", "/img/s/1.SVG", "/img/s/1/0.svg", "/img/s/.svg",
		"/img/s/1234567890123456789.svg", "/img/s/x.svg", "/img/s/1.svg.svg",
		"/img/p/1/0.svg/../0.svg", "/IMG/p/1/0.svg", "/img/P/1/0.svg",
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			w := serve(http.MethodGet, p)
			if w.Code != http.StatusNotFound {
				t.Fatalf("status %d, want 404", w.Code)
			}
			if body := w.Body.String(); len(body) > 100 || strings.Contains(body, "<svg") {
				t.Errorf("body %q", body)
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		t.Run(m, func(t *testing.T) {
			w := serve(m, "/img/p/1/0.svg")
			if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
				t.Fatalf("status %d, Allow %q", w.Code, w.Header().Get("Allow"))
			}
		})
	}
}

// Random paths under /img never cause a 5xx.
func TestNeverServerError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "/0123456789.svgimps-%x"
	for range 5000 {
		var b strings.Builder
		b.WriteString([]string{"/img/p/", "/img/s/", "/img/", "/"}[r.IntN(4)])
		for range r.IntN(24) {
			b.WriteByte(alphabet[r.IntN(len(alphabet))])
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = b.String()
		w := httptest.NewRecorder()
		Handler().ServeHTTP(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusNotFound {
			t.Fatalf("%q: status %d", b.String(), w.Code)
		}
		if w.Code == http.StatusOK {
			MustSVG(t, w.Body.Bytes())
		}
	}
}

func TestEveryPicture(t *testing.T) {
	cats := map[int]bool{}
	for id := int64(1); id <= 300; id++ {
		cats[seed.Category(id)] = true
		for n := 0; n <= MaxView; n++ {
			MustSVG(t, Product(id, n))
		}
		MustSVG(t, Shop(id))
	}
	if len(cats) != seed.NumCategories {
		t.Fatalf("only %d categories drawn", len(cats))
	}
	for c := range seed.NumCategories {
		if shapes[seed.CategoryKey(c)] == "" {
			t.Errorf("category %q has no shape", seed.CategoryKey(c))
		}
	}
}

func TestDeterministic(t *testing.T) {
	a := serve(http.MethodGet, "/img/p/123/4.svg")
	serve(http.MethodGet, "/img/p/124/4.svg")
	b := serve(http.MethodGet, "/img/p/123/4.svg")
	if a.Body.String() != b.Body.String() || a.Header().Get("ETag") != b.Header().Get("ETag") {
		t.Fatalf("the same picture differs between requests")
	}
	if bytes.Equal(Product(123, 4), Product(123, 5)) || bytes.Equal(Product(123, 4), Product(124, 4)) {
		t.Fatalf("different pictures are identical")
	}
	if !bytes.Equal(Shop(9), Shop(9)) {
		t.Fatalf("the same logo differs between calls")
	}
}

func TestInitials(t *testing.T) {
	tests := []struct{ name, want string }{
		{"星耀官方旗舰店", "星耀"},
		{"Northwind Home 家居馆", "NH"},
		{"Summit Co 官方旗舰店", "SC"},
		{"Pixora 官方旗舰店", "P"},
		{"Linden & Co 服饰旗舰店", "L"},
		{"山", "山"},
		{"", "?"},
		{"<&>", "<"},
	}
	for _, tt := range tests {
		if got := Initials(tt.name); got != tt.want {
			t.Errorf("Initials(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// Text put into an SVG is escaped.
func TestEscaped(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 800"><text>`)
	writeText(&b, `<script>alert("x")</script> & 'y'`)
	b.WriteString(`</text></svg>`)
	MustSVG(t, b.Bytes())
	if strings.Contains(b.String(), "<script") {
		t.Fatalf("not escaped: %s", b.String())
	}
}

func BenchmarkProduct(b *testing.B) {
	b.ReportAllocs()
	id := int64(0)
	for b.Loop() {
		id++
		_ = Product(id, int(id%12))
	}
}

func BenchmarkHandler(b *testing.B) {
	b.ReportAllocs()
	h := Handler()
	r := httptest.NewRequest(http.MethodGet, "/img/p/12345/3.svg", nil)
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
