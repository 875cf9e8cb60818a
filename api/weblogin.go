package api

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
)

// Web link lifetimes: the link itself, and the browser session it opens.
const (
	WebLinkValidity    = 10 * time.Minute
	webSessionValidity = 12 * time.Hour
)

// Signer signs tokens with the node's own token key (*token.Authority);
// token.ErrVerifyOnly when the node has only a public key.
type Signer interface {
	Sign(c *token.Claims) (string, error)
}

var _ Signer = (*token.Authority)(nil)

type loginData struct {
	Next, Error string
}

// loginPage is GET /_garret/login: the form.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	ws, err := s.webSessionOf(w, r)
	if err != nil {
		s.webError(w, r, err, false)
		return
	}
	d := loginData{Next: localPath(r.URL.Query().Get("next"), "/")}
	if ws.fault != nil {
		d.Error = "Your session ended: " + ws.fault.Error() + ". Log in again."
	}
	s.render(w, r, http.StatusOK, "login", webPage{Title: "Log in", LoggedIn: ws.claims != nil, Data: d})
}

// login is POST /_garret/login: a same-origin form with a token, verified as
// an API bearer token is, then kept in the cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		s.webError(w, r, withMessage(errAccess, "Log-in refused: %v.", err), false)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.webError(w, r, &Error{Status: http.StatusRequestEntityTooLarge, Kind: "RequestError", Message: "The log-in form is larger than 16 KiB."}, false)
			return
		}
		s.webError(w, r, requestError("the log-in form cannot be read: %v", err), false)
		return
	}
	d := loginData{Next: localPath(r.PostForm.Get("next"), "/")}
	raw := strings.TrimSpace(r.PostForm.Get("token"))
	fail := func(status int, msg string) {
		d.Error = msg
		s.render(w, r, status, "login", webPage{Title: "Log in", Data: d})
	}
	switch {
	case raw == "":
		fail(http.StatusBadRequest, "Paste a token (garretd make-token prints one).")
		return
	case len(raw) > maxWebToken:
		fail(http.StatusBadRequest, "This token is longer than a browser can keep in a cookie (3800 bytes). Mint one for fewer cache patterns.")
		return
	}
	c, err := s.verifyToken(raw)
	if err != nil {
		s.webError(w, r, err, false)
		return
	}
	if c.claims == nil {
		fail(http.StatusUnauthorized, "This token was refused: "+c.fault.Error()+".")
		return
	}
	s.setCookie(w, r, raw, c.claims.ExpiresAt)
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

// logout is GET /_garret/logout: clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.clearCookie(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// createWebLink is POST /_api/v1/cluster/web-link (`garret cluster status
// --web`): a link, valid WebLinkValidity, whose token is signed by this
// node's token key and opens the cluster page only. Needs the cluster-admin
// claim.
func (s *Server) createWebLink(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "a web link to the cluster page"); err != nil {
		return err
	}
	if s.cluster == nil {
		return errNotFound
	}
	now := time.Now()
	raw, exp, err := s.signPageToken(callerOf(r).subject(), newJTI(), now, WebLinkValidity)
	if err != nil {
		return err
	}
	link := strings.TrimSuffix(s.apiEndpoint(r), "/") + WebPrefix + "/link?token=" + url.QueryEscape(raw)
	return writeJSON(w, v1.WebLinkResponse{URL: link, ExpiresAt: exp})
}

// signPageToken mints a token that opens the cluster page and nothing else
// (no cache permission, no cluster-admin claim; the API refuses its scope).
func (s *Server) signPageToken(subject, jti string, now time.Time, validity time.Duration) (string, time.Time, error) {
	if s.signer == nil {
		return "", time.Time{}, &Error{Status: http.StatusNotImplemented, Kind: "NotImplemented", Message: "This node cannot sign tokens."}
	}
	nbf, exp := now.Truncate(time.Second), now.Truncate(time.Second).Add(validity)
	raw, err := s.signer.Sign(&token.Claims{Subject: subject, ID: jti, NotBefore: &nbf, ExpiresAt: &exp, Scope: token.ScopeClusterPage})
	if errors.Is(err, token.ErrVerifyOnly) {
		return "", time.Time{}, requestError("this node has only the public key of the token signer ([jwt.signing] with an RS256 public key), so it cannot sign web links; log in on the cluster page with a cluster-admin token instead")
	}
	return raw, exp, err
}

func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openWebLink is GET /_garret/link?token=…: checks the link's token like any
// other, then keeps a session token for the cluster page in the cookie and
// redirects to the page, so the link's token is neither left in the address
// bar nor in the history. The session token has the link's jti and
// subject: revoking either ends the session too.
func (s *Server) openWebLink(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("token")
	if raw == "" || len(raw) > maxWebToken {
		s.webError(w, r, requestError("this is not a web link (garret cluster status --web prints one)"), false)
		return
	}
	c, err := s.verifyToken(raw)
	if err != nil {
		s.webError(w, r, err, false)
		return
	}
	switch {
	case c.claims == nil:
		s.webError(w, r, withMessage(errUnauthorized, "This link does not open the cluster page: %v. Run garret cluster status --web again.", c.fault), false)
		return
	case c.claims.Scope != token.ScopeClusterPage:
		s.webError(w, r, requestError("this link does not carry a web link's token; log in with a token on %s/login instead", WebPrefix), false)
		return
	}
	session, exp, err := s.signPageToken(c.claims.Subject, c.claims.ID, time.Now(), webSessionValidity)
	if err != nil {
		s.webError(w, r, err, false)
		return
	}
	s.setCookie(w, r, session, &exp)
	http.Redirect(w, r, WebPrefix+"/cluster", http.StatusSeeOther)
}
