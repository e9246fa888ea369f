package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/detailpage/detailpage/go/internal/testutil"
	"github.com/detailpage/detailpage/go/internal/topology"
)

// Fewer bytes per view (issue 15): the app tier keeps every page also
// gzip-compressed and serves it to clients that accept gzip, with Vary:
// Accept-Encoding, a Content-Length, and a strong ETag per encoding from
// the item and shop versions; If-None-Match answers 304. The dist tier
// passes app answers through untouched, and its hot copies keep both
// encodings and answer 304 themselves.

// rawClient sends exactly the headers a test sets: Go's transport would
// otherwise ask for gzip itself and hand back the inflated body.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}

// rawAnswer is one page answer, its body as it came (compressed or not).
type rawAnswer struct {
	status   int
	header   http.Header
	body     []byte
	servedBy string
}

func (a rawAnswer) etag() string { return a.header.Get("ETag") }

// fetch sends method to url with the given request headers (name, value
// pairs) and returns the raw rawAnswer.
func fetch(method, url string, headers ...string) (rawAnswer, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return rawAnswer{}, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		return rawAnswer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return rawAnswer{}, fmt.Errorf("%s %s: read: %w", method, url, err)
	}
	return rawAnswer{resp.StatusCode, resp.Header, b, resp.Header.Get("X-Served-By")}, nil
}

func MustFetch(tb testing.TB, method, url string, headers ...string) rawAnswer {
	tb.Helper()
	a, err := fetch(method, url, headers...)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

func gunzip(tb testing.TB, b []byte) []byte {
	tb.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("not gzip: %v (%.40q)", err, b)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("gunzip: %v", err)
	}
	return out
}

// etagRE is the app tier's tag: item version, shop id and version, the
// rendering's CRC-32, and -gz for the compressed copy.
var etagRE = regexp.MustCompile(`^"p(\d+)-s(\d+)\.(\d+)-([0-9a-f]{8})(-gz)?"$`)

// checkPlain checks a plain 200 page rawAnswer: no Content-Encoding, a
// Content-Length of the body, Vary and a plain ETag.
func checkPlain(tb testing.TB, what string, a rawAnswer) {
	tb.Helper()
	if a.status != http.StatusOK {
		tb.Fatalf("%s: status %d", what, a.status)
	}
	if ce := a.header.Get("Content-Encoding"); ce != "" {
		tb.Errorf("%s: Content-Encoding %q, want none", what, ce)
	}
	if cl := a.header.Get("Content-Length"); cl != strconv.Itoa(len(a.body)) {
		tb.Errorf("%s: Content-Length %q for %d bytes", what, cl, len(a.body))
	}
	if !bytes.HasPrefix(a.body, []byte("<!DOCTYPE html>")) {
		tb.Errorf("%s: not the page: %.60q", what, a.body)
	}
	checkVary(tb, what, a)
	if m := etagRE.FindStringSubmatch(a.etag()); m == nil || m[5] != "" {
		tb.Errorf("%s: ETag %q, want the plain copy's", what, a.etag())
	}
}

// checkGzip checks a gzip 200 page rawAnswer against the plain one.
func checkGzip(tb testing.TB, what string, a, plain rawAnswer) {
	tb.Helper()
	if a.status != http.StatusOK {
		tb.Fatalf("%s: status %d", what, a.status)
	}
	if ce := a.header.Get("Content-Encoding"); ce != "gzip" {
		tb.Errorf("%s: Content-Encoding %q, want gzip", what, ce)
	}
	if cl := a.header.Get("Content-Length"); cl != strconv.Itoa(len(a.body)) {
		tb.Errorf("%s: Content-Length %q for %d bytes", what, cl, len(a.body))
	}
	if got := gunzip(tb, a.body); !bytes.Equal(got, plain.body) {
		tb.Errorf("%s: the gzip body inflates to %d bytes that are not the plain page (%d bytes)", what, len(got), len(plain.body))
	}
	// compressed, not merely wrapped (the seed's pages shrink ~3x)
	if len(a.body)*2 > len(plain.body) {
		tb.Errorf("%s: %d bytes compressed of %d: less than 2x smaller", what, len(a.body), len(plain.body))
	}
	checkVary(tb, what, a)
	if want := strings.TrimSuffix(plain.etag(), `"`) + `-gz"`; a.etag() != want {
		tb.Errorf("%s: ETag %q, want %q (the plain copy's %q, per encoding)", what, a.etag(), want, plain.etag())
	}
}

