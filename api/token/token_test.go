package token

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/garret-cache/garret/internal/nixid"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func mustAuthority(t *testing.T, cfg Config) *Authority {
	t.Helper()
	a, err := NewAuthority(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mint(t *testing.T, a *Authority, o MintOptions) string {
	t.Helper()
	c, err := NewClaims(o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAuthority_SignVerify(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{"HS256": {HS256Secret: secret}, "RS256": {RS256PrivateKey: rk}} {
		a := mustAuthority(t, cfg)
		tok := mint(t, a, MintOptions{Subject: "alice", Validity: time.Hour, Pull: []string{"dev-*"}, Push: []string{"dev-*"}, ClusterAdmin: true})
		c, err := a.Verify(tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Subject != "alice" || c.ID == "" || !c.ClusterAdmin || !c.PermissionFor("dev-x").Push || c.PermissionFor("prod").Any() {
			t.Fatalf("%s: claims %+v", name, c)
		}
	}
	verifyOnly := mustAuthority(t, Config{RS256PublicKey: &rk.PublicKey})
	if _, err := verifyOnly.Sign(&Claims{}); err != ErrVerifyOnly {
		t.Fatalf("verify-only Sign: %v", err)
	}
	rsTok := mint(t, mustAuthority(t, Config{RS256PrivateKey: rk}), MintOptions{Subject: "x", Validity: time.Hour, Pull: []string{"*"}})
	if _, err := verifyOnly.Verify(rsTok); err != nil {
		t.Fatalf("verify-only Verify: %v", err)
	}
	// An HS256 token presented to an RS256 authority is refused.
	if _, err := verifyOnly.Verify(mint(t, mustAuthority(t, Config{HS256Secret: secret}), MintOptions{Validity: time.Hour})); err == nil {
		t.Fatal("HS256 token accepted by RS256 authority")
	}
}

func TestAuthority_Faults(t *testing.T) {
	a := mustAuthority(t, Config{HS256Secret: secret, Leeway: 30 * time.Second})
	now := time.Now()
	enc := base64.RawURLEncoding
	payload := enc.EncodeToString([]byte(`{"sub":"x","https://jwt.attic.rs/v1":{"caches":{"*":{"r":1}}}}`))
	exp := now.Add(time.Hour).Unix()
	for name, tc := range map[string]struct {
		tok  string
		want string
	}{
		"expired":       {mint(t, a, MintOptions{Validity: time.Minute, Now: now.Add(-time.Hour)}), "expired"},
		"not yet valid": {mint(t, a, MintOptions{Validity: time.Hour, Now: now.Add(time.Hour)}), "not valid yet"},
		"wrong key":     {mint(t, mustAuthority(t, Config{HS256Secret: []byte("other-secret-other-secret-other!")}), MintOptions{Validity: time.Hour}), "signature is invalid"},
		"alg none":      {enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + ".", "none"},
		"malformed":     {"not.a.jwt", "malformed"},
		"missing claim": {signRaw(t, jwt.MapClaims{"sub": "x", "exp": exp}), AtticClaim},
		"bad pattern":   {signRaw(t, jwt.MapClaims{"sub": "x", "exp": exp, AtticClaim: map[string]any{"caches": map[string]any{"a/b": map[string]int{"r": 1}}}}), "pattern"},
		"bool not int":  {signRaw(t, jwt.MapClaims{"sub": "x", "exp": exp, AtticClaim: map[string]any{"caches": map[string]any{"a": map[string]bool{"r": true}}}}), "0 or 1"},
		"no exp":        {signRaw(t, jwt.MapClaims{"sub": "x", AtticClaim: map[string]any{"caches": map[string]any{"*": map[string]int{"r": 1}}}}), "no expiry"},
	} {
		_, err := a.Verify(tc.tok)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", name, err, tc.want)
		}
	}
	// Within the leeway is fine.
	if _, err := a.Verify(mint(t, a, MintOptions{Validity: time.Hour, Now: now.Add(10 * time.Second)})); err != nil {
		t.Fatalf("nbf within leeway: %v", err)
	}
}

func signRaw(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestClaims_OrderRule(t *testing.T) {
	a := mustAuthority(t, Config{HS256Secret: secret})
	// Hand-written, atticadm-shaped payload: the order of keys matters.
	raw := `{"sub":"alice","exp":4102324986,"https://jwt.attic.rs/v1":{"caches":{"*":{"r":1},"foo":{"w":1},"team-*":{"r":1,"w":1,"cc":1},"team-a*":{"cd":1}}}}`
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(raw))
	sig, err := jwt.SigningMethodHS256.Sign(unsigned, secret)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Verify(unsigned + "." + enc.EncodeToString(sig))
	if err != nil {
		t.Fatal(err)
	}
	for cache, want := range map[nixid.CacheName]Permission{
		"foo":    {Push: true}, // exact entry alone: push without pull
		"bar":    {Pull: true}, // first wildcard: "*"
		"team-a": {Pull: true}, // "*" comes before "team-*" in document order
	} {
		if got := c.PermissionFor(cache); got != want {
			t.Errorf("%s: %+v, want %+v", cache, got, want)
		}
	}
}

func TestNewClaims_AtticadmOrder(t *testing.T) {
	c, err := NewClaims(MintOptions{Subject: "s", Validity: time.Hour, Pull: []string{"a", "b"}, Push: []string{"b", "c"}, DestroyCache: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(c)
	if !strings.Contains(string(got), `"caches":{"a":{"r":1,"cd":1},"b":{"r":1,"w":1},"c":{"w":1}}`) {
		t.Fatalf("claims %s", got)
	}
	if _, err := NewClaims(MintOptions{Pull: []string{"bad/pattern"}}); err == nil {
		t.Fatal("bad pattern accepted")
	}
}

func TestFromRequest(t *testing.T) {
	for hdr, want := range map[string]string{
		"Bearer abc": "abc",
		"bearer abc": "abc",
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":tok")):     "tok",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("user:t:k")): "t:k",
		"Digest x": "",
		"":         "",
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if hdr != "" {
			r.Header.Set("Authorization", hdr)
		}
		got, ok := FromRequest(r)
		if got != want || ok != (want != "") {
			t.Errorf("%q: got %q %v", hdr, got, ok)
		}
	}
}

func TestParseRS256PEM(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})
	if k, err := ParseRS256PrivateKeyPEM(pkcs1); err != nil || !k.Equal(rk) {
		t.Fatalf("PKCS#1: %v", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	if k, err := ParseRS256PublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err != nil || !k.Equal(&rk.PublicKey) {
		t.Fatalf("PKIX: %v", err)
	}
	if _, err := ParseRS256PrivateKeyPEM([]byte("nope")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestNewClaims_AlwaysExpires(t *testing.T) {
	for _, v := range []time.Duration{0, -time.Hour} {
		if _, err := NewClaims(MintOptions{Subject: "x", Validity: v}); err == nil {
			t.Errorf("validity %v: a token was minted", v)
		}
	}
	c, err := NewClaims(MintOptions{Subject: "x", Validity: time.Minute})
	if err != nil || c.ExpiresAt == nil {
		t.Fatalf("claims %+v, %v", c, err)
	}
}

func TestPatternsOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"prod", "prod", true}, {"prod", "dev", false}, {"*", "prod-*", true}, {"prod-*", "prod-a", true},
		{"dev-*", "prod-*", false}, {"*-x", "prod-*", true}, {"p*", "prod-*", true}, {"a*b", "*c", false},
		{"a*b", "*b", true}, {"prod-a", "prod-b*", false}, {"*a*", "*b*", true}, {"ab", "a*b", true}, {"abc", "a*d", false},
	} {
		if got := PatternsOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("PatternsOverlap(%q, %q) = %v", tc.a, tc.b, got)
		}
		if got := PatternsOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("PatternsOverlap(%q, %q) = %v", tc.b, tc.a, got)
		}
	}
}

