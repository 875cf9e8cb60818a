package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// step is one command line of a guide, with attic → garret and atticadm /
// atticd-atticadm → garretd. Placeholders: $URL, $ROOT, $FLY, $CONFIG,
// $STOREPATH, $NIXBUILD (the output of nix-build), $SYSTEM (stands in for
// /run/current-system).
type step struct {
	line string
	want string // a substring of the output, if any
}

// nixosGuide is ../shared/seeds/attic-on-nixos.txt, in order.
var nixosGuide = []step{
	{line: `garretd make-token --sub root --validity '1 hour' --pull '*' --push '*' --delete '*' --create-cache '*' --configure-cache '*' --configure-cache-retention '*' --destroy-cache '*'`},
	{line: `garretd make-token --sub hello-user --validity '99 years' --pull 'hello'`},
	{line: `garret login mycache $URL $ROOT`},
	{line: `garret cache create hello`, want: `✨ Created cache "hello" on "mycache"`},
	{line: `garret cache info hello`, want: "Public Key: hello:"},
	{line: `garret cache configure --public hello`},
	{line: `garret use hello`, want: "Trusted Public Key: hello:"},
	{line: `garret push hello $STOREPATH`, want: "Pushed 1 paths"}, // the dependency: "attic push hello /nix/store/..."
	{line: `garret push hello ./result`, want: "(1 already there"}, // resumes: only the rest is sent
	{line: `garret push hello $NIXBUILD`, want: "Nothing to push"},
}

// flyGuide is ../shared/seeds/attic-on-flyio.txt, in order (fly and nix run lines left out).
var flyGuide = []step{
	{line: `garretd make-token --sub "me" --validity "10y" --pull "*" --push "*" --create-cache "*" --configure-cache "*" --configure-cache-retention "*" --destroy-cache "*" --delete "*" -f $CONFIG`},
	{line: `garret login fly $URL $FLY`},
	{line: `garret cache create system -j 3`, want: `✨ Created cache "system" on "fly"`}, // -j does nothing here, as in attic
	{line: `garret push system $SYSTEM -j 3`, want: "Pushed 2 paths"},
	{line: `garret cache info system`, want: "Public Key: system:"},
}

// shellWords splits a command line with single and double quotes.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	quote, inWord := rune(0), false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestGuides replays both Attic guides with each Nix (garret push reads the
// closure from that Nix's daemon, garret use writes the nix.conf it reads).
func TestGuides(t *testing.T) {
	forEachNix(t, testGuides)
}

