package token

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
)

// ErrVerifyOnly is returned by Sign when only a public key is configured.
var ErrVerifyOnly = errors.New("token: only a public key is configured, cannot create tokens")

// Config selects the signing key (exactly one) and the claim bindings.
type Config struct {
	HS256Secret     []byte
	RS256PrivateKey *rsa.PrivateKey
	RS256PublicKey  *rsa.PublicKey
	Issuer          string   // required iss when set
	Audiences       []string // required aud (any of) when set
	Leeway          time.Duration
}

// Authority signs and verifies tokens.
type Authority struct {
	cfg    Config
	method jwt.SigningMethod
	sign   any
	verify any

	verified *lru.Cache[[sha256.Size]byte, *Claims] // verified.go
	now      func() time.Time                       // time.Now; tests move it
}

// NewAuthority checks the config and prepares the keys.
func NewAuthority(cfg Config) (*Authority, error) {
	n := 0
	for _, set := range []bool{len(cfg.HS256Secret) > 0, cfg.RS256PrivateKey != nil, cfg.RS256PublicKey != nil && cfg.RS256PrivateKey == nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("token: configure exactly one of an HS256 secret, an RS256 private key or an RS256 public key")
	}
	a := &Authority{cfg: cfg, now: time.Now}
	a.verified, _ = lru.New[[sha256.Size]byte, *Claims](maxVerified) // errors only for a size ≤ 0
	switch {
	case len(cfg.HS256Secret) > 0:
		a.method, a.sign, a.verify = jwt.SigningMethodHS256, cfg.HS256Secret, cfg.HS256Secret
	case cfg.RS256PrivateKey != nil:
		a.method, a.sign, a.verify = jwt.SigningMethodRS256, cfg.RS256PrivateKey, &cfg.RS256PrivateKey.PublicKey
	default:
		a.method, a.verify = jwt.SigningMethodRS256, cfg.RS256PublicKey
	}
	return a, nil
}

// Sign returns the compact JWT for c.
func (a *Authority) Sign(c *Claims) (string, error) {
	if a.sign == nil {
		return "", ErrVerifyOnly
	}
	w := toWire(c)
	if w.Issuer == "" {
		w.Issuer = a.cfg.Issuer
	}
	if len(w.Audience) == 0 {
		w.Audience = a.cfg.Audiences
	}
	return jwt.NewWithClaims(a.method, w).SignedString(a.sign)
}

// Verify checks signature, algorithm, time claims (with leeway; exp is
// required, as Attic requires it), issuer and audience, and returns the
// claims. The error names the fault. A token verified before is found in a
// small cache (verified.go) and only its time claims are checked again; the
// claims returned are then shared, and callers must not change them.
func (a *Authority) Verify(raw string) (*Claims, error) {
	now := a.now()
	keep := len(raw) <= maxVerifiedToken
	var key [sha256.Size]byte
	if keep {
		key = sha256.Sum256([]byte(raw))
		if c, ok := a.verified.Get(key); ok && a.inForce(c, now) {
			return c, nil
		}
	}
	c, err := a.verifyAt(raw, now)
	if err == nil && keep {
		a.verified.Add(key, c)
	}
	return c, err
}

func (a *Authority) verifyAt(raw string, now time.Time) (*Claims, error) {
	var w wireClaims
	_, err := jwt.ParseWithClaims(raw, &w, func(t *jwt.Token) (any, error) { return a.verify, nil },
		jwt.WithValidMethods([]string{a.method.Alg()}), jwt.WithLeeway(a.cfg.Leeway), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return nil, describe(err, raw)
	}
	if a.cfg.Issuer != "" && w.Issuer != a.cfg.Issuer {
		return nil, fmt.Errorf("token issuer %q is not %q", w.Issuer, a.cfg.Issuer)
	}
	if len(a.cfg.Audiences) > 0 && !slices.ContainsFunc(w.Audience, func(s string) bool { return slices.Contains(a.cfg.Audiences, s) }) {
		return nil, fmt.Errorf("token audience %v is not one of %v", []string(w.Audience), a.cfg.Audiences)
	}
	return fromWire(&w)
}

// describe turns jwt's errors into short, precise messages.
func describe(err error, raw string) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return errors.New("token is expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errors.New("token is not valid yet")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if alg := headerAlg(raw); alg != "" && alg != "HS256" && alg != "RS256" {
			return fmt.Errorf("token uses alg %q, which is not accepted", alg)
		}
		return errors.New("token signature is invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return fmt.Errorf("token uses alg %q, which is not accepted", headerAlg(raw))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errors.New("token has no expiry (exp claim); every token must have one")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New(err.Error()) // jwt's text names the part: "token is malformed: …"
	}
	return fmt.Errorf("token is invalid: %v", err)
}

func headerAlg(raw string) string {
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return ""
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	_ = json.Unmarshal(b, &hdr)
	return hdr.Alg
}

// FromRequest extracts the token from "Bearer <jwt>" or the password of
// "Basic base64(user:password)".
func FromRequest(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return "", false
	}
	switch strings.ToLower(scheme) {
	case "bearer":
		rest = strings.TrimSpace(rest)
		return rest, rest != ""
	case "basic":
		_, pass, ok := r.BasicAuth()
		return pass, ok && pass != ""
	}
	return "", false
}

// ParseRS256PrivateKeyPEM parses a PKCS#1 or PKCS#8 RSA private key.
func ParseRS256PrivateKeyPEM(b []byte) (*rsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("token: RS256 secret is not PEM")
	}
	if k, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: RS256 secret: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("token: RS256 secret is not an RSA key")
	}
	return rk, nil
}

// ParseRS256PublicKeyPEM parses a PKIX or PKCS#1 RSA public key.
func ParseRS256PublicKeyPEM(b []byte) (*rsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("token: RS256 public key is not PEM")
	}
	if k, err := x509.ParsePKCS1PublicKey(blk.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("token: RS256 public key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("token: RS256 public key is not an RSA key")
	}
	return rk, nil
}