func checkVary(tb testing.TB, what string, a rawAnswer) {
	tb.Helper()
	if v := a.header.Values("Vary"); len(v) != 1 || v[0] != "Accept-Encoding" {
		tb.Errorf("%s: Vary %q, want exactly Accept-Encoding", what, v)
	}
}

// checkNotModified checks a 304: no body, the tag, Vary.
func checkNotModified(tb testing.TB, what string, a rawAnswer, tag string) {
	tb.Helper()
	if a.status != http.StatusNotModified {
		tb.Fatalf("%s: status %d, want 304", what, a.status)
	}
	if len(a.body) != 0 {
		tb.Errorf("%s: a body of %d bytes", what, len(a.body))
	}
	if a.etag() != tag {
		tb.Errorf("%s: ETag %q, want %q", what, a.etag(), tag)
	}
	checkVary(tb, what, a)
}

// acceptEncodings: what each Accept-Encoding gets.
var acceptEncodings = []struct {
	ae   string
	gzip bool
}{
	{"", false},
	{"gzip", true},
	{"gzip, deflate, br, zstd", true},
	{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
	{"*", true},
	{"x-gzip", true},
	{"gzip;q=0", false},
	{"gzip;q=0, *", false},
	{"*;q=0", false},
	{"br, deflate", false},
	{"identity", false},
	{"gzip;q=0.5, identity", false},
}

func TestGzipAcceptEncodingVariants(t *testing.T) {
	id := coldIDs(t, 1)[0]
	urls := map[string]string{
		"dist": pageURL(shared, id),
		"app1": appURL(shared, topology.App1) + "/item/" + id + ".html",
		"app2": appURL(shared, topology.App2) + "/item/" + id + ".html",
	}
	for tier, url := range urls {
		t.Run(tier, func(t *testing.T) {
			plain := MustFetch(t, http.MethodGet, url)
			checkPlain(t, "no Accept-Encoding", plain)
			for _, c := range acceptEncodings {
				a := MustFetch(t, http.MethodGet, url, "Accept-Encoding", c.ae)
				what := fmt.Sprintf("Accept-Encoding %q", c.ae)
				if c.gzip {
					checkGzip(t, what, a, plain)
				} else {
					checkPlain(t, what, a)
					if !bytes.Equal(a.body, plain.body) || a.etag() != plain.etag() {
						t.Errorf("%s: another page or tag than without Accept-Encoding", what)
					}
				}
			}
			// HEAD: the headers of the GET, no body
			gz := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip")
			h := MustFetch(t, http.MethodHead, url, "Accept-Encoding", "gzip")
			if h.status != http.StatusOK || len(h.body) != 0 || h.header.Get("Content-Encoding") != "gzip" ||
				h.header.Get("Content-Length") != strconv.Itoa(len(gz.body)) || h.etag() != gz.etag() {
				t.Errorf("HEAD gzip: status %d, %d body bytes, headers %v; want the GET's (%d bytes, %s)",
					h.status, len(h.body), h.header, len(gz.body), gz.etag())
			}
		})
	}
	// The two nodes render the same bytes: one tag, whichever node answers.
	a1 := MustFetch(t, http.MethodGet, urls["app1"], "Accept-Encoding", "gzip")
	a2 := MustFetch(t, http.MethodGet, urls["app2"], "Accept-Encoding", "gzip")
	if a1.etag() != a2.etag() || !bytes.Equal(gunzip(t, a1.body), gunzip(t, a2.body)) {
		t.Errorf("app1 and app2: ETags %q and %q, pages equal: %v", a1.etag(), a2.etag(), bytes.Equal(gunzip(t, a1.body), gunzip(t, a2.body)))
	}

	// (nginx's static 404.html, the dist's for a malformed id, has the
	// file's own ETag, as before: no page tag, never a 304)
	t.Run("error pages unaffected", func(t *testing.T) {
		for _, u := range []string{pageURL(shared, "987654321987"), appURL(shared, topology.App1) + "/item/987654321987.html", pageURL(shared, "0x")} {
			a := MustFetch(t, http.MethodGet, u, "Accept-Encoding", "gzip", "If-None-Match", "*")
			if a.status != http.StatusNotFound || etagRE.MatchString(a.etag()) || a.header.Get("Content-Encoding") != "" {
				t.Errorf("%s: status %d, ETag %q, Content-Encoding %q; want a plain 404 without a page's tag",
					u, a.status, a.etag(), a.header.Get("Content-Encoding"))
			}
		}
	})
}

func TestGzipNotModified(t *testing.T) {
	id := coldIDs(t, 1)[0]
	urls := map[string]string{"dist": pageURL(shared, id), "app1": appURL(shared, topology.App1) + "/item/" + id + ".html"}
	for tier, url := range urls {
		t.Run(tier, func(t *testing.T) {
			plain := MustFetch(t, http.MethodGet, url)
			gz := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip")
			checkPlain(t, "plain", plain)
			checkGzip(t, "gzip", gz, plain)
			for _, inm := range []string{gz.etag(), "W/" + gz.etag(), `"nope", ` + gz.etag(), "*"} {
				a := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", inm)
				checkNotModified(t, "gzip, If-None-Match "+inm, a, gz.etag())
			}
			checkNotModified(t, "plain, its own tag", MustFetch(t, http.MethodGet, url, "If-None-Match", plain.etag()), plain.etag())
			// per encoding: the other copy's tag is no match
			checkGzip(t, "gzip, the plain tag", MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", plain.etag()), plain)
			checkPlain(t, "plain, the gzip tag", MustFetch(t, http.MethodGet, url, "If-None-Match", gz.etag()))
			checkGzip(t, "gzip, another tag", MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", `"p1-s1.1-00000000-gz"`), plain)
			h := MustFetch(t, http.MethodHead, url, "Accept-Encoding", "gzip", "If-None-Match", gz.etag())
			checkNotModified(t, "HEAD", h, gz.etag())
		})
	}
}

// editedTag polls url (gzip) until its ETag is not old, and returns the
// new rawAnswer.
func editedTag(tb testing.TB, url, old string, limit time.Duration) rawAnswer {
	tb.Helper()
	var got rawAnswer
	err := testutil.PollEvery(limit, 20*time.Millisecond, func() error {
		a, err := fetch(http.MethodGet, url, "Accept-Encoding", "gzip")
		if err != nil {
			return err
		}
		if a.status != http.StatusOK || a.etag() == old {
			return fmt.Errorf("status %d, ETag %q still", a.status, a.etag())
		}
		got = a
		return nil
	})
	if err != nil {
		tb.Fatalf("%s: the ETag did not change after the edit: %v", url, err)
	}
	return got
}

func TestGzipEditChangesETag(t *testing.T) {
	idStr := coldIDs(t, 1)[0]
	id, _ := strconv.ParseInt(idStr, 10, 64)
	url := pageURL(shared, idStr)
	before := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip")
	m := etagRE.FindStringSubmatch(before.etag())
	if m == nil {
		t.Fatalf("ETag %q", before.etag())
	}
	name := fmt.Sprintf("Gzip <edit> %d", time.Now().UnixNano())
	MustRename(t, shared, id, name)
	after := editedTag(t, url, before.etag(), 5*time.Second)
	n := etagRE.FindStringSubmatch(after.etag())
	if n == nil || n[5] != "-gz" {
		t.Fatalf("after the edit: ETag %q", after.etag())
	}
	v0, _ := strconv.ParseInt(m[1], 10, 64)
	v1, _ := strconv.ParseInt(n[1], 10, 64)
	if v1 <= v0 || n[2] != m[2] || n[3] != m[3] || n[4] != m[4] {
		t.Errorf("ETag %q after the edit of %q: want a newer item version, the rest alike", after.etag(), before.etag())
	}
	page := string(gunzip(t, after.body))
	if !strings.Contains(page, escape(name)) {
		t.Errorf("the page with the new ETag does not show the edit")
	}
	if shows := fmt.Sprintf(`data-version="%d"`, v1); !strings.Contains(page, shows) {
		t.Errorf("ETag %q names item version %d; the page does not show it (%s)", after.etag(), v1, shows)
	}
	// the old tag now gets the new page; the new one a 304
	a := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", before.etag())
	if a.status != http.StatusOK || a.etag() != after.etag() {
		t.Errorf("If-None-Match the old tag: status %d, ETag %q; want 200 and %q", a.status, a.etag(), after.etag())
	}
	checkNotModified(t, "If-None-Match the new tag", MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", after.etag()), after.etag())
}

// A hot id's dist copy keeps both encodings with the app's tags, answers
// 304 itself, and an edit gives it new tags.
func TestGzipHotCopy(t *testing.T) {
	const id = 4741
	url := pageURL(shared, strconv.Itoa(id))
	app := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip")
	appPlain := MustFetch(t, http.MethodGet, url)
	if app.servedBy == "dist" {
		t.Fatalf("before the pin: served by the dist")
	}
	MustPin(t, shared, id)
	if _, err := servedBy(url, "dist", 3*time.Second); err != nil {
		t.Fatalf("pinned id not served by the dist: %v", err)
	}
	gz := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip")
	plain := MustFetch(t, http.MethodGet, url)
	for _, a := range []rawAnswer{gz, plain} {
		if a.servedBy != "dist" || a.header.Get("X-Cache") != "hot" {
			t.Fatalf("X-Served-By %q, X-Cache %q; want the dist copy", a.servedBy, a.header.Get("X-Cache"))
		}
	}
	checkPlain(t, "dist copy, plain", plain)
	checkGzip(t, "dist copy, gzip", gz, plain)
	if gz.etag() != app.etag() || plain.etag() != appPlain.etag() || !bytes.Equal(gz.body, app.body) {
		t.Errorf("dist copy: ETags %q / %q, the app node's %q / %q; same gzip bytes: %v",
			gz.etag(), plain.etag(), app.etag(), appPlain.etag(), bytes.Equal(gz.body, app.body))
	}
	for _, inm := range []string{gz.etag(), "W/" + gz.etag(), "*"} {
		a := MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", inm)
		checkNotModified(t, "dist copy, If-None-Match "+inm, a, gz.etag())
		if a.servedBy != "dist" {
			t.Errorf("304 from %q, want the dist itself", a.servedBy)
		}
	}
	checkNotModified(t, "dist copy, plain", MustFetch(t, http.MethodGet, url, "If-None-Match", plain.etag()), plain.etag())
	h := MustFetch(t, http.MethodHead, url, "Accept-Encoding", "gzip")
	if h.status != http.StatusOK || len(h.body) != 0 || h.servedBy != "dist" || h.header.Get("Content-Encoding") != "gzip" ||
		h.header.Get("Content-Length") != strconv.Itoa(len(gz.body)) || h.etag() != gz.etag() {
		t.Errorf("dist copy, HEAD gzip: status %d, %d body bytes, headers %v; want the GET's (%d bytes, %s)",
			h.status, len(h.body), h.header, len(gz.body), gz.etag())
	}
	checkPlain(t, "dist copy, gzip;q=0", MustFetch(t, http.MethodGet, url, "Accept-Encoding", "gzip;q=0", "If-None-Match", gz.etag()))

	name := fmt.Sprintf("Hot gzip <edit> %d", time.Now().UnixNano())
	MustRename(t, shared, id, name)
	after := editedTag(t, url, gz.etag(), 5*time.Second)
	if !strings.Contains(string(gunzip(t, after.body)), escape(name)) {
		t.Errorf("the rawAnswer with the new ETag %q does not show the edit", after.etag())
	}
	// and the dist serves the new version's copy, with its tag
	err := testutil.PollEvery(3*time.Second, 25*time.Millisecond, func() error {
		a, err := fetch(http.MethodGet, url, "Accept-Encoding", "gzip", "If-None-Match", after.etag())
		if err != nil {
			return err
		}
		if a.servedBy != "dist" || a.status != http.StatusNotModified {
			return fmt.Errorf("X-Served-By %q, status %d", a.servedBy, a.status)
		}
		return nil
	})
	if err != nil {
		t.Errorf("after the edit, no 304 from a new dist copy: %v", err)
	}
}
