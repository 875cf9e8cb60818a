package main

import (
	"os"
	"strings"
	"testing"

	"github.com/garret-cache/garret/internal/serverconfig"
	"github.com/garret-cache/garret/node"
)

// TestAdminNames: run as garretadm, atticadm, garretd-garretadm or
// atticd-atticadm, garretd is the admin tool: its help lists make-token and
// atticadm's command line mints a token the server accepts.
func TestAdminNames(t *testing.T) {
	cfgPath := writeConfig(t, t.TempDir(), "")
	cfg, err := serverconfig.Load(cfgPath, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := node.TokenAuthority(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"garretadm", "atticadm", "garretd-garretadm", "atticd-atticadm"} {
		help, stderr, code := run(t, command(t, name, nil, "--help"))
		if code != 0 || !strings.Contains(help, "make-token") || strings.Contains(help, "--mode") || !strings.Contains(help, name) {
			t.Fatalf("%s --help: exit %d\n%s%s", name, code, help, stderr)
		}
		signed, stderr, code := run(t, command(t, name, nil, "-f", cfgPath, "make-token", "--sub", "alice", "--validity", "1 hour", "--pull", "dev-*", "--push", "dev"))
		if code != 0 {
			t.Fatalf("%s make-token: exit %d: %s", name, code, stderr)
		}
		claims, err := auth.Verify(strings.TrimSpace(signed))
		if err != nil || claims.Subject != "alice" {
			t.Fatalf("%s make-token: %q does not verify: %v", name, signed, err)
		}
	}
	_, stderr, code := run(t, command(t, "atticadm", nil, "make-token", "--sub", "alice"))
	oneLine(t, "atticadm make-token without --validity", stderr, code, `atticadm: required flag(s) "validity" not set`)
	// Every token expires: a validity of zero mints nothing.
	_, stderr, code = run(t, command(t, "atticadm", nil, "-f", cfgPath, "make-token", "--sub", "alice", "--validity", "0s"))
	oneLine(t, "make-token --validity 0s", stderr, code, "validity must be positive")
	// Under its own name it stays the server.
	if help, _, _ := run(t, command(t, "garretd", nil, "--help")); !strings.Contains(help, "--mode") {
		t.Fatalf("garretd --help:\n%s", help)
	}
}
