package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// orderedCaches decodes the caches object in document order.
type orderedCaches []CachePermission

func (o orderedCaches) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.Pattern)
		v, _ := e.Permission.MarshalJSON()
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (o *orderedCaches) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return errors.New("token: caches must be an object")
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := kt.(string)
		if !patternRE.MatchString(key) {
			return fmt.Errorf("%w %q", ErrBadPattern, key)
		}
		var p Permission
		if err := dec.Decode(&p); err != nil {
			return err
		}
		*o = append(*o, CachePermission{Pattern: key, Permission: p})
	}
	_, err = dec.Token()
	return err
}

type atticClaim struct {
	Caches *orderedCaches `json:"caches"`
}

type garretClaim struct {
	ClusterAdmin int    `json:"cluster_admin,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// wireClaims is the JWT payload.
type wireClaims struct {
	jwt.RegisteredClaims
	Attic  *atticClaim  `json:"https://jwt.attic.rs/v1"`
	Garret *garretClaim `json:"https://jwt.garret.dev/v1,omitempty"`
}

func numeric(t *time.Time) *jwt.NumericDate {
	if t == nil {
		return nil
	}
	return jwt.NewNumericDate(*t)
}

func fromNumeric(d *jwt.NumericDate) *time.Time {
	if d == nil {
		return nil
	}
	t := d.Time
	return &t
}

func toWire(c *Claims) *wireClaims {
	caches := orderedCaches(c.Caches)
	if caches == nil {
		caches = orderedCaches{}
	}
	w := &wireClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: c.Subject, Issuer: c.Issuer, ID: c.ID, Audience: c.Audience,
			ExpiresAt: numeric(c.ExpiresAt), NotBefore: numeric(c.NotBefore), IssuedAt: numeric(c.IssuedAt),
		},
		Attic: &atticClaim{Caches: &caches},
	}
	if c.ClusterAdmin || c.Scope != "" {
		w.Garret = &garretClaim{Scope: c.Scope}
		if c.ClusterAdmin {
			w.Garret.ClusterAdmin = 1
		}
	}
	return w
}

func fromWire(w *wireClaims) (*Claims, error) {
	if w.Attic == nil || w.Attic.Caches == nil {
		return nil, fmt.Errorf("token is missing the %s claim", AtticClaim)
	}
	return &Claims{
		Subject: w.Subject, Issuer: w.Issuer, ID: w.ID, Audience: w.Audience,
		ExpiresAt: fromNumeric(w.ExpiresAt), NotBefore: fromNumeric(w.NotBefore), IssuedAt: fromNumeric(w.IssuedAt),
		Caches:       *w.Attic.Caches,
		ClusterAdmin: w.Garret != nil && w.Garret.ClusterAdmin == 1,
		Scope:        scopeOf(w.Garret),
	}, nil
}

// MarshalJSON renders the claims as the token payload (for --dump-claims).
func (c *Claims) MarshalJSON() ([]byte, error) { return json.Marshal(toWire(c)) }

func scopeOf(g *garretClaim) string {
	if g == nil {
		return ""
	}
	return g.Scope
}
