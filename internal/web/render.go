package web

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// pageNames are the templates in templates/, each defining "content" and
// rendered inside layout.html.
var pageNames = []string{"login", "overview", "contractors", "contractor", "offboard",
	"tokens", "issued", "audit", "requests", "reports", "revoked", "proof", "problem"}

var funcs = template.FuncMap{
	"when": when,
	"join": strings.Join,
	"ttl":  ttl,
	"list": func(v ...string) []string { return v },
}

// when formats a time for a page, "never" if zero.
func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func (h *Handler) parse() error {
	h.pages = make(map[string]*template.Template)
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return err
		}
		h.pages[name] = t
	}
	return nil
}

// view is what the layout renders.
type view struct {
	Title string
	Nav   string // the current section, for aria-current
	User  string // the signed-in admin's name, empty when signed out
	Token string // the signed-in admin token's id
	can   func(resource, action string) bool
	Data  any
}

// Can reports whether the signed-in admin holds admin:RESOURCE:ACTION.
func (v view) Can(resource, action string) bool { return v.can != nil && v.can(resource, action) }

func (h *Handler) render(w http.ResponseWriter, u *user, status int, page, title string, data any) {
	v := view{Title: title, Nav: page, Data: data}
	if u != nil {
		v.User, v.Token, v.can = u.s.name, u.s.tokenID, u.s.can
		if v.User == "" {
			v.User = u.s.tokenID
		}
	}
	var buf bytes.Buffer
	if err := h.pages[page].Execute(&buf, v); err != nil {
		h.cfg.Log.Error("web: render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (h *Handler) problem(w http.ResponseWriter, r *http.Request, u *user, status int, msg string) {
	h.render(w, u, status, "problem", http.StatusText(status), msg)
}
