package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGuides replays the command lines of the two Attic setup guides
// (../shared/seeds), in their order, with attic → garret and
// atticadm / atticd-atticadm → garretd. nix-shell, `nix run` and fly lines are
// out of scope; /run/current-system is replaced by a closure built here.
func TestGuides(t *testing.T) {
	requireNix(t)
	s := newServer(t)
	home := t.TempDir()
	clientEnv := []string{"XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "HOME=" + home}
	garretRun := func(args ...string) string {
		t.Helper()
		return run(t, clientEnv, garret, args...)
	}

	// attic-on-nixos.txt
	root := s.makeToken("--sub", "root", "--validity", "1 hour", "--pull", "*", "--push", "*", "--delete", "*",
		"--create-cache", "*", "--configure-cache", "*", "--configure-cache-retention", "*", "--destroy-cache", "*")
	_ = s.makeToken("--sub", "hello-user", "--validity", "99 years", "--pull", "hello")
	garretRun("login", "mycache", strings.TrimSuffix(s.url, "/"), root)
	if cfg, err := os.ReadFile(filepath.Join(home, "config", "garret", "config.toml")); err != nil || !strings.Contains(string(cfg), "[servers.mycache]") {
		t.Fatalf("config.toml after login: %s %v", cfg, err)
	}
	if out := garretRun("cache", "create", "hello"); !strings.Contains(out, `✨ Created cache "hello" on "mycache"`) {
		t.Fatalf("cache create: %q", out)
	}
	info := garretRun("cache", "info", "hello")
	if !strings.Contains(info, "Public Key: hello:") {
		t.Fatalf("cache info: %q", info)
	}
	garretRun("cache", "configure", "--public", "hello")
	if !strings.Contains(garretRun("cache", "info", "hello"), "Public: true") {
		t.Fatal("configure --public did not take")
	}
	garretRun("use", "hello")

	nenv := append(buildEnv(t), clientEnv...)
	top, dep := buildClosure(t, nenv)
	work := t.TempDir()
	result := filepath.Join(work, "result")
	if err := os.Symlink(top, result); err != nil {
		t.Fatal(err)
	}
	// A push that stopped after the dependency landed resumes with the rest only.
	if out := garretRun("push", "hello", "--no-closure", dep); !strings.Contains(out, "Pushed 1 paths") {
		t.Fatalf("push dep: %q", out)
	}
	if out := garretRun("push", "hello", result); !strings.Contains(out, "Pushing 1 paths") || !strings.Contains(out, "(1 already there") {
		t.Fatalf("push ./result after the dependency landed: %q", out)
	}
	if out := garretRun("push", "hello", top, "-j", "3"); !strings.Contains(out, "Nothing to push") {
		t.Fatalf("re-push should upload nothing: %q", out)
	}

	// attic-on-flyio.txt
	fly := s.makeToken("--sub", "me", "--validity", "10y", "--pull", "*", "--push", "*", "--create-cache", "*",
		"--configure-cache", "*", "--configure-cache-retention", "*", "--destroy-cache", "*", "--delete", "*", "-f", s.config)
	garretRun("login", "fly", strings.TrimSuffix(s.url, "/"), fly)
	garretRun("cache", "create", "fly:system", "-j", "3")
	if out := garretRun("push", "fly:system", top, "-j", "3"); !strings.Contains(out, "Pushed 2 paths") {
		t.Fatalf("push to system: %q", out)
	}
	if !strings.Contains(garretRun("cache", "info", "fly:system"), "Public Key: system:") {
		t.Fatal("cache info system")
	}

	// Nix substitutes from what `garret use` wrote, into a store of the test's own.
	store := t.TempDir()
	run(t, nenv, "nix-store", "--store", store, "-r", top)
	if got, err := os.ReadFile(filepath.Join(store, top, "dep")); err != nil || strings.TrimSpace(string(got)) != dep {
		t.Fatalf("substituted via garret use: %q %v", got, err)
	}
}

// buildEnv is a nix environment without substituter settings, so the user's
// nix.conf (written by `garret use`) decides.
func buildEnv(t *testing.T) []string {
	conf := strings.Join([]string{
		"experimental-features = nix-command", "sandbox = false", "build-users-group =",
		"narinfo-cache-negative-ttl = 0", "narinfo-cache-positive-ttl = 0", "connect-timeout = 1",
	}, "\n")
	return []string{"NIX_CONFIG=" + conf, "XDG_CACHE_HOME=" + filepath.Join(t.TempDir(), "cache")}
}
