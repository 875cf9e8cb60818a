package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/garret-cache/garret/api/token"
	"github.com/garret-cache/garret/internal/nixid"
	"github.com/garret-cache/garret/replication/catalog"
)

// unrevokedMax bounds the claims whose not-revoked verdict is kept.
const unrevokedMax = 1024

// caller is who made the request: verified claims, or anonymous with the
// reason a presented token was refused (named in a 401's message).
type caller struct {
	claims *token.Claims
	fault  error
}

// authenticate reads the token from Authorization (Bearer, or the Basic
// password Nix sends from netrc). An invalid or revoked token makes the caller
// anonymous, as in Attic. The error is a 503 when revocations cannot be read.
func (s *Server) authenticate(r *http.Request) (caller, error) {
	raw, ok := token.FromRequest(r)
	if !ok {
		return caller{}, nil
	}
	c, err := s.verifyToken(raw)
	if err == nil && c.claims != nil && c.claims.Scope != "" {
		// A web link's token opens the cluster page only (see web.go).
		return caller{fault: errors.New("this token only opens the cluster web page")}, nil
	}
	return c, err
}

// verifyToken is the one check of a token, for the API (authenticate) and
// the web pages' cookie alike: signature, algorithm, expiry, issuer and
// audience (Verifier), then every revocation.
//
// A token found not revoked is remembered with the catalog's
// RevocationsGeneration read before the check (Server.unrevoked, at most
// unrevokedMax, least recently used out first), and not checked
// again until the generation moves: the check reads the catalog (a point
// read and a scan of the rules), 7 % of the node's CPU at the scale
// benchmark's 2.8k paths/s. Verify returns the same claims for the same
// token while it keeps its verification, which is what makes them a key.
func (s *Server) verifyToken(raw string) (caller, error) {
	gen := s.catalog.RevocationsGeneration() // before the revocation reads
	claims, err := s.tokens.Verify(raw)
	if err != nil {
		return caller{fault: err}, nil
	}
	if g, ok := s.unrevoked.Get(claims); ok && g == gen {
		return caller{claims: claims}, nil
	}
	if revoked, err := s.revoked(claims); err != nil {
		return caller{}, err
	} else if revoked {
		return caller{fault: errors.New("token has been revoked")}, nil
	}
	s.unrevoked.Add(claims, gen)
	return caller{claims: claims}, nil
}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(ctxCaller).(caller)
	return c
}

// subject is the token's sub claim, recorded as the uploader.
func (c caller) subject() string {
	if c.claims == nil {
		return ""
	}
	return c.claims.Subject
}

// permission is the caller's permission on a cache name, before visibility.
func (c caller) permission(name nixid.CacheName) token.Permission {
	if c.claims == nil {
		return token.Permission{}
	}
	return c.claims.PermissionFor(name)
}

// unauthorized is a 401 that names why a presented token did not count.
func (c caller) unauthorized() *Error {
	if c.fault != nil {
		return withMessage(errUnauthorized, "Unauthorized: %v.", c.fault)
	}
	return errUnauthorized
}

// need selects one permission bit.
type need func(token.Permission) bool

var (
	needPull      need = func(p token.Permission) bool { return p.Pull }
	needPush      need = func(p token.Permission) bool { return p.Push }
	needDelete    need = func(p token.Permission) bool { return p.Delete }
	needConfigure need = func(p token.Permission) bool { return p.ConfigureCache }
	needRetention need = func(p token.Permission) bool { return p.ConfigureCacheRetention }
	needDestroy   need = func(p token.Permission) bool { return p.DestroyCache }
)

// authorize loads a cache and checks the caller's permission on it, with
// Attic's discovery rule: a caller that has any permission on the name (or
// the cache is public) learns whether it exists (404) or what is missing
// (403); anyone else gets 401 whether the cache exists or not. Unlike Attic,
// callers are checked before any object lookup, so a private cache never
// reveals which paths it holds.
func (s *Server) authorize(r *http.Request, name nixid.CacheName, needs ...need) (catalog.Cache, error) {
	c := callerOf(r)
	perm := c.permission(name)
	cache, err := s.catalog.Cache(name)
	switch {
	case errors.Is(err, catalog.ErrNoSuchCache):
		if perm.Any() {
			return cache, errNoSuchCache
		}
		return cache, c.unauthorized()
	case err != nil:
		return cache, err
	}
	if cache.IsPublic {
		perm.Pull = true
	}
	for _, n := range needs {
		if !n(perm) {
			if perm.Any() {
				return cache, errAccess
			}
			return cache, c.unauthorized()
		}
	}
	return cache, nil
}

// parseCacheName validates the {cache} path segment.
func parseCacheName(r *http.Request) (nixid.CacheName, error) {
	raw := r.PathValue("cache")
	if strings.HasPrefix(raw, "_") {
		// The server's own namespace (/_api, /_garret): a cache name starts
		// alphanumeric, so this is a route that does not exist.
		return "", errNotFound
	}
	name, err := nixid.ParseCacheName(raw)
	if err != nil {
		return "", requestError("%v", err)
	}
	return name, nil
}

// catalogError maps catalog write errors to API errors.
func catalogError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, catalog.ErrNoSuchCache):
		return errNoSuchCache
	case errors.Is(err, catalog.ErrCacheExists):
		return errCacheExists
	case errors.Is(err, catalog.ErrNoSuchObject):
		return errNoSuchObject
	case errors.Is(err, catalog.ErrNotLeader):
		return unavailable(err)
	case errors.Is(err, catalog.ErrInvalidCommand):
		return requestError("%v", err)
	case errors.Is(err, catalog.ErrUpgradeFirst):
		return &Error{Status: http.StatusConflict, Kind: "UpgradeFirst", Message: err.Error(), cause: err}
	}
	return err
}
