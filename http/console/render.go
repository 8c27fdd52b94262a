package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/timebox-dev/timebox"
)

// pages are the parsed templates: each page is templates/layout.html, every partial
// (templates/_*.html) and its own templates/NAME.html, which defines "content".
type pages struct{ byName map[string]*template.Template }

func loadPages() (*pages, error) {
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	var partials []string
	for _, f := range files {
		if strings.HasPrefix(path.Base(f), "_") {
			partials = append(partials, f)
		}
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, f := range files {
		base := path.Base(f)
		if base == "layout.html" || strings.HasPrefix(base, "_") {
			continue
		}
		t := template.New("layout.html").Funcs(funcs)
		if _, err := t.ParseFS(assets, append([]string{"templates/layout.html", f}, partials...)...); err != nil {
			return nil, fmt.Errorf("console template %s: %w", base, err)
		}
		p.byName[strings.TrimSuffix(base, ".html")] = t
	}
	return p, nil
}

// view is what every page's template gets: the page's own Data, and what the layout needs.
type view struct {
	Title   string
	Page    string // the template's name, for the navigation's current item
	User    *timebox.User
	Admin   bool
	Auditor bool
	CSRF    string
	Zone    *time.Location
	Now     time.Time
	// Live says the page updates in place (from the feed or, without one, every Refresh).
	Live    bool
	Refresh int // seconds
	Data    any
}

// fragmentHeader asks for the content of a page without its layout: the console's script
// sends it when a change makes it reload the page's content in place.
const fragmentHeader = "X-Timebox-Fragment"

// render writes page name with data and status. A request with fragmentHeader gets only the
// page's "content".
func (s *Server) render(w http.ResponseWriter, r *http.Request, c *call, status int, name, title string, data any) {
	t := s.pages.byName[name]
	if t == nil {
		s.Logger.Error("console: no template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// A page answering a POST (a form with its errors, a secret shown once) has no URL to
	// reload, and a form being filled in must not be replaced under the typist; a page for
	// nobody signed in has no stream to listen to.
	v := &view{Title: title, Page: name, User: c.User, Zone: c.Zone, Now: s.Service.Now(), Data: data,
		Live: c.User != nil && r.Method == http.MethodGet && !still(data), Refresh: int(s.Refresh / time.Second)}
	if c.User != nil {
		v.Admin = s.Service.Catalog.IsAdmin(c.User.Name)
		v.Auditor = s.Service.Catalog.IsAuditor(c.User.Name)
	}
	if c.Session != nil {
		v.CSRF = c.Session.CSRF
	}
	exec := "layout.html"
	if r.Header.Get(fragmentHeader) != "" {
		exec = "content"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, exec, v); err != nil {
		s.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// still reports whether data is a page that must not update in place (its Still method
// says so).
func still(data any) bool {
	st, ok := data.(interface{ Still() bool })
	return ok && st.Still()
}

// withCSRF sets the CSRF token of a page shown before sign-in (pages rendered for a
// signed-in person get the session's).
func (v *view) withCSRF(token string) *view { v.CSRF = token; return v }

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	// when formats t in zone, with the zone shown: "2026-12-03 14:05 CET"; "—" for zero.
	"when": func(t time.Time, zone *time.Location) string {
		if t.IsZero() {
			return "—"
		}
		return t.In(zone).Format("2006-01-02 15:04 MST")
	},
	// iso is t for a <time datetime> attribute.
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	// left is how long until t from now, rounded ("1h 5m", "40s"; "ended" when past).
	"left": func(t, now time.Time) string {
		if !t.After(now) {
			return "ended"
		}
		return shortDuration(t.Sub(now))
	},
	"duration": shortDuration,
	"join":     strings.Join,
}

// shortDuration writes d as people read it: "2h 30m", "5m 10s", "45s", "3d 4h".
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// staticHandler serves the embedded static files (long-cached: they change only with the
// binary, and their URLs carry its build).
func staticHandler() http.Handler {
	sub, _ := fs.Sub(assets, "static")
	fsrv := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}
