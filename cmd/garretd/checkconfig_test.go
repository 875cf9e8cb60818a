package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfig_FailsAsStartUpDoes: chunk sizes the store refuses fail
// --mode check-config with the same one line as starting the node.
func TestCheckConfig_FailsAsStartUpDoes(t *testing.T) {
	for _, chunking := range []string{"max-size = 134217728", "nar-size-threshold = 100000000"} {
		cfg := writeConfig(t, filepath.Join(t.TempDir(), "data"), "[chunking]\n"+chunking)
		_, check, code := run(t, command(t, "garretd", nil, "-f", cfg, "--mode", "check-config"))
		oneLine(t, "check-config with "+chunking, check, code, chunking)
		_, start, code := run(t, command(t, "garretd", nil, "-f", cfg))
		if code == 0 || !strings.HasSuffix(start, check) {
			t.Fatalf("start with %s: exit %d, %q; check-config said %q", chunking, code, start, check)
		}
	}
	stdout, stderr, code := run(t, command(t, "garretd", nil, "-f", writeConfig(t, t.TempDir(), ""), "--mode", "check-config"))
	if code != 0 || !strings.Contains(stdout, "is valid") {
		t.Fatalf("a valid config: exit %d %s%s", code, stdout, stderr)
	}
}

// TestCheckConfig_ReportsFreeSpace: check-config says how much space the
// data dir's filesystem has against [uploads] min-free-space, and says so
// plainly when pushes would be refused.
func TestCheckConfig_ReportsFreeSpace(t *testing.T) {
	for _, tc := range []struct{ uploads, want string }{
		{"", "pushes are refused (507) below [uploads] min-free-space = 1.0 GiB"},
		{"[uploads]\nmin-free-space = \"1000000 TiB\"", "BELOW [uploads] min-free-space = 976.6 PiB"},
		{"[uploads]\nmin-free-space = 0", "min-free-space = 0: pushes are never refused"},
	} {
		data := filepath.Join(t.TempDir(), "not", "yet", "made")
		stdout, stderr, code := run(t, command(t, "garretd", nil, "-f", writeConfig(t, data, tc.uploads), "--mode", "check-config"))
		if code != 0 || !strings.Contains(stdout, "data dir "+data+": ") || !strings.Contains(stdout, " free of ") || !strings.Contains(stdout, tc.want) {
			t.Errorf("%q: exit %d, %s%s; want %q", tc.uploads, code, stdout, stderr, tc.want)
		}
	}
}
