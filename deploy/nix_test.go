package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// nixFiles are the repository's Nix files (flake.nix and everything under deploy/).
func nixFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../flake.nix"}
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".nix") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestNix_FilesParse: every .nix file parses (nix-instantiate --parse).
func TestNix_FilesParse(t *testing.T) {
	requireTool(t, "nix-instantiate", "nix-bin")
	files := nixFiles(t)
	for _, want := range []string{"../flake.nix", "default.nix", "nixos/module.nix", "nixos/package.nix", "nixos/testdata/eval.nix"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing (found %v)", want, files)
		}
	}
	for _, f := range files {
		if _, stderr, code := runCmd(t, exec.Command("nix-instantiate", "--parse", f)); code != 0 {
			t.Errorf("%s does not parse:\n%s", f, stderr)
		}
	}
	// The check itself catches a syntax error.
	bad := filepath.Join(t.TempDir(), "bad.nix")
	if err := os.WriteFile(bad, []byte("{ a = 1 }"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, code := runCmd(t, exec.Command("nix-instantiate", "--parse", bad)); code == 0 {
		t.Fatal("nix-instantiate --parse accepts a syntax error")
	}
}

// TestNix_VendorHash: package.nix's vendorHash is the hash buildGoModule
// will compute from go.mod and go.sum (vendor-hash.sh: `go mod vendor`,
// then the NAR hash of the vendor directory). After a change to go.mod,
// `make vendor-hash` fixes it.
func TestNix_VendorHash(t *testing.T) {
	requireTool(t, "nix", "nix-bin")
	m := regexp.MustCompile(`vendorHash = "(sha256-[A-Za-z0-9+/=]{44})";`).FindStringSubmatch(read(t, "nixos/package.nix"))
	if m == nil {
		t.Fatal("nixos/package.nix has no vendorHash = \"sha256-…\";")
	}
	cmd := exec.Command("sh", "nixos/vendor-hash.sh")
	cmd.Env = nixEnv(t)
	stdout, stderr, code := runCmd(t, cmd)
	if code != 0 {
		t.Fatalf("vendor-hash.sh: exit %d\n%s", code, stderr)
	}
	if got := strings.TrimSpace(stdout); got != m[1] {
		t.Fatalf("nixos/package.nix has vendorHash %s, but go.mod/go.sum give %s: run `make vendor-hash`", m[1], got)
	}
}

// moduleEval is what nixos/testdata/eval.nix returns.
type moduleEval struct {
	Settings         map[string]any
	FailedAssertions []string
	Firewall         struct{ TCP, UDP []int }
	Services         map[string]map[string]any
	Wrappers         []struct{ Name, Text string }
	ConfigCheck      *struct {
		Script string
		Env    map[string]string
	}
}

// evalModule evaluates nixos/module.nix with nixpkgs' lib at lib and the
// services.garretd definition given as a Nix expression.
func evalModule(t *testing.T, lib, garretdExpr string) moduleEval {
	t.Helper()
	cmd := exec.Command("nix-instantiate", "--eval", "--strict", "--json", "nixos/testdata/eval.nix",
		"--arg", "lib", "import "+lib, "--arg", "garretd", garretdExpr)
	cmd.Env = nixEnv(t)
	stdout, stderr, code := runCmd(t, cmd)
	if code != 0 {
		t.Fatalf("evaluating the module: exit %d\n%s", code, stderr)
	}
	var r moduleEval
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.UseNumber() // TOML tells integers from floats
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	return r
}

// nixpkgsLib is nixpkgs' lib directory from GARRET_NIXPKGS_LIB (a nixpkgs
// checkout, or nix-community/nixpkgs.lib, or its lib/); nixpkgs cannot be
// fetched on these machines, so without it the module test skips loudly.
func nixpkgsLib(t *testing.T) string {
	t.Helper()
	requireTool(t, "nix-instantiate", "nix-bin")
	dir := os.Getenv("GARRET_NIXPKGS_LIB")
	if dir == "" {
		t.Skip("!!! SKIPPING: set GARRET_NIXPKGS_LIB to a nixpkgs checkout (or its lib/) to evaluate the NixOS module; only its syntax was checked !!!")
	}
	for _, d := range []string{filepath.Join(dir, "lib"), dir} {
		if _, err := os.Stat(filepath.Join(d, "modules.nix")); err == nil {
			abs, err := filepath.Abs(d)
			if err != nil {
				t.Fatal(err)
			}
			return abs
		}
	}
	t.Fatalf("GARRET_NIXPKGS_LIB=%s holds no lib/modules.nix", dir)
	return ""
}

// renderSettings writes the module's settings as server.toml, as
// pkgs.formats.toml does (JSON to TOML).
func renderSettings(t *testing.T, settings map[string]any) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.toml")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := toml.NewEncoder(f).Encode(numbers(settings)); err != nil {
		t.Fatal(err)
	}
	return path
}

// numbers turns JSON numbers into TOML integers where they are whole, as
// remarshal (behind pkgs.formats.toml) does.
func numbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

