package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/garret-cache/garret/api/token"
)

// TestAtticConfigFound: with no Garret config but atticd's own
// ~/.config/attic/server.toml, make-token and the node use it (and say so)
// instead of generating a config with a new signing key, which would
// invalidate every token Attic issued.
func TestAtticConfigFound(t *testing.T) {
	home := t.TempDir()
	atticPath := filepath.Join(home, ".config", "attic", "server.toml")
	if err := os.MkdirAll(filepath.Dir(atticPath), 0o700); err != nil {
		t.Fatal(err)
	}
	secret := []byte("attic's-own-signing-secret-attic's-own")
	text := "listen = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite:///var/lib/atticd/server.db?mode=rwc\"\n[storage]\ntype = \"local\"\npath = \"/var/lib/atticd/storage\"\n" +
		"[chunking]\nnar-size-threshold = 65536\nmin-size = 16384\navg-size = 65536\nmax-size = 262144\n" +
		"[jwt.signing]\ntoken-hs256-secret-base64 = \"YXR0aWMncy1vd24tc2lnbmluZy1zZWNyZXQtYXR0aWMncy1vd24=\"\n"
	if err := os.WriteFile(atticPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home}
	why := "using Attic's " + atticPath

	signed, stderr, code := run(t, command(t, "garretd", env, "make-token", "--sub", "alice", "--validity", "1 hour", "--pull", "*"))
	if code != 0 || !strings.Contains(stderr, why) {
		t.Fatalf("make-token: exit %d, stderr %q", code, stderr)
	}
	auth, err := token.NewAuthority(token.Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Verify(strings.TrimSpace(signed)); err != nil {
		t.Fatalf("the token is not signed with Attic's key: %v", err)
	}

	srv := command(t, "garretd", env)
	out := startUntil(t, srv, "node started")
	if !strings.Contains(out.String(), why) || strings.Contains(out.String(), "Welcome to Garret") {
		t.Fatalf("start with Attic's config:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(home, ".config", "garret", "server.toml")); !os.IsNotExist(err) {
		t.Fatalf("a Garret config was generated beside Attic's: %v", err)
	}
	_ = srv.Process.Signal(syscall.SIGTERM)
	if err := srv.Wait(); err != nil {
		t.Fatalf("node exit: %v", err)
	}
}
