package notify

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"

	"github.com/timebox-dev/timebox"
)

// maxSubject bounds a subject, in runes: a title built from long names stays readable.
const maxSubject = 200

// compose writes m as a multipart/alternative message (text/plain, then text/html, both
// UTF-8) to the given recipients; it returns the message and its Message-ID.
func (e *Email) compose(m *Message, to []*mail.Address) (*gomail.Msg, string) {
	s := m.Summary
	if s == nil {
		s = summarize(m, e.console)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(e.from)
	msg.ToMailAddress(to...)
	msg.Subject(e.subject(s.Title))
	id := e.messageID(m)
	msg.SetMessageIDWithValue(id)
	if thread := e.threadID(m); thread != "" {
		msg.SetGenHeader(gomail.HeaderInReplyTo, "<"+thread+">")
		msg.SetGenHeader(gomail.HeaderReferences, "<"+thread+">")
	}
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	date := s.Time
	if date.IsZero() {
		date = time.Now()
	}
	msg.SetDateWithValue(date)
	footer := e.footer(m)
	msg.SetBodyString(gomail.TypeTextPlain, s.Text()+"\n-- \n"+footer+"\n")
	msg.AddAlternativeString(gomail.TypeTextHTML, renderEmailHTML(s, footer))
	return msg, "<" + id + ">"
}

// subject is the prefix and the title on one line: control characters (CR, LF, tabs) become
// spaces, so nothing in a title (a name, a database) can start a header of its own.
func (e *Email) subject(title string) string {
	s := headerText(e.prefix + " " + title)
	if utf8.RuneCountInString(s) > maxSubject {
		r := []rune(s)
		s = string(r[:maxSubject-1]) + "…"
	}
	return s
}

// headerText replaces control characters and Unicode line or paragraph separators with
// spaces and squeezes runs of blanks.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// messageID returns the Message-ID (without brackets) of m's delivery: a hash of its
// idempotency key, so that a retry after a crash mid-delivery carries the same Message-ID
// (receivers that deduplicate drop the copy), salted with the console's URL and the sender,
// so that two installations (staging and production) sending to the same list never share
// one. A message without a delivery (a preview) gets a random one.
func (e *Email) messageID(m *Message) string {
	key := ""
	if m.Delivery != nil {
		key = m.Delivery.Key
	}
	if key == "" {
		return "timebox." + timebox.RandomID(26) + "@" + e.domain()
	}
	h := sha256.Sum256([]byte("timebox email message-id v1\x00" + e.idSalt + "\x00" + key))
	return "timebox." + hex.EncodeToString(h[:16]) + "@" + e.domain()
}

// threadID returns the id (without brackets) that every message about m's request refers
// to in In-Reply-To and References, so that mail clients thread them; "" without a request.
func (e *Email) threadID(m *Message) string {
	id := ""
	switch {
	case m.Request != nil:
		id = m.Request.ID
	case m.Delivery != nil && m.Delivery.RequestID != "":
		id = m.Delivery.RequestID
	case m.Event != nil:
		id = m.Event.RequestID
	}
	id = strings.Map(func(r rune) rune {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_') {
			return r
		}
		return -1
	}, id)
	if id == "" {
		return ""
	}
	return "request-" + id + ".timebox@" + e.domain()
}

// domain is the sender's domain, the right-hand side of this channel's Message-IDs.
func (e *Email) domain() string {
	a := e.from.Address
	return strings.ToLower(a[strings.LastIndexByte(a, '@')+1:])
}

// footer says why the recipient gets the message.
func (e *Email) footer(m *Message) string {
	if m.Recipient != nil {
		return "Sent by Timebox to " + m.Recipient.Name + ": you asked for this access or may review it."
	}
	return "Sent by Timebox to the list of its " + e.name + " channel."
}

// emailHTML lays out a Summary for mail clients: tables and inline styles only (no CSS
// classes, no scripts, no images), buttons as styled links into the console.
var emailHTML = template.Must(template.New("email").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.S.Title}}</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7;"><tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="width:100%;max-width:600px;background:#ffffff;border:1px solid #dfe1e6;border-radius:6px;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#172b4d;">
<tr><td style="padding:20px 24px 6px;font-size:18px;font-weight:600;line-height:1.35;">{{.S.Title}}</td></tr>
{{- if .S.Status}}
<tr><td style="padding:0 24px 14px;font-size:14px;color:#42526e;">{{.S.Status}}</td></tr>
{{- end}}
{{- if .S.Facts}}
<tr><td style="padding:0 24px 14px;"><table role="presentation" cellpadding="0" cellspacing="0" style="width:100%;border-collapse:collapse;font-size:14px;">
{{- range .S.Facts}}
<tr><th align="left" valign="top" style="padding:6px 12px 6px 0;border-top:1px solid #ebecf0;font-weight:600;white-space:nowrap;color:#42526e;">{{.Name}}</th><td style="padding:6px 0;border-top:1px solid #ebecf0;white-space:pre-wrap;">{{.Value}}</td></tr>
{{- end}}
</table></td></tr>
{{- end}}
{{- if .S.Links}}
<tr><td style="padding:6px 24px 22px;">
{{- range $i, $l := .S.Links}}
<a href="{{$l.URL}}" style="display:inline-block;margin:0 8px 8px 0;padding:10px 18px;border-radius:4px;font-size:14px;font-weight:600;text-decoration:none;{{if eq $i 0}}background:#0052cc;color:#ffffff;{{else}}background:#ffffff;color:#0052cc;border:1px solid #0052cc;{{end}}">{{$l.Text}}</a>
{{- end}}
</td></tr>
{{- end}}
<tr><td style="padding:12px 24px 18px;border-top:1px solid #ebecf0;font-size:12px;color:#6b778c;">{{.Footer}}</td></tr>
</table></td></tr></table>
</body></html>
`))

// renderEmailHTML renders s; html/template escapes every value and refuses a link that is
// not http(s) (it becomes "#ZgotmplZ").
func renderEmailHTML(s *Summary, footer string) string {
	var b bytes.Buffer
	if err := emailHTML.Execute(&b, struct {
		S      *Summary
		Footer string
	}{s, footer}); err != nil {
		// The template and its data are fixed types: Execute fails only on a write error,
		// which a bytes.Buffer does not have.
		return template.HTMLEscapeString(s.Text())
	}
	return b.String()
}
