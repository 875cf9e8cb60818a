package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	v1 "github.com/garret-cache/garret/api/v1"
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

// revokeToken is POST /_api/v1/revoke-token: records a token id in the catalog
// so every node treats the token as anonymous; needs the cluster-admin claim.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := requireClusterAdmin(r, "revoking tokens"); err != nil {
		return err
	}
	var req v1.RevokeTokenRequest
	if err := s.decodeJSON(w, r, &req); err != nil {
		return err
	}
	jti, exp := req.JTI, time.Now().Add(100*365*24*time.Hour)
	if req.Token != "" {
		var err error
		if jti, exp, err = unverifiedIdentity(req.Token); err != nil {
			return requestError("%v", err)
		}
	}
	if jti == "" || len(jti) > 128 {
		return requestError("give the token's jti or the token itself")
	}
	if err := catalogError(s.catalog.RevokeToken(r.Context(), jti, exp)); err != nil {
		return err
	}
	return writeJSON(w, v1.RevokeTokenResponse{JTI: jti})
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
