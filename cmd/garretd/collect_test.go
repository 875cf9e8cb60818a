package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestGarbageCollectorModes: Attic's --mode garbage-collector-once and
// garbage-collector sweep a stopped node's data dir, and refuse in one line
// while a running garretd holds it.
func TestGarbageCollectorModes(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := writeConfig(t, dataDir, "[garbage-collection]\ninterval = \"1 second\"")

	// No node has run with this data dir yet.
	_, stderr, code := run(t, command(t, "garretd", nil, "-f", cfg, "--mode", "garbage-collector-once"))
	oneLine(t, "before any node ran", stderr, code, "holds no node")

	srv := command(t, "garretd", nil, "-f", cfg)
	startUntil(t, srv, "node started")
	for _, mode := range []string{"garbage-collector-once", "garbage-collector"} {
		_, stderr, code := run(t, command(t, "garretd", nil, "-f", cfg, "--mode", mode))
		oneLine(t, mode+" beside a running node", stderr, code, "is held by a running garretd, and a running node already sweeps its data dir every [garbage-collection] interval (1s)")
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("node exit: %v", err)
	}

	// A data dir that has been part of a cluster is the running node's to sweep.
	book := filepath.Join(dataDir, "members.json")
	if err := os.WriteFile(book, []byte(`{"12D3KooWExample":"10.0.0.2:7946"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = run(t, command(t, "garretd", nil, "-f", cfg, "--mode", "garbage-collector-once"))
	oneLine(t, "a cluster node's data dir", stderr, code, "belongs to a node of a cluster (its members.json lists 1 other members)")
	if err := os.Remove(book); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, code := run(t, command(t, "garretd", nil, "-f", cfg, "--mode", "garbage-collector-once"))
	if code != 0 || !strings.Contains(stdout, "garbage collection of "+dataDir+": 0 objects expired; freed 0 manifests, 0 chunks, 0 bytes") {
		t.Fatalf("garbage-collector-once: exit %d\n%s%s", code, stdout, stderr)
	}

	// Periodic: a pass at once, then every interval, until SIGTERM.
	gc := command(t, "garretd", nil, "-f", cfg, "--mode", "garbage-collector")
	out := startUntil(t, gc, "garbage collector started")
	_, stderr, code = run(t, command(t, "garretd", nil, "-f", cfg))
	oneLine(t, "a node beside the garbage collector", stderr, code, "node: data dir in use: another garretd process (a node or a garbage collector) holds "+dataDir)
	waitFor(t, out, "two sweeps", func(s string) bool { return strings.Count(s, `msg="gc pass"`) >= 2 })
	if err := gc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := gc.Wait(); err != nil || !strings.Contains(out.String(), "garbage collector stopped") {
		t.Fatalf("garbage-collector after SIGTERM: %v\n%s", err, out.String())
	}
}
