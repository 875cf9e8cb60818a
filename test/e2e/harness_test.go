package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// garretd and garret are the binaries under test, built once by TestMain.
var garretd, garret string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "garret-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	garretd, garret = filepath.Join(dir, "garretd"), filepath.Join(dir, "garret")
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/garret-cache/garret/cmd/garretd", "github.com/garret-cache/garret/cmd/garret")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building garretd:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// requireNix fails under CI when nix is missing, and skips loudly otherwise.
func requireNix(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nix-store"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the real nix client is required in CI (run `make test`, which installs nix-bin): %v", err)
		}
		t.Skip("!!! SKIPPING: nix-store not found; install Debian's nix-bin (make test-deps) to run the e2e tests !!!")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is one garretd process with its own config and data dir.
type server struct {
	t      *testing.T
	dir    string
	config string
	url    string // http://127.0.0.1:PORT/
	cmd    *exec.Cmd
	log    *bytes.Buffer
}

func newServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	secret := make([]byte, 64)
	_, _ = rand.Read(secret)
	port := freePort(t)
	cfg := fmt.Sprintf(`listen = "127.0.0.1:%d"
data-dir = %q

[jwt.signing]
token-hs256-secret-base64 = %q

[chunking]
nar-size-threshold = 65536
min-size = 16384
avg-size = 65536
max-size = 262144

[compression]
type = "zstd"

[cluster]
secret = "e2e-cluster-secret-0123456789abcdef-0123"
`, port, filepath.Join(dir, "data"), base64.StdEncoding.EncodeToString(secret))
	s := &server{t: t, dir: dir, config: filepath.Join(dir, "server.toml"), url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(garretd, "-f", s.config)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(s.dir, "xdg"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("garretd did not come up; log:\n%s", s.log)
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			s.t.Errorf("garretd exited with %v; log:\n%s", err, s.log)
		}
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("garretd did not stop on SIGINT; log:\n%s", s.log)
	}
	s.cmd = nil
}

// makeToken runs `garretd make-token -f CONFIG args…`.
func (s *server) makeToken(args ...string) string {
	s.t.Helper()
	out := run(s.t, nil, garretd, append([]string{"make-token", "-f", s.config}, args...)...)
	return strings.TrimSpace(out)
}

// run executes a command, failing the test with its output on error.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	return runIn(t, "", env, name, args...)
}

// runIn is run in a working directory.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	return execute(t, cmd, env)
}

// local runs commands on this machine (see cnode.run for a cluster host).
func local(t *testing.T) func(env []string, name string, args ...string) string {
	return func(env []string, name string, args ...string) string {
		t.Helper()
		return run(t, env, name, args...)
	}
}

// execute runs cmd with env added, failing the test with its output on error.
func execute(t *testing.T, cmd *exec.Cmd, env []string) string {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}
