package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Nix's own binary-cache tests (2.8.0's tests/binary-cache.sh, zstd.sh,
// brotli.sh and ca/substitute.sh), ported from a file:// cache to Garret's
// HTTP cache and run with each Nix. Steps that corrupt the cache's files on
// disk (hash mismatch, missing NARs, a narinfo without References) test Nix
// against a broken file:// cache and have no HTTP equivalent a client can
// cause; `nix store verify --all` lists a file:// cache's directory, which
// an HTTP cache cannot do (checked per path instead).

// suiteExpr is tests/dependencies.nix with a nonce, built with /bin/sh and
// the machine's coreutils (PATH in the environment, as config.nix sets it).
const suiteExpr = `let
  mk = args: builtins.derivation ({ system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = ["-c" args.buildCommand]; } // removeAttrs args ["buildCommand"]);
  input0 = mk { name = "dependencies-input-0"; buildCommand = "mkdir $out; echo %[1]s foo > $out/bar"; };
  input1 = mk { name = "dependencies-input-1"; buildCommand = "mkdir $out; echo FOO > $out/foo"; };
  input2 = mk { name = "dependencies-input-2"; buildCommand = "mkdir $out; echo BAR > $out/bar; echo ${input0} > $out/input0"; };
in {
  top = mk { name = "dependencies-top"; buildCommand = ''
    echo FOO
    mkdir $out; echo FOOBAR > $out/foobar; echo ${input1} > $out/input1; echo ${input2} > $out/input2
  ''; };
  listing = mk { name = "nar-listing"; buildCommand = "mkdir $out; echo foo > $out/bar; ln -s xyzzy $out/link; : %[1]s"; };
  debug = mk { name = "debug-info"; buildCommand = "mkdir -p $out/lib/debug/.build-id/02; echo %[1]s > $out/lib/debug/.build-id/02/623eda209c26a59b1a8638ff7752f6b945c26b.debug"; };
  multi = mk { name = "multi-output"; outputs = ["out" "doc"]; buildCommand = "mkdir -p $out; echo %[1]s > $doc; echo $doc > $out/docref"; };
}
`

// caExpr is the part of tests/ca/content-addressed.nix that substitute.sh
// builds: a chain of content-addressed derivations over an input-addressed one.
const caExpr = `let
  mk = args: builtins.derivation ({ system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = ["-c" args.buildCommand]; } // removeAttrs args ["buildCommand"]);
  mkCA = args: mk ({ __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; } // args);
in rec {
  rootLegacy = mk { name = "simple-input-addressed"; buildCommand = "mkdir -p $out; echo Hello %[1]s > $out/hello"; };
  rootCA = mkCA { name = "rootCA"; outputs = [ "out" "dev" "foo" ]; buildCommand = ''
    mkdir -p $out; echo ${rootLegacy}/hello > $out/dep; ln -s $out $out/self; ln -s $out $dev; ln -s $out $foo
  ''; };
  dependentCA = mkCA { name = "dependent"; buildCommand = "mkdir -p $out; cat ${rootCA}/self/dep; echo ${rootCA}/self/dep > $out/dep"; };
  transitivelyDependentCA = mkCA { name = "transitively-dependent"; buildCommand = "cat ${dependentCA}/dep; echo ${dependentCA} > $out"; };
}
`

