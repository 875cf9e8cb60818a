package catalog

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestCatalog_NewCommandWaitsForEveryNode: a command type newer than the
// oldest node's version is refused before the log (so no replica skips
// it); older types go through; once every node is upgraded it goes through.
func TestCatalog_NewCommandWaitsForEveryNode(t *testing.T) {
	n := startNode(t, t.TempDir(), true)
	waitLeader(t, n.cat)
	var oldest atomic.Int64
	oldest.Store(1)
	n.cat.cfg.MinVersion = func() int { return int(oldest.Load()) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rule := RevocationRule{Subject: "alice", IssuedBefore: time.Now()}
	if err := n.cat.RevokeTokens(ctx, rule); !errors.Is(err, ErrUpgradeFirst) {
		t.Fatalf("a version-2 command with a version-1 node: %v", err)
	}
	if rules, _ := n.cat.RevocationRules(); len(rules) != 0 {
		t.Fatalf("the refused rule was stored: %+v", rules)
	}
	if err := n.cat.RevokeToken(ctx, "jti", time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("a version-1 command: %v", err)
	}
	oldest.Store(CommandVersion)
	if err := n.cat.RevokeTokens(ctx, rule); err != nil {
		t.Fatalf("after every node is upgraded: %v", err)
	}
	if cmdRevokeTokens.since() > CommandVersion {
		t.Fatal("a command type newer than this build's CommandVersion")
	}
}
