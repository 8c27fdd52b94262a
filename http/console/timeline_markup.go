package console

import (
	"html"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The bars and the table rows are written here rather than by the templates: a timeline has
// up to timelineMaxGrants of each, and html/template's escaping of some 30 actions per grant
// took most of a page's time (25 ms for 860 grants). Every value is escaped with
// html.EscapeString, which is correct both in text and in a double-quoted attribute.

// barsHTML is the markup of c's bars.
func (c *chart) barsHTML() template.HTML {
	var b strings.Builder
	b.Grow(len(c.Bars) * 300)
	for _, r := range c.Bars {
		b.WriteString(`<g class="tl-bar`)
		if r.BreakGlass {
			b.WriteString(` tl-bg`)
		}
		b.WriteString(`" data-request="`)
		b.WriteString(html.EscapeString(r.RequestID))
		b.WriteString(`"`)
		if r.ClippedStart {
			b.WriteString(` data-clipped="start"`)
		}
		b.WriteString(`><title>`)
		b.WriteString(html.EscapeString(r.Tip))
		b.WriteString(`</title>`)
		rect(&b, "tl-span", r.Class, r.X, r.Y, r.W, r.H)
		if r.PlannedW > 0 {
			rect(&b, "tl-planned", r.Class, r.PlannedX, r.Y, r.PlannedW, r.H)
		}
		if r.BreakGlass {
			b.WriteString(`<path class="tl-bg-mark" d="M`)
			writePx(&b, r.X)
			b.WriteByte(' ')
			writePx(&b, r.Y+12)
			b.WriteString(` l5 -10 l5 10 z"/>`)
		}
		b.WriteString("</g>\n")
	}
	return template.HTML(b.String())
}

// rect writes an SVG rect of classes kind and level (both the console's own names).
func rect(b *strings.Builder, kind, level string, x, y, w, h float64) {
	b.WriteString(`<rect class="`)
	b.WriteString(kind)
	b.WriteByte(' ')
	b.WriteString(html.EscapeString(level))
	for _, a := range [...]struct {
		name string
		v    float64
	}{{`" x="`, x}, {`" y="`, y}, {`" width="`, w}, {`" height="`, h}} {
		b.WriteString(a.name)
		writePx(b, a.v)
	}
	b.WriteString(`" rx="2"/>`)
}

// rowsHTML is the markup of c's table rows: person, database, level, from, to, duration and
// a link to the request, every time in the viewer's zone with the zone shown.
func (c *chart) rowsHTML() template.HTML {
	var b strings.Builder
	b.Grow(len(c.Rows) * 700)
	text := func(s ...string) {
		for _, p := range s {
			b.WriteString(html.EscapeString(p))
		}
	}
	timeTag := func(t time.Time) {
		b.WriteString(`<time datetime="`)
		b.WriteString(isoTime(t))
		b.WriteString(`">`)
		text(whenIn(t, c.Zone))
		b.WriteString(`</time>`)
	}
	for _, r := range c.Rows {
		b.WriteString(`<tr data-request="`)
		text(r.ID)
		b.WriteString("\">\n  <th scope=\"row\">")
		text(r.Person)
		b.WriteString("</th>\n  <td>")
		text(r.Database)
		// The level's colour beside its name (the name says it; the key is decoration).
		b.WriteString("</td>\n  <td><span class=\"tl-key ")
		text(r.Class)
		b.WriteString(`"></span>`)
		text(r.Level)
		if r.BreakGlass {
			b.WriteString(` <strong class="tl-bg-label">break-glass</strong>`)
		}
		if r.Tampered {
			b.WriteString(` <strong class="error">edited in the store</strong>`)
		}
		b.WriteString("</td>\n  <td>")
		timeTag(r.From)
		if r.BeforeRange {
			b.WriteString(` <span class="muted">(before the range)</span>`)
		}
		b.WriteString("</td>\n  <td>")
		switch {
		case !r.To.IsZero():
			timeTag(r.To)
			b.WriteString(` <span class="muted">(`)
			text(string(r.State))
			b.WriteString(`)</span>`)
		case r.Removing:
			b.WriteString(`now — removal under way`)
		default:
			b.WriteString(`now — active until `)
			timeTag(r.End)
		}
		b.WriteString("</td>\n  <td>")
		text(shortDuration(r.Duration))
		if r.To.IsZero() {
			b.WriteString(` <span class="muted">so far</span>`)
		}
		b.WriteString("</td>\n  <td><a href=\"/requests/")
		text(url.PathEscape(r.ID))
		b.WriteString(`">`)
		text(r.ID)
		b.WriteString("</a></td>\n</tr>\n")
	}
	return template.HTML(b.String())
}

// isoTime is the templates' iso: t for a <time datetime> attribute.
func isoTime(t time.Time) string { return funcs["iso"].(func(time.Time) string)(t) }

// px writes an SVG coordinate to a tenth of a unit.
func px(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// writePx writes px(v) to b without allocating.
func writePx(b *strings.Builder, v float64) {
	var buf [24]byte
	b.Write(strconv.AppendFloat(buf[:0], v, 'f', 1, 64))
}