// buildTimeCheck runs the module's runCommand script (garretd --mode
// check-config, then cp to $out) as the Nix build would: with only its
// derivation's environment, garretd on PATH, and the rendered settings at
// the placeholder store path. It returns what $out holds, or the script's
// failure with its output.
func buildTimeCheck(t *testing.T, r moduleEval, rendered string) (string, error) {
	t.Helper()
	if r.ConfigCheck == nil {
		t.Fatal("the module defines no configFile")
	}
	script := strings.ReplaceAll(r.ConfigCheck.Script, "/nix/store/00000000000000000000000000000000-garretd-server.toml", rendered)
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	cmd := exec.Command("bash", "-eu", "-c", script)
	cmd.Env = []string{"PATH=" + filepath.Dir(garretd) + ":/usr/bin:/bin", "TMPDIR=" + tmp, "out=" + out}
	for k, v := range r.ConfigCheck.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	return string(b), err
}

// TestNixOSModule_Evaluates: with nixpkgs' lib, services.garretd evaluates;
// its settings, rendered to TOML as pkgs.formats.toml does, pass garretd
// --mode check-config with the environmentFile's secrets; the firewall
// opens the cluster ports; the unit is the hardened one (and passes
// systemd-analyze, rendered as NixOS writes units); the make-token wrapper is
// valid shell; secrets in settings and a relative environmentFile are
// refused; a disabled service defines nothing.
func TestNixOSModule_Evaluates(t *testing.T) {
	lib := nixpkgsLib(t)
	r := evalModule(t, lib, `{ enable = true; openFirewall = true; environmentFile = "/run/secrets/garretd.env";
	  settings = { api-endpoint = "https://cache.example.com/"; garbage-collection.default-retention-period = "6 months";
	    cluster = { region = "eu"; gossip-listen = "0.0.0.0:7946"; p2p-listen = "[::]:4001"; join = [ "10.0.0.2:7946" ]; }; }; }`)
	if len(r.FailedAssertions) != 0 {
		t.Fatalf("assertions fail: %v", r.FailedAssertions)
	}
	path := renderSettings(t, r.Settings)
	if stdout, stderr, code := checkConfig(t, path, secretsEnv); code != 0 {
		t.Fatalf("the module's settings fail check-config: %s%s\n%s", stdout, stderr, read(t, path))
	}
	if out, err := buildTimeCheck(t, r, path); err != nil || out != read(t, path) {
		t.Fatalf("the build-time check of the config: %v; $out %q", err, out)
	}
	if c := load(t, path, secretsEnv); c.DataDir != "/var/lib/garretd" || c.Listen != "[::]:8080" || c.Cluster.Region != "eu" || c.GC.DefaultRetentionPeriod == 0 {
		t.Errorf("rendered settings: data-dir %q, listen %q, %+v", c.DataDir, c.Listen, c.Cluster)
	}
	if !slices.Equal(r.Firewall.TCP, []int{7946, 4001}) || !slices.Equal(r.Firewall.UDP, []int{7946}) {
		t.Errorf("firewall: %+v", r.Firewall)
	}
	unit := r.Services["garretd"]
	for k, want := range map[string]any{"ProtectSystem": "strict", "NoNewPrivileges": true, "PrivateTmp": true, "CapabilityBoundingSet": "",
		"DynamicUser": true, "StateDirectory": "garretd", "EnvironmentFile": "/run/secrets/garretd.env", "Restart": "on-failure"} {
		if unit[k] != want {
			t.Errorf("serviceConfig.%s = %v, want %v", k, unit[k], want)
		}
	}
	if exec, _ := unit["ExecStart"].(string); !strings.HasSuffix(exec, "/bin/garretd --config /nix/store/00000000000000000000000000000000-garretd-server-checked.toml --mode monolithic") {
		t.Errorf("ExecStart = %q", exec)
	}
	verifyNixOSUnit(t, unit)
	if len(r.Wrappers) != 1 || r.Wrappers[0].Name != "garretd-make-token" || !strings.Contains(r.Wrappers[0].Text, "make-token --config ") ||
		!strings.Contains(r.Wrappers[0].Text, "--property=EnvironmentFile=/run/secrets/garretd.env") {
		t.Fatalf("wrappers: %+v", r.Wrappers)
	}
	if _, stderr, code := runCmd(t, exec.Command("sh", "-n", "-c", r.Wrappers[0].Text)); code != 0 {
		t.Errorf("garretd-make-token is not valid shell: %s", stderr)
	}

	// A config garretd refuses fails the system's build.
	r = evalModule(t, lib, `{ enable = true; settings.chunking = { min-size = 16384; avg-size = 65536; max-size = 1073741824; }; }`)
	if out, err := buildTimeCheck(t, r, renderSettings(t, r.Settings)); err == nil || !strings.Contains(err.Error(), "max-size") {
		t.Errorf("a max-size garretd refuses passes the build-time check: %v, $out %q", err, out)
	}

	r = evalModule(t, lib, `{ enable = true; environmentFile = "secrets.env"; settings = { cluster.secret = "x"; jwt.signing.token-hs256-secret-base64 = "eA=="; }; }`)
	if len(r.FailedAssertions) != 3 {
		t.Errorf("secrets in settings and a relative environmentFile: failed assertions %q", r.FailedAssertions)
	}
	if r = evalModule(t, lib, `{ enable = false; }`); len(r.Services) != 0 || len(r.Wrappers) != 0 || len(r.Firewall.TCP) != 0 {
		t.Errorf("a disabled service: %+v", r)
	}
}
