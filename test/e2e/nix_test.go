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

// hostNix is Debian 12's Nix on this machine, the client of the tests that
// run only one Nix (the cluster tests, on the emulated hosts).
var hostNix = nixClient{name: "nix-2.8"}

// nixEnv is nix as a user on this machine runs it: single-user as root, no
// sandbox, no default substituters (this machine has no internet), a netrc
// with the token (Nix sends it as the Basic password), and otherwise Nix's
// defaults — its narinfo disk cache included (positive TTL 30 days), in a
// test-local XDG_CACHE_HOME.
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
		"netrc-file = " + netrc,
	}, "\n")
	return []string{"NIX_CONFIG=" + conf, "XDG_CACHE_HOME=" + filepath.Join(dir, "cache"), "HOME=" + dir}
}

// buildClosure builds a fresh two-path closure with nc: top references dep,
// whose name starts with "." (valid since Nix 2.4) and which holds ~600 KB so
// it is chunked. It returns both store paths.
func buildClosure(t *testing.T, nc nixClient, env []string) (top, dep string) {
	t.Helper()
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	expr := fmt.Sprintf(`let
  dep = builtins.derivation { name = ".garret-e2e-dep"; system = builtins.currentSystem; builder = "/bin/sh";
    args = ["-c" "/bin/mkdir $out; echo %[1]s > $out/nonce; /usr/bin/seq 1 100000 > $out/numbers"]; };
in builtins.derivation { name = "garret-e2e-top"; system = builtins.currentSystem; builder = "/bin/sh";
    args = ["-c" "/bin/mkdir $out; echo ${dep} > $out/dep; /bin/ln -s ${dep}/numbers $out/numbers"]; }
`, hex.EncodeToString(nonce[:]))
	file := filepath.Join(t.TempDir(), "closure.nix")
	if err := os.WriteFile(file, []byte(expr), 0o644); err != nil {
		t.Fatal(err)
	}
	top = strings.TrimSpace(nc.run(t, env, "nix-build", file, "--no-out-link"))
	refs := strings.Fields(nc.run(t, env, "nix-store", "-q", "--references", top))
	if len(refs) != 1 || !strings.Contains(refs[0], "-.garret-e2e-dep") {
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
	checkClosure(t, filepath.Join(store, top), filepath.Join(store, dep), dep)
}

// checkClosure checks the files of a substituted closure (paths on this machine).
func checkClosure(t *testing.T, topDir, depDir, dep string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(topDir, "dep"))
	if err != nil || strings.TrimSpace(string(got)) != dep {
		t.Fatalf("substituted %s/dep = %q, %v; want %s", topDir, got, err, dep)
	}
	if _, err := os.Stat(filepath.Join(depDir, "numbers")); err != nil {
		t.Fatalf("reference %s was not substituted: %v", dep, err)
	}
}

// clientKey makes a signing key pair with nc, as a user signing their own
// uploads (`nix copy --to 'URL?secret-key=FILE'`) would.
func clientKey(t *testing.T, nc nixClient, env []string) (secretFile, publicKey string) {
	t.Helper()
	secretFile = filepath.Join(t.TempDir(), "client.sk")
	sk := nc.run(t, env, "nix", "key", "generate-secret", "--key-name", "client-1")
	if err := os.WriteFile(secretFile, []byte(sk), 0o600); err != nil {
		t.Fatal(err)
	}
	pubFile := secretFile + ".in"
	if err := os.WriteFile(pubFile, []byte(sk), 0o600); err != nil {
		t.Fatal(err)
	}
	publicKey = strings.TrimSpace(nc.run(t, env, "/bin/sh", "-c", "nix key convert-secret-to-public < "+pubFile))
	return secretFile, publicKey
}

// deleteClosure removes a closure from nc's store, as a user's GC would.
func deleteClosure(t *testing.T, nc nixClient, env []string, top, dep string) {
	t.Helper()
	nc.run(t, env, "nix-store", "--delete", top, dep)
	if _, err := os.Stat(nc.file(top)); err == nil {
		t.Fatalf("%s is still in the store after nix-store --delete", top)
	}
}

// nixCompressions is every compression Nix writes here (lzop, grzip and
// lrzip need external programs Nix cannot find either); "" is the default, xz.
var nixCompressions = []string{"", "zstd", "bzip2", "gzip", "none", "br", "lz4", "lzip", "lzma", "compress"}

