package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfig_AtticFallbackAndResolve(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	attic := filepath.Join(dir, "attic", "config.toml")
	if err := os.MkdirAll(filepath.Dir(attic), 0o700); err != nil {
		t.Fatal(err)
	}
	text := "default-server = \"central\"\n[servers.central]\nendpoint = \"https://a.example/\"\ntoken = \"T\"\n[servers.other]\nendpoint = \"https://b.example\"\ntoken-file = \"" + filepath.Join(dir, "tok") + "\"\n"
	if err := os.WriteFile(attic, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "tok"), []byte("  FILETOKEN\n"), 0o600)
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	name, srv, cache, err := cfg.resolve("hello")
	if err != nil || name != "central" || cache != "hello" || srv.Endpoint != "https://a.example/" {
		t.Fatalf("resolve hello: %s %+v %s %v", name, srv, cache, err)
	}
	_, srv, cache, err = cfg.resolve("other:sys")
	if tok, _ := srv.token(); err != nil || cache != "sys" || tok != "FILETOKEN" {
		t.Fatalf("resolve other:sys: %+v %v", srv, err)
	}
	if _, _, _, err := cfg.resolve("nope:x"); err == nil {
		t.Fatal("unknown server accepted")
	}
	// Saving writes Garret's own file, mode 0600.
	if err := cfg.save(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(configPath()); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", st, err)
	}
}

func TestUse_EditsKeepWhatIsThere(t *testing.T) {
	lines := []string{"# mine", "substituters = https://a.example", "max-jobs = 4"}
	lines = prependSetting(lines, "substituters", "https://cache.example/hello", "https://cache.nixos.org")
	lines = prependSetting(lines, "substituters", "https://cache.example/hello", "https://cache.nixos.org")
	lines = prependSetting(lines, "trusted-public-keys", "hello:KEY", nixosKey)
	lines = setSetting(lines, "netrc-file", "/x/netrc")
	got := strings.Join(lines, "\n")
	want := "# mine\nsubstituters = https://cache.example/hello https://a.example\nmax-jobs = 4\ntrusted-public-keys = hello:KEY " + nixosKey + "\nnetrc-file = /x/netrc"
	if got != want {
		t.Fatalf("nix.conf:\n%s\nwant:\n%s", got, want)
	}
	netrc := filepath.Join(t.TempDir(), "netrc")
	_ = os.WriteFile(netrc, []byte("machine other\npassword keep\nmachine cache.example\npassword old\n"), 0o600)
	if err := writeNetrc(netrc, "cache.example", "new"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(netrc)
	if string(b) != "machine other\npassword keep\nmachine cache.example\npassword new\n" {
		t.Fatalf("netrc:\n%s", b)
	}
}
