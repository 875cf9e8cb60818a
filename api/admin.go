package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
)

// deletePaths is POST /_api/v1/delete-paths: removes store paths from a cache
// at once (narinfo lookups 404 from the next request); needs d.
func (s *Server) deletePaths(w http.ResponseWriter, r *http.Request) error {
	name, hashes, err := s.pathsRequest(w, r, needDelete)
	if err != nil {
		return err
	}
	n, err := s.catalog.DeleteObjects(r.Context(), name, hashes)
	if err := catalogError(err); err != nil {
		return err
	}
	return writeJSON(w, v1.DeletePathsResponse{Deleted: n})
}

// requireClusterAdmin checks Garret's cluster-admin claim.
func requireClusterAdmin(r *http.Request, what string) error {
	c := callerOf(r)
	if c.claims == nil {
		return c.unauthorized()
	}
	if !c.claims.ClusterAdmin {
		return withMessage(errAccess, "Access error: %s needs the cluster-admin permission (garretd make-token --cluster-admin).", what)
	}
	return nil
}

// clusterStatus is GET /_api/v1/cluster; needs the cluster-admin claim.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "the cluster status"); err != nil {
		return err
	}
	if s.cluster == nil {
		return errNotFound
	}
	return writeJSON(w, s.cluster.ClusterStatus(r.Context()))
}

// revokeToken is POST /_api/v1/revoke-token: records a token id, or a rule
// revoking tokens by subject and/or cache pattern issued before a time, in
// the catalog, so every node treats the tokens as anonymous; needs the
// cluster-admin claim.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "revoking tokens"); err != nil {
		return err
	}
	var req v1.RevokeTokenRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	byID, byRule := req.JTI != "" || req.Token != "", req.Subject != "" || req.Cache != ""
	switch {
	case byID && byRule:
		return requestError("give a token (jti or token) or a rule (subject, cache, issued_before), not both")
	case byRule:
		return s.revokeByRule(w, r, req)
	case req.IssuedBefore != nil:
		return requestError("issued_before needs a subject or a cache pattern")
	}
	jti, exp := req.JTI, time.Now().Add(100*365*24*time.Hour)
	if req.Token != "" {
		var err error
		if jti, exp, err = unverifiedIdentity(req.Token); err != nil {
			return requestError("%v", err)
		}
	}
	if jti == "" || len(jti) > 128 {
		return requestError("give the token's jti or the token itself, or a subject or cache pattern")
	}
	if err := catalogError(s.catalog.RevokeToken(r.Context(), jti, exp)); err != nil {
		return err
	}
	return writeJSON(w, v1.RevokeTokenResponse{JTI: jti})
}

// revokeByRule records a revocation rule; issued_before defaults to now.
func (s *Server) revokeByRule(w http.ResponseWriter, r *http.Request, req v1.RevokeTokenRequest) error {
	rule := catalog.RevocationRule{Subject: req.Subject, CachePattern: req.Cache, IssuedBefore: time.Now().UTC()}
	if req.IssuedBefore != nil {
		rule.IssuedBefore = req.IssuedBefore.UTC()
	}
	switch {
	case len(rule.Subject) > catalog.MaxStringBytes:
		return requestError("the subject is longer than %d bytes", catalog.MaxStringBytes)
	case rule.CachePattern != "" && !token.ValidPattern(rule.CachePattern):
		return requestError("%q is not a cache name or pattern (letters, digits, -_+ and * wildcards, at most 50)", rule.CachePattern)
	}
	err := s.catalog.RevokeTokens(r.Context(), rule)
	if errors.Is(err, catalog.ErrTooManyRevocationRules) {
		return requestError("%d revocation rules are stored, the most there can be: rotate the signing key instead", catalog.MaxRevocationRules)
	}
	if err := catalogError(err); err != nil {
		return err
	}
	ib := rule.IssuedBefore
	return writeJSON(w, v1.RevokeTokenResponse{Subject: rule.Subject, Cache: rule.CachePattern, IssuedBefore: &ib})
}

// unverifiedIdentity reads jti and exp from a token without checking its
// signature: revoking an id is harmless whoever names it.
func unverifiedIdentity(raw string) (string, time.Time, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", time.Time{}, errTokenFormat
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", time.Time{}, errTokenFormat
	}
	var claims struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		return "", time.Time{}, errTokenFormat
	}
	if claims.JTI == "" {
		return "", time.Time{}, errNoJTI
	}
	exp := time.Now().Add(100 * 365 * 24 * time.Hour)
	if claims.Exp > 0 {
		exp = time.Unix(claims.Exp, 0)
	}
	return claims.JTI, exp, nil
}

var (
	errTokenFormat = requestError("not a JWT")
	errNoJTI       = requestError("the token has no jti (tokens minted by atticadm have none; rotate the signing key instead)")
)

// listCaches is GET /_api/v1/caches: the caches the caller can discover
// (any permission on the name, or public).
func (s *Server) listCaches(w http.ResponseWriter, r *http.Request) error {
	caches, err := s.catalog.Caches()
	if err != nil {
		return err
	}
	c := callerOf(r)
	out := v1.ListCachesResponse{Caches: []v1.CacheSummary{}}
	for _, cache := range caches {
		if !cache.IsPublic && !c.permission(cache.Name).Any() {
			continue
		}
		key, err := s.keys.get(cache.Keypair)
		if err != nil {
			return err
		}
		out.Caches = append(out.Caches, v1.CacheSummary{Name: string(cache.Name), IsPublic: cache.IsPublic, Priority: cache.Priority, PublicKey: key.PublicKey()})
	}
	return writeJSON(w, out)
}