func testGuides(t *testing.T, nc nixClient) {
	s := newServer(t)
	url := strings.TrimSuffix(s.url, "/")
	nixosHome, flyHome := t.TempDir(), t.TempDir()
	clientEnv := func(home string) []string {
		return []string{"XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "HOME=" + home}
	}
	top, dep := buildClosure(t, nc, append(buildEnv(t), clientEnv(nixosHome)...))
	work := t.TempDir()
	if err := os.Symlink(top, filepath.Join(work, "result")); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"$URL": url, "$CONFIG": s.config, "$STOREPATH": dep, "$NIXBUILD": top, "$SYSTEM": top}
	replay := func(guide []step, home string) map[string]string {
		outs := map[string]string{}
		for _, st := range guide {
			words := shellWords(st.line)
			for i, w := range words {
				if v, ok := vars[w]; ok {
					words[i] = v
				}
			}
			args := words[1:]
			var out string
			switch words[0] {
			case "garret": // on the user's machine, with its Nix
				out = nc.runIn(t, work, clientEnv(home), garret, args...)
			case "garretd": // on the server
				if words[1] == "make-token" && !strings.Contains(st.line, "-f ") {
					args = append(args, "-f", s.config) // on the server, atticadm finds its config itself
				}
				out = runIn(t, work, clientEnv(home), garretd, args...)
			default:
				t.Fatalf("no binary for %q", st.line)
			}
			if st.want != "" && !strings.Contains(out, st.want) {
				t.Fatalf("%s: output %q lacks %q", st.line, out, st.want)
			}
			outs[st.line] = out
		}
		return outs
	}
	// The guides' first step mints the token the later steps use.
	vars["$ROOT"] = strings.TrimSpace(runIn(t, work, nil, garretd, "make-token", "-f", s.config, "--sub", "root", "--validity", "1 hour",
		"--pull", "*", "--push", "*", "--delete", "*", "--create-cache", "*", "--configure-cache", "*", "--configure-cache-retention", "*", "--destroy-cache", "*"))
	nixosOut := replay(nixosGuide, nixosHome)
	helloUser := strings.TrimSpace(nixosOut[nixosGuide[1].line])
	vars["$FLY"] = strings.TrimSpace(runIn(t, work, nil, garretd, "make-token", "-f", s.config, "--sub", "me", "--validity", "10y",
		"--pull", "*", "--push", "*", "--create-cache", "*", "--configure-cache", "*", "--configure-cache-retention", "*", "--destroy-cache", "*", "--delete", "*"))
	replay(flyGuide, flyHome)

	// Nix substitutes from what `garret use` wrote, into a store of the test's own.
	store := t.TempDir()
	nc.run(t, append(buildEnv(t), clientEnv(nixosHome)...), "nix-store", "--store", store, "-r", top)
	if got, err := os.ReadFile(filepath.Join(store, top, "dep")); err != nil || strings.TrimSpace(string(got)) != dep {
		t.Fatalf("substituted via garret use: %q %v", got, err)
	}

	// What Attic users never got: the URL for nix copy --to, list, path
	// delete, token revocation, destroy.
	g := func(args ...string) string { return nc.runIn(t, work, clientEnv(nixosHome), garret, args...) }
	if out := nixosOut["garret use hello"]; !strings.Contains(out, "nix copy --to '"+url+"/upload/hello?compression=zstd'") {
		t.Fatalf("garret use does not show the upload URL:\n%s", out)
	}
	if out := g("cache", "info", "hello"); !strings.Contains(out, "Upload Endpoint: "+url+"/upload/hello") {
		t.Fatalf("garret cache info does not show the upload URL:\n%s", out)
	}
	if out := g("cache", "list"); !strings.Contains(out, "hello") || !strings.Contains(out, "system") {
		t.Fatalf("cache list: %q", out)
	}
	if out := g("path", "delete", "hello", top); !strings.Contains(out, "Deleted 1 of 1") {
		t.Fatalf("path delete: %q", out)
	}
	if st := status(t, s.url+"hello/"+filepath.Base(top)[:32]+".narinfo", ""); st != 404 {
		t.Fatalf("narinfo after path delete: %d", st)
	}
	if st := status(t, s.url+"system/nix-cache-info", helloUser); st != 401 {
		t.Fatalf("hello-user on the private system cache: %d", st)
	}
	admin := strings.TrimSpace(runIn(t, work, nil, garretd, "make-token", "-f", s.config, "--sub", "admin", "--validity", "1 hour", "--cluster-admin"))
	g("login", "admin", url, admin)
	g("token", "revoke", "--server", "admin", vars["$FLY"])
	if st := status(t, s.url+"system/nix-cache-info", vars["$FLY"]); st != 401 {
		t.Fatalf("revoked token still pulls: %d", st)
	}
	if out := g("cache", "destroy", "hello", "--no-confirm"); !strings.Contains(out, "Destroyed") {
		t.Fatalf("destroy: %q", out)
	}
}

func status(t *testing.T, url, tok string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// buildEnv is a nix environment without substituter settings, so the user's
// nix.conf (written by `garret use`) decides.
func buildEnv(t *testing.T) []string {
	conf := strings.Join([]string{
		"experimental-features = nix-command", "sandbox = false", "build-users-group =",
		"connect-timeout = 1", // the user's nix.conf lists cache.nixos.org, which this machine cannot reach
	}, "\n")
	return []string{"NIX_CONFIG=" + conf, "XDG_CACHE_HOME=" + filepath.Join(t.TempDir(), "cache")}
}
