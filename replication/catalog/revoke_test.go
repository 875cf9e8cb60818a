package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestCatalog_RevocationRules(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	t1, t2 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, r := range []RevocationRule{
		{Subject: "alice", IssuedBefore: t2},
		{Subject: "alice", IssuedBefore: t1}, // replaces, keeps the later time
		{CachePattern: "prod-*", IssuedBefore: t1},
		{Subject: "ci", CachePattern: "prod-*", IssuedBefore: t1},
	} {
		if err := n.cat.RevokeTokens(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := n.cat.RevocationRules()
	if err != nil || len(rules) != 3 {
		t.Fatalf("rules %+v, %v", rules, err)
	}
	for _, r := range rules {
		if r.Subject == "alice" && r.CachePattern == "" && !r.IssuedBefore.Equal(t2) {
			t.Fatalf("replaced rule %+v lost the later time", r)
		}
	}
	for name, r := range map[string]RevocationRule{
		"empty":       {IssuedBefore: t1},
		"no time":     {Subject: "x"},
		"bad pattern": {CachePattern: "prod/*", IssuedBefore: t1},
	} {
		if err := n.cat.RevokeTokens(ctx, r); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestFSM_RevocationRulesBounded(t *testing.T) {
	f := memFSM(t)
	var raws [][]byte
	for i := range MaxRevocationRules + 1 {
		b, _ := json.Marshal(cmdOf(&revokeTokens{Rule: &RevocationRule{Subject: fmt.Sprint("s", i), IssuedBefore: time.Unix(1, 0)}}))
		raws = append(raws, b)
	}
	again, _ := json.Marshal(cmdOf(&revokeTokens{Rule: &RevocationRule{Subject: "s0", IssuedBefore: time.Unix(2, 0)}}))
	r := applyEntry(f, encodeBatch(append(raws, again)))
	for i, res := range r {
		want := error(nil)
		if i == MaxRevocationRules {
			want = ErrTooManyRevocationRules
		}
		if !errors.Is(res.err, want) {
			t.Fatalf("rule %d: %v, want %v", i, res.err, want)
		}
	}
}

// TestCatalog_RevocationsGeneration: the generation moves with every entry
// that revokes tokens (both kinds), not with other writes
// (the API keeps "not revoked" verdicts while it stands).
func TestCatalog_RevocationsGeneration(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	ctx := context.Background()
	if err := n.cat.CreateCache(ctx, Cache{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	g0 := n.cat.RevocationsGeneration()
	if err := n.cat.PutObject(ctx, object("g", 1)); err != nil {
		t.Fatal(err)
	}
	if g := n.cat.RevocationsGeneration(); g != g0 {
		t.Fatalf("a put-object moved the revocations generation %d → %d", g0, g)
	}
	if err := n.cat.RevokeToken(ctx, "jti-g", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	g1 := n.cat.RevocationsGeneration()
	if g1 == g0 {
		t.Fatal("revoke-token did not move the revocations generation")
	}
	if err := n.cat.RevokeTokens(ctx, RevocationRule{Subject: "alice", IssuedBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if g := n.cat.RevocationsGeneration(); g == g1 {
		t.Fatal("revoke-tokens did not move the revocations generation")
	}
}
