package seed

import (
	"html"
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode"

	"github.com/detailpage/detailpage/go/internal/catalog"
)

// makeDesc writes the description HTML: headings, paragraphs, lists, a
// spec table and one or two pictures, using only elements and attributes
// that bluemonday's UGC policy keeps, so sanitizing it is a no-op.
func makeDesc(r *rand.Rand, id int64, cat *category, sb *sub, name, short string, nImages int, groups []catalog.SpecGroup) string {
	var b strings.Builder
	b.Grow(4096)
	text := func(s string) { b.WriteString(html.EscapeString(s)) }
	h3 := func(s string) {
		b.WriteString("<h3>")
		text(s)
		b.WriteString("</h3>\n")
	}
	para := func(ss []string) {
		b.WriteString("<p>")
		for _, s := range ss {
			text(s)
		}
		b.WriteString("</p>\n")
	}
	img := func(n int) {
		b.WriteString(`<p><img src="`)
		b.WriteString(imageURL(id, n))
		b.WriteString(`" alt="`)
		text(altText(short) + " " + ViewLabel(n))
		b.WriteString(`"></p>` + "\n")
	}

	b.WriteString("<p><strong>")
	text(name)
	b.WriteString("</strong></p>\n")

	h3("产品亮点 Highlights")
	b.WriteString("<ul>\n")
	for _, pt := range append(choose(r, sb.points, 2+r.IntN(2)), choose(r, cat.points, 2+r.IntN(2))...) {
		b.WriteString("<li><strong>")
		text(pt)
		b.WriteString("</strong></li>\n")
	}
	b.WriteString("</ul>\n")

	img(1 + r.IntN(nImages-1))

	h3("产品介绍 About this item")
	// The category's sentences in a random order, in one or two paragraphs.
	perm := r.Perm(len(cat.sentences))
	perm = perm[:3+r.IntN(len(perm)-2)]
	split := len(perm)
	if len(perm) >= 4 && r.IntN(2) == 0 {
		split = 2 + r.IntN(len(perm)-3)
	}
	for _, part := range [][]int{perm[:split], perm[split:]} {
		if len(part) == 0 {
			continue
		}
		b.WriteString("<p>")
		for _, i := range part {
			text(cat.sentences[i])
		}
		b.WriteString("</p>\n")
	}

	h3("规格参数 Specifications")
	b.WriteString("<table>\n<tbody>\n")
	rows := 0
	for _, gr := range groups {
		for _, it := range gr.Items {
			if rows == 10 {
				break
			}
			rows++
			b.WriteString("<tr><th>")
			text(it.Name)
			b.WriteString("</th><td>")
			text(it.Value)
			b.WriteString("</td></tr>\n")
		}
	}
	b.WriteString("</tbody>\n</table>\n")

	if r.IntN(2) == 0 {
		img(r.IntN(nImages))
	}

	h3("包装清单 In the box")
	b.WriteString("<ul>\n")
	for _, x := range choose(r, cat.box, 2+r.IntN(len(cat.box)-1)) {
		b.WriteString("<li>")
		text(x)
		b.WriteString("</li>\n")
	}
	b.WriteString("</ul>\n")

	h3("售后保障 After-sales")
	para(choose(r, afterSales, 1+r.IntN(2)))
	b.WriteString("<p><small>商品编号 Item no. ")
	b.WriteString(strconv.FormatInt(id, 10))
	b.WriteString("</small></p>\n")
	return b.String()
}

// altText keeps the letters, digits and spaces of s: bluemonday's UGC
// policy drops an alt attribute with other punctuation (《》, +, &).
func altText(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(c rune) bool {
		return !(c == '-' || c == '_' || c == '.' || c == ',' || unicode.IsLetter(c) || unicode.IsNumber(c))
	}), " ")
}
