package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// verifyUnit checks a unit's text with systemd-analyze verify (any warning
// fails: verify exits 0 on unknown keys and bad values, and says so) and
// its hardening with systemd-analyze security (exposure at most 2.0 of 10),
// the unit's garretd replaced by the binary built for the test.
func verifyUnit(t *testing.T, name, text string) {
	t.Helper()
	requireTool(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCmd(t, exec.Command("systemd-analyze", "verify", path))
	if code != 0 || strings.TrimSpace(stdout+stderr) != "" {
		t.Errorf("systemd-analyze verify %s: exit %d\n%s%s\n%s", name, code, stdout, stderr, text)
	}
	cmd := exec.Command("systemd-analyze", "security", "--offline=true", "--threshold=20", name)
	cmd.Dir = dir
	if stdout, stderr, code := runCmd(t, cmd); code != 0 {
		t.Errorf("systemd-analyze security %s: exposure above 2.0 (exit %d)\n%s%s", name, code, lastLines(stdout, 3), stderr)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestSystemdUnit_Verifies: garretd.service passes systemd-analyze, runs
// the binary and config its comments install, keeps its data in its
// StateDirectory (the sample config's data-dir), and the check catches a
// misspelt key.
func TestSystemdUnit_Verifies(t *testing.T) {
	unit := read(t, "systemd/garretd.service")
	const exe, conf = "/usr/local/bin/garretd", "/etc/garret/server.toml"
	if !strings.Contains(unit, "\nExecStart="+exe+" --config "+conf+"\n") || !strings.Contains(unit, "\nStateDirectory=garretd\n") {
		t.Fatalf("garretd.service does not run %s --config %s with StateDirectory=garretd", exe, conf)
	}
	if c := load(t, "systemd/server.toml", secretsEnv); c.DataDir != "/var/lib/garretd" {
		t.Errorf("systemd/server.toml: data-dir %q is not the unit's state directory /var/lib/garretd", c.DataDir)
	}
	verifyUnit(t, "garretd.service", strings.ReplaceAll(unit, exe, garretd))
	if t.Failed() {
		return
	}
	bad := strings.Replace(strings.ReplaceAll(unit, exe, garretd), "ProtectSystem=strict", "ProtectSystm=strict", 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.service")
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, _ := runCmd(t, exec.Command("systemd-analyze", "verify", path)); !strings.Contains(stdout+stderr, "ProtectSystm") {
		t.Errorf("systemd-analyze verify does not report a misspelt key: %q", stdout+stderr)
	}
}

// verifyNixOSUnit writes the NixOS module's serviceConfig as NixOS writes a
// unit's [Service] section (a list is one line per element, booleans are
// true/false) and verifies it.
func verifyNixOSUnit(t *testing.T, serviceConfig map[string]any) {
	t.Helper()
	keys := make([]string, 0, len(serviceConfig))
	for k := range serviceConfig {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("[Unit]\nDescription=Garret (NixOS module)\n\n[Service]\n")
	for _, k := range keys {
		vals, ok := serviceConfig[k].([]any)
		if !ok {
			vals = []any{serviceConfig[k]}
		}
		for _, v := range vals {
			fmt.Fprintf(&b, "%s=%v\n", k, v)
		}
	}
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	text := regexp.MustCompile(`/nix/store/0{32}-garret/bin/garretd`).ReplaceAllString(b.String(), garretd)
	verifyUnit(t, "garretd.service", text)
}
