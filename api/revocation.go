package api

import (
	"net/http"

	"github.com/garret-cache/garret/api/token"
	"github.com/garret-cache/garret/replication/catalog"
)

// errRevocationsUnreadable refuses a token when the catalog cannot say
// whether it was revoked: a read error never lets a token through.
func errRevocationsUnreadable(cause error) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Kind: "ServiceUnavailable",
		Message: "Token revocations cannot be read right now, so no token is accepted; try again later.", cause: cause}
}

// revoked checks verified claims against every revocation: the token's jti,
// and every rule (catalog.RevocationRule), on every request.
func (s *Server) revoked(c *token.Claims) (bool, error) {
	if c.ID != "" {
		if ok, err := s.catalog.IsRevoked(c.ID); err != nil {
			return false, errRevocationsUnreadable(err)
		} else if ok {
			return true, nil
		}
	}
	rules, err := s.catalog.RevocationRules()
	if err != nil {
		return false, errRevocationsUnreadable(err)
	}
	for _, r := range rules {
		if ruleRevokes(r, c) {
			return true, nil
		}
	}
	return false, nil
}

// ruleRevokes applies one rule: the subject, if the rule names one, is the
// token's; the token grants something on a cache the pattern matches, if the
// rule has one; and the token was issued before the rule's time. A token
// that says neither when it was issued (no iat, no nbf) counts as issued
// before any time.
func ruleRevokes(r catalog.RevocationRule, c *token.Claims) bool {
	if r.Subject != "" && c.Subject != r.Subject {
		return false
	}
	if r.CachePattern != "" && !c.Grants(r.CachePattern) {
		return false
	}
	issued, ok := c.Issued()
	return !ok || issued.Before(r.IssuedBefore)
}
