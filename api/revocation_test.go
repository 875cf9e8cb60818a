package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/garret-cache/garret/api/token"
	v1 "github.com/garret-cache/garret/api/v1"
	"github.com/garret-cache/garret/replication/catalog"
)

func (e *testEnv) revoke(tok, body string) (int, []byte) {
	e.t.Helper()
	return e.do("POST", "/_api/v1/revoke-token", tok, strings.NewReader(body), nil)
}

func TestRevokeToken_BySubjectAndByCache(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("prod-a", false)
	e.createCache("dev-a", false)
	admin := e.mint(token.MintOptions{Subject: "admin", Validity: time.Hour, ClusterAdmin: true})
	earlier := time.Now().Add(-time.Minute)
	mintAt := func(sub string, at time.Time, caches ...string) string {
		return e.mint(token.MintOptions{Subject: sub, Validity: time.Hour, Now: at, Pull: caches})
	}
	alice := mintAt("alice", earlier, "prod-a", "dev-a")
	bob := mintAt("bob", earlier, "dev-*")
	ci := mintAt("ci", earlier, "prod-*")
	pull := func(tok, cache string) int {
		st, _ := e.do("GET", "/"+cache+"/nix-cache-info", tok, nil, nil)
		return st
	}
	for _, tok := range []string{alice, bob, ci} {
		if pull(tok, "dev-a") != 200 && pull(tok, "prod-a") != 200 {
			t.Fatal("a token did not work before any revocation")
		}
	}
	if st, b := e.revoke(e.root, `{"subject":"alice"}`); st != 403 {
		t.Fatalf("a rule without cluster-admin: %d %s", st, b)
	}
	// By subject, issued before now (the default).
	st, b := e.revoke(admin, `{"subject":"alice"}`)
	var res v1.RevokeTokenResponse
	if st != 200 || json.Unmarshal(b, &res) != nil || res.Subject != "alice" || res.IssuedBefore == nil {
		t.Fatalf("revoke by subject: %d %s", st, b)
	}
	if st := pull(alice, "dev-a"); st != 401 {
		t.Fatalf("alice's old token after revocation: %d", st)
	}
	if st := pull(mintAt("alice", time.Now().Add(2*time.Second), "dev-a"), "dev-a"); st != 200 {
		t.Fatalf("alice's token minted after the rule: %d", st)
	}
	if pull(bob, "dev-a") != 200 || pull(ci, "prod-a") != 200 {
		t.Fatal("a subject rule revoked other subjects' tokens")
	}
	// By cache pattern, issued before a time: tokens granting anything on
	// a matching cache go, others stay.
	body := `{"cache":"prod-a","issued_before":"` + time.Now().UTC().Format(time.RFC3339) + `"}`
	if st, b := e.revoke(admin, body); st != 200 {
		t.Fatalf("revoke by cache: %d %s", st, b)
	}
	if st := pull(ci, "prod-a"); st != 401 {
		t.Fatalf("a prod-* token after a prod-a rule: %d", st)
	}
	if pull(bob, "dev-a") != 200 {
		t.Fatal("a cache rule revoked a token for other caches")
	}
	for _, bad := range []string{`{"cache":"prod/a"}`, `{"subject":"x","jti":"y"}`, `{"issued_before":"2026-01-01T00:00:00Z"}`, `{"subject":"x","issued_before":"yesterday"}`} {
		if st, b := e.revoke(admin, bad); st != 400 {
			t.Errorf("%s: %d %s", bad, st, b)
		}
	}
}

func TestAuthenticate_TokenWithoutExpiry(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "forever",
		token.AtticClaim: map[string]any{"caches": map[string]any{"*": map[string]int{"r": 1}}}}).SignedString([]byte("test-secret-test-secret-test-secret!"))
	if err != nil {
		t.Fatal(err)
	}
	st, b := e.do("GET", "/main/nix-cache-info", raw, nil, nil)
	if st != 401 || !strings.Contains(string(b), "expiry") {
		t.Fatalf("a token without exp: %d %s", st, b)
	}
}

// unreadableRevocations is the catalog with its revocation reads failing.
type unreadableRevocations struct {
	Catalog
	rules bool // fail RevocationRules; else IsRevoked
}

var errDisk = errors.New("pebble: injected read error")

func (u unreadableRevocations) IsRevoked(jti string) (bool, error) {
	if !u.rules {
		return false, errDisk
	}
	return u.Catalog.IsRevoked(jti)
}

func (u unreadableRevocations) RevocationRules() ([]catalog.RevocationRule, error) {
	if u.rules {
		return nil, errDisk
	}
	return u.Catalog.RevocationRules()
}

func TestAuthenticate_RevocationReadErrorRefuses(t *testing.T) {
	e := newTestEnv(t)
	e.createCache("main", false)
	tok := e.mint(token.MintOptions{Subject: "u", Validity: time.Hour, Pull: []string{"main"}})
	for _, rules := range []bool{false, true} {
		s := New(DefaultConfig(), Deps{Catalog: unreadableRevocations{Catalog: e.cat, rules: rules}, Store: e.store, Tokens: e.auth,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		srv := httptest.NewServer(s.Handler())
		resp, err := srv.Client().Do(func() *http.Request {
			r := httptest.NewRequest("GET", srv.URL+"/main/nix-cache-info", nil)
			r.RequestURI = ""
			r.Header.Set("Authorization", "Bearer "+tok)
			return r
		}())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		var eb v1.ErrorResponse
		if resp.StatusCode != 503 || json.Unmarshal(b, &eb) != nil || eb.Error != "ServiceUnavailable" || strings.Contains(string(b), "injected") {
			t.Errorf("rules=%v: %d %s", rules, resp.StatusCode, b)
		}
	}
}