// TestClaims_Scope: a scope survives signing and verification, alone (no
// cluster-admin bit) or beside it; ordinary tokens have none.
func TestClaims_Scope(t *testing.T) {
	a := mustAuthority(t, Config{HS256Secret: secret})
	exp := time.Now().Add(time.Hour)
	for _, c := range []Claims{{Subject: "s", ExpiresAt: &exp, Scope: ScopeClusterPage}, {Subject: "s", ExpiresAt: &exp, Scope: "x", ClusterAdmin: true}, {Subject: "s", ExpiresAt: &exp}} {
		raw, err := a.Sign(&c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Verify(raw)
		if err != nil || got.Scope != c.Scope || got.ClusterAdmin != c.ClusterAdmin {
			t.Fatalf("signed %+v, verified %+v, %v", c, got, err)
		}
	}
}

// TestAuthority_KeptVerification: a token verified once is answered from
// the cache (the same claims), but its time claims are checked again on
// every Verify, with the same leeway: it expires and is "not valid yet"
// exactly as an uncached token would be.
func TestAuthority_KeptVerification(t *testing.T) {
	a := mustAuthority(t, Config{HS256Secret: secret, Leeway: 30 * time.Second})
	start := time.Now().Truncate(time.Second)
	clock := start
	a.now = func() time.Time { return clock }
	tok := mint(t, a, MintOptions{Subject: "alice", Validity: time.Hour, Now: start.Add(time.Minute), Pull: []string{"c"}})
	if _, err := a.Verify(tok); err == nil || err.Error() != "token is not valid yet" {
		t.Fatalf("before nbf − leeway: %v", err)
	}
	clock = start.Add(31 * time.Second) // nbf − leeway has passed
	c1, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c2, err := a.Verify(tok); err != nil || c2 != c1 {
		t.Fatalf("second verification: %p %v, want the kept %p", c2, err, c1)
	}
	clock = start.Add(time.Minute + time.Hour + 29*time.Second) // within exp + leeway
	if _, err := a.Verify(tok); err != nil {
		t.Fatalf("within the leeway after exp: %v", err)
	}
	clock = start.Add(time.Minute + time.Hour + 30*time.Second)
	if _, err := a.Verify(tok); err == nil || err.Error() != "token is expired" {
		t.Fatalf("a kept token at exp + leeway: %v", err)
	}
	// Another token with the same claims but a bad signature is not the
	// kept one.
	bad := tok[:len(tok)-2] + "AA"
	if bad == tok {
		bad = tok[:len(tok)-2] + "BB"
	}
	clock = start.Add(2 * time.Minute)
	if _, err := a.Verify(bad); err == nil {
		t.Fatal("a token with a changed signature verified")
	}
}