// TestNix_PushDeleteSubstitute is the first hour of a user, with each Nix
// and every compression, on Nix's default settings: push a closure, delete it
// from the store, substitute it back on the same machine — once through the
// README's upload URL (/upload/CACHE), once to the substituter URL itself
// with the client signing its uploads (Nix then remembers its own narinfo and
// downloads the NAR at its own URL, in its own compression). Then the cache
// as a store: nix path-info and nix store verify.
func TestNix_PushDeleteSubstitute(t *testing.T) {
	s := newServer(t)
	all := "*"
	tok := s.makeToken("--sub", "e2e", "--validity", "1 hour", "--pull", all, "--push", all,
		"--create-cache", all, "--configure-cache", all, "--destroy-cache", all)
	forEachNix(t, func(t *testing.T, nc nixClient) {
		env := nixEnv(t, s.url, tok)
		secretKey, clientPub := clientKey(t, nc, env)
		for _, comp := range nixCompressions {
			name := comp
			if name == "" {
				name = "default"
			}
			t.Run(name, func(t *testing.T) {
				cache := strings.NewReplacer(".", "", "nix-", "n").Replace(nc.name) + "-" + name
				key := createCache(t, s, tok, cache)
				withParams := func(u string, params ...string) string {
					if comp != "" {
						params = append(params, "compression="+comp)
					}
					if len(params) == 0 {
						return u
					}
					return u + "?" + strings.Join(params, "&")
				}

				// The README's flow: push to the upload URL, substitute from the cache.
				top, dep := buildClosure(t, nc, env)
				nc.run(t, env, "nix", "copy", "--to", withParams(s.url+"upload/"+cache), top)
				deleteClosure(t, nc, env, top, dep)
				nc.run(t, env, "nix-store", "-r", top, "--option", "substituters", s.url+cache, "--option", "trusted-public-keys", key)
				checkClosure(t, nc.file(top), nc.file(dep), dep)

				// A client that signs its uploads pushes to the substituter URL.
				signed := cache + "-signed"
				skey := createCache(t, s, tok, signed)
				stop, sdep := buildClosure(t, nc, env)
				nc.run(t, env, "nix", "copy", "--to", withParams(s.url+signed, "secret-key="+secretKey), stop)
				deleteClosure(t, nc, env, stop, sdep)
				nc.run(t, env, "nix-store", "-r", stop, "--option", "substituters", s.url+signed, "--option", "trusted-public-keys", clientPub+" "+skey)
				checkClosure(t, nc.file(stop), nc.file(sdep), sdep)

				// The cache as a store: path info, and every signature and byte checked.
				if out := nc.run(t, env, "nix", "path-info", "--store", s.url+cache, top); strings.TrimSpace(out) != top {
					t.Fatalf("nix path-info --store: %q", out)
				}
				nc.run(t, env, "nix", "store", "verify", "--store", s.url+cache, "--sigs-needed", "1",
					"--option", "trusted-public-keys", key, top, dep)
			})
		}
	})
}

// TestNix_RestartAndPullOnly: after a restart the catalog and chunks are
// still there, and a pull-only token substitutes but cannot push.
func TestNix_RestartAndPullOnly(t *testing.T) {
	requireNix(t)
	s := newServer(t)
	all := "*"
	tok := s.makeToken("--sub", "e2e", "--validity", "1 hour", "--pull", all, "--push", all, "--create-cache", all)
	env := nixEnv(t, s.url, tok)
	top, dep := buildClosure(t, hostNix, env)
	key := createCache(t, s, tok, "kept")
	hostNix.run(t, env, "nix", "copy", "--to", s.url+"upload/kept?compression=zstd", top)

	s.stop()
	s.start()
	substitute(t, hostNix.local(t), nixEnv(t, s.url, tok), s.url+"kept", key, top, dep)

	pull := s.makeToken("--sub", "reader", "--validity", "1 hour", "--pull", "kept")
	penv := nixEnv(t, s.url, pull)
	substitute(t, hostNix.local(t), penv, s.url+"kept", key, top, dep)
	top2, _ := buildClosure(t, hostNix, penv)
	if out := hostNix.fails(t, penv, "nix", "copy", "--to", s.url+"upload/kept", top2); !strings.Contains(out, "40") {
		t.Fatalf("a pull-only token pushed, or failed oddly:\n%s", out)
	}
}
