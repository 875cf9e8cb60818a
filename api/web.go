package api

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/garret-cache/garret/api/token"
)

// WebPrefix is the path prefix of the web pages' own routes (log-in, the
// cluster page, static files). A cache name cannot start with '_' (see
// nixid.ParseCacheName), so it can never collide with a cache's routes.
const WebPrefix = "/_garret"

// webCookie holds a token for the web pages (never for the API: a cookie
// the browser sends by itself must not authorize API writes).
const webCookie = "garret_token"

// Bounds on what a browser sends.
const (
	// maxWebToken is the longest token kept in a cookie: browsers drop
	// cookies past about 4096 bytes, name and attributes included.
	maxWebToken = 3800
	// maxLoginForm bounds the log-in form's body.
	maxLoginForm = 16 << 10
	// maxWebCaches is how many caches a page lists ("and N more" after).
	maxWebCaches = 200
	// webRefresh is the cluster page's self-refresh interval, in seconds.
	webRefresh = 5
)

//go:embed web
var webFiles embed.FS

// webStatic serves the embedded CSS under /_garret/static/.
var webStatic = func() http.Handler {
	sub, err := fs.Sub(webFiles, "web/static")
	if err != nil {
		panic(err)
	}
	return http.StripPrefix(WebPrefix+"/static/", http.FileServer(http.FS(sub)))
}()

// webPages are the parsed templates, one set per page (each page fills the
// layout's "content" block).
var webPages = func() map[string]*template.Template {
	funcs := template.FuncMap{
		"bytes":    humanBytes,
		"bytesf":   func(f float64) string { return humanBytes(int64(f)) },
		"ago":      ago,
		"duration": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
		"seconds":  func(s float64) string { return (time.Duration(s*10) * time.Second / 10).String() },
		"ms":       func(f float64) string { return fmt.Sprintf("%.1f ms", f) },
		"prefix":   func() string { return WebPrefix },
	}
	out := map[string]*template.Template{}
	for _, page := range []string{"index", "cluster", "login", "error"} {
		out[page] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(webFiles, "web/layout.html", "web/"+page+".html"))
	}
	return out
}()

// webPage is what every page's layout needs besides the page's own data.
type webPage struct {
	Title    string
	Node     string
	LoggedIn bool
	Refresh  int // seconds; 0: none
	Now      time.Time
	Data     any
}

// render writes a page with status; a template failure is a plain 500
// (nothing has been sent yet: the page is rendered to a buffer first).
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, p webPage) {
	p.Node, p.Now = s.cfg.NodeName, time.Now().UTC()
	if p.Node == "" {
		p.Node = "garret"
	}
	var b bytes.Buffer
	if err := webPages[page].Execute(&b, p); err != nil {
		s.log.Error("rendering a web page", "page", page, "request_id", requestID(r), "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No script, no frames, no third parties; a Referer only to this site
	// (not no-referrer: Chromium then sends "Origin: null" with the log-in
	// POST, which sameOrigin could not tell from a cross-site one).
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

// webError renders err as an HTML page: an *Error with its status and
// message, anything else as a 500 whose detail is only logged.
func (s *Server) webError(w http.ResponseWriter, r *http.Request, err error, loggedIn bool) {
	var e *Error
	if !errors.As(err, &e) {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "request_id", requestID(r), "err", err)
		e = errInternal
	}
	s.render(w, r, e.Status, "error", webPage{Title: http.StatusText(e.Status), LoggedIn: loggedIn,
		Data: struct{ Status, Message, RequestID string }{fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status)), e.Message, requestID(r)}})
}

