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