func writeExpr(t *testing.T, expr string) string {
	t.Helper()
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	file := filepath.Join(t.TempDir(), "expr.nix")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(expr, hex.EncodeToString(nonce[:]))), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestNixBinaryCacheSuite(t *testing.T) {
	s := newServer(t)
	all := "*"
	tok := s.makeToken("--sub", "suite", "--validity", "1 hour", "--pull", all, "--push", all, "--delete", all, "--create-cache", all)
	forEachNix(t, func(t *testing.T, nc nixClient) {
		env := nixEnv(t, s.url, tok)
		prefix := strings.NewReplacer(".", "", "nix-", "n").Replace(nc.name)
		newCache := func(name string) (url, key string) {
			key = createCache(t, s, tok, prefix+"-"+name)
			return s.url + prefix + "-" + name, key
		}
		expr := writeExpr(t, suiteExpr)
		build := func(attr string) string {
			return strings.TrimSpace(nc.run(t, env, "nix-build", expr, "-A", attr, "--no-out-link"))
		}
		hashOf := func(p string) string { return filepath.Base(p)[:32] }

		t.Run("binary-cache.sh", func(t *testing.T) {
			cache, key := newCache("bc")
			upload := s.url + "upload/" + prefix + "-bc"
			// Derivations written straight into the binary cache.
			drv := strings.TrimSpace(nc.run(t, env, "nix-instantiate", "--store", upload, expr, "-A", "top"))
			if st := status(t, cache+"/"+hashOf(drv)+".narinfo", tok); st != 200 {
				t.Fatalf("nix-instantiate --store: %s is not in the cache: %d", drv, st)
			}
			outPath := build("top")
			nc.run(t, env, "nix", "copy", "--to", upload, outPath)

			// Build logs to and from the cache.
			if out := nc.fails(t, env, "nix", "log", "--store", cache, outPath); !strings.Contains(out, "is not available") {
				t.Fatalf("nix log of a log not uploaded yet: %s", out)
			}
			nc.run(t, env, "nix", "store", "copy-log", "--to", upload, outPath)
			if out := nc.run(t, env, "nix", "log", "--store", cache, outPath); !strings.Contains(out, "FOO") {
				t.Fatalf("nix log --store: %q", out)
			}
			drvPath := strings.TrimSpace(nc.run(t, env, "nix-store", "-qd", outPath))
			nc.run(t, env, "nix", "store", "copy-log", "--from", cache, drvPath)

			// Substitution into an empty store, with mass queries (WantMassQuery: 1).
			store := t.TempDir()
			if out := nc.run(t, env, "nix-env", "--store", store, "--option", "substituters", cache, "--option", "trusted-public-keys", key,
				"-f", expr, "-qas", "dependencies-top"); !strings.HasPrefix(out, "--S") {
				t.Fatalf("nix-env -qas does not see the path as substitutable: %q", out)
			}
			nc.run(t, env, "nix-store", "--store", store, "-r", outPath, "--option", "substituters", cache, "--option", "trusted-public-keys", key)
			nc.run(t, env, "nix-store", "--store", store, "--check-validity", outPath)
			if out := nc.run(t, env, "nix-store", "--store", store, "-qR", outPath); !strings.Contains(out, "input-2") {
				t.Fatalf("closure lacks input-2: %q", out)
			}

			// Signatures: the cache signs; no key or a wrong key fails, the right one among others works.
			nc.fails(t, env, "nix-store", "--store", t.TempDir(), "-r", outPath, "--option", "substituters", cache, "--option", "trusted-public-keys", "")
			_, badKey := clientKey(t, nc, env)
			nc.fails(t, env, "nix-store", "--store", t.TempDir(), "-r", outPath, "--option", "substituters", cache, "--option", "trusted-public-keys", badKey)
			nc.run(t, env, "nix-store", "--store", t.TempDir(), "-r", outPath, "--option", "substituters", cache, "--option", "trusted-public-keys", badKey+" "+key)

			// Verify every path of the closure against the cache, contents included.
			closure := strings.Fields(nc.run(t, env, "nix-store", "-qR", outPath))
			nc.run(t, env, "nix", append([]string{"store", "verify", "--store", cache, "--sigs-needed", "1", "--option", "trusted-public-keys", key}, closure...)...)

			// A local NAR cache serves a second read without the server.
			narCache := t.TempDir()
			catURL := cache + "?local-nar-cache=" + narCache
			if out := nc.run(t, env, "nix", "store", "cat", "--store", catURL, outPath+"/foobar"); strings.TrimSpace(out) != "FOOBAR" {
				t.Fatalf("nix store cat: %q", out)
			}
			if entries, _ := os.ReadDir(narCache); len(entries) == 0 {
				t.Fatalf("local-nar-cache stayed empty")
			}

			// NAR listings.
			listing := build("listing")
			nc.run(t, env, "nix", "copy", "--to", upload+"?write-nar-listing=1", listing)
			var got, want any
			_ = json.Unmarshal(getBody(t, cache+"/"+hashOf(listing)+".ls", tok), &got)
			_ = json.Unmarshal([]byte(`{"version":1,"root":{"type":"directory","entries":{"bar":{"type":"regular","size":4,"narOffset":232},"link":{"type":"symlink","target":"xyzzy"}}}}`), &want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("NAR listing: %v, want %v", got, want)
			}

			// Debug-info index.
			debug := build("debug")
			nc.run(t, env, "nix", "copy", "--to", upload+"?index-debug-info=1&compression=none", debug)
			var entry struct{ Archive, Member string }
			if err := json.Unmarshal(getBody(t, cache+"/debuginfo/02623eda209c26a59b1a8638ff7752f6b945c26b.debug", tok), &entry); err != nil ||
				!strings.HasPrefix(entry.Archive, "../nar/") || entry.Member != "lib/debug/.build-id/02/623eda209c26a59b1a8638ff7752f6b945c26b.debug" {
				t.Fatalf("debuginfo entry: %+v %v", entry, err)
			}

			// NixOS/nix#3964: a closure broken in the cache (doc's narinfo gone)
			// must not send substitution into a loop.
			multi := build("multi")
			doc := strings.TrimSpace(nc.run(t, env, "nix-store", "-q", "--references", multi))
			nc.run(t, env, "nix", "copy", "--to", upload, multi)
			api(t, "POST", s.url+"_api/v1/delete-paths", tok, map[string]any{"cache": prefix + "-bc", "store_path_hashes": []string{hashOf(doc)}})
			nc.run(t, env, "nix-store", "--delete", multi, doc)
			nc.run(t, env, "timeout", "60", "nix-build", "--no-out-link", expr, "-A", "multi",
				"--option", "substituters", cache, "--option", "trusted-public-keys", key)
		})

		for _, comp := range []string{"zstd", "br"} { // zstd.sh, brotli.sh
			t.Run(comp+".sh", func(t *testing.T) {
				cache, _ := newCache(comp)
				outPath := build("top")
				nc.run(t, env, "nix", "copy", "--to", s.url+"upload/"+prefix+"-"+comp+"?compression="+comp, outPath)
				hash := nc.run(t, env, "nix", "hash", "path", outPath)
				store := t.TempDir()
				nc.run(t, env, "nix", "copy", "--from", cache, "--to", store, outPath, "--no-check-sigs")
				if got := nc.run(t, env, "nix", "hash", "path", "--store", store, outPath); got != hash {
					t.Fatalf("hash after copying back: %q, want %q", got, hash)
				}
			})
		}

		t.Run("ca-substitute.sh", func(t *testing.T) {
			cache, _ := newCache("ca")
			caEnv := append(append([]string{}, env...), "NIX_CONFIG="+strings.Replace(envValue(env, "NIX_CONFIG"), "experimental-features = nix-command", "experimental-features = nix-command ca-derivations", 1))
			file := writeExpr(t, caExpr)
			nc.run(t, caEnv, "nix", "build", "--file", file, "-L", "--no-link", "transitivelyDependentCA")
			nc.run(t, caEnv, "nix", "copy", "--to", s.url+"upload/"+prefix+"-ca", "--file", file, "transitivelyDependentCA")
			top := strings.TrimSpace(nc.run(t, caEnv, "nix", "path-info", "--file", file, "transitivelyDependentCA"))
			// Everything built here goes (rootCA's other outputs, symlinks to
			// its out, would keep it alive): what refers to rootLegacy.
			var legacy string
			for _, p := range strings.Fields(nc.run(t, caEnv, "nix-store", "-qR", top)) {
				if strings.HasSuffix(p, "-simple-input-addressed") {
					legacy = p
				}
			}
			built := strings.Fields(nc.run(t, caEnv, "nix-store", "-q", "--referrers-closure", legacy))
			nc.run(t, caEnv, "nix-store", append([]string{"--delete"}, built...)...)
			// -j0: nothing may be built; everything, realisations included, comes from the cache.
			nc.run(t, caEnv, "nix", "build", "--file", file, "-L", "--no-link", "--substitute", "--substituters", cache,
				"--no-require-sigs", "-j0", "transitivelyDependentCA")
			nc.run(t, caEnv, "nix", "realisation", "info", "--file", file, "transitivelyDependentCA")
			nc.run(t, caEnv, "nix", "realisation", "info", "--file", file, "dependentCA") // rootCA: only its out was needed (2.26's test drops it)
		})
	})
}

// envValue is the value of key in an environment list.
func envValue(env []string, key string) string {
	v := ""
	for _, e := range env {
		if k, val, ok := strings.Cut(e, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// getBody GETs url with a bearer token and returns the body of a 200.
func getBody(t *testing.T, url, tok string) []byte {
	t.Helper()
	return api(t, "GET", url, tok, nil)
}