// webRoutes adds the web pages to the mux.
func (s *Server) webRoutes(m *http.ServeMux) {
	m.Handle("GET /{$}", http.HandlerFunc(s.indexPage))
	m.Handle("GET "+WebPrefix+"/static/", webStatic)
	m.Handle("GET "+WebPrefix+"/login", http.HandlerFunc(s.loginPage))
	m.Handle("POST "+WebPrefix+"/login", http.HandlerFunc(s.login))
	m.Handle("GET "+WebPrefix+"/logout", http.HandlerFunc(s.logout))
	m.Handle("GET "+WebPrefix+"/link", http.HandlerFunc(s.openWebLink))
	m.Handle("GET "+WebPrefix+"/cluster", http.HandlerFunc(s.clusterPage))
	m.Handle("POST /_api/v1/cluster/web-link", s.handle(s.createWebLink))
}

// webSession is who looks at a page: the verified claims of the
// Authorization header or of the cookie, the reason a cookie's token was
// refused (then the cookie is cleared), or anonymous.
type webSession struct {
	claims *token.Claims
	fault  error
}

// webSessionOf authenticates a page request. A token in Authorization is
// taken as the API takes it; otherwise the cookie's token goes through the
// same check (verifyToken: signature, expiry, revocations) on every request,
// so a revocation ends a browser session at its next page.
func (s *Server) webSessionOf(w http.ResponseWriter, r *http.Request) (webSession, error) {
	if c := callerOf(r); c.claims != nil {
		return webSession{claims: c.claims}, nil
	}
	ck, err := r.Cookie(webCookie)
	if err != nil || ck.Value == "" {
		return webSession{}, nil
	}
	if len(ck.Value) > maxWebToken {
		s.clearCookie(w, r)
		return webSession{fault: errors.New("the session cookie is too long")}, nil
	}
	c, err := s.verifyToken(ck.Value)
	if err != nil {
		return webSession{}, err // revocations unreadable: 503, never let through
	}
	if c.claims == nil {
		s.clearCookie(w, r)
		return webSession{fault: c.fault}, nil
	}
	return webSession{claims: c.claims}, nil
}

// seesCluster reports whether the session may open the cluster page.
func (ws webSession) seesCluster() bool {
	return ws.claims != nil && (ws.claims.ClusterAdmin || ws.claims.Scope == token.ScopeClusterPage)
}

// isTLS reports whether the browser reached us over TLS (directly, or
// through a proxy that says so): the cookie is then Secure.
func isTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// setCookie stores a token for the web pages: HttpOnly (no script reads
// it), SameSite=Strict (no other site's request carries it), Secure over
// TLS, for the whole site, until the token expires (a browser-session
// cookie if it does not say).
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, raw string, exp *time.Time) {
	ck := &http.Cookie{Name: webCookie, Value: raw, Path: "/", HttpOnly: true, Secure: isTLS(r), SameSite: http.SameSiteStrictMode}
	if exp != nil {
		ck.Expires = exp.UTC()
	}
	http.SetCookie(w, ck)
}

func (s *Server) clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: webCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: isTLS(r), SameSite: http.SameSiteStrictMode})
}

// sameOrigin refuses a cross-site POST: the Origin (or, without one, the
// Referer) must name the host the request was sent to, and the browser
// must not label it cross-site (Fetch Metadata). A POST that says none of
// these is refused too: every current browser sends Origin or
// Sec-Fetch-Site with a form POST.
func sameOrigin(r *http.Request) error {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" && site != "none" {
		return fmt.Errorf("the browser says the request came from another site (Sec-Fetch-Site: %s)", site)
	}
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	if from == "" {
		if site == "same-origin" {
			return nil
		}
		return errors.New("the request has neither Origin nor Referer, so its origin cannot be checked")
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" {
		return fmt.Errorf("the request's origin %q is not a URL", from)
	}
	if !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("the request came from %s, not from %s", u.Host, r.Host)
	}
	return nil
}

// localPath returns next if it is a path on this site ("/…", not "//…"
// nor "/\…", which browsers take for another host), else def.
func localPath(next, def string) string {
	if len(next) > 512 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return def
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return def
	}
	return next
}

// humanBytes is a size in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ago is how long before now t was, rounded for people.
func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return "never"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f h ago", d.Hours())
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}
