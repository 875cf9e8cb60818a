package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// nixEnv is the environment for nix commands: single-user as root, no
// sandbox, no default substituters, no narinfo caching, and a netrc with the
// token (Nix sends it as the Basic password).
func nixEnv(t *testing.T, serverURL, tok string) []string {
	t.Helper()
	dir := t.TempDir()
	netrc := filepath.Join(dir, "netrc")
	u, _ := url.Parse(serverURL)
	if err := os.WriteFile(netrc, []byte(fmt.Sprintf("machine %s\npassword %s\n", u.Hostname(), tok)), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := strings.Join([]string{
		"experimental-features = nix-command",
		"sandbox = false",
		"build-users-group =",
		"substituters =",
		"narinfo-cache-negative-ttl = 0",
		"narinfo-cache-positive-ttl = 0",
		"netrc-file = " + netrc,
	}, "\n")
	return []string{"NIX_CONFIG=" + conf, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache")}
}

// buildClosure builds a fresh two-path closure (top references dep; dep holds
// ~600 KB so it is chunked) and returns both store paths.
func buildClosure(t *testing.T, env []string) (top, dep string) {
	t.Helper()
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	expr := fmt.Sprintf(`let
  dep = builtins.derivation { name = "garret-e2e-dep"; system = builtins.currentSystem; builder = "/bin/sh";
    args = ["-c" "/bin/mkdir $out; echo %[1]s > $out/nonce; /usr/bin/seq 1 100000 > $out/numbers"]; };
in builtins.derivation { name = "garret-e2e-top"; system = builtins.currentSystem; builder = "/bin/sh";
    args = ["-c" "/bin/mkdir $out; echo ${dep} > $out/dep; /bin/ln -s ${dep}/numbers $out/numbers"]; }
`, hex.EncodeToString(nonce[:]))
	file := filepath.Join(t.TempDir(), "closure.nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	top = strings.TrimSpace(run(t, env, "nix-build", file, "--no-out-link"))
	refs := strings.Fields(run(t, env, "nix-store", "-q", "--references", top))
	if len(refs) != 1 {
		t.Fatalf("closure of %s: references %v", top, refs)
	}
	return top, refs[0]
}

// api calls the Attic API with a bearer token.
func api(t *testing.T, method, u, tok string, body any) []byte {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, r)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, out)
	}
	return out
}

func createCache(t *testing.T, s *server, tok, name string) (publicKey string) {
	t.Helper()
	api(t, "POST", s.url+"_api/v1/cache-config/"+name, tok, map[string]any{
		"keypair": "Generate", "is_public": false, "store_dir": "/nix/store", "priority": 41,
		"upstream_cache_key_names": []string{"cache.nixos.org-1"},
	})
	var cfg struct {
		PublicKey string `json:"public_key"`
	}
	if err := json.Unmarshal(api(t, "GET", s.url+"_api/v1/cache-config/"+name, tok, nil), &cfg); err != nil || cfg.PublicKey == "" {
		t.Fatalf("cache-config of %s: %v", name, err)
	}
	return cfg.PublicKey
}

// substitute realises path into a fresh store of the test's own from the
// cache, checking signatures against publicKey, and checks the closure landed.
func substitute(t *testing.T, run func(env []string, name string, args ...string) string, env []string, cacheURL, publicKey, top, dep string) {
	t.Helper()
	store := t.TempDir()
	run(env, "nix-store", "--store", store, "-r", top,
		"--option", "substituters", cacheURL,
		"--option", "trusted-public-keys", publicKey,
		"--option", "require-sigs", "true")
	got, err := os.ReadFile(filepath.Join(store, top, "dep"))
	if err != nil || strings.TrimSpace(string(got)) != dep {
		t.Fatalf("substituted %s/dep = %q, %v; want %s", top, got, err, dep)
	}
	if _, err := os.Stat(filepath.Join(store, dep, "numbers")); err != nil {
		t.Fatalf("reference %s was not substituted: %v", dep, err)
	}
}

func TestNix_CopyAndSubstitute(t *testing.T) {
	requireNix(t)
	s := newServer(t)
	all := "*"
	tok := s.makeToken("--sub", "e2e", "--validity", "1 hour", "--pull", all, "--push", all,
		"--create-cache", all, "--configure-cache", all, "--destroy-cache", all)
	env := nixEnv(t, s.url, tok)
	top, dep := buildClosure(t, env)

	keys := map[string]string{}
	for _, c := range []struct{ cache, compression string }{
		{"zstdcache", "zstd"}, {"xzcache", "xz"}, {"bz2cache", "bzip2"}, {"gzcache", "gzip"}, {"plaincache", "none"},
	} {
		keys[c.cache] = createCache(t, s, tok, c.cache)
		run(t, env, "nix", "copy", "--to", s.url+c.cache+"?compression="+c.compression, top)
		substitute(t, local(t), env, s.url+c.cache, keys[c.cache], top, dep)
	}

	// After a restart the catalog and chunks are still there.
	s.stop()
	s.start()
	for cache, key := range keys {
		substitute(t, local(t), env, s.url+cache, key, top, dep)
	}

	// A pull-only token can substitute but not push.
	pull := s.makeToken("--sub", "reader", "--validity", "1 hour", "--pull", "zstdcache")
	penv := nixEnv(t, s.url, pull)
	substitute(t, local(t), penv, s.url+"zstdcache", keys["zstdcache"], top, dep)
}
