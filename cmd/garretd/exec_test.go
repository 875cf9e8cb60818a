package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary run as garretd itself, so the tests below
// run the real command (and its exit code) under any argv[0].
func TestMain(m *testing.M) {
	if os.Getenv("GARRETD_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// command is this binary run as name (through a symlink of that name) with
// args, HOME and XDG_* pointing into the test's own directories plus env.
func command(t *testing.T, name string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, args...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "GARRETD_TEST_RUN_MAIN=1", "HOME="+home, "XDG_CONFIG_HOME=", "XDG_DATA_HOME=",
		"GARRET_SERVER_CONFIG_BASE64=", "ATTIC_SERVER_CONFIG_BASE64=")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// run runs a command to its end and returns its output and exit code.
func run(t *testing.T, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// syncBuffer is a bytes.Buffer a running process writes to while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startUntil starts cmd and waits until its output contains want.
func startUntil(t *testing.T, cmd *exec.Cmd, want string) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	waitFor(t, out, want, func(s string) bool { return strings.Contains(s, want) })
	return out
}

// waitFor polls a running command's output until cond holds.
func waitFor(t *testing.T, out *syncBuffer, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s in:\n%s", what, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// writeConfig writes a server.toml with a data dir and extra TOML.
func writeConfig(t *testing.T, dataDir, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "server.toml")
	text := "listen = \"127.0.0.1:0\"\ndata-dir = \"" + dataDir + "\"\n" + extra +
		"\n[jwt.signing]\ntoken-hs256-secret-base64 = \"Z2FycmV0LWNtZC10ZXN0LXNlY3JldC1nYXJyZXQtY21k\"\n"
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// oneLine checks that a CLI error is exactly one line naming want.
func oneLine(t *testing.T, what, stderr string, code int, want string) {
	t.Helper()
	if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("%s: exit %d, stderr %q; want one line containing %q", what, code, stderr, want)
	}
}
