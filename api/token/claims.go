package token

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/garret-cache/garret/internal/nixid"
)

// Claim namespaces.
const (
	AtticClaim  = "https://jwt.attic.rs/v1"
	GarretClaim = "https://jwt.garret.dev/v1"
)

// ValidPattern reports whether p is a cache name or pattern tokens can carry.
func ValidPattern(p string) bool { return patternRE.MatchString(p) }

// ErrBadPattern is returned for a cache pattern outside Attic's alphabet.
var ErrBadPattern = errors.New("token: invalid cache pattern")

var patternRE = regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9\-_+*]{0,49}$`)

// Permission is what a token allows on one cache.
type Permission struct {
	Pull, Push, Delete, CreateCache, ConfigureCache, ConfigureCacheRetention, DestroyCache bool
}

// Any reports whether any permission is granted (Attic's "can discover").
func (p Permission) Any() bool {
	return p.Pull || p.Push || p.Delete || p.CreateCache || p.ConfigureCache || p.ConfigureCacheRetention || p.DestroyCache
}

func (p *Permission) fields() []struct {
	key string
	v   *bool
} {
	return []struct {
		key string
		v   *bool
	}{{"r", &p.Pull}, {"w", &p.Push}, {"d", &p.Delete}, {"cc", &p.CreateCache}, {"cr", &p.ConfigureCache}, {"cq", &p.ConfigureCacheRetention}, {"cd", &p.DestroyCache}}
}

// MarshalJSON emits only granted keys, as integers.
func (p Permission) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, f := range p.fields() {
		if *f.v {
			if n > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:1", f.key)
			n++
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON accepts integer 0/1 values only (Attic's BoolFromInt).
func (p *Permission) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	for _, f := range p.fields() {
		raw, ok := m[f.key]
		if !ok {
			continue
		}
		switch string(raw) {
		case "1":
			*f.v = true
		case "0":
			*f.v = false
		default:
			return fmt.Errorf("token: permission %q must be 0 or 1, got %s", f.key, raw)
		}
	}
	return nil
}

// CachePermission is one pattern entry of the caches claim.
type CachePermission struct {
	Pattern    string
	Permission Permission
}

// Claims is a verified or to-be-signed token.
type Claims struct {
	Subject, Issuer, ID            string
	Audience                       []string
	ExpiresAt, NotBefore, IssuedAt *time.Time
	Caches                         []CachePermission // document order
	ClusterAdmin                   bool
	// Scope, when set, narrows the token to one use instead of the API
	// (ScopeClusterPage); "" for ordinary tokens.
	Scope string
}

// ScopeClusterPage is the scope of the tokens behind `garret cluster status
// --web` links: they open the cluster web page and nothing else.
const ScopeClusterPage = "cluster-page"

// PermissionFor resolves a cache name: an exact entry alone if present,
// else the first matching wildcard pattern in document order. Never merged.
func (c *Claims) PermissionFor(cache nixid.CacheName) Permission {
	for _, e := range c.Caches {
		if e.Pattern == string(cache) {
			return e.Permission
		}
	}
	for _, e := range c.Caches {
		if wildmatch(e.Pattern, string(cache)) {
			return e.Permission
		}
	}
	return Permission{}
}

// wildmatch matches s against p where '*' is any sequence.
func wildmatch(p, s string) bool {
	if !strings.Contains(p, "*") {
		return p == s
	}
	parts := strings.Split(p, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i := 1; i < len(parts)-1; i++ {
		j := strings.Index(s, parts[i])
		if j < 0 {
			return false
		}
		s = s[j+len(parts[i]):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

// MintOptions are atticadm make-token's flags.
type MintOptions struct {
	Subject                                                                                string
	Validity                                                                               time.Duration
	Now                                                                                    time.Time
	Pull, Push, Delete, CreateCache, ConfigureCache, ConfigureCacheRetention, DestroyCache []string
	ClusterAdmin                                                                           bool
}

// NewClaims builds claims the way atticadm does (sub, exp, nbf; entries in
// flag order, a repeated pattern adding bits to its first entry) plus a random jti.
func NewClaims(o MintOptions) (*Claims, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Validity <= 0 {
		return nil, fmt.Errorf("token: validity must be positive (every token expires), got %v", o.Validity)
	}
	now := o.Now.Truncate(time.Second)
	exp := now.Add(o.Validity)
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	c := &Claims{Subject: o.Subject, ID: hex.EncodeToString(jti[:]), ExpiresAt: &exp, NotBefore: &now, ClusterAdmin: o.ClusterAdmin}
	index := map[string]int{}
	groups := []struct {
		patterns []string
		set      func(*Permission)
	}{
		{o.Pull, func(p *Permission) { p.Pull = true }},
		{o.Push, func(p *Permission) { p.Push = true }},
		{o.Delete, func(p *Permission) { p.Delete = true }},
		{o.CreateCache, func(p *Permission) { p.CreateCache = true }},
		{o.ConfigureCache, func(p *Permission) { p.ConfigureCache = true }},
		{o.ConfigureCacheRetention, func(p *Permission) { p.ConfigureCacheRetention = true }},
		{o.DestroyCache, func(p *Permission) { p.DestroyCache = true }},
	}
	for _, g := range groups {
		for _, pat := range g.patterns {
			if !patternRE.MatchString(pat) {
				return nil, fmt.Errorf("%w %q", ErrBadPattern, pat)
			}
			i, ok := index[pat]
			if !ok {
				i = len(c.Caches)
				index[pat] = i
				c.Caches = append(c.Caches, CachePermission{Pattern: pat})
			}
			g.set(&c.Caches[i].Permission)
		}
	}
	return c, nil
}

// Issued is when the token was issued: its iat, else its nbf (atticadm and
// garretd mint nbf = now and no iat); ok is false when it has neither.
func (c *Claims) Issued() (t time.Time, ok bool) {
	switch {
	case c.IssuedAt != nil:
		return *c.IssuedAt, true
	case c.NotBefore != nil:
		return *c.NotBefore, true
	}
	return time.Time{}, false
}

// Grants reports whether the token grants any permission on some cache
// name that pattern matches: one of its entries with a permission has a
// pattern that matches a name pattern also matches.
func (c *Claims) Grants(pattern string) bool {
	for _, e := range c.Caches {
		if e.Permission.Any() && PatternsOverlap(e.Pattern, pattern) {
			return true
		}
	}
	return false
}

// PatternsOverlap reports whether some name matches both patterns, where
// '*' matches any sequence: each '*' of one pattern may absorb any run of
// the other's characters and stars.
func PatternsOverlap(a, b string) bool {
	memo := map[[2]int]bool{}
	var f func(i, j int) bool
	f = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var r bool
		switch {
		case i == len(a) && j == len(b):
			r = true
		case i < len(a) && a[i] == '*':
			r = f(i+1, j) || (j < len(b) && f(i, j+1))
		case j < len(b) && b[j] == '*':
			r = f(i, j+1) || (i < len(a) && f(i+1, j))
		case i < len(a) && j < len(b) && a[i] == b[j]:
			r = f(i+1, j+1)
		}
		memo[k] = r
		return r
	}
	return f(0, 0)
}
